//! The care team's console: the patient list and each patient's 360 page, adding a note to a
//! record, and break-the-glass. Every handler here goes through [`crate::access`] first.

use std::collections::HashMap;

use crate::form::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{html, Markup};
use rapport_access::policy::{Action, Basis, Decision};
use rapport_fhir::{date, text};
use rapport_store::{PatientSearch, ResourceKey, StoredResource};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::access;
use crate::page::layout;
use crate::view::{self, concept, format_date, str_at};
use crate::{AppState, Caller, RouteAccess, RouteBook, WebError};

const PAGE_SIZE: u64 = 25;
const MAX_NOTE_CHARS: usize = 10_000;

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add(
        "GET",
        "/",
        RouteAccess::Public,
        get(|| async { Redirect::to("/today") }),
    )
    .add(
        "GET",
        "/patients",
        RouteAccess::PatientList,
        get(patient_list),
    )
    // Searches are POSTed so that names and birth dates stay out of URLs (and the access
    // logs of proxies in front of Rapport).
    .add(
        "POST",
        "/patients",
        RouteAccess::PatientList,
        post(patient_search),
    )
    .add(
        "GET",
        "/patients/{id}",
        RouteAccess::PatientRead,
        get(patient_page),
    )
    .add(
        "POST",
        "/patients/{id}/notes",
        RouteAccess::PatientWrite,
        post(add_note),
    )
    .add(
        "POST",
        "/patients/{id}/break-glass",
        RouteAccess::BreakGlass,
        post(break_glass),
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct PageParams {
    #[serde(default)]
    page: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    birthdate: String,
    #[serde(default)]
    page: Option<u64>,
}

async fn patient_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<Html<String>, WebError> {
    let form = SearchForm {
        page: params.page,
        ..SearchForm::default()
    };
    list(&state, &caller, form).await
}

async fn patient_search(
    State(state): State<AppState>,
    caller: Caller,
    Form(form): Form<SearchForm>,
) -> Result<Html<String>, WebError> {
    caller.check_csrf(&form.csrf)?;
    list(&state, &caller, form).await
}

fn bad_date_given(s: &str) -> bool {
    !s.trim().is_empty() && date::parse_range(s.trim()).is_none()
}

/// The patients the caller may see, filtered by the search, one page of them.
async fn list(
    state: &AppState,
    caller: &Caller,
    params: SearchForm,
) -> Result<Html<String>, WebError> {
    let visible = access::visible(state, caller).await?;
    let page = params.page.unwrap_or(1).max(1);
    let birth_range = date::parse_range(params.birthdate.trim());
    let search = PatientSearch {
        name_words: text::normalize(&params.name)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect(),
        identifier: Some(params.identifier.trim().to_owned()).filter(|s| !s.is_empty()),
        birth_date: birth_range.map(|r| (r.start, r.end)),
        // An unreadable birth date matches nothing rather than being dropped from the search.
        only_ids: Some(if bad_date_given(&params.birthdate) {
            Vec::new()
        } else {
            visible
        }),
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let bad_date = !params.birthdate.trim().is_empty() && birth_range.is_none();
    let result = state
        .with_store(move |s| s.search_patients(&search))
        .await?;
    access::record_list(
        state,
        caller,
        result.patients.iter().map(|p| p.key.id.clone()).collect(),
    )
    .await?;
    let patients: Vec<Value> = result
        .patients
        .iter()
        .filter_map(|p| serde_json::from_str(&p.content).ok())
        .collect();
    let first = (page - 1) * PAGE_SIZE + 1;
    let last = (page - 1) * PAGE_SIZE + patients.len() as u64;
    let csrf = caller.csrf().unwrap_or_default().to_owned();
    // The pager repeats the search as a POST, so the criteria never enter a URL.
    let pager_button = |p: u64, label: &str, rel: &str| {
        html! {
            form.inline method="post" action="/patients" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="name" value=(params.name);
                input type="hidden" name="identifier" value=(params.identifier);
                input type="hidden" name="birthdate" value=(params.birthdate);
                input type="hidden" name="page" value=(p);
                button type="submit" rel=(rel) { (label) }
            }
        }
    };
    let body = html! {
        h1 { "Patients" }
        p.muted { "Patients on your care team or panel, and those whose record you may see." }
        form.search method="post" action="/patients" role="search" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Name " input type="search" name="name" value=(params.name) placeholder="e.g. Maria Medina" autofocus; }
            label { "MRN or identifier " input type="search" name="identifier" value=(params.identifier); }
            label { "Birth date " input type="search" name="birthdate" value=(params.birthdate) placeholder="YYYY-MM-DD"; }
            button type="submit" { "Search" }
        }
        @if bad_date { p.badge.warn { "Birth date must be YYYY, YYYY-MM or YYYY-MM-DD." } }
        @if result.total == 0 {
            p { "No patients match." }
        } @else if patients.is_empty() {
            p { "No patients on page " (page) "; there are " (result.total) ". " a href="/patients" { "Back to page 1" } }
        } @else {
            p.muted { "Showing " (first) "–" (last) " of " (result.total) }
            table {
                thead { tr { th { "Name" } th { "Gender" } th { "Birth date" } th { "Identifiers" } } }
                tbody {
                    @for p in &patients {
                        @let id = str_at(p, "id").unwrap_or_default();
                        tr {
                            td {
                                a href={ "/patients/" (id) } { (view::person_name(p)) }
                                @if p.get("deceasedDateTime").is_some() || p.get("deceasedBoolean").and_then(Value::as_bool) == Some(true) {
                                    " " span.badge { "deceased" }
                                }
                            }
                            td { (str_at(p, "gender").unwrap_or("")) }
                            td { (str_at(p, "birthDate").map(format_date).unwrap_or_default()) }
                            td.muted { (mrn(p).unwrap_or_default()) }
                        }
                    }
                }
            }
            nav.pager aria-label="pages" {
                @if page > 1 { (pager_button(page - 1, "← Previous", "prev")) }
                span.muted { "Page " (page) " of " (result.total.div_ceil(PAGE_SIZE)) }
                @if last < result.total { (pager_button(page + 1, "Next →", "next")) }
            }
        }
    };
    Ok(Html(layout("Patients", Some(caller), body).into_string()))
}

