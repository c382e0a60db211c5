//! Hard cases from `../shared/hard-cases.md` that concern import and storage. Each test cites
//! its case id.

use rapport_fhir::query;
use serde_json::{json, Value};

use crate::helpers::*;

fn collection(resources: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "collection",
        "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
}

#[test]
fn b12_primitive_extensions_without_values_are_kept() {
    let db = store();
    let s = db.store.as_ref();
    let patient = json!({
        "resourceType": "Patient", "id": "pat-ext-1",
        "name": [{"family": "TEST", "given": ["PATIENT"]}],
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]},
        "address": [{"city": "Testville", "_line": [
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName", "valueString": "Test Street"}]},
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber", "valueString": "1"}]}]}]
    });
    let (summary, _) = import_json(s, "b12.json", &collection(vec![patient]));
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let stored = read(s, "Patient", "pat-ext-1").unwrap();
    assert!(stored.get("birthDate").is_none());
    assert_eq!(stored["_birthDate"]["extension"][0]["valueCode"], "masked");
    let address = serde_json::to_string(&stored["address"][0]).unwrap();
    assert!(
        address.contains(r#""line":[null,null],"_line":[{"extension""#),
        "{address}"
    );
    // Patient?birthdate=1970 cannot match: there is no birth date row.
    let q = rapport_fhir::query::Query {
        resource_type: "Patient".into(),
        clauses: vec![query::Clause::Id("pat-ext-1".into())],
    };
    assert_eq!(s.find_ids(&q).unwrap(), ["pat-ext-1"]);
    let by_birth = s
        .search_patients(&rapport_store::PatientSearch {
            birth_date: rapport_fhir::date::parse_range("1970").map(|r| (r.start, r.end)),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_birth.total, 0);
}

fn b13_bundle() -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
       "resource": {"resourceType": "Patient", "identifier": [{"system": "http://example.org/mrn", "value": "000123"}], "name": [{"family": "TEST", "given": ["PATIENT"]}]},
       "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://example.org/mrn|000123"}},
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
       "resource": {"resourceType": "Patient", "identifier": [{"system": "http://example.org/mrn", "value": "000123"}], "name": [{"family": "TEST", "given": ["PATIENT"]}]},
       "request": {"method": "POST", "url": "Patient", "ifNoneExist": "Patient?identifier=http://example.org/mrn|000123"}},
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
       "resource": {"resourceType": "Observation", "status": "final",
         "identifier": [{"system": "http://example.org/obs", "value": "OBS-1"}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
         "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"},
         "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
       "request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=http://example.org/obs|OBS-1"}}
    ]})
}

#[test]
fn b13_if_none_exist_in_both_spellings_creates_one_patient_and_replays_create_nothing() {
    let db = store();
    let s = db.store.as_ref();
    let (summary, reports) = import_json(s, "b13.json", &b13_bundle());
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(count(s, "Patient"), 1);
    let outcomes = &reports[0].outcomes;
    assert_eq!(
        outcomes[0].key, outcomes[1].key,
        "both fullUrls resolve to one patient"
    );
    let obs = read(s, "Observation", &outcomes[2].key.id).unwrap();
    assert_eq!(
        obs["subject"]["reference"],
        format!("Patient/{}", outcomes[0].key.id)
    );

    let (again, _) = import_json(s, "b13.json", &b13_bundle());
    assert_eq!((again.created, again.updated), (0, 0));
    assert_eq!(count(s, "Patient"), 1);
    assert_eq!(count(s, "Observation"), 1);
}

