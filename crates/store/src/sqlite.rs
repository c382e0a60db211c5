//! The SQLite backend: the embedded default, one file in the data directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rapport_fhir::query::Query;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::pending::Pending;
use crate::pool::Pool;
use crate::query_sql::{self, Arg, Sql, STORED_COLUMNS, STORED_JOINS};
use crate::{
    Durability, Existing, NewSource, NewVersion, PatientPage, PatientSearch, ResourceKey, Result,
    SourceInfo, Store, StoreError, StoredResource, WriteTx,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_resources.sql")),
    (2, include_str!("migrations/sqlite/0002_accounts_audit.sql")),
    (
        3,
        include_str!("migrations/sqlite/0003_index_without_foreign_keys.sql"),
    ),
    (4, include_str!("migrations/sqlite/0004_audit_head.sql")),
    (
        5,
        include_str!("migrations/sqlite/0005_history_by_time.sql"),
    ),
    (6, include_str!("migrations/sqlite/0006_oauth.sql")),
    (7, include_str!("migrations/sqlite/0007_bulk_export.sql")),
    (8, include_str!("migrations/sqlite/0008_dates_by_row.sql")),
    (9, include_str!("migrations/sqlite/0009_hl7_messages.sql")),
    (10, include_str!("migrations/sqlite/0010_alerts.sql")),
    (11, include_str!("migrations/sqlite/0011_patient_rows.sql")),
];

/// Numbers of the search parameters (table `search_param`), by resource type and code.
type ParamIds = HashMap<&'static str, HashMap<&'static str, i64>>;

pub struct SqliteStore {
    path: PathBuf,
    params: Arc<ParamIds>,
    /// SQLite allows one writer at a time; a single connection behind a mutex makes that explicit
    /// instead of leaving writers to collide on SQLITE_BUSY.
    pub(crate) writer: Mutex<Connection>,
    pub(crate) readers: Pool<Connection>,
    /// Audit records waiting to be committed by whoever next holds the writer (group commit,
    /// see `append_audit_committed`), each with where to send its sequence number.
    pub(crate) audit_queue: Mutex<Vec<AuditWaiter>>,
}

/// An audit record waiting for its commit, and where its outcome goes.
pub(crate) type AuditWaiter = (
    rapport_access::audit::AuditRecord,
    std::sync::mpsc::Sender<std::result::Result<i64, String>>,
);

/// Pragmas for every connection, each with its reason.
fn configure(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "
        -- Pages of 16 KiB instead of 4 KiB for a new database (an existing one keeps its size):
        -- most resources fit in one page without overflow pages, the index B-trees are shallower,
        -- and a commit writes a quarter as many WAL frames. Imports are 15-20 % faster
        -- (BENCHMARKS.md); a small commit (an audit record) writes larger frames, ~0.1 ms more.
        -- Must come before the first table is created and before WAL mode is set.
        PRAGMA page_size = 16384;
        -- Readers do not block the writer and the writer does not block readers.
        PRAGMA journal_mode = WAL;
        -- Sync the WAL at every commit: a commit that returned is on disk (an HL7 ACK or an
        -- import summary may only claim what survives a power cut).
        PRAGMA synchronous = FULL;
        -- Enforce REFERENCES clauses (resource_version.source_id).
        PRAGMA foreign_keys = ON;
        -- Wait up to 5 s for a lock instead of failing at once (e.g. a checkpoint in progress).
        PRAGMA busy_timeout = 5000;
        -- Page cache of up to 512 MiB (used as needed): the index B-trees of a large import stay
        -- in memory, and so do the pages a large import group dirties until its commit.
        PRAGMA cache_size = -524288;
        -- Read the database file through a memory map (up to 2 GiB, SQLite's own limit):
        -- every commit (an audit record per API read) makes the other connections drop their
        -- page caches, and refilling them from the map costs no read() copy per page. Pages
        -- still in the WAL are read from it as before.
        PRAGMA mmap_size = 2147418112;
        -- Temporary B-trees (sorts, INTERSECT) in memory.
        PRAGMA temp_store = MEMORY;
        -- Checkpoint every 64 MiB of WAL (4096 pages of 16 KiB) rather than every 1000 pages: a
        -- bulk import rewrites the same index pages many times, and each checkpoint copies and
        -- syncs them.
        PRAGMA wal_autocheckpoint = 4096;
        ",
    )?;
    Ok(())
}

