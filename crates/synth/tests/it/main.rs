//! Integration tests for `rapport-synth`: they look only at the public API and at the FHIR
//! JSON it produces, the way the importer will.

mod content;
mod determinism;
mod references;
mod streaming;
mod structure;

use std::sync::OnceLock;

use chrono::NaiveDate;
use rapport_synth::{generate, DemoBundle, DemoConfig};
use serde_json::Value;

/// The default demo: 200 patients.
pub fn default_config() -> DemoConfig {
    DemoConfig {
        patients: 200,
        seed: 20_250_602,
        today: today(),
    }
}

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 2).expect("valid date")
}

/// The default population, generated once for all tests in this binary.
pub fn population() -> &'static [DemoBundle] {
    static POPULATION: OnceLock<Vec<DemoBundle>> = OnceLock::new();
    POPULATION.get_or_init(|| generate(&default_config()).collect())
}

pub fn household_bundles() -> impl Iterator<Item = &'static DemoBundle> {
    population()
        .iter()
        .filter(|bundle| bundle.name.starts_with("household-"))
}

/// Every resource of a bundle.
pub fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .expect("a bundle has entries")
        .iter()
        .map(|entry| &entry["resource"])
}

/// Every resource of the given type in the whole population.
pub fn all_of_type(resource_type: &'static str) -> impl Iterator<Item = &'static Value> {
    population()
        .iter()
        .flat_map(|bundle| resources(&bundle.bundle))
        .filter(move |resource| resource["resourceType"] == resource_type)
}

/// Every `reference` string anywhere inside a JSON value.
pub fn references_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                match (key.as_str(), child) {
                    ("reference", Value::String(reference)) => found.push(reference.clone()),
                    _ => references_in(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references_in(item, found)),
        _ => {}
    }
}

pub fn code_of(concept: &Value) -> &str {
    concept["coding"][0]["code"].as_str().unwrap_or_default()
}
