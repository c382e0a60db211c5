//! Applying one input to the store with FHIR transaction semantics (FHIR R4 http.html#transaction,
//! http.html#trules), inside one store transaction.
//!
//! 1. Identity: which stored resource each entry is about (PUT url, `ifNoneExist`, conditional
//!    update, identity of patients and providers by identifier, the resource's own id, the
//!    `urn:uuid` of its fullUrl).
//! 2. References: `urn:uuid:` and fullUrl references become `Type/id`; conditional references
//!    (`Practitioner?identifier=…`) are resolved by search, in the bundle and in the store.
//! 3. Writes: a new version per changed resource; content equal to a stored version is a replay
//!    and writes nothing, which makes re-imports idempotent.
//!
//! A transaction is all or nothing. Other bundle types and NDJSON apply entry by entry: a bad
//! entry is reported and the rest is written.

use std::collections::{BTreeMap, HashMap};

use rapport_access::audit::{Actor, AuditAction, AuditRecord, Outcome};

use rapport_fhir::bundle::{self, Entry, Method, Mode, Parsed};
use rapport_fhir::hash::content_hash;
use rapport_fhir::index::{self, IndexRows};
use rapport_fhir::query::{self, Clause, Query};
use rapport_fhir::reference::{self, ReferenceTarget};
use rapport_fhir::{date, id::is_valid_id, text};
use rapport_store::{
    Durability, Existing, NewSource, NewVersion, ResourceKey, Store, StoreError, WriteTx,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::speculate::{speculate, Precomputed, Speculation};
use crate::{Action, EntryOutcome, ImportError, Payload, Unit, UnitReport};

/// Resource types matched to stored ones by business identifier rather than by id: two inputs
/// describing the same patient (same identifier system and value) become one patient.
pub(crate) const MATCH_BY_IDENTIFIER: &[&str] = &["Patient", "Practitioner", "Organization"];

/// Namespace of ids derived from content, for resources that arrive with neither id nor fullUrl.
const CONTENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f0c_5a3e_2b1d_4c7a_9e8f_1a2b_3c4d_5e6f);

/// Import one input. With `defer_unresolved`, an input with a conditional reference that matches
/// nothing yet writes nothing and comes back retryable.
pub fn apply_unit(
    store: &dyn Store,
    unit: &Unit,
    now_ms: i64,
    defer_unresolved: bool,
) -> UnitReport {
    apply_prepared(store, unit, prepare(unit), now_ms, defer_unresolved)
}

/// One change an input is about to make, shown to an [`OnBehalf`] guard before anything is
/// written.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The entry (`Bundle.entry[i]`).
    pub index: usize,
    pub key: &'a ResourceKey,
    /// Created, Updated or Deleted; Unchanged or Matched when the entry found its resource as it
    /// is (the caller still gets it back, so it is authorised too).
    pub action: Action,
    /// The patient the current version belongs to, if it exists.
    pub old_patient: Option<&'a str>,
    /// The patient the new version belongs to (a delete: the patient of what it deletes; `None`
    /// for directory data).
    pub new_patient: Option<&'a str>,
}

/// Decides, for every change, `None` (allowed) or the reason it is refused.
pub type Guard<'a> = dyn Fn(&[Change<'_>]) -> Vec<Option<String>> + 'a;

/// A write on behalf of a signed-in user (FHIR API, console): its resources are validated
/// against the core definitions (`rapport_fhir::validate`), `guard` authorises each change
/// once identities are known (a refusal in a transaction rejects it whole; in a batch, that entry
/// alone), and the audit trail gets `audit` (with the patient and the resources filled in) per
/// patient written, in the same transaction, instead of the import's records.
pub struct OnBehalf<'a> {
    pub guard: &'a Guard<'a>,
    pub audit: &'a AuditRecord,
}

/// Import one input on behalf of a signed-in user, durably (see [`OnBehalf`]).
pub fn apply_unit_audited(
    store: &dyn Store,
    unit: &Unit,
    now_ms: i64,
    on_behalf: &OnBehalf<'_>,
) -> UnitReport {
    // Prepared plainly: the entries are validated as they are, and one input gains nothing from
    // work done ahead on another thread.
    let mut prepared = Some(prepare_plainly(unit));
    let mut report = None;
    let result = store.write(Durability::Immediate, &mut |tx| {
        let prepared = prepared.take().expect("the write closure runs once");
        report = Some(apply_in_tx(
            tx,
            unit,
            prepared,
            now_ms,
            false,
            Some(on_behalf),
        )?);
        Ok(())
    });
    match result {
        Ok(()) => report.expect("set by the closure"),
        Err(e) => failed_in_storage(unit, &e),
    }
}

/// An input parsed and checked as far as possible without the store. Preparing needs no store,
/// so [`crate::import_units`] prepares the next input on another thread while one is written.
pub struct Prepared {
    parsed: Result<Parsed, bundle::DocumentError>,
    sha256: Option<String>,
    /// The work done ahead on guessed identities, if the input allowed a guess.
    spec: Option<Speculation>,
}

/// Parse and check an input, and do ahead what can be done without the store (see
/// [`crate::speculate`]).
pub fn prepare(unit: &Unit) -> Prepared {
    let mut prepared = prepare_plainly(unit);
    if let Ok(parsed) = &mut prepared.parsed {
        prepared.spec = speculate(parsed);
    }
    prepared
}