impl SqliteStore {
    /// [`Store::write`] on the writer connection, already locked by the caller.
    pub(crate) fn write_on(
        &self,
        conn: &mut Connection,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()> {
        // FULL syncs the WAL at commit; NORMAL leaves it to the next checkpoint or FULL commit.
        // Either way a transaction is atomic and the database consistent.
        conn.execute_batch(match durability {
            Durability::Immediate => "PRAGMA synchronous = FULL",
            Durability::Deferred => "PRAGMA synchronous = NORMAL",
        })?;
        // BEGIN IMMEDIATE takes the write lock now, so reads inside the transaction see a state
        // no other writer can change before the commit.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut wtx = SqliteTx {
            tx,
            params: &self.params,
            pending: Pending::default(),
            next_vrow: None,
        };
        work(&mut wtx)?;
        wtx.flush()?;
        wtx.tx.commit()?;
        Ok(())
    }

    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut writer = Connection::open(path)?;
        restrict_to_owner(path);
        // The writer's statements (searches, batched inserts of each table in eight sizes,
        // insert_batched) outnumber the default cache of 16.
        writer.set_prepared_statement_cache_capacity(256);
        configure(&writer)?;
        migrate(&mut writer)?;
        let params = Arc::new(load_param_ids(&mut writer)?);
        let reader_path = path.to_owned();
        let readers = Pool::new(
            16,
            Box::new(move || {
                let conn = Connection::open_with_flags(
                    &reader_path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // The memory map as on the writer (see `configure`): readers are who gains.
                conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 2147418112;")?;
                Ok(conn)
            }),
            |_| false,
        );
        Ok(SqliteStore {
            path: path.to_owned(),
            params,
            writer: Mutex::new(writer),
            readers,
            audit_queue: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The database holds patient data, password hashes and the audit trail: readable by its owner
/// only. SQLite gives the -wal and -shm files the database file's permissions. (Best effort: a
/// file owned by someone else keeps its mode.)
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(meta) = std::fs::metadata(dir) {
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 && dir.file_name().is_some_and(|n| n != "tmp") {
                    let _ = std::fs::set_permissions(
                        dir,
                        std::fs::Permissions::from_mode(mode & 0o700),
                    );
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Register every search parameter of the generated table (new ones get the next numbers; old
/// ones keep theirs) and load the numbers.
fn load_param_ids(conn: &mut Connection) -> Result<ParamIds> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert =
            tx.prepare("INSERT OR IGNORE INTO search_param (resource_type, code) VALUES (?1, ?2)")?;
        for def in rapport_fhir::search_param::SEARCH_PARAMS {
            insert.execute(params![def.resource_type, def.code])?;
        }
    }
    tx.commit()?;
    let mut ids: ParamIds = HashMap::new();
    let mut stmt = conn.prepare("SELECT resource_type, code, param FROM search_param")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (ty, code): (String, String) = (row.get(0)?, row.get(1)?);
        // Only parameters this build indexes can be looked up; map to the table's &'static strs.
        if let Some(def) = rapport_fhir::search_param::param(&ty, &code) {
            ids.entry(def.resource_type)
                .or_default()
                .insert(def.code, row.get(2)?);
        }
    }
    Ok(ids)
}

/// SQLite index rows hold a parameter number and the version row; the id is joined in.
struct SqliteLayout<'a>(&'a ParamIds);

impl SqliteLayout<'_> {
    /// The placeholder of the number of parameter `code` of `resource_type`, bound in `sql`;
    /// `None` for a parameter this build does not index.
    fn param(&self, sql: &mut Sql, resource_type: &str, code: &str) -> Option<String> {
        let number = self.0.get(resource_type)?.get(code)?;
        Some(sql.bind(Arg::Int(*number)))
    }
}

impl query_sql::IndexLayout for SqliteLayout<'_> {
    fn sign(&self) -> char {
        '?'
    }
    fn select_ids(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String {
        match self.param(sql, resource_type, code) {
            Some(p) => format!("SELECT v.id FROM {table} t JOIN resource_version v ON v.vrow = t.vrow WHERE t.param = {p} AND {condition}"),
            // A parameter this build does not index matches nothing.
            None => "SELECT NULL WHERE 0".to_owned(),
        }
    }
}

impl query_sql::SearchLayout for SqliteLayout<'_> {
    fn select_keys(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String {
        match self.param(sql, resource_type, code) {
            Some(p) => format!("SELECT t.vrow FROM {table} t WHERE t.param = {p} AND {condition}"),
            None => "SELECT NULL WHERE 0".to_owned(),
        }
    }
    fn select_resource_keys(&self, sql: &mut Sql, resource_type: &str, condition: &str) -> String {
        let t = sql.text_arg(resource_type);
        format!(
            "SELECT vrow FROM resource WHERE resource_type = {t} AND deleted = 0 AND {condition}"
        )
    }
    fn has_row(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
        point: bool,
        row: &str,
    ) -> String {
        let Some(p) = self.param(sql, resource_type, code) else {
            return "1 = 0".to_owned();
        };
        if point {
            // One B-tree lookup per candidate (the key is equal up to the version row).
            format!("EXISTS (SELECT 1 FROM {table} t WHERE t.param = {p} AND t.vrow = {row}.vrow AND {condition})")
        } else {
            // The matching rows once, then a probe per candidate.
            format!(
                "{row}.vrow IN (SELECT t.vrow FROM {table} t WHERE t.param = {p} AND {condition})"
            )
        }
    }
    fn frame(
        &self,
        sql: &mut Sql,
        resource_type: &str,
        driver: Option<&str>,
        extra_columns: &[String],
        key_conditions: &[String],
        row_conditions: &[String],
    ) -> String {
        // Index rows belong to current versions only, so a version row found by them is the
        // resource's current one. The keys are filtered before the version rows are read (they
        // hold the content: a page each).
        let driver = match driver {
            Some(d) => d.to_owned(),
            None => self.select_resource_keys(sql, resource_type, "1 = 1"),
        };
        let columns = query_sql::match_columns(extra_columns);
        let mut keys = format!("SELECT k.vrow FROM ({driver}) k");
        for (i, c) in key_conditions.iter().enumerate() {
            keys.push_str(if i == 0 { " WHERE " } else { " AND " });
            keys.push_str(c);
        }
        let mut text = format!(
            "SELECT {columns} FROM resource_version o WHERE o.vrow IN ({keys}) AND o.deleted = 0"
        );
        for c in row_conditions {
            text.push_str(" AND ");
            text.push_str(c);
        }
        text
    }
    fn date_aggregate(
        &self,
        sql: &mut Sql,
        resource_type: &str,
        code: &str,
        aggregate: &str,
    ) -> String {
        match self.param(sql, resource_type, code) {
            Some(p) => format!(
                "(SELECT {aggregate} FROM idx_date t WHERE t.vrow = o.vrow AND t.param = {p})"
            ),
            None => "NULL".to_owned(),
        }
    }
}

/// Tokens searched without a system (`code=8302-2`) become the same code in each system the
/// index holds it in (usually one, found by a few seeks), so that checking a candidate is a
/// lookup of the whole key instead of a read of every row with that code.
fn with_token_systems(conn: &Connection, params: &ParamIds, query: &Query) -> Result<Query> {
    use rapport_fhir::query::Clause;
    // More systems than this for one code: leave the clause as it is.
    const MAX_SYSTEMS: usize = 8;
    fn rewrite(conn: &Connection, params: &ParamIds, ty: &str, clause: &Clause) -> Result<Clause> {
        Ok(match clause {
            Clause::Token {
                param,
                system: None,
                code,
            } => {
                let Some(number) = params.get(ty).and_then(|m| m.get(param)) else {
                    return Ok(clause.clone());
                };
                let mut next = conn.prepare_cached(
                    "SELECT system FROM idx_token WHERE param = ?1 AND code = ?2 AND system > ?3 ORDER BY system LIMIT 1",
                )?;
                // The empty system sorts first and `>` would skip it: look for it on its own.
                let mut systems: Vec<String> = Vec::new();
                let empty: bool = conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM idx_token WHERE param = ?1 AND code = ?2 AND system = '')")?
                    .query_row(params![number, code], |r| r.get(0))?;
                if empty {
                    systems.push(String::new());
                }
                let mut after = String::new();
                while let Some(s) = next
                    .query_row(params![number, code, after], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    if systems.len() == MAX_SYSTEMS {
                        return Ok(clause.clone());
                    }
                    after.clone_from(&s);
                    systems.push(s);
                }
                Clause::Any(
                    systems
                        .into_iter()
                        .map(|s| Clause::Token {
                            param,
                            system: Some(s),
                            code: code.clone(),
                        })
                        .collect(),
                )
            }
            Clause::Any(cs) => Clause::Any(
                cs.iter()
                    .map(|c| rewrite(conn, params, ty, c))
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }
    Ok(Query {
        resource_type: query.resource_type.clone(),
        clauses: query
            .clauses
            .iter()
            .map(|c| rewrite(conn, params, &query.resource_type, c))
            .collect::<Result<_>>()?,
    })
}

fn param_id(params: &ParamIds, resource_type: &str, code: &str) -> Result<i64> {
    params
        .get(resource_type)
        .and_then(|m| m.get(code))
        .copied()
        .ok_or_else(|| StoreError::UnknownParameter(format!("{resource_type}.{code}")))
}

fn to_sql_args(args: &[Arg]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Arg::Real(r) => rusqlite::types::Value::Real(*r),
            Arg::Int(i) => rusqlite::types::Value::Integer(*i),
        })
        .collect()
}

fn find_ids(conn: &Connection, params: &ParamIds, query: &Query) -> Result<Vec<String>> {
    let sql = query_sql::find_ids(query, &SqliteLayout(params));
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let ids = stmt
        .query_map(params_from_iter(to_sql_args(&sql.args)), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

fn stored_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResource> {
    let kind: Option<String> = r.get(6)?;
    Ok(StoredResource {
        key: ResourceKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
        version: r.get(2)?,
        last_updated_ms: r.get(3)?,
        deleted: r.get(4)?,
        content: r.get(5)?,
        source: match kind {
            Some(kind) => Some(SourceInfo {
                kind,
                name: r.get(7)?,
                received_at_ms: r.get(8)?,
                entry: r.get(9)?,
            }),
            None => None,
        },
        patient_key: r.get(10)?,
    })
}

/// A write transaction. Versions, resource rows and index rows are buffered and written when the
/// transaction commits (or earlier, see [`SqliteTx::flush`]): index rows sorted by key, many rows
/// per statement. Sorted inserts touch each B-tree page once per batch instead of once per row,
/// which is most of what a bulk import costs. Reads inside the transaction (`existing`,
/// `find_ids`) combine the database with the buffer, so they see the transaction's own writes.
pub(crate) struct SqliteTx<'c> {
    pub(crate) tx: rusqlite::Transaction<'c>,
    params: &'c ParamIds,
    pending: Pending,
    /// The `vrow` of the next version written (versions are numbered in write order).
    next_vrow: Option<i64>,
}

/// Versions buffered before they are written out. Large enough for sorted batches to pay, small
/// enough that writing them out overlaps with the parsing of the next inputs.
const MAX_PENDING_VERSIONS: usize = 1_000;

impl WriteTx for SqliteTx<'_> {
    fn existing(&mut self, keys: &[ResourceKey]) -> Result<Vec<Option<Existing>>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT version, deleted, content_hash, patient_key FROM resource_version WHERE resource_type = ?1 AND id = ?2 ORDER BY version",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut rows = stmt.query(params![key.resource_type, key.id])?;
            let mut existing: Option<Existing> = None;
            let mut add = |version: i64, deleted: bool, hash: [u8; 32], patient: Option<String>| {
                let e = existing.get_or_insert(Existing {
                    current_version: 0,
                    deleted: false,
                    hashes: Vec::new(),
                    patient_key: None,
                });
                e.current_version = version;
                e.deleted = deleted;
                e.hashes.push(hash);
                e.patient_key = patient;
            };
            while let Some(row) = rows.next()? {
                let hash: Vec<u8> = row.get(2)?;
                add(
                    row.get(0)?,
                    row.get(1)?,
                    hash.try_into().unwrap_or([0; 32]),
                    row.get(3)?,
                );
            }
            // Buffered versions are newer than any written one.
            self.pending.add_to_existing(key, &mut existing);
            out.push(existing);
        }
        Ok(out)
    }

