//! Alert evaluation over the store: a patient's compartment is read, the rules
//! (`rapport_alerts`) say what needs doing, and the patient's stored alerts are brought in line
//! in one transaction with its audit record. Data arriving by any path (import, HL7 feed, API)
//! marks its patients in the writing transaction (`alert_dirty`), so [`drain`] right after the
//! commit finds them; [`sweep`] evaluates everyone for the rules that depend on time alone.

use rapport_access::audit::{Actor, AuditAction, AuditRecord, Outcome};
use rapport_alerts::{Config, PatientData};
use rapport_store::alerts::{AlertCandidate, SyncSummary};
use rapport_store::{Durability, Store, StoreError};
use serde_json::Value;

/// Patients evaluated in one transaction.
pub const BATCH: usize = 200;

/// Held from reading a batch's data to committing its alerts: evaluations in one process (the
/// server's sweep and its evaluation of changed patients, or a test's) take turns, so that an
/// evaluation that read a patient's data before a change cannot store its older findings over
/// those of one that read after it (which would resolve the new alert until the next sweep).
static EVALUATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    // A panic in another evaluation leaves nothing half-done here (its transaction rolled back).
    EVALUATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the rules say of one patient now: the alerts, as the store keeps them, and the care
/// plan tasks still to be written (rapport_alerts::plans): new ones for activities that have come
/// due, and open ones of plans or activities that ended, cancelled.
#[derive(Debug, Default)]
pub struct Findings {
    pub alerts: Vec<AlertCandidate>,
    pub tasks: Vec<Value>,
}

/// What the rules report for one patient now.
pub fn findings(
    store: &dyn Store,
    config: &Config,
    patient_id: &str,
    now_ms: i64,
) -> Result<Findings, StoreError> {
    let record = store.patient_record_of_types(patient_id, rapport_alerts::READS)?;
    let resources = record
        .into_iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| serde_json::from_str::<Value>(&r.content).ok());
    let data = PatientData::new(patient_id, resources);
    let mut tasks = rapport_alerts::plans::due_activity_tasks(&data, config, now_ms);
    tasks.extend(rapport_alerts::plans::tasks_of_ended_plans(&data, now_ms));
    let alerts = rapport_alerts::evaluate(&data, config, now_ms)
        .into_iter()
        .map(|a| AlertCandidate {
            rule: a.rule.to_owned(),
            cause: a.cause,
            severity: a.severity.rank(),
            title: a.title,
            why: a.why,
            due_ms: a.due_ms,
            focus: a.focus,
        })
        .collect();
    Ok(Findings { alerts, tasks })
}

/// Write a patient's care plan tasks ([`Findings::tasks`]) as the alert rules, audited in the
/// same transaction (one record for the patient); whether they were written. Each is created only if no Task names its
/// activity yet (`ifNoneExist` on the identifier), so a second evaluation makes none.
fn write_activity_tasks(store: &dyn Store, patient_id: &str, tasks: &[Value], now_ms: i64) -> bool {
    let entries: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let key = t
                .pointer("/identifier/0/value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A task already stored (closed because its plan ended) is updated in place.
            if let Some(id) = t.get("id").and_then(Value::as_str) {
                return serde_json::json!({
                    "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                    "resource": t,
                    "request": {"method": "PUT", "url": format!("Task/{id}")},
                });
            }
            serde_json::json!({
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": t,
                "request": {
                    "method": "POST",
                    "url": "Task",
                    // `#` would end a URL's query: percent-encoded (RFC 3986 section 3.5).
                    "ifNoneExist": format!(
                        "identifier={}|{}",
                        rapport_alerts::plans::ACTIVITY_SYSTEM,
                        key.replace('%', "%25").replace('#', "%23")
                    ),
                },
            })
        })
        .collect();
    let unit = crate::Unit {
        name: "care plan activities due".into(),
        kind: "care-plan",
        payload: crate::Payload::Value(serde_json::json!({
            "resourceType": "Bundle", "type": "transaction", "entry": entries,
        })),
    };
    let audit = AuditRecord {
        detail: format!("care plan tasks written: {}", tasks.len()),
        ..audit_record(patient_id, &SyncSummary::default(), now_ms)
    };
    let guard = |changes: &[crate::Change<'_>]| -> Vec<Option<String>> {
        changes
            .iter()
            .map(|c| {
                (c.new_patient != Some(patient_id))
                    .then(|| "a care plan task belongs to the plan's patient".to_owned())
            })
            .collect()
    };
    let on_behalf = crate::OnBehalf {
        guard: &guard,
        audit: &audit,
    };
    let report = crate::apply_unit_audited(store, &unit, now_ms, &on_behalf);
    if let Some(e) = report.errors.first() {
        // Logged without the content (patient data): which entry, and that it failed. The
        // activity is tried again at the patient's next evaluation.
        tracing::warn!(
            entry = ?e.entry,
            "care plan tasks of a patient could not be written; retried at the next evaluation"
        );
        return false;
    }
    true
}

