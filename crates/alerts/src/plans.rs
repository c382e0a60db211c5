//! Care plans whose activities become tasks when due (careplan.html, task.html): an active
//! CarePlan's planned activity (`detail.status` not-started or scheduled) whose scheduled start
//! has come (or is within `days_ahead`) gets one Task, `basedOn` the plan and named by an
//! identifier of the activity, so it is made once, whatever status it later has (a task that a
//! person cancelled is not made again). The task is then on the team's lists like any other, and
//! the overdue-task rule follows the task rather than the activity. Pure: the caller writes the
//! tasks (rapport-ingest::alerts, in the evaluation of the patient).

use serde_json::{json, Value};

use crate::codes::concept_text;
use crate::data::{end_ms, id_of, start_ms, text, DAY};
use crate::{Config, PatientData};

/// The identifier system of a task made from a care plan activity; the value is
/// [`activity_key`].
pub const ACTIVITY_SYSTEM: &str = "urn:rapport:care-plan-activity";

/// Names activity `n` (0-based, in `CarePlan.activity` order) of plan `plan_id`.
pub fn activity_key(plan_id: &str, n: usize) -> String {
    format!("CarePlan/{plan_id}#activity{n}")
}

/// The plan id and activity index a task was made from: the value of its identifier of
/// [`ACTIVITY_SYSTEM`] (`CarePlan/{id}#activity{n}`), if it has one.
pub fn activity_of(task: &Value) -> Option<(&str, usize)> {
    task.get("identifier")
        .and_then(Value::as_array)?
        .iter()
        .find(|i| text(i, "system") == ACTIVITY_SYSTEM)?
        .get("value")
        .and_then(Value::as_str)?
        .strip_prefix("CarePlan/")?
        .split_once("#activity")
        .and_then(|(id, n)| Some((id, n.parse().ok()?)))
}

/// Whether a Task for this activity exists already (in any status).
pub(crate) fn has_task(d: &PatientData, key: &str) -> bool {
    d.of_type("Task").iter().any(|t| {
        t.get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|i| text(i, "system") == ACTIVITY_SYSTEM && text(i, "value") == key)
    })
}

/// When a planned activity starts (`scheduledPeriod.start`, the first of `scheduledTiming.event`,
/// or `scheduledTiming.repeat.boundsPeriod.start`), and the raw date it is due by
/// (`scheduledPeriod.end`, else that start), as written so that its precision is kept.
fn schedule(detail: &Value) -> Option<(i64, String)> {
    let period = detail.get("scheduledPeriod");
    let timing = detail.get("scheduledTiming");
    let start_value = period
        .and_then(|p| p.get("start"))
        .or_else(|| timing.and_then(|t| t.pointer("/event/0")))
        .or_else(|| timing.and_then(|t| t.pointer("/repeat/boundsPeriod/start")));
    let end_value = period.and_then(|p| p.get("end"));
    let start = start_ms(start_value).or_else(|| start_ms(end_value))?;
    let due = end_value
        .or(start_value)
        .and_then(Value::as_str)?
        .to_owned();
    Some((start, due))
}

/// The plan's name as people say it: its title, else its category.
pub fn plan_name(plan: &Value) -> String {
    plan.get("title")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| concept_text(plan.get("category").and_then(|c| c.get(0))))
        .unwrap_or_else(|| "Care plan".into())
}