    fn find_ids(&mut self, query: &Query) -> Result<Vec<String>> {
        let stored = find_ids(&self.tx, self.params, query)?;
        match self.pending.merge_found(query, stored) {
            Some(ids) => Ok(ids),
            None => {
                // Rare: a resource written twice in one transaction, then searched.
                self.flush()?;
                find_ids(&self.tx, self.params, query)
            }
        }
    }

    fn add_source(&mut self, source: &NewSource) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO source (kind, name, received_at, sha256) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                source.kind,
                source.name,
                source.received_at_ms,
                source.sha256
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn put(&mut self, v: NewVersion) -> Result<()> {
        let buffered = self.pending.contains(&v.key);
        // The rows of a buffered current version are simply not written; those of a stored one
        // are deleted now.
        if v.existed && !buffered {
            self.delete_index_rows(&v.key.resource_type, &v.key.id)?;
        }
        let vrow = match self.next_vrow {
            Some(n) => n,
            None => self.tx.query_row(
                "SELECT COALESCE(MAX(vrow), 0) + 1 FROM resource_version",
                [],
                |r| r.get(0),
            )?,
        };
        self.next_vrow = Some(vrow + 1);
        self.pending.push(vrow, v);
        if self.pending.len() >= MAX_PENDING_VERSIONS {
            self.flush()?;
        }
        Ok(())
    }

