//! The Today page (`/today`, staff's landing page): the alerts of the patients the signed-in
//! person may see, most urgent first, grouped by rule with counts, each saying why it is there;
//! one-click acknowledge, snooze, dismiss, assign, turn into a task, open the patient. The list
//! refreshes itself when alerts change (server-sent events on `/today/events`, script in
//! `/static/today.js`); without a script every action is an ordinary form post.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{html, Markup};
use rapport_store::alerts::{AlertAction, StoredAlert};
use rapport_store::ResourceKey;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::form::Form;
use crate::page::layout;
use crate::{access, view, AppState, Caller, RouteAccess, RouteBook, WebError};

/// The most alerts one page lists per group (the counts are of all of them).
const PER_GROUP: usize = 50;
/// The most alerts read for one page.
const MAX_ALERTS: u64 = 20_000;

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add("GET", "/today", RouteAccess::PatientList, get(today_page))
        .add(
            "GET",
            "/today/events",
            RouteAccess::SignedIn,
            get(today_events),
        )
        .add(
            "POST",
            "/alerts/{id}",
            RouteAccess::CareWork,
            post(change_alert),
        )
        .add(
            "POST",
            "/patients/{id}/tasks",
            RouteAccess::CareWork,
            post(new_task),
        )
        .add(
            "POST",
            "/patients/{id}/tasks/{task}",
            RouteAccess::CareWork,
            post(task_action),
        )
        .add(
            "GET",
            "/admin/alerts",
            RouteAccess::Admin,
            get(admin_alerts),
        )
        .add(
            "GET",
            "/static/today.js",
            RouteAccess::Public,
            get(|| async {
                (
                    [
                        (
                            axum::http::header::CONTENT_TYPE,
                            "text/javascript; charset=utf-8",
                        ),
                        (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    TODAY_JS,
                )
            }),
        )
}

/// Refreshes the list in place when the server says alerts changed (keeps the filters, the
/// focus and the scroll position).
const TODAY_JS: &str = r#"(function () {
  var list = document.getElementById('today-list');
  if (!list || !window.EventSource) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set('fragment', '1');
    fetch(url, {credentials: 'same-origin'}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }).then(function (html) {
      var focused = document.activeElement && document.activeElement.id;
      list.innerHTML = html;
      list.setAttribute('data-refreshed', String(Date.now()));
      if (focused) { var f = document.getElementById(focused); if (f) f.focus(); }
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }
  var events = new EventSource('/today/events');
  events.addEventListener('alerts', refresh);
  document.getElementById('today-live').textContent = 'Live: updates as alerts change.';
})();
"#;

#[derive(Deserialize, Default)]
pub(crate) struct TodayParams {
    /// A rule id: only that kind.
    #[serde(default)]
    kind: Option<String>,
    /// `mine`: only alerts assigned to me; `team` (default): every patient I may see.
    #[serde(default)]
    scope: Option<String>,
    /// `overdue`, `today` or `week`: only alerts due by then.
    #[serde(default)]
    due: Option<String>,
    /// Only the list (for the live refresh).
    #[serde(default)]
    fragment: Option<String>,
}

