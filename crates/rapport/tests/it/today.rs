//! The Today screen end to end: HL7 v2 messages over a real MLLP connection raise and clear
//! alerts, which appear on the Today page of the patient's coordinator only, and the actions
//! on them (acknowledge, snooze) are audited.

use std::io::{Read, Write};
use std::time::Duration;

use rapport_fhir::query::{Clause, Query};

use crate::helpers::{critical_potassium, living_patient, spawn_app, Session, TestApp};

const DAY: i64 = 86_400_000;

/// HL7 v2 DTM (chapter 2A.22) of a time in ms, UTC.
fn dtm(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y%m%d%H%M%S+0000")
        .to_string()
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%-d %b %Y")
        .to_string()
}

/// Send one message over MLLP and return the acknowledgement.
fn send(addr: std::net::SocketAddr, message: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(&rapport_mllp::frame(message.as_bytes()))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\x1c\r") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the listener closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn patient_with_mrn(app: &TestApp, mrn: &str) -> String {
    let ids = tokio::task::block_in_place(|| {
        app.store
            .find_ids(&Query {
                resource_type: "Patient".into(),
                clauses: vec![Clause::Token {
                    param: "identifier",
                    system: Some("urn:rapport:hl7v2:authority:CLINIC1".into()),
                    code: mrn.into(),
                }],
            })
            .unwrap()
    });
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

/// The Today page once `ready` holds of it (the evaluator runs right after each commit, on its
/// own thread), or the last page seen.
async fn today_when(session: &Session<'_>, ready: impl Fn(&str) -> bool) -> String {
    let mut body = String::new();
    for _ in 0..150 {
        let page = session.get("/today").await;
        assert_eq!(page.status, 200, "{}", page.body);
        body = page.body;
        if ready(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    body
}

/// The `data-alert` id of the row that contains `text`.
fn alert_id_of(page: &str, text: &str) -> i64 {
    let at = page.find(text).expect("the alert is on the page");
    let before = &page[..at];
    let id = before
        .rsplit("data-alert=\"")
        .next()
        .and_then(|s| s.split('"').next())
        .unwrap();
    id.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn feed_messages_raise_and_clear_alerts_on_the_coordinators_today_page() {
    let app = spawn_app().await;
    let now = app.state.clock.now_ms();
    let feed = rapport::MllpFeed::bind("127.0.0.1:0".parse().unwrap(), app.store.clone())
        .await
        .unwrap();
    let addr = feed.local_addr();
    tokio::spawn(feed.run_until(std::future::pending()));

    // SIU^S26: the patient did not attend an appointment two days ago.
    let start = now - 2 * DAY;
    let siu = format!(
        "MSH|^~\\&|SCHED|CLINIC1|RAPPORT|FAC01|{}||SIU^S26^SIU_S12|NS0001|P|2.5\rSCH|A100|A100||||||||30|min|^^30^{}^{}\rPID|1||770001^^^CLINIC1^MR||NOSHOW^TESSA||19500101|F\rRGS|1\rAIS|1||GPR^General practice review^L|{}|||30|min\r",
        dtm(now),
        dtm(start),
        dtm(start + 30 * 60_000),
        dtm(start)
    );
    let ack = tokio::task::block_in_place(|| send(addr, &siu));
    assert!(ack.contains("MSA|AA|NS0001"), "{ack}");
    let patient = patient_with_mrn(&app, "770001");

    tokio::task::block_in_place(|| {
        app.add_user("coord-a@test.example", "coordinator", None, None);
        app.add_user("coord-b@test.example", "coordinator", None, None);
    });
    app.assign("coord-a@test.example", &patient);
    let other = app.patient_ids()[0].clone();
    app.assign("coord-b@test.example", &other);
    let a = app.login("coord-a@test.example").await;
    let b = app.login("coord-b@test.example").await;

    let why = format!(
        "General practice review on {}: did not attend; not rebooked",
        chrono::DateTime::from_timestamp_millis(start)
            .unwrap()
            .format("%-d %b %Y %H:%M")
    );
    let page = today_when(&a, |p| p.contains(&why)).await;
    assert!(page.contains(&why), "{page}");
    assert!(page.contains("Missed appointments"), "{page}");
    assert!(page.contains(&format!("/patients/{patient}")), "{page}");
    // Not on another coordinator's list.
    let other_page = b.get("/today").await;
    assert_eq!(other_page.status, 200);
    assert!(!other_page.body.contains(&why), "{}", other_page.body);
    assert!(!other_page.body.contains(&format!("/patients/{patient}")));

    // The same message again: acknowledged as a duplicate, and no second alert.
    let again = tokio::task::block_in_place(|| send(addr, &siu));
    assert!(again.contains("MSA|AA|NS0001"), "{again}");

    // RDS^O13: 30 tablets dispensed 25 days ago at one a day run out in 5 days: refill due.
    let dispensed = now - 25 * DAY;
    let rds = |control: &str, counter: u32, at: i64| {
        format!(
            "MSH|^~\\&|PHARM|CLINIC1|RAPPORT|FAC01|{}||RDS^O13^RDS_O13|{control}|P|2.5\rPID|1||770001^^^CLINIC1^MR||NOSHOW^TESSA||19500101|F\rORC|RE|ORD100\rRXE|^^^^^|MET500^Metformin 500 mg tablet^L|1||TAB^tablet^L|||||30|TAB^tablet^L\rRXD|{counter}|MET500^Metformin 500 mg tablet^L|{}|30|TAB^tablet^L||RX100|||||1^TAB&tablet&L\r",
            dtm(at),
            dtm(at)
        )
    };
    let ack = tokio::task::block_in_place(|| send(addr, &rds("RX0001", 1, dispensed)));
    assert!(ack.contains("MSA|AA|RX0001"), "{ack}");
    let refill = format!(
        "Metformin 500 mg tablet: 30 tablet dispensed on {}, runs out {}",
        day(dispensed),
        day(dispensed + 30 * DAY)
    );
    let page = today_when(&a, |p| p.contains(&refill)).await;
    assert!(page.contains(&refill), "{page}");
    assert!(page.contains("Refills due"), "{page}");

    // Acknowledge it (audited); it stays on the list, marked.
    let id = alert_id_of(&page, &refill);
    let before = app.last_audit_seq();
    let r = a
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "acknowledge"), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let audit = app.audit_after(before);
    assert!(
        audit.iter().any(|r| r.record.detail == "alert acknowledged"
            && r.record.entities == vec![format!("Alert/{id}")]
            && r.record.patient_id.as_deref() == Some(patient.as_str())),
        "{audit:?}"
    );
    let page = a.get("/today").await.body;
    assert!(page.contains("data-status=\"acknowledged\""), "{page}");

    // A new dispense today moves the run-out a month on: the alert resolves by itself.
    let ack = tokio::task::block_in_place(|| send(addr, &rds("RX0002", 2, now)));
    assert!(ack.contains("MSA|AA|RX0002"), "{ack}");
    let page = today_when(&a, |p| !p.contains("Metformin")).await;
    assert!(!page.contains("Metformin"), "{page}");
    let stored = tokio::task::block_in_place(|| app.store.patient_alerts(&patient, true).unwrap());
    let refills: Vec<_> = stored
        .iter()
        .filter(|s| s.candidate.rule == "refill-due")
        .collect();
    assert_eq!(refills.len(), 1, "{refills:?}");
    assert_eq!(refills[0].status, "resolved");
    // One missed-appointment alert, however often the message came.
    let missed = stored
        .iter()
        .filter(|s| s.candidate.rule == "missed-appointment")
        .count();
    assert_eq!(missed, 1, "{stored:?}");

    // Snoozed for a day: off the list, and back when the day has passed.
    let page = a.get("/today").await.body;
    let id = alert_id_of(&page, &why);
    let r = a
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "snooze-day"), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!a.get("/today").await.body.contains(&why));
    // (A day later the session has timed out: sign in again.)
    app.state.clock.advance(DAY - 60_000);
    let a = app.login("coord-a@test.example").await;
    assert!(!a.get("/today").await.body.contains(&why));
    app.state.clock.advance(2 * 60_000);
    let body = a.get("/today").await.body;
    assert!(body.contains(&why), "{body}");

    // Dismissing needs a reason.
    let r = a
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "dismiss"), ("reason", ""), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Coordinator B may not touch A's patient's alert.
    let b = app.login("coord-b@test.example").await;
    let r = b
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "acknowledge"), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_becomes_a_task_and_the_360_page_shows_both() {
    let app = spawn_app().await;
    // A critical potassium for a fixture patient, written through the FHIR API's importer path.
    // A living patient (the rules raise nothing for the deceased).
    let patient = living_patient(&app);
    critical_potassium(&app, &patient);
    let c = app.login("coordinator@test.example").await;
    let page = today_when(&c, |p| p.contains("Potassium 6.9 mmol/L (flagged HH)")).await;
    assert!(page.contains("Critical result"), "{page}");
    let id = alert_id_of(&page, "Potassium 6.9 mmol/L (flagged HH)");
    let r = c
        .submit(
            &format!("/alerts/{id}"),
            &[("action", "task"), ("back", "/today")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.location.unwrap();
    assert!(
        to.starts_with(&format!("/patients/{patient}?task=")),
        "{to}"
    );
    let page = c.get(&format!("/patients/{patient}")).await.body;
    let section = page
        .split("id=\"alerts\"")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap()
        .to_owned();
    assert!(section.contains("Open tasks"), "{section}");
    assert!(
        section.contains("Critical result: Potassium 6.9 mmol/L (flagged HH)"),
        "{section}"
    );
    assert!(section.contains("stat"), "{section}");
    assert!(
        section.contains("data-status=\"acknowledged\""),
        "{section}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_past_its_due_date_is_on_today_until_it_is_done() {
    let app = spawn_app().await;
    let patient = living_patient(&app);
    let c = app.login("coordinator@test.example").await;
    let now = app.state.clock.now_ms();
    let yesterday = chrono::DateTime::from_timestamp_millis(now - DAY)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    // A due date that is not a date is refused, naming the field.
    let r = c
        .submit(
            &format!("/patients/{patient}/tasks"),
            &[("description", "Call about the results"), ("due", "soon")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("due date"), "{}", r.body);
    let r = c
        .submit(
            &format!("/patients/{patient}/tasks"),
            &[
                ("description", "Call about the results"),
                ("due", &yesterday),
                ("priority", "urgent"),
                ("assignee", "me"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let why = format!(
        "Call about the results: due {}, still requested",
        day(now - DAY)
    );
    let page = today_when(&c, |p| p.contains(&why)).await;
    assert!(page.contains("Overdue tasks"), "{page}");
    // Done, on the 360 page: the alert resolves.
    let record = c.get(&format!("/patients/{patient}")).await.body;
    let task_id = record
        .split("data-task=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let r = c
        .submit(
            &format!("/patients/{patient}/tasks/{task_id}"),
            &[("action", "complete"), ("comment", "Spoke to the patient.")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = today_when(&c, |p| !p.contains(&why)).await;
    assert!(!page.contains(&why), "{page}");
    let task = tokio::task::block_in_place(|| {
        app.store
            .read(&rapport_store::ResourceKey::new("Task", task_id.clone()))
            .unwrap()
            .unwrap()
    });
    let v: serde_json::Value = serde_json::from_str(&task.content).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["note"][0]["text"], "Spoke to the patient.");
    assert_eq!(task.version, 2);
}
