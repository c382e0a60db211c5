//! Admin pages: accounts (create, disable, assign to panels), the audit trail (filter, export as
//! FHIR AuditEvent NDJSON) and the review of break-the-glass accesses. Admins manage access;
//! these pages show no clinical data.

use crate::form::Form;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use rapport_access::audit::to_audit_event;
use rapport_store::AuditFilter;
use serde::Deserialize;

use crate::page::layout;
use crate::view::format_ms;
use crate::{AppState, Caller, RouteAccess, RouteBook, WebError};

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add("GET", "/admin/users", RouteAccess::Admin, get(users))
        .add(
            "POST",
            "/admin/users",
            RouteAccess::Admin,
            post(create_user),
        )
        .add(
            "POST",
            "/admin/users/{id}/disabled",
            RouteAccess::Admin,
            post(set_disabled),
        )
        .add(
            "POST",
            "/admin/users/{id}/assignments",
            RouteAccess::Admin,
            post(assign),
        )
        .add(
            "POST",
            "/admin/users/{id}/unlock",
            RouteAccess::Admin,
            post(unlock),
        )
        .add("GET", "/admin/audit", RouteAccess::Admin, get(audit))
        .add(
            "GET",
            "/admin/audit/export",
            RouteAccess::Admin,
            get(export),
        )
        .add(
            "GET",
            "/admin/break-glass",
            RouteAccess::Admin,
            get(break_glass_list),
        )
        .add(
            "POST",
            "/admin/break-glass/{id}/review",
            RouteAccess::Admin,
            post(review),
        )
}

/// Admin pages are for people at a browser: an API token, whatever its scopes, cannot manage
/// accounts or read the audit trail here.
pub(crate) fn require_admin(caller: &Caller) -> Result<(), WebError> {
    if caller.principal.is_admin() && caller.session.is_some() {
        Ok(())
    } else {
        Err(WebError::Forbidden {
            message: "This page is for administrators.".into(),
            break_glass_for: None,
        })
    }
}

