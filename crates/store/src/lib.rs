//! Rapport's storage: the [`Store`] trait and its SQLite and PostgreSQL implementations.
//!
//! This is the only crate that contains SQL. Callers describe what to write as plain values
//! ([`NewVersion`]) and run their decisions inside [`Store::write`], which is one database
//! transaction: either everything the closure did is committed, or nothing is.
//!
//! The interface is synchronous: SQLite is an in-process library and the PostgreSQL client used
//! here blocks. The web layer calls it from `tokio::task::spawn_blocking`.
#![forbid(unsafe_code)]

mod access;
pub mod alerts;
mod export;
mod hl7;
mod pending;
mod pg;
mod pg_access;
mod pg_alerts;
mod pg_export;
mod pg_hl7;
mod pool;
mod query_sql;
mod sqlite;
mod sqlite_access;
mod sqlite_alerts;
mod sqlite_export;
mod sqlite_hl7;
pub mod testing;
mod url;

use std::collections::BTreeMap;

use rapport_fhir::index::IndexRows;
use rapport_fhir::query::Query;

pub use access::{
    AccessRows, AccessStore, AccessTx, AuditFilter, BreakGlassRecord, NewUser, OAuthClientRecord,
    OAuthCodeRecord, SessionRecord, TakenCode, TokenRecord, UserRecord,
};
pub use alerts::{AlertStore, AlertTx};
pub use export::{ExportJob, ExportStore};
pub use hl7::{Hl7Message, Hl7Outcome, Hl7Store, Hl7Tx, NewHl7Message};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use url::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("could not sync {path} to disk: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
    #[error("the database schema is at version {found}, newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// An index row names a search parameter this build does not know (a bug: rows are made
    /// from the same generated table the store registers).
    #[error("unknown search parameter {0}")]
    UnknownParameter(String),
    /// The closure given to [`Store::write`] decided to roll back; it keeps its own reason.
    #[error("the transaction was rolled back")]
    Aborted,
    /// A uniqueness rule refused the write (e.g. an account with that e-mail exists).
    #[error("{0} already exists")]
    Duplicate(String),
    /// The group commit that carried this audit record failed.
    #[error("the audit record could not be committed: {0}")]
    AuditBatch(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A resource's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub resource_type: String,
    pub id: String,
}

impl ResourceKey {
    pub fn new(resource_type: impl Into<String>, id: impl Into<String>) -> Self {
        ResourceKey {
            resource_type: resource_type.into(),
            id: id.into(),
        }
    }
}

/// What search matches can be ordered by in the store (search.html#sort), without reading
/// their content: the last update, or a date parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    LastUpdated,
    /// A date parameter: ascending by each resource's earliest start, descending by its latest
    /// end (the ends of the ranges its values' precision covers).
    Date(&'static str),
}

/// One sort key of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub by: SortBy,
    pub descending: bool,
}

/// One match of a search: enough to authorise, order and page it before its content is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchMatch {
    pub id: String,
    /// The patient whose compartment the resource is in (`None`: a directory resource).
    pub patient_key: Option<String>,
    /// The value of each sort key asked for, in ms (`None`: the resource has no such value).
    pub sort: Vec<Option<i64>>,
}

/// What the store already holds of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub current_version: i64,
    pub deleted: bool,
    /// Content hashes of every version, oldest first.
    pub hashes: Vec<[u8; 32]>,
    /// The patient the current version belongs to (for authorising a change that moves or
    /// removes it).
    pub patient_key: Option<String>,
}

/// One new version to write. The caller has decided everything: the store only writes.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub key: ResourceKey,
    pub version: i64,
    pub patient_key: Option<String>,
    pub last_updated_ms: i64,
    pub deleted: bool,
    pub content_hash: [u8; 32],
    /// The JSON served for this version (with `meta.versionId` and `meta.lastUpdated`); empty for
    /// a delete.
    pub content: String,
    pub sort_key: Option<String>,
    pub source_id: Option<i64>,
    pub source_entry: Option<i64>,
    /// Index rows of this version (empty for a delete). They replace the previous version's rows.
    pub index: IndexRows,
    /// Whether the resource existed before, so its old index rows must be removed.
    pub existed: bool,
}

/// Where a batch of data came from.
#[derive(Debug, Clone)]
pub struct NewSource {
    pub kind: String,
    pub name: String,
    pub received_at_ms: i64,
    pub sha256: Option<String>,
}

/// A stored version as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub key: ResourceKey,
    pub version: i64,
    pub last_updated_ms: i64,
    pub deleted: bool,
    pub content: String,
    pub source: Option<SourceInfo>,
    /// The patient this version belongs to (Patient CompartmentDefinition), as indexed when it
    /// was written: authorisation needs no parsing of the content.
    pub patient_key: Option<String>,
}

/// The provenance of a stored version: which input, which entry, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub kind: String,
    pub name: String,
    pub received_at_ms: i64,
    pub entry: Option<i64>,
}

