//! The mapping's values that matter, checked by name on fixtures and small messages; hard
//! cases from `shared/hard-cases.md` cite their ids.

use rapport_hl7::{parse_bytes, split_messages, to_fhir, ErrorCode, MapOptions, Mapped};
use serde_json::Value;

use crate::map_support::{
    entries, entry_of, expect_bundle, map_file, map_text, map_text_with, message_key, one,
    resources, validation_problems,
};
use crate::support::{cr, fixtures_dir};

/// The one message of a fixture, mapped.
fn fixture(name: &str) -> Option<Result<Mapped, rapport_hl7::MapError>> {
    let dir = fixtures_dir()?;
    let mut outcomes = map_file(&dir.join(name));
    assert_eq!(outcomes.len(), 1, "{name}");
    Some(outcomes.remove(0).expect("parses"))
}

fn fixture_bundle(name: &str) -> Option<Value> {
    let (bundle, _) = expect_bundle(fixture(name)?);
    assert!(validation_problems(&bundle).is_empty(), "{name}");
    Some(bundle)
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|&b| b != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(value(c)) << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn adt_a01_gives_the_patient_with_identifier_name_and_birth_date() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A01-01.hl7") else {
        return;
    };
    let patient = one(&bundle, "Patient");
    assert_eq!(
        patient["identifier"][0]["system"],
        "urn:rapport:hl7v2:authority:test1"
    );
    assert_eq!(patient["identifier"][0]["value"], "PATID1234");
    assert_eq!(patient["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(patient["identifier"][1]["value"], "123456789");
    assert_eq!(patient["name"][0]["family"], "EVERYMAN");
    assert_eq!(patient["name"][0]["given"][0], "ADAM");
    assert_eq!(patient["birthDate"], "1988-08-18");
    assert_eq!(patient["gender"], "male");
    assert_eq!(patient["maritalStatus"]["coding"][0]["code"], "M");
    let entry = entry_of(&bundle, patient);
    assert_eq!(entry["request"]["method"], "PUT");
    // Matched on any of its PID-3 identifiers (comma: any of them), so that a message naming
    // the patient by another of their numbers updates them instead of making a second patient.
    assert_eq!(
        entry["request"]["url"],
        "Patient?identifier=urn:rapport:hl7v2:authority:test1|PATID1234,urn:rapport:hl7v2:authority:USSSA|123456789"
    );
    // PD1-4 as a conditional reference to the Practitioner entry that the bundle carries.
    let gp = &patient["generalPractitioner"][0]["reference"];
    assert_eq!(
        gp,
        "Practitioner?identifier=urn:rapport:hl7v2:authority:TE|88"
    );
    assert!(entries(&bundle).iter().any(|e| &e["request"]["url"] == gp));
}

#[test]
fn adt_a01_gives_an_in_progress_encounter_with_class_period_and_participants() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A01-01.hl7") else {
        return;
    };
    let encounter = one(&bundle, "Encounter");
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(encounter["class"]["code"], "PRENC");
    assert_eq!(
        encounter["class"]["system"],
        "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    );
    assert_eq!(encounter["identifier"][0]["value"], "40007716");
    assert_eq!(encounter["period"]["start"], "2015-02-08T11:34:19+01:10");
    assert!(encounter["period"].get("end").is_none());
    let codes: Vec<&str> = encounter["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"][0]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ATND", "REF", "CON", "ADM"]);
    let patient_url = &entry_of(&bundle, one(&bundle, "Patient"))["fullUrl"];
    assert_eq!(&encounter["subject"]["reference"], patient_url);
    let team = one(&bundle, "CareTeam");
    assert_eq!(team["participant"].as_array().unwrap().len(), 5);
}

#[test]
fn adt_a01_next_of_kin_becomes_a_related_person_with_its_relationship_codes() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A01-01.hl7") else {
        return;
    };
    let person = one(&bundle, "RelatedPerson");
    // NK1-3 EMC (emergency contact) → v2-0131 C; NK1-7 O → v2-0131 O.
    let relationship = &person["relationship"][0]["coding"][0];
    assert_eq!(
        relationship["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0131"
    );
    assert_eq!(relationship["code"], "C");
    assert_eq!(person["relationship"][1]["coding"][0]["code"], "O");
    assert_eq!(person["name"][0]["family"], "Evan");
    let allergy = one(&bundle, "AllergyIntolerance");
    assert_eq!(allergy["code"]["coding"][0]["code"], "P");
    assert_eq!(allergy["criticality"], "low");
    assert_eq!(allergy["category"][0], "environment");
    let condition = one(&bundle, "Condition");
    assert_eq!(
        condition["code"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(condition["code"]["coding"][0]["code"], "422504002");
    let coverage = one(&bundle, "Coverage");
    assert_eq!(coverage["class"][0]["value"], "BAV");
    assert_eq!(
        coverage["payor"][0]["display"],
        "Blue Cross Blue Shield of Texas"
    );
}

#[test]
fn adt_a03_finishes_the_encounter_with_its_discharge_time() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A03-01.hl7") else {
        return;
    };
    let encounter = one(&bundle, "Encounter");
    assert_eq!(encounter["status"], "finished");
    assert!(encounter["period"]["end"].is_string(), "{encounter}");
}