async fn users(State(state): State<AppState>, caller: Caller) -> Result<Html<String>, WebError> {
    require_admin(&caller)?;
    let users = state.with_store(|s| s.users()).await?;
    let csrf = caller.csrf().unwrap_or_default().to_owned();
    let body = html! {
        h1 { "Users" }
        table {
            thead { tr { th { "E-mail" } th { "Name" } th { "Roles" } th { "Linked record" } th { "State" } th { "Panel" } } }
            tbody {
                @for u in &users {
                    tr {
                        td { (u.email) }
                        td { (u.name) }
                        td { (u.roles) }
                        td.muted {
                            @if let Some(p) = &u.patient_id { "Patient/" (p) }
                            @if let Some(p) = &u.practitioner_id { "Practitioner/" (p) }
                        }
                        td {
                            @if u.disabled { span.badge.warn { "disabled" } } @else { "active" }
                            @if u.locked_until_ms.is_some_and(|t| t > state.clock.now_ms()) {
                                " " span.badge.warn { "locked" }
                                form.inline method="post" action={ "/admin/users/" (u.user_id) "/unlock" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    " " button type="submit" { "Unlock" }
                                }
                            }
                            form.inline method="post" action={ "/admin/users/" (u.user_id) "/disabled" } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="disabled" value=(if u.disabled { "false" } else { "true" });
                                " " button type="submit" { (if u.disabled { "Enable" } else { "Disable" }) }
                            }
                        }
                        td {
                            @if u.roles.contains("clinician") || u.roles.contains("coordinator") {
                                form.inline method="post" action={ "/admin/users/" (u.user_id) "/assignments" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    label { "Patient id or system|value " input type="text" name="patient" size="18" required; }
                                    " " button type="submit" name="assigned" value="true" { "Assign" }
                                    " " button type="submit" name="assigned" value="false" { "Unassign" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="security-settings" {
            h2 #security-settings { "Security settings" }
            @let st = &state.settings;
            table {
                tbody {
                    tr { th { "Session ends after idle" } td { (st.session.idle_ms / 60_000) " minutes" } }
                    tr { th { "Session ends after sign-in, however active" } td { (st.session.absolute_ms / 3_600_000) " hours" } }
                    tr { th { "Break-the-glass access lasts" } td { (st.session.break_glass_ms / 60_000) " minutes" } }
                    tr { th { "Account locked after failed sign-ins in a row" } td { (st.lockout.max_failures) ", for " (st.lockout.lock_ms / 60_000) " minutes" } }
                    tr { th { "Sign-in attempts per address" } td { (st.sign_in_attempts_per_address) " per 5 minutes" } }
                    tr { th { "Secure cookies (HTTPS)" } td { (if st.secure_cookies { "on" } else { "off: start with --secure-cookies behind HTTPS" }) } }
                    tr { th { "Password policy" } td { "at least 12 characters; common passwords and the account's own name refused" } }
                }
            }
        }
        section.card aria-labelledby="new-user" {
            h2 #new-user { "Add a user" }
            form.stack method="post" action="/admin/users" {
                input type="hidden" name="csrf" value=(csrf);
                label { "E-mail " input type="email" name="email" required; } " "
                label { "Name " input type="text" name="name" required; } " "
                label { "Role "
                    select name="role" {
                        option value="clinician" { "clinician" }
                        option value="coordinator" { "coordinator" }
                        option value="patient" { "patient" }
                        option value="caregiver" { "caregiver" }
                        option value="admin" { "admin" }
                    }
                } " "
                label { "Patient (patient accounts) " input type="text" name="patient" size="18"; } " "
                label { "Practitioner id (staff) " input type="text" name="practitioner" size="18"; } " "
                label { "Initial password (12+ characters) " input type="password" name="password" autocomplete="new-password" required minlength="12"; } " "
                button type="submit" { "Add user" }
            }
        }
    };
    Ok(Html(layout("Users", Some(&caller), body).into_string()))
}

#[derive(Deserialize)]
pub(crate) struct NewUserForm {
    #[serde(default)]
    csrf: String,
    email: String,
    name: String,
    role: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    practitioner: String,
    password: String,
}

fn nonempty(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Form(f): Form<NewUserForm>,
) -> Result<Response, WebError> {
    require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    let account = rapport_auth::NewAccount {
        email: f.email,
        name: f.name,
        roles: f.role,
        patient: nonempty(&f.patient),
        practitioner: nonempty(&f.practitioner),
        password: f.password,
    };
    let (actor, source, now) = (
        rapport_auth::actor_of(&caller.principal),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    // Refusals (a weak password, an existing e-mail…) become 400 pages in WebError.
    state
        .with_auth(move |s| rapport_auth::create_user(s, &actor, &source, &account, now))
        .await?;
    Ok(Redirect::to("/admin/users").into_response())
}

#[derive(Deserialize)]
pub(crate) struct DisabledForm {
    #[serde(default)]
    csrf: String,
    disabled: bool,
}

async fn set_disabled(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<DisabledForm>,
) -> Result<Redirect, WebError> {
    require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    if id == caller.principal.user_id && f.disabled {
        return Err(WebError::BadRequest(
            "You cannot disable your own account.".into(),
        ));
    }
    let (actor, source, now) = (
        rapport_auth::actor_of(&caller.principal),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    state
        .with_auth(move |s| rapport_auth::set_disabled(s, &actor, &source, id, f.disabled, now))
        .await?;
    Ok(Redirect::to("/admin/users"))
}

async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<crate::login::CsrfForm>,
) -> Result<Redirect, WebError> {
    require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    let (actor, source, now) = (
        rapport_auth::actor_of(&caller.principal),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    state
        .with_auth(move |s| rapport_auth::unlock(s, &actor, &source, id, now))
        .await?;
    Ok(Redirect::to("/admin/users"))
}

#[derive(Deserialize)]
pub(crate) struct AssignForm {
    #[serde(default)]
    csrf: String,
    patient: String,
    assigned: bool,
}

async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<AssignForm>,
) -> Result<Response, WebError> {
    require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    let (actor, source, now) = (
        rapport_auth::actor_of(&caller.principal),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    let result = state
        .with_auth(move |s| {
            let user = s
                .user_by_id(id)?
                .ok_or_else(|| rapport_auth::AuthError::UnknownUser(format!("#{id}")))?;
            rapport_auth::assign(s, &actor, &source, &user.email, &f.patient, f.assigned, now)
        })
        .await;
    result?;
    Ok(Redirect::to("/admin/users").into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    flagged: Option<String>,
    #[serde(default)]
    before: Option<i64>,
}

impl AuditQuery {
    fn filter(&self, limit: u64) -> AuditFilter {
        AuditFilter {
            actor: nonempty(&self.actor).map(|a| a.to_lowercase()),
            patient_id: nonempty(&self.patient),
            action: nonempty(&self.action),
            outcome: nonempty(&self.outcome),
            flagged_only: self.flagged.is_some(),
            before_seq: self.before,
            limit,
            ..AuditFilter::default()
        }
    }
}

async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, WebError> {
    require_admin(&caller)?;
    const PAGE: u64 = 100;
    let filter = q.filter(PAGE);
    let (records, verified) = state
        .with_auth(move |s| Ok((s.audit_page(&filter)?, rapport_auth::verify_audit(s)?)))
        .await?;
    let body = html! {
        h1 { "Audit trail" }
        @match &verified {
            Ok(n) => p.muted { "Chain intact: " (n) " records verified." },
            Err(b) => p.badge.warn role="alert" { "Tampering detected: " (b.to_string()) },
        }
        form.search method="get" action="/admin/audit" {
            label { "User e-mail " input type="search" name="actor" value=(q.actor); }
            label { "Patient id " input type="search" name="patient" value=(q.patient); }
            label { "Action "
                select name="action" {
                    option value="" { "any" }
                    @for a in rapport_access::audit::AuditAction::ALL {
                        option value=(a.as_str()) selected[q.action == a.as_str()] { (a.as_str()) }
                    }
                }
            }
            label { "Outcome "
                select name="outcome" {
                    option value="" { "any" }
                    @for o in ["success", "denied", "failed"] { option value=(o) selected[q.outcome == o] { (o) } }
                }
            }
            label { input type="checkbox" name="flagged" value="1" checked[q.flagged.is_some()]; " flagged for review only" }
            button type="submit" { "Filter" }
        }
        p { a href="/admin/audit/export" { "Export the whole trail as FHIR AuditEvent (NDJSON)" } }
        div.scroll { table {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Role" } th { "Action" } th { "Outcome" } th { "Patient" } th { "What" } th { "From" } th { "Basis / reason" } } }
            tbody {
                @for r in &records {
                    @let rec = &r.record;
                    tr {
                        td { (r.seq) }
                        td { (format_ms(rec.recorded_ms)) }
                        td { (rec.actor.label) }
                        td { (rec.actor.role) }
                        td { (rec.action.as_str()) @if rec.flagged { " " span.flag { "review" } } }
                        td { (rec.outcome.as_str()) }
                        td { (rec.patient_id.as_deref().unwrap_or("")) }
                        td.muted { (rec.entities.iter().take(3).cloned().collect::<Vec<_>>().join(", ")) @if rec.entities.len() > 3 { " +" (rec.entities.len() - 3) } " " (rec.detail) }
                        td.muted { (rec.source) }
                        td { (rec.basis) @if let Some(p) = &rec.purpose { ": " em { (p) } } }
                    }
                }
            }
        } }
        @if let Some(last) = records.last().filter(|_| records.len() as u64 == PAGE) {
            p { a href={ "/admin/audit?actor=" (crate::urlencode(&q.actor)) "&patient=" (crate::urlencode(&q.patient)) "&action=" (q.action) "&outcome=" (q.outcome) (if q.flagged.is_some() { "&flagged=1" } else { "" }) "&before=" (last.seq) } { "Older →" } }
        }
    };
    Ok(Html(
        layout("Audit trail", Some(&caller), body).into_string(),
    ))
}

/// The whole trail as FHIR R4 AuditEvent resources, one per line (FHIR Bulk Data NDJSON).
async fn export(State(state): State<AppState>, caller: Caller) -> Result<Response, WebError> {
    require_admin(&caller)?;
    let (actor, source, now) = (
        rapport_auth::actor_of(&caller.principal),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    let body = state
        .with_auth(move |s| {
            let mut out = String::new();
            let mut n = 0u64;
            rapport_auth::walk_audit(s, &mut |batch| {
                for r in batch {
                    out.push_str(&to_audit_event(r).to_string());
                    out.push('\n');
                    n += 1;
                }
            })?;
            rapport_auth::record_export(s, &actor, &source, n, now)?;
            Ok(out)
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"rapport-audit.ndjson\"",
            ),
        ],
        body,
    )
        .into_response())
}

async fn break_glass_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Html<String>, WebError> {
    require_admin(&caller)?;
    let list = state.with_store(|s| s.break_glass_list(false, 200)).await?;
    let csrf = caller.csrf().unwrap_or_default().to_owned();
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Break-the-glass reviews" }
        p.muted { "Every emergency access outside a care team, newest first. Review each: was it justified?" }
        @if list.is_empty() { p { "No break-the-glass access so far." } }
        table {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Patient" } th { "Reason" } th { "Until" } th { "Review" } } }
            tbody {
                @for b in &list {
                    tr {
                        td { (b.id) }
                        td { (format_ms(b.started_ms)) }
                        td { (b.user_email) }
                        td { (b.patient_id) }
                        td { em { (b.reason) } }
                        td { (format_ms(b.expires_ms)) @if b.expires_ms > now { " " span.badge.warn { "active" } } }
                        td {
                            @if let Some(at) = b.reviewed_ms {
                                "reviewed " (format_ms(at)) @if let Some(n) = &b.review_note { ": " (n) }
                            } @else {
                                form.inline method="post" action={ "/admin/break-glass/" (b.id) "/review" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    label { "Note " input type="text" name="note" size="24"; }
                                    " " button type="submit" { "Mark reviewed" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout("Break-the-glass reviews", Some(&caller), body).into_string(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ReviewForm>,
) -> Result<Redirect, WebError> {
    require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    let (principal, source, now) = (
        caller.principal.clone(),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    let done = state
        .with_auth(move |s| {
            rapport_auth::review_break_glass(s, &principal, &source, id, &f.note, now)
        })
        .await?;
    if !done {
        return Err(WebError::BadRequest("Not reviewed: that access does not exist, is already reviewed, or is your own (someone else must review it).".into()));
    }
    Ok(Redirect::to("/admin/break-glass"))
}
