//! Import semantics: transactions, batches, NDJSON, identity, idempotency, provenance.

use rapport_ingest::Action;
use serde_json::json;

use crate::helpers::*;

fn patient_bundle(kind: &str, id: &str, mrn: &str, family: &str) -> serde_json::Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": format!("urn:uuid:{id}"),
         "resource": {"resourceType": "Patient", "id": id,
            "identifier": [{"system": "http://example.org/mrn", "value": mrn}],
            "name": [{"family": family, "given": ["Test"]}], "birthDate": "1970-01-01"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000f1",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": format!("urn:uuid:{id}")},
            "valueQuantity": {"value": 70.50, "unit": "kg"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]})
}

#[test]
fn two_files_describing_the_same_patient_make_one_patient() {
    let db = store();
    let s = db.store.as_ref();
    import_json(
        s,
        "a.json",
        &patient_bundle("transaction", "p-a", "000123", "TEST"),
    );
    let (summary, reports) = import_json(
        s,
        "b.json",
        &patient_bundle("transaction", "p-b", "000123", "TEST"),
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(count(s, "Patient"), 1);
    // The second file's observation points at the first file's patient.
    let obs = &reports[0].outcomes[1];
    let stored = read(s, "Observation", &obs.key.id).unwrap();
    assert_eq!(stored["subject"]["reference"], "Patient/p-a");
}

#[test]
fn a_transaction_is_all_or_nothing_and_names_the_bad_entry_b47() {
    // Hard case B47 (a): 473 POST entries, entry 470 (index 469) invalid: nothing is written.
    let db = store();
    let s = db.store.as_ref();
    let mut entries: Vec<serde_json::Value> = (0..473)
        .map(|i| {
            json!({"fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{i:012}"),
            "resource": {"resourceType": "Organization", "name": format!("TEST ORG {i}")},
            "request": {"method": "POST", "url": "Organization"}})
        })
        .collect();
    entries[469]["resource"] = json!({"resourceType": "Organization", "id": "not valid!"});
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let (summary, _) = import_json(s, "big.json", &bundle);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(summary.errors[0].entry, Some(469));
    assert!(summary.errors[0].to_string().contains("Bundle.entry[469]"));
    assert_eq!(count(s, "Organization"), 0);

    // Fixed, the same bundle then writes exactly 473 resources.
    let mut entries = bundle["entry"].as_array().unwrap().clone();
    entries[469]["resource"] = json!({"resourceType": "Organization", "name": "TEST ORG 469"});
    let (summary, _) = import_json(
        s,
        "big.json",
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    );
    assert!(summary.errors.is_empty());
    assert_eq!(count(s, "Organization"), 473);
}

#[test]
fn a_batch_keeps_its_good_entries_when_one_is_bad() {
    let db = store();
    let s = db.store.as_ref();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Organization", "id": "o1", "name": "TEST ORG 1"}, "request": {"method": "PUT", "url": "Organization/o1"}},
        {"resource": {"resourceType": "NotAResource", "id": "x"}, "request": {"method": "POST", "url": "NotAResource"}},
        {"resource": {"resourceType": "Organization", "id": "o2", "name": "TEST ORG 2"}, "request": {"method": "PUT", "url": "Organization/o2"}}
    ]});
    let (summary, _) = import_json(s, "batch.json", &bundle);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(summary.errors[0].entry, Some(1));
    assert!(summary.errors[0].message.contains("NotAResource"));
    assert_eq!(count(s, "Organization"), 2);
}

#[test]
fn ndjson_lines_are_imported_and_a_bad_line_is_named() {
    let db = store();
    let s = db.store.as_ref();
    let ndjson = "\u{feff}{\"resourceType\":\"Patient\",\"id\":\"n1\",\"name\":[{\"family\":\"TEST\"}]}\n{\"resourceType\":\"Observation\",\"id\":\"n2\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/n1\"}}\n{broken\n";
    let (summary, _) = import_many(
        s,
        vec![("export/Patient.ndjson".into(), ndjson.as_bytes().to_vec())],
    );
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(summary.errors[0].entry, Some(2));
    assert!(
        summary.errors[0]
            .to_string()
            .starts_with("export/Patient.ndjson: Bundle.entry[2]: invalid JSON"),
        "{}",
        summary.errors[0]
    );
    assert_eq!(count(s, "Patient"), 1);
    assert_eq!(count(s, "Observation"), 1);
    // The observation is in the patient's record.
    let record = s.patient_record("n1").unwrap();
    assert_eq!(record.len(), 2);
}