/// Due care plan activities become tasks before the alerts are stored; the patient is then
/// evaluated again, so that the overdue rule sees the task rather than the activity (rare: once
/// per activity).
fn make_due_tasks(
    store: &dyn Store,
    config: &Config,
    patient_id: &str,
    found: &mut Findings,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let made = found.tasks.len();
    if made > 0 && write_activity_tasks(store, patient_id, &found.tasks, now_ms) {
        *found = findings(store, config, patient_id, now_ms)?;
        return Ok(made);
    }
    Ok(0)
}

/// The audit record of what an evaluation changed for a patient (the rules act as the system,
/// not as a person).
fn audit_record(patient_id: &str, s: &SyncSummary, now_ms: i64) -> AuditRecord {
    AuditRecord {
        recorded_ms: now_ms,
        actor: Actor::command_line("alert-rules"),
        action: AuditAction::Write,
        outcome: Outcome::Success,
        patient_id: Some(patient_id.to_owned()),
        entities: vec![format!("Patient/{patient_id}/alerts")],
        source: "alert-rules".into(),
        basis: "system".into(),
        purpose: None,
        flagged: false,
        detail: format!(
            "alerts raised {}, reopened {}, resolved {}, updated {}",
            s.raised, s.reopened, s.resolved, s.refreshed
        ),
    }
}

/// Evaluate `patients` (id and, for marked ones, the mark seen) and store the result in one
/// transaction; the summary of all changes.
pub fn evaluate(
    store: &dyn Store,
    config: &Config,
    patients: &[(String, Option<i64>)],
    now_ms: i64,
    durability: Durability,
) -> Result<SyncSummary, StoreError> {
    let _turn = turn();
    // The rules run before the transaction: reading and evaluating take no write lock.
    let mut evaluated: Vec<(&String, Option<i64>, Findings)> = if patients.len() == 1 {
        let (id, marks) = &patients[0];
        vec![(id, *marks, findings(store, config, id, now_ms)?)]
    } else {
        let ids = patients.iter().map(|(id, _)| id.clone()).collect();
        patients
            .iter()
            .zip(evaluate_parallel(store, config, ids, now_ms)?)
            .map(|((id, marks), (_, found))| (id, *marks, found))
            .collect()
    };
    let mut tasks_made = 0;
    for (id, _, found) in &mut evaluated {
        tasks_made += make_due_tasks(store, config, id, found, now_ms)?;
    }
    let mut total = SyncSummary::default();
    store.write(durability, &mut |tx| {
        total = SyncSummary::default();
        for (id, marks, found) in &evaluated {
            let s = tx.sync_alerts(id, &found.alerts, now_ms, *marks)?;
            if s.raised + s.reopened + s.resolved > 0 {
                tx.append_audit(&audit_record(id, &s, now_ms))?;
            }
            total.raised += s.raised;
            total.reopened += s.reopened;
            total.resolved += s.resolved;
            total.refreshed += s.refreshed;
        }
        Ok(())
    })?;
    total.tasks_made = tasks_made;
    Ok(total)
}