/// Parse and check an input, nothing more.
fn prepare_plainly(unit: &Unit) -> Prepared {
    let (mut parsed, sha256) = match &unit.payload {
        Payload::Json(bytes) => (bundle::parse_json_document(bytes), Some(sha256_hex(bytes))),
        Payload::Ndjson(bytes) => (Ok(bundle::parse_ndjson(bytes)), Some(sha256_hex(bytes))),
        Payload::Value(v) => (bundle::parse_document_value(v.clone()), None),
    };
    if let Ok(p) = &mut parsed {
        for entry in &mut p.entries {
            refuse_derived(entry);
        }
    }
    Prepared {
        parsed,
        sha256,
        spec: None,
    }
}

/// The resource types Rapport derives itself and never takes from an input: `Flag` is the FHIR
/// view of the alert rules' findings (ARCHITECTURE: alerts are derived, never typed in), so a
/// Flag in an input is that entry's error and the rest of the input goes on.
const DERIVED_TYPES: [&str; 1] = ["Flag"];

fn refuse_derived(entry: &mut Result<bundle::Entry, bundle::EntryError>) {
    let Ok(e) = entry else { return };
    // Reads in a batch are not writes.
    if e.request.as_ref().is_some_and(|r| r.method == Method::Get) {
        return;
    }
    let ty = e
        .resource
        .as_ref()
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str)
        .or_else(|| {
            e.request
                .as_ref()
                .map(|r| r.url.split(['/', '?']).next().unwrap_or_default())
        });
    if let Some(ty) = ty.filter(|t| DERIVED_TYPES.contains(t)) {
        *entry = Err(bundle::EntryError {
            index: e.index,
            message: format!(
                "{ty} resources are Rapport's own care-team alerts, raised by its rules from the \
                 patient's data; they are not imported or written"
            ),
        });
    }
}

impl Prepared {
    /// Entries in the input (0 when it could not be parsed): the size of the work.
    pub fn entries(&self) -> usize {
        self.parsed.as_ref().map_or(0, |p| p.entries.len())
    }
}

/// [`apply_unit`] for an input already prepared: one store transaction.
pub fn apply_prepared(
    store: &dyn Store,
    unit: &Unit,
    prepared: Prepared,
    now_ms: i64,
    defer_unresolved: bool,
) -> UnitReport {
    let mut prepared = Some(prepared);
    let mut report = None;
    let result = store.write(Durability::Deferred, &mut |tx| {
        let prepared = prepared.take().expect("the write closure runs once");
        report = Some(apply_in_tx(
            tx,
            unit,
            prepared,
            now_ms,
            defer_unresolved,
            None,
        )?);
        Ok(())
    });
    match result {
        Ok(()) => report.expect("set by the closure"),
        Err(e) => failed_in_storage(unit, &e),
    }
}

/// The report of an input whose transaction failed in the store: nothing of it was written.
pub(crate) fn failed_in_storage(unit: &Unit, e: &StoreError) -> UnitReport {
    UnitReport {
        name: unit.name.clone(),
        outcomes: Vec::new(),
        errors: vec![ImportError {
            file: unit.name.clone(),
            entry: None,
            message: format!("nothing from this input was stored: {e}"),
            retryable: false,
            conflict: false,
            forbidden: false,
        }],
    }
}

/// Apply one prepared input inside an open transaction. Every check that can reject an input
/// (a bad entry of a transaction bundle, an unresolved reference to retry) runs before its first
/// write, so a rejected input has written nothing and the transaction goes on with the next
/// input; only a storage error aborts the transaction. Several inputs can so share one database
/// transaction, which is what makes bulk imports fast.
pub(crate) fn apply_in_tx(
    tx: &mut dyn WriteTx,
    unit: &Unit,
    prepared: Prepared,
    now_ms: i64,
    defer_unresolved: bool,
    on_behalf: Option<&OnBehalf<'_>>,
) -> Result<UnitReport, StoreError> {
    let mut report = UnitReport {
        name: unit.name.clone(),
        ..Default::default()
    };
    let Prepared {
        parsed,
        sha256,
        spec,
    } = prepared;
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(ImportError {
                file: unit.name.clone(),
                entry: None,
                message: e.0,
                retryable: false,
                conflict: false,
                forbidden: false,
            });
            return Ok(report);
        }
    };
    let source = NewSource {
        kind: unit.kind.to_owned(),
        name: unit.name.clone(),
        received_at_ms: now_ms,
        sha256,
    };
    let mut run = Run {
        tx: &mut *tx,
        file: &unit.name,
        now_ms,
        report: UnitReport {
            name: unit.name.clone(),
            ..Default::default()
        },
        planned: Vec::new(),
        by_url: HashMap::new(),
        writers: HashMap::new(),
        by_identifier: HashMap::new(),
        conditional_cache: HashMap::new(),
        patients_written: BTreeMap::new(),
        identity_matching: on_behalf.is_none(),
    };
    let Some(written) = run.apply(
        parsed,
        spec,
        &source,
        defer_unresolved,
        on_behalf.map(|o| o.guard),
    )?
    else {
        // The identities guessed ahead were not the right ones: apply the input from scratch.
        // Nothing was written.
        return apply_in_tx(
            tx,
            unit,
            prepare_plainly(unit),
            now_ms,
            defer_unresolved,
            on_behalf,
        );
    };
    let patients_written = std::mem::take(&mut run.patients_written);
    let inner = run.report;
    if written {
        report.outcomes = inner.outcomes;
        // Every write of patient data is audited, in the same transaction: one record per
        // patient whose data this input changed (and one for resources of no patient), as the
        // user who wrote through the API or console, or as the import.
        for (patient, entities) in patients_written {
            let record = match on_behalf {
                Some(o) => AuditRecord {
                    patient_id: patient,
                    entities,
                    ..o.audit.clone()
                },
                None => {
                    let Some(patient) = patient else { continue };
                    AuditRecord {
                        recorded_ms: now_ms,
                        actor: Actor::command_line(&format!("import:{}", unit.kind)),
                        action: AuditAction::Import,
                        outcome: Outcome::Success,
                        detail: format!("{} resources written", entities.len()),
                        entities: vec![format!("Patient/{patient}")],
                        patient_id: Some(patient),
                        source: "cli".into(),
                        basis: "import".into(),
                        purpose: None,
                        flagged: false,
                    }
                }
            };
            tx.append_audit(&record)?;
        }
    }
    report.errors = inner.errors;
    Ok(report)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An entry's change, decided before anything is written: (entry index, resource, action, the