#[test]
fn invalid_json_names_the_file_and_other_files_still_import() {
    let db = store();
    let s = db.store.as_ref();
    let (summary, _) = import_many(
        s,
        vec![
            (
                "bad.json".into(),
                b"{\"resourceType\": \"Bundle\", oops".to_vec(),
            ),
            ("notfhir.json".into(), b"{\"hello\": 1}".to_vec()),
            (
                "good.json".into(),
                serde_json::to_vec(&patient_bundle("transaction", "p-g", "1", "GOOD")).unwrap(),
            ),
        ],
    );
    let messages: Vec<String> = summary.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("bad.json: invalid JSON at line 1"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].starts_with("notfhir.json: the document has no resourceType"),
        "{}",
        messages[1]
    );
    assert_eq!(count(s, "Patient"), 1);
    assert_eq!(summary.failed_inputs, 2);
}

#[test]
fn an_update_writes_a_new_version_and_keeps_the_history() {
    let db = store();
    let s = db.store.as_ref();
    import_json(
        s,
        "v1.json",
        &patient_bundle("transaction", "p-h", "77", "FIRST"),
    );
    let (summary, _) = import_json(
        s,
        "v2.json",
        &patient_bundle("transaction", "p-h", "77", "SECOND"),
    );
    assert_eq!(summary.updated, 1, "{summary:?}");
    let history = s
        .history(&rapport_store::ResourceKey::new("Patient", "p-h"))
        .unwrap();
    assert_eq!(history.len(), 2);
    let current = read(s, "Patient", "p-h").unwrap();
    assert_eq!(current["meta"]["versionId"], "2");
    assert_eq!(current["name"][0]["family"], "SECOND");
    // Each version knows where it came from.
    assert_eq!(history[0].source.as_ref().unwrap().name, "v1.json");
    assert_eq!(history[1].source.as_ref().unwrap().name, "v2.json");
    assert_eq!(history[1].source.as_ref().unwrap().entry, Some(0));
}

#[test]
fn a_delete_entry_leaves_a_tombstone() {
    let db = store();
    let s = db.store.as_ref();
    import_json(
        s,
        "v1.json",
        &patient_bundle("transaction", "p-d", "88", "GONE"),
    );
    let (summary, reports) = import_json(
        s,
        "del.json",
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Patient/p-d"}}]}),
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(reports[0].outcomes[0].action, Action::Deleted);
    assert_eq!(count(s, "Patient"), 0);
    let history = s
        .history(&rapport_store::ResourceKey::new("Patient", "p-d"))
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].deleted);
    // The deleted patient no longer matches searches.
    let page = s
        .search_patients(&rapport_store::PatientSearch {
            name_words: vec!["gone".into()],
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total, 0);
}

#[test]
fn provider_bundles_can_come_after_the_patients_that_refer_to_them() {
    let db = store();
    let s = db.store.as_ref();
    let household = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000aa01",
         "resource": {"resourceType": "Patient", "name": [{"family": "TEST"}],
            "generalPractitioner": [{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999990"}]},
         "request": {"method": "POST", "url": "Patient"}}]});
    let directory = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000bb01",
         "resource": {"resourceType": "Practitioner", "id": "gp-1", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999990"}], "name": [{"family": "GP"}]},
         "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|9999999990"}}]});
    let (summary, reports) = import_many(
        s,
        vec![
            (
                "a-household.json".into(),
                serde_json::to_vec(&household).unwrap(),
            ),
            (
                "z-practitioners.json".into(),
                serde_json::to_vec(&directory).unwrap(),
            ),
        ],
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let patient_id = &reports
        .iter()
        .find(|r| r.name == "a-household.json")
        .unwrap()
        .outcomes[0]
        .key
        .id;
    let p = read(s, "Patient", patient_id).unwrap();
    assert_eq!(
        p["generalPractitioner"][0]["reference"],
        "Practitioner/gp-1"
    );
}

#[test]
fn a_reference_that_matches_nothing_fails_with_its_text() {
    let db = store();
    let s = db.store.as_ref();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000cc01",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000ff"}},
         "request": {"method": "POST", "url": "Observation"}}]});
    let (summary, _) = import_json(s, "dangling.json", &bundle);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(
        summary.errors[0].to_string(),
        "dangling.json: Bundle.entry[0]: reference 'urn:uuid:00000000-0000-4000-8000-0000000000ff' matches no fullUrl in this bundle"
    );
    assert_eq!(count(s, "Observation"), 0);
}
