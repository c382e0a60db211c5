//! Parsing throughput on the shared fixture mix, on one core.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/hl7-wip/target cargo run --release -j1 --example parse_bench [ROUNDS]
//! ```
//!
//! Loads every message in `shared/fixtures/hl7v2` (or the folder in `RAPPORT_HL7_FIXTURES`),
//! then, ROUNDS times over the whole mix: parses each message from its bytes, walks every
//! field of every segment, and decodes OBX-5. Prints messages per second.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fixture_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("RAPPORT_HL7_FIXTURES")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("../../shared/fixtures/hl7v2"),
            manifest.join("../../../shared/fixtures/hl7v2"),
            PathBuf::from("/work/shared/fixtures/hl7v2"),
        ])
        .find(|p| p.is_dir())
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read fixture folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "hl7") {
            files.push(path);
        }
    }
}

/// Parses and walks one message; returns a number that depends on all of it.
fn touch(bytes: &[u8]) -> usize {
    let Ok(parsed) = rapport_hl7::parse_bytes(bytes) else {
        return 0;
    };
    let message = &parsed.message;
    let mut sum = 0;
    for segment in message.segments() {
        for field in segment.fields() {
            sum += field.raw().len();
        }
        if segment.id() == "OBX" {
            sum += segment.field(5).text().len();
        }
    }
    sum
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let Some(dir) = fixture_dir() else {
        eprintln!("fixture folder shared/fixtures/hl7v2 not found; set RAPPORT_HL7_FIXTURES");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    let contents: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    // Messages that parse (the two invalid fixtures are left out of the mix).
    let messages: Vec<&[u8]> = contents
        .iter()
        .flat_map(|c| rapport_hl7::split_messages(c))
        .filter(|m| rapport_hl7::parse_bytes(m).is_ok())
        .collect();
    let bytes: usize = messages.iter().map(|m| m.len()).sum();
    println!(
        "{} messages from {} files, {} bytes, mean {} bytes per message",
        messages.len(),
        files.len(),
        bytes,
        bytes / messages.len()
    );
    // Warm up.
    for message in &messages {
        black_box(touch(black_box(message)));
    }
    let start = Instant::now();
    let mut check = 0usize;
    for _ in 0..rounds {
        for message in &messages {
            check = check.wrapping_add(touch(black_box(message)));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let count = (rounds * messages.len()) as f64;
    println!(
        "{rounds} rounds: {:.0} messages/s, {:.0} MB/s, {:.2} µs per message (check {check})",
        count / elapsed,
        (rounds * bytes) as f64 / elapsed / 1e6,
        elapsed / count * 1e6
    );
}
