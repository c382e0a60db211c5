//! The shape of the bundles: file names, transaction entries, ids and identifiers.

use std::collections::BTreeSet;

use rapport_synth::{generate, DemoConfig};

use crate::{all_of_type, default_config, population, resources};

#[test]
fn the_directory_comes_first_then_numbered_households() {
    let names: Vec<&str> = population()
        .iter()
        .map(|bundle| bundle.name.as_str())
        .collect();
    assert_eq!(names[0], "organizations.json");
    assert_eq!(names[1], "practitioners.json");
    for (index, name) in names[2..].iter().enumerate() {
        assert_eq!(*name, format!("household-{:06}.json", index + 1));
    }
}

#[test]
fn the_population_has_exactly_the_requested_number_of_patients() {
    assert_eq!(all_of_type("Patient").count(), 200);
    for patients in [0, 1, 2, 7, 31] {
        let config = DemoConfig {
            patients,
            ..default_config()
        };
        let count: usize = generate(&config)
            .map(|bundle| {
                resources(&bundle.bundle)
                    .filter(|resource| resource["resourceType"] == "Patient")
                    .count()
            })
            .sum();
        assert_eq!(count, patients, "patients requested: {patients}");
    }
}

#[test]
fn every_entry_is_a_post_of_a_resource_whose_id_is_its_urn_uuid() {
    let mut full_urls = BTreeSet::new();
    for bundle in population() {
        assert_eq!(bundle.bundle["resourceType"], "Bundle", "{}", bundle.name);
        assert_eq!(bundle.bundle["type"], "transaction", "{}", bundle.name);
        for entry in bundle.bundle["entry"].as_array().unwrap() {
            let resource = &entry["resource"];
            let resource_type = resource["resourceType"]
                .as_str()
                .unwrap_or_else(|| panic!("no resourceType in {}: {resource}", bundle.name));
            let id = resource["id"].as_str().expect("every resource has an id");
            uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("id {id} is not a uuid"));
            assert_eq!(entry["fullUrl"], format!("urn:uuid:{id}"));
            assert_eq!(entry["request"]["method"], "POST");
            assert_eq!(entry["request"]["url"], resource_type);
            assert!(full_urls.insert(id.to_owned()), "{id} is used twice");
        }
    }
}

#[test]
fn directory_resources_and_patients_are_created_only_if_their_identifier_is_new() {
    for bundle in population() {
        for entry in bundle.bundle["entry"].as_array().unwrap() {
            let resource = &entry["resource"];
            let kind = resource["resourceType"].as_str().unwrap();
            if ![
                "Organization",
                "Practitioner",
                "PractitionerRole",
                "Patient",
            ]
            .contains(&kind)
            {
                continue;
            }
            let identifier = &resource["identifier"][0];
            let expected = format!(
                "identifier={}|{}",
                identifier["system"].as_str().unwrap(),
                identifier["value"].as_str().unwrap()
            );
            assert_eq!(
                entry["request"]["ifNoneExist"], expected,
                "{kind} {}",
                resource["id"]
            );
        }
    }
}

#[test]
fn patients_have_unique_mrns_with_the_mr_type() {
    let mut mrns = BTreeSet::new();
    for patient in all_of_type("Patient") {
        let identifier = &patient["identifier"][0];
        assert_eq!(
            identifier["system"],
            "http://rapport.example.org/fhir/sid/mrn"
        );
        assert_eq!(
            identifier["type"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0203"
        );
        assert_eq!(identifier["type"]["coding"][0]["code"], "MR");
        let value = identifier["value"].as_str().unwrap();
        assert!(
            value.len() == 10
                && value.starts_with("MRN")
                && value[3..].chars().all(|c| c.is_ascii_digit()),
            "MRN {value} is not MRN + 7 digits"
        );
        assert!(mrns.insert(value.to_owned()), "MRN {value} is used twice");
        assert!(patient["birthDate"].is_string());
        assert!(patient["gender"].is_string());
        assert!(patient["generalPractitioner"]
            .as_array()
            .is_some_and(|gps| !gps.is_empty()));
        assert!(
            patient["contact"]
                .as_array()
                .is_some_and(|contacts| !contacts.is_empty()),
            "{patient}"
        );
    }
}

#[test]
fn practitioners_have_ten_digit_npis_and_roles_with_snomed_codes() {
    let practitioners: Vec<_> = all_of_type("Practitioner").collect();
    assert!(practitioners.len() >= 10);
    for practitioner in &practitioners {
        let identifier = &practitioner["identifier"][0];
        assert_eq!(identifier["system"], "http://hl7.org/fhir/sid/us-npi");
        let npi = identifier["value"].as_str().unwrap();
        assert!(
            npi.len() == 10 && npi.chars().all(|c| c.is_ascii_digit()),
            "NPI {npi}"
        );
    }
    for role in all_of_type("PractitionerRole") {
        assert_eq!(
            role["code"][0]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(
            role["specialty"][0]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert!(role["code"][0]["coding"][0]["display"].is_string());
    }
    let organizations: Vec<_> = all_of_type("Organization").collect();
    assert!(organizations
        .iter()
        .all(|o| o["identifier"][0]["system"] == "http://rapport.example.org/fhir/sid/org"));
    assert!(
        organizations.iter().any(|o| o["partOf"].is_object()),
        "the hospital has departments"
    );
}

#[test]
fn every_household_is_a_group_of_its_patients() {
    for bundle in crate::household_bundles() {
        let groups: Vec<_> = resources(&bundle.bundle)
            .filter(|r| r["resourceType"] == "Group")
            .collect();
        assert_eq!(groups.len(), 1, "{}", bundle.name);
        let group = groups[0];
        assert_eq!(group["type"], "person");
        assert_eq!(group["actual"], true);
        let patients = resources(&bundle.bundle)
            .filter(|r| r["resourceType"] == "Patient")
            .count();
        assert!(
            (1..=5).contains(&patients),
            "{} has {patients} patients",
            bundle.name
        );
        assert_eq!(group["member"].as_array().unwrap().len(), patients);
    }
}

#[test]
fn every_generated_resource_is_valid_against_the_core_definitions() {
    // The demo goes through the same write path as real data; it must pass validation on write.
    let mut problems = Vec::new();
    let mut checked = 0;
    for bundle in crate::population() {
        for (i, entry) in bundle.bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(resource) = entry.get("resource") else {
                continue;
            };
            checked += 1;
            for issue in rapport_fhir::validate::validate(resource) {
                problems.push(format!(
                    "{} entry[{i}] {}: {}",
                    bundle.name, issue.expression, issue.message
                ));
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