/// What an activity is, as people say it.
pub fn activity_name(detail: &Value) -> String {
    concept_text(detail.get("code"))
        .or_else(|| {
            detail
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Care plan activity".into())
}

/// The Tasks to create at `now` for the patient's due care plan activities (none if disabled).
pub fn due_activity_tasks(d: &PatientData, c: &Config, now: i64) -> Vec<Value> {
    let p = &c.care_plan_tasks;
    if !p.enabled || d.deceased() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for plan in d.of_type("CarePlan") {
        if text(plan, "status") != "active" {
            continue;
        }
        let id = id_of(plan);
        let activities = plan.get("activity").and_then(Value::as_array);
        for (n, activity) in activities.into_iter().flatten().enumerate() {
            let Some(detail) = activity.get("detail") else {
                continue;
            };
            if !matches!(text(detail, "status"), "not-started" | "scheduled") {
                continue;
            }
            let Some((start, due)) = schedule(detail) else {
                continue;
            };
            // Not yet (beyond the days ahead), or so long past that it is history, not a task.
            let due_end = end_ms(Some(&Value::String(due.clone()))).unwrap_or(start);
            if start > now + p.days_ahead * DAY || due_end < now - p.lookback_days * DAY {
                continue;
            }
            let key = activity_key(id, n);
            if has_task(d, &key) {
                continue;
            }
            let mut task = json!({
                "resourceType": "Task",
                "identifier": [{"system": ACTIVITY_SYSTEM, "value": key}],
                "basedOn": [{"reference": format!("CarePlan/{id}")}],
                "status": "requested",
                "intent": "plan",
                "priority": "routine",
                "description": format!("{} ({})", activity_name(detail), plan_name(plan)),
                "focus": {"reference": format!("CarePlan/{id}")},
                "for": {"reference": format!("Patient/{}", d.patient_id)},
                "authoredOn": rapport_fhir::date::format_instant(now),
                "requester": {"display": "Rapport care plans"},
                // Due by the activity's scheduled end (or its start), at that date's precision.
                "restriction": {"period": {"end": due}},
            });
            match detail.pointer("/performer/0").filter(|v| v.is_object()) {
                Some(performer) => task["owner"] = performer.clone(),
                // Nobody named: the care coordinators' (Task.performerType, Rapport's role codes
                // as the console's task form writes them).
                None => {
                    task["performerType"] = json!([{"coding": [{"system": "urn:rapport:role", "code": "coordinator"}], "text": "Care coordinator"}]);
                }
            }
            out.push(task);
        }
    }
    out
}

/// Task states in which someone still has to act (task.html#statemachine).
const OPEN_TASK: [&str; 6] = [
    "requested",
    "received",
    "accepted",
    "ready",
    "in-progress",
    "on-hold",
];

/// The open tasks made from activities of plans that have ended (revoked, completed, entered in
/// error) or of activities stopped or cancelled in the plan, as they are to be written: cancelled,
/// with the reason (Task.statusReason). Nobody is left chasing a task the plan no longer wants.
pub fn tasks_of_ended_plans(d: &PatientData, now: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for task in d.of_type("Task") {
        if !OPEN_TASK.contains(&text(task, "status")) {
            continue;
        }
        let Some((plan_id, n)) = activity_of(task) else {
            continue;
        };
        let Some(plan) = d.of_type("CarePlan").iter().find(|p| id_of(p) == plan_id) else {
            continue;
        };
        let plan_status = text(plan, "status");
        let activity_status = plan
            .pointer(&format!("/activity/{n}/detail/status"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let why = match (plan_status, activity_status) {
            ("revoked" | "completed" | "entered-in-error", _) => {
                format!("The care plan was {plan_status}.")
            }
            (_, "cancelled" | "stopped" | "entered-in-error") => {
                format!("The activity was {activity_status} in the care plan.")
            }
            _ => continue,
        };
        let mut closed = task.clone();
        if let Some(o) = closed.as_object_mut() {
            o.remove("meta");
        }
        closed["status"] = json!("cancelled");
        closed["statusReason"] = json!({"text": why});
        closed["lastModified"] = json!(rapport_fhir::date::format_instant(now));
        out.push(closed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_342_400_000; // 2026-12-04T00:00:00Z

    fn data(resources: Vec<Value>) -> PatientData {
        let mut all = vec![json!({"resourceType": "Patient", "id": "p1"})];
        all.extend(resources);
        PatientData::new("p1", all)
    }

    fn plan(detail: Value) -> Value {
        json!({
            "resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
            "title": "Diabetes self-management",
            "subject": {"reference": "Patient/p1"},
            "activity": [
                {"detail": {"status": "in-progress", "description": "Walk daily"}},
                {"detail": detail},
            ],
        })
    }

    fn scheduled(start: &str) -> Value {
        json!({"status": "not-started", "description": "Foot check with the district nurse",
               "scheduledPeriod": {"start": start, "end": "2026-12-10"},
               "performer": [{"reference": "Practitioner/n1", "display": "District nurse"}]})
    }

    #[test]
    fn an_activity_becomes_a_task_on_its_start_day_and_not_the_day_before() {
        let c = Config::default();
        // The day before: nothing yet.
        assert!(due_activity_tasks(&data(vec![plan(scheduled("2026-12-05"))]), &c, NOW).is_empty());
        // On the day (the start has come): one task, due by the scheduled end.
        let tasks = due_activity_tasks(&data(vec![plan(scheduled("2026-12-04"))]), &c, NOW);
        assert_eq!(tasks.len(), 1);
        let t = &tasks[0];
        assert_eq!(t["identifier"][0]["value"], "CarePlan/cp1#activity1");
        assert_eq!(t["basedOn"][0]["reference"], "CarePlan/cp1");
        assert_eq!(t["for"]["reference"], "Patient/p1");
        assert_eq!(
            t["description"],
            "Foot check with the district nurse (Diabetes self-management)"
        );
        assert_eq!(t["restriction"]["period"]["end"], "2026-12-10");
        assert_eq!(t["owner"]["reference"], "Practitioner/n1");
        assert_eq!(
            rapport_fhir::validate::validate(t).len(),
            0,
            "a valid R4 Task"
        );
        // The day after: still due (it was not made yet).
        assert_eq!(
            due_activity_tasks(&data(vec![plan(scheduled("2026-12-03"))]), &c, NOW).len(),
            1
        );
    }

    #[test]
    fn a_task_is_made_once_whatever_became_of_it() {
        let c = Config::default();
        let made = json!({"resourceType": "Task", "id": "t1", "status": "cancelled", "intent": "plan",
            "identifier": [{"system": ACTIVITY_SYSTEM, "value": "CarePlan/cp1#activity1"}]});
        assert!(
            due_activity_tasks(&data(vec![plan(scheduled("2026-12-01")), made]), &c, NOW)
                .is_empty()
        );
    }

    #[test]
    fn unscheduled_done_long_past_or_inactive_plans_make_no_task() {
        let c = Config::default();
        let unscheduled = json!({"status": "not-started", "description": "Diet"});
        assert!(due_activity_tasks(&data(vec![plan(unscheduled)]), &c, NOW).is_empty());
        let mut done = scheduled("2026-12-01");
        done["status"] = json!("completed");
        assert!(due_activity_tasks(&data(vec![plan(done)]), &c, NOW).is_empty());
        let long_past = json!({"status": "scheduled", "description": "Review",
            "scheduledPeriod": {"start": "2015-01-01", "end": "2015-02-01"}});
        assert!(due_activity_tasks(&data(vec![plan(long_past)]), &c, NOW).is_empty());
        let mut revoked = plan(scheduled("2026-12-01"));
        revoked["status"] = json!("revoked");
        assert!(due_activity_tasks(&data(vec![revoked]), &c, NOW).is_empty());
    }

    #[test]
    fn days_ahead_brings_tasks_forward_and_disabled_makes_none() {
        let c = Config::from_toml("[care_plan_tasks]\ndays_ahead = 2").unwrap();
        assert_eq!(
            due_activity_tasks(&data(vec![plan(scheduled("2026-12-06"))]), &c, NOW).len(),
            1
        );
        let off = Config::from_toml("[care_plan_tasks]\nenabled = false").unwrap();
        assert!(
            due_activity_tasks(&data(vec![plan(scheduled("2026-12-01"))]), &off, NOW).is_empty()
        );
    }

    #[test]
    fn the_open_tasks_of_a_revoked_plan_or_a_stopped_activity_are_cancelled() {
        let task = |id: &str, n: usize, status: &str| {
            json!({"resourceType": "Task", "id": id, "status": status, "intent": "plan",
                "identifier": [{"system": ACTIVITY_SYSTEM, "value": activity_key("cp1", n)}]})
        };
        let mut p = plan(scheduled("2026-12-01"));
        // Active plan, activity going: nothing to close.
        let open = data(vec![p.clone(), task("t1", 1, "requested")]);
        assert!(tasks_of_ended_plans(&open, NOW).is_empty());
        // The activity stopped in the plan: its open task is cancelled, a done one left alone.
        p["activity"][1]["detail"]["status"] = json!("stopped");
        let closed = tasks_of_ended_plans(
            &data(vec![
                p.clone(),
                task("t1", 1, "in-progress"),
                task("t0", 0, "completed"),
            ]),
            NOW,
        );
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0]["id"], "t1");
        assert_eq!(closed[0]["status"], "cancelled");
        assert_eq!(
            closed[0]["statusReason"]["text"],
            "The activity was stopped in the care plan."
        );
        // The whole plan revoked.
        p["status"] = json!("revoked");
        let closed = tasks_of_ended_plans(&data(vec![p, task("t1", 1, "requested")]), NOW);
        assert_eq!(
            closed[0]["statusReason"]["text"],
            "The care plan was revoked."
        );
    }

    #[test]
    fn timing_events_schedule_too() {
        let c = Config::default();
        let detail = json!({"status": "scheduled", "code": {"text": "Blood pressure check"},
            "scheduledTiming": {"event": ["2026-12-04T09:00:00Z"]}});
        let tasks = due_activity_tasks(&data(vec![plan(detail)]), &c, NOW + 10 * 3_600_000);
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            tasks[0]["restriction"]["period"]["end"],
            "2026-12-04T09:00:00Z"
        );
        assert_eq!(
            tasks[0]["description"],
            "Blood pressure check (Diabetes self-management)"
        );
    }
}