#[test]
fn adt_a11_cancels_the_admission() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A11-01.hl7") else {
        return;
    };
    assert_eq!(one(&bundle, "Encounter")["status"], "cancelled");
}

#[test]
fn adt_a13_reopens_the_encounter_without_an_end() {
    let message = cr(&[
        "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501090000||ADT^A13^ADT_A01|CTRL0041|P|2.5",
        "EVN|A13|20230501090000",
        "PID|1||000123^^^HOSP01^MR||TEST^PATIENT||19700101|M",
        "PV1|1|I|WARD1^1^A||||||||||||||||V100^^^HOSP01^VN|||||||||||||||||||||||||20230401080000|20230430100000",
    ]);
    let (bundle, _) = expect_bundle(map_text(&message));
    let encounter = one(&bundle, "Encounter");
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(encounter["class"]["code"], "IMP");
    assert_eq!(encounter["period"]["start"], "2023-04-01T08:00:00+00:00");
    assert!(encounter["period"].get("end").is_none());
}

#[test]
fn a28_and_a31_write_the_person_without_an_encounter() {
    for name in [
        "fhir-converter/ADT-A28-01.hl7",
        "fhir-converter/ADT-A31-01.hl7",
    ] {
        let Some(bundle) = fixture_bundle(name) else {
            return;
        };
        assert!(resources(&bundle, "Encounter").is_empty(), "{name}");
        assert_eq!(resources(&bundle, "Patient").len(), 1, "{name}");
    }
}

#[test]
fn adt_a40_is_a_merge_of_mrg_1_into_pid_3() {
    let Some(outcome) = fixture("fhir-converter/ADT-A40-01.hl7") else {
        return;
    };
    let Ok(Mapped::Merge {
        survivor,
        loser,
        bundle,
        warnings,
    }) = outcome
    else {
        panic!("expected a merge: {outcome:?}")
    };
    assert_eq!(survivor.system, "urn:rapport:hl7v2:authority:BCBS");
    assert_eq!(survivor.value, "12345");
    assert_eq!(loser.system, "urn:rapport:hl7v2:authority:BCBS");
    assert_eq!(loser.value, "56789");
    assert!(warnings.is_empty());
    assert_eq!(one(&bundle, "Patient")["identifier"][0]["value"], "12345");
    assert!(validation_problems(&bundle).is_empty());
}

#[test]
fn adt_a40_with_two_pairs_is_refused_whole_rather_than_applied_in_part() {
    let Some(outcome) = fixture("fhir-converter/ADT-A40-02.hl7") else {
        return;
    };
    let Err(e) = outcome else {
        panic!("expected an error: {outcome:?}")
    };
    assert_eq!(e.location(), "MRG^2^1");
    assert!(e.message.contains("one merge per message"), "{}", e.message);
    assert!(!e.message.contains("12345") && !e.message.contains("56789"));
}

#[test]
fn b10_a_self_merge_is_error_205_at_mrg_1_1() {
    let message = cr(&[
        "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501090000||ADT^A40^ADT_A39|CTRL0021|P|2.5",
        "EVN||20230501090000",
        "PID|||000123^^^HOSP01^MR||TEST^PATIENT^A||19700101|M",
        "MRG|000123^^^HOSP01^MR",
    ]);
    let error = map_text(&message).unwrap_err();
    assert_eq!(error.code, ErrorCode::DuplicateKeyIdentifier);
    assert_eq!(error.location(), "MRG^1^1");
    assert!(!error.message.contains("000123"));
}