#[test]
fn b13_two_puts_on_one_id_are_refused_before_any_write() {
    let db = store();
    let s = db.store.as_ref();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "pat-dup", "name": [{"family": "ONE"}]}, "request": {"method": "PUT", "url": "Patient/pat-dup"}},
        {"resource": {"resourceType": "Patient", "id": "pat-dup", "name": [{"family": "TWO"}]}, "request": {"method": "PUT", "url": "Patient/pat-dup"}}]});
    let (summary, _) = import_json(s, "dup.json", &bundle);
    assert_eq!(summary.errors.len(), 1);
    let message = summary.errors[0].to_string();
    assert!(
        message.contains("Bundle.entry[0] and Bundle.entry[1] both write Patient/pat-dup"),
        "{message}"
    );
    assert_eq!(count(s, "Patient"), 0);
}

fn b14_setup(s: &dyn rapport_store::Store) {
    let setup = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Practitioner", "id": "npi-gp", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999990"}]},
         "request": {"method": "PUT", "url": "Practitioner/npi-gp"}},
        {"resource": {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order", "subject": {"reference": "Patient/none"}},
         "request": {"method": "PUT", "url": "ServiceRequest/sr-1"}}]});
    import_json(s, "setup-1.json", &setup);
    let mut v2 = setup.clone();
    v2["entry"][1]["resource"]["status"] = json!("on-hold");
    import_json(s, "setup-2.json", &v2);
}

fn b14_bundle(with_location: bool) -> Value {
    let mut encounter = json!({"resourceType": "Encounter", "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a1"},
        "participant": [{"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999990"}}]});
    if with_location {
        encounter["location"] =
            json!([{"location": {"reference": "Location?identifier=http://example.org/loc|NOPE"}}]);
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000a1",
       "resource": {"resourceType": "Patient", "identifier": [{"system": "http://example.org/mrn", "value": "000777"}]},
       "request": {"method": "POST", "url": "Patient"}},
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000a2", "resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
      {"fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000a3",
       "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "test"},
         "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a1"},
         "basedOn": [{"reference": "ServiceRequest/sr-1/_history/2"}]},
       "request": {"method": "POST", "url": "Observation"}}]})
}

#[test]
fn b14_an_unresolvable_conditional_reference_fails_the_whole_transaction() {
    let db = store();
    let s = db.store.as_ref();
    b14_setup(s);
    let (summary, _) = import_json(s, "b14.json", &b14_bundle(true));
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    let message = summary.errors[0].to_string();
    assert!(message.contains("Bundle.entry[1]"), "{message}");
    assert!(
        message.contains("Location?identifier=http://example.org/loc|NOPE"),
        "{message}"
    );
    assert_eq!(count(s, "Patient"), 0);
    assert_eq!(count(s, "Encounter"), 0);
}

