//! Prints what a demo population contains: resources by type, bundle count, serialised size
//! and how long generation took.
//!
//! `cargo run --release -p rapport-synth --example population_summary -- [PATIENTS] [SEED] [TODAY]`
//!
//! Set `SYNTH_SKIP_JSON=1` to time generation alone, without serialising.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use chrono::NaiveDate;
use rapport_synth::{generate, DemoConfig};

/// Counts bytes without keeping them, so serialising 100,000 patients needs no memory.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0 += buffer.len() as u64;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let patients = arguments
        .next()
        .map_or(200, |value| value.parse().expect("PATIENTS is a number"));
    let seed = arguments
        .next()
        .map_or(1, |value| value.parse().expect("SEED is a number"));
    let today = arguments.next().map_or(
        NaiveDate::from_ymd_opt(2025, 6, 2).expect("valid date"),
        |value| value.parse().expect("TODAY is YYYY-MM-DD"),
    );
    let config = DemoConfig {
        patients,
        seed,
        today,
    };

    let started = Instant::now();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut bundles = 0u64;
    let mut sink = CountingSink(0);
    let serialise = std::env::var_os("SYNTH_SKIP_JSON").is_none();
    for demo in generate(&config) {
        bundles += 1;
        if serialise {
            serde_json::to_writer(&mut sink, &demo.bundle).expect("serialises");
        }
        for entry in demo.bundle["entry"].as_array().expect("bundle has entries") {
            let resource_type = entry["resource"]["resourceType"]
                .as_str()
                .expect("resourceType");
            *counts.entry(resource_type.to_owned()).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();

    let total: u64 = counts.values().sum();
    println!(
        "{patients} patients, seed {seed}, today {today}: {bundles} bundles, {total} resources"
    );
    for (resource_type, count) in &counts {
        println!("  {resource_type:<20} {count:>10}");
    }
    println!(
        "  {:<20} {:>10.1}",
        "resources/patient",
        total as f64 / patients.max(1) as f64
    );
    println!("serialised JSON: {:.1} MB", sink.0 as f64 / 1e6);
    println!("generated and serialised in {:.2} s", elapsed.as_secs_f64());
}
