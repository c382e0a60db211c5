//! Rapport's ingestion of FHIR data: Bundles (transaction, batch, collection…) and NDJSON, from
//! files or generated in memory, into the store.
//!
//! Data flow: input bytes → [`rapport_fhir::bundle`] entries → [`apply`] (identity of each entry,
//! reference rewriting, replay detection, index extraction) inside one store transaction →
//! [`UnitReport`]. A directory import ([`import_units`]) retries inputs whose conditional
//! references could not be resolved yet, so the order of files does not matter.
#![forbid(unsafe_code)]

pub mod alerts;
mod apply;
pub mod files;
pub mod hl7;
mod speculate;

use std::collections::BTreeMap;
use std::fmt;

use rapport_store::{Durability, ResourceKey, Store, StoreError};
use serde_json::Value;

pub use apply::{
    apply_prepared, apply_unit, apply_unit_audited, prepare, Change, Guard, OnBehalf, Prepared,
};

/// What one input holds.
pub enum Payload {
    /// A JSON document: a Bundle or a single resource.
    Json(Vec<u8>),
    /// Newline-delimited JSON, one resource per line (FHIR Bulk Data).
    Ndjson(Vec<u8>),
    /// An already parsed Bundle (generated demo data).
    Value(Value),
}

/// One input to import: a file, or a generated bundle.
pub struct Unit {
    /// Shown in errors and kept as the provenance of every resource it writes.
    pub name: String,
    /// `file`, `demo`…
    pub kind: &'static str,
    pub payload: Payload,
}

/// A problem with one input, naming the input, the entry (bundle entry index or NDJSON line,
/// 0-based as in `Bundle.entry[i]`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub entry: Option<usize>,
    pub message: String,
    /// A conditional reference matched nothing: another input may create its target, so the
    /// input is retried after the others.
    pub retryable: bool,
    /// A version condition (`ifMatch`) failed: HTTP 412 in the API (http.html#concurrency).
    pub conflict: bool,
    /// The caller may not make this change (an [`OnBehalf`] guard refused it): HTTP 403.
    pub forbidden: bool,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(i) => write!(f, "{}: Bundle.entry[{i}]: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// What happened to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Deleted,
    /// The content equals a version already stored: nothing written (idempotent re-import).
    Unchanged,
    /// `ifNoneExist` matched an existing resource: nothing written.
    Matched,
    /// A GET entry, or a DELETE of something absent: nothing to do.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct EntryOutcome {
    pub index: usize,
    pub key: ResourceKey,
    pub action: Action,
}

/// The result of importing one input.
#[derive(Debug, Clone, Default)]
pub struct UnitReport {
    pub name: String,
    pub outcomes: Vec<EntryOutcome>,
    pub errors: Vec<ImportError>,
}

impl UnitReport {
    pub fn is_retryable(&self) -> bool {
        !self.errors.is_empty() && self.errors.iter().any(|e| e.retryable)
    }
    /// Resources written (created, updated or deleted), by type.
    pub fn written_by_type(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for o in &self.outcomes {
            if matches!(
                o.action,
                Action::Created | Action::Updated | Action::Deleted
            ) {
                *out.entry(o.key.resource_type.clone()).or_default() += 1;
            }
        }
        out
    }
}

/// Totals of a whole import.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub inputs: usize,
    pub failed_inputs: usize,
    /// Entries processed successfully (written or found unchanged), by resource type.
    pub resources_by_type: BTreeMap<String, u64>,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub errors: Vec<ImportError>,
}

impl Summary {
    pub fn resources(&self) -> u64 {
        self.resources_by_type.values().sum()
    }
    fn add(&mut self, report: &UnitReport) {
        for o in &report.outcomes {
            match o.action {
                Action::Created => self.created += 1,
                Action::Updated => self.updated += 1,
                Action::Deleted => self.deleted += 1,
                Action::Unchanged | Action::Matched => self.unchanged += 1,
                Action::Skipped => continue,
            }
            *self
                .resources_by_type
                .entry(o.key.resource_type.clone())
                .or_default() += 1;
        }
    }
}