/// Evaluate the patients whose data changed since their last evaluation, in batches, until none
/// is left. Returns how many were evaluated and what changed.
pub fn drain(
    store: &dyn Store,
    config: &Config,
    now_ms: &dyn Fn() -> i64,
) -> Result<(usize, SyncSummary), StoreError> {
    let mut count = 0;
    let mut total = SyncSummary::default();
    loop {
        let dirty = store.dirty_patients(BATCH as u64)?;
        if dirty.is_empty() {
            return Ok((count, total));
        }
        let batch: Vec<(String, Option<i64>)> =
            dirty.into_iter().map(|(p, m)| (p, Some(m))).collect();
        let s = evaluate(store, config, &batch, now_ms(), Durability::Immediate)?;
        count += batch.len();
        add(&mut total, &s);
    }
}

fn add(total: &mut SyncSummary, s: &SyncSummary) {
    total.raised += s.raised;
    total.reopened += s.reopened;
    total.resolved += s.resolved;
    total.refreshed += s.refreshed;
    total.tasks_made += s.tasks_made;
}

/// The rules' findings for `ids`, on as many threads as there are cores (reading and parsing a
/// record and running the rules is the sweep's whole cost; the store's readers are a pool).
fn evaluate_parallel(
    store: &dyn Store,
    config: &Config,
    ids: Vec<String>,
    now_ms: i64,
) -> Result<Vec<(String, Findings)>, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = ids.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<(String, Findings)>, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|id| Ok((id.clone(), findings(store, config, id, now_ms)?)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an evaluation thread does not panic"))
            .collect()
    });
    let mut out = Vec::with_capacity(ids.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// The scheduled sweep: every patient, in batches of [`BATCH`] in id order, each batch one
/// transaction that also moves the cursor, so that a sweep cut short resumes where it stopped.
/// `progress` hears the count after each batch. Returns how many were evaluated and what changed.
pub fn sweep(
    store: &dyn Store,
    config: &Config,
    now_ms: &dyn Fn() -> i64,
    progress: &mut dyn FnMut(usize),
) -> Result<(usize, SyncSummary), StoreError> {
    let started = now_ms();
    // Resume an unfinished sweep; start over after a finished one.
    let (mut cursor, started, mut count) = match store.sweep_state()? {
        Some(s) if s.finished_ms.is_none() => (s.cursor, s.started_ms, s.evaluated as usize),
        _ => (String::new(), started, 0),
    };
    let mut total = SyncSummary::default();
    loop {
        let ids = store.patient_ids_after(&cursor, BATCH as u64)?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        let now = now_ms();
        let _turn = turn();
        let mut evaluated = evaluate_parallel(store, config, ids, now)?;
        let mut tasks_made = 0;
        for (id, found) in &mut evaluated {
            tasks_made += make_due_tasks(store, config, id, found, now)?;
        }
        let mut s_batch = SyncSummary::default();
        store.write(Durability::Deferred, &mut |tx| {
            s_batch = SyncSummary::default();
            for (id, found) in &evaluated {
                let s = tx.sync_alerts(id, &found.alerts, now, None)?;
                if s.raised + s.reopened + s.resolved > 0 {
                    tx.append_audit(&audit_record(id, &s, now))?;
                }
                add(&mut s_batch, &s);
            }
            tx.set_sweep(&last, started, None, (count + evaluated.len()) as i64)?;
            Ok(())
        })?;
        count += evaluated.len();
        s_batch.tasks_made = tasks_made;
        add(&mut total, &s_batch);
        cursor = last;
        progress(count);
    }
    let finished = now_ms();
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_sweep(&cursor, started, Some(finished), count as i64)
    })?;
    Ok((count, total))
}