#[test]
fn b10_a_merge_and_its_reversed_replay_name_the_same_pair_the_other_way_round() {
    let merge = |pid: &str, mrg: &str, control: &str| {
        let message = cr(&[
            &format!(
                "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501091000||ADT^A40^ADT_A39|{control}|P|2.5"
            ),
            "EVN||20230501091000",
            &format!("PID|||{pid}^^^HOSP01^MR||TEST^PATIENT^B||19700101|M"),
            &format!("MRG|{mrg}^^^HOSP01^MR"),
        ]);
        match map_text(&message).unwrap() {
            Mapped::Merge {
                survivor, loser, ..
            } => (survivor.value, loser.value),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        merge("000200", "000201", "CTRL0022"),
        ("000200".into(), "000201".into())
    );
    // The reversed replay maps as written; refusing it is the store's call (it knows the
    // first merge happened).
    assert_eq!(
        merge("000201", "000200", "CTRL0023"),
        ("000201".into(), "000200".into())
    );
}

#[test]
fn b10_a_later_update_listing_both_identifiers_keeps_both_on_the_patient() {
    let message = cr(&[
        "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230502080000||ADT^A08^ADT_A01|CTRL0024|P|2.5",
        "PID|||000200^^^HOSP01^MR~000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M|||1 TEST ROAD^^TESTTOWN",
    ]);
    let outcome = map_text(&message).unwrap();
    let Mapped::Bundle {
        bundle, patient, ..
    } = outcome
    else {
        panic!()
    };
    assert_eq!(patient.unwrap().value, "000200");
    let ids = &one(&bundle, "Patient")["identifier"];
    assert_eq!(ids.as_array().unwrap().len(), 2);
    assert_eq!(ids[1]["value"], "000201");
}

#[test]
fn b39_the_same_mrn_from_two_facilities_is_two_identifier_systems() {
    let a04 = |facility: &str, authority: &str, control: &str| {
        cr(&[
            &format!("MSH|^~\\&|ADT|{facility}|PRM|FAC01|20230601080000||ADT^A04^ADT_A01|{control}|P|2.5"),
            &format!("PID|1||000123^^^{authority}^MR||TEST^ONE||19600101|M"),
        ])
    };
    let identity = |text: &str, options: &MapOptions| match map_text_with(text, options).unwrap() {
        Mapped::Bundle { patient, .. } => patient.unwrap(),
        other => panic!("{other:?}"),
    };
    let defaults = MapOptions::default();
    let a = identity(&a04("HOSP_A", "HOSP_A", "CTRL0030"), &defaults);
    let b = identity(&a04("HOSP_B", "HOSP_B", "CTRL0031"), &defaults);
    assert_eq!(a.value, b.value);
    assert_ne!(a.system, b.system);
    assert_eq!(a.system, "urn:rapport:hl7v2:authority:HOSP_A");
    // No assigning authority: the caller's per-sender default.
    let per_sender = MapOptions {
        default_identifier_system: "urn:rapport:hl7v2:HOSP_C:mrn".into(),
        ..MapOptions::default()
    };
    let c = identity(&a04("HOSP_C", "", "CTRL0032"), &per_sender);
    assert_eq!(c.system, "urn:rapport:hl7v2:HOSP_C:mrn");
    assert_eq!(
        identity(&a04("HOSP_C", "", "CTRL0032"), &defaults).system,
        "urn:rapport:hl7v2:mrn"
    );
}

#[test]
fn b45_a_reused_control_id_for_another_patient_maps_to_that_patients_resources() {
    let oru = |time: &str, mrn: &str, accession: &str, value: &str| {
        cr(&[
            &format!("MSH|^~\\&|LAB|LAB01|PRM|FAC01|{time}||ORU^R01^ORU_R01|CTRL0100|P|2.5.1"),
            &format!("PID|1||{mrn}^^^LAB01^MR||TEST^PATIENT||19700101|M"),
            &format!("OBR|1||{accession}|GLU^Glucose^L|||20230701093000"),
            &format!("OBX|1|NM|2345-7^Glucose^LN||{value}|mg/dL|||||F"),
        ])
    };
    let first = oru("20230701100000", "000123", "ACC000200", "101");
    let again = first.clone();
    let other = oru("20230701100500", "000124", "ACC000201", "88");
    let (b1, _) = expect_bundle(map_text(&first));
    let (b2, _) = expect_bundle(map_text(&again));
    let (b3, _) = expect_bundle(map_text(&other));
    assert_eq!(
        b1.to_string(),
        b2.to_string(),
        "a retransmission maps identically"
    );
    let urls = |b: &Value| -> Vec<String> {
        entries(b)
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(urls(&b1).iter().all(|u| !urls(&b3).contains(u)));
    assert_eq!(one(&b3, "Patient")["identifier"][0]["value"], "000124");
    assert_eq!(
        entry_of(&b3, one(&b3, "DiagnosticReport"))["request"]["url"],
        "DiagnosticReport?identifier=urn:rapport:hl7v2:LAB01:filler-order|ACC000201"
    );
    let glucose = one(&b1, "Observation");
    assert_eq!(glucose["valueQuantity"]["value"].to_string(), "101");
    assert_eq!(glucose["valueQuantity"]["code"], "mg/dL");
}

#[test]
fn b05_empty_components_keep_positions_in_the_mapped_encounter() {
    let message = cr(&[
        "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20180723115125||ADT^A08^ADT_A01|CTRL0011|P|2.3",
        "PID|1||000123^^^HOSP01^MR||TEST^PATIENT||19700101|M",
        "PV1|1|O|WARD1^^^FAC01^^^^^^^DEPT01|3|||000999^DOCTOR^TEST^^^^^^PROV^^^^ID||||||||||||||000456|SELF",
    ]);
    let (bundle, warnings) = expect_bundle(map_text(&message));
    let encounter = one(&bundle, "Encounter");
    assert_eq!(
        encounter["location"][0]["location"]["display"],
        "WARD1, FAC01"
    );
    // 000456 is PV1-21 (contract code), not PV1-19: the visit has no number here.
    assert!(encounter.get("identifier").is_none());
    assert_eq!(
        warnings,
        ["PV1^1^19: no visit number; the encounter cannot be matched by later messages"]
    );
    let doctor = one(&bundle, "Practitioner");
    assert_eq!(
        doctor["identifier"][0]["system"],
        "urn:rapport:hl7v2:authority:PROV"
    );
    assert_eq!(doctor["identifier"][0]["value"], "000999");
    assert_eq!(doctor["name"][0]["family"], "DOCTOR");
}

#[test]
fn b05_a_reference_range_with_an_empty_first_component_is_kept_as_text() {
    let message = cr(&[
        "MSH|^~\\&|LAB|LAB01|PRM|FAC01|20180723115125||ORU^R01|CTRL0012|P|2.3",
        "PID|1||000123^^^HOSP01^MR||TEST^PATIENT||19700101|M",
        "ORC|RO|2001290459^CS|||A|F|^^^20171102^^R",
        "OBR|1|2001290459^CS||078R^BENZODIAZEPINES^L",
        "OBX|4|ST|078R^BENZODIAZEPINES^L|1|negative|ng/mL|^CUT-OFF 300 ng/mL|N||F",
    ]);
    let (bundle, _) = expect_bundle(map_text(&message));
    let observation = one(&bundle, "Observation");
    assert_eq!(
        observation["referenceRange"][0]["text"],
        "CUT-OFF 300 ng/mL"
    );
    assert_eq!(observation["valueString"], "negative");
    assert_eq!(observation["interpretation"][0]["coding"][0]["code"], "N");
}

#[test]
fn oru_r01_01_gives_one_report_with_its_observations() {
    let Some(bundle) = fixture_bundle("fhir-converter/ORU-R01-01.hl7") else {
        return;
    };
    assert_eq!(resources(&bundle, "Observation").len(), 4);
    let report = one(&bundle, "DiagnosticReport");
    assert_eq!(report["status"], "final");
    assert_eq!(report["result"].as_array().unwrap().len(), 3);
    assert_eq!(report["identifier"][0]["value"], "986");
}

#[test]
fn a_cbc_result_has_its_ucum_quantity_reference_range_interpretation_and_status() {
    let Some(bundle) = fixture_bundle("fhir-converter/LRI_2.0-NG_CBC_Typ_Message.hl7") else {
        return;
    };
    let observations = resources(&bundle, "Observation");
    assert_eq!(observations.len(), 28);
    let hemoglobin = observations
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "718-7")
        .expect("hemoglobin");
    let q = &hemoglobin["valueQuantity"];
    assert_eq!(q["value"].to_string(), "12.5");
    assert_eq!(q["system"], "http://unitsofmeasure.org");
    assert_eq!(q["code"], "g/mL");
    assert_eq!(
        hemoglobin["referenceRange"][0]["low"]["value"].to_string(),
        "13"
    );
    assert_eq!(
        hemoglobin["referenceRange"][0]["high"]["value"].to_string(),
        "18"
    );
    let interpretation = &hemoglobin["interpretation"][0]["coding"][0];
    assert_eq!(interpretation["code"], "L");
    assert_eq!(
        interpretation["system"],
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    );
    assert_eq!(hemoglobin["status"], "final");
    assert_eq!(hemoglobin["effectiveDateTime"], "2011-01-03T14:34:28-08:00");
}

#[test]
fn micromoles_per_litre_in_cdc_008_become_the_ucum_code_umol_per_l() {
    let Some(bundle) =
        fixture_bundle("cdc-trusted-intermediary/008_ORU_R01_micro_character_encoding.hl7")
    else {
        return;
    };
    let q = &one(&bundle, "Observation")["valueQuantity"];
    assert_eq!(q["value"].to_string(), "0.5");
    assert_eq!(q["unit"], "µmol/L");
    assert_eq!(q["code"], "umol/L");
    assert_eq!(q["system"], "http://unitsofmeasure.org");
}

fn oru_with(obx: &[&str]) -> String {
    let mut segments = vec![
        "MSH|^~\\&|LAB|LAB01|PRM|FAC01|20230701100000||ORU^R01^ORU_R01|CTRL0200|P|2.5.1",
        "PID|1||000123^^^LAB01^MR||TEST^PATIENT||19700101|M",
        "OBR|1||ACC000300|GLU^Glucose^L|||20230701093000|||||||||||||||20230701110000|||C",
    ];
    segments.extend_from_slice(obx);
    cr(&segments)
}

#[test]
fn value_types_become_the_matching_fhir_values() {
    let message = oru_with(&[
        "OBX|1|SN|1|1|>^10|mmol/L|||||F",
        "OBX|2|SN|2|1|^1^-^5|mmol/L|||||F",
        "OBX|3|SN|3|1|^1^:^128||||||F",
        "OBX|4|CWE|4|1|260385009^Negative^SCT||||||F",
        "OBX|5|FT|5|1|line one\\.br\\line two||||||F",
        "OBX|6|DT|6|1|20230630||||||F",
        "OBX|7|NM|7|1|see note|mg/dL|||||C",
        "OBX|8|NM|8|1|4.2|furlongs|3.5-5.0|N|||D",
        "NTE|1||checked twice",
        "OBX|9|TM|9|1|1230||||||X",
    ]);
    let (bundle, warnings) = expect_bundle(map_text(&message));
    assert!(
        validation_problems(&bundle).is_empty(),
        "{:?}",
        validation_problems(&bundle)
    );
    let obs = resources(&bundle, "Observation");
    assert_eq!(obs[0]["valueQuantity"]["comparator"], ">");
    assert_eq!(obs[0]["valueQuantity"]["code"], "mmol/L");
    assert_eq!(obs[1]["valueRange"]["low"]["value"].to_string(), "1");
    assert_eq!(obs[1]["valueRange"]["high"]["value"].to_string(), "5");
    assert_eq!(
        obs[2]["valueRatio"]["denominator"]["value"].to_string(),
        "128"
    );
    assert_eq!(
        obs[3]["valueCodeableConcept"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(obs[4]["valueString"], "line one\nline two");
    assert_eq!(obs[5]["valueDateTime"], "2023-06-30");
    assert_eq!(obs[6]["valueString"], "see note");
    assert_eq!(obs[6]["status"], "corrected");
    assert_eq!(obs[7]["valueQuantity"]["unit"], "furlongs");
    assert!(obs[7]["valueQuantity"].get("system").is_none());
    assert_eq!(
        obs[7]["referenceRange"][0]["low"]["value"].to_string(),
        "3.5"
    );
    assert_eq!(
        obs[7]["referenceRange"][0]["high"]["value"].to_string(),
        "5.0"
    );
    assert_eq!(obs[7]["status"], "entered-in-error");
    assert_eq!(obs[7]["note"][0]["text"], "checked twice");
    assert_eq!(obs[8]["valueTime"], "12:30:00");
    assert_eq!(obs[8]["status"], "cancelled");
    assert_eq!(
        warnings,
        ["OBX^7^5: NM value is not a number, kept as text"]
    );
    let report = one(&bundle, "DiagnosticReport");
    assert_eq!(report["status"], "corrected");
    assert_eq!(report["issued"], "2023-07-01T11:00:00+00:00");
}

#[test]
fn a_corrected_result_keeps_the_identifier_of_the_original() {
    let original = oru_with(&["OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F"]);
    let corrected = original
        .replace("CTRL0200", "CTRL0201")
        .replace("||101|mg/dL|||||F", "||110|mg/dL|||||C");
    let (a, _) = expect_bundle(map_text(&original));
    let (b, _) = expect_bundle(map_text(&corrected));
    let url =
        |bundle: &Value| entry_of(bundle, one(bundle, "Observation"))["request"]["url"].clone();
    assert_eq!(url(&a), url(&b));
    assert_eq!(one(&b, "Observation")["status"], "corrected");
    assert_ne!(
        entry_of(&a, one(&a, "Observation"))["fullUrl"],
        entry_of(&b, one(&b, "Observation"))["fullUrl"]
    );
}

#[test]
fn an_embedded_5_mb_pdf_becomes_the_reports_presented_form() {
    let pdf: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let data = {
        // Base64 of the bytes, via the FHIR side's expectation: decode it back below.
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in pdf.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                s.push(if i <= c.len() {
                    T[((n >> (18 - 6 * i)) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        s
    };
    let obx = format!("OBX|1|ED|PDF^Report^L||LAB^AP^PDF^Base64^{data}||||||F");
    let message = oru_with(&[&obx]);
    let (bundle, warnings) = expect_bundle(map_text(&message));
    assert!(warnings.is_empty(), "{warnings:?}");
    let form = &one(&bundle, "DiagnosticReport")["presentedForm"][0];
    assert_eq!(form["contentType"], "application/pdf");
    assert_eq!(form["data"].as_str().unwrap().len(), data.len());
    assert_eq!(
        decode_base64(form["data"].as_str().unwrap())[..1000],
        pdf[..1000]
    );
    assert!(resources(&bundle, "Observation").is_empty());
    assert!(validation_problems(&bundle).is_empty());
}

#[test]
fn siu_s12_books_the_appointment_at_its_start_time() {
    let Some(bundle) = fixture_bundle("fhir-converter/SIU-S12-01.hl7") else {
        return;
    };
    let appointment = one(&bundle, "Appointment");
    assert_eq!(appointment["status"], "booked");
    assert_eq!(appointment["start"], "2020-10-01T11:26:00+02:15");
    assert_eq!(appointment["identifier"][1]["value"], "36996");
    let actors: Vec<&Value> = appointment["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["actor"])
        .collect();
    assert_eq!(actors.len(), 3);
    assert_eq!(actors[1]["display"], "Robert C GE");
    assert_eq!(actors[2]["display"], "055, Room01, GH Clinic");
}

#[test]
fn siu_s15_cancels_the_same_appointment_that_s12_booked() {
    let (Some(booked), Some(cancelled)) = (
        fixture_bundle("fhir-converter/SIU-S12-01.hl7"),
        fixture_bundle("fhir-converter/SIU-S15-01.hl7"),
    ) else {
        return;
    };
    let url = |b: &Value| entry_of(b, one(b, "Appointment"))["request"]["url"].clone();
    assert_eq!(url(&booked), url(&cancelled));
    assert_eq!(one(&cancelled, "Appointment")["status"], "cancelled");
}

#[test]
fn siu_s26_marks_a_no_show_and_ais_gives_start_and_end() {
    let message = cr(&[
        "MSH|^~\\&|SCH|CLINIC1|PRM|FAC01|20230801100000||SIU^S26^SIU_S12|CTRL0300|P|2.5",
        "SCH||APPT77|||||CHECKUP^Check-up^L|ROUTINE",
        "PID|1||000123^^^CLINIC1^MR||TEST^PATIENT||19700101|M",
        "RGS|1",
        "AIS|1||99213^Office visit^CPT|20230801093000|||30|min",
        "AIP|1||D100^DOCTOR^TEST|ATT^Attending^L",
    ]);
    let (bundle, _) = expect_bundle(map_text(&message));
    assert!(validation_problems(&bundle).is_empty());
    let appointment = one(&bundle, "Appointment");
    assert_eq!(appointment["status"], "noshow");
    assert_eq!(appointment["start"], "2023-08-01T09:30:00+00:00");
    assert_eq!(appointment["end"], "2023-08-01T10:00:00+00:00");
    assert_eq!(appointment["minutesDuration"], 30);
    assert_eq!(
        appointment["serviceType"][0]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(appointment["reasonCode"][0]["coding"][0]["code"], "CHECKUP");
}

#[test]
fn rde_o11_gives_the_dispense_quantity_and_the_supply_duration() {
    let Some(bundle) = fixture_bundle("fhir-converter/RDE-O11-01.hl7") else {
        return;
    };
    let request = one(&bundle, "MedicationRequest");
    assert_eq!(request["status"], "active");
    assert_eq!(request["intent"], "order");
    assert_eq!(
        request["medicationCodeableConcept"]["coding"][0]["code"],
        "0143963401"
    );
    let dispense = &request["dispenseRequest"];
    assert_eq!(dispense["quantity"]["value"].to_string(), "3");
    assert_eq!(dispense["quantity"]["unit"], "Bag");
    assert_eq!(dispense["numberOfRepeatsAllowed"], 12);
    // Bags against mg/hr doses: no daily dose in dispense units, so TQ1-6 (17 hours).
    assert_eq!(
        dispense["expectedSupplyDuration"]["value"].to_string(),
        "17"
    );
    assert_eq!(dispense["expectedSupplyDuration"]["code"], "h");
    assert_eq!(request["authoredOn"], "2019-11-04T06:27:26+02:15");
}

#[test]
fn the_supply_duration_is_the_quantity_over_the_daily_dose() {
    let message = cr(&[
        "MSH|^~\\&|PHARM|PH01|PRM|FAC01|20230801100000||RDE^O11^RDE_O11|CTRL0400|P|2.5",
        "PID|1||000123^^^PH01^MR||TEST^PATIENT||19700101|M",
        "ORC|NW|RX1001^EHR|||||||20230801095000|||D100^DOCTOR^TEST",
        "RXE|^BID^^20230801|00093-7180^Metformin 500 mg tablet^NDC|1||TAB^tablet^L|||||60|TAB^tablet^L|3",
    ]);
    let (bundle, _) = expect_bundle(map_text(&message));
    assert!(validation_problems(&bundle).is_empty());
    let request = one(&bundle, "MedicationRequest");
    let supply = &request["dispenseRequest"]["expectedSupplyDuration"];
    assert_eq!(supply["value"].to_string(), "30");
    assert_eq!(supply["code"], "d");
    assert_eq!(
        request["dosageInstruction"][0]["timing"]["repeat"]["frequency"],
        2
    );
    assert_eq!(request["requester"]["display"], "TEST DOCTOR");
}

#[test]
fn rds_o13_gives_a_dispense_with_quantity_hand_over_time_and_days_supply() {
    let Some(bundle) = fixture_bundle("fhir-converter/RDS-O13-01.hl7") else {
        return;
    };
    let dispense = one(&bundle, "MedicationDispense");
    assert_eq!(dispense["status"], "completed");
    assert_eq!(dispense["quantity"]["value"].to_string(), "10");
    assert_eq!(dispense["quantity"]["unit"], "Tablet");
    assert_eq!(dispense["whenHandedOver"], "2020-12-12");
    // RXD-4 10 tablets / RXD-12 1 tablet a day.
    assert_eq!(dispense["daysSupply"]["value"].to_string(), "10");
    assert_eq!(dispense["daysSupply"]["code"], "d");
    let request = one(&bundle, "MedicationRequest");
    let request_url = &entry_of(&bundle, request)["request"]["url"];
    assert_eq!(
        &dispense["authorizingPrescription"][0]["reference"],
        request_url
    );
    // 6 tablets at 1 tablet three times a day.
    assert_eq!(
        request["dispenseRequest"]["expectedSupplyDuration"]["value"].to_string(),
        "2"
    );
}

#[test]
fn mdm_t02_gives_a_document_reference_with_the_note_text() {
    let Some(bundle) = fixture_bundle("fhir-converter/MDM-T02-03.hl7") else {
        return;
    };
    let document = one(&bundle, "DocumentReference");
    assert_eq!(document["status"], "current");
    assert_eq!(document["identifier"][0]["value"], "2RWRVAJ627408");
    assert_eq!(document["type"]["coding"][0]["code"], "DS");
    let attachment = &document["content"][0]["attachment"];
    assert!(attachment["contentType"]
        .as_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(decode_base64(attachment["data"].as_str().unwrap())).unwrap();
    assert!(text.starts_with("Toilet cylinder crackers"), "{text}");
    assert!(text.contains("\nColumnist draft inn"));
}

#[test]
fn vxu_gives_immunizations_with_cvx_codes_and_dates() {
    let Some(bundle) = fixture_bundle("fhir-converter/VXU.hl7") else {
        return;
    };
    let immunizations = resources(&bundle, "Immunization");
    assert_eq!(immunizations.len(), 3);
    let flu = immunizations[1];
    assert_eq!(
        flu["vaccineCode"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/cvx"
    );
    assert_eq!(flu["vaccineCode"]["coding"][0]["code"], "88");
    assert_eq!(flu["occurrenceDateTime"], "2014-10-12");
    assert_eq!(flu["status"], "completed");
    assert_eq!(immunizations[0]["lotNumber"], "315841");
    assert_eq!(immunizations[0]["doseQuantity"]["value"].to_string(), "0.5");
}

#[test]
fn a_refused_vaccine_is_not_done_and_a_bad_administration_date_is_error_102() {
    let vxu = |rxa3: &str| {
        cr(&[
            "MSH|^~\\&|EHR|CLINIC1|IIS|STATE|20230801100000||VXU^V04^VXU_V04|CTRL0500|P|2.5.1",
            "PID|1||000123^^^CLINIC1^MR||TEST^PATIENT||20200101|F",
            "ORC|RE||IZ9^CLINIC1",
            &format!("RXA|0|1|{rxa3}||08^Hep B^CVX|999||||||||||||00^Parental refusal^NIP002||RE"),
        ])
    };
    let (bundle, _) = expect_bundle(map_text(&vxu("20230715")));
    let immunization = one(&bundle, "Immunization");
    assert_eq!(immunization["status"], "not-done");
    assert_eq!(immunization["statusReason"]["coding"][0]["code"], "00");
    let error = map_text(&vxu("20231345")).unwrap_err();
    assert_eq!(error.code, ErrorCode::DataTypeError);
    assert_eq!(error.location(), "RXA^1^3");
}

#[test]
fn an_ack_and_a_query_response_map_to_nothing_and_a_header_without_msh_9_does_not_parse() {
    for name in [
        "cdc-trusted-intermediary/001_Natus_ACK.hl7",
        "pipehat/sample-v2.3.1-ack-1.hl7",
        "pipehat/sample-v2.5.1-rsp-k11-2.hl7",
    ] {
        let Some(outcome) = fixture(name) else { return };
        assert!(
            matches!(outcome, Ok(Mapped::Nothing { .. })),
            "{name}: {outcome:?}"
        );
    }
    let Some(dir) = fixtures_dir() else { return };
    let bytes =
        std::fs::read(dir.join("cdc-trusted-intermediary/msh_present_but_missing_msh-9.hl7"))
            .unwrap();
    let piece = split_messages(&bytes).next().unwrap();
    assert!(parse_bytes(piece).is_err());
}

#[test]
fn unsupported_types_and_triggers_are_errors_200_and_201_at_msh_9() {
    let message = |kind: &str| {
        cr(&[
            &format!("MSH|^~\\&|A|B|C|D|20230801100000||{kind}|CTRL0600|P|2.5"),
            "PID|1||000123^^^B^MR||TEST^PATIENT",
        ])
    };
    let error = map_text(&message("DFT^P03")).unwrap_err();
    assert_eq!(
        (error.code, error.location().as_str()),
        (ErrorCode::UnsupportedMessageType, "MSH^1^9")
    );
    let error = map_text(&message("ADT^A99")).unwrap_err();
    assert_eq!(
        (error.code, error.location().as_str()),
        (ErrorCode::UnsupportedEventCode, "MSH^1^9")
    );
    let Some(outcome) = fixture("fhir-converter/ADT-A47-01.hl7") else {
        return;
    };
    assert_eq!(outcome.unwrap_err().code, ErrorCode::UnsupportedEventCode);
}

#[test]
fn a_missing_pid_3_is_error_101_and_a_bad_message_time_is_error_102() {
    let no_mrn = cr(&[
        "MSH|^~\\&|A|B|C|D|20230801100000||ADT^A01|CTRL0700|P|2.5",
        "PID|1||||TEST^PATIENT",
    ]);
    let error = map_text(&no_mrn).unwrap_err();
    assert_eq!(
        (error.code, error.location().as_str()),
        (ErrorCode::RequiredFieldMissing, "PID^1^3")
    );
    let bad_time = cr(&[
        "MSH|^~\\&|A|B|C|D|2023080199||ADT^A01|CTRL0701|P|2.5",
        "PID|1||000123^^^B^MR||TEST^PATIENT",
    ]);
    let error = map_text(&bad_time).unwrap_err();
    assert_eq!(
        (error.code, error.location().as_str()),
        (ErrorCode::DataTypeError, "MSH^1^7")
    );
}

#[test]
fn a_bad_optional_date_is_left_out_with_a_warning_that_names_the_field_not_the_value() {
    let message = cr(&[
        "MSH|^~\\&|A|B|C|D|20230801100000||ADT^A08|CTRL0702|P|2.5",
        "PID|1||000123^^^B^MR||TEST^PATIENT||19701345|F",
    ]);
    let (bundle, warnings) = expect_bundle(map_text(&message));
    assert!(one(&bundle, "Patient").get("birthDate").is_none());
    assert_eq!(warnings, ["PID^1^7: not a valid HL7 date/time, left out"]);
}

#[test]
fn every_bundle_has_one_provenance_targeting_every_entry_and_naming_the_message() {
    let Some(bundle) = fixture_bundle("fhir-converter/ADT-A01-01.hl7") else {
        return;
    };
    let provenance = one(&bundle, "Provenance");
    let targets: Vec<&Value> = provenance["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["reference"])
        .collect();
    let others: Vec<&Value> = entries(&bundle)
        .iter()
        .filter(|e| e["resource"]["resourceType"] != "Provenance")
        .map(|e| &e["fullUrl"])
        .collect();
    assert_eq!(targets, others);
    assert_eq!(provenance["recorded"], "1989-08-18T11:26:00+02:15");
    assert_eq!(provenance["activity"]["coding"][0]["code"], "A01");
    assert_eq!(
        provenance["agent"][0]["who"]["display"],
        "ADTApp (GHHSFacility)"
    );
    let what = &provenance["entity"][0]["what"];
    assert_eq!(provenance["entity"][0]["role"], "source");
    assert_eq!(what["identifier"]["system"], "urn:rapport:hl7v2-message");
    assert!(what["identifier"]["value"]
        .as_str()
        .unwrap()
        .starts_with("GHHSFacility|ADT|MSG00001|"));
    assert_eq!(what["display"], "HL7 v2 ADT^A01 MSG00001");
}

#[test]
fn mapping_the_same_message_twice_gives_byte_identical_bundles() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = std::fs::read(dir.join("fhir-converter/ADT-A01-01.hl7")).unwrap();
    let parsed = parse_bytes(&bytes).unwrap();
    let key = message_key(&bytes);
    let once = to_fhir(&parsed.message, &key, &MapOptions::default()).unwrap();
    let twice = to_fhir(&parsed.message, &key, &MapOptions::default()).unwrap();
    let text = |m: &Mapped| crate::map_support::bundle_of(m).to_string();
    assert_eq!(text(&once), text(&twice));
}

#[test]
fn an_admission_and_its_discharge_update_the_same_encounter() {
    let (Some(admit), Some(discharge)) = (
        fixture_bundle("fhir-converter/ADT-A01-01.hl7"),
        fixture_bundle("fhir-converter/ADT-A03-01.hl7"),
    ) else {
        return;
    };
    let url = |b: &Value| entry_of(b, one(b, "Encounter"))["request"]["url"].clone();
    assert_eq!(url(&admit), url(&discharge));
    assert_eq!(
        url(&admit),
        "Encounter?identifier=urn:rapport:hl7v2:authority:AccMng|40007716"
    );
    assert_eq!(
        one(&admit, "Encounter")["identifier"],
        one(&discharge, "Encounter")["identifier"]
    );
}
