//! The Interfaces page (`/admin/interfaces`): HL7 v2 messages received per feed and status, the
//! ones not applied with their reasons, and a re-process action once a mapping is fixed. It shows
//! what identifies a message (feed, type, control id, outcome), never its content: the raw
//! message is patient data, which admins do not read. The raw messages themselves, beside what
//! each became, are on the patient's own page `/patients/{id}/messages`, for those who may read
//! that patient's record (authorised and audited like the 360 page).

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use crate::form::Form;
use crate::page::layout;
use crate::view::format_ms;
use crate::{AppState, Caller, RouteAccess, RouteBook, WebError};

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add(
        "GET",
        "/admin/interfaces",
        RouteAccess::Admin,
        get(interfaces),
    )
    .add(
        "POST",
        "/admin/interfaces/{id}/reprocess",
        RouteAccess::Admin,
        post(reprocess),
    )
    .add(
        "GET",
        "/patients/{id}/messages",
        RouteAccess::PatientRead,
        get(patient_messages),
    )
}

/// The HL7 v2 messages about one patient: each raw message (segments on lines, as received)
/// beside the resources it wrote that are still in the version it wrote (the source of a
/// resource's current version names the message).
async fn patient_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    let granted =
        crate::access::require(&state, &caller, &id, rapport_access::policy::Action::Read).await?;
    let pid = id.clone();
    let (messages, record) = state
        .with_store(move |s| {
            Ok((
                s.hl7_messages_of_patient(&pid, 200)?,
                s.patient_record(&pid)?,
            ))
        })
        .await?;
    crate::access::record(&state, &caller, &granted, vec![format!("Patient/{id}/*")]).await?;
    let body = html! {
        h1 { "Messages from feeds" }
        p { a href={ "/patients/" (id) } { "Back to the patient" } }
        @if messages.is_empty() { p { "No HL7 v2 message about this patient." } }
        @for m in &messages {
            @let name = rapport_ingest::hl7::source_name(&m.message.feed, &m.message.message_type, &m.message.control_id, &m.message.content_sha256);
            @let became: Vec<&rapport_store::StoredResource> = record
                .iter()
                .filter(|r| r.key.resource_type != "Provenance" && r.source.as_ref().is_some_and(|s| s.kind == "hl7v2" && s.name == name))
                .collect();
            section.card {
                h2 { (m.message.message_type) " " (m.message.control_id) }
                p.muted {
                    "Received " (format_ms(m.message.received_at_ms)) " from " (m.message.feed)
                    " · " (m.message.outcome.status) " (" (m.message.outcome.ack_code) ")"
                    @if let Some(d) = &m.message.outcome.detail { " · " (d) }
                }
                div.columns {
                    div {
                        h3 { "As received" }
                        pre { (String::from_utf8_lossy(&m.message.raw).replace('\r', "\n")) }
                    }
                    div {
                        h3 { "What it became" }
                        @if became.is_empty() { p.muted { "Nothing in its version any more (later data replaced it), or nothing stored." } }
                        ul {
                            @for r in &became {
                                li { (r.key.resource_type) "/" (r.key.id) " (version " (r.version) ")" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout("Messages from feeds", Some(&caller), body).into_string(),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    before: Option<i64>,
}

const PAGE: u64 = 100;

async fn interfaces(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<Filter>,
) -> Result<Html<String>, WebError> {
    crate::admin::require_admin(&caller)?;
    let status = f
        .status
        .filter(|s| matches!(s.as_str(), "applied" | "ignored" | "error" | "rejected"));
    let (st, before) = (status.clone(), f.before);
    let (counts, messages) = state
        .with_store(move |s| {
            Ok((
                s.hl7_counts()?,
                s.hl7_messages(st.as_deref(), before, PAGE)?,
            ))
        })
        .await?;
    let csrf = caller.csrf().unwrap_or_default().to_owned();
    let body = html! {
        h1 { "Interfaces" }
        p.muted { "HL7 v2 messages received over MLLP and from files. Each was acknowledged AA only once it and what it says were stored; those not applied are kept with the reason." }
        section.card aria-labelledby="feeds" {
            h2 #feeds { "Messages per feed" }
            @if counts.is_empty() { p { "No message received yet." } }
            table {
                thead { tr { th { "Feed" } th { "Status" } th { "Messages" } } }
                tbody {
                    @for (feed, status, n) in &counts {
                        tr {
                            td { (feed) }
                            td { a href={ "/admin/interfaces?status=" (status) } { (status) } }
                            td { (n) }
                        }
                    }
                }
            }
        }
        h2 { "Messages" @if let Some(s) = &status { " (" (s) ")" } }
        p { a href="/admin/interfaces" { "All" } " · " a href="/admin/interfaces?status=error" { "Errors" } " · " a href="/admin/interfaces?status=rejected" { "Rejected" } }
        table {
            thead { tr { th { "#" } th { "Received" } th { "Feed" } th { "Type" } th { "Control id" } th { "Status" } th { "ACK" } th { "Reason" } th {} } }
            tbody {
                @for m in &messages {
                    @let o = &m.message.outcome;
                    tr {
                        td { (m.message_id) }
                        td { (format_ms(m.message.received_at_ms)) }
                        td { (m.message.feed) }
                        td { (m.message.message_type) }
                        td { (m.message.control_id) }
                        td { @if o.status == "error" || o.status == "rejected" { span.badge.warn { (o.status) } } @else { (o.status) } }
                        td { (o.ack_code) }
                        td.muted { (o.detail.as_deref().unwrap_or("")) }
                        td {
                            @if o.status == "error" || o.status == "rejected" {
                                form.inline method="post" action={ "/admin/interfaces/" (m.message_id) "/reprocess" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "Re-process" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if messages.len() as u64 == PAGE {
            @if let Some(last) = messages.last() {
                p { a href={ "/admin/interfaces?before=" (last.message_id) @if let Some(s) = &status { "&status=" (s) } } { "Older messages" } }
            }
        }
    };
    Ok(Html(
        layout("Interfaces", Some(&caller), body).into_string(),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReprocessForm {
    #[serde(default)]
    csrf: String,
}

/// Map and apply a kept message again (after its mapping was fixed), recording the new outcome.
async fn reprocess(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ReprocessForm>,
) -> Result<Redirect, WebError> {
    crate::admin::require_admin(&caller)?;
    caller.check_csrf(&f.csrf)?;
    let now = state.clock.now_ms();
    let done = state
        .with_store(move |s| {
            rapport_ingest::hl7::reprocess(s, id, now, &rapport_hl7::map::MapOptions::default())
        })
        .await?;
    let Some(outcome) = done else {
        return Err(WebError::NotFound);
    };
    // The admin's action itself is audited (the data written is audited as the feed's import).
    let record = rapport_access::audit::AuditRecord {
        recorded_ms: now,
        actor: rapport_auth::actor_of(&caller.principal),
        action: rapport_access::audit::AuditAction::Import,
        outcome: rapport_access::audit::Outcome::Success,
        patient_id: outcome.patient_key.clone(),
        entities: vec![format!("Hl7Message/{id}")],
        source: caller.source.clone(),
        basis: "admin".into(),
        purpose: None,
        flagged: false,
        detail: format!(
            "HL7 message re-processed: {} ({})",
            outcome.status, outcome.ack_code
        ),
    };
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/interfaces?status={}",
        outcome.status
    )))
}
