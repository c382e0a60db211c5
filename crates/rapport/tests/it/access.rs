//! Accounts and access over HTTP: the authorisation matrix over every console route that touches
//! patient data, audit completeness and tamper evidence, sign-in throttling and lockout, CSRF,
//! session rotation and expiry, break-the-glass (hard case B43) and token revocation (B40).

use rapport_web::{RouteAccess, RouteSpec};

use crate::cli::{rapport, url_string};
use crate::helpers::{spawn_app, Reply, Session, TestApp, PASSWORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// On my care team (staff), granted to me (caregiver).
    Mine,
    /// No relationship.
    Other,
    /// A patient account's own record.
    Own,
}

/// Who may do what: the matrix the issue asks for. The care team's work on alerts, tasks and
/// care plans is for care staff alone.
fn expected(role: &str, subject: Subject, access: RouteAccess) -> bool {
    let write = matches!(access, RouteAccess::PatientWrite | RouteAccess::CareWork);
    let care_work = access == RouteAccess::CareWork;
    match (role, subject) {
        ("clinician" | "coordinator", Subject::Mine) => true,
        ("patient", Subject::Own) => !care_work,
        ("caregiver", Subject::Mine) => !write,
        _ => false,
    }
}

struct World {
    mine: String,
    other: String,
    own: String,
}

/// The accounts of the matrix: one per role, related to the three patients as described.
fn setup(app: &TestApp) -> World {
    // The fixtures' CareTeams have all ended (status inactive): they give no access. A current
    // CareTeam is added for one patient, naming a Practitioner of that patient's old team; the
    // clinician is that Practitioner, so their access comes from FHIR CareTeam membership.
    let ids = app.patient_ids();
    let (mine, practitioner) = ids
        .iter()
        .find_map(|id| {
            let record = app.store.patient_record(id).unwrap();
            record
                .iter()
                .filter(|r| r.key.resource_type == "CareTeam")
                .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.content).ok())
                .flat_map(|t| t["participant"].as_array().cloned().unwrap_or_default())
                .find_map(|p| {
                    p.pointer("/member/reference")?
                        .as_str()?
                        .strip_prefix("Practitioner/")
                        .map(str::to_owned)
                })
                .map(|p| (id.clone(), p))
        })
        .expect("a fixture patient with a CareTeam naming a Practitioner");
    let now = app.state.clock.now_ms();
    assert!(
        rapport_auth::care_team_patients(app.store.as_ref(), &practitioner, None, now)
            .unwrap()
            .is_empty(),
        "ended teams give no access"
    );
    let team = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:7b0c1f54-3f8e-4f3e-9a57-0d4c2b1e9a11",
        "resource": {"resourceType": "CareTeam", "status": "active",
            "subject": {"reference": format!("Patient/{mine}")},
            "participant": [{"member": {"reference": format!("Practitioner/{practitioner}")}}]},
        "request": {"method": "POST", "url": "CareTeam"}}]});
    let unit = rapport_ingest::Unit {
        name: "care-team.json".into(),
        kind: "file",
        payload: rapport_ingest::Payload::Value(team),
    };
    let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let now = app.state.clock.now_ms();
    let teams =
        rapport_auth::care_team_patients(app.store.as_ref(), &practitioner, None, now).unwrap();
    assert!(teams.contains(&mine));
    let mut outside = ids.iter().filter(|id| !teams.contains(*id) && **id != mine);
    let other = outside.next().expect("a patient outside the team").clone();
    let own = outside
        .next()
        .expect("a second patient outside the team")
        .clone();
    app.add_user(
        "clinician@test.example",
        "clinician",
        None,
        Some(&practitioner),
    );
    app.add_user("coord2@test.example", "coordinator", None, None);
    app.assign("coord2@test.example", &mine);
    app.add_user("patient@test.example", "patient", Some(&own), None);
    app.add_user("caregiver@test.example", "caregiver", None, None);
    rapport_auth::grant(
        app.store.as_ref(),
        &rapport_access::audit::Actor::command_line("test"),
        "cli",
        "caregiver@test.example",
        &mine,
        Some(false),
        now,
    )
    .unwrap();
    // Alerts for each patient: a high potassium raises a real one (the living get it), and a
    // dismissed row of its own gives POST /alerts/{id} an alert to act on (dismissed alerts are
    // neither listed nor touched by the rules, so nothing changes under the matrix's feet).
    for p in [&mine, &other, &own] {
        // And a task to act on (open, not due: no alert).
        let task = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Task", "id": format!("matrix-{p}"), "status": "requested",
                "intent": "order", "description": "Matrix task", "for": {"reference": format!("Patient/{p}")}},
            "request": {"method": "PUT", "url": format!("Task/matrix-{p}")}}]});
        let unit = rapport_ingest::Unit {
            name: "task.json".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(task),
        };
        let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Observation", "status": "final",
                "code": {"text": "Potassium"}, "subject": {"reference": format!("Patient/{p}")},
                "issued": chrono::DateTime::from_timestamp_millis(now - 3_600_000).unwrap().to_rfc3339(),
                "valueQuantity": {"value": 6.2, "unit": "mmol/L"},
                "interpretation": [{"coding": [{"code": "H"}]}]},
            "request": {"method": "POST", "url": "Observation"}}]});
        let unit = rapport_ingest::Unit {
            name: "potassium.json".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(bundle),
        };
        let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        app.store
            .write(rapport_store::Durability::Immediate, &mut |tx| {
                tx.sync_alerts(
                    p,
                    &[rapport_store::alerts::AlertCandidate {
                        rule: "matrix".into(),
                        cause: "check".into(),
                        severity: 2,
                        title: "Matrix check".into(),
                        why: "for the authorisation matrix".into(),
                        due_ms: None,
                        focus: None,
                    }],
                    now,
                    None,
                )
                .map(|_| ())
            })
            .unwrap();
        let id = app
            .store
            .patient_alerts(p, true)
            .unwrap()
            .iter()
            .find(|a| a.candidate.rule == "matrix")
            .unwrap()
            .alert_id;
        app.store
            .write(rapport_store::Durability::Immediate, &mut |tx| {
                tx.change_alert(
                    id,
                    &rapport_store::alerts::AlertAction::Dismiss {
                        reason: "matrix".into(),
                    },
                    now,
                )
                .map(|_| ())
            })
            .unwrap();
    }
    // Evaluated now, not while the matrix counts audit records.
    rapport_ingest::alerts::drain(
        app.store.as_ref(),
        &rapport_alerts::Config::default(),
        &|| now,
    )
    .unwrap();
    World { mine, other, own }
}