/// The medical record number if there is one (identifier type v2-0203 MR), else the first
/// identifier.
fn mrn(p: &Value) -> Option<String> {
    let ids = p.get("identifier")?.as_array()?;
    let is_mr = |i: &&Value| {
        i.get("type")
            .and_then(|t| t.get("coding"))
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| str_at(c, "code") == Some("MR")))
    };
    let id = ids.iter().find(is_mr).or_else(|| ids.first())?;
    str_at(id, "value").map(str::to_owned)
}

/// A resource of the patient's record with its provenance.
struct Item {
    resource: Value,
    stored: StoredResource,
}

async fn patient_page(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, WebError> {
    let granted = access::require(&state, &caller, &id, Action::Read).await?;
    let record = {
        let id = id.clone();
        state.with_store(move |s| s.patient_record(&id)).await?
    };
    let items = parse_items(record);
    let Some(patient) = items
        .iter()
        .find(|i| i.stored.key.resource_type == "Patient" && i.stored.key.id == id)
    else {
        access::record(&state, &caller, &granted, vec![format!("Patient/{id}")]).await?;
        return Err(WebError::NotFound);
    };
    // Names of the practitioners and organisations the record points at.
    let mut wanted: Vec<ResourceKey> = Vec::new();
    for item in &items {
        collect_provider_refs(&item.resource, &mut wanted);
    }
    wanted.sort();
    wanted.dedup();
    let providers = state.with_store(move |s| s.read_many(&wanted)).await?;
    let names: HashMap<String, String> = providers
        .iter()
        .filter_map(|p| {
            let v: Value = serde_json::from_str(&p.content).ok()?;
            Some((
                format!("{}/{}", p.key.resource_type, p.key.id),
                view::person_name(&v),
            ))
        })
        .collect();
    // Offer the note form only to those who may write (a caregiver may have read-only access).
    let now = state.clock.now_ms();
    let may_write = granted.also_allows(&caller, Action::Write, now);
    // Alerts, tasks and care plans are the care team's to work (not the patient's or a caregiver's).
    let may_work = granted.allows_care_work(&caller, now);
    let alerts = {
        let id = id.clone();
        state
            .with_store(move |s| s.patient_alerts(&id, false))
            .await?
    };
    let open_tasks: Vec<Value> = items
        .iter()
        .filter(|i| i.stored.key.resource_type == "Task")
        .filter(|i| {
            matches!(
                i.resource.get("status").and_then(Value::as_str),
                Some("requested" | "received" | "accepted" | "ready" | "in-progress" | "on-hold")
            )
        })
        .map(|i| i.resource.clone())
        .collect();
    let plans: Vec<&Value> = items
        .iter()
        .filter(|i| i.stored.key.resource_type == "CarePlan")
        .map(|i| &i.resource)
        .collect();
    let goals: HashMap<String, &Value> = items
        .iter()
        .filter(|i| i.stored.key.resource_type == "Goal")
        .map(|i| (i.stored.key.id.clone(), &i.resource))
        .collect();
    // Activities that became tasks (rapport_alerts::plans names them by an identifier).
    let activity_tasks: std::collections::HashSet<String> = items
        .iter()
        .filter(|i| i.stored.key.resource_type == "Task")
        .filter_map(|i| rapport_alerts::plans::activity_of(&i.resource))
        .map(|(plan, n)| rapport_alerts::plans::activity_key(plan, n))
        .collect();
    // The whole compartment was read: one audit record names it (`Patient/id/*`).
    access::record(&state, &caller, &granted, vec![format!("Patient/{id}/*")]).await?;
    let body = html! {
        @if let Decision::Allow(Basis::BreakGlass { .. }) = granted.decision {
            p.flag role="status" { "Emergency access (break-the-glass): recorded and reviewed." }
        }
        (crate::today::patient_alerts_section(&alerts, &open_tasks, caller.csrf().filter(|_| may_work), now, &id))
        (crate::plans::care_plans_section(&plans, &goals, &activity_tasks, caller.csrf().filter(|_| may_work), &id, now))
        (render_360(patient, &items, &names))
        @if items.iter().any(|i| i.stored.source.as_ref().is_some_and(|s| s.kind == "hl7v2")) {
            p { a href={ "/patients/" (id) "/messages" } { "Messages from feeds (HL7 v2), as received" } }
        }
        @if let Some(csrf) = caller.csrf().filter(|_| may_write) {
            section.card aria-labelledby="add-note" {
                h2 #add-note { "Add a note" }
                form method="post" action={ "/patients/" (id) "/notes" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Note " textarea name="text" rows="3" cols="70" required maxlength="10000" {} }
                    " "
                    button type="submit" { "Add note" }
                }
            }
        }
    };
    let title = view::person_name(&patient.resource);
    let html = layout(&title, Some(&caller), body).into_string();
    // Freeing hundreds of parsed resources takes a while: not on the response's time.
    tokio::task::spawn_blocking(move || drop(items));
    Ok(Html(html))
}

#[derive(Deserialize)]
pub(crate) struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

/// Add a note to the record: a DocumentReference (LOINC 34109-9 "Note") with the text inline,
/// written through the importer (versioned, with provenance "console") and audited as a write in
/// the same transaction.
async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<impl IntoResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let granted = access::require(&state, &caller, &id, Action::Write).await?;
    let note = form.text.trim().to_owned();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        access::record(&state, &caller, &granted, vec![format!("Patient/{id}")]).await?;
        return Err(WebError::BadRequest(format!(
            "A note must have 1 to {MAX_NOTE_CHARS} characters."
        )));
    }
    let now = state.clock.now_ms();
    let when = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    use base64::Engine;
    let doc = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "34109-9", "display": "Note"}], "text": "Note"},
        "subject": {"reference": format!("Patient/{id}")},
        "date": when,
        "author": [{"display": caller.principal.name}],
        "description": "Note added in the console",
        "content": [{"attachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64::engine::general_purpose::STANDARD.encode(note.as_bytes()),
            "creation": when,
        }}],
    });
    write_resource(
        &state,
        &caller,
        &granted,
        doc,
        format!("console note by {}", caller.principal.email),
        "a note belongs to the patient it was written for",
    )
    .await?;
    Ok(Redirect::to(&format!("/patients/{id}#timeline")))
}

