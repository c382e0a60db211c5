//! A 100,000-patient demo must stream: the first bundles arrive without the rest being built.

use std::time::{Duration, Instant};

use rapport_synth::{generate, DemoConfig};

use crate::{default_config, resources};

#[test]
fn a_large_population_yields_its_first_bundles_without_generating_the_rest() {
    let config = DemoConfig {
        patients: 100_000,
        ..default_config()
    };
    let started = Instant::now();
    let mut bundles = generate(&config);
    let first: Vec<_> = bundles.by_ref().take(12).collect();
    let elapsed = started.elapsed();
    assert_eq!(first[0].name, "organizations.json");
    assert_eq!(first[11].name, "household-000010.json");
    let patients: usize = first
        .iter()
        .map(|bundle| {
            resources(&bundle.bundle)
                .filter(|r| r["resourceType"] == "Patient")
                .count()
        })
        .sum();
    assert!((10..=50).contains(&patients));
    // The remaining households are still to come, and the iterator knows roughly how many.
    let (at_least, at_most) = bundles.size_hint();
    assert!(at_least >= (100_000 - patients) / 5);
    assert_eq!(at_most, Some(100_000 - patients));
    // Generous bound: ten households take milliseconds; the whole population takes minutes.
    assert!(
        elapsed < Duration::from_secs(20),
        "first bundles took {elapsed:?}"
    );
}

#[test]
fn the_directory_scales_modestly_with_the_population() {
    let count = |patients: usize, resource_type: &str| {
        let config = DemoConfig {
            patients,
            ..default_config()
        };
        generate(&config)
            .take(2)
            .map(|bundle| {
                resources(&bundle.bundle)
                    .filter(|r| r["resourceType"] == resource_type)
                    .count()
            })
            .sum::<usize>()
    };
    let small = count(200, "Practitioner");
    let large = count(100_000, "Practitioner");
    assert!(
        (10..=40).contains(&small),
        "{small} practitioners for 200 patients"
    );
    assert!(
        (100..=400).contains(&large),
        "{large} practitioners for 100,000 patients"
    );
}
