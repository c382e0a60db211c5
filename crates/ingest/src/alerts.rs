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

/// What the rules report for one patient now, as the store keeps it.
pub fn candidates(
    store: &dyn Store,
    config: &Config,
    patient_id: &str,
    now_ms: i64,
) -> Result<Vec<AlertCandidate>, StoreError> {
    let record = store.patient_record(patient_id)?;
    let resources = record
        .into_iter()
        .filter(|r| !r.deleted && rapport_alerts::READS.contains(&r.key.resource_type.as_str()))
        .filter_map(|r| serde_json::from_str::<Value>(&r.content).ok());
    let data = PatientData::new(patient_id, resources);
    Ok(rapport_alerts::evaluate(&data, config, now_ms)
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
        .collect())
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
    // The rules run before the transaction: reading and evaluating take no write lock.
    let evaluated: Vec<(&String, Option<i64>, Vec<AlertCandidate>)> = if patients.len() == 1 {
        let (id, marks) = &patients[0];
        vec![(id, *marks, candidates(store, config, id, now_ms)?)]
    } else {
        let ids = patients.iter().map(|(id, _)| id.clone()).collect();
        patients
            .iter()
            .zip(evaluate_parallel(store, config, ids, now_ms)?)
            .map(|((id, marks), (_, found))| (id, *marks, found))
            .collect()
    };
    let mut total = SyncSummary::default();
    store.write(durability, &mut |tx| {
        total = SyncSummary::default();
        for (id, marks, found) in &evaluated {
            let s = tx.sync_alerts(id, found, now_ms, *marks)?;
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
}

/// The rules' findings for `ids`, on as many threads as there are cores (reading and parsing a
/// record and running the rules is the sweep's whole cost; the store's readers are a pool).
fn evaluate_parallel(
    store: &dyn Store,
    config: &Config,
    ids: Vec<String>,
    now_ms: i64,
) -> Result<Vec<(String, Vec<AlertCandidate>)>, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = ids.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<(String, Vec<AlertCandidate>)>, StoreError>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|id| Ok((id.clone(), candidates(store, config, id, now_ms)?)))
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
        let evaluated = evaluate_parallel(store, config, ids, now)?;
        let mut s_batch = SyncSummary::default();
        store.write(Durability::Deferred, &mut |tx| {
            s_batch = SyncSummary::default();
            for (id, found) in &evaluated {
                let s = tx.sync_alerts(id, found, now, None)?;
                if s.raised + s.reopened + s.resolved > 0 {
                    tx.append_audit(&audit_record(id, &s, now))?;
                }
                add(&mut s_batch, &s);
            }
            tx.set_sweep(&last, started, None, (count + evaluated.len()) as i64)?;
            Ok(())
        })?;
        count += evaluated.len();
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
