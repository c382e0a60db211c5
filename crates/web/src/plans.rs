//! Care plans on the 360 page (careplan.html): the patient's active plans with their goals and
//! planned activities, each activity with its state and, once it has come due, the task it
//! became (rapport_alerts::plans); and a form to start a plan: a title, a goal (Goal,
//! goal.html) and up to three activities with dates, written in one transaction, versioned and
//! audited like every write of the console.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::form::Form;
use crate::{access, view, AppState, Caller, RouteAccess, RouteBook, WebError};

/// Activities the form offers (more can be added through the FHIR API).
const FORM_ACTIVITIES: usize = 3;

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add(
        "POST",
        "/patients/{id}/careplans",
        RouteAccess::CareWork,
        post(new_plan),
    )
    .add(
        "POST",
        "/patients/{id}/careplans/{plan}",
        RouteAccess::CareWork,
        post(end_plan),
    )
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The care plans section: active and on-hold plans (newest first), their goals and activities;
/// `tasks` are the activity keys (`CarePlan/id#activityN`) that became tasks.
pub(crate) fn care_plans_section(
    plans: &[&Value],
    goals: &HashMap<String, &Value>,
    tasks: &HashSet<String>,
    csrf: Option<&str>,
    patient_id: &str,
    now: i64,
) -> Markup {
    let today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let mut shown: Vec<&Value> = plans
        .iter()
        .copied()
        .filter(|p| matches!(text(p, "/status"), Some("active" | "on-hold" | "draft")))
        .collect();
    shown.sort_by(|a, b| {
        let start = |p: &Value| {
            text(p, "/period/start")
                .or(text(p, "/created"))
                .map(str::to_owned)
        };
        start(b).cmp(&start(a))
    });
    html! {
        section.card #careplans aria-labelledby="careplans-h" {
            h2 #careplans-h { "Care plans (" (shown.len()) ")" }
            @if shown.is_empty() { p.muted { "No active care plan." } }
            @for plan in &shown {
                @let id = text(plan, "/id").unwrap_or_default();
                article.plan data-plan=(id) {
                    h3 {
                        (rapport_alerts::plans::plan_name(plan))
                        @if let Some(start) = text(plan, "/period/start") { span.muted { " · since " (view::format_date(start)) } }
                        @if text(plan, "/status") != Some("active") { " " span.tag { (text(plan, "/status").unwrap_or("")) } }
                    }
                    @let plan_goals: Vec<String> = plan.get("goal").and_then(Value::as_array).into_iter().flatten()
                        .filter_map(|g| g.get("reference").and_then(Value::as_str))
                        .filter_map(|r| goals.get(r.trim_start_matches("Goal/")))
                        .map(|g| goal_text(g))
                        .collect();
                    @if !plan_goals.is_empty() {
                        p { "Goal: " (plan_goals.join("; ")) }
                    }
                    @if let (Some(csrf), Some("active" | "on-hold")) = (csrf, text(plan, "/status")) {
                        form.actions method="post" action={ "/patients/" (patient_id) "/careplans/" (id) } {
                            input type="hidden" name="csrf" value=(csrf);
                            button name="action" value="complete" { "Plan done" }
                            button.secondary name="action" value="revoke" { "Stop the plan" }
                        }
                    }
                    @let activities = plan.get("activity").and_then(Value::as_array);
                    @if activities.is_some_and(|a| !a.is_empty()) {
                        ul.activities {
                            @for (n, a) in activities.into_iter().flatten().enumerate() {
                                @let detail = a.get("detail").unwrap_or(&Value::Null);
                                li data-activity=(n) {
                                    (rapport_alerts::plans::activity_name(detail))
                                    @if let Some(status) = text(detail, "/status") { " " span.tag { (status) } }
                                    @if let Some(start) = text(detail, "/scheduledPeriod/start").or(text(detail, "/scheduledTiming/event/0")) {
                                        span.muted { " · planned " (view::format_date(start)) }
                                    }
                                    @if tasks.contains(&rapport_alerts::plans::activity_key(id, n)) {
                                        " " span.tag { "task made" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(csrf) = csrf {
                details.new-plan {
                    summary { "New care plan" }
                    form.stack method="post" action={ "/patients/" (patient_id) "/careplans" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label { "Title " input type="text" name="title" required maxlength="200" size="50" placeholder="e.g. Diabetes follow-up"; }
                        label { "Goal " input type="text" name="goal" maxlength="1000" size="60" placeholder="e.g. HbA1c below 7.5% by June"; }
                        @for n in 1..=FORM_ACTIVITIES {
                            fieldset {
                                legend { "Activity " (n) @if n > 1 { " (optional)" } }
                                label { "What " input type="text" name={ "activity" (n) } maxlength="500" size="40" required[n == 1]; }
                                " "
                                label { "When " input type="date" name={ "date" (n) } required[n == 1] value=[(n == 1).then_some(today.as_str())]; }
                            }
                        }
                        p.muted { "Each activity becomes a task for the care team on its date." }
                        button type="submit" { "Start the plan" }
                    }
                }
            }
        }
    }
}

fn goal_text(goal: &Value) -> String {
    let mut t = goal
        .get("description")
        .map(view::concept)
        .unwrap_or_default();
    if let Some(status) = text(goal, "/lifecycleStatus").filter(|s| *s != "active") {
        t.push_str(&format!(" ({status})"));
    }
    t
}

#[derive(Deserialize, Default)]
pub(crate) struct NewPlanForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    goal: String,
    #[serde(default)]
    activity1: String,
    #[serde(default)]
    date1: String,
    #[serde(default)]
    activity2: String,
    #[serde(default)]
    date2: String,
    #[serde(default)]
    activity3: String,
    #[serde(default)]
    date3: String,
}

/// What a plan form says, checked.
#[derive(Debug, PartialEq)]
struct PlanInput {
    title: String,
    /// Empty when none was given.
    goal: String,
    /// What, and the day (`YYYY-MM-DD`).
    activities: Vec<(String, String)>,
}

/// The title, the goal, and the activities with their days, checked.
fn parse_plan(form: &NewPlanForm, today: chrono::NaiveDate) -> Result<PlanInput, String> {
    let title = form.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err("A care plan needs a title of 1 to 200 characters.".into());
    }
    let goal = form.goal.trim();
    if goal.chars().count() > 1000 {
        return Err("A goal is at most 1000 characters.".into());
    }
    let mut activities = Vec::new();
    for (n, (what, date)) in [
        (&form.activity1, &form.date1),
        (&form.activity2, &form.date2),
        (&form.activity3, &form.date3),
    ]
    .into_iter()
    .enumerate()
    {
        let (what, date) = (what.trim(), date.trim());
        if what.is_empty() && date.is_empty() {
            continue;
        }
        if what.is_empty() || what.chars().count() > 500 {
            return Err(format!(
                "Activity {} needs a description of 1 to 500 characters.",
                n + 1
            ));
        }
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| format!("Activity {} needs a date (YYYY-MM-DD).", n + 1))?;
        // A plan plans: what was done before today is recorded as what it was, not planned.
        if day < today {
            return Err(format!(
                "Activity {} is planned for a day already past; plan it for today or later.",
                n + 1
            ));
        }
        activities.push((what.to_owned(), day.format("%Y-%m-%d").to_string()));
    }
    if activities.is_empty() {
        return Err("A care plan needs at least one activity with a date.".into());
    }
    Ok(PlanInput {
        title: title.to_owned(),
        goal: goal.to_owned(),
        activities,
    })
}

/// `POST /patients/{id}/careplans`: a new active CarePlan (careplan.html) with its Goal and
/// scheduled activities, authored by the person who made it, in one audited transaction.
async fn new_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient): Path<String>,
    Form(form): Form<NewPlanForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    let granted = access::require_care_work(&state, &caller, &patient).await?;
    let PlanInput {
        title,
        goal,
        activities,
    } = match parse_plan(
        &form,
        chrono::DateTime::from_timestamp_millis(state.clock.now_ms())
            .unwrap_or_default()
            .date_naive(),
    ) {
        Ok(p) => p,
        Err(message) => {
            access::record(
                &state,
                &caller,
                &granted,
                vec![format!("Patient/{patient}")],
            )
            .await?;
            return Err(WebError::BadRequest(message));
        }
    };
    let now = state.clock.now_ms();
    let today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let author = match &caller.principal.practitioner_id {
        Some(p) => {
            json!({"reference": format!("Practitioner/{p}"), "display": caller.principal.name})
        }
        None => json!({"display": caller.principal.name}),
    };
    let mut resources = Vec::new();
    let mut plan = json!({
        "resourceType": "CarePlan",
        "id": uuid::Uuid::new_v4().to_string(),
        "status": "active",
        "intent": "plan",
        "title": title,
        "subject": {"reference": format!("Patient/{patient}")},
        "period": {"start": today},
        "created": rapport_fhir::date::format_instant(now),
        "author": author,
        "activity": activities.iter().map(|(what, day)| json!({"detail": {
            "status": "scheduled",
            "description": what,
            "scheduledPeriod": {"start": day, "end": day},
        }})).collect::<Vec<_>>(),
    });
    if !goal.is_empty() {
        let goal_id = uuid::Uuid::new_v4().to_string();
        resources.push(json!({
            "resourceType": "Goal",
            "id": goal_id,
            "lifecycleStatus": "active",
            "description": {"text": goal},
            "subject": {"reference": format!("Patient/{patient}")},
            "startDate": today,
            "expressedBy": author,
        }));
        plan["goal"] = json!([{"reference": format!("Goal/{goal_id}")}]);
    }
    resources.push(plan);
    crate::today::write_team_work(
        &state,
        &caller,
        &granted,
        resources,
        "care plan",
        "a care plan belongs to the patient it was written for",
    )
    .await?;
    Ok(Redirect::to(&format!("/patients/{patient}#careplans")).into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct EndPlanForm {
    #[serde(default)]
    csrf: String,
    /// `complete` (the plan did its work) or `revoke` (stopped before that).
    #[serde(default)]
    action: String,
}

/// `POST /patients/{id}/careplans/{plan}`: the plan ends, completed or revoked (careplan.html,
/// CarePlan.status), with its period ending today; a new version, audited. The evaluator then
/// cancels the open tasks its activities became (rapport_alerts::plans::tasks_of_ended_plans).
async fn end_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient, plan_id)): Path<(String, String)>,
    Form(form): Form<EndPlanForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    let granted = access::require_care_work(&state, &caller, &patient).await?;
    let entity = vec![format!("CarePlan/{plan_id}")];
    let status = match form.action.as_str() {
        "complete" => "completed",
        "revoke" => "revoked",
        _ => {
            access::record(&state, &caller, &granted, entity).await?;
            return Err(WebError::BadRequest("Unknown action.".into()));
        }
    };
    let key = rapport_store::ResourceKey::new("CarePlan", plan_id.clone());
    let stored = state.with_store(move |s| s.read(&key)).await?;
    let plan = stored
        .filter(|p| !p.deleted && p.patient_key.as_deref() == Some(patient.as_str()))
        .and_then(|p| serde_json::from_str::<Value>(&p.content).ok());
    let Some(mut plan) = plan else {
        access::record(&state, &caller, &granted, entity).await?;
        return Err(WebError::NotFound);
    };
    if !matches!(text(&plan, "/status"), Some("active" | "on-hold" | "draft")) {
        access::record(&state, &caller, &granted, entity).await?;
        return Err(WebError::BadRequest(
            "The care plan has already ended.".into(),
        ));
    }
    let today = chrono::DateTime::from_timestamp_millis(state.clock.now_ms())
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    plan["status"] = json!(status);
    plan["period"]["end"] = json!(today);
    if let Some(o) = plan.as_object_mut() {
        o.remove("meta");
    }
    crate::today::write_team_work(
        &state,
        &caller,
        &granted,
        vec![plan],
        &format!("care plan {status}"),
        "a care plan belongs to its patient",
    )
    .await?;
    Ok(Redirect::to(&format!("/patients/{patient}#careplans")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(title: &str, a1: (&str, &str), a2: (&str, &str)) -> NewPlanForm {
        NewPlanForm {
            title: title.into(),
            goal: "Walk 30 minutes a day".into(),
            activity1: a1.0.into(),
            date1: a1.1.into(),
            activity2: a2.0.into(),
            date2: a2.1.into(),
            ..Default::default()
        }
    }

    fn parse_plan_on(form: &NewPlanForm) -> Result<PlanInput, String> {
        parse_plan(form, chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap())
    }

    #[test]
    fn a_plan_needs_a_title_and_dated_activities() {
        let ok = parse_plan_on(&form(
            "Diabetes follow-up",
            ("Foot check", "2026-12-10"),
            ("", ""),
        ))
        .unwrap();
        assert_eq!(ok.title, "Diabetes follow-up");
        assert_eq!(
            ok.activities,
            vec![("Foot check".to_owned(), "2026-12-10".to_owned())]
        );
        assert!(parse_plan_on(&form(" ", ("Foot check", "2026-12-10"), ("", ""))).is_err());
        assert_eq!(
            parse_plan_on(&form("Plan", ("Foot check", "2026-12-10"), ("Review", ""))).unwrap_err(),
            "Activity 2 needs a date (YYYY-MM-DD)."
        );
        assert_eq!(
            parse_plan_on(&form("Plan", ("", "2026-12-10"), ("", ""))).unwrap_err(),
            "Activity 1 needs a description of 1 to 500 characters."
        );
        assert!(parse_plan_on(&form("Plan", ("", ""), ("", ""))).is_err());
        assert_eq!(
            parse_plan_on(&form("Plan", ("Foot check", "2026-12-03"), ("", ""))).unwrap_err(),
            "Activity 1 is planned for a day already past; plan it for today or later."
        );
    }
}
