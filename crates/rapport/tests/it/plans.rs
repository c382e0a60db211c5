//! Alerts through the FHIR API (as Flags), care plans whose activities become tasks on their
//! dates, and open tasks on the Today page: end to end on the real app, on either backend.

use rapport_store::Durability;
use serde_json::{json, Value};

use crate::helpers::{critical_potassium, living_patient, spawn_app, TestApp};

const DAY: i64 = 86_400_000;

fn token(app: &TestApp, email: &str) -> String {
    tokio::task::block_in_place(|| {
        rapport_auth::create_token(
            app.store.as_ref(),
            &rapport_access::audit::Actor::command_line("test"),
            "cli",
            &rapport_auth::NewToken {
                email: email.into(),
                scopes: "user/*.*".into(),
                days: 1,
                label: "test".into(),
            },
            app.state.clock.now_ms(),
        )
        .unwrap()
        .1
    })
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn entries(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Flag")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_read_and_searched_as_fhir_flags_only_by_those_who_may_and_never_written() {
    let app = spawn_app().await;
    let patient = living_patient(&app);
    critical_potassium(&app, &patient);
    let c = app.login("coordinator@test.example").await;

    // Search by patient: the alert as an active Flag, with the rule, its words and priority.
    let r = c.get(&format!("/fhir/Flag?patient={patient}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bundle = json_of(&r.body);
    let flag = entries(&bundle)
        .into_iter()
        .find(|f| {
            f["code"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("Potassium 6.9 mmol/L (flagged HH)"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no Flag for the result: {bundle}"));
    let id = flag["id"].as_str().unwrap().to_owned();
    assert_eq!(flag["status"], "active", "{bundle}");
    assert_eq!(flag["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(flag["category"][0]["coding"][0]["code"], "lab");
    assert_eq!(flag["code"]["coding"][0]["code"], "abnormal-result");
    assert_eq!(
        flag["code"]["coding"][0]["system"],
        "urn:rapport:alert-rule"
    );
    let priority = flag["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/flag-priority")
        .unwrap();
    assert_eq!(priority["valueCodeableConcept"]["coding"][0]["code"], "PH");

    // Read, and the same Flag among the open ones of every patient the coordinator may see.
    let r = c.get(&format!("/fhir/Flag/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r.body), flag);
    let all = json_of(&c.get("/fhir/Flag?_count=1000").await.body);
    assert!(
        entries(&all).iter().any(|f| f["id"] == id.as_str()),
        "{all}"
    );
    // Not among the inactive ones; found by _id.
    let inactive = json_of(
        &c.get(&format!("/fhir/Flag?patient={patient}&status=inactive"))
            .await
            .body,
    );
    assert!(!entries(&inactive).iter().any(|f| f["id"] == id.as_str()));
    let by_id = json_of(
        &c.get(&format!("/fhir/Flag?subject=Patient/{patient}&_id={id}"))
            .await
            .body,
    );
    assert_eq!(by_id["total"], 1, "{by_id}");
    // Inactive flags need a patient; a bad status is named.
    let r = c.get("/fhir/Flag?status=inactive").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("\"expression\":[\"patient\"]"),
        "{}",
        r.body
    );
    let r = c
        .get(&format!("/fhir/Flag?patient={patient}&status=open"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("active or inactive"), "{}", r.body);

    // In the patient's $everything, and in the CapabilityStatement as read and search only.
    let everything = json_of(
        &c.get(&format!("/fhir/Patient/{patient}/$everything?_type=Flag"))
            .await
            .body,
    );
    assert!(
        everything["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["id"] == id.as_str()
                && e["fullUrl"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/Flag/{id}"))),
        "{everything}"
    );
    let metadata = json_of(&c.get("/fhir/metadata").await.body);
    let flag_cap = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Flag")
        .unwrap();
    assert_eq!(
        flag_cap["interaction"],
        json!([{"code": "read"}, {"code": "search-type"}])
    );

    // Writes are refused with an OperationOutcome, whatever the way.
    let bearer = token(&app, "coordinator@test.example");
    let post = |path: &str, body: Value| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(&bearer)
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
        async move { crate::helpers::reply(request.send().await.unwrap()).await }
    };
    let mut copy = flag.clone();
    copy.as_object_mut().unwrap().remove("id");
    let r = post("/fhir/Flag", copy.clone()).await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.body.contains("OperationOutcome") && r.body.contains("Today page"));
    let r = post(
        "/fhir",
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": copy, "request": {"method": "POST", "url": "Flag"}}]}),
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.body.contains("Bundle.entry[0]"), "{}", r.body);
    // In a batch, the Flag entry alone is refused; the other entry is written.
    let r = post(
        "/fhir",
        json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "Batch check"},
                "subject": {"reference": format!("Patient/{patient}")}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": flag.clone(), "request": {"method": "PUT", "url": format!("Flag/{id}")}}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = json_of(&r.body);
    assert!(
        answer["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201"),
        "{answer}"
    );
    let refused = answer["entry"][1]["response"]["status"].as_str().unwrap();
    assert!(refused.starts_with('4'), "{answer}");
    assert!(
        answer["entry"][1]["response"]["outcome"]
            .to_string()
            .contains("care-team alerts"),
        "{answer}"
    );
    // A file that brings a Flag: that entry is named and refused, the rest imported.
    let report = tokio::task::block_in_place(|| {
        let unit = rapport_ingest::Unit {
            name: "flags.json".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(
                json!({"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "File check"},
                    "subject": {"reference": format!("Patient/{patient}")}}},
                {"resource": {"resourceType": "Flag", "id": "imported-1", "status": "active", "code": {"text": "Fall risk"},
                    "subject": {"reference": format!("Patient/{patient}")}}}]}),
            ),
        };
        rapport_ingest::apply_unit(app.store.as_ref(), &unit, app.state.clock.now_ms(), false)
    });
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].entry, Some(1));
    assert!(report.errors[0].message.contains("care-team alerts"));
    assert_eq!(report.outcomes.len(), 1, "the Observation is imported");
    let r = app
        .client
        .delete(app.url(&format!("/fhir/Flag/{id}")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // A coordinator of another patient: refused, and the Flag is neither listed nor counted.
    tokio::task::block_in_place(|| {
        app.add_user("coord-other@test.example", "coordinator", None, None);
    });
    let other_patient = app
        .patient_ids()
        .into_iter()
        .find(|p| *p != patient)
        .unwrap();
    app.assign("coord-other@test.example", &other_patient);
    let before = app.last_audit_seq();
    let o = app.login("coord-other@test.example").await;
    let r = o.get(&format!("/fhir/Flag/{id}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = json_of(&o.get(&format!("/fhir/Flag?patient={patient}")).await.body);
    assert_eq!(r["total"], 0, "{r}");
    // Both the refusal and the reads are in the audit trail, naming the Flag.
    let trail = app.audit_after(before);
    assert!(
        trail
            .iter()
            .any(|c| c.record.entities == vec![format!("Flag/{id}")]
                && c.record.outcome == rapport_access::audit::Outcome::Denied),
        "{:?}",
        trail.iter().map(|c| &c.record).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_care_plan_started_on_the_360_page_becomes_tasks_on_its_dates_once() {
    let app = spawn_app().await;
    let patient = living_patient(&app);
    let now = app.state.clock.now_ms();
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let c = app.login("coordinator@test.example").await;
    let page = c.get(&format!("/patients/{patient}")).await.body;
    assert!(page.contains("New care plan"), "the form is offered");

    let count = |ty: &str| -> Vec<Value> {
        tokio::task::block_in_place(|| {
            app.store
                .patient_record(&patient)
                .unwrap()
                .into_iter()
                .filter(|r| r.key.resource_type == ty)
                .map(|r| serde_json::from_str(&r.content).unwrap())
                .collect()
        })
    };
    let plans_before = count("CarePlan").len();
    // A bad form writes nothing and says what is wrong.
    let r = c
        .submit(
            &format!("/patients/{patient}/careplans"),
            &[
                ("title", "Diabetes follow-up"),
                ("activity1", "Foot check"),
                ("date1", &day(now)),
                ("activity2", "Eye screening"),
                ("date2", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Activity 2 needs a date"), "{}", r.body);
    assert_eq!(count("CarePlan").len(), plans_before);

    let r = c
        .submit(
            &format!("/patients/{patient}/careplans"),
            &[
                ("title", "Diabetes follow-up"),
                ("goal", "HbA1c below 7.5% by June"),
                ("activity1", "Foot check"),
                ("date1", &day(now)),
                ("activity2", "Eye screening"),
                ("date2", &day(now + 10 * DAY)),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/patients/{patient}#careplans").as_str())
    );
    let plan = count("CarePlan")
        .into_iter()
        .find(|p| p["title"] == "Diabetes follow-up")
        .expect("the plan is stored");
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!(plan["activity"][0]["detail"]["status"], "scheduled");
    let goal = count("Goal")
        .into_iter()
        .find(|g| g["description"]["text"] == "HbA1c below 7.5% by June")
        .expect("the goal is stored");
    assert_eq!(
        plan["goal"][0]["reference"],
        format!("Goal/{}", goal["id"].as_str().unwrap())
    );

    // Evaluated (the server's evaluator runs too; evaluating again changes nothing): the
    // activity due today is a task, the one in ten days is not yet.
    let rules = rapport_alerts::Config::default();
    let evaluate = |at: i64| {
        tokio::task::block_in_place(|| {
            rapport_ingest::alerts::evaluate(
                app.store.as_ref(),
                &rules,
                &[(patient.clone(), None)],
                at,
                Durability::Immediate,
            )
            .unwrap()
        })
    };
    evaluate(now);
    evaluate(now);
    let activity_tasks = || -> Vec<Value> {
        count("Task")
            .into_iter()
            .filter(|t| t["basedOn"][0]["reference"] == format!("CarePlan/{plan_id}").as_str())
            .collect()
    };
    let tasks = activity_tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["description"], "Foot check (Diabetes follow-up)");
    assert_eq!(
        tasks[0]["identifier"][0]["value"],
        format!("CarePlan/{plan_id}#activity0")
    );
    assert_eq!(tasks[0]["restriction"]["period"]["end"], day(now));

    // The 360 page shows the plan, its goal and which activity became a task; the task is open.
    let page = c.get(&format!("/patients/{patient}")).await.body;
    let plans = page
        .split("id=\"careplans\"")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap()
        .to_owned();
    assert!(plans.contains("Diabetes follow-up"), "{plans}");
    assert!(plans.contains("Goal: HbA1c below 7.5% by June"), "{plans}");
    assert_eq!(plans.matches("task made").count(), 1, "{plans}");
    assert!(page.contains("Foot check (Diabetes follow-up)"));
    // On Today, among the open tasks, and done from there.
    let today = c.get("/today?kind=tasks").await.body;
    assert!(today.contains("Foot check (Diabetes follow-up)"), "{today}");
    assert!(today.contains("From the care plan."), "{today}");
    let task_id = tasks[0]["id"].as_str().unwrap();
    let r = c
        .submit(
            &format!("/patients/{patient}/tasks/{task_id}"),
            &[("action", "complete"), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/today"));
    let today = c.get("/today?kind=tasks").await.body;
    assert!(
        !today.contains("Foot check (Diabetes follow-up)"),
        "{today}"
    );
    // The task closed its activity in the plan, in the same write.
    let plan = count("CarePlan")
        .into_iter()
        .find(|p| p["id"] == plan_id.as_str())
        .unwrap();
    assert_eq!(plan["activity"][0]["detail"]["status"], "completed");
    assert_eq!(plan["activity"][1]["detail"]["status"], "scheduled");

    // Ten days on, the second activity is a task too; the first is not made again (done).
    evaluate(now + 10 * DAY);
    let tasks = activity_tasks();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(tasks
        .iter()
        .any(|t| t["description"] == "Eye screening (Diabetes follow-up)"));
    // Stopping the plan cancels the task still open, saying why.
    let r = c
        .submit(
            &format!("/patients/{patient}/careplans/{plan_id}"),
            &[("action", "revoke")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    evaluate(now + 10 * DAY);
    let eye = activity_tasks()
        .into_iter()
        .find(|t| t["description"] == "Eye screening (Diabetes follow-up)")
        .unwrap();
    assert_eq!(eye["status"], "cancelled", "{eye}");
    assert_eq!(eye["statusReason"]["text"], "The care plan was revoked.");
    let page = c.get(&format!("/patients/{patient}")).await.body;
    assert!(
        !page.contains("Eye screening (Diabetes follow-up)"),
        "no open task left, and the plan is no longer listed"
    );
    // The rules' writes are audited as the rules', naming the patient.
    let trail = app.audit_after(0);
    assert!(trail
        .iter()
        .any(|c| c.record.actor.label == "cli:alert-rules"
            && c.record.patient_id.as_deref() == Some(patient.as_str())
            && c.record.detail == "care plan tasks written: 1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_tasks_and_plans_are_the_care_teams_to_work_and_closed_alerts_stay_closed() {
    let app = spawn_app().await;
    let patient = living_patient(&app);
    critical_potassium(&app, &patient);
    tokio::task::block_in_place(|| {
        app.add_user("own@test.example", "patient", Some(&patient), None);
    });
    let c = app.login("coordinator@test.example").await;
    let flags = json_of(&c.get(&format!("/fhir/Flag?patient={patient}")).await.body);
    let id = entries(&flags)
        .into_iter()
        .find(|f| f["code"]["coding"][0]["code"] == "abnormal-result")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The patient sees their record but works none of the team's alerts, tasks or plans.
    let me = app.login("own@test.example").await;
    let page = me.get(&format!("/patients/{patient}")).await.body;
    assert!(
        !page.contains("New care plan") && !page.contains("Make a task"),
        "{page}"
    );
    for (path, fields) in [
        (
            format!("/alerts/{id}"),
            vec![("action", "dismiss"), ("reason", "I feel fine")],
        ),
        (
            format!("/patients/{patient}/tasks"),
            vec![
                ("description", "Call me"),
                ("due", "2030-01-31"),
                ("priority", "routine"),
                ("assignee", "me"),
            ],
        ),
        (
            format!("/patients/{patient}/careplans"),
            vec![
                ("title", "Mine"),
                ("activity1", "Walk"),
                ("date1", "2030-01-31"),
            ],
        ),
    ] {
        let r = me.submit(&path, &fields).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("worked by the care team"), "{}", r.body);
    }
    let last = app.audit_after(0).pop().unwrap().record;
    assert_eq!(last.basis, "not-care-staff");

    // "Make a task" twice gives the one task.
    let first = c
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "task"), ("back", "/today")],
        )
        .await;
    let second = c
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "task"), ("back", "/today")],
        )
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location, second.location);

    // Dismissed stays dismissed: acknowledging it (a stale page) is refused, reopening is not.
    let r = c
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "dismiss"), ("reason", "Repeated, normal")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = c
        .submit(&format!("/alerts/{id}"), &[("action", "acknowledge")])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("reopen it first"), "{}", r.body);
    let flag = json_of(&c.get(&format!("/fhir/Flag/{id}")).await.body);
    assert_eq!(flag["status"], "inactive");
    assert!(
        flag.to_string().contains("Repeated, normal"),
        "staff see why"
    );
    // The patient sees their Flag, dismissed, but not the team's reason.
    let own = me.get(&format!("/fhir/Flag/{id}")).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(json_of(&own.body)["status"], "inactive");
    assert!(!own.body.contains("Repeated, normal"), "{}", own.body);
    let r = c
        .submit(
            &format!("/alerts/{id}"),
            &[
                ("action", "reopen"),
                ("back", "/today?kind=abnormal-result"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/today?kind=abnormal-result"));
    let flag = json_of(&c.get(&format!("/fhir/Flag/{id}")).await.body);
    assert_eq!(flag["status"], "active");
}