async fn today_page(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<TodayParams>,
) -> Result<Response, WebError> {
    if let Some(kind) = params.kind.as_deref() {
        if kind != TASKS_KIND && rapport_alerts::rule(kind).is_none() {
            return Err(WebError::BadRequest(format!(
                "'{kind}' is not a kind of alert here; the kinds are listed at the top of Today."
            )));
        }
    }
    let now = state.clock.now_ms();
    let patients = access::visible(&state, &caller).await?;
    let alerts = {
        let patients = patients.clone();
        state
            .with_store(move |s| s.showing_alerts(&patients, now, MAX_ALERTS))
            .await?
    };
    let tasks = {
        let patients = patients.clone();
        state.with_store(move |s| open_tasks(s, &patients)).await?
    };
    let me = caller.principal.user_id;
    let due_by = match params.due.as_deref() {
        Some("overdue") => Some(now),
        Some("today") => Some(end_of_day(now)),
        Some("week") => Some(end_of_day(now + 7 * 86_400_000)),
        _ => None,
    };
    let mine = params.scope.as_deref() == Some("mine");
    let only_tasks = params.kind.as_deref() == Some(TASKS_KIND);
    let task_count = tasks.len();
    let tasks: Vec<OpenTask> = tasks
        .into_iter()
        .filter(|_| params.kind.is_none() || only_tasks)
        .filter(|t| !mine || t.is_for(&caller.principal))
        .filter(|t| due_by.is_none_or(|d| t.due_ms.is_some_and(|due| due <= d)))
        .collect();
    let filtered: Vec<&StoredAlert> = alerts
        .iter()
        .filter(|_| !only_tasks)
        .filter(|a| params.kind.as_deref().is_none_or(|k| a.candidate.rule == k))
        .filter(|a| !mine || a.assigned_to == Some(me))
        // An alert with no due date (an abnormal result) is due now: it is in every due filter.
        .filter(|a| due_by.is_none_or(|d| a.candidate.due_ms.unwrap_or(a.raised_ms) <= d))
        .collect();
    // Group by rule in the rules' order; the rows of each group are already most urgent first.
    let mut groups: BTreeMap<usize, Vec<&StoredAlert>> = BTreeMap::new();
    for a in &filtered {
        let order = rapport_alerts::RULES
            .iter()
            .position(|r| r.id == a.candidate.rule)
            .unwrap_or(usize::MAX);
        groups.entry(order).or_default().push(a);
    }
    // Names of the patients on the page (only those shown).
    let shown: Vec<String> = {
        let mut ids: Vec<String> = groups
            .values()
            .flat_map(|g| g.iter().take(PER_GROUP))
            .map(|a| a.patient_key.clone())
            .chain(tasks.iter().take(PER_GROUP).map(|t| t.patient.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let keys: Vec<ResourceKey> = shown
        .iter()
        .map(|id| ResourceKey::new("Patient", id.clone()))
        .collect();
    let read = state.with_store(move |s| s.read_many(&keys)).await?;
    let names: HashMap<String, String> = read
        .iter()
        .filter_map(|p| {
            let v: Value = serde_json::from_str(&p.content).ok()?;
            Some((p.key.id.clone(), view::person_name(&v)))
        })
        .collect();
    access::record_list(&state, &caller, shown).await?;
    let counts: Vec<(&'static rapport_alerts::Rule, usize)> = rapport_alerts::RULES
        .iter()
        .map(|r| {
            (
                r,
                alerts.iter().filter(|a| a.candidate.rule == r.id).count(),
            )
        })
        .collect();
    // The actions are the care team's (patients and caregivers see the list only).
    let csrf = caller
        .csrf()
        .filter(|_| caller.principal.roles.iter().any(|r| r.is_care_staff()));
    // The forms bring people back to the list as they filtered it.
    let back = today_url(&params);
    let list = html! {
        (render_list(&groups, &names, csrf, now, filtered.len() + tasks.len(), &back))
        (render_tasks(&tasks, &names, csrf, now, &back))
    };
    if params.fragment.is_some() {
        return Ok(Html(list.into_string()).into_response());
    }
    let body = html! {
        h1 { "Today" }
        p.muted {
            (counted(alerts.len(), "open alert")) " and " (counted(task_count, "open task")) " for the " (counted(patients.len(), "patient")) " you may see. "
            span #today-live role="status" {}
        }
        nav.filters aria-label="Alert kinds" {
            a href="/today" aria-current=[params.kind.is_none().then_some("page")] { "All (" (alerts.len()) ")" }
            @for (rule, n) in &counts {
                " "
                a href={ "/today?kind=" (rule.id) } aria-current=[(params.kind.as_deref() == Some(rule.id)).then_some("page")] {
                    (rule.name) " (" (n) ")"
                }
            }
            " "
            a href={ "/today?kind=" (TASKS_KIND) } aria-current=[only_tasks.then_some("page")] { "Open tasks (" (task_count) ")" }
        }
        form.filters method="get" action="/today" {
            @if let Some(k) = &params.kind { input type="hidden" name="kind" value=(k); }
            label { "Show "
                select name="scope" {
                    option value="team" selected[!mine] { "all my patients" }
                    option value="mine" selected[mine] { "assigned to me or my role" }
                }
            }
            " "
            label { "Due "
                select name="due" {
                    option value="" selected[due_by.is_none()] { "any time" }
                    option value="overdue" selected[params.due.as_deref() == Some("overdue")] { "overdue" }
                    option value="today" selected[params.due.as_deref() == Some("today")] { "by today" }
                    option value="week" selected[params.due.as_deref() == Some("week")] { "within a week" }
                }
            }
            " "
            button type="submit" { "Filter" }
        }
        div #today-list { (list) }
        script src="/static/today.js" defer {}
    };
    Ok(Html(layout("Today", Some(&caller), body).into_string()).into_response())
}

/// The care plan (as stored) and activity index a task was made from, if it was made from one
/// of this patient's plans' activities and that activity is still open.
async fn activity_plan(
    state: &AppState,
    task: &Value,
    patient: &str,
) -> Result<Option<(Value, usize)>, WebError> {
    let Some((plan_id, n)) = rapport_alerts::plans::activity_of(task) else {
        return Ok(None);
    };
    let plan_id = plan_id.to_owned();
    let stored = state
        .with_store(move |s| s.read(&ResourceKey::new("CarePlan", plan_id)))
        .await?;
    let plan = stored
        .filter(|p| !p.deleted && p.patient_key.as_deref() == Some(patient))
        .and_then(|p| serde_json::from_str::<Value>(&p.content).ok());
    Ok(plan
        .filter(|p| {
            matches!(
                p.pointer(&format!("/activity/{n}/detail/status"))
                    .and_then(Value::as_str),
                Some("not-started" | "scheduled" | "in-progress" | "on-hold")
            )
        })
        .map(|p| (p, n)))
}

/// Write the care team's work on a patient (tasks, care plans) through the console's audited
/// write, and tell open Today pages to refresh (tasks are listed there).
pub(crate) async fn write_team_work(
    state: &AppState,
    caller: &Caller,
    granted: &access::Granted,
    resources: Vec<Value>,
    what: &str,
    foreign: &'static str,
) -> Result<Vec<String>, WebError> {
    let ids = crate::console::write_resources(
        state,
        caller,
        granted,
        resources,
        format!("{what} by {}", caller.principal.email),
        foreign,
    )
    .await?;
    state.alert_events.send_modify(|v| *v += 1);
    Ok(ids)
}

/// `/today` with the page's filters, for the forms to come back to.
fn today_url(params: &TodayParams) -> String {
    let pairs: Vec<String> = [
        ("kind", &params.kind),
        ("scope", &params.scope),
        ("due", &params.due),
    ]
    .into_iter()
    .filter_map(|(name, v)| {
        let v = v.as_deref().filter(|v| !v.is_empty())?;
        Some(format!(
            "{name}={}",
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
        ))
    })
    .collect();
    if pairs.is_empty() {
        "/today".into()
    } else {
        format!("/today?{}", pairs.join("&"))
    }
}

/// A return address on the Today page itself (never another site: no `//`, no scheme).
fn is_today_url(back: &str) -> bool {
    back == "/today"
        || back.strip_prefix("/today?").is_some_and(|q| {
            q.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '&' | '-' | '_' | '%'))
        })
}

/// "1 open alert", "3 open alerts".
fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn end_of_day(now: i64) -> i64 {
    (now.div_euclid(86_400_000) + 1) * 86_400_000
}

/// The `kind` filter that shows open tasks only.
const TASKS_KIND: &str = "tasks";
/// The most open tasks read for one page.
const MAX_TASKS: usize = 2_000;
/// Task states in which someone still has to act (task.html#statemachine).
const OPEN_TASK_STATES: &str = "requested,received,accepted,ready,in-progress,on-hold";

/// An open Task of a visible patient, as the Today page lists it.
pub(crate) struct OpenTask {
    pub patient: String,
    pub task: Value,
    /// The end of its due date (restriction.period.end, at its precision).
    pub due_ms: Option<i64>,
}

impl OpenTask {
    fn text(&self, pointer: &str) -> Option<&str> {
        self.task.pointer(pointer).and_then(Value::as_str)
    }

    /// For this person: owned by their Practitioner, or given to one of their roles
    /// (Task.performerType), or made by the care plan for nobody in particular.
    fn is_for(&self, p: &rapport_access::policy::Principal) -> bool {
        let owner = self.text("/owner/reference");
        let mine = p
            .practitioner_id
            .as_ref()
            .is_some_and(|id| owner == Some(format!("Practitioner/{id}").as_str()))
            || (self.text("/owner/identifier/system") == Some(USER_SYSTEM)
                && self.text("/owner/identifier/value") == Some(p.user_id.to_string().as_str()));
        let role = self
            .task
            .get("performerType")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c.get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter_map(|c| c.get("code").and_then(Value::as_str))
            .any(|code| p.roles.iter().any(|r| r.as_str() == code));
        mine || role
    }

    fn priority_rank(&self) -> u8 {
        match self.text("/priority") {
            Some("stat") => 0,
            Some("asap") => 1,
            Some("urgent") => 2,
            _ => 3,
        }
    }
}

/// The open tasks of `patients` (a search on Task.status, then only those of the patients
/// given), soonest due first, then most urgent.
fn open_tasks(
    s: &dyn rapport_store::Store,
    patients: &[String],
) -> Result<Vec<OpenTask>, rapport_store::StoreError> {
    let query = rapport_fhir::query::parse("Task", &format!("status={OPEN_TASK_STATES}"))
        .expect("a valid query");
    let visible: std::collections::HashSet<&str> = patients.iter().map(String::as_str).collect();
    let keys: Vec<(ResourceKey, String)> = s
        .search(&query, &[], (MAX_TASKS * 4) as u64)?
        .into_iter()
        .filter_map(|m| {
            let p = m.patient_key.filter(|p| visible.contains(p.as_str()))?;
            Some((ResourceKey::new("Task", m.id), p))
        })
        .take(MAX_TASKS)
        .collect();
    let read = s.read_many(&keys.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())?;
    let mut tasks: Vec<OpenTask> = read
        .into_iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| {
            let task: Value = serde_json::from_str(&r.content).ok()?;
            let due_ms = task
                .pointer("/restriction/period/end")
                .and_then(Value::as_str)
                .and_then(rapport_fhir::date::parse_range)
                .map(|r| r.end);
            Some(OpenTask {
                patient: r.patient_key?,
                task,
                due_ms,
            })
        })
        .collect();
    tasks.sort_by_key(|t| (t.due_ms.unwrap_or(i64::MAX), t.priority_rank()));
    Ok(tasks)
}

fn render_tasks(
    tasks: &[OpenTask],
    names: &HashMap<String, String>,
    csrf: Option<&str>,
    now: i64,
    back: &str,
) -> Markup {
    html! {
        @if !tasks.is_empty() {
            section.card.task-group aria-labelledby="group-tasks" {
                h2 #group-tasks { "Open tasks " span.count { "(" (tasks.len()) ")" } }
                ul.tasks {
                    @for t in tasks.iter().take(PER_GROUP) {
                        @let id = t.text("/id").unwrap_or_default();
                        li.task data-task=(id) {
                            div.what {
                                strong { (t.text("/description").unwrap_or("Task")) }
                                " · " a href={ "/patients/" (t.patient) "#alerts" } { (names.get(&t.patient).map_or(t.patient.as_str(), String::as_str)) }
                                " " span.tag { (t.text("/status").unwrap_or("")) }
                                @if let Some(p) = t.text("/priority").filter(|p| *p != "routine") { " " span.tag { (p) } }
                                @if let Some(due) = t.due_ms {
                                    // The end of the due date's precision: the day shown is the last inside it.
                                    " " span.due.overdue[due <= now] { "due " (view::format_ms_day(due - 1)) }
                                }
                            }
                            p.why {
                                @if let Some(who) = t.text("/owner/display") { "For " (who) ". " }
                                @if let Some(role) = t.text("/performerType/0/text") { "For any " (role.to_lowercase()) ". " }
                                @if t.text("/basedOn/0/reference").is_some_and(|r| r.starts_with("CarePlan/")) { "From the care plan. " }
                                @if let Some(by) = t.text("/requester/display") { "Asked by " (by) "." }
                            }
                            @if let Some(csrf) = csrf {
                                form.actions method="post" action={ "/patients/" (t.patient) "/tasks/" (id) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="back" value=(back);
                                    @if t.text("/status") != Some("in-progress") {
                                        button name="action" value="start" { "Start" }
                                    }
                                    button #{ "done-" (id) } name="action" value="complete" { "Done" }
                                }
                            }
                        }
                    }
                }
                @if tasks.len() > PER_GROUP {
                    p.muted { (tasks.len() - PER_GROUP) " more. " a href={ "/today?kind=" (TASKS_KIND) } { "Show only tasks" } }
                }
            }
        }
    }
}

fn render_list(
    groups: &BTreeMap<usize, Vec<&StoredAlert>>,
    names: &HashMap<String, String>,
    csrf: Option<&str>,
    now: i64,
    total: usize,
    back: &str,
) -> Markup {
    html! {
        @if total == 0 {
            p.empty { "Nothing needs doing for your patients right now." }
        }
        @for (order, alerts) in groups {
            @let rule = rapport_alerts::RULES.get(*order);
            section.card.alert-group aria-labelledby={ "group-" (order) } {
                h2 #{ "group-" (order) } {
                    (rule.map_or("Other", |r| r.name)) " "
                    span.count { "(" (alerts.len()) ")" }
                }
                ul.alerts {
                    @for a in alerts.iter().take(PER_GROUP) {
                        (alert_row(a, names.get(&a.patient_key).map(String::as_str), csrf, now, back))
                    }
                }
                @if alerts.len() > PER_GROUP {
                    p.muted {
                        (alerts.len() - PER_GROUP) " more. "
                        @if let Some(r) = rule { a href={ "/today?kind=" (r.id) } { "Show only " (r.name.to_lowercase()) } }
                    }
                }
            }
        }
    }
}