/// version to write if any, the patient of the version it replaces).
type Decided = (
    usize,
    ResourceKey,
    Action,
    Option<NewVersion>,
    Option<String>,
);

/// What an entry does, once its identity is known.
enum Op {
    Write { key: ResourceKey, resource: Value },
    Delete { key: ResourceKey },
    Matched { key: ResourceKey },
    Skip { key: ResourceKey },
}

struct Planned {
    index: usize,
    op: Op,
    /// `request.ifMatch`: the version this entry expects to replace.
    if_match: Option<i64>,
    /// Index rows before reference rewriting, computed when an in-bundle search needs them.
    early_rows: Option<IndexRows>,
    failed: bool,
}

struct Run<'t, 'f> {
    tx: &'t mut dyn WriteTx,
    file: &'f str,
    now_ms: i64,
    report: UnitReport,
    planned: Vec<Planned>,
    /// fullUrl, and `Type/id` as written in the input, to the stored identity.
    by_url: HashMap<String, ResourceKey>,
    /// The entry that writes each resource, to refuse a second write in the same input (B13).
    writers: HashMap<ResourceKey, usize>,
    /// (type, system, value) of resources planned in this input, for identity matching.
    by_identifier: HashMap<(String, String, String), ResourceKey>,
    conditional_cache: HashMap<String, Result<String, (String, Failure)>>,
    /// What was written, per patient (`None`: resources of no patient), for the audit trail.
    patients_written: BTreeMap<Option<String>, Vec<String>>,
    /// Whether a created Patient, Practitioner or Organization is matched to a stored one by
    /// identifier (imports and feeds; not a user's write).
    identity_matching: bool,
}

/// An error about one entry: message and whether another input might fix it.
pub(crate) type EntryResult<T> = Result<T, (String, Failure)>;

/// Why an entry failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The entry is wrong.
    Invalid,
    /// A conditional reference matched nothing yet: another input may create its target.
    Unresolved,
    /// A conditional create, update or delete matched more than one resource: HTTP 412
    /// (http.html#cond-update, "the client's criteria were not selective enough").
    NotSelective,
}

fn fail<T>(message: impl Into<String>) -> EntryResult<T> {
    Err((message.into(), Failure::Invalid))
}

impl Run<'_, '_> {
    fn error(&mut self, index: Option<usize>, (message, why): (String, Failure)) {
        self.report.errors.push(ImportError {
            file: self.file.to_owned(),
            entry: index,
            message,
            retryable: why == Failure::Unresolved,
            conflict: why == Failure::NotSelective,
            forbidden: false,
        });
    }