    fn idle(&mut self) -> Result<()> {
        if self.pending.len() >= MIN_IDLE_FLUSH {
            self.flush()?;
        }
        Ok(())
    }
}

/// Versions worth writing out while the importer waits for its next input: time that would be
/// lost otherwise, and what is left for the commit (at the end of an import, when nothing else
/// overlaps with it) gets smaller. Below this the sorted batches get too small to pay.
const MIN_IDLE_FLUSH: usize = 200;

/// Rows per multi-row INSERT statement.
const BATCH_ROWS: usize = 100;

/// Insert `rows` with `insert` (`INSERT … VALUES`, then the value lists, then `tail`) in
/// statements of [`BATCH_ROWS`] rows, `bind` binding one row's `columns` values from the given
/// parameter index.
fn insert_batched<T>(
    conn: &Connection,
    insert: &str,
    tail: &str,
    columns: usize,
    rows: &[T],
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> Result<()> {
    let values = |n: usize| {
        let one = format!("({})", vec!["?"; columns].join(","));
        format!("{insert} {} {tail}", vec![one; n].join(","))
    };
    // Full statements of BATCH_ROWS rows, then the rest in statements of 64, 32, … 1 rows:
    // every size is prepared once per connection and kept in its statement cache, where
    // preparing a statement for each remainder cost a seventh of the writer's time.
    let mut rest = rows;
    while !rest.is_empty() {
        let size = if rest.len() >= BATCH_ROWS {
            BATCH_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let mut stmt = conn.prepare_cached(&values(size))?;
        let (chunk, tail) = rest.split_at(size);
        for (i, row) in chunk.iter().enumerate() {
            bind(&mut stmt, i * columns + 1, row)?;
        }
        stmt.raw_execute()?;
        rest = tail;
    }
    Ok(())
}

impl SqliteTx<'_> {
    /// Write the buffer out: versions in write order, then resource rows and index rows, each
    /// sorted by its table's key.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let tx = &self.tx;
        // Their alert rules are evaluated again once this commits (alert_dirty).
        crate::sqlite_alerts::mark_dirty(tx, pending.patients())?;
        insert_batched(
            tx,
            "INSERT INTO resource_version (vrow, resource_type, id, version, patient_key, last_updated, deleted, content_hash, content, source_id, source_entry) VALUES",
            "",
            11,
            &pending.versions,
            |s, i, (vrow, v)| {
                s.raw_bind_parameter(i, vrow)?;
                s.raw_bind_parameter(i + 1, &v.key.resource_type)?;
                s.raw_bind_parameter(i + 2, &v.key.id)?;
                s.raw_bind_parameter(i + 3, v.version)?;
                s.raw_bind_parameter(i + 4, &v.patient_key)?;
                s.raw_bind_parameter(i + 5, v.last_updated_ms)?;
                s.raw_bind_parameter(i + 6, v.deleted)?;
                s.raw_bind_parameter(i + 7, &v.content_hash[..])?;
                s.raw_bind_parameter(i + 8, &v.content)?;
                s.raw_bind_parameter(i + 9, v.source_id)?;
                s.raw_bind_parameter(i + 10, v.source_entry)
            },
        )?;
        // The current version of each resource, in key order.
        let current = pending.current();
        insert_batched(
            tx,
            "INSERT INTO resource (resource_type, id, patient_key, version, last_updated, deleted, sort_key, vrow, index_rows) VALUES",
            "ON CONFLICT (resource_type, id) DO UPDATE SET patient_key = excluded.patient_key,
               version = excluded.version, last_updated = excluded.last_updated,
               deleted = excluded.deleted, sort_key = excluded.sort_key, vrow = excluded.vrow,
               index_rows = excluded.index_rows",
            9,
            &current,
            |s, i, (vrow, v)| {
                s.raw_bind_parameter(i, &v.key.resource_type)?;
                s.raw_bind_parameter(i + 1, &v.key.id)?;
                s.raw_bind_parameter(i + 2, &v.patient_key)?;
                s.raw_bind_parameter(i + 3, v.version)?;
                s.raw_bind_parameter(i + 4, v.last_updated_ms)?;
                s.raw_bind_parameter(i + 5, v.deleted)?;
                s.raw_bind_parameter(i + 6, &v.sort_key)?;
                s.raw_bind_parameter(i + 7, vrow)?;
                s.raw_bind_parameter(i + 8, v.index.len() as i64)
            },
        )?;
        write_index_rows(tx, self.params, &current)?;
        Ok(())
    }
}

