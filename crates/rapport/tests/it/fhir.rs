//! The FHIR R4 REST API (first part): CapabilityStatement, read, vread, instance history, errors
//! as OperationOutcome, authorisation per resource and scope, audit.

use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

fn token(app: &TestApp, email: &str, scopes: &str) -> String {
    tokio::task::block_in_place(|| {
        let new = rapport_auth::NewToken {
            email: email.into(),
            scopes: scopes.into(),
            days: 1,
            label: String::new(),
        };
        rapport_auth::create_token(
            app.store.as_ref(),
            &rapport_access::audit::Actor::command_line("test"),
            "cli",
            &new,
            app.state.clock.now_ms(),
        )
        .unwrap()
        .1
    })
}

async fn get(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.client.get(app.url(path));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, headers, body)
}

fn assert_outcome(body: &Value, code: &str) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["code"], code, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capability_statement_says_what_is_supported() {
    let app = spawn_app().await;
    let (status, headers, body) = get(&app, "/fhir/metadata", None).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    assert_eq!(body["resourceType"], "CapabilityStatement");
    assert_eq!(body["fhirVersion"], "4.0.1");
    let resources = body["rest"][0]["resource"].as_array().unwrap();
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let observation = resources
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    let includes: Vec<&str> = observation["searchInclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(includes.contains(&"Observation:patient"), "{includes:?}");
    let revincludes: Vec<&str> = patient["searchRevInclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        revincludes.contains(&"Observation:patient"),
        "{revincludes:?}"
    );
    let codes: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "read",
            "vread",
            "update",
            "patch",
            "delete",
            "history-instance",
            "history-type",
            "create",
            "search-type"
        ]
    );
    let (status, _, body) = get(&app, "/fhir/metadata?_format=xml", None).await;
    assert_eq!(status, 406);
    assert_outcome(&body, "not-supported");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_follow_the_care_team_and_the_token_scopes_and_are_audited() {
    let app = spawn_app().await;
    let patient = app.patient_ids()[0].clone();
    // No credential: 401 with an OperationOutcome.
    let (status, headers, body) = get(&app, &format!("/fhir/Patient/{patient}"), None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_outcome(&body, "login");

    let all = token(&app, "coordinator@test.example", "user/*.read");
    let before = app.last_audit_seq();
    let (status, headers, body) = get(&app, &format!("/fhir/Patient/{patient}"), Some(&all)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["etag"], "W/\"1\"");
    assert!(headers.contains_key("last-modified"));
    assert_eq!(body["id"], patient.as_str());
    assert_eq!(body["meta"]["versionId"], "1");
    let records = app.audit_after(before);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].record.patient_id.as_deref(),
        Some(patient.as_str())
    );
    assert_eq!(records[0].record.entities, [format!("Patient/{patient}")]);
    assert!(records[0].record.detail.starts_with("via API token #"));

    // One of the patient's observations, and a practitioner of the directory.
    let (observation, practitioner) = tokio::task::block_in_place(|| {
        let record = app.store.patient_record(&patient).unwrap();
        let obs = record
            .iter()
            .find(|r| r.key.resource_type == "Observation")
            .unwrap()
            .key
            .id
            .clone();
        let ids = app
            .store
            .search_ids(
                &rapport_fhir::query::Query {
                    resource_type: "Practitioner".into(),
                    clauses: vec![rapport_fhir::query::Clause::String {
                        param: "name",
                        prefix: String::new(),
                    }],
                },
                1,
            )
            .unwrap();
        (obs, ids.first().cloned())
    });
    // A resource-level scope: Observations yes, the Patient resource no.
    let obs_only = token(&app, "coordinator@test.example", "user/Observation.read");
    assert_eq!(
        get(
            &app,
            &format!("/fhir/Observation/{observation}"),
            Some(&obs_only)
        )
        .await
        .0,
        200
    );
    let (status, _, body) = get(&app, &format!("/fhir/Patient/{patient}"), Some(&obs_only)).await;
    assert_eq!(status, 403);
    assert_outcome(&body, "forbidden");
    if let Some(practitioner) = practitioner {
        assert_eq!(
            get(
                &app,
                &format!("/fhir/Practitioner/{practitioner}"),
                Some(&all)
            )
            .await
            .0,
            200
        );
    }

    // A patient-context token: the patient's own compartment only.
    tokio::task::block_in_place(|| {
        app.add_user("self@test.example", "patient", Some(&patient), None);
    });
    let own = token(&app, "self@test.example", "patient/*.read");
    assert_eq!(
        get(
            &app,
            &format!("/fhir/Observation/{observation}"),
            Some(&own)
        )
        .await
        .0,
        200
    );
    let other = app.patient_ids()[1].clone();
    assert_eq!(
        get(&app, &format!("/fhir/Patient/{other}"), Some(&own))
            .await
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_history_deletes_and_bad_requests_answer_as_the_spec_says() {
    let app = spawn_app().await;
    let patient = app.patient_ids()[0].clone();
    let t = token(&app, "coordinator@test.example", "user/*.read");
    let observation = tokio::task::block_in_place(|| {
        let record = app.store.patient_record(&patient).unwrap();
        let obs = record
            .iter()
            .find(|r| r.key.resource_type == "Observation")
            .unwrap()
            .key
            .id
            .clone();
        // Delete it through the importer: a tombstone version 2.
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": format!("Observation/{obs}")}}]});
        let unit = rapport_ingest::Unit {
            name: "delete.json".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(bundle),
        };
        let report =
            rapport_ingest::apply_unit(app.store.as_ref(), &unit, app.state.clock.now_ms(), false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        obs
    });
    let (status, headers, body) =
        get(&app, &format!("/fhir/Observation/{observation}"), Some(&t)).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_outcome(&body, "deleted");
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Observation/{observation}/_history/1"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(
        get(
            &app,
            &format!("/fhir/Observation/{observation}/_history/2"),
            Some(&t)
        )
        .await
        .0,
        410
    );
    assert_eq!(
        get(
            &app,
            &format!("/fhir/Observation/{observation}/_history/9"),
            Some(&t)
        )
        .await
        .0,
        404
    );
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Observation/{observation}/_history"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "history");
    assert_eq!(body["total"], 2);
    assert_eq!(body["entry"][0]["request"]["method"], "DELETE");
    assert_eq!(body["entry"][1]["resource"]["meta"]["versionId"], "1");

    let (status, _, body) = get(&app, "/fhir/Unicorn/1", Some(&t)).await;
    assert_eq!(status, 404);
    assert_outcome(&body, "not-supported");
    let (status, _, body) = get(&app, &format!("/fhir/Patient/{}", "x".repeat(65)), Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["issue"][0]["expression"][0], "Patient.id");
    let (status, _, body) = get(&app, "/fhir/Patient/no-such-patient", Some(&t)).await;
    assert_eq!(status, 404);
    assert_outcome(&body, "not-found");
    let (status, _, _) = get(
        &app,
        &format!("/fhir/Patient/{patient}?_format=application/fhir+xml"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 406);
}

#[tokio::test(flavor = "multi_thread")]
async fn patient_everything_returns_the_whole_compartment_to_those_who_may_read_it() {
    let app = spawn_app().await;
    let patient = app.patient_ids()[0].clone();
    let expected =
        tokio::task::block_in_place(|| app.store.patient_record(&patient).unwrap().len());
    let t = token(&app, "coordinator@test.example", "user/*.read");
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Patient/{patient}/$everything"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "searchset");
    let entries = body["entry"].as_array().unwrap();
    // The compartment, and the directory resources it refers to (its practitioners and
    // organisations, patient-operation-everything.html), each once.
    let in_compartment = entries
        .iter()
        .filter(|e| {
            rapport_fhir::search_param::patient_compartment_params(
                e["resource"]["resourceType"].as_str().unwrap(),
            )
            .is_some()
                || e["resource"]["resourceType"] == "Patient"
        })
        .count();
    assert_eq!(in_compartment, expected);
    let directory: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .filter(|t| matches!(*t, "Practitioner" | "Organization"))
        .collect();
    assert!(
        !directory.is_empty(),
        "the practitioners and organisations referred to"
    );
    assert_eq!(body["total"], entries.len());
    let keys: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), entries.len(), "no resource twice");
    assert_eq!(body["entry"][0]["resource"]["resourceType"], "Patient");
    assert_eq!(body["entry"][0]["resource"]["id"], patient.as_str());
    // _type narrows it.
    let (_, _, body) = get(
        &app,
        &format!("/fhir/Patient/{patient}/$everything?_type=Patient,Condition"),
        Some(&t),
    )
    .await;
    assert!(body["entry"].as_array().unwrap().iter().all(|e| matches!(
        e["resource"]["resourceType"].as_str().unwrap(),
        "Patient" | "Condition"
    )));
    // A resource-level scope does not open the whole record; neither does an admin account.
    let obs_only = token(&app, "coordinator@test.example", "user/Observation.read");
    assert_eq!(
        get(
            &app,
            &format!("/fhir/Patient/{patient}/$everything"),
            Some(&obs_only)
        )
        .await
        .0,
        403
    );
    let admin = token(&app, "admin@test.example", "user/*.read");
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Patient/{patient}/$everything"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 403);
    assert_outcome(&body, "forbidden");
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Option<Value>) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(b) = body {
        request = request
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_and_delete_keep_versions_and_if_match_guards_concurrent_edits_b22() {
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    // Create a patient: 201, Location, ETag W/"1"; the creator joins the care team.
    let new_patient = serde_json::json!({"resourceType": "Patient", "name": [{"family": "Test", "given": ["Patient"]}], "birthDate": "1980-02-03"});
    let (status, headers, body) = send(
        &app,
        Method::POST,
        "/fhir/Patient",
        &t,
        Some(new_patient),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(headers["etag"], "W/\"1\"");
    let id = body.unwrap()["id"].as_str().unwrap().to_owned();
    // Absolute, from the request's Host (http.html#create: Location is [base]/Patient/id/_history/1).
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("http://{}/fhir/Patient/{id}/_history/1", app.addr)
    );
    let path = format!("/fhir/Patient/{id}");
    let named = |n: &str| serde_json::json!({"resourceType": "Patient", "id": id, "name": [{"family": n}], "birthDate": "1980-02-03"});
    // B22: the first PUT with If-Match W/"1" succeeds, a second with the same is refused.
    let (status, headers, _) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(named("A")),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["etag"], "W/\"2\"");
    let (status, _, body) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(named("B")),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(status, 412, "{body:?}");
    assert_eq!(body.unwrap()["issue"][0]["code"], "conflict");
    let (_, _, current) = get(&app, &path, Some(&t)).await;
    assert_eq!(
        current["name"][0]["family"], "A",
        "the refused update changed nothing"
    );
    // The strong spelling of the same version is accepted; a malformed one is a 400.
    let (status, headers, _) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(named("C")),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["etag"], "W/\"3\"");
    let (status, _, body) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(named("D")),
        &[("if-match", "banana")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body.unwrap()["issue"][0]["expression"][0], "If-Match");
    // Prefer: return=minimal gives no body.
    let (status, _, body) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(named("E")),
        &[("prefer", "return=minimal")],
    )
    .await;
    assert_eq!((status, body), (200, None));
    // Bad bodies: the wrong type, or another id, with the element named; nothing written.
    let (status, _, body) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(serde_json::json!({"resourceType": "Observation"})),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body.unwrap()["issue"][0]["expression"][0], "resourceType");
    let (status, _, body) = send(
        &app,
        Method::PUT,
        &path,
        &t,
        Some(serde_json::json!({"resourceType": "Patient", "id": "other"})),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body.unwrap()["issue"][0]["expression"][0], "Patient.id");
    // Delete: 204, then the read is 410 and the history keeps every version.
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        &path,
        &t,
        None,
        &[("if-match", "W/\"4\"")],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(get(&app, &path, Some(&t)).await.0, 410);
    let (_, _, history) = get(&app, &format!("{path}/_history"), Some(&t)).await;
    assert_eq!(history["total"], 5);
    // Writes need a bearer token (a browser session could be forged cross-site) and a write scope.
    let me = app.login("coordinator@test.example").await;
    let r = app
        .client
        .post(app.url("/fhir/Patient"))
        .header("cookie", &me.cookie)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let read_only = token(&app, "coordinator@test.example", "user/*.read");
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/fhir/Patient",
        &read_only,
        Some(serde_json::json!({"resourceType": "Patient"})),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    // Every write was audited with the caller and the patient.
    let writes: Vec<_> = app
        .audit_after(0)
        .into_iter()
        .filter(|r| {
            r.record.action.as_str() == "write"
                && r.record.patient_id.as_deref() == Some(id.as_str())
        })
        .collect();
    assert!(writes.len() >= 6, "{writes:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_by_token_string_and_reference_returns_only_what_may_be_read_b41() {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    let t = token(&app, "coordinator@test.example", "user/*.read");
    // Identifier token (the Synthea MRN system and value), accent-blind name, and a reference.
    let (status, _, body) = get(&app, "/fhir/Patient?identifier=https://github.com/synthetichealth/synthea|e27d88b0-c5e5-4042-ad49-184f6a900ee3", Some(&t)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "searchset");
    assert_eq!(body["total"], 1);
    assert!(body["entry"][0]["resource"]["name"][0]["given"][0]
        .as_str()
        .unwrap()
        .starts_with("Luigi"));
    let (_, _, body) = get(&app, "/fhir/Patient?family=ordonez", Some(&t)).await;
    assert_eq!(body["total"], 1, "{body}");
    let patient = ids[0].clone();
    let expected = tokio::task::block_in_place(|| {
        app.store
            .patient_record(&patient)
            .unwrap()
            .iter()
            .filter(|r| r.key.resource_type == "Observation")
            .count()
    });
    let (_, _, body) = get(
        &app,
        &format!("/fhir/Observation?subject=Patient/{patient}&_count=10"),
        Some(&t),
    )
    .await;
    assert_eq!(body["total"], expected, "{body}");
    assert_eq!(body["entry"].as_array().unwrap().len(), expected.min(10));
    if expected > 10 {
        let next = body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, _, page2) = get(&app, &next, Some(&t)).await;
        let first: Vec<&str> = body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        assert!(
            page2["entry"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| !first.contains(&e["resource"]["id"].as_str().unwrap())),
            "pages do not overlap"
        );
    }
    // B41: someone without a relationship gets no results and no count.
    tokio::task::block_in_place(|| {
        app.add_user("stranger@test.example", "coordinator", None, None)
    });
    let stranger = token(&app, "stranger@test.example", "user/*.read");
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Observation?subject=Patient/{patient}"),
        Some(&stranger),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 0);
    // Date search at the value's precision: a birth year matches a birth date within it.
    let (_, _, found) = get(&app, "/fhir/Patient?family=alcantar", Some(&t)).await;
    let birth = found["entry"][0]["resource"]["birthDate"]
        .as_str()
        .unwrap()
        .to_owned();
    let year = &birth[..4];
    let (_, _, body) = get(
        &app,
        &format!("/fhir/Patient?family=alcantar&birthdate={year}"),
        Some(&t),
    )
    .await;
    assert_eq!(body["total"], 1, "{body}");
    let next_year = year.parse::<i32>().unwrap() + 1;
    let (_, _, body) = get(
        &app,
        &format!("/fhir/Patient?family=alcantar&birthdate=ge{next_year}"),
        Some(&t),
    )
    .await;
    assert_eq!(body["total"], 0, "{body}");
    let (_, _, body) = get(
        &app,
        &format!("/fhir/Patient?family=alcantar&birthdate=lt{next_year}"),
        Some(&t),
    )
    .await;
    assert_eq!(body["total"], 1, "{body}");
    // Unsupported parameters: a warning in lenient mode, a 400 when strict.
    let (status, _, body) = get(
        &app,
        &format!("/fhir/Observation?subject=Patient/{patient}&_text=cough"),
        Some(&t),
    )
    .await;
    assert_eq!(status, 200);
    let last = body["entry"].as_array().unwrap().last().unwrap();
    assert_eq!(last["search"]["mode"], "outcome");
    let r = app
        .client
        .get(app.url(&format!(
            "/fhir/Observation?subject=Patient/{patient}&_text=cough"
        )))
        .bearer_auth(&t)
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A known parameter with a bad value is a 400 in either mode, naming it.
    let (status, _, body) = get(&app, "/fhir/Observation?value-quantity=lots", Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["issue"][0]["expression"][0], "value-quantity");
    // No criteria: every readable resource of the type (paged).
    let (status, _, body) = get(&app, "/fhir/Patient?_count=2", Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], ids.len(), "{body}");
    assert_eq!(body["entry"].as_array().unwrap().len(), 2);
    // The CapabilityStatement lists exactly these parameters.
    let (_, _, cap) = get(&app, "/fhir/metadata", None).await;
    let patient_cap = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    let names: Vec<&str> = patient_cap["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"identifier") && names.contains(&"family") && names.contains(&"birthdate"),
        "{names:?}"
    );
}

async fn post_bundle(app: &TestApp, token: &str, bundle: Value) -> (u16, Value) {
    let (status, _, body) = send(
        app,
        reqwest::Method::POST,
        "/fhir",
        token,
        Some(bundle),
        &[],
    )
    .await;
    (status, body.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_bundles_resolve_references_are_all_or_nothing_and_idempotent() {
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    // A new patient and an observation about it, linked by urn:uuid (http.html#transaction).
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6a0c8f4e-1111-4c1a-9a57-0c9d0c1e2f01",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": "TX-1"}], "name": [{"family": "Transaktion", "given": ["Zoë"]}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:test:mrn|TX-1"}},
        {"fullUrl": "urn:uuid:6a0c8f4e-1111-4c1a-9a57-0c9d0c1e2f02",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                      "subject": {"reference": "urn:uuid:6a0c8f4e-1111-4c1a-9a57-0c9d0c1e2f01"}, "valueQuantity": {"value": 72, "unit": "/min"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (status, body) = post_bundle(&app, &t, bundle.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "transaction-response");
    assert_eq!(
        body["entry"][0]["response"]["status"], "201 Created",
        "{body}"
    );
    assert_eq!(
        body["entry"][1]["response"]["status"], "201 Created",
        "{body}"
    );
    let patient_id = body["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        body["entry"][0]["response"]["location"],
        format!("Patient/{patient_id}/_history/1")
    );
    assert_eq!(
        body["entry"][1]["resource"]["subject"]["reference"],
        format!("Patient/{patient_id}"),
        "the urn:uuid reference was rewritten to the stored id"
    );
    // The creator joined the new patient's care team: the patient reads back.
    let (status, _, _) = get(&app, &format!("/fhir/Patient/{patient_id}"), Some(&t)).await;
    assert_eq!(status, 200);
    // The same transaction again: ifNoneExist matches, the observation is a replay.
    let (status, again) = post_bundle(&app, &t, bundle).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["entry"][0]["response"]["status"], "200 OK", "{again}");
    assert_eq!(
        again["entry"][0]["response"]["etag"], "W/\"1\"",
        "no new version"
    );

    // One failing entry (a version condition on a resource at another version) rolls it all
    // back: the first entry's update is not kept.
    let count_before = tokio::task::block_in_place(|| app.store.counts_by_type().unwrap());
    let failing = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": patient_id, "identifier": [{"system": "urn:test:mrn", "value": "TX-1"}], "name": [{"family": "Changed"}]},
         "request": {"method": "PUT", "url": format!("Patient/{patient_id}")}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient_id}")}},
         "request": {"method": "PUT", "url": "Observation/no-such-observation", "ifMatch": "W/\"4\""}}
    ]});
    let (status, body) = post_bundle(&app, &t, failing).await;
    assert_eq!(status, 412, "{body}");
    assert_outcome(&body, "conflict");
    assert_eq!(body["issue"][0]["expression"][0], "Bundle.entry[1]");
    let (_, _, current) = get(&app, &format!("/fhir/Patient/{patient_id}"), Some(&t)).await;
    assert_eq!(current["name"][0]["family"], "Transaktion", "rolled back");
    assert_eq!(current["meta"]["versionId"], "1");
    let count_after = tokio::task::block_in_place(|| app.store.counts_by_type().unwrap());
    assert_eq!(count_before, count_after);

    // A type that is not batch or transaction is refused, naming Bundle.type.
    let (status, body) = post_bundle(
        &app,
        &t,
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["issue"][0]["expression"][0], "Bundle.type");
}

#[tokio::test(flavor = "multi_thread")]
async fn bundle_entries_are_authorised_per_patient_a_transaction_is_refused_whole_a_batch_per_entry(
) {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    let (mine, other) = (ids[0].clone(), ids[1].clone());
    tokio::task::block_in_place(|| {
        app.add_user("coord2@test.example", "coordinator", None, None);
    });
    app.assign("coord2@test.example", &mine);
    let t = token(&app, "coord2@test.example", "user/*.*");
    let obs = |patient: &str, id: &str| {
        serde_json::json!({"resource": {"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "Bundle check"}, "subject": {"reference": format!("Patient/{patient}")}},
            "request": {"method": "PUT", "url": format!("Observation/{id}")}})
    };
    let before = app.last_audit_seq();
    let (status, body) = post_bundle(
        &app,
        &t,
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [obs(&mine, "bundle-mine-1"), obs(&other, "bundle-other-1")]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_outcome(&body, "forbidden");
    assert_eq!(body["issue"][0]["expression"][0], "Bundle.entry[1]");
    let records = app.audit_after(before);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].record.outcome.as_str(), "denied");
    assert_eq!(
        records[0].record.patient_id.as_deref(),
        Some(other.as_str())
    );
    let (status, _, _) = get(&app, "/fhir/Observation/bundle-mine-1", Some(&t)).await;
    assert_eq!(
        status, 404,
        "nothing of the refused transaction was written"
    );

    // The same entries as a batch: the allowed one is written, the other refused.
    let before = app.last_audit_seq();
    let (status, body) = post_bundle(
        &app,
        &t,
        serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [obs(&mine, "bundle-mine-2"), obs(&other, "bundle-other-2")]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "batch-response");
    assert_eq!(body["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(body["entry"][1]["response"]["status"], "403 Forbidden");
    let records = app.audit_after(before);
    let by_patient = |p: &str| {
        records
            .iter()
            .filter(|r| r.record.patient_id.as_deref() == Some(p))
            .map(|r| r.record.outcome.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(by_patient(&mine), ["success"], "{records:#?}");
    assert_eq!(by_patient(&other), ["denied"], "{records:#?}");
    let (status, _, _) = get(&app, "/fhir/Observation/bundle-mine-2", Some(&t)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_update_and_delete_patch_history_and_post_search_answer_as_the_spec_says() {
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    let patient = app.patient_ids()[0].clone();
    let obs = |value: &str| {
        serde_json::json!({"resourceType": "Observation", "status": "final",
            "identifier": [{"system": "urn:test:cond", "value": value}],
            "code": {"text": "Conditional"}, "subject": {"reference": format!("Patient/{patient}")}})
    };
    // Conditional update, no match: created (http.html#cond-update).
    let (status, headers, body) = send(
        &app,
        Method::PUT,
        "/fhir/Observation?identifier=urn:test:cond|A",
        &t,
        Some(obs("A")),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    let id = body.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["etag"], "W/\"1\"");
    // One match: that resource is updated.
    let mut changed = obs("A");
    changed["status"] = "amended".into();
    let (status, headers, body) = send(
        &app,
        Method::PUT,
        "/fhir/Observation?identifier=urn:test:cond|A",
        &t,
        Some(changed),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(body.unwrap()["id"], id.as_str());
    assert_eq!(headers["etag"], "W/\"2\"");
    // Two matches: 412, nothing changed.
    send(
        &app,
        Method::POST,
        "/fhir/Observation",
        &t,
        Some(obs("A")),
        &[],
    )
    .await;
    let (status, _, body) = send(
        &app,
        Method::PUT,
        "/fhir/Observation?identifier=urn:test:cond|A",
        &t,
        Some(obs("A")),
        &[],
    )
    .await;
    assert_eq!(status, 412, "{body:?}");
    // Without criteria: 400.
    let (status, _, _) = send(
        &app,
        Method::PUT,
        "/fhir/Observation",
        &t,
        Some(obs("B")),
        &[],
    )
    .await;
    assert_eq!(status, 400);

    // PATCH (JSON Patch): applied over the current version; a stale If-Match is a 412; a patch
    // may not change the id; other media types are a 415.
    let patch = |ops: &str, etag: Option<&str>| {
        let mut r = app
            .client
            .patch(app.url(&format!("/fhir/Observation/{id}")))
            .bearer_auth(&t)
            .header("content-type", "application/json-patch+json")
            .body(ops.to_owned());
        if let Some(e) = etag {
            r = r.header("if-match", e);
        }
        r.send()
    };
    let r = patch(
        r#"[{"op": "add", "path": "/valueString", "value": "patched"}]"#,
        Some("W/\"2\""),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"3\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valueString"], "patched");
    assert_eq!(v["status"], "amended", "the rest is kept");
    let r = patch(
        r#"[{"op": "replace", "path": "/status", "value": "final"}]"#,
        Some("W/\"2\""),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 412);
    let r = patch(
        r#"[{"op": "replace", "path": "/id", "value": "other"}]"#,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let r = patch(r#"[{"op": "remove", "path": "/no/such/element"}]"#, None)
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = app
        .client
        .patch(app.url(&format!("/fhir/Observation/{id}")))
        .bearer_auth(&t)
        .header("content-type", "application/fhir+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Type history since a moment: the three versions of this observation, newest first, and
    // the other new one; _count limits; a bad _since names the parameter.
    let (status, _, body) = get(
        &app,
        "/fhir/Observation/_history?_since=2000-01-01&_count=4",
        Some(&t),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "history");
    let entries = body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{body}");
    let mine: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["fullUrl"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/Observation/{id}"))
        })
        .collect();
    let versions: Vec<&str> = mine
        .iter()
        .map(|e| e["response"]["etag"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["W/\"3\"", "W/\"2\"", "W/\"1\""], "{body}");
    assert_eq!(mine[2]["request"]["method"], "POST");
    let (status, _, body) = get(&app, "/fhir/_history?_since=yesterday", Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["issue"][0]["expression"][0], "_since");
    let (status, _, body) = get(&app, "/fhir/_history?_count=2", Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(body["entry"].as_array().unwrap().len(), 2);

    // POST _search: the same answer as GET, parameters in the form body.
    let r = app
        .client
        .post(app.url("/fhir/Observation/_search"))
        .bearer_auth(&t)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("identifier=urn:test:cond%7CA")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total"], 2, "{v}");

    // Conditional delete: several matches are a 412; one match is deleted; none is a 204.
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        "/fhir/Observation?identifier=urn:test:cond|A",
        &t,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 412);
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        &format!("/fhir/Observation?_id={id}"),
        &t,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = get(&app, &format!("/fhir/Observation/{id}"), Some(&t)).await;
    assert_eq!(status, 410);
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        "/fhir/Observation?identifier=urn:test:cond|nothing",
        &t,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
}

/// The ids of a searchset's entries of one mode.
fn ids_of(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_modifiers_quantities_chains_includes_sort_and_summary_follow_the_spec() {
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    // A patient of our own, with five observations whose values we know.
    let obs = |id: &str, code: &str, value: Value, unit: &str, when: &str, extra: Value| {
        let mut o = serde_json::json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "urn:uuid:7e1a0c9e-0000-4000-8000-00000000000a"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                o[k] = v;
            }
        }
        serde_json::json!({"resource": o, "request": {"method": "PUT", "url": format!("Observation/{id}")}})
    };
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7e1a0c9e-0000-4000-8000-00000000000a",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test:search", "value": "S-1"}],
                      "name": [{"family": "Ñúñez-Search", "given": ["Zoë"]}], "gender": "female"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:test:search|S-1"}},
        obs("s-hr-1", "8867-4", serde_json::json!(72), "/min", "2019-12-31T23:30:00-02:00", serde_json::json!({})),
        obs("s-hr-2", "8867-4", serde_json::json!(101), "/min", "2020-03-01", serde_json::json!({"method": {"coding": [{"system": "urn:test:method", "code": "manual"}]}})),
        obs("s-wt-1", "29463-7", serde_json::json!(5.4), "kg", "2020-02-01", serde_json::json!({})),
        obs("s-wt-2", "29463-7", serde_json::json!(5.40), "kg", "2020-04-01", serde_json::json!({})),
        obs("s-wt-3", "29463-7", serde_json::json!(70.25), "kg", "2021-01-01", serde_json::json!({"note": [{"text": "after the holidays"}]}))
    ]});
    let (status, body) = post_bundle(&app, &t, bundle).await;
    assert_eq!(status, 200, "{body}");
    let pid = body["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = |q: String| {
        let app = &app;
        let t = t.clone();
        async move {
            let (status, _, body) = get(app, &q, Some(&t)).await;
            assert_eq!(status, 200, "{q}: {body}");
            body
        }
    };
    let ids = |body: &Value| {
        let mut v = ids_of(body, "match");
        v.sort();
        v
    };
    let p = format!("subject=Patient/{pid}");

    // Token: system|code, system|, :not, comma alternatives.
    let b = search(format!(
        "/fhir/Observation?{p}&code=http://loinc.org|8867-4"
    ))
    .await;
    assert_eq!(ids(&b), ["Observation/s-hr-1", "Observation/s-hr-2"]);
    let b = search(format!("/fhir/Observation?{p}&code=http://loinc.org|")).await;
    assert_eq!(b["total"], 5);
    let b = search(format!("/fhir/Observation?{p}&code:not=8867-4")).await;
    assert_eq!(b["total"], 3, "{b}");
    let b = search(format!("/fhir/Observation?{p}&code=8867-4,29463-7")).await;
    assert_eq!(b["total"], 5);
    // :missing
    let b = search(format!("/fhir/Observation?{p}&method:missing=false")).await;
    assert_eq!(ids(&b), ["Observation/s-hr-2"]);
    let b = search(format!("/fhir/Observation?{p}&method:missing=true")).await;
    assert_eq!(b["total"], 4);
    // Quantity and number precision (search.html#quantity): 5.4 is [5.35, 5.45) and matches
    // 5.4 and 5.40; gt100 with units; ap.
    let b = search(format!("/fhir/Observation?{p}&value-quantity=5.4")).await;
    assert_eq!(ids(&b), ["Observation/s-wt-1", "Observation/s-wt-2"]);
    let b = search(format!("/fhir/Observation?{p}&value-quantity=5.41")).await;
    assert_eq!(b["total"], 0, "5.41 is [5.405, 5.415)");
    let b = search(format!(
        "/fhir/Observation?{p}&value-quantity=gt100|http://unitsofmeasure.org|/min"
    ))
    .await;
    assert_eq!(ids(&b), ["Observation/s-hr-2"]);
    let b = search(format!("/fhir/Observation?{p}&value-quantity=gt100||kg")).await;
    assert_eq!(b["total"], 0);
    let b = search(format!("/fhir/Observation?{p}&value-quantity=ap70")).await;
    assert_eq!(ids(&b), ["Observation/s-hr-1", "Observation/s-wt-3"]);
    // Dates across time zones: 2019-12-31T23:30-02:00 is 2020-01-01T01:30Z, not before 2020.
    let b = search(format!("/fhir/Observation?{p}&date=lt2020-01-01T00:00:00Z")).await;
    assert_eq!(b["total"], 0, "{b}");
    let b = search(format!("/fhir/Observation?{p}&date=2020-01-01")).await;
    assert_eq!(ids(&b), ["Observation/s-hr-1"]);
    // _lastUpdated: everything was written just now.
    let b = search(format!("/fhir/Observation?{p}&_lastUpdated=gt2020-01-01")).await;
    assert_eq!(b["total"], 5);
    let b = search(format!("/fhir/Observation?{p}&_lastUpdated=lt2020-01-01")).await;
    assert_eq!(b["total"], 0);
    // Strings: accent- and case-blind prefix and :contains; :exact of the whole value.
    let b = search("/fhir/Patient?family=nunez".into()).await;
    assert_eq!(ids(&b), [format!("Patient/{pid}")]);
    let b = search("/fhir/Patient?family:contains=ez-sea".into()).await;
    assert_eq!(ids(&b), [format!("Patient/{pid}")]);
    let b = search("/fhir/Patient?family:exact=Ñúñez".into()).await;
    assert_eq!(b["total"], 0, "not the whole value");
    let b = search("/fhir/Patient?family:exact=Ñúñez-Search".into()).await;
    assert_eq!(b["total"], 1);
    // :exact keeps case and accents (search.html#modifiers), whichever Unicode form they take.
    let b = search("/fhir/Patient?family:exact=ñúñez-search".into()).await;
    assert_eq!(b["total"], 0, "case differs");
    let b = search("/fhir/Patient?family:exact=Nunez-Search".into()).await;
    assert_eq!(b["total"], 0, "accents differ");
    let b = search("/fhir/Patient?family:exact=N%CC%83u%CC%81n%CC%83ez-Search".into()).await;
    assert_eq!(b["total"], 1, "decomposed accents are the same text");
    let b = search("/fhir/Patient?family:exact=Nunez-Search,Ñúñez-Search".into()).await;
    assert_eq!(b["total"], 1, "either of two");

    // _sort: newest first, ties broken by id; paging through it neither repeats nor skips.
    let b = search(format!("/fhir/Observation?{p}&_sort=-date&_count=2")).await;
    assert_eq!(
        ids_of(&b, "match"),
        ["Observation/s-wt-3", "Observation/s-wt-2"]
    );
    let mut seen = ids_of(&b, "match");
    let mut next = b["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned());
    while let Some(url) = next {
        let b = search(url).await;
        seen.extend(ids_of(&b, "match"));
        next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [
            "Observation/s-wt-3",
            "Observation/s-wt-2",
            "Observation/s-hr-2",
            "Observation/s-wt-1",
            "Observation/s-hr-1"
        ]
    );
    let b = search(format!("/fhir/Observation?{p}&_sort=value-quantity,_id")).await;
    assert_eq!(ids_of(&b, "match")[0], "Observation/s-wt-1");
    // _summary=count: the total, no entries.
    let b = search(format!("/fhir/Observation?{p}&_summary=count")).await;
    assert_eq!(b["total"], 5);
    assert!(b["entry"].as_array().unwrap().is_empty());
    // _elements: only those, marked SUBSETTED.
    let b = search(format!(
        "/fhir/Observation?{p}&code=29463-7&_elements=status"
    ))
    .await;
    let r = &b["entry"][0]["resource"];
    assert_eq!(r["status"], "final");
    assert!(
        r.get("valueQuantity").is_none() && r.get("subject").is_none(),
        "{r}"
    );
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");

    // Chains one level deep, and _has.
    let b =
        search("/fhir/Observation?subject.identifier=urn:test:search|S-1&code=8867-4".into()).await;
    assert_eq!(ids(&b), ["Observation/s-hr-1", "Observation/s-hr-2"]);
    let b = search("/fhir/Observation?patient:Patient.family=nunez-s".into()).await;
    assert_eq!(b["total"], 5);
    let b = search("/fhir/Patient?_has:Observation:patient:code=29463-7&family=nunez".into()).await;
    assert_eq!(ids(&b), [format!("Patient/{pid}")]);
    let b = search("/fhir/Patient?_has:Observation:patient:code=no-such-code&family=nunez".into())
        .await;
    assert_eq!(b["total"], 0);

    // _include and _revinclude: the patient comes along once, marked include.
    let b = search(format!(
        "/fhir/Observation?{p}&code=8867-4&_include=Observation:patient"
    ))
    .await;
    assert_eq!(ids_of(&b, "include"), [format!("Patient/{pid}")]);
    assert_eq!(b["total"], 2, "included resources are not counted");
    let b = search(
        "/fhir/Patient?identifier=urn:test:search|S-1&_revinclude=Observation:subject".into(),
    )
    .await;
    assert_eq!(ids_of(&b, "include").len(), 5, "{b}");
    // Bad values of known parameters name them.
    let (status, _, body) = get(&app, "/fhir/Observation?_sort=shoe-size", Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["issue"][0]["expression"][0], "_sort");
    let (status, _, body) = get(
        &app,
        "/fhir/Observation?_include=Observation:status",
        Some(&t),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_resources_are_refused_with_an_operation_outcome_and_nothing_is_written() {
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    let patient = app.patient_ids()[0].clone();
    let before = tokio::task::block_in_place(|| app.store.counts_by_type().unwrap());
    let subject = serde_json::json!({"reference": format!("Patient/{patient}")});
    // (body, the expression the OperationOutcome must name, status)
    let cases: Vec<(Value, &str, u16)> = vec![
        (
            serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": subject, "effectiveDateTime": "2020-02-30"}),
            "Observation.effectiveDateTime",
            422,
        ),
        (
            serde_json::json!({"resourceType": "Observation", "status": "finished", "code": {"text": "x"}, "subject": subject}),
            "Observation.status",
            422,
        ),
        (
            serde_json::json!({"resourceType": "Observation", "code": {"text": "x"}, "subject": subject}),
            "Observation.status",
            422,
        ),
        (
            serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": subject, "valueQuantity": {"value": "72"}}),
            "Observation.valueQuantity.value",
            422,
        ),
        (
            serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": subject, "category": {"text": "not an array"}}),
            "Observation.category",
            422,
        ),
        (
            serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient with spaces"}}),
            "Observation.subject.reference",
            422,
        ),
    ];
    for (body, expression, status) in cases {
        let (got, _, outcome) = send(
            &app,
            Method::POST,
            "/fhir/Observation",
            &t,
            Some(body.clone()),
            &[],
        )
        .await;
        let outcome = outcome.unwrap();
        assert_eq!(got, status, "{body}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        let named: Vec<&str> = outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["expression"][0].as_str())
            .collect();
        assert!(named.contains(&expression), "{expression} not in {outcome}");
    }
    // Not JSON, an unknown resource type, a body over the limit, JSON nested too deep.
    let raw = |body: Vec<u8>, path: &str| {
        let (app, t) = (&app, t.clone());
        let path = path.to_owned();
        async move {
            let r = app
                .client
                .post(app.url(&path))
                .bearer_auth(&t)
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
            status
        }
    };
    assert_eq!(
        raw(b"{\"resourceType\": ".to_vec(), "/fhir/Observation").await,
        400
    );
    assert_eq!(
        raw(br#"{"resourceType": "Shoe"}"#.to_vec(), "/fhir/Shoe").await,
        404
    );
    // The server answers 413 as soon as the body passes the limit and closes the connection;
    // a client still sending may see that answer or a broken pipe, depending on timing. Try a
    // few times until the answer is read (it is always 413 when it is).
    let mut too_large = None;
    for _ in 0..8 {
        let sent = app
            .client
            .post(app.url("/fhir/Observation"))
            .bearer_auth(&t)
            .header("content-type", "application/fhir+json")
            .body(vec![b' '; 33 * 1024 * 1024])
            .send()
            .await;
        if let Ok(r) = sent {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
            too_large = Some(status);
            break;
        }
    }
    assert_eq!(
        too_large.expect("the 413 answer was read in one of the attempts"),
        413
    );
    let deep = format!(
        "{{\"resourceType\": \"Observation\", \"extension\": {}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(raw(deep.into_bytes(), "/fhir/Observation").await, 400);
    // A transaction with one invalid entry writes nothing and names the entry.
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "ok"}, "subject": subject}, "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "bad"}, "subject": subject, "issued": "yesterday"}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (status, body) = post_bundle(&app, &t, bundle).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "Bundle.entry[1]");
    assert!(body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("Observation.issued"));
    let after = tokio::task::block_in_place(|| app.store.counts_by_type().unwrap());
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_through_thousands_of_results_while_writes_happen_neither_repeats_nor_skips() {
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    let patient = app.patient_ids()[0].clone();
    let before: std::collections::BTreeSet<String> = tokio::task::block_in_place(|| {
        app.store
            .search_ids(
                &rapport_fhir::query::Query {
                    resource_type: "Observation".into(),
                    clauses: vec![],
                },
                100_000,
            )
            .unwrap()
            .into_iter()
            .collect()
    });
    assert!(before.len() >= 1000, "{}", before.len());
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/fhir/Observation?_count=100".to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let (status, _, body) = get(&app, &url, Some(&t)).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            ids_of(&body, "match")
                .into_iter()
                .map(|k| k.trim_start_matches("Observation/").to_owned()),
        );
        // Writes between pages: new observations whose ids fall anywhere in the order.
        for _ in 0..3 {
            let o = serde_json::json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "written while paging"}, "subject": {"reference": format!("Patient/{patient}")}});
            let (s, _, _) = send(&app, Method::POST, "/fhir/Observation", &t, Some(o), &[]).await;
            assert_eq!(s, 201);
        }
        next = body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        pages += 1;
        assert!(pages < 100, "paging does not end");
    }
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no result repeats");
    let missing: Vec<&String> = before.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "{} skipped: {missing:?}", missing.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_with_the_same_if_match_let_exactly_one_through() {
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    let patient = app.patient_ids()[0].clone();
    let o = serde_json::json!({"resourceType": "Observation", "status": "preliminary",
        "code": {"text": "raced"}, "subject": {"reference": format!("Patient/{patient}")}});
    let (_, _, body) = send(
        &app,
        Method::POST,
        "/fhir/Observation",
        &t,
        Some(o.clone()),
        &[],
    )
    .await;
    let id = body.unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/fhir/Observation/{id}");
    // Eight writers over the same version at once: tasks of their own, so the requests overlap.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let mut changed = o.clone();
        changed["id"] = id.clone().into();
        changed["valueString"] = format!("writer {i}").into();
        let request = app
            .client
            .put(app.url(&path))
            .bearer_auth(&t)
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(changed.to_string());
        writers.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut statuses: Vec<u16> = writers.join_all().await;
    statuses.sort();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    let (_, headers, _) = get(&app, &path, Some(&t)).await;
    assert_eq!(headers["etag"], "W/\"2\"");
}

/// Poll a bulk export's status URL until it is done; the manifest.
async fn wait_for_export(app: &TestApp, token: &str, status_url: &str) -> Value {
    for _ in 0..200 {
        let r = app
            .client
            .get(app.url(status_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            202 => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            200 => return r.json().await.unwrap(),
            other => panic!("status {other}: {}", r.text().await.unwrap()),
        }
    }
    panic!("the export did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_export_runs_asynchronously_and_exports_only_what_the_caller_may_read() {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    // A coordinator with one patient: her export holds that patient's compartment only.
    tokio::task::block_in_place(|| {
        app.add_user("exporter@test.example", "coordinator", None, None);
    });
    app.assign("exporter@test.example", &ids[0]);
    let t = token(&app, "exporter@test.example", "user/*.read");
    let expected: std::collections::BTreeMap<String, usize> = tokio::task::block_in_place(|| {
        let mut m = std::collections::BTreeMap::new();
        for r in app.store.patient_record(&ids[0]).unwrap() {
            *m.entry(r.key.resource_type.clone()).or_default() += 1;
        }
        m
    });
    // Without Prefer: respond-async: 400.
    let r = app
        .client
        .get(app.url("/fhir/Patient/$export"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let kick = |path: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(&t)
            .header("prefer", "respond-async")
            .header("accept", "application/fhir+json")
            .send()
    };
    let r = kick("/fhir/Patient/$export?_outputFormat=application/fhir%2Bndjson")
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let status_url = r.headers()["content-location"].to_str().unwrap().to_owned();
    let manifest = wait_for_export(&app, &t, &status_url).await;
    assert_eq!(manifest["requiresAccessToken"], true);
    let mut got = std::collections::BTreeMap::new();
    for output in manifest["output"].as_array().unwrap() {
        let url = output["url"].as_str().unwrap();
        let r = app
            .client
            .get(app.url(url))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
        let text = r.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, output["count"].as_u64().unwrap());
        for l in &lines {
            assert_eq!(l["resourceType"], output["type"]);
        }
        got.insert(output["type"].as_str().unwrap().to_owned(), lines.len());
    }
    assert_eq!(got, expected, "exactly the patient's compartment");
    // _type and _since narrow it.
    let r = kick("/fhir/Patient/$export?_type=Patient,Condition&_since=2000-01-01T00:00:00Z")
        .await
        .unwrap();
    let manifest =
        wait_for_export(&app, &t, r.headers()["content-location"].to_str().unwrap()).await;
    let types: Vec<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert!(
        types.iter().all(|t| *t == "Patient" || *t == "Condition"),
        "{types:?}"
    );
    // Another account cannot poll or fetch this job.
    let other = token(&app, "coordinator@test.example", "user/*.read");
    let r = app
        .client
        .get(app.url(&status_url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // DELETE cancels and removes it.
    let r = app
        .client
        .delete(app.url(&status_url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = app
        .client
        .get(app.url(&status_url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A bad _type is refused.
    let r = kick("/fhir/$export?_type=Shoe").await.unwrap();
    assert_eq!(r.status(), 400);
    // The export left an audit record naming the patient.
    let records = app.audit_after(0);
    assert!(records
        .iter()
        .any(|r| r.record.detail.starts_with("bulk export")
            && r.record.entities.contains(&format!("Patient/{}/*", ids[0]))
            && !r.record.entities.contains(&format!("Patient/{}/*", ids[1]))));
}

#[tokio::test(flavor = "multi_thread")]
async fn type_history_pages_through_every_readable_version_without_losing_any() {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    // A coordinator with one patient: most versions are not hers, and leaving them out must not
    // cut her history short.
    tokio::task::block_in_place(|| {
        app.add_user("historian@test.example", "coordinator", None, None);
    });
    app.assign("historian@test.example", &ids[0]);
    let t = token(&app, "historian@test.example", "user/*.read");
    let expected: std::collections::BTreeSet<String> = tokio::task::block_in_place(|| {
        app.store
            .patient_record(&ids[0])
            .unwrap()
            .into_iter()
            .filter(|r| r.key.resource_type == "Observation")
            .map(|r| r.key.id)
            .collect()
    });
    let mut seen = Vec::new();
    let mut next = Some("/fhir/Observation/_history?_count=7".to_owned());
    let mut total = None;
    while let Some(url) = next {
        let (status, _, body) = get(&app, &url, Some(&t)).await;
        assert_eq!(status, 200, "{body}");
        total.get_or_insert(body["total"].as_u64().unwrap());
        for e in body["entry"].as_array().unwrap() {
            seen.push(
                e["fullUrl"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        next = body["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
    }
    let unique: std::collections::BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique, expected,
        "every Observation of her patient, none of the others"
    );
    assert_eq!(total, Some(seen.len() as u64));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_through_the_api_creates_even_when_the_identifier_is_known() {
    // http.html#create: a create makes a new resource; only If-None-Exist asks for a match. (The
    // importer merges records of the same identifier from feeds; a user's create must not
    // silently overwrite another patient.)
    use reqwest::Method;
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.*");
    let p = |given: &str| serde_json::json!({"resourceType": "Patient", "identifier": [{"system": "urn:test:dup", "value": "D-1"}], "name": [{"family": "Dup", "given": [given]}]});
    let (s1, _, b1) = send(
        &app,
        Method::POST,
        "/fhir/Patient",
        &t,
        Some(p("First")),
        &[],
    )
    .await;
    let (s2, _, b2) = send(
        &app,
        Method::POST,
        "/fhir/Patient",
        &t,
        Some(p("Second")),
        &[],
    )
    .await;
    assert_eq!((s1, s2), (201, 201));
    let (id1, id2) = (b1.unwrap()["id"].clone(), b2.unwrap()["id"].clone());
    assert_ne!(id1, id2);
    let (_, _, first) = get(
        &app,
        &format!("/fhir/Patient/{}", id1.as_str().unwrap()),
        Some(&t),
    )
    .await;
    assert_eq!(first["name"][0]["given"][0], "First", "untouched");
    assert_eq!(first["meta"]["versionId"], "1");
    // With If-None-Exist the known one is returned instead.
    let (s3, _, b3) = send(
        &app,
        Method::POST,
        "/fhir/Patient",
        &t,
        Some(p("Third")),
        &[("if-none-exist", "identifier=urn:test:dup|D-1&given=first")],
    )
    .await;
    assert_eq!(s3, 200, "{b3:?}");
    assert_eq!(b3.unwrap()["id"], id1);
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_apps_on_other_origins_may_call_the_api_with_a_token_but_not_with_cookies() {
    let app = spawn_app().await;
    let t = token(&app, "coordinator@test.example", "user/*.read");
    // The preflight of a bearer-token read from another origin (Fetch standard, CORS).
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/fhir/Patient"))
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let r = app
        .client
        .get(app.url("/fhir/Patient?_count=1"))
        .header("origin", "https://app.example.org")
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}
