//! Household bundles must be importable in any order: their references point either at an
//! entry of the same bundle (`urn:uuid:`) or, conditionally, at an identifier the directory
//! bundles define.

use std::collections::BTreeSet;

use crate::{household_bundles, population, references_in, resources};

/// `Type?identifier=system|value` for every identifier in the directory bundles.
fn directory_targets() -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    for bundle in &population()[..2] {
        for resource in resources(&bundle.bundle) {
            for identifier in resource["identifier"].as_array().into_iter().flatten() {
                targets.insert(format!(
                    "{}?identifier={}|{}",
                    resource["resourceType"].as_str().unwrap(),
                    identifier["system"].as_str().unwrap(),
                    identifier["value"].as_str().unwrap()
                ));
            }
        }
    }
    targets
}

fn local_targets(bundle: &serde_json::Value) -> BTreeSet<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["fullUrl"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn household_references_resolve_inside_the_bundle_or_to_the_directory() {
    let directory = directory_targets();
    let mut checked = 0;
    for bundle in household_bundles() {
        let local = local_targets(&bundle.bundle);
        let mut found = Vec::new();
        references_in(&bundle.bundle, &mut found);
        for reference in found {
            checked += 1;
            if reference.starts_with("urn:uuid:") {
                assert!(
                    local.contains(&reference),
                    "{}: {reference} is not an entry of the bundle",
                    bundle.name
                );
            } else {
                assert!(
                    directory.contains(&reference),
                    "{}: {reference} is neither local nor a directory identifier",
                    bundle.name
                );
            }
        }
    }
    assert!(checked > 10_000, "only {checked} references checked");
}

#[test]
fn directory_bundles_reference_each_other_only_conditionally() {
    let directory = directory_targets();
    for bundle in &population()[..2] {
        let local = local_targets(&bundle.bundle);
        let mut found = Vec::new();
        references_in(&bundle.bundle, &mut found);
        for reference in found {
            assert!(
                local.contains(&reference) || directory.contains(&reference),
                "{}: dangling {reference}",
                bundle.name
            );
        }
    }
}

#[test]
fn everything_about_a_patient_points_at_a_patient_of_the_same_household() {
    for bundle in household_bundles() {
        let patients: BTreeSet<String> = bundle.bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["resource"]["resourceType"] == "Patient")
            .map(|entry| entry["fullUrl"].as_str().unwrap().to_owned())
            .collect();
        for resource in resources(&bundle.bundle) {
            let kind = resource["resourceType"].as_str().unwrap();
            let owner = match kind {
                "Patient" | "Group" => continue,
                "Immunization" | "RelatedPerson" => &resource["patient"],
                "Appointment" => &resource["participant"][0]["actor"],
                _ => &resource["subject"],
            };
            let reference = owner["reference"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} without a patient: {resource}"));
            assert!(patients.contains(reference), "{kind} points at {reference}");
        }
    }
}