#[test]
fn b14_conditional_urn_and_versioned_references_are_rewritten() {
    let db = store();
    let s = db.store.as_ref();
    b14_setup(s);
    let (summary, reports) = import_json(s, "b14.json", &b14_bundle(false));
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let outcomes = &reports[0].outcomes;
    let patient_id = &outcomes[0].key.id;
    let encounter = read(s, "Encounter", &outcomes[1].key.id).unwrap();
    assert_eq!(
        encounter["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        "Practitioner/npi-gp"
    );
    let obs = read(s, "Observation", &outcomes[2].key.id).unwrap();
    assert_eq!(
        obs["basedOn"][0]["reference"],
        "ServiceRequest/sr-1/_history/2"
    );
    let q = query::parse("Encounter", "practitioner=Practitioner/npi-gp").unwrap();
    assert_eq!(s.find_ids(&q).unwrap(), [outcomes[1].key.id.clone()]);
}

#[test]
fn b14_a_conditional_reference_matching_two_resources_fails_the_bundle() {
    let db = store();
    let s = db.store.as_ref();
    b14_setup(s);
    let twins = collection(vec![
        json!({"resourceType": "Location", "id": "l1", "identifier": [{"system": "http://example.org/loc", "value": "TWICE"}]}),
        json!({"resourceType": "Location", "id": "l2", "identifier": [{"system": "http://example.org/loc", "value": "TWICE"}]}),
    ]);
    import_json(s, "locations.json", &twins);
    let mut bundle = b14_bundle(false);
    bundle["entry"][1]["resource"]["location"] =
        json!([{"location": {"reference": "Location?identifier=http://example.org/loc|TWICE"}}]);
    let (summary, _) = import_json(s, "b14.json", &bundle);
    assert_eq!(summary.errors.len(), 1);
    assert!(
        summary.errors[0].message.contains("matches 2 resources"),
        "{}",
        summary.errors[0]
    );
    assert_eq!(count(s, "Encounter"), 0);
}

#[test]
fn b17_decimals_come_back_with_the_digits_they_were_sent_with() {
    let db = store();
    let s = db.store.as_ref();
    let text = r#"{"resourceType":"Observation","id":"dec-1","status":"final","code":{"text":"x"},
 "component":[
  {"code":{"text":"a"},"valueQuantity":{"value":1.50,"unit":"mmol/L"}},
  {"code":{"text":"b"},"valueQuantity":{"value":0.700,"unit":"mg"}},
  {"code":{"text":"c"},"valueQuantity":{"value":6,"unit":"mg"}},
  {"code":{"text":"d"},"valueQuantity":{"value":140.0,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}"#;
    let (summary, _) = import_many(s, vec![("dec.json".into(), text.as_bytes().to_vec())]);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let stored = s
        .read(&rapport_store::ResourceKey::new("Observation", "dec-1"))
        .unwrap()
        .unwrap()
        .content;
    for literal in [
        r#""value":1.50,"#,
        r#""value":0.700,"#,
        r#""value":6,"#,
        r#""value":140.0,"#,
    ] {
        assert!(stored.contains(literal), "{literal} missing from {stored}");
    }
}

#[test]
fn b19_contained_resources_survive_repeated_writes_and_are_not_stored_alone() {
    let db = store();
    let s = db.store.as_ref();
    let dispense = json!({"resourceType":"MedicationDispense","id":"md-1","status":"completed",
     "contained":[
       {"resourceType":"Medication","id":"med1","code":{"text":"TEST DRUG 10 mg tablet"}},
       {"resourceType":"MedicationRequest","id":"mr1","status":"active","intent":"order",
        "medicationReference":{"reference":"#med1"},"subject":{"reference":"Patient/pat-1"}}],
     "medicationReference":{"reference":"#med1"},
     "subject":{"reference":"Patient/pat-1"},
     "authorizingPrescription":[{"reference":"#mr1"}]});
    let put = |r: &Value| json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": r, "request": {"method": "PUT", "url": "MedicationDispense/md-1"}}]});
    for _ in 0..2 {
        let (summary, _) = import_json(s, "b19.json", &put(&dispense));
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let stored = read(s, "MedicationDispense", "md-1").unwrap();
        let contained = stored["contained"].as_array().unwrap();
        assert_eq!(contained.len(), 2);
        assert_eq!(
            (contained[0]["id"].as_str(), contained[1]["id"].as_str()),
            (Some("med1"), Some("mr1"))
        );
        assert_eq!(stored["medicationReference"]["reference"], "#med1");
        assert_eq!(contained[1]["medicationReference"]["reference"], "#med1");
        assert_eq!(stored["authorizingPrescription"][0]["reference"], "#mr1");
    }
    assert!(read(s, "Medication", "med1").is_none());
    // The dispense is in pat-1's compartment.
    assert_eq!(s.patient_record("pat-1").unwrap().len(), 1);

    let mut orphan = dispense.clone();
    orphan["contained"]
        .as_array_mut()
        .unwrap()
        .push(json!({"resourceType": "Medication", "id": "unused"}));
    let (summary, _) = import_json(s, "b19-bad.json", &put(&orphan));
    assert_eq!(summary.errors.len(), 1);
    assert!(
        summary.errors[0].message.contains("dom-3"),
        "{}",
        summary.errors[0]
    );
}