/// Insert the search rows of the current versions `current`, each table's rows sorted by its key.
fn write_index_rows(
    tx: &Connection,
    params: &ParamIds,
    current: &[&(i64, NewVersion)],
) -> Result<()> {
    let mut tokens = Vec::new();
    let mut strings = Vec::new();
    let mut dates = Vec::new();
    let mut references = Vec::new();
    let mut quantities = Vec::new();
    for (vrow, v) in current.iter().map(|c| (c.0, &c.1)) {
        let ty = v.key.resource_type.as_str();
        let p = |code: &str| param_id(params, ty, code);
        let pk = v.patient_key.as_deref();
        let rows = &v.index;
        for r in &rows.tokens {
            tokens.push((p(r.param)?, r.code.as_str(), r.system.as_str(), vrow, pk));
        }
        for r in &rows.strings {
            strings.push((p(r.param)?, r.value.as_str(), vrow, pk));
        }
        for r in &rows.dates {
            dates.push((p(r.param)?, r.range.start, r.range.end, vrow, pk));
        }
        for r in &rows.references {
            references.push((
                r.target_id.as_str(),
                r.target_type.as_str(),
                p(r.param)?,
                vrow,
                pk,
            ));
        }
        for r in &rows.quantities {
            quantities.push((
                p(r.param)?,
                r.code.as_str(),
                r.value,
                r.system.as_str(),
                r.unit.as_str(),
                vrow,
                pk,
            ));
        }
    }
    // Byte order of TEXT is SQLite's default (BINARY) collation, so these sorts follow the keys.
    tokens.sort_unstable();
    strings.sort_unstable();
    dates.sort_unstable();
    references.sort_unstable();
    quantities.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then(a.2.total_cmp(&b.2))
            .then((a.3, a.4, a.5).cmp(&(b.3, b.4, b.5)))
    });
    insert_batched(
        tx,
        "INSERT OR IGNORE INTO idx_token (param, code, system, vrow, patient_key) VALUES",
        "",
        5,
        &tokens,
        |s, i, r| {
            s.raw_bind_parameter(i, r.0)?;
            s.raw_bind_parameter(i + 1, r.1)?;
            s.raw_bind_parameter(i + 2, r.2)?;
            s.raw_bind_parameter(i + 3, r.3)?;
            s.raw_bind_parameter(i + 4, r.4)
        },
    )?;
    insert_batched(
        tx,
        "INSERT OR IGNORE INTO idx_string (param, value, vrow, patient_key) VALUES",
        "",
        4,
        &strings,
        |s, i, r| {
            s.raw_bind_parameter(i, r.0)?;
            s.raw_bind_parameter(i + 1, r.1)?;
            s.raw_bind_parameter(i + 2, r.2)?;
            s.raw_bind_parameter(i + 3, r.3)
        },
    )?;
    insert_batched(
        tx,
        "INSERT OR IGNORE INTO idx_date (param, start_ms, end_ms, vrow, patient_key) VALUES",
        "",
        5,
        &dates,
        |s, i, r| {
            s.raw_bind_parameter(i, r.0)?;
            s.raw_bind_parameter(i + 1, r.1)?;
            s.raw_bind_parameter(i + 2, r.2)?;
            s.raw_bind_parameter(i + 3, r.3)?;
            s.raw_bind_parameter(i + 4, r.4)
        },
    )?;
    insert_batched(
        tx,
        "INSERT OR IGNORE INTO idx_reference (target_id, target_type, param, vrow, patient_key) VALUES",
        "",
        5,
        &references,
        |s, i, r| {
            s.raw_bind_parameter(i, r.0)?;
            s.raw_bind_parameter(i + 1, r.1)?;
            s.raw_bind_parameter(i + 2, r.2)?;
            s.raw_bind_parameter(i + 3, r.3)?;
            s.raw_bind_parameter(i + 4, r.4)
        },
    )?;
    insert_batched(
        tx,
        "INSERT OR IGNORE INTO idx_quantity (param, code, value, system, unit, vrow, patient_key) VALUES",
        "",
        7,
        &quantities,
        |s, i, r| {
            s.raw_bind_parameter(i, r.0)?;
            s.raw_bind_parameter(i + 1, r.1)?;
            s.raw_bind_parameter(i + 2, r.2)?;
            s.raw_bind_parameter(i + 3, r.3)?;
            s.raw_bind_parameter(i + 4, r.4)?;
            s.raw_bind_parameter(i + 5, r.5)?;
            s.raw_bind_parameter(i + 6, r.6)
        },
    )?;
    Ok(())
}