/// Import many inputs. Inputs that fail only because a conditional reference found nothing yet
/// are set aside, unwritten, and retried once the others are in, as long as each round makes
/// progress; a last round then writes what can be written and reports the rest. `on_report` sees
/// every final report (for progress bars and logs).
pub fn import_units<I>(
    store: &dyn Store,
    units: I,
    now_ms: &dyn Fn() -> i64,
    on_report: &mut dyn FnMut(&UnitReport),
) -> Summary
where
    I: IntoIterator<Item = Unit>,
    I::IntoIter: Send,
{
    let mut summary = Summary::default();
    let mut waiting: Vec<Unit> = Vec::new();
    std::thread::scope(|scope| {
        // Reading and parsing the next inputs overlaps with writing this one: the store writes
        // on one core while the other parses.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<(Unit, Prepared)>(4);
        let units = units.into_iter();
        std::thread::Builder::new()
            .name("import-parse".into())
            .spawn_scoped(scope, move || {
                for unit in units {
                    let prepared = prepare(&unit);
                    if sender.send((unit, prepared)).is_err() {
                        break;
                    }
                }
            })
            .expect("a thread can be started");
        // Each group is one database transaction, applied input by input as they arrive, so
        // that writing overlaps with parsing the next inputs.
        let mut inputs = Inputs {
            receiver,
            next: None,
        };
        while inputs.peek().is_some() {
            for (unit, report) in apply_group(store, &mut inputs, now_ms()) {
                summary.inputs += 1;
                if report.is_retryable() {
                    waiting.push(unit);
                } else {
                    finish(&mut summary, &report, on_report);
                }
            }
        }
    });
    while !waiting.is_empty() {
        let before = waiting.len();
        let mut still = Vec::new();
        for unit in waiting {
            let report = apply_unit(store, &unit, now_ms(), true);
            if report.is_retryable() {
                still.push(unit);
            } else {
                finish(&mut summary, &report, on_report);
            }
        }
        if still.len() == before {
            // No progress: nothing else will create the missing targets.
            for unit in &still {
                let report = apply_unit(store, unit, now_ms(), false);
                finish(&mut summary, &report, on_report);
            }
            break;
        }
        waiting = still;
    }
    // Inputs were committed without waiting for the disk; one sync makes them all durable
    // before the summary claims them.
    if let Err(e) = store.sync() {
        summary.errors.push(ImportError {
            file: String::new(),
            entry: None,
            message: format!("the imported data could not be synced to disk: {e}"),
            retryable: false,
            conflict: false,
            forbidden: false,
        });
    }
    summary
}

/// The prepared inputs, as the parsing thread sends them.
struct Inputs {
    receiver: std::sync::mpsc::Receiver<(Unit, Prepared)>,
    next: Option<(Unit, Prepared)>,
}

impl Inputs {
    fn peek(&mut self) -> Option<&(Unit, Prepared)> {
        if self.next.is_none() {
            self.next = self.receiver.recv().ok();
        }
        self.next.as_ref()
    }

    /// The next input; `idle` runs first if it is not ready yet.
    fn next_or_idle(
        &mut self,
        idle: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<Option<(Unit, Prepared)>, StoreError> {
        if let Some(next) = self.next.take() {
            return Ok(Some(next));
        }
        match self.receiver.try_recv() {
            Ok(next) => Ok(Some(next)),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Ok(None),
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                idle()?;
                Ok(self.receiver.recv().ok())
            }
        }
    }
}

/// Inputs written in one database transaction. Committing once per group instead of once per
/// input saves rewriting the same index pages at every commit. Inputs are applied as they come
/// and the store writes its buffer out as it goes, so a group's size costs no memory here.
const GROUP_MAX_INPUTS: usize = 1000;
const GROUP_MAX_ENTRIES: usize = 100_000;

/// Apply the next inputs of `inputs` in one transaction, until the group is full or the inputs
/// run out; each input keeps its own outcome. If the group's commit fails, each of its inputs is
/// applied again alone, so that one input's storage failure does not sink the others.
fn apply_group(store: &dyn Store, inputs: &mut Inputs, now_ms: i64) -> Vec<(Unit, UnitReport)> {
    let mut units: Vec<Unit> = Vec::new();
    let mut reports = Vec::new();
    let result = store.write(Durability::Deferred, &mut |tx| {
        let mut entries = 0;
        while units.len() < GROUP_MAX_INPUTS && entries < GROUP_MAX_ENTRIES {
            // While the parser is behind, the store writes out what it has buffered.
            let Some((unit, prepared)) = inputs.next_or_idle(&mut || tx.idle())? else {
                break;
            };
            entries += prepared.entries();
            let report = apply::apply_in_tx(tx, &unit, prepared, now_ms, true, None);
            units.push(unit);
            reports.push(report?);
        }
        Ok(())
    });
    if result.is_err() && units.is_empty() {
        // The transaction could not even begin: take one input so that the import moves on.
        inputs.peek();
        units.extend(inputs.next.take().map(|(unit, _)| unit));
    }
    match result {
        Ok(()) => units.into_iter().zip(reports).collect(),
        Err(_) => units
            .into_iter()
            .map(|unit| {
                let report = apply_unit(store, &unit, now_ms, true);
                (unit, report)
            })
            .collect(),
    }
}

fn finish(summary: &mut Summary, report: &UnitReport, on_report: &mut dyn FnMut(&UnitReport)) {
    summary.add(report);
    if !report.errors.is_empty() {
        summary.failed_inputs += 1;
        summary.errors.extend(report.errors.iter().cloned());
    }
    on_report(report);
}