/// One alert with its actions; `back` is where the forms return to.
pub(crate) fn alert_row(
    a: &StoredAlert,
    patient_name: Option<&str>,
    csrf: Option<&str>,
    now: i64,
    back: &str,
) -> Markup {
    let severity = match a.candidate.severity {
        0 => "critical",
        1 => "high",
        2 => "normal",
        _ => "low",
    };
    let id = a.alert_id;
    html! {
        li.alert data-severity=(severity) data-alert=(id) data-status=(a.status) {
            div.what {
                span.severity { (severity) } " "
                strong { (a.candidate.title) }
                @if let Some(name) = patient_name {
                    " · " a href={ "/patients/" (a.patient_key) } { (name) }
                }
                @if a.status == "acknowledged" { " " span.tag { "acknowledged" } }
                @if a.status == "snoozed" { " " span.tag { "snooze ended" } }
                @if a.assigned_to.is_some() { " " span.tag { "assigned" } }
                @if let Some(due) = a.candidate.due_ms {
                    " " span.due.overdue[due <= now] { "due " (view::format_ms_day(due)) }
                }
            }
            p.why { (a.candidate.why) }
            @if let Some(csrf) = csrf {
                form.actions method="post" action={ "/alerts/" (id) } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="back" value=(back);
                    @if a.status != "acknowledged" {
                        button #{ "ack-" (id) } name="action" value="acknowledge" { "Acknowledge" }
                    }
                    button name="action" value="snooze-day" { "Snooze 1 day" }
                    button name="action" value="snooze-week" { "Snooze 1 week" }
                    @if a.assigned_to.is_none() {
                        button name="action" value="assign-me" { "Assign to me" }
                    } @else {
                        button name="action" value="unassign" { "Unassign" }
                    }
                    button name="action" value="task" { "Make a task" }
                    label { span.visually-hidden { "Reason to dismiss" }
                        input type="text" name="reason" placeholder="reason to dismiss" maxlength="500";
                    }
                    button name="action" value="dismiss" { "Dismiss" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    back: String,
}

/// A person's change to an alert: authorised as a write on its patient, audited in the same
/// transaction as the change.
async fn change_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    let found = state.with_store(move |s| s.alert(id)).await?;
    let Some(found) = found else {
        return Err(WebError::NotFound);
    };
    let granted = access::require_care_work(&state, &caller, &found.patient_key).await?;
    // A closed alert is left as it was closed (a stale page must not undo a dismissal): a
    // dismissed one can only be reopened (or its reason changed); a resolved one is the rules' to
    // reopen.
    let closed = match (found.status.as_str(), form.action.as_str()) {
        // Dismissing again only changes the reason.
        ("dismissed", "reopen" | "dismiss") => None,
        ("dismissed", _) => Some("This alert was dismissed; reopen it first to act on it."),
        ("resolved", _) => {
            Some("This alert was resolved: its cause went away, so there is nothing to do.")
        }
        _ => None,
    };
    if let Some(message) = closed {
        access::record(&state, &caller, &granted, vec![format!("Alert/{id}")]).await?;
        return Err(WebError::BadRequest(message.into()));
    }
    let now = state.clock.now_ms();
    let me = caller.principal.user_id;
    let action = match form.action.as_str() {
        "acknowledge" => AlertAction::Acknowledge,
        "snooze-day" => AlertAction::Snooze {
            until_ms: now + 86_400_000,
        },
        "snooze-week" => AlertAction::Snooze {
            until_ms: now + 7 * 86_400_000,
        },
        "reopen" => AlertAction::Reopen,
        "assign-me" => AlertAction::Assign { user_id: Some(me) },
        "unassign" => AlertAction::Assign { user_id: None },
        "dismiss" => {
            let reason = form.reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                access::record(&state, &caller, &granted, vec![format!("Alert/{id}")]).await?;
                return Err(WebError::BadRequest(
                    "Say why the alert is dismissed (up to 500 characters).".into(),
                ));
            }
            AlertAction::Dismiss {
                reason: reason.to_owned(),
            }
        }
        "task" => {
            let task_id = make_task(&state, &caller, &granted, &found).await?;
            // The alert is taken care of by the task.
            apply_change(&state, &caller, &granted, id, AlertAction::Acknowledge).await?;
            return Ok(Redirect::to(&format!(
                "/patients/{}?task={task_id}#alerts",
                found.patient_key
            ))
            .into_response());
        }
        _ => {
            access::record(&state, &caller, &granted, vec![format!("Alert/{id}")]).await?;
            return Err(WebError::BadRequest("Unknown action.".into()));
        }
    };
    apply_change(&state, &caller, &granted, id, action).await?;
    let back = if form.back.starts_with("/patients/") || is_today_url(&form.back) {
        form.back
    } else {
        "/today".to_owned()
    };
    Ok(Redirect::to(&back).into_response())
}

async fn apply_change(
    state: &AppState,
    caller: &Caller,
    granted: &access::Granted,
    id: i64,
    action: AlertAction,
) -> Result<(), WebError> {
    let now = state.clock.now_ms();
    let mut record = granted.record(caller, vec![format!("Alert/{id}")], now);
    record.detail = format!("alert {}", action.label());
    state
        .with_store(move |s| {
            s.write(rapport_store::Durability::Immediate, &mut |tx| {
                tx.change_alert(id, &action, now)?;
                tx.append_audit(&record)?;
                Ok(())
            })
        })
        .await?;
    state.alert_events.send_modify(|v| *v += 1);
    Ok(())
}

/// Task.owner for a person: their Practitioner when they have one, and always their account
/// (Reference.identifier, the account number as the audit trail names it), so that "assigned
/// to me" finds it for staff without a Practitioner too.
fn owner_of(p: &rapport_access::policy::Principal) -> Value {
    let mut owner = json!({
        "identifier": {"system": USER_SYSTEM, "value": p.user_id.to_string()},
        "display": p.name,
    });
    if let Some(id) = &p.practitioner_id {
        owner["reference"] = json!(format!("Practitioner/{id}"));
    }
    owner
}

/// Rapport's accounts as identifiers (as in the audit trail's AuditEvent form).
const USER_SYSTEM: &str = "urn:rapport:user";

/// The identifier system of a task made from an alert (the value is the alert's number).
const ALERT_TASK_SYSTEM: &str = "urn:rapport:alert-task";

/// Turn an alert into a FHIR Task (task.html) for the patient: requested, for the patient,
/// focused on what the alert is about, due when the alert is (else tomorrow), priority from
/// the alert's severity, owned by the person who made it when they are a practitioner.
async fn make_task(
    state: &AppState,
    caller: &Caller,
    granted: &access::Granted,
    a: &StoredAlert,
) -> Result<String, WebError> {
    // One task per alert: a second click (or a second person) opens the task made before.
    let marker = a.alert_id.to_string();
    let existing = {
        let patient = a.patient_key.clone();
        let marker = marker.clone();
        state
            .with_store(move |s| {
                Ok(s.patient_record_of_types(&patient, &["Task"])?
                    .into_iter()
                    .find(|t| {
                        serde_json::from_str::<Value>(&t.content).is_ok_and(|v| {
                            v.get("identifier")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .any(|i| {
                                    i.get("system").and_then(Value::as_str)
                                        == Some(ALERT_TASK_SYSTEM)
                                        && i.get("value").and_then(Value::as_str)
                                            == Some(marker.as_str())
                                })
                        })
                    })
                    .map(|t| t.key.id))
            })
            .await?
    };
    if let Some(id) = existing {
        return Ok(id);
    }
    let now = state.clock.now_ms();
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let due = a
        .candidate
        .due_ms
        .filter(|d| *d > now)
        .unwrap_or(now + 86_400_000);
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": match a.candidate.severity { 0 => "stat", 1 => "urgent", _ => "routine" },
        "description": format!("{}: {}", a.candidate.title, a.candidate.why),
        "for": {"reference": format!("Patient/{}", a.patient_key)},
        "authoredOn": iso(now),
        "requester": {"display": caller.principal.name},
        "restriction": {"period": {"end": iso(due)}},
        "note": [{"text": format!("From the alert {} ({})", a.alert_id, a.candidate.rule)}],
        "identifier": [{"system": ALERT_TASK_SYSTEM, "value": marker}],
    });
    if let Some(focus) = &a.candidate.focus {
        task["focus"] = json!({"reference": focus});
    }
    task["owner"] = owner_of(&caller.principal);
    let id = crate::console::write_resource(
        state,
        caller,
        granted,
        task,
        format!(
            "task from alert {} by {}",
            a.alert_id, caller.principal.email
        ),
        "a task belongs to the patient of its alert",
    )
    .await?;
    Ok(id)
}

