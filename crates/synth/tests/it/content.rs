//! The default population has the situations the console and alerts need to show.

use chrono::{Days, NaiveDate};
use serde_json::Value;

use crate::{all_of_type, code_of, today};

fn day_of(value: &Value) -> NaiveDate {
    let text = value.as_str().expect("a date or dateTime");
    text[..10].parse().expect("starts with YYYY-MM-DD")
}

#[test]
fn about_a_tenth_of_past_appointments_are_no_shows() {
    let past: Vec<&Value> = all_of_type("Appointment")
        .filter(|a| day_of(&a["start"]) < today())
        .collect();
    let no_shows = past.iter().filter(|a| a["status"] == "noshow").count();
    let share = no_shows as f64 / past.len() as f64;
    assert!(
        (0.05..0.16).contains(&share),
        "{no_shows} no-shows of {} past appointments",
        past.len()
    );
    assert!(past
        .iter()
        .all(|a| ["fulfilled", "noshow", "cancelled"].contains(&a["status"].as_str().unwrap())));
}

#[test]
fn some_appointments_are_booked_for_tomorrow_and_none_in_the_past() {
    let tomorrow = today() + Days::new(1);
    let booked: Vec<&Value> = all_of_type("Appointment")
        .filter(|a| a["status"] == "booked")
        .collect();
    assert!(booked.iter().all(|a| day_of(&a["start"]) > today()));
    let for_tomorrow = booked
        .iter()
        .filter(|a| day_of(&a["start"]) == tomorrow)
        .count();
    assert!(for_tomorrow >= 2, "{for_tomorrow} appointments tomorrow");
}

/// The last fill of each active prescription: when does it run out?
fn days_until_run_out() -> Vec<i64> {
    let active: Vec<&Value> = all_of_type("MedicationRequest")
        .filter(|r| r["status"] == "active")
        .collect();
    let dispenses: Vec<&Value> = all_of_type("MedicationDispense").collect();
    active
        .iter()
        .filter_map(|request| {
            let subject = &request["subject"]["reference"];
            let drug = code_of(&request["medicationCodeableConcept"]);
            dispenses
                .iter()
                .filter(|d| {
                    &d["subject"]["reference"] == subject
                        && code_of(&d["medicationCodeableConcept"]) == drug
                })
                .map(|d| {
                    let supply = d["daysSupply"]["value"].as_i64().unwrap();
                    (day_of(&d["whenHandedOver"]) + Days::new(supply as u64) - today()).num_days()
                })
                .max()
        })
        .collect()
}

#[test]
fn some_supplies_run_out_within_a_week_and_a_few_have_already() {
    let remaining = days_until_run_out();
    let soon = remaining
        .iter()
        .filter(|days| (0..=7).contains(*days))
        .count();
    let overdue = remaining.iter().filter(|days| **days < 0).count();
    assert!(
        soon >= 5,
        "{soon} of {} active prescriptions run out within 7 days",
        remaining.len()
    );
    assert!(overdue >= 2, "only {overdue} overdue");
    assert!(
        overdue * 5 < remaining.len(),
        "{overdue} of {} overdue is too many",
        remaining.len()
    );
}

#[test]
fn dispensing_records_carry_quantity_supply_and_hand_over_time() {
    for dispense in all_of_type("MedicationDispense") {
        assert!(dispense["quantity"]["value"].is_number());
        assert_eq!(dispense["daysSupply"]["code"], "d");
        assert!(dispense["whenHandedOver"].is_string());
        assert!(day_of(&dispense["whenHandedOver"]) <= today());
    }
    for request in all_of_type("MedicationRequest") {
        let supply = &request["dispenseRequest"]["expectedSupplyDuration"];
        assert_eq!(supply["unit"], "days");
        assert_eq!(supply["system"], "http://unitsofmeasure.org");
        assert_eq!(supply["code"], "d");
        assert_eq!(
            request["medicationCodeableConcept"]["coding"][0]["system"],
            "http://www.nlm.nih.gov/research/umls/rxnorm"
        );
    }
    assert!(all_of_type("MedicationRequest").any(|r| r["status"] == "stopped"));
}

#[test]
fn labs_include_abnormal_and_a_few_critical_results() {
    let labs: Vec<&Value> = all_of_type("Observation")
        .filter(|o| code_of(&o["category"][0]) == "laboratory")
        .collect();
    let interpretation = |o: &&Value| code_of(&o["interpretation"][0]).to_owned();
    let abnormal = labs
        .iter()
        .filter(|o| ["H", "L", "HH", "LL"].contains(&interpretation(o).as_str()))
        .count();
    let critical = labs
        .iter()
        .filter(|o| ["HH", "LL"].contains(&interpretation(o).as_str()))
        .count();
    assert!(abnormal >= 20, "{abnormal} abnormal labs");
    assert!(critical >= 1, "no critical labs");
    assert!(labs.iter().all(|o| o["referenceRange"].is_array()));
    assert!(all_of_type("DiagnosticReport").any(|r| r["result"]
        .as_array()
        .is_some_and(|results| results.len() >= 4)));
}