/// Write one resource of the patient `granted` is for (new, or a new version when it has an
/// id), through the importer (versioned, with provenance "console"), audited as a write in the
/// same transaction; a new one's id is chosen here so that the audit record names it. Anything else the write would change is refused with
/// `foreign`. Returns the new id.
pub(crate) async fn write_resource(
    state: &AppState,
    caller: &Caller,
    granted: &access::Granted,
    resource: Value,
    unit_name: String,
    foreign: &'static str,
) -> Result<String, WebError> {
    let ids = write_resources(state, caller, granted, vec![resource], unit_name, foreign).await?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

/// [`write_resource`] for several resources of the patient, in one transaction (all or
/// nothing); their ids, in order. A resource may refer to another by the id it was given.
pub(crate) async fn write_resources(
    state: &AppState,
    caller: &Caller,
    granted: &access::Granted,
    resources: Vec<Value>,
    unit_name: String,
    foreign: &'static str,
) -> Result<Vec<String>, WebError> {
    let now = state.clock.now_ms();
    let mut ids = Vec::new();
    let mut entities = vec![format!("Patient/{}", granted.patient)];
    let mut entries = Vec::new();
    let mut types = Vec::new();
    for resource in resources {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // An update names the resource it changes; a new resource gets its id here.
        let new_id = resource
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        entities.push(format!("{resource_type}/{new_id}"));
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{new_id}"),
            "resource": resource,
            "request": {"method": "PUT", "url": format!("{resource_type}/{new_id}")},
        }));
        ids.push(new_id);
        types.push(resource_type);
    }
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let record = granted.record(caller, entities, now);
    let unit = rapport_ingest::Unit {
        name: unit_name,
        kind: "console",
        payload: rapport_ingest::Payload::Value(bundle),
    };
    let report = state
        .with_store(move |s| {
            let patient = record.patient_id.clone();
            let guard = |changes: &[rapport_ingest::Change<'_>]| -> Vec<Option<String>> {
                changes
                    .iter()
                    .map(|c| {
                        (c.new_patient.map(str::to_owned) != patient
                            || c.old_patient.is_some_and(|o| Some(o) != patient.as_deref()))
                        .then(|| foreign.to_owned())
                    })
                    .collect()
            };
            let on_behalf = rapport_ingest::OnBehalf {
                guard: &guard,
                audit: &record,
            };
            Ok(rapport_ingest::apply_unit_audited(
                s, &unit, now, &on_behalf,
            ))
        })
        .await?;
    if !report.errors.is_empty() {
        return Err(WebError::Internal(format!(
            "the {} could not be stored",
            types.join(" and ")
        )));
    }
    Ok(ids)
}

