//! FHIR Bulk Data export (https://hl7.org/fhir/uv/bulkdata/export.html, the asynchronous request
//! pattern of FHIR R4 async.html): `GET /fhir/$export`, `/fhir/Patient/$export` and
//! `/fhir/Group/{id}/$export` with `Prefer: respond-async` answer 202 with a status URL; the job
//! writes one NDJSON file per resource type into the export directory; polling the status URL
//! answers 202 while it runs and then the manifest; the files are fetched with the same
//! credentials; `DELETE` on the status URL cancels the job and removes its files.
//!
//! What a job exports is what its owner may read, decided per resource as the job runs (the
//! patients the caller may see, the token's resource scopes), and the job leaves one audit record
//! naming every patient whose data it wrote; every file download is audited too.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_access::audit::{AuditAction, AuditRecord, Outcome as AuditOutcome};
use rapport_access::policy::{Action, Principal};
use rapport_store::{ExportJob, ResourceKey, Store, StoredResource};
use serde_json::{json, Value};

use super::{fhir_base, percent_decode, Outcome};
use crate::{AppState, Caller};

/// Which resources a job covers.
#[derive(Debug, Clone)]
pub(super) enum Level {
    /// `[base]/$export`: everything the caller may read, directory data included.
    System,
    /// `[base]/Patient/$export`: the compartments of every patient the caller may see.
    Patient,
    /// `[base]/Group/{id}/$export`: the compartments of the group's patient members.
    Group(Vec<String>),
}

/// The parameters of a kick-off request.
struct KickOff {
    types: Option<Vec<String>>,
    since: Option<i64>,
}

fn parse_kick_off(uri: &axum::http::Uri, headers: &HeaderMap) -> Result<KickOff, Outcome> {
    let prefer = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !prefer.contains("respond-async") {
        return Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "required",
            "$export runs asynchronously: send `Prefer: respond-async` (Bulk Data export)",
        )
        .at("Prefer"));
    }
    let strict = prefer.contains("handling=strict");
    let mut kick = KickOff {
        types: None,
        since: None,
    };
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "_outputFormat"
                if !matches!(
                    value.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) =>
            {
                return Err(Outcome::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("_outputFormat {value} is not supported; use application/fhir+ndjson"),
                )
                .at("_outputFormat"));
            }
            "_outputFormat" => {}
            "_type" => kick.types = Some(super::parse_types(&value)?),
            "_since" => kick.since = Some(super::parse_since(&value)?),
            other if strict => {
                return Err(Outcome::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("$export parameter '{other}' is not supported"),
                )
                .at(other.to_owned()))
            }
            _ => {}
        }
    }
    Ok(kick)
}

/// Start an export job for `caller` and answer 202 with its status URL.
pub(super) async fn kick_off(
    state: AppState,
    caller: Caller,
    level: Level,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    let kick = parse_kick_off(uri, headers)?;
    let base = fhir_base(&state, headers);
    let now = state.clock.now_ms();
    let job = ExportJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        user_id: caller.principal.user_id,
        request: format!(
            "{base}{}",
            uri.path_and_query()
                .map(|p| p.as_str().trim_start_matches("/fhir"))
                .unwrap_or("")
        ),
        status: "running".into(),
        transaction_time_ms: now,
        created_ms: now,
        finished_ms: None,
        error: None,
        outputs: None,
    };
    let j = job.clone();
    state.with_store(move |s| s.insert_export(&j)).await?;
    let dir = state.settings.export_dir.join(&job.job_id);
    let (runner, job_id) = (state.clone(), job.job_id.clone());
    tokio::spawn(async move {
        let (principal, source) = (caller.principal.clone(), caller.source.clone());
        let (id, d) = (job_id.clone(), dir.clone());
        let result = runner
            .with_auth(move |s| Ok(run_job(s, &principal, &source, &level, &kick, &id, &d, now)))
            .await;
        let finished = runner.clock.now_ms();
        let (status, outputs, error) = match result {
            Ok(Ok(outputs)) => ("done", Some(outputs), None),
            Ok(Err(e)) => ("failed", None, Some(e)),
            Err(e) => {
                tracing::error!(error = %e, "bulk export failed in the store");
                (
                    "failed",
                    None,
                    Some("the store failed; the error was logged".to_owned()),
                )
            }
        };
        let id = job_id.clone();
        let marked = runner
            .with_store(move |s| {
                s.finish_export(&id, status, outputs.as_deref(), error.as_deref(), finished)
            })
            .await;
        if !matches!(marked, Ok(true)) {
            // Cancelled meanwhile: its files go.
            let _ = std::fs::remove_dir_all(&dir);
        }
    });
    let mut r = StatusCode::ACCEPTED.into_response();
    r.headers_mut().insert(
        header::CONTENT_LOCATION,
        HeaderValue::from_str(&format!("{base}/$export-poll/{}", job.job_id))
            .expect("a valid header"),
    );
    Ok(r)
}