#[test]
fn decimals_keep_the_precision_they_were_written_with() {
    let creatinine = all_of_type("Observation")
        .find(|o| code_of(&o["code"]) == "2160-0")
        .expect("some creatinine results");
    let text = serde_json::to_string(&creatinine["valueQuantity"]["value"]).unwrap();
    let decimals = text.split('.').nth(1).map_or(0, str::len);
    assert_eq!(decimals, 2, "creatinine written as {text}");
}

#[test]
fn vital_signs_use_loinc_and_ucum() {
    let mut seen = std::collections::BTreeSet::new();
    for vital in all_of_type("Observation").filter(|o| code_of(&o["category"][0]) == "vital-signs")
    {
        assert_eq!(vital["code"]["coding"][0]["system"], "http://loinc.org");
        seen.insert(code_of(&vital["code"]).to_owned());
        let quantity = if vital["component"].is_array() {
            &vital["component"][0]["valueQuantity"]
        } else {
            &vital["valueQuantity"]
        };
        assert_eq!(quantity["system"], "http://unitsofmeasure.org", "{vital}");
    }
    for code in [
        "85354-9", "8867-4", "29463-7", "8302-2", "39156-5", "8310-5", "59408-5",
    ] {
        assert!(seen.contains(code), "no {code} vital sign");
    }
}

#[test]
fn some_patients_were_discharged_from_hospital_in_the_last_week() {
    let recent = all_of_type("Encounter")
        .filter(|e| code_of_class(e) == "IMP")
        .filter(|e| {
            let discharged = day_of(&e["period"]["end"]);
            discharged < today() && discharged >= today() - Days::new(7)
        })
        .count();
    assert!(recent >= 1, "no recent discharges");
}

fn code_of_class(encounter: &Value) -> &str {
    encounter["class"]["code"].as_str().unwrap_or_default()
}

#[test]
fn names_include_accents_and_compound_surnames() {
    let names: Vec<String> = all_of_type("Patient")
        .map(|p| {
            let name = &p["name"][0];
            let given: Vec<&str> = name["given"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect();
            format!("{} {}", given.join(" "), name["family"].as_str().unwrap())
        })
        .collect();
    let accented = names.iter().filter(|name| !name.is_ascii()).count();
    assert!(accented >= 10, "{accented} accented names: {names:?}");
    let compound = all_of_type("Patient")
        .filter(|p| {
            p["name"][0]["family"]
                .as_str()
                .unwrap()
                .contains([' ', '-'])
        })
        .count();
    assert!(compound >= 3, "{compound} compound surnames");
}

#[test]
fn notes_are_base64_plain_text_mentioning_the_visit() {
    let notes: Vec<&Value> = all_of_type("DocumentReference").collect();
    assert!(notes.len() >= 100);
    for note in notes {
        assert_eq!(code_of(&note["type"]), "11506-3");
        let attachment = &note["content"][0]["attachment"];
        assert_eq!(attachment["contentType"], "text/plain");
        let text = decode_base64(attachment["data"].as_str().unwrap());
        let sentences = text.matches(". ").count() + 1;
        assert!((2..=4).contains(&sentences), "{text}");
    }
}

fn decode_base64(data: &str) -> String {
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for character in data.chars().filter(|c| *c != '=') {
        bits = (bits << 6) | alphabet.find(character).expect("base64 alphabet") as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(bytes).expect("notes are UTF-8")
}

#[test]
fn children_have_fewer_resources_than_adults() {
    let mut adults = Vec::new();
    let mut children = Vec::new();
    for bundle in crate::household_bundles() {
        let all: Vec<&Value> = crate::resources(&bundle.bundle).collect();
        for patient in all.iter().filter(|r| r["resourceType"] == "Patient") {
            let reference = format!("urn:uuid:{}", patient["id"].as_str().unwrap());
            let owned = all
                .iter()
                .filter(|r| {
                    r["subject"]["reference"] == reference.as_str()
                        || r["patient"]["reference"] == reference.as_str()
                        || r["participant"][0]["actor"]["reference"] == reference.as_str()
                })
                .count();
            let age = (today() - day_of(&patient["birthDate"])).num_days() / 365;
            if age >= 18 {
                adults.push(owned)
            } else {
                children.push(owned)
            }
        }
    }
    let mean = |counts: &[usize]| counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    let (adult_mean, child_mean) = (mean(&adults), mean(&children));
    assert!(
        (50.0..=150.0).contains(&adult_mean),
        "adults average {adult_mean:.1} resources"
    );
    assert!(
        child_mean < adult_mean,
        "children average {child_mean:.1}, adults {adult_mean:.1}"
    );
}

#[test]
fn immunisations_use_cvx_and_are_completed() {
    let vaccines: std::collections::BTreeSet<&str> = all_of_type("Immunization")
        .map(|i| code_of(&i["vaccineCode"]))
        .collect();
    for cvx in ["140", "208", "115", "03"] {
        assert!(vaccines.contains(cvx), "no CVX {cvx}");
    }
    assert!(all_of_type("Immunization").all(|i| i["status"] == "completed"));
}