    /// Returns whether the input was written. It writes nothing until every check has passed
    /// (see [`apply_in_tx`]); `Ok(false)` means it was rejected without a write.
    ///
    /// With a [`Speculation`], the entries' resources are stubs and the work that follows from
    /// the identities was done ahead; `Ok(None)` then means that the guessed identities were not
    /// the right ones and the input must be applied again, prepared plainly.
    fn apply(
        &mut self,
        parsed: Parsed,
        mut spec: Option<Speculation>,
        source: &NewSource,
        defer_unresolved: bool,
        guard: Option<&Guard<'_>>,
    ) -> Result<Option<bool>, StoreError> {
        let rejected =
            |spec: &Option<Speculation>| Ok(if spec.is_some() { None } else { Some(false) });
        let transaction = parsed.mode == Mode::Transaction;
        let mut entries = Vec::new();
        for e in parsed.entries {
            match e {
                // A write on behalf of a user is validated against the core definitions
                // (validation.html); imports keep what the source sent.
                Ok(e) if guard.is_some() => {
                    let issues = e
                        .resource
                        .as_ref()
                        .map(rapport_fhir::validate::validate)
                        .unwrap_or_default();
                    if issues.is_empty() {
                        entries.push(e);
                    } else {
                        let listed: Vec<String> = issues
                            .iter()
                            .map(|i| format!("{}: {}", i.expression, i.message))
                            .collect();
                        self.error(
                            Some(e.index),
                            (
                                format!("the resource is not valid FHIR R4: {}", listed.join("; ")),
                                Failure::Invalid,
                            ),
                        );
                    }
                }
                Ok(e) => entries.push(e),
                Err(e) => self.error(Some(e.index), (e.message, Failure::Invalid)),
            }
        }
        if transaction && !self.report.errors.is_empty() {
            return rejected(&spec);
        }

        // 1. Identity of every entry, in order, so later entries can match earlier ones.
        for entry in entries {
            let index = entry.index;
            let full_url = entry.full_url.clone();
            let if_match = entry.request.as_ref().and_then(|r| r.if_match);
            let original = entry.resource.as_ref().and_then(|r| {
                Some(format!(
                    "{}/{}",
                    r.get("resourceType")?.as_str()?,
                    r.get("id")?.as_str()?
                ))
            });
            match self.identify(entry)? {
                Ok(op) => {
                    let key = match &op {
                        Op::Write { key, .. }
                        | Op::Delete { key }
                        | Op::Matched { key }
                        | Op::Skip { key } => key.clone(),
                    };
                    if let Op::Write { .. } | Op::Delete { .. } = op {
                        if let Some(other) = self.writers.get(&key) {
                            let msg = format!(
                                "Bundle.entry[{other}] and Bundle.entry[{index}] both write {}/{}; a bundle may change a resource only once",
                                key.resource_type, key.id
                            );
                            self.error(Some(index), (msg, Failure::Invalid));
                            if transaction {
                                return rejected(&spec);
                            }
                            continue;
                        }
                    }
                    if let Op::Write { .. } | Op::Delete { .. } = op {
                        self.writers.insert(key.clone(), index);
                    }
                    if let Some(url) = full_url {
                        self.by_url.insert(url, key.clone());
                    }
                    if let Some(orig) = original {
                        self.by_url.entry(orig).or_insert_with(|| key.clone());
                    }
                    if let Op::Write { resource, .. } = &op {
                        if MATCH_BY_IDENTIFIER.contains(&key.resource_type.as_str()) {
                            for (system, value) in identifiers(resource) {
                                self.by_identifier
                                    .entry((key.resource_type.clone(), system, value))
                                    .or_insert_with(|| key.clone());
                            }
                        }
                    }
                    self.planned.push(Planned {
                        index,
                        op,
                        if_match,
                        early_rows: None,
                        failed: false,
                    });
                }
                Err(e) => {
                    self.error(Some(index), e);
                    if transaction {
                        return rejected(&spec);
                    }
                }
            }
        }

        // The guess holds if it found the same identities and the same map of URLs, which is
        // all that reference rewriting reads (see the speculate module).
        if let Some(s) = &spec {
            let same = self.report.errors.is_empty()
                && self.by_url == s.by_url
                && self.planned.len() == s.entries.len()
                && self
                    .planned
                    .iter()
                    .zip(&s.entries)
                    .all(|(p, e)| matches!(&p.op, Op::Write { key, .. } if *key == e.key));
            if !same {
                return Ok(None);
            }
        }

        // 2. Rewrite references (done ahead with a speculation).
        for i in 0..self.planned.len() {
            if spec.is_some() {
                break;
            }
            let Op::Write { resource, .. } = &mut self.planned[i].op else {
                continue;
            };
            let mut resource = std::mem::take(resource);
            let result = self.rewrite(&mut resource)?;
            let index = self.planned[i].index;
            if let Op::Write { resource: slot, .. } = &mut self.planned[i].op {
                *slot = resource;
            }
            if let Err(e) = result {
                self.planned[i].failed = true;
                self.error(Some(index), e);
                if transaction {
                    return Ok(Some(false));
                }
            }
        }
        if defer_unresolved && self.report.errors.iter().any(|e| e.retryable) {
            return Ok(Some(false));
        }

        // 3. Write what changed.
        let keys: Vec<ResourceKey> = self
            .planned
            .iter()
            .filter(|p| !p.failed)
            .filter_map(|p| match &p.op {
                Op::Write { key, .. } | Op::Delete { key } => Some(key.clone()),
                // A match is shown to the caller: its patient is needed to authorise that.
                Op::Matched { key } if guard.is_some() => Some(key.clone()),
                _ => None,
            })
            .collect();
        let existing = self.tx.existing(&keys)?;
        let mut existing = keys.into_iter().zip(existing).collect::<HashMap<_, _>>();
        // 3a. Version conditions (http.html#concurrency, hard case B22): an entry with ifMatch
        // applies only over that very version, checked in this transaction, before any write.
        for i in 0..self.planned.len() {
            let p = &self.planned[i];
            let (Some(expected), false) = (p.if_match, p.failed) else {
                continue;
            };
            let key = match &p.op {
                Op::Write { key, .. } | Op::Delete { key } => key.clone(),
                _ => continue,
            };
            let current = existing
                .get(&key)
                .and_then(|e| e.as_ref())
                .filter(|e| !e.deleted)
                .map(|e| e.current_version);
            if current != Some(expected) {
                let index = p.index;
                self.planned[i].failed = true;
                let now = current.map_or_else(
                    || "it does not exist".to_owned(),
                    |v| format!("its current version is W/\"{v}\""),
                );
                self.report.errors.push(ImportError {
                    file: self.file.to_owned(),
                    entry: Some(index),
                    message: format!(
                        "version conflict: the entry expects {}/{} at W/\"{expected}\", but {now}",
                        key.resource_type, key.id
                    ),
                    retryable: false,
                    conflict: true,
                    forbidden: false,
                });
                if transaction {
                    return Ok(Some(false));
                }
            }
        }
        // With a speculation, its entries line up with the planned ones (checked above).
        let mut ahead = spec.take().map(|s| s.entries.into_iter());
        // 3b. Decide every change (action, version, content) before writing any, so that the
        // caller's guard sees them all: a refused entry of a transaction rejects the whole input
        // with nothing written.
        // Sized once: each element holds a whole new version, and growing the vector copied
        // them into fresh pages (~5 % of the writer's time in a profile of the fixtures import).
        let mut decided: Vec<Decided> = Vec::with_capacity(self.planned.len());
        for planned in std::mem::take(&mut self.planned) {
            if planned.failed {
                continue;
            }
            let index = planned.index;
            let old_patient = |existing: &Option<Existing>| {
                existing
                    .as_ref()
                    .filter(|e| !e.deleted)
                    .and_then(|e| e.patient_key.clone())
            };
            let (key, action, version, old) = match planned.op {
                Op::Matched { key } => {
                    let old = old_patient(&existing.remove(&key).flatten());
                    (key, Action::Matched, None, old)
                }
                Op::Skip { key } => (key, Action::Skipped, None, None),
                Op::Delete { key } => {
                    let e = existing.remove(&key).flatten();
                    let old = old_patient(&e);
                    match e {
                        Some(e) if !e.deleted => (
                            key,
                            Action::Deleted,
                            Some((e.current_version + 1, None)),
                            old,
                        ),
                        _ => (key, Action::Skipped, None, None),
                    }
                }
                Op::Write { key, mut resource } => {
                    let resource = match ahead.as_mut().and_then(Iterator::next) {
                        Some(done) => Content::Ahead(done),
                        None => {
                            set_id(&mut resource, &key.id);
                            let serialized = Serialized::new(&resource);
                            Content::Here(resource, serialized)
                        }
                    };
                    let hash = resource.hash();
                    let e = existing.remove(&key).flatten();
                    let old = old_patient(&e);
                    match e {
                        Some(e) if !e.deleted && e.hashes.contains(&hash) => {
                            (key, Action::Unchanged, None, old)
                        }
                        Some(e) => (
                            key,
                            Action::Updated,
                            Some((e.current_version + 1, Some((resource, hash)))),
                            old,
                        ),
                        None => (
                            key,
                            Action::Created,
                            Some((1, Some((resource, hash)))),
                            None,
                        ),
                    }
                }
            };
            let new_version = version.map(|(version, content)| {
                let existed = version > 1;
                match content {
                    Some((resource, hash)) => {
                        let (serialized, rows, patient_key, sort_key) = resource.finish(&key);
                        NewVersion {
                            content: serialized.with_meta(version, self.now_ms),
                            key: key.clone(),
                            version,
                            patient_key,
                            last_updated_ms: self.now_ms,
                            deleted: false,
                            content_hash: hash,
                            sort_key,
                            source_id: None,
                            source_entry: Some(index as i64),
                            index: rows,
                            existed,
                        }
                    }
                    // A tombstone stays with the patient whose resource it deletes (its audit,
                    // who may see it in history, and the shard it lives on).
                    None => NewVersion {
                        content: String::new(),
                        key: key.clone(),
                        version,
                        patient_key: old.clone(),
                        last_updated_ms: self.now_ms,
                        deleted: true,
                        content_hash: [0; 32],
                        sort_key: None,
                        source_id: None,
                        source_entry: Some(index as i64),
                        index: IndexRows::default(),
                        existed,
                    },
                }
            });
            decided.push((index, key, action, new_version, old));
        }
        if let Some(guard) = guard {
            // Entries that change nothing (a replay, a conditional create's match) are shown to
            // the guard too: the caller gets the stored resource back.
            let changes: Vec<Change<'_>> = decided
                .iter()
                .filter(|d| d.2 != Action::Skipped)
                .map(|(index, key, action, v, old)| Change {
                    index: *index,
                    key,
                    action: *action,
                    old_patient: old.as_deref(),
                    new_patient: match v {
                        Some(v) => v.patient_key.as_deref(),
                        None if *action == Action::Deleted => None,
                        None => old.as_deref(),
                    },
                })
                .collect();
            let refusals: Vec<(usize, String)> = guard(&changes)
                .into_iter()
                .zip(&changes)
                .filter_map(|(refusal, c)| refusal.map(|r| (c.index, r)))
                .collect();
            if !refusals.is_empty() {
                for (index, message) in &refusals {
                    self.report.errors.push(ImportError {
                        file: self.file.to_owned(),
                        entry: Some(*index),
                        message: message.clone(),
                        retryable: false,
                        conflict: false,
                        forbidden: true,
                    });
                }
                if transaction {
                    return Ok(Some(false));
                }
                decided.retain(|d| !refusals.iter().any(|(i, _)| *i == d.0));
            }
        }
        // 3c. Write.
        let mut source_id = None;
        for (index, key, action, new_version, old) in decided {
            if new_version.is_none() && guard.is_some() {
                if let Action::Unchanged | Action::Matched = action {
                    // A user's request that found its resource as it is: still a touch of the
                    // patient's data, recorded like a write.
                    self.patients_written
                        .entry(old.clone())
                        .or_default()
                        .push(format!("{}/{}", key.resource_type, key.id));
                }
            }
            if let Some(mut new_version) = new_version {
                new_version.source_id = Some(match source_id {
                    Some(id) => id,
                    None => *source_id.insert(self.tx.add_source(source)?),
                });
                // A change is the patient's whose resource it is now, or was before a delete.
                let patient = new_version.patient_key.clone().or(old);
                self.patients_written
                    .entry(patient)
                    .or_default()
                    .push(format!("{}/{}", key.resource_type, key.id));
                self.tx.put(new_version)?;
            }
            self.report
                .outcomes
                .push(EntryOutcome { index, key, action });
        }
        Ok(Some(true))
    }