/// Write the job's NDJSON files; the outputs as JSON, or why it failed.
#[allow(clippy::too_many_arguments)]
fn run_job(
    store: &dyn Store,
    principal: &Principal,
    source: &str,
    level: &Level,
    kick: &KickOff,
    job_id: &str,
    dir: &PathBuf,
    now: i64,
) -> Result<String, String> {
    let store_error = |e: &dyn std::fmt::Display| format!("the store failed: {e}");
    let wanted = |ty: &str| {
        kick.types
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == ty))
    };
    let recent = |r: &StoredResource| kick.since.is_none_or(|s| r.last_updated_ms >= s);
    let visible =
        rapport_auth::visible_patients(store, principal, now).map_err(|e| store_error(&e))?;
    let patients: Vec<String> = match level {
        Level::System | Level::Patient => visible,
        Level::Group(members) => members
            .iter()
            .filter(|m| visible.contains(m))
            .cloned()
            .collect(),
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the export directory: {e}"))?;
    let mut files: BTreeMap<String, (std::io::BufWriter<std::fs::File>, u64)> = BTreeMap::new();
    let mut write = |r: &StoredResource| -> Result<(), String> {
        let ty = r.key.resource_type.clone();
        if !files.contains_key(&ty) {
            let path = dir.join(format!("{ty}.ndjson"));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(&path)
                .map_err(|e| format!("cannot write the {ty} file: {e}"))?;
            files.insert(ty.clone(), (std::io::BufWriter::new(file), 0));
        }
        let (file, count) = files.get_mut(&ty).expect("inserted above");
        // One resource per line (ndjson.org): stored content is compact JSON, checked anyway.
        let line = if r.content.contains('\n') {
            serde_json::from_str::<Value>(&r.content)
                .map(|v| v.to_string())
                .unwrap_or_default()
        } else {
            r.content.clone()
        };
        writeln!(file, "{line}").map_err(|e| format!("cannot write the {ty} file: {e}"))?;
        *count += 1;
        Ok(())
    };
    let mut exported_patients = Vec::new();
    for (i, patient) in patients.iter().enumerate() {
        if i % 50 == 0 {
            let running = store
                .export_job(job_id)
                .map_err(|e| store_error(&e))?
                .is_some_and(|j| j.status == "running");
            if !running {
                return Err("cancelled".into());
            }
        }
        let record = store.patient_record(patient).map_err(|e| store_error(&e))?;
        let record: Vec<StoredResource> = record
            .into_iter()
            .filter(|r| wanted(&r.key.resource_type) && recent(r))
            .collect();
        let readable =
            rapport_auth::readable(store, principal, record, now).map_err(|e| store_error(&e))?;
        if !readable.is_empty() {
            exported_patients.push(patient.clone());
        }
        for r in &readable {
            write(r)?;
        }
    }
    if matches!(level, Level::System) {
        // Data of no patient (practitioners, organisations, locations…), as the caller may read
        // it.
        let types = store.counts_by_type().map_err(|e| store_error(&e))?;
        for ty in types.keys().filter(|t| {
            wanted(t) && rapport_fhir::search_param::patient_compartment_params(t).is_none()
        }) {
            let ids = store
                .search_ids(
                    &rapport_fhir::query::Query {
                        resource_type: ty.clone(),
                        clauses: Vec::new(),
                    },
                    10_000_000,
                )
                .map_err(|e| store_error(&e))?;
            for chunk in ids.chunks(500) {
                let keys: Vec<ResourceKey> = chunk
                    .iter()
                    .map(|id| ResourceKey::new(ty.clone(), id.clone()))
                    .collect();
                let found: Vec<StoredResource> = store
                    .read_many(&keys)
                    .map_err(|e| store_error(&e))?
                    .into_iter()
                    .filter(|r| recent(r))
                    .collect();
                for r in rapport_auth::readable(store, principal, found, now)
                    .map_err(|e| store_error(&e))?
                {
                    write(&r)?;
                }
            }
        }
    }
    let mut outputs = Vec::new();
    let mut total = 0;
    for (ty, (mut file, count)) in files {
        file.flush()
            .and_then(|_| file.get_ref().sync_all())
            .map_err(|e| format!("cannot write the {ty} file: {e}"))?;
        total += count;
        outputs.push(json!({"type": ty, "count": count}));
    }
    // The audit record of the whole export, before its files are offered.
    let record = AuditRecord {
        recorded_ms: now,
        actor: rapport_auth::actor_of(principal),
        action: AuditAction::Read,
        outcome: AuditOutcome::Success,
        patient_id: None,
        entities: exported_patients
            .iter()
            .map(|p| format!("Patient/{p}/*"))
            .collect(),
        source: source.to_owned(),
        basis: "readable-results".into(),
        purpose: None,
        flagged: false,
        detail: format!(
            "bulk export {job_id}: {total} resources of {} patients",
            exported_patients.len()
        ),
    };
    rapport_auth::record_access(store, &record, None).map_err(|e| store_error(&e))?;
    Ok(Value::Array(outputs).to_string())
}