/// The console's patient list query. All given criteria must match.
#[derive(Debug, Clone, Default)]
pub struct PatientSearch {
    /// Normalised words; each must start some part of a name.
    pub name_words: Vec<String>,
    /// An identifier value (any system), matched exactly.
    pub identifier: Option<String>,
    /// A birth date range `[start, end)` in ms; patients whose birth date lies within match.
    pub birth_date: Option<(i64, i64)>,
    /// Only these patients (the ones the user may see); `None`: no such limit.
    pub only_ids: Option<Vec<String>>,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone)]
pub struct PatientPage {
    pub total: u64,
    pub patients: Vec<StoredResource>,
}

/// Operations inside one write transaction. Reads here see the transaction's own writes.
pub trait WriteTx: AccessTx + Hl7Tx + AlertTx {
    /// What is stored of each key, in the same order (`None`: never written).
    fn existing(&mut self, keys: &[ResourceKey]) -> Result<Vec<Option<Existing>>>;
    /// Ids of current, non-deleted resources matching `query` (conditional references,
    /// `ifNoneExist`, identity matching).
    fn find_ids(&mut self, query: &Query) -> Result<Vec<String>>;
    fn add_source(&mut self, source: &NewSource) -> Result<i64>;
    fn put(&mut self, version: NewVersion) -> Result<()>;
    /// The caller has nothing to write for a while (an importer waiting for its next input): a
    /// good time to write buffered versions out, so that less is left for the commit.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
}

/// When a committed write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk when `write` returns (an HL7 ACK, an API response).
    Immediate,
    /// Atomic and consistent at once, on disk by the next [`Store::sync`] or `Immediate` write.
    /// For bulk imports, which can be replayed (they are idempotent) if the machine stops.
    Deferred,
}

/// The resource store. Implementations: [`SqliteStore`], [`PgStore`].
pub trait Store: AccessStore + AlertStore + ExportStore + Hl7Store + Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Run `work` in one transaction; commit when it returns `Ok`, roll back otherwise.
    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()>;
    /// Make every committed write durable.
    fn sync(&self) -> Result<()>;
    /// [`Store::sync`] without waiting for a write transaction in progress: a writer can commit
    /// its next transaction ([`Durability::Deferred`]) while this makes the earlier ones durable
    /// (the HL7 feed's pipelined group commit).
    fn sync_committed(&self) -> Result<()> {
        self.sync()
    }
    /// The current version, deleted or not.
    fn read(&self, key: &ResourceKey) -> Result<Option<StoredResource>>;
    /// Current non-deleted versions of several resources (order not kept; missing ones skipped).
    fn read_many(&self, keys: &[ResourceKey]) -> Result<Vec<StoredResource>>;
    /// Every version, oldest first.
    fn history(&self, key: &ResourceKey) -> Result<Vec<StoredResource>>;
    /// Versions of every resource (of one type, if given) written at or after `since_ms` and
    /// before `before_ms`, newest first, at most `limit` (type and system history).
    fn history_since(
        &self,
        resource_type: Option<&str>,
        since_ms: Option<i64>,
        before_ms: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StoredResource>>;
    fn find_ids(&self, query: &Query) -> Result<Vec<String>>;
    /// Ids of up to `limit` current resources matching `query` (e.g. every CareTeam that names a
    /// practitioner); [`Store::find_ids`] stops at 3, enough for identity matching.
    fn search_ids(&self, query: &Query, limit: u64) -> Result<Vec<String>> {
        Ok(self
            .search(query, &[], limit)?
            .into_iter()
            .map(|m| m.id)
            .collect())
    }
    /// Up to `limit` current resources matching `query`, unordered, each with its patient key
    /// and its values of `sort`.
    fn search(&self, query: &Query, sort: &[SortKey], limit: u64) -> Result<Vec<SearchMatch>>;
    /// Counts of current, non-deleted resources by type.
    fn counts_by_type(&self) -> Result<BTreeMap<String, u64>>;
    fn search_patients(&self, search: &PatientSearch) -> Result<PatientPage>;
    /// Every current, non-deleted resource in the patient's compartment, the Patient included.
    fn patient_record(&self, patient_id: &str) -> Result<Vec<StoredResource>>;
    /// [`Store::patient_record`], only the resources of `types` (the alert rules read a few
    /// types; the rest of the record is not read at all).
    fn patient_record_of_types(
        &self,
        patient_id: &str,
        types: &[&str],
    ) -> Result<Vec<StoredResource>>;
    /// Benchmark floor: write `(type, id, json)` rows into a scratch table with no index and no
    /// key, in one transaction, with [`Durability::Deferred`] as imports do. Measures what the
    /// database costs at the least.
    fn write_unindexed_rows(&self, rows: &[(String, String, String)]) -> Result<()>;
    /// Drop the benchmark floor's scratch table.
    fn drop_unindexed_rows(&self) -> Result<()>;
}

/// Open the store a URL names, running migrations. A malformed URL is an error, never a silent
/// fallback to some other database.
pub fn open(url: &DatabaseUrl) -> Result<Box<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        DatabaseUrl::Postgres(url) => Ok(Box::new(PgStore::open(url)?)),
    }
}