const ROLES: [(&str, &str); 5] = [
    ("admin", "admin@test.example"),
    ("clinician", "clinician@test.example"),
    ("coordinator", "coord2@test.example"),
    ("patient", "patient@test.example"),
    ("caregiver", "caregiver@test.example"),
];

/// Make the request a route stands for, about `patient`. Every route that touches patient data
/// must have a case here; a new one fails the test until it is added.
async fn request(
    session: &Session<'_>,
    token: &str,
    spec: &RouteSpec,
    patient: &str,
    target: &str,
) -> Reply {
    let observation = |id: Option<&str>| {
        let mut o = serde_json::json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "Matrix check"}, "subject": {"reference": format!("Patient/{patient}")}});
        if let Some(id) = id {
            o["id"] = serde_json::json!(id);
        }
        o
    };
    let api = |method: reqwest::Method, path: String, body: Option<serde_json::Value>| async move {
        let mut r = session
            .app
            .client
            .request(method, session.app.url(&path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        crate::helpers::reply(r.send().await.unwrap()).await
    };
    // FHIR writes go with the account's bearer token: the API takes no cookies for writes.
    match (spec.method, spec.path) {
        ("POST", "/fhir/{type}") => {
            api(reqwest::Method::POST, "/fhir/Observation".into(), Some(observation(None))).await
        }
        ("PUT", "/fhir/{type}/{id}") => {
            let path = format!("/fhir/Observation/{target}");
            api(reqwest::Method::PUT, path, Some(observation(Some(target)))).await
        }
        ("DELETE", "/fhir/{type}/{id}") => {
            api(reqwest::Method::DELETE, format!("/fhir/Observation/{target}"), None).await
        }
        ("POST", "/fhir" | "/fhir/") => {
            let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": observation(Some(target)), "request": {"method": "PUT", "url": format!("Observation/{target}")}}]});
            api(reqwest::Method::POST, "/fhir".into(), Some(bundle)).await
        }
        ("GET", "/fhir/{type}") => session.get(&format!("/fhir/Patient?_id={patient}")).await,
        ("POST", "/fhir/{type}/_search") => {
            let r = session
                .app
                .client
                .post(session.app.url("/fhir/Patient/_search"))
                .bearer_auth(token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("_id={patient}"))
                .send()
                .await
                .unwrap();
            crate::helpers::reply(r).await
        }
        ("GET", "/fhir/_history") => session.get("/fhir/_history?_since=2020-01-01&_count=50").await,
        ("PATCH", "/fhir/{type}/{id}") => {
            let r = session
                .app
                .client
                .patch(session.app.url(&format!("/fhir/Observation/{target}")))
                .bearer_auth(token)
                .header("content-type", "application/json-patch+json")
                .body(r#"[{"op": "replace", "path": "/status", "value": "amended"}]"#)
                .send()
                .await
                .unwrap();
            crate::helpers::reply(r).await
        }
        ("PUT", "/fhir/{type}") => {
            // A conditional update that matches nothing creates (http.html#cond-update).
            let path = format!("/fhir/Observation?_id={target}");
            let mut body = observation(None);
            body["identifier"] = serde_json::json!([{"system": "urn:test:matrix", "value": target}]);
            api(reqwest::Method::PUT, path, Some(body)).await
        }
        ("DELETE", "/fhir/{type}") => {
            api(reqwest::Method::DELETE, format!("/fhir/Observation?_id={target}"), None).await
        }
        ("GET", "/patients") => session.get("/patients").await,
        ("POST", "/patients") => session.submit("/patients", &[]).await,
        ("GET", "/patients/{id}") => session.get(&format!("/patients/{patient}")).await,
        ("POST", "/patients/{id}/notes") => session.submit(&format!("/patients/{patient}/notes"), &[("text", "Called the patient; all well.")]).await,
        // Without a reason: care staff outside the team are refused (and recorded); the full
        // break-the-glass flow has its own test below.
        ("POST", "/patients/{id}/break-glass") => session.submit(&format!("/patients/{patient}/break-glass"), &[("reason", "")]).await,
        ("GET", "/fhir/{type}/{id}/{operation}") => session.get(&format!("/fhir/Patient/{patient}/$everything")).await,
        ("GET", "/fhir/{type}/{id}") => session.get(&format!("/fhir/Patient/{patient}")).await,
        ("GET", "/today") => session.get("/today").await,
        ("POST", "/patients/{id}/tasks") => session.submit(&format!("/patients/{patient}/tasks"), &[("description", "Call the patient"), ("due", "2030-01-31"), ("priority", "routine"), ("assignee", "coordinator")]).await,
        ("POST", "/patients/{id}/careplans") => session.submit(&format!("/patients/{patient}/careplans"), &[("title", "Matrix plan"), ("goal", "Checked"), ("activity1", "Call the patient"), ("date1", "2030-01-31")]).await,
        ("POST", "/patients/{id}/careplans/{plan}") => session.submit(&format!("/patients/{patient}/careplans/{target}"), &[("action", "complete")]).await,
        ("POST", "/patients/{id}/tasks/{task}") => session.submit(&format!("/patients/{patient}/tasks/matrix-{patient}"), &[("action", "comment"), ("comment", "Checked.")]).await,
        ("POST", "/alerts/{id}") => {
            let id = tokio::task::block_in_place(|| {
                session.app.store.patient_alerts(patient, true).unwrap().iter().find(|a| a.candidate.rule == "matrix").unwrap().alert_id
            });
            session.submit(&format!("/alerts/{id}"), &[("action", "dismiss"), ("reason", "matrix"), ("back", "/today")]).await
        }
        ("GET", "/patients/{id}/messages") => session.get(&format!("/patients/{patient}/messages")).await,
        ("GET", "/fhir/{type}/{id}/_history/{vid}") => session.get(&format!("/fhir/Patient/{patient}/_history/1")).await,
        (method, path) => panic!("route {method} {path} touches patient data but is not in the authorisation matrix: add it to access.rs"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorisation_matrix_holds_on_every_patient_route_and_each_request_leaves_one_audit_record(
) {
    let app = spawn_app().await;
    let world = tokio::task::block_in_place(|| setup(&app));
    let routes: Vec<RouteSpec> = rapport_web::routes()
        .into_iter()
        .filter(|r| r.access.touches_patient_data())
        .collect();
    assert!(routes.len() >= 5, "{routes:?}");
    let mut checked = 0;
    for (role, email) in ROLES {
        let session = app.login(email).await;
        let token = tokio::task::block_in_place(|| {
            let new = rapport_auth::NewToken {
                email: email.into(),
                scopes: "user/*.*".into(),
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
        });
        for spec in &routes {
            for (subject, patient) in [
                (Subject::Mine, &world.mine),
                (Subject::Other, &world.other),
                (Subject::Own, &world.own),
            ] {
                // A resource of the patient for the delete to remove (written before the
                // count starts), and a fresh id for the create-on-update.
                let target = uuid::Uuid::new_v4().to_string();
                if spec.path == "/patients/{id}/careplans/{plan}" {
                    // An active plan of the patient for the request to end.
                    tokio::task::block_in_place(|| {
                        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                            "resource": {"resourceType": "CarePlan", "id": target, "status": "active", "intent": "plan",
                                "title": "Matrix plan", "subject": {"reference": format!("Patient/{patient}")}},
                            "request": {"method": "PUT", "url": format!("CarePlan/{target}")}}]});
                        let unit = rapport_ingest::Unit {
                            name: "plan.json".into(),
                            kind: "file",
                            payload: rapport_ingest::Payload::Value(bundle),
                        };
                        let report = rapport_ingest::apply_unit(
                            app.store.as_ref(),
                            &unit,
                            app.state.clock.now_ms(),
                            false,
                        );
                        assert!(report.errors.is_empty(), "{:?}", report.errors);
                    });
                }
                if matches!(spec.method, "DELETE" | "PATCH") || spec.path == "/fhir/_history" {
                    tokio::task::block_in_place(|| {
                        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                            "resource": {"resourceType": "Observation", "id": target, "status": "final", "code": {"text": "To delete"}, "subject": {"reference": format!("Patient/{patient}")}},
                            "request": {"method": "PUT", "url": format!("Observation/{target}")}}]});
                        let unit = rapport_ingest::Unit {
                            name: "matrix.json".into(),
                            kind: "file",
                            payload: rapport_ingest::Payload::Value(bundle),
                        };
                        let report = rapport_ingest::apply_unit(
                            app.store.as_ref(),
                            &unit,
                            app.state.clock.now_ms(),
                            false,
                        );
                        assert!(report.errors.is_empty(), "{:?}", report.errors);
                    });
                }
                let before = app.last_audit_seq();
                let reply = request(&session, &token, spec, patient, &target).await;
                let allowed = expected(role, subject, spec.access);
                let case = format!(
                    "{role} {} {} on {subject:?}: {} {}",
                    spec.method,
                    spec.path,
                    reply.status,
                    reply.location.as_deref().unwrap_or("")
                );
                let records = app.audit_after(before);
                assert_eq!(
                    records.len(),
                    1,
                    "{case}: expected exactly one audit record, got {records:#?}"
                );
                let r = &records[0].record;
                assert_eq!(r.actor.label, email, "{case}");
                match spec.access {
                    RouteAccess::PatientList if spec.path == "/fhir/_history" => {
                        // History lists only the versions that may be read.
                        let listed = reply.body.contains(&format!("\"Observation/{target}\""))
                            || reply.body.contains(&format!("/Observation/{target}\""));
                        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
                        assert_eq!(listed, allowed, "{case}");
                        assert_eq!(r.action.as_str(), "list", "{case}");
                        assert_eq!(
                            r.entities.contains(&format!("Observation/{target}")),
                            allowed,
                            "{case}"
                        );
                    }
                    RouteAccess::PatientList if spec.path.starts_with("/fhir") => {
                        // A FHIR search leaves out, and does not count, what may not be read.
                        let bundle: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
                        assert_eq!(reply.status, 200, "{case}");
                        assert_eq!(bundle["total"], if allowed { 1 } else { 0 }, "{case}");
                        assert_eq!(r.action.as_str(), "list", "{case}");
                        assert_eq!(
                            r.entities.contains(&format!("Patient/{patient}")),
                            allowed,
                            "{case}"
                        );
                    }
                    RouteAccess::PatientList => {
                        let listed = reply
                            .body
                            .contains(&format!("href=\"/patients/{patient}\""));
                        // Today lists patients that have alerts showing (the deceased have none).
                        let allowed = allowed
                            && (spec.path != "/today"
                                || tokio::task::block_in_place(|| {
                                    !app.store
                                        .showing_alerts(
                                            std::slice::from_ref(patient),
                                            app.state.clock.now_ms(),
                                            10,
                                        )
                                        .unwrap()
                                        .is_empty()
                                }));
                        assert_eq!(listed, allowed, "{case}");
                        assert_eq!(
                            reply.status,
                            if role == "admin" { 403 } else { 200 },
                            "{case}"
                        );
                        assert_eq!(r.action.as_str(), "list", "{case}");
                        assert_eq!(
                            r.entities.contains(&format!("Patient/{patient}")),
                            allowed,
                            "{case}"
                        );
                    }
                    RouteAccess::PatientRead => {
                        assert_eq!(reply.status, if allowed { 200 } else { 403 }, "{case}");
                        assert_eq!(
                            (r.action.as_str(), r.patient_id.as_deref()),
                            ("read", Some(patient.as_str())),
                            "{case}"
                        );
                        assert_eq!(
                            r.outcome.as_str(),
                            if allowed { "success" } else { "denied" },
                            "{case}"
                        );
                    }
                    RouteAccess::PatientWrite | RouteAccess::CareWork => {
                        let ok = match (spec.method, spec.path.starts_with("/fhir")) {
                            ("POST", true) if spec.path.trim_end_matches('/') == "/fhir" => 200,
                            ("PATCH", true) => 200,
                            ("POST" | "PUT", true) => 201,
                            ("DELETE", true) => 204,
                            _ => 303,
                        };
                        assert_eq!(
                            reply.status,
                            if allowed { ok } else { 403 },
                            "{case}: {}",
                            reply.body
                        );
                        assert_eq!(
                            (r.action.as_str(), r.patient_id.as_deref()),
                            ("write", Some(patient.as_str())),
                            "{case}"
                        );
                        assert_eq!(
                            r.outcome.as_str(),
                            if allowed { "success" } else { "denied" },
                            "{case}"
                        );
                    }
                    RouteAccess::BreakGlass => {
                        let staff = matches!(role, "clinician" | "coordinator");
                        let status = match (allowed, staff) {
                            (true, _) => 303,
                            (false, true) => 400,
                            (false, false) => 403,
                        };
                        assert_eq!(reply.status, status, "{case}");
                        assert_eq!(
                            (r.action.as_str(), r.patient_id.as_deref()),
                            ("break-glass", Some(patient.as_str())),
                            "{case}"
                        );
                        assert_eq!(
                            r.outcome.as_str(),
                            if allowed { "success" } else { "denied" },
                            "{case}"
                        );
                    }
                    other => unreachable!("{other:?}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, ROLES.len() * routes.len() * 3);
    // A write by the patient shows in their own record, with its provenance.
    let patient = app.login("patient@test.example").await;
    let page = patient.get(&format!("/patients/{}", world.own)).await.body;
    assert!(
        page.contains("Called the patient; all well."),
        "the note is on the 360 page"
    );
    // The whole trail verifies.
    let verified =
        tokio::task::block_in_place(|| rapport_auth::verify_audit(app.store.as_ref()).unwrap());
    assert!(verified.is_ok(), "{verified:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_pages_are_for_admins_and_the_audit_trail_exports_as_fhir_audit_events() {
    let app = spawn_app().await;
    let coordinator = app.login("coordinator@test.example").await;
    let admin = app.login("admin@test.example").await;
    for spec in rapport_web::routes()
        .iter()
        .filter(|r| r.access == RouteAccess::Admin && r.method == "GET")
    {
        assert_eq!(
            coordinator.get(spec.path).await.status,
            403,
            "{}",
            spec.path
        );
        assert_eq!(admin.get(spec.path).await.status, 200, "{}", spec.path);
    }
    let export = admin.get("/admin/audit/export").await.body;
    let first: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["resourceType"], "AuditEvent");
    assert!(
        export.lines().any(|l| l.contains("\"sign-in\"")),
        "sign-ins are in the trail"
    );
    assert!(
        export.lines().any(|l| l.contains("\"import\"")),
        "imports are in the trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_altered_in_the_database_makes_audit_verify_name_it() {
    let app = spawn_app().await;
    let url = url_string(&app.db.url);
    let out = rapport()
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let target = app.audit_after(0)[2].seq;
    // Behind the application's back: the append-only triggers must be removed first.
    match &app.db.url {
        rapport_store::DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            assert!(
                conn.execute(
                    "UPDATE audit_event SET actor = 'someone-else' WHERE seq = ?1",
                    [target]
                )
                .is_err(),
                "the trigger refuses updates"
            );
            conn.execute_batch("DROP TRIGGER audit_event_no_update")
                .unwrap();
            conn.execute(
                "UPDATE audit_event SET actor = 'someone-else' WHERE seq = ?1",
                [target],
            )
            .unwrap();
        }
        rapport_store::DatabaseUrl::Postgres(u) => {
            let u = u.clone();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
                assert!(c
                    .execute(
                        "UPDATE audit_event SET actor = 'someone-else' WHERE seq = $1",
                        &[&target]
                    )
                    .is_err());
                c.batch_execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
                    .unwrap();
                c.execute(
                    "UPDATE audit_event SET actor = 'someone-else' WHERE seq = $1",
                    &[&target],
                )
                .unwrap();
            })
            .join()
            .unwrap();
        }
    }
    let out = rapport()
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains(&format!("broken at record {target}")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_removed_from_the_end_of_the_trail_make_audit_verify_fail() {
    // A hash chain alone cannot tell a trail cut short from a complete one; the head row that
    // every append moves (schema 4) can.
    let app = spawn_app().await;
    let url = url_string(&app.db.url);
    let last = app.audit_after(0).last().unwrap().seq;
    match &app.db.url {
        rapport_store::DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch("DROP TRIGGER audit_event_no_delete")
                .unwrap();
            conn.execute("DELETE FROM audit_event WHERE seq = ?1", [last])
                .unwrap();
        }
        rapport_store::DatabaseUrl::Postgres(u) => {
            let u = u.clone();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
                c.batch_execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
                    .unwrap();
                c.execute("DELETE FROM audit_event WHERE seq = $1", &[&last])
                    .unwrap();
            })
            .join()
            .unwrap();
        }
    }
    let out = rapport()
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("broken at record {last}")) && stdout.contains("removed"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_audit_appends_form_one_unbroken_chain() {
    // Eight threads append at once (on PostgreSQL each append is one statement that locks the
    // head row, with the hash computed in SQL): every record links to the one before it.
    let app = spawn_app().await;
    let before = app.audit_after(0).len();
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            for t in 0..8 {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..25 {
                        let record = rapport_access::audit::AuditRecord {
                            recorded_ms: 1_700_000_000_000 + i,
                            actor: rapport_access::audit::Actor {
                                user_id: None,
                                label: format!("thread-{t}"),
                                role: "system".into(),
                            },
                            action: rapport_access::audit::AuditAction::Read,
                            outcome: rapport_access::audit::Outcome::Success,
                            patient_id: None,
                            entities: vec![format!("Test/{t}-{i}")],
                            source: "test".into(),
                            basis: "test".into(),
                            purpose: None,
                            flagged: false,
                            detail: String::new(),
                        };
                        store.append_audit_committed(&record).unwrap();
                    }
                });
            }
        });
    })
    .await
    .unwrap();
    let store = app.store.clone();
    let verified = tokio::task::spawn_blocking(move || rapport_auth::verify_audit(store.as_ref()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified, Ok((before + 200) as u64));
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failed_sign_ins_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    for _ in 0..4 {
        let r = app
            .try_login("coordinator@test.example", "wrong password entirely")
            .await
            .err()
            .unwrap();
        assert_eq!(r.status, 401);
        assert!(r.body.contains("not right"));
    }
    let r = app
        .try_login("coordinator@test.example", "wrong password entirely")
        .await
        .err()
        .unwrap();
    assert!(r.body.contains("temporarily locked"), "{}", r.body);
    // Even the right password is refused while locked.
    let r = app
        .try_login("coordinator@test.example", PASSWORD)
        .await
        .err()
        .unwrap();
    assert!(r.body.contains("temporarily locked"));
    app.state.clock.advance(16 * 60 * 1000);
    app.login("coordinator@test.example").await;
    let failures = app
        .audit_after(0)
        .iter()
        .filter(|r| r.record.action.as_str() == "sign-in-failed")
        .count();
    assert_eq!(failures, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_the_session_csrf_token_are_refused() {
    let app = spawn_app().await;
    let me = app.login("coordinator@test.example").await;
    let id = app.patient_ids()[0].clone();
    for token in ["", "forged"] {
        let r = me
            .post(
                &format!("/patients/{id}/notes"),
                &[("csrf", token), ("text", "x")],
            )
            .await;
        assert_eq!(r.status, 403);
        assert!(r.body.contains("Form expired"));
    }
    // Every form that changes something refuses a forged token, whatever the route: each POST of
    // the console, the admin pages and the app authorisation, as an admin who is also care staff
    // (so that no refusal for the role can hide a missing CSRF check).
    tokio::task::block_in_place(|| {
        app.add_user("both@test.example", "admin,coordinator", None, None);
    });
    let both = app.login("both@test.example").await;
    let mut checked = 0;
    for spec in rapport_web::routes().into_iter().filter(|r| {
        r.method == "POST"
            && !r.path.starts_with("/fhir")
            && !matches!(r.path, "/login" | "/oauth/token")
    }) {
        // Patients are named by their id, accounts and reviews by number.
        let path = if spec.path.starts_with("/patients") {
            spec.path.replace("{id}", &id)
        } else {
            regex_free_params(spec.path)
        };
        // Every field any of these forms has, with plausible values, so that the form parses
        // and only the token is wrong.
        let fields = [
            ("csrf", "forged"),
            ("text", "A note."),
            ("reason", "Emergency admission, patient unconscious."),
            ("email", "new@test.example"),
            ("name", "New Person"),
            ("role", "coordinator"),
            ("roles", "coordinator"),
            ("password", "a-long-enough-password-1"),
            ("patient", id.as_str()),
            ("note", "Reviewed."),
            ("disabled", "true"),
            ("assigned", "true"),
        ];
        let r = both.post(&path, &fields).await;
        assert_eq!(r.status, 403, "POST {path} with a forged token: {}", r.body);
        assert!(r.body.contains("Form expired"), "POST {path}: {}", r.body);
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
    // The sign-in form needs its own token too (login CSRF).
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("csrf", "x"),
            ("email", "coordinator@test.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_rotates_the_session_and_signing_out_or_idling_ends_it() {
    let app = spawn_app().await;
    let first = app.login("coordinator@test.example").await;
    assert_eq!(first.get("/patients").await.status, 200);
    // Signing in again from the same browser: a new session id; the old one is dead.
    let form_page = app.client.get(app.url("/login")).send().await.unwrap();
    let login_cookie = form_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rapport_login_csrf="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = crate::helpers::csrf_of(&form_page.text().await.unwrap()).unwrap();
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", format!("{login_cookie}; {}", first.cookie))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "coordinator@test.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let second_cookie = crate::helpers::session_cookie(&r).unwrap();
    assert_ne!(second_cookie, first.cookie);
    let cookie_attrs = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rapport_session="))
        .unwrap()
        .to_owned();
    assert!(
        cookie_attrs.contains("HttpOnly") && cookie_attrs.contains("SameSite=Lax"),
        "{cookie_attrs}"
    );
    let old = first.get("/patients").await;
    assert_eq!(
        (old.status, old.location.as_deref()),
        (303, Some("/login?next=/patients"))
    );
    let second = Session {
        app: &app,
        cookie: second_cookie,
        csrf: first.csrf.clone(),
    };
    let page = second.get("/patients").await;
    assert_eq!(page.status, 200);
    // Pages are never cached, and carry the security headers.
    let r = app
        .client
        .get(app.url("/patients"))
        .header("cookie", &second.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Idle for 31 minutes: the session has ended.
    app.state.clock.advance(31 * 60 * 1000);
    assert_eq!(second.get("/patients").await.status, 303);
    // Sign out ends a session at once.
    let third = app.login("coordinator@test.example").await;
    assert_eq!(third.submit("/logout", &[]).await.status, 303);
    assert_eq!(third.get("/patients").await.status, 303);
    // However active, a session ends 12 hours after sign-in.
    let fourth = app.login("coordinator@test.example").await;
    for _ in 0..25 {
        app.state.clock.advance(29 * 60 * 1000);
        if fourth.get("/patients").await.status != 200 {
            break;
        }
    }
    assert_eq!(fourth.get("/patients").await.status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn break_the_glass_needs_a_reason_is_flagged_for_review_and_expires_b43() {
    let app = spawn_app().await;
    let world = tokio::task::block_in_place(|| setup(&app));
    let gp = app.login("clinician@test.example").await;
    let path = format!("/patients/{}", world.other);
    // 1. Refused, and the refusal offers break-the-glass.
    let first = gp.get(&path).await;
    assert_eq!(first.status, 403);
    assert!(
        first.body.contains("break the glass") && first.body.contains("/break-glass"),
        "{}",
        first.body
    );
    // 2. With a reason: access to this patient only, recorded with the reason and flagged.
    let r = gp
        .submit(
            &format!("{path}/break-glass"),
            &[("reason", "unconscious in ED")],
        )
        .await;
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some(path.as_str()))
    );
    let page = gp.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Emergency access"));
    let records = app.audit_after(0);
    let glass = records
        .iter()
        .find(|r| {
            r.record.action.as_str() == "break-glass" && r.record.outcome.as_str() == "success"
        })
        .unwrap();
    assert_eq!(glass.record.purpose.as_deref(), Some("unconscious in ED"));
    assert!(glass.record.flagged);
    let event = rapport_access::audit::to_audit_event(glass);
    assert_eq!(
        event["agent"][0]["purposeOfUse"][0]["coding"][0]["code"],
        "ETREAT"
    );
    let read = records
        .iter()
        .rev()
        .find(|r| r.record.action.as_str() == "read")
        .unwrap();
    assert_eq!(read.record.basis, "break-the-glass");
    // 3. Scoped to that patient: another is still refused.
    assert_eq!(
        gp.get(&format!("/patients/{}", world.own)).await.status,
        403
    );
    // The admin sees it for review.
    let admin = app.login("admin@test.example").await;
    let reviews = admin.get("/admin/break-glass").await.body;
    assert!(reviews.contains("unconscious in ED") && reviews.contains("Mark reviewed"));
    // 4. After expiry (one hour), refused again.
    app.state.clock.advance(61 * 60 * 1000);
    let gp = app.login("clinician@test.example").await;
    assert_eq!(gp.get(&path).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_carry_scopes_and_stop_working_when_revoked_b40() {
    let app = spawn_app().await;
    let now = app.state.clock.now_ms();
    let actor = rapport_access::audit::Actor::command_line("test");
    let (id, token) = tokio::task::block_in_place(|| {
        rapport_auth::create_token(
            app.store.as_ref(),
            &actor,
            "cli",
            &rapport_auth::NewToken {
                email: "coordinator@test.example".into(),
                scopes: "user/*.read".into(),
                days: 30,
                label: "test".into(),
            },
            now,
        )
        .unwrap()
    });
    let patient = app.patient_ids()[0].clone();
    let get = |path: String, token: String| {
        let client = app.client.clone();
        let url = app.url(&path);
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        get(format!("/patients/{patient}"), token.clone()).await,
        200
    );
    // Read scope: no write.
    let r = app
        .client
        .post(app.url(&format!("/patients/{patient}/notes")))
        .bearer_auth(&token)
        .form(&[("text", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    tokio::task::block_in_place(|| {
        rapport_auth::revoke_token(app.store.as_ref(), &actor, "cli", id, now).unwrap()
    });
    assert_eq!(
        get(format!("/patients/{patient}"), token.clone()).await,
        401
    );
    assert_eq!(get("/patients".into(), "rpt_unknown".into()).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_practitioner_on_many_care_teams_sees_every_one_of_those_patients() {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    let chosen: Vec<String> = ids.iter().take(6).cloned().collect();
    let practitioner = "pract-many-teams";
    tokio::task::block_in_place(|| {
        let now = app.state.clock.now_ms();
        let mut entries: Vec<serde_json::Value> = vec![serde_json::json!({
            "resource": {"resourceType": "Practitioner", "id": practitioner, "name": [{"family": "Busy", "given": ["Gale"]}]},
            "request": {"method": "PUT", "url": format!("Practitioner/{practitioner}")}})];
        let teams: Vec<serde_json::Value> = chosen
            .iter()
            .map(|p| {
                serde_json::json!({
                    "resource": {"resourceType": "CareTeam", "status": "active",
                        "subject": {"reference": format!("Patient/{p}")},
                        "participant": [{"member": {"reference": format!("Practitioner/{practitioner}")}}]},
                    "request": {"method": "POST", "url": "CareTeam"}})
            })
            .collect();
        entries.extend(teams);
        let bundle =
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let unit = rapport_ingest::Unit {
            name: "teams.json".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(bundle),
        };
        let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        app.add_user(
            "busy-gp@test.example",
            "clinician",
            None,
            Some(practitioner),
        );
    });
    let gp = app.login("busy-gp@test.example").await;
    let page = gp.get("/patients").await.body;
    assert!(page.contains("Showing 1–6 of 6"), "{page}");
    for p in &chosen {
        assert!(page.contains(&format!("href=\"/patients/{p}\"")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_failed_sign_ins_from_one_address_are_refused_and_unknown_emails_lock_like_real_ones(
) {
    let settings = rapport_web::Settings {
        sign_in_attempts_per_address: 8,
        ..rapport_web::Settings::default()
    };
    let app = crate::helpers::spawn_app_with(settings).await;
    // Successful sign-ins do not count against the address.
    for _ in 0..10 {
        app.login("coordinator@test.example").await;
    }
    // An e-mail with no account "locks" after as many failures as a real account does, so the
    // message does not tell which accounts exist.
    for i in 0..5 {
        let r = app
            .try_login("nobody@test.example", "whatever it may be")
            .await
            .err()
            .unwrap();
        let locked = r.body.contains("temporarily locked");
        assert_eq!(locked, i == 4, "attempt {i}: {}", r.body);
    }
    for i in 5..8 {
        let r = app
            .try_login(&format!("nobody{i}@test.example"), "whatever it may be")
            .await
            .err()
            .unwrap();
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = app
        .try_login("coordinator@test.example", PASSWORD)
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many sign-in attempts"));
    let throttled = app
        .audit_after(0)
        .iter()
        .filter(|r| r.record.basis == "throttled")
        .count();
    assert_eq!(throttled, 1, "a refused attempt is audited");
    // The window passes.
    app.state.clock.advance(5 * 60 * 1000);
    app.login("coordinator@test.example").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_pages_refuse_api_tokens_and_admins_cannot_review_their_own_break_the_glass() {
    let app = spawn_app().await;
    let world = tokio::task::block_in_place(|| setup(&app));
    let actor = rapport_access::audit::Actor::command_line("test");
    let now = app.state.clock.now_ms();
    let (_, token) = tokio::task::block_in_place(|| {
        rapport_auth::create_token(
            app.store.as_ref(),
            &actor,
            "cli",
            &rapport_auth::NewToken {
                email: "admin@test.example".into(),
                scopes: "user/*.*".into(),
                days: 1,
                label: String::new(),
            },
            now,
        )
        .unwrap()
    });
    for (path, form) in [
        (
            "/admin/users",
            vec![
                ("email", "x@test.example"),
                ("name", "X"),
                ("role", "clinician,admin"),
                ("password", PASSWORD),
            ],
        ),
        ("/admin/users/1/disabled", vec![("disabled", "true")]),
    ] {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = app
        .client
        .get(app.url("/admin/audit/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A clinician who is also an admin breaks the glass, and may not review it.
    app.add_user("both@test.example", "clinician,admin", None, None);
    let both = app.login("both@test.example").await;
    let r = both
        .submit(
            &format!("/patients/{}/break-glass", world.other),
            &[("reason", "checking a referral urgently")],
        )
        .await;
    assert_eq!(r.status, 303);
    let id = tokio::task::block_in_place(|| app.store.break_glass_list(true, 10).unwrap()[0].id);
    let r = both
        .submit(
            &format!("/admin/break-glass/{id}/review"),
            &[("note", "fine")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("your own"));
    let admin = app.login("admin@test.example").await;
    assert_eq!(
        admin
            .submit(
                &format!("/admin/break-glass/{id}/review"),
                &[("note", "checked with the ward")]
            )
            .await
            .status,
        303
    );
    // Unknown pages and malformed forms get the application's own error pages.
    let r = admin.get("/no-such-page").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("Not found"));
    let r = admin.post("/logout", &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("incomplete or malformed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caregiver_with_read_only_access_is_not_offered_the_note_form() {
    let app = spawn_app().await;
    let world = tokio::task::block_in_place(|| setup(&app));
    let carer = app.login("caregiver@test.example").await;
    let page = carer.get(&format!("/patients/{}", world.mine)).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Add a note"));
    let coordinator = app.login("coord2@test.example").await;
    assert!(coordinator
        .get(&format!("/patients/{}", world.mine))
        .await
        .body
        .contains("Add a note"));
}

/// A route path with any remaining `{param}` replaced by `1`.
fn regex_free_params(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}