impl SqliteTx<'_> {
    /// Remove the search rows of the current version: recompute them from its content and delete
    /// each by key. If fewer rows go than were written (the extraction rules changed since), scan
    /// for the rest by version row.
    fn delete_index_rows(&self, ty: &str, id: &str) -> Result<()> {
        let tx = &self.tx;
        let (vrow, expected, content, deleted): (i64, i64, String, bool) = tx
            .prepare_cached(
                "SELECT r.vrow, r.index_rows, v.content, v.deleted FROM resource r JOIN resource_version v ON v.vrow = r.vrow
                 WHERE r.resource_type = ?1 AND r.id = ?2",
            )?
            .query_row(params![ty, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        if deleted || expected == 0 {
            return Ok(());
        }
        let old: serde_json::Value = serde_json::from_str(&content).unwrap_or_default();
        let rows = rapport_fhir::index::extract(&old);
        let mut removed = 0;
        let p = |code: &str| param_id(self.params, ty, code);
        for r in &rows.tokens {
            removed += tx.prepare_cached("DELETE FROM idx_token WHERE param = ?1 AND code = ?2 AND system = ?3 AND vrow = ?4")?
                .execute(params![p(r.param)?, r.code, r.system, vrow])?;
        }
        for r in &rows.strings {
            removed += tx
                .prepare_cached(
                    "DELETE FROM idx_string WHERE param = ?1 AND value = ?2 AND vrow = ?3",
                )?
                .execute(params![p(r.param)?, r.value, vrow])?;
        }
        for r in &rows.dates {
            removed += tx.prepare_cached("DELETE FROM idx_date WHERE param = ?1 AND start_ms = ?2 AND end_ms = ?3 AND vrow = ?4")?
                .execute(params![p(r.param)?, r.range.start, r.range.end, vrow])?;
        }
        for r in &rows.references {
            removed += tx.prepare_cached("DELETE FROM idx_reference WHERE target_id = ?1 AND target_type = ?2 AND param = ?3 AND vrow = ?4")?
                .execute(params![r.target_id, r.target_type, p(r.param)?, vrow])?;
        }
        for r in &rows.quantities {
            removed += tx.prepare_cached("DELETE FROM idx_quantity WHERE param = ?1 AND code = ?2 AND value = ?3 AND system = ?4 AND unit = ?5 AND vrow = ?6")?
                .execute(params![p(r.param)?, r.code, r.value, r.system, r.unit, vrow])?;
        }
        if (removed as i64) < expected {
            tracing::warn!(
                resource_type = ty,
                "search rows of an old version did not match its content; scanning to remove them"
            );
            for table in INDEX_TABLES {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE vrow = ?1"))?
                    .execute([vrow])?;
            }
        }
        Ok(())
    }
}

const INDEX_TABLES: [&str; 5] = [
    "idx_token",
    "idx_string",
    "idx_date",
    "idx_reference",
    "idx_quantity",
];

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.writer.lock().expect("writer lock");
        self.write_on(&mut conn, durability, work)
    }

    fn sync(&self) -> Result<()> {
        {
            let conn = self.writer.lock().expect("writer lock");
            conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        self.sync_committed()
    }

    fn sync_committed(&self) -> Result<()> {
        // In WAL mode a committed transaction is durable once the WAL is on disk: that is all a
        // synchronous = FULL commit does. fsync(2) flushes the file, whichever descriptor it is
        // called on; the directory is synced too in case the WAL file is new. (Copying the WAL
        // into the database file is a checkpoint's job, not durability's: SQLite does it every
        // `wal_autocheckpoint` pages and when the last connection closes.)
        let sync = |path: &Path| -> Result<()> {
            match std::fs::File::open(path) {
                Ok(f) => f.sync_all(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
            .map_err(|source| StoreError::Sync {
                path: path.display().to_string(),
                source,
            })
        };
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        sync(Path::new(&wal))?;
        sync(
            self.path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        Ok(())
    }

    fn read(&self, key: &ResourceKey) -> Result<Option<StoredResource>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.resource_type = ?1 AND r.id = ?2"
        ))?;
        Ok(stmt
            .query_row(params![key.resource_type, key.id], stored_from_row)
            .optional()?)
    }

    fn read_many(&self, keys: &[ResourceKey]) -> Result<Vec<StoredResource>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.resource_type = ?1 AND r.id = ?2 AND r.deleted = 0"
        ))?;
        let mut out = Vec::new();
        for key in keys {
            if let Some(r) = stmt
                .query_row(params![key.resource_type, key.id], stored_from_row)
                .optional()?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn history(&self, key: &ResourceKey) -> Result<Vec<StoredResource>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(
            "SELECT v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry, v.patient_key
             FROM resource_version v LEFT JOIN source s ON s.source_id = v.source_id
             WHERE v.resource_type = ?1 AND v.id = ?2 ORDER BY v.version",
        )?;
        let rows = stmt
            .query_map(params![key.resource_type, key.id], stored_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn history_since(
        &self,
        resource_type: Option<&str>,
        since_ms: Option<i64>,
        before_ms: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StoredResource>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(
            "SELECT v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry, v.patient_key
             FROM resource_version v LEFT JOIN source s ON s.source_id = v.source_id
             WHERE (?1 IS NULL OR v.resource_type = ?1) AND v.last_updated >= ?2 AND v.last_updated < ?4
             ORDER BY v.last_updated DESC, v.vrow DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(
                params![
                    resource_type,
                    since_ms.unwrap_or(i64::MIN),
                    limit as i64,
                    before_ms.unwrap_or(i64::MAX)
                ],
                stored_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn find_ids(&self, query: &Query) -> Result<Vec<String>> {
        let conn = self.readers.get()?;
        find_ids(&conn, &self.params, query)
    }

    fn search(
        &self,
        query: &Query,
        sort: &[crate::SortKey],
        limit: u64,
    ) -> Result<Vec<crate::SearchMatch>> {
        let conn = self.readers.get()?;
        let query = with_token_systems(&conn, &self.params, query)?;
        let sql = query_sql::search(&query, sort, &SqliteLayout(&self.params), limit);
        let mut stmt = conn.prepare_cached(&sql.text)?;
        let matches = stmt
            .query_map(params_from_iter(to_sql_args(&sql.args)), |r| {
                Ok(crate::SearchMatch {
                    id: r.get(0)?,
                    patient_key: r.get(1)?,
                    sort: (0..sort.len())
                        .map(|i| r.get(2 + i))
                        .collect::<rusqlite::Result<_>>()?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(matches)
    }

    fn counts_by_type(&self) -> Result<BTreeMap<String, u64>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(
            "SELECT resource_type, COUNT(*) FROM resource WHERE deleted = 0 GROUP BY resource_type",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
        Ok(rows)
    }

    fn search_patients(&self, search: &PatientSearch) -> Result<PatientPage> {
        let conn = self.readers.get()?;
        let mut sql = Sql::new('?');
        let filter = query_sql::patient_filter(search, &mut sql, &SqliteLayout(&self.params));
        let total: i64 = conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM resource r WHERE {filter}"))?
            .query_row(params_from_iter(to_sql_args(&sql.args)), |r| r.get(0))?;
        let limit = sql.bind(Arg::Int(search.limit as i64));
        let offset = sql.bind(Arg::Int(search.offset as i64));
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE {filter} ORDER BY r.sort_key, r.id LIMIT {limit} OFFSET {offset}"
        ))?;
        let patients = stmt
            .query_map(params_from_iter(to_sql_args(&sql.args)), stored_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(PatientPage {
            total: total as u64,
            patients,
        })
    }

    fn patient_record(&self, patient_id: &str) -> Result<Vec<StoredResource>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM resource r JOIN resource_version v ON v.vrow = r.vrow \
             LEFT JOIN source s ON s.source_id = v.source_id WHERE r.patient_key = ?1 AND r.deleted = 0"
        ))?;
        let rows = stmt
            .query_map([patient_id], stored_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn patient_record_of_types(
        &self,
        patient_id: &str,
        types: &[&str],
    ) -> Result<Vec<StoredResource>> {
        let conn = self.readers.get()?;
        // The types go in as one JSON array (json_each).
        let types = serde_json::to_string(types).unwrap_or_else(|_| "[]".into());
        // The version by its row (`resource.vrow`), not by its key: one lookup fewer per resource
        // (schema 11 keeps the row in the patient index).
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM resource r JOIN resource_version v ON v.vrow = r.vrow \
             LEFT JOIN source s ON s.source_id = v.source_id \
             WHERE r.patient_key = ?1 AND r.deleted = 0 AND r.resource_type IN (SELECT value FROM json_each(?2))"
        ))?;
        let rows = stmt
            .query_map(rusqlite::params![patient_id, types], stored_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn write_unindexed_rows(&self, rows: &[(String, String, String)]) -> Result<()> {
        let mut conn = self.writer.lock().expect("writer lock");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS bench_floor (resource_type TEXT, id TEXT, content TEXT); PRAGMA synchronous = NORMAL",
        )?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO bench_floor (resource_type, id, content) VALUES (?1, ?2, ?3)",
            )?;
            for (ty, id, content) in rows {
                stmt.execute(params![ty, id, content])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn drop_unindexed_rows(&self) -> Result<()> {
        let conn = self.writer.lock().expect("writer lock");
        conn.execute_batch("DROP TABLE IF EXISTS bench_floor")?;
        Ok(())
    }
}