#[derive(Deserialize)]
pub(crate) struct BreakGlassForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Record a break-the-glass request that granted nothing new (already allowed, refused, or
/// incomplete): every such request leaves one audit record.
async fn record_break_glass_request(
    state: &AppState,
    caller: &Caller,
    decision: Decision,
    id: &str,
    detail: &str,
    now: i64,
) -> Result<(), WebError> {
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        decision,
        Action::Read,
        Some(id),
        vec![format!("Patient/{id}")],
        now,
    );
    record.action = rapport_access::audit::AuditAction::BreakGlass;
    record.detail = detail.to_owned();
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await
}

/// Break the glass (hard case B43): care staff not on the patient's care team state a reason and
/// get time-limited access to this one patient, recorded and flagged for review.
async fn break_glass(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<BreakGlassForm>,
) -> Result<impl IntoResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    if !rapport_fhir::id::is_valid_id(&id) {
        return Err(WebError::NotFound);
    }
    let now = state.clock.now_ms();
    let (principal, pid) = (caller.principal.clone(), id.clone());
    let decision = state
        .with_auth(move |s| rapport_auth::authorize(s, &principal, &pid, Action::Read, now))
        .await?;
    let to = Redirect::to(&format!("/patients/{id}"));
    match decision {
        // Already allowed: nothing to break; the request is still recorded.
        Decision::Allow(_) => {
            record_break_glass_request(
                &state,
                &caller,
                decision,
                &id,
                "not needed: access already allowed",
                now,
            )
            .await?;
            Ok(to)
        }
        Decision::Deny(denial) if !caller.principal.may_break_glass() => {
            record_break_glass_request(&state, &caller, decision, &id, "", now).await?;
            Err(WebError::Forbidden {
                message: denial.message().to_owned(),
                break_glass_for: None,
            })
        }
        Decision::Deny(_) => {
            let exists = {
                let pid = id.clone();
                state
                    .with_store(move |s| s.read(&ResourceKey::new("Patient", pid)))
                    .await?
                    .is_some_and(|r| !r.deleted)
            };
            if !exists {
                record_break_glass_request(
                    &state,
                    &caller,
                    decision,
                    &id,
                    "refused: no such patient",
                    now,
                )
                .await?;
                return Err(WebError::NotFound);
            }
            if form.reason.trim().chars().count() < 5 {
                record_break_glass_request(
                    &state,
                    &caller,
                    decision,
                    &id,
                    "refused: reason missing or too short",
                    now,
                )
                .await?;
                return Err(WebError::BadRequest("Breaking the glass needs a reason: say in a few words why you need this record now.".into()));
            }
            let (principal, source, reason, duration) = (
                caller.principal.clone(),
                caller.source.clone(),
                form.reason.clone(),
                state.settings.session.break_glass_ms,
            );
            state
                .with_auth(move |s| {
                    rapport_auth::break_glass(s, &principal, &source, &id, &reason, duration, now)
                })
                .await?;
            Ok(to)
        }
    }
}