/// The job behind a status or file URL, if it is the caller's.
async fn own_job(state: &AppState, caller: &Caller, job_id: &str) -> Result<ExportJob, Outcome> {
    let id = job_id.to_owned();
    let job = state.with_store(move |s| s.export_job(&id)).await?;
    match job {
        Some(j) if j.user_id == caller.principal.user_id && j.status != "cancelled" => Ok(j),
        _ => Err(Outcome::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no export job {job_id} of yours"),
        )),
    }
}

/// `GET [base]/$export-poll/{job}`: 202 while the job runs, then its manifest (or its error).
pub(super) async fn status(
    state: AppState,
    caller: Caller,
    job_id: &str,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    let job = own_job(&state, &caller, job_id).await?;
    match job.status.as_str() {
        "running" => {
            let mut r = StatusCode::ACCEPTED.into_response();
            r.headers_mut()
                .insert("x-progress", HeaderValue::from_static("in progress"));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(r)
        }
        "failed" => Err(Outcome::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!(
                "the export failed: {}",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        _ => {
            let base = fhir_base(&state, headers);
            let outputs: Vec<Value> = job
                .outputs
                .as_deref()
                .and_then(|o| serde_json::from_str::<Vec<Value>>(o).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|o| {
                    let ty = o["type"].as_str().unwrap_or_default().to_owned();
                    json!({"type": ty, "url": format!("{base}/$export-file/{}/{ty}.ndjson", job.job_id), "count": o["count"]})
                })
                .collect();
            let manifest = json!({
                "transactionTime": chrono::DateTime::from_timestamp_millis(job.transaction_time_ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "request": job.request,
                "requiresAccessToken": true,
                "output": outputs,
                "error": [],
            });
            Ok((
                [(header::CONTENT_TYPE, "application/json")],
                manifest.to_string(),
            )
                .into_response())
        }
    }
}

/// `DELETE [base]/$export-poll/{job}`: cancel the job (if it runs) and remove its files.
pub(super) async fn cancel(
    state: AppState,
    caller: Caller,
    job_id: &str,
) -> Result<Response, Outcome> {
    let job = own_job(&state, &caller, job_id).await?;
    let (id, now) = (job.job_id.clone(), state.clock.now_ms());
    state
        .with_store(move |s| s.finish_export(&id, "cancelled", None, None, now))
        .await?;
    let _ = std::fs::remove_dir_all(state.settings.export_dir.join(&job.job_id));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET [base]/$export-file/{job}/{Type}.ndjson`: one output file, to the job's owner; audited.
pub(super) async fn file(
    state: AppState,
    caller: Caller,
    job_id: &str,
    name: &str,
) -> Result<Response, Outcome> {
    let job = own_job(&state, &caller, job_id).await?;
    let ty = name.strip_suffix(".ndjson").unwrap_or("");
    if job.status != "done" || !rapport_fhir::search_param::is_resource_type(ty) {
        return Err(Outcome::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{name} is not a file of export {job_id}"),
        ));
    }
    let path = state
        .settings
        .export_dir
        .join(&job.job_id)
        .join(format!("{ty}.ndjson"));
    let body = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            Outcome::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{name} is not a file of export {job_id}"),
            )
        })?;
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        rapport_access::policy::Decision::Allow(rapport_access::policy::Basis::CareTeam),
        Action::Read,
        None,
        vec![format!("export/{job_id}/{ty}")],
        state.clock.now_ms(),
    );
    record.basis = "own-export".into();
    record.detail = format!("bulk export file {ty} of {job_id}");
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/fhir+ndjson")], body).into_response())
}

/// The Patient members of a Group (group.html: `member.entity`).
pub(super) fn group_members(group: &Value) -> Vec<String> {
    group["member"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.pointer("/entity/reference").and_then(Value::as_str))
        .filter_map(|r| r.strip_prefix("Patient/"))
        .map(str::to_owned)
        .collect()
}