    /// Which resource an entry is about (http.html#trules: POST, PUT, DELETE, conditional forms).
    fn identify(&mut self, entry: Entry) -> Result<EntryResult<Op>, StoreError> {
        let method = entry.request.as_ref().map(|r| r.method);
        let url = entry
            .request
            .as_ref()
            .map(|r| r.url.trim_start_matches('/').to_owned());
        Ok(match method {
            Some(Method::Get) => Ok(Op::Skip {
                key: ResourceKey::new("", ""),
            }),
            Some(Method::Patch) => fail("PATCH entries are not supported in imports"),
            Some(Method::Delete) => {
                let url = url.unwrap_or_default();
                match url.split_once('?') {
                    Some((ty, q)) => match self.search_one(ty, q)? {
                        Ok(Some(id)) => Ok(Op::Delete {
                            key: ResourceKey::new(ty, id),
                        }),
                        Ok(None) => Ok(Op::Skip {
                            key: ResourceKey::new(ty, ""),
                        }),
                        Err(e) => Err(e),
                    },
                    None => match type_and_id(&url) {
                        Some((ty, id)) => Ok(Op::Delete {
                            key: ResourceKey::new(ty, id),
                        }),
                        None => fail(format!("request.url '{url}' is not Type/id")),
                    },
                }
            }
            Some(Method::Put) => {
                let url = url.unwrap_or_default();
                let resource = entry.resource.expect("checked by the bundle parser");
                let ty = resource_type(&resource).to_owned();
                match url.split_once('?') {
                    Some((url_ty, q)) => {
                        if url_ty != ty {
                            return Ok(fail(format!(
                                "request.url is for {url_ty} but the resource is a {ty}"
                            )));
                        }
                        match self.search_one(&ty, q)? {
                            Ok(Some(id)) => Ok(Op::Write {
                                key: ResourceKey::new(ty, id),
                                resource,
                            }),
                            Ok(None) => {
                                let id = self.new_id(&resource, entry.full_url.as_deref());
                                Ok(Op::Write {
                                    key: ResourceKey::new(ty, id),
                                    resource,
                                })
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => match type_and_id(&url) {
                        Some((url_ty, id)) if url_ty == ty => {
                            match resource.get("id").and_then(Value::as_str) {
                                Some(rid) if rid != id => fail(format!("request.url names {url_ty}/{id} but the resource's id is '{rid}'")),
                                _ => Ok(Op::Write { key: ResourceKey::new(ty, id), resource }),
                            }
                        }
                        _ => fail(format!("request.url '{url}' is not {ty}/id")),
                    },
                }
            }
            Some(Method::Post) | None => {
                let resource = entry.resource.expect("checked by the bundle parser");
                let ty = resource_type(&resource).to_owned();
                if let Some(criteria) = entry
                    .request
                    .as_ref()
                    .and_then(|r| r.if_none_exist.as_deref())
                {
                    match self.search_one(&ty, criteria)? {
                        Ok(Some(id)) => {
                            return Ok(Ok(Op::Matched {
                                key: ResourceKey::new(ty, id),
                            }))
                        }
                        Ok(None) => {}
                        Err(e) => return Ok(Err(e)),
                    }
                }
                // Feeds and imports merge a Patient, Practitioner or Organization they describe
                // again into the one stored (matched by identifier); a user's create through the
                // API creates (http.html#create), and If-None-Exist is how a client asks for a match.
                if self.identity_matching && MATCH_BY_IDENTIFIER.contains(&ty.as_str()) {
                    match self.match_identity(&ty, &resource)? {
                        Ok(Some(id)) => {
                            return Ok(Ok(Op::Write {
                                key: ResourceKey::new(ty, id),
                                resource,
                            }))
                        }
                        Ok(None) => {}
                        Err(e) => return Ok(Err(e)),
                    }
                }
                let id = self.new_id(&resource, entry.full_url.as_deref());
                Ok(Op::Write {
                    key: ResourceKey::new(ty, id),
                    resource,
                })
            }
        })
    }

    /// The id of a resource that is new to this input; see [`new_id`].
    fn new_id(&self, resource: &Value, full_url: Option<&str>) -> String {
        new_id(resource, full_url)
    }

    /// A stored or planned resource of the same type sharing an identifier (system and value).
    fn match_identity(
        &mut self,
        ty: &str,
        resource: &Value,
    ) -> Result<EntryResult<Option<String>>, StoreError> {
        for (system, value) in identifiers(resource) {
            if let Some(key) =
                self.by_identifier
                    .get(&(ty.to_owned(), system.clone(), value.clone()))
            {
                return Ok(Ok(Some(key.id.clone())));
            }
            let q = Query {
                resource_type: ty.to_owned(),
                clauses: vec![Clause::Token {
                    param: "identifier",
                    system: Some(system.clone()),
                    code: value.clone(),
                }],
            };
            let ids = self.tx.find_ids(&q)?;
            match ids.len() {
                0 => continue,
                1 => return Ok(Ok(ids.into_iter().next())),
                _ => {
                    return Ok(fail(format!(
                        "identifier {system}|{value} already belongs to more than one {ty}; cannot tell which one this is"
                    )))
                }
            }
        }
        Ok(Ok(None))
    }

    /// Search `ty?query` among this input's planned resources and the store: at most one match.
    fn search_one(
        &mut self,
        ty: &str,
        raw: &str,
    ) -> Result<EntryResult<Option<String>>, StoreError> {
        let query = match query::parse(ty, raw) {
            Ok(q) => q,
            Err(e) => return Ok(fail(format!("search '{ty}?{raw}': {e}"))),
        };
        let mut found: Vec<String> = Vec::new();
        for p in self.planned.iter_mut().filter(|p| !p.failed) {
            let (key, resource) = match &p.op {
                Op::Write { key, resource } if key.resource_type == ty => (key, Some(resource)),
                Op::Matched { key } if key.resource_type == ty => (key, None),
                _ => continue,
            };
            let Some(resource) = resource else { continue };
            let rows = p.early_rows.get_or_insert_with(|| index::extract(resource));
            if query::matches(&query, &key.id, rows) && !found.contains(&key.id) {
                found.push(key.id.clone());
            }
        }
        for id in self.tx.find_ids(&query)? {
            if !found.contains(&id) {
                found.push(id);
            }
        }
        Ok(match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err((
                format!("search '{ty}?{raw}' matches {n} resources; it must match one"),
                Failure::NotSelective,
            )),
        })
    }

    /// Rewrite every reference of `resource`; see the module documentation.
    fn rewrite(&mut self, resource: &mut Value) -> Result<EntryResult<()>, StoreError> {
        let mut store_error = None;
        let result = reference::rewrite_references(resource, &mut |r: &str| -> EntryResult<
            Option<String>,
        > {
            match reference::parse(r) {
                ReferenceTarget::Conditional {
                    resource_type,
                    query,
                } => {
                    if let Some(cached) = self.conditional_cache.get(r) {
                        return cached.clone().map(Some);
                    }
                    let resolved = match self.search_one(resource_type, query) {
                        Ok(Ok(Some(id))) => Ok(format!("{resource_type}/{id}")),
                        Ok(Ok(None)) => Err((
                            format!("conditional reference '{r}' matches no resource"),
                            Failure::Unresolved,
                        )),
                        Ok(Err((m, _))) => Err((
                            format!("conditional reference '{r}': {m}"),
                            Failure::Invalid,
                        )),
                        Err(e) => {
                            store_error = Some(e);
                            Err(("storage error".to_owned(), Failure::Invalid))
                        }
                    };
                    self.conditional_cache
                        .insert(r.to_owned(), resolved.clone());
                    resolved.map(Some)
                }
                other => rewrite_local(&self.by_url, other),
            }
        });
        if let Some(e) = store_error {
            return Err(e);
        }
        Ok(result)
    }
}

/// The id of a resource that is new to this input: its own id when valid (so that references
/// by `Type/id` among files keep working and re-imports find it again), else the uuid of its
/// `urn:uuid:` fullUrl, else one derived from its content.
pub(crate) fn new_id(resource: &Value, full_url: Option<&str>) -> String {
    if let Some(id) = resource
        .get("id")
        .and_then(Value::as_str)
        .filter(|i| is_valid_id(i))
    {
        return id.to_owned();
    }
    if let Some(uuid) = full_url
        .and_then(|u| u.strip_prefix("urn:uuid:"))
        .filter(|u| is_valid_id(u))
    {
        return uuid.to_owned();
    }
    let hash = content_hash(resource);
    uuid::Uuid::new_v5(&CONTENT_ID_NAMESPACE, &hash).to_string()
}

/// The rewriting of a reference that needs nothing but the input's own identities (`by_url`):
/// every kind but conditional references, which need a search.
pub(crate) fn rewrite_local(
    by_url: &HashMap<String, ResourceKey>,
    target: ReferenceTarget<'_>,
) -> EntryResult<Option<String>> {
    match target {
        ReferenceTarget::Urn(urn) => match by_url.get(urn) {
            Some(k) => Ok(Some(format!("{}/{}", k.resource_type, k.id))),
            None => fail(format!(
                "reference '{urn}' matches no fullUrl in this bundle"
            )),
        },
        ReferenceTarget::Literal {
            base,
            resource_type,
            id,
            version,
        } => {
            let plain = format!("{resource_type}/{id}");
            let key = match base {
                Some(b) => by_url.get(&format!("{b}/{plain}")),
                None => by_url.get(&plain),
            };
            Ok(key.map(|k| match version {
                Some(v) => format!("{}/{}/_history/{v}", k.resource_type, k.id),
                None => format!("{}/{}", k.resource_type, k.id),
            }))
        }
        ReferenceTarget::Conditional { .. }
        | ReferenceTarget::Contained(_)
        | ReferenceTarget::Other(_) => Ok(None),
    }
}

fn resource_type(resource: &Value) -> &str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(crate) fn type_and_id(url: &str) -> Option<(&str, &str)> {
    let (ty, id) = url.split_once('/')?;
    (rapport_fhir::search_param::is_resource_type(ty) && is_valid_id(id)).then_some((ty, id))
}

/// `(system, value)` of each identifier that has both.
pub(crate) fn identifiers(resource: &Value) -> Vec<(String, String)> {
    resource
        .get("identifier")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| {
                    let system = i.get("system")?.as_str()?;
                    let value = i.get("value")?.as_str()?;
                    (!system.is_empty() && !value.is_empty())
                        .then(|| (system.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn set_id(resource: &mut Value, id: &str) {
    if let Some(obj) = resource.as_object_mut() {
        if obj.get("id").and_then(Value::as_str) != Some(id) {
            obj.insert("id".into(), Value::String(id.to_owned()));
        }
    }
}

/// A resource to write: worked on ahead ([`Precomputed`]), or here.
enum Content {
    Ahead(Precomputed),
    Here(Value, Serialized),
}

impl Content {
    fn hash(&self) -> [u8; 32] {
        match self {
            Content::Ahead(p) => p.serialized.hash,
            Content::Here(_, s) => s.hash,
        }
    }

    /// The serialisation, index rows, patient key and sort key of the resource.
    fn finish(self, key: &ResourceKey) -> (Serialized, IndexRows, Option<String>, Option<String>) {
        match self {
            Content::Ahead(p) => (p.serialized, p.rows, p.patient_key, p.sort_key),
            Content::Here(resource, serialized) => {
                let rows = index::extract(&resource);
                let patient_key = index::patient_key(&key.resource_type, &key.id, &rows);
                let sort_key = sort_key_of(&resource);
                (serialized, rows, patient_key, sort_key)
            }
        }
    }
}

/// A resource serialised once: the hash of its content (without `meta.versionId` and
/// `meta.lastUpdated`, which the store sets) for replay detection, and the pieces to write it
/// out with its meta, laid out as servers conventionally do: resourceType, id, meta, then the
/// other elements in input order (resource.html#Meta).
pub(crate) struct Serialized {
    /// `{"resourceType":"X","id":"Y"`
    head: String,
    /// The other meta elements (profile, tag…), as `"k":v,"k":v`, or empty.
    meta_rest: String,
    /// The remaining elements, each as `,"k":v`.
    body: String,
    pub(crate) hash: [u8; 32],
}

impl Serialized {
    pub(crate) fn new(resource: &Value) -> Self {
        let obj = resource.as_object().expect("resources are objects");
        let json = |v: &Value| serde_json::to_string(v).expect("JSON values serialise");
        let mut head = String::from("{\"resourceType\":");
        head.push_str(&json(obj.get("resourceType").unwrap_or(&Value::Null)));
        head.push_str(",\"id\":");
        head.push_str(&json(obj.get("id").unwrap_or(&Value::Null)));
        let mut meta_rest = String::new();
        if let Some(Value::Object(meta)) = obj.get("meta") {
            for (k, v) in meta
                .iter()
                .filter(|(k, _)| *k != "versionId" && *k != "lastUpdated")
            {
                if !meta_rest.is_empty() {
                    meta_rest.push(',');
                }
                meta_rest.push_str(&json(&Value::String(k.clone())));
                meta_rest.push(':');
                meta_rest.push_str(&json(v));
            }
        }
        let mut body: Vec<u8> = Vec::new();
        for (k, v) in obj
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "resourceType" | "id" | "meta"))
        {
            body.push(b',');
            serde_json::to_writer(&mut body, k).expect("JSON values serialise");
            body.push(b':');
            serde_json::to_writer(&mut body, v).expect("JSON values serialise");
        }
        let body = String::from_utf8(body).expect("serde_json writes UTF-8");
        let mut hasher = Sha256::new();
        hasher.update(head.as_bytes());
        hasher.update(b"\0");
        hasher.update(meta_rest.as_bytes());
        hasher.update(b"\0");
        hasher.update(body.as_bytes());
        Serialized {
            head,
            meta_rest,
            body,
            hash: hasher.finalize().into(),
        }
    }

    /// The JSON of this version as served.
    fn with_meta(&self, version: i64, last_updated_ms: i64) -> String {
        let mut out =
            String::with_capacity(self.head.len() + self.meta_rest.len() + self.body.len() + 80);
        out.push_str(&self.head);
        out.push_str(",\"meta\":{\"versionId\":\"");
        out.push_str(&version.to_string());
        out.push_str("\",\"lastUpdated\":\"");
        out.push_str(&date::format_instant(last_updated_ms));
        out.push('"');
        if !self.meta_rest.is_empty() {
            out.push(',');
            out.push_str(&self.meta_rest);
        }
        out.push('}');
        out.push_str(&self.body);
        out.push('}');
        out
    }
}

/// The patient list's order: normalised family name, then given names.
pub(crate) fn sort_key_of(resource: &Value) -> Option<String> {
    if resource_type(resource) != "Patient" {
        return None;
    }
    let names = resource.get("name")?.as_array()?;
    let name = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first())?;
    let family = name
        .get("family")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let given: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(text::normalize(&format!("{family} {}", given.join(" "))))
}