/// Parse the record's resources, on two threads when it is large (a 360 page can show
/// hundreds of resources, and parsing them is most of the page's time).
fn parse_items(record: Vec<StoredResource>) -> Vec<Item> {
    fn parse(record: Vec<StoredResource>) -> Vec<Item> {
        record
            .into_iter()
            .filter_map(|stored| {
                let resource = serde_json::from_str(&stored.content).ok()?;
                Some(Item { resource, stored })
            })
            .collect()
    }
    if record.len() < 64 {
        return parse(record);
    }
    let mut first = record;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(move || parse(second));
        let mut items = parse(first);
        items.extend(other.join().expect("parsing does not panic"));
        items
    })
}

fn collect_provider_refs(v: &Value, out: &mut Vec<ResourceKey>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("reference").and_then(Value::as_str) {
                if let Some((t, id)) = r.split_once('/') {
                    if matches!(
                        t,
                        "Practitioner" | "Organization" | "PractitionerRole" | "Location"
                    ) && !id.contains('/')
                    {
                        out.push(ResourceKey::new(t, id));
                    }
                }
            }
            for child in o.values() {
                collect_provider_refs(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_provider_refs(c, out)),
        _ => {}
    }
}

fn of_type<'a>(items: &'a [Item], ty: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
    items
        .iter()
        .filter(move |i| i.stored.key.resource_type == ty)
}

fn code_is(v: Option<&Value>, codes: &[&str]) -> bool {
    let Some(v) = v else { return false };
    v.get("coding").and_then(Value::as_array).is_some_and(|c| {
        c.iter()
            .any(|c| str_at(c, "code").is_some_and(|x| codes.contains(&x)))
    })
}

fn has_category(r: &Value, code: &str) -> bool {
    r.get("category")
        .and_then(Value::as_array)
        .is_some_and(|cats| cats.iter().any(|c| code_is(Some(c), &[code])))
}

/// "from file.json (entry 12), 3 Dec 2026 19:40 UTC"
fn source_line(item: &Item) -> Markup {
    html! {
        @if let Some(s) = &item.stored.source {
            span.source title={ (s.kind) " " (s.name) } {
                "from " (short_name(&s.name))
                @if let Some(e) = s.entry { " #" (e) }
                ", " (view::format_ms(s.received_at_ms))
            }
        }
    }
}

fn short_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn ref_name<'a>(names: &'a HashMap<String, String>, r: Option<&'a Value>) -> Option<&'a str> {
    let r = r?;
    str_at(r, "reference")
        .and_then(|k| names.get(k).map(String::as_str))
        .or_else(|| str_at(r, "display"))
}