/// `alerts` events whenever alerts change (new data evaluated, a sweep, someone's action); the
/// page then fetches its list again, through the same authorisation as the page itself. The
/// events carry no patient data.
async fn today_events(State(state): State<AppState>, _caller: Caller) -> impl IntoResponse {
    let rx = state.alert_events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let version = *rx.borrow_and_update();
        Some((
            Ok::<_, std::convert::Infallible>(
                Event::default().event("alerts").data(version.to_string()),
            ),
            rx,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The patient's open alerts and tasks, for the top of the 360 page, with the forms to act on
/// them (for those who may write).
pub(crate) fn patient_alerts_section(
    alerts: &[StoredAlert],
    tasks: &[Value],
    csrf: Option<&str>,
    now: i64,
    patient_id: &str,
) -> Markup {
    let today = chrono::DateTime::from_timestamp_millis(now + 86_400_000)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let showing: Vec<&StoredAlert> = alerts.iter().filter(|a| a.is_showing(now)).collect();
    let back = format!("/patients/{patient_id}");
    html! {
        section.card #alerts aria-labelledby="alerts-h" {
            h2 #alerts-h { "Alerts and tasks " span.count { "(" (showing.len() + tasks.len()) ")" } }
            @if showing.is_empty() && tasks.is_empty() {
                p.empty { "No open alerts or tasks." }
            }
            @if !showing.is_empty() {
                ul.alerts {
                    @for a in &showing { (alert_row(a, None, csrf, now, &back)) }
                }
            }
            @if !tasks.is_empty() {
                h3 { "Open tasks" }
                ul.tasks {
                    @for t in tasks {
                        @let id = t.get("id").and_then(Value::as_str).unwrap_or_default();
                        li.task data-task=(id) {
                            strong { (t.get("description").and_then(Value::as_str).unwrap_or("Task")) }
                            " · " (t.get("status").and_then(Value::as_str).unwrap_or(""))
                            @if let Some(p) = t.get("priority").and_then(Value::as_str) { " · " (p) }
                            @if let Some(end) = t.pointer("/restriction/period/end").and_then(Value::as_str) {
                                " · due " (view::format_date(end))
                            }
                            @if let Some(who) = t.pointer("/owner/display").and_then(Value::as_str) { " · for " (who) }
                            @if let Some(role) = t.pointer("/performerType/0/text").and_then(Value::as_str) { " · for any " (role.to_lowercase()) }
                            @for n in t.get("note").and_then(Value::as_array).into_iter().flatten() {
                                p.muted { (n.get("authorString").and_then(Value::as_str).unwrap_or("")) ": " (n.get("text").and_then(Value::as_str).unwrap_or("")) }
                            }
                            @if let Some(csrf) = csrf {
                                form.actions method="post" action={ "/patients/" (patient_id) "/tasks/" (id) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    @if t.get("status").and_then(Value::as_str) != Some("in-progress") {
                                        button name="action" value="start" { "Start" }
                                    }
                                    button name="action" value="complete" { "Done" }
                                    button.secondary name="action" value="cancel" { "Cancel task" }
                                    label { span.visually-hidden { "Comment" }
                                        input type="text" name="comment" placeholder="comment" maxlength="2000";
                                    }
                                    button name="action" value="comment" { "Add comment" }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(csrf) = csrf {
                details.new-task {
                    summary { "New task" }
                    form.stack method="post" action={ "/patients/" (patient_id) "/tasks" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label { "What " input type="text" name="description" required maxlength="1000" size="60"; }
                        label { "Due " input type="date" name="due" required value=(today); }
                        label { "Priority "
                            select name="priority" {
                                option value="routine" { "routine" }
                                option value="urgent" { "urgent" }
                                option value="asap" { "as soon as possible" }
                                option value="stat" { "immediately (stat)" }
                            }
                        }
                        label { "For "
                            select name="assignee" {
                                option value="me" { "me" }
                                @for (code, name) in TASK_ROLES { option value=(code) { "any " (name.to_lowercase()) } }
                            }
                        }
                        button type="submit" { "Add task" }
                    }
                }
            }
        }
    }
}

/// The alert rules as configured (admin): each rule with what it looks for, the parameters in
/// force (the administrator's file, else the defaults), alerts by status, the last sweep. No
/// patient data.
async fn admin_alerts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Html<String>, WebError> {
    crate::admin::require_admin(&caller)?;
    let (counts, sweep) = state
        .with_store(|s| Ok((s.alert_counts()?, s.sweep_state()?)))
        .await?;
    let settings = &state.settings;
    let body = html! {
        h1 { "Alert rules" }
        section.card {
            h2 { "Rules" }
            table {
                thead { tr { th { "Rule" } th { "Looks for" } } }
                tbody {
                    @for r in rapport_alerts::RULES {
                        tr { td { strong { (r.name) } br; code { (r.id) } } td { (r.description) } }
                    }
                }
            }
        }
        section.card {
            h2 { "Alerts by status" }
            @if counts.is_empty() { p.empty { "No alerts yet." } }
            ul { @for (status, n) in &counts { li { (status) ": " (n) } } }
            @match &sweep {
                Some(s) => @match s.finished_ms {
                    Some(finished) => p { "Last sweep: " (s.evaluated) " patients, started " (view::format_ms(s.started_ms)) ", finished " (view::format_ms(finished)) "." },
                    None => p { "Sweep in progress since " (view::format_ms(s.started_ms)) ": " (s.evaluated) " patients so far." },
                },
                None => p { "No sweep has run yet." },
            }
            p { "Every patient is swept every " (settings.alert_sweep_every_ms / 60_000) " minutes; changed patients are evaluated as their data arrives." }
        }
        section.card {
            h2 { "Parameters" }
            @match &settings.alert_rules_file {
                Some((path, text)) => {
                    p { "From " code { (path.display()) } ", over the defaults below." }
                    pre { (text) }
                }
                None => p { "The built-in defaults (start Rapport with " code { "--alert-rules FILE" } " to change them):" },
            }
            pre.defaults { (rapport_alerts::config::DEFAULTS_TOML) }
        }
    };
    Ok(Html(
        layout("Alert rules", Some(&caller), body).into_string(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct NewTaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    description: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    due: String,
    #[serde(default)]
    priority: String,
    /// `me`, or a role: `coordinator`, `clinician`.
    #[serde(default)]
    assignee: String,
}

/// The team roles a task may be given to (Task.performerType), as people name them.
const TASK_ROLES: [(&str, &str); 2] = [
    ("coordinator", "Care coordinator"),
    ("clinician", "Clinician"),
];

/// A new task for the patient (task.html): requested, due at the end of the given day, with a
/// priority, for the person who made it (their Practitioner, when they have one) or for a role.
pub(crate) async fn new_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient): Path<String>,
    Form(form): Form<NewTaskForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    let granted = access::require_care_work(&state, &caller, &patient).await?;
    let description = form.description.trim();
    let due = chrono::NaiveDate::parse_from_str(form.due.trim(), "%Y-%m-%d").ok();
    let priority = match form.priority.as_str() {
        "" => Some("routine"),
        p @ ("routine" | "urgent" | "asap" | "stat") => Some(p),
        _ => None,
    };
    let (Some(due), Some(priority)) = (due, priority) else {
        access::record(
            &state,
            &caller,
            &granted,
            vec![format!("Patient/{patient}")],
        )
        .await?;
        return Err(WebError::BadRequest(
            "A task needs a due date (YYYY-MM-DD) and a priority of routine, urgent, asap or stat."
                .into(),
        ));
    };
    if description.is_empty() || description.chars().count() > 1000 {
        access::record(
            &state,
            &caller,
            &granted,
            vec![format!("Patient/{patient}")],
        )
        .await?;
        return Err(WebError::BadRequest(
            "A task needs a description of 1 to 1000 characters.".into(),
        ));
    }
    let now = state.clock.now_ms();
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": priority,
        "description": description,
        "for": {"reference": format!("Patient/{patient}")},
        "authoredOn": rapport_fhir::date::format_instant(now),
        "requester": {"display": caller.principal.name},
        // Due by the end of the day given (a date's precision: FHIR datatypes.html#dateTime).
        "restriction": {"period": {"end": due.format("%Y-%m-%d").to_string()}},
    });
    match form.assignee.as_str() {
        "me" | "" => task["owner"] = owner_of(&caller.principal),
        role => {
            let Some((code, name)) = TASK_ROLES.iter().find(|(c, _)| *c == role) else {
                access::record(
                    &state,
                    &caller,
                    &granted,
                    vec![format!("Patient/{patient}")],
                )
                .await?;
                return Err(WebError::BadRequest("Unknown assignee.".into()));
            };
            task["performerType"] =
                json!([{"coding": [{"system": "urn:rapport:role", "code": code}], "text": name}]);
        }
    }
    write_team_work(
        &state,
        &caller,
        &granted,
        vec![task],
        "task",
        "a task belongs to the patient it was written for",
    )
    .await?;
    Ok(Redirect::to(&format!("/patients/{patient}#alerts")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TaskActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    comment: String,
    /// Where to return: the Today page, else the patient's page.
    #[serde(default)]
    back: String,
}

/// A task moved on (task.html#statemachine): started (in-progress), completed, cancelled, or a
/// comment added (Task.note); a new version of the Task, audited.
pub(crate) async fn task_action(
    State(state): State<AppState>,
    caller: Caller,
    Path((patient, task_id)): Path<(String, String)>,
    Form(form): Form<TaskActionForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    let granted = access::require_care_work(&state, &caller, &patient).await?;
    let key = ResourceKey::new("Task", task_id.clone());
    let stored = state.with_store(move |s| s.read(&key)).await?;
    let task = stored
        .filter(|t| !t.deleted && t.patient_key.as_deref() == Some(patient.as_str()))
        .and_then(|t| serde_json::from_str::<Value>(&t.content).ok());
    let Some(mut task) = task else {
        access::record(&state, &caller, &granted, vec![format!("Task/{task_id}")]).await?;
        return Err(WebError::NotFound);
    };
    let now = state.clock.now_ms();
    let when = rapport_fhir::date::format_instant(now);
    let done = matches!(
        task.get("status").and_then(Value::as_str),
        Some("completed" | "cancelled" | "failed" | "rejected" | "entered-in-error")
    );
    let comment = form.comment.trim();
    match form.action.as_str() {
        "start" | "complete" | "cancel" if done => {
            access::record(&state, &caller, &granted, vec![format!("Task/{task_id}")]).await?;
            return Err(WebError::BadRequest("The task is already closed.".into()));
        }
        "start" => {
            task["status"] = json!("in-progress");
            // Whoever starts a task nobody owned takes it on.
            if task.get("owner").is_none() {
                task["owner"] = owner_of(&caller.principal);
            }
            task["executionPeriod"]["start"] = json!(when);
        }
        "complete" | "cancel" => {
            task["status"] = json!(if form.action == "complete" {
                "completed"
            } else {
                "cancelled"
            });
            task["executionPeriod"]["end"] = json!(when);
        }
        "comment" if !comment.is_empty() && comment.chars().count() <= 2000 => {}
        _ => {
            access::record(&state, &caller, &granted, vec![format!("Task/{task_id}")]).await?;
            return Err(WebError::BadRequest(
                "Unknown action, or an empty comment.".into(),
            ));
        }
    }
    if !comment.is_empty() {
        let note = json!({"authorString": caller.principal.name, "time": when, "text": comment});
        match task.get_mut("note").and_then(Value::as_array_mut) {
            Some(notes) => notes.push(note),
            None => task["note"] = json!([note]),
        }
    }
    task["lastModified"] = json!(when);
    if let Some(meta) = task.as_object_mut() {
        meta.remove("meta");
    }
    // A task made from a care plan activity (rapport_alerts::plans) closes that activity too,
    // in the same transaction: the plan then shows it done (careplan.html, activity.detail.status).
    let mut resources = Vec::new();
    if let ("complete" | "cancel", Some(plan)) = (
        form.action.as_str(),
        activity_plan(&state, &task, &patient).await?,
    ) {
        let (mut plan, n) = plan;
        plan["activity"][n]["detail"]["status"] = json!(if form.action == "complete" {
            "completed"
        } else {
            "cancelled"
        });
        if let Some(meta) = plan.as_object_mut() {
            meta.remove("meta");
        }
        resources.push(plan);
    }
    resources.insert(0, task);
    write_team_work(
        &state,
        &caller,
        &granted,
        resources,
        "task update",
        "a task belongs to its patient",
    )
    .await?;
    // The overdue-task alert, if any, resolves once the evaluator sees the new version.
    if is_today_url(&form.back) {
        return Ok(Redirect::to(&form.back).into_response());
    }
    Ok(Redirect::to(&format!("/patients/{patient}#alerts")).into_response())
}