fn render_360(patient: &Item, items: &[Item], names: &HashMap<String, String>) -> Markup {
    let p = &patient.resource;
    let problems: Vec<&Item> = of_type(items, "Condition")
        .filter(|c| {
            !code_is(
                c.resource.get("clinicalStatus"),
                &["resolved", "inactive", "remission"],
            )
        })
        .collect();
    let mut meds: Vec<&Item> = of_type(items, "MedicationRequest")
        .chain(of_type(items, "MedicationStatement"))
        .filter(|m| {
            matches!(
                str_at(&m.resource, "status"),
                Some("active") | Some("on-hold") | None
            )
        })
        .collect();
    meds.sort_by_key(|m| std::cmp::Reverse(view::sort_ms(&m.resource)));
    let allergies: Vec<&Item> = of_type(items, "AllergyIntolerance").collect();
    let mut immunizations: Vec<&Item> = of_type(items, "Immunization").collect();
    immunizations.sort_by_key(|i| std::cmp::Reverse(view::sort_ms(&i.resource)));
    let latest = |category: &str| -> Vec<&Item> {
        let mut by_code: HashMap<String, &Item> = HashMap::new();
        for o in of_type(items, "Observation").filter(|o| has_category(&o.resource, category)) {
            let code = o.resource.get("code").map(concept).unwrap_or_default();
            let entry = by_code.entry(code).or_insert(o);
            if view::sort_ms(&o.resource) > view::sort_ms(&entry.resource) {
                *entry = o;
            }
        }
        let mut v: Vec<&Item> = by_code.into_values().collect();
        v.sort_by_key(|o| o.resource.get("code").map(concept).unwrap_or_default());
        v
    };
    let vitals = latest("vital-signs");
    let labs = latest("laboratory");
    let mut timeline: Vec<&Item> = items
        .iter()
        .filter(|i| {
            matches!(
                i.stored.key.resource_type.as_str(),
                "Encounter"
                    | "Procedure"
                    | "Observation"
                    | "DiagnosticReport"
                    | "DocumentReference"
                    | "Immunization"
                    | "Condition"
                    | "MedicationRequest"
                    | "Appointment"
                    | "AllergyIntolerance"
            )
        })
        .collect();
    timeline.sort_by_key(|i| std::cmp::Reverse(view::sort_ms(&i.resource)));
    // Family and contacts: RelatedPerson resources (HL7 NK1, FHIR) and the Patient's own
    // contacts, each with its relationship (patient.html#contact, relatedperson.html).
    let relation = |v: &Value| -> String {
        v.get("relationship")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .map(concept)
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let phone = |v: &Value| -> Option<String> {
        v.get("telecom")
            .and_then(Value::as_array)
            .and_then(|t| t.iter().find_map(|t| str_at(t, "value")))
            .map(str::to_owned)
    };
    let mut contacts: Vec<(String, String, Option<String>, Option<&Item>)> =
        of_type(items, "RelatedPerson")
            .filter(|r| r.resource.get("active") != Some(&Value::Bool(false)))
            .map(|r| {
                (
                    view::person_name(&r.resource),
                    relation(&r.resource),
                    phone(&r.resource),
                    Some(r),
                )
            })
            .collect();
    for c in p
        .get("contact")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = c
            .get("name")
            .map(|n| view::person_name(&serde_json::json!({ "name": [n] })))
            .unwrap_or_else(|| "(contact)".into());
        if !contacts.iter().any(|(n, ..)| *n == name) {
            contacts.push((name, relation(c), phone(c), None));
        }
    }
    // The care team: participants of the patient's current CareTeams, by name and role.
    let mut team: Vec<(String, String, &Item)> = Vec::new();
    for t in of_type(items, "CareTeam").filter(|t| {
        !matches!(
            str_at(&t.resource, "status"),
            Some("inactive" | "entered-in-error")
        )
    }) {
        for part in t
            .resource
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = ref_name(names, part.get("member"))
                .map(str::to_owned)
                .or_else(|| {
                    part.pointer("/member/display")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "(member)".into());
            let role = part
                .get("role")
                .and_then(Value::as_array)
                .map(|rs| {
                    rs.iter()
                        .map(concept)
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            if !team.iter().any(|(n, r, _)| *n == name && *r == role) {
                team.push((name, role, t));
            }
        }
    }
    let deceased = str_at(p, "deceasedDateTime");
    html! {
        h1 { (view::person_name(p)) }
        section.card aria-labelledby="demographics" {
            h2 #demographics { "Demographics" }
            p {
                (str_at(p, "gender").unwrap_or("gender unknown"))
                @if let Some(b) = str_at(p, "birthDate") { " · born " (format_date(b)) }
                @if let Some(d) = deceased { " · " span.badge { "deceased " (format_date(d)) } }
                @if let Some(gp) = p.get("generalPractitioner").and_then(Value::as_array).and_then(|g| g.first()) {
                    @if let Some(n) = ref_name(names, Some(gp)) { " · GP: " (n) }
                }
            }
            @if let Some(addr) = p.get("address").and_then(Value::as_array).and_then(|a| a.first()) {
                p { (address(addr)) }
            }
            @if let Some(telecoms) = p.get("telecom").and_then(Value::as_array) {
                p { @for t in telecoms { span { (str_at(t, "system").unwrap_or("")) ": " (str_at(t, "value").unwrap_or("")) } " " } }
            }
            table aria-label="Identifiers" {
                thead { tr { th { "Identifier" } th { "System" } } }
                tbody {
                    @for i in p.get("identifier").and_then(Value::as_array).into_iter().flatten() {
                        tr {
                            td { (str_at(i, "value").unwrap_or("")) }
                            td.muted {
                                @if let Some(t) = i.get("type") { (concept(t)) " · " }
                                (view::system_name(str_at(i, "system").unwrap_or("")))
                            }
                        }
                    }
                }
            }
            p { (source_line(patient)) }
        }
        div.grid {
            section.card aria-labelledby="problems" {
                h2 #problems { "Active problems (" (problems.len()) ")" }
                @if problems.is_empty() { p.muted { "None recorded." } }
                ul { @for c in &problems {
                    li {
                        span title=[c.resource.get("code").and_then(view::code_of)] { (c.resource.get("code").map(concept).unwrap_or_default()) }
                        @if let Some(d) = str_at(&c.resource, "onsetDateTime") { span.muted { " since " (format_date(d)) } }
                        br; (source_line(c))
                    }
                } }
            }
            section.card aria-labelledby="medications" {
                h2 #medications { "Current medications (" (meds.len()) ")" }
                @if meds.is_empty() { p.muted { "None recorded." } }
                ul { @for m in &meds {
                    li {
                        (m.resource.get("medicationCodeableConcept").map(concept).or_else(|| ref_name(names, m.resource.get("medicationReference")).map(str::to_owned)).unwrap_or_else(|| "(medication)".into()))
                        @if let Some(d) = str_at(&m.resource, "authoredOn") { span.muted { " · prescribed " (format_date(d)) } }
                        @if let Some(dose) = m.resource.get("dosageInstruction").and_then(Value::as_array).and_then(|d| d.first()).and_then(|d| str_at(d, "text")) { br; span.muted { (dose) } }
                        br; (source_line(m))
                    }
                } }
            }
            section.card aria-labelledby="allergies" {
                h2 #allergies { "Allergies (" (allergies.len()) ")" }
                @if allergies.is_empty() { p.muted { "None recorded." } }
                ul { @for a in &allergies {
                    li { (a.resource.get("code").map(concept).unwrap_or_default())
                        @if let Some(c) = a.resource.get("criticality").and_then(Value::as_str) { " " span.badge { (c) } }
                        br; (source_line(a)) }
                } }
            }
            section.card aria-labelledby="immunizations" {
                h2 #immunizations { "Immunizations (" (immunizations.len()) ")" }
                @if immunizations.is_empty() { p.muted { "None recorded." } }
                ul { @for i in &immunizations {
                    li { (i.resource.get("vaccineCode").map(concept).unwrap_or_default())
                        @if let Some(d) = str_at(&i.resource, "occurrenceDateTime") { span.muted { " · " (format_date(d)) } }
                        br; (source_line(i)) }
                } }
            }
        }
        div.grid {
            section.card aria-labelledby="contacts" {
                h2 #contacts { "Family and contacts (" (contacts.len()) ")" }
                @if contacts.is_empty() { p.muted { "None recorded." } }
                ul { @for (name, relation, phone, item) in &contacts {
                    li {
                        (name)
                        @if !relation.is_empty() { span.muted { " · " (relation) } }
                        @if let Some(t) = phone { span.muted { " · " (t) } }
                        @if let Some(i) = item { br; (source_line(i)) }
                    }
                } }
            }
            section.card aria-labelledby="careteam" {
                h2 #careteam { "Care team (" (team.len()) ")" }
                @if team.is_empty() { p.muted { "None recorded." } }
                ul { @for (name, role, item) in &team {
                    li {
                        (name)
                        @if !role.is_empty() { span.muted { " · " (role) } }
                        br; (source_line(item))
                    }
                } }
            }
        }
        (observation_table("vitals", "Latest vital signs", &vitals))
        (observation_table("labs", "Latest laboratory results", &labs))
        section.card aria-labelledby="timeline" {
            h2 #timeline { "Timeline (" (timeline.len()) ")" }
            table {
                thead { tr { th { "When" } th { "What" } th { "Details" } th { "Source" } } }
                tbody {
                    @for (i, item) in timeline.iter().enumerate() {
                        @let when = view::clinical_date(&item.resource).unwrap_or("");
                        @let year = when.get(..4).unwrap_or("undated");
                        @let previous = i.checked_sub(1).map(|p| view::clinical_date(&timeline[p].resource).unwrap_or("").get(..4).unwrap_or("undated"));
                        @if previous != Some(year) {
                            tr.year { td colspan="4" { (year) } }
                        }
                        tr {
                            td { (format_date(when)) }
                            td { (kind_label(&item.resource)) }
                            td { (timeline_details(&item.resource, names)) }
                            td { (source_line(item)) }
                        }
                    }
                }
            }
        }
    }
}

fn observation_table(id: &str, title: &str, rows: &[&Item]) -> Markup {
    html! {
        section.card aria-labelledby=(id) {
            h2 id=(id) { (title) " (" (rows.len()) ")" }
            @if rows.is_empty() { p.muted { "None recorded." } } @else {
                table {
                    thead { tr { th { "Test" } th { "Value" } th { "When" } th { "Source" } } }
                    tbody { @for o in rows {
                        tr {
                            td title=[o.resource.get("code").and_then(view::code_of)] { (o.resource.get("code").map(concept).unwrap_or_default()) }
                            td {
                                (view::observation_value(&o.resource))
                                @if let Some(i) = o.resource.get("interpretation").and_then(Value::as_array).and_then(|i| i.first()) {
                                    @if !code_is(Some(i), &["N"]) { " " span.badge.warn { (concept(i)) } }
                                }
                            }
                            td { (view::clinical_date(&o.resource).map(format_date).unwrap_or_default()) }
                            td { (source_line(o)) }
                        }
                    } }
                }
            }
        }
    }
}

fn kind_label(r: &Value) -> &'static str {
    match str_at(r, "resourceType").unwrap_or_default() {
        "Encounter" => "Encounter",
        "Procedure" => "Procedure",
        "Observation" => "Observation",
        "DiagnosticReport" => "Report",
        "DocumentReference" => "Document",
        "Immunization" => "Immunization",
        "Condition" => "Diagnosis",
        "MedicationRequest" => "Prescription",
        "Appointment" => "Appointment",
        "AllergyIntolerance" => "Allergy",
        _ => "Other",
    }
}

fn timeline_details(r: &Value, names: &HashMap<String, String>) -> Markup {
    let ty = str_at(r, "resourceType").unwrap_or_default();
    html! {
        @match ty {
            "Encounter" => {
                (r.get("type").and_then(Value::as_array).and_then(|t| t.first()).map(concept)
                    .or_else(|| r.get("class").map(concept)).unwrap_or_else(|| "Encounter".into()))
                @if let Some(n) = r.get("participant").and_then(Value::as_array).and_then(|p| p.first()).and_then(|p| ref_name(names, p.get("individual"))) {
                    span.muted { " · " (n) }
                }
                @if let Some(n) = ref_name(names, r.get("serviceProvider")) { span.muted { " · " (n) } }
            }
            "Observation" => {
                (r.get("code").map(concept).unwrap_or_default()) ": " strong { (view::observation_value(r)) }
            }
            "DocumentReference" => {
                (r.get("type").map(concept).unwrap_or_else(|| "Document".into()))
                @if let Some(t) = view::document_text(r) {
                    br;
                    // Notes keep their line breaks; bidi controls in them cannot reorder the page
                    // (<bdi>, HTML §4.5.24); long ones open on demand.
                    @if t.chars().count() > 300 {
                        details.note { summary { bdi { (t.chars().take(300).collect::<String>()) "…" } } bdi.note-text { (t) } }
                    } @else {
                        bdi.note-text.muted { (t) }
                    }
                }
            }
            "Immunization" => { (r.get("vaccineCode").map(concept).unwrap_or_default()) }
            "MedicationRequest" => {
                (r.get("medicationCodeableConcept").map(concept).unwrap_or_else(|| "Medication".into()))
                span.muted { " · " (str_at(r, "status").unwrap_or("")) }
            }
            "Appointment" => {
                (r.get("serviceType").and_then(Value::as_array).and_then(|t| t.first()).map(concept).or_else(|| str_at(r, "description").map(str::to_owned)).unwrap_or_else(|| "Appointment".into()))
                " " span.badge { (str_at(r, "status").unwrap_or("")) }
            }
            _ => { (r.get("code").map(concept).unwrap_or_default()) }
        }
    }
}

fn address(a: &Value) -> String {
    let mut parts: Vec<&str> = a
        .get("line")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for key in ["city", "state", "postalCode", "country"] {
        if let Some(s) = str_at(a, key) {
            parts.push(s);
        }
    }
    parts.join(", ")
}
