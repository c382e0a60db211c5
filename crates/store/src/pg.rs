//! The PostgreSQL backend: the production store.
//!
//! Writes inside a transaction are buffered per table and sent as one `INSERT … SELECT FROM
//! UNNEST(…)` per table, so a bundle of a thousand resources costs a handful of round trips
//! instead of tens of thousands. Any read inside the transaction flushes the buffers first, so
//! reads always see the transaction's own writes.

use std::collections::{BTreeMap, HashMap};

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row, Statement};
use rapport_fhir::index::IndexRows;
use rapport_fhir::query::Query;

use crate::pending::Pending;
use crate::pool::Pool;
use crate::query_sql::{self, Arg, Sql, STORED_COLUMNS, STORED_JOINS};
use crate::{
    Durability, Existing, NewSource, NewVersion, PatientPage, PatientSearch, ResourceKey, Result,
    SourceInfo, Store, StoreError, StoredResource, WriteTx,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_resources.sql")),
    (
        2,
        include_str!("migrations/postgres/0002_accounts_audit.sql"),
    ),
    (
        3,
        include_str!("migrations/postgres/0003_index_without_foreign_keys.sql"),
    ),
    (4, include_str!("migrations/postgres/0004_audit_head.sql")),
    (
        5,
        include_str!("migrations/postgres/0005_history_by_time.sql"),
    ),
    (6, include_str!("migrations/postgres/0006_oauth.sql")),
    (7, include_str!("migrations/postgres/0007_bulk_export.sql")),
    (8, include_str!("migrations/postgres/0008_dates_by_row.sql")),
    (9, include_str!("migrations/postgres/0009_hl7_messages.sql")),
    (10, include_str!("migrations/postgres/0010_alerts.sql")),
    (
        11,
        include_str!("migrations/postgres/0011_patient_rows.sql"),
    ),
];

/// Serialises migrations of concurrent start-ups (pg_advisory_xact_lock key).
const MIGRATION_LOCK: i64 = 0x0052_4150_504f_5254;

pub struct PgStore {
    pub(crate) pool: Pool<Client>,
}

impl PgStore {
    pub fn open(url: &str) -> Result<Self> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::InvalidUrl(format!("{e}")))?;
        let mut client = config.connect(NoTls)?;
        migrate(&mut client)?;
        let pool = Pool::new(
            16,
            Box::new(move || Ok(config.connect(NoTls)?)),
            Client::is_closed,
        );
        drop(client);
        Ok(PgStore { pool })
    }
}

impl Drop for PgStore {
    /// The blocking client closes its connection by running a small async runtime, which panics
    /// inside another runtime (a store dropped at the end of an async `main` or test). Close the
    /// connections on a thread of their own instead.
    fn drop(&mut self) {
        let idle = self.pool.take_idle();
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// PostgreSQL index tables carry the resource type, parameter code and id in every row.
struct PgLayout;

impl query_sql::IndexLayout for PgLayout {
    fn sign(&self) -> char {
        '$'
    }
    fn select_ids(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String {
        let t = sql.text_arg(resource_type);
        let p = sql.text_arg(code);
        format!("SELECT id FROM {table} WHERE resource_type = {t} AND param = {p} AND {condition}")
    }
}

impl query_sql::SearchLayout for PgLayout {
    fn select_keys(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String {
        let t = sql.text_arg(resource_type);
        let p = sql.text_arg(code);
        format!("SELECT t.id FROM {table} t WHERE t.resource_type = {t} AND t.param = {p} AND {condition}")
    }
    fn select_resource_keys(&self, sql: &mut Sql, resource_type: &str, condition: &str) -> String {
        let t = sql.text_arg(resource_type);
        format!("SELECT id FROM resource WHERE resource_type = {t} AND NOT deleted AND {condition}")
    }
    fn has_row(
        &self,
        sql: &mut Sql,
        table: &str,
        _resource_type: &str,
        code: &str,
        condition: &str,
        _point: bool,
        _row: &str,
    ) -> String {
        // Index tables are keyed by resource first: a candidate's rows are one lookup away, and
        // the planner orders the semi-joins itself (all conditions are on the outer row).
        let p = sql.text_arg(code);
        format!("EXISTS (SELECT 1 FROM {table} t WHERE t.resource_type = o.resource_type AND t.id = o.id AND t.param = {p} AND {condition})")
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
        let t = sql.text_arg(resource_type);
        let columns = query_sql::match_columns(extra_columns);
        let mut text = format!(
            "SELECT {columns} FROM resource o WHERE o.resource_type = {t} AND NOT o.deleted"
        );
        if let Some(d) = driver {
            text.push_str(&format!(" AND o.id IN ({d})"));
        }
        for c in key_conditions.iter().chain(row_conditions) {
            text.push_str(" AND ");
            text.push_str(c);
        }
        text
    }
    fn date_aggregate(
        &self,
        sql: &mut Sql,
        _resource_type: &str,
        code: &str,
        aggregate: &str,
    ) -> String {
        let p = sql.text_arg(code);
        format!("(SELECT {aggregate} FROM idx_date t WHERE t.resource_type = o.resource_type AND t.id = o.id AND t.param = {p})")
    }
}

fn bind_args(args: &[Arg]) -> Vec<Box<dyn ToSql + Sync>> {
    args.iter()
        .map(|a| -> Box<dyn ToSql + Sync> {
            match a {
                Arg::Text(s) => Box::new(s.clone()),
                Arg::Int(i) => Box::new(*i),
                Arg::Real(r) => Box::new(*r),
            }
        })
        .collect()
}

/// Run a generated query in one round trip: its arguments carry their types, so the statement
/// is parsed, bound and executed in one message exchange (`query_typed`) instead of a prepare
/// round trip followed by an execute round trip. On loopback a round trip is ~0.08 ms, which is
/// most of what a search or an authorisation check costs.
fn query_rows(client: &mut postgres::Client, sql: &Sql) -> Result<Vec<Row>> {
    let params: Vec<(&(dyn ToSql + Sync), Type)> = sql
        .args
        .iter()
        .map(|a| -> (&(dyn ToSql + Sync), Type) {
            match a {
                Arg::Text(s) => (s, Type::TEXT),
                Arg::Int(i) => (i, Type::INT8),
                Arg::Real(r) => (r, Type::FLOAT8),
            }
        })
        .collect();
    Ok(client.query_typed(sql.text.as_str(), &params)?)
}

fn stored_from_row(r: &Row) -> StoredResource {
    let kind: Option<String> = r.get(6);
    StoredResource {
        key: ResourceKey::new(r.get::<_, String>(0), r.get::<_, String>(1)),
        version: r.get(2),
        last_updated_ms: r.get(3),
        deleted: r.get(4),
        content: r.get(5),
        source: kind.map(|kind| SourceInfo {
            kind,
            name: r.get(7),
            received_at_ms: r.get(8),
            entry: r.get(9),
        }),
        patient_key: r.get(10),
    }
}

/// A write transaction. Versions are buffered (see [`Pending`]) and sent in batches, one
/// `INSERT … SELECT FROM UNNEST(…)` per table; reads inside the transaction combine the database
/// with the buffer, so they cost one round trip and never force the buffer out. Statements are
/// prepared once per transaction.
pub(crate) struct PgTx<'c> {
    pub(crate) tx: postgres::Transaction<'c>,
    pending: Pending,
    /// Resources whose stored index rows must go before the buffer's rows are inserted.
    stale: Vec<(String, String)>,
    statements: HashMap<String, Statement>,
}

/// Versions buffered before they are sent.
const MAX_PENDING_VERSIONS: usize = 2_000;

impl PgTx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.statement(sql)?;
        Ok(self.tx.execute(&s, params)?)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.tx.query(&s, params)?)
    }

    fn find_stored(&mut self, query: &Query) -> Result<Vec<String>> {
        let sql = query_sql::find_ids(query, &PgLayout);
        let boxed = bind_args(&sql.args);
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        Ok(self
            .query(&sql.text, &refs)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let stale = std::mem::take(&mut self.stale);
        // Their alert rules are evaluated again once this commits (alert_dirty).
        let patients: Vec<&str> = pending.patients().into_iter().collect();
        crate::pg_alerts::mark_dirty(&mut self.tx, &patients)?;
        if !stale.is_empty() {
            let (types, ids): (Vec<&str>, Vec<&str>) =
                stale.iter().map(|(t, i)| (t.as_str(), i.as_str())).unzip();
            let mut sql = String::from("WITH ");
            for (n, table) in INDEX_TABLES.iter().enumerate() {
                sql.push_str(&format!(
                    "d{n} AS (DELETE FROM {table} t USING UNNEST($1::text[], $2::text[]) AS k(ty, id) WHERE t.resource_type = k.ty AND t.id = k.id), "
                ));
            }
            sql.push_str("done AS (SELECT 1) SELECT 1 FROM done");
            self.query(&sql, &[&types, &ids])?;
        }
        let mut v = VersionCols::default();
        for (_, x) in &pending.versions {
            v.ty.push(x.key.resource_type.as_str());
            v.id.push(x.key.id.as_str());
            v.version.push(x.version);
            v.patient_key.push(x.patient_key.as_deref());
            v.last_updated.push(x.last_updated_ms);
            v.deleted.push(x.deleted);
            v.hash.push(&x.content_hash[..]);
            v.content.push(x.content.as_str());
            v.source_id.push(x.source_id);
            v.source_entry.push(x.source_entry);
        }
        self.execute(
            "INSERT INTO resource_version (resource_type, id, version, patient_key, last_updated, deleted, content_hash, content, source_id, source_entry)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bool[], $7::bytea[], $8::text[], $9::bigint[], $10::bigint[])",
            &[&v.ty, &v.id, &v.version, &v.patient_key, &v.last_updated, &v.deleted, &v.hash, &v.content, &v.source_id, &v.source_entry],
        )?;
        // One row per resource: its current version.
        let current = pending.current();
        let mut r = VersionCols::default();
        let mut sort_key: Vec<Option<&str>> = Vec::new();
        let mut idx = IndexCols::default();
        for (_, x) in &current {
            let (ty, id, pk) = (
                x.key.resource_type.as_str(),
                x.key.id.as_str(),
                x.patient_key.as_deref(),
            );
            r.ty.push(ty);
            r.id.push(id);
            r.patient_key.push(pk);
            r.version.push(x.version);
            r.last_updated.push(x.last_updated_ms);
            r.deleted.push(x.deleted);
            sort_key.push(x.sort_key.as_deref());
            idx.add(ty, id, pk, &x.index);
        }
        self.execute(
            "INSERT INTO resource (resource_type, id, patient_key, version, last_updated, deleted, sort_key)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bool[], $7::text[])
             ON CONFLICT (resource_type, id) DO UPDATE SET patient_key = excluded.patient_key,
               version = excluded.version, last_updated = excluded.last_updated,
               deleted = excluded.deleted, sort_key = excluded.sort_key",
            &[&r.ty, &r.id, &r.patient_key, &r.version, &r.last_updated, &r.deleted, &sort_key],
        )?;
        // Plain inserts (no ON CONFLICT, which costs a speculative insertion per row): a
        // version's rows are distinct (index::extract removes repeats), only the current version
        // of a resource is inserted, and its stored rows were deleted above.
        let t = &idx.tokens;
        if !t.0.is_empty() {
            self.execute("INSERT INTO idx_token (resource_type, id, param, system, code, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
                &[&t.0, &t.1, &t.2, &t.3, &t.4, &t.5])?;
        }
        let s = &idx.strings;
        if !s.0.is_empty() {
            self.execute("INSERT INTO idx_string (resource_type, id, param, value, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])",
                &[&s.0, &s.1, &s.2, &s.3, &s.4])?;
        }
        let d = &idx.dates;
        if !d.0.is_empty() {
            self.execute("INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])",
                &[&d.0, &d.1, &d.2, &d.3, &d.4, &d.5])?;
        }
        let r = &idx.refs;
        if !r.0.is_empty() {
            self.execute("INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
                &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5])?;
        }
        let q = &idx.quantities;
        if !q.0.is_empty() {
            self.execute("INSERT INTO idx_quantity (resource_type, id, param, value, system, code, unit, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[], $7::text[], $8::text[])",
                &[&q.0, &q.1, &q.2, &q.3, &q.4, &q.5, &q.6, &q.7])?;
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

/// Columns of `resource_version` (and of `resource`, which uses some of them).
#[derive(Default)]
struct VersionCols<'a> {
    ty: Vec<&'a str>,
    id: Vec<&'a str>,
    version: Vec<i64>,
    patient_key: Vec<Option<&'a str>>,
    last_updated: Vec<i64>,
    deleted: Vec<bool>,
    hash: Vec<&'a [u8]>,
    content: Vec<&'a str>,
    source_id: Vec<Option<i64>>,
    source_entry: Vec<Option<i64>>,
}

type Col<'a> = Vec<&'a str>;
type PkCol<'a> = Vec<Option<&'a str>>;

/// Columns of the index tables, in the column order of their INSERTs in [`PgTx::flush`].
#[derive(Default)]
struct IndexCols<'a> {
    tokens: (Col<'a>, Col<'a>, Col<'a>, Col<'a>, Col<'a>, PkCol<'a>),
    strings: (Col<'a>, Col<'a>, Col<'a>, Col<'a>, PkCol<'a>),
    dates: (Col<'a>, Col<'a>, Col<'a>, Vec<i64>, Vec<i64>, PkCol<'a>),
    refs: (Col<'a>, Col<'a>, Col<'a>, Col<'a>, Col<'a>, PkCol<'a>),
    #[allow(clippy::type_complexity)]
    quantities: (
        Col<'a>,
        Col<'a>,
        Col<'a>,
        Vec<f64>,
        Col<'a>,
        Col<'a>,
        Col<'a>,
        PkCol<'a>,
    ),
}

impl<'a> IndexCols<'a> {
    fn add(&mut self, ty: &'a str, id: &'a str, pk: Option<&'a str>, rows: &'a IndexRows) {
        for r in &rows.tokens {
            let t = &mut self.tokens;
            t.0.push(ty);
            t.1.push(id);
            t.2.push(r.param);
            t.3.push(&r.system);
            t.4.push(&r.code);
            t.5.push(pk);
        }
        for r in &rows.strings {
            let s = &mut self.strings;
            s.0.push(ty);
            s.1.push(id);
            s.2.push(r.param);
            s.3.push(&r.value);
            s.4.push(pk);
        }
        for r in &rows.dates {
            let d = &mut self.dates;
            d.0.push(ty);
            d.1.push(id);
            d.2.push(r.param);
            d.3.push(r.range.start);
            d.4.push(r.range.end);
            d.5.push(pk);
        }
        for r in &rows.references {
            let x = &mut self.refs;
            x.0.push(ty);
            x.1.push(id);
            x.2.push(r.param);
            x.3.push(&r.target_type);
            x.4.push(&r.target_id);
            x.5.push(pk);
        }
        for r in &rows.quantities {
            let q = &mut self.quantities;
            q.0.push(ty);
            q.1.push(id);
            q.2.push(r.param);
            q.3.push(r.value);
            q.4.push(&r.system);
            q.5.push(&r.code);
            q.6.push(&r.unit);
            q.7.push(pk);
        }
    }
}

impl WriteTx for PgTx<'_> {
    fn existing(&mut self, keys: &[ResourceKey]) -> Result<Vec<Option<Existing>>> {
        let types: Vec<&str> = keys.iter().map(|k| k.resource_type.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        // Lock the stored resources about to change until this transaction ends, in a fixed
        // order: a concurrent writer of the same resource waits here, and the versions read
        // next (a new statement, so a new snapshot under READ COMMITTED) include what it
        // committed. Two updates over the same version so give one success and one version
        // conflict (412), not a unique violation. SQLite needs none of this: it has one writer.
        self.query(
            "SELECT 1 FROM resource r
             JOIN UNNEST($1::text[], $2::text[]) AS k(ty, id) ON r.resource_type = k.ty AND r.id = k.id
             ORDER BY r.resource_type, r.id
             FOR UPDATE OF r",
            &[&types, &ids],
        )?;
        let rows = self.query(
            "SELECT k.ord, v.version, v.deleted, v.content_hash, v.patient_key
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(ty, id, ord)
             JOIN resource_version v ON v.resource_type = k.ty AND v.id = k.id
             ORDER BY k.ord, v.version",
            &[&types, &ids],
        )?;
        let mut out: Vec<Option<Existing>> = vec![None; keys.len()];
        for row in rows {
            let ord: i64 = row.get(0);
            let hash: Vec<u8> = row.get(3);
            let e = out[(ord - 1) as usize].get_or_insert(Existing {
                current_version: 0,
                deleted: false,
                hashes: Vec::new(),
                patient_key: None,
            });
            e.current_version = row.get(1);
            e.deleted = row.get(2);
            e.hashes.push(hash.try_into().unwrap_or([0; 32]));
            e.patient_key = row.get(4);
        }
        // Buffered versions are newer than any stored one.
        for (key, e) in keys.iter().zip(out.iter_mut()) {
            self.pending.add_to_existing(key, e);
        }
        Ok(out)
    }

    fn find_ids(&mut self, query: &Query) -> Result<Vec<String>> {
        let stored = self.find_stored(query)?;
        match self.pending.merge_found(query, stored) {
            Some(ids) => Ok(ids),
            None => {
                // Rare: a resource written twice in one transaction, then searched.
                self.flush()?;
                self.find_stored(query)
            }
        }
    }

    fn add_source(&mut self, source: &NewSource) -> Result<i64> {
        let rows = self.query(
            "INSERT INTO source (kind, name, received_at, sha256) VALUES ($1, $2, $3, $4) RETURNING source_id",
            &[&source.kind, &source.name, &source.received_at_ms, &source.sha256],
        )?;
        Ok(rows[0].get(0))
    }

    fn put(&mut self, v: NewVersion) -> Result<()> {
        // A resource first written in this buffer with `existed` has rows in the database, from
        // before the buffer; they go when the buffer is sent, before its rows are inserted.
        if v.existed && !self.pending.contains(&v.key) {
            self.stale
                .push((v.key.resource_type.clone(), v.key.id.clone()));
        }
        self.pending.push(0, v);
        if self.pending.len() >= MAX_PENDING_VERSIONS {
            self.flush()?;
        }
        Ok(())
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        if durability == Durability::Deferred {
            // The commit returns before its WAL is flushed; the WAL writer flushes it within
            // moments, and sync() or any synchronous commit flushes everything before it.
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        }
        let mut wtx = PgTx {
            tx,
            pending: Pending::default(),
            stale: Vec::new(),
            statements: HashMap::new(),
        };
        // On error the transaction is dropped, which rolls it back.
        work(&mut wtx)?;
        wtx.flush()?;
        wtx.tx.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let mut conn = self.pool.get()?;
        // A synchronous commit that writes a commit record flushes the WAL up to it, including
        // every earlier asynchronous commit.
        let mut tx = conn.transaction()?;
        tx.batch_execute("SELECT txid_current()")?;
        tx.commit()?;
        Ok(())
    }

    fn read(&self, key: &ResourceKey) -> Result<Option<StoredResource>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query_typed(
            &format!(
                "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.resource_type = $1 AND r.id = $2"
            ),
            &[(&key.resource_type, Type::TEXT), (&key.id, Type::TEXT)],
        )?;
        Ok(rows.first().map(stored_from_row))
    }

    fn read_many(&self, keys: &[ResourceKey]) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let types: Vec<&str> = keys.iter().map(|k| k.resource_type.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let rows = conn.query_typed(
            &format!("SELECT {STORED_COLUMNS} {STORED_JOINS} JOIN UNNEST($1::text[], $2::text[]) AS k(ty, id) ON r.resource_type = k.ty AND r.id = k.id WHERE NOT r.deleted"),
            &[(&types, Type::TEXT_ARRAY), (&ids, Type::TEXT_ARRAY)],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn history(&self, key: &ResourceKey) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query_typed(
            "SELECT v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry, v.patient_key
             FROM resource_version v LEFT JOIN source s ON s.source_id = v.source_id
             WHERE v.resource_type = $1 AND v.id = $2 ORDER BY v.version",
            &[(&key.resource_type, Type::TEXT), (&key.id, Type::TEXT)],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn history_since(
        &self,
        resource_type: Option<&str>,
        since_ms: Option<i64>,
        before_ms: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let since = since_ms.unwrap_or(i64::MIN);
        let before = before_ms.unwrap_or(i64::MAX);
        let limit = limit as i64;
        let rows = conn.query_typed(
            "SELECT v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry, v.patient_key
             FROM resource_version v LEFT JOIN source s ON s.source_id = v.source_id
             WHERE ($1::text IS NULL OR v.resource_type = $1) AND v.last_updated >= $2 AND v.last_updated < $4
             ORDER BY v.last_updated DESC, v.resource_type DESC, v.id DESC, v.version DESC LIMIT $3",
            &[
                (&resource_type, Type::TEXT),
                (&since, Type::INT8),
                (&limit, Type::INT8),
                (&before, Type::INT8),
            ],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn find_ids(&self, query: &Query) -> Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let sql = query_sql::find_ids(query, &PgLayout);
        Ok(query_rows(&mut conn, &sql)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn search(
        &self,
        query: &Query,
        sort: &[crate::SortKey],
        limit: u64,
    ) -> Result<Vec<crate::SearchMatch>> {
        let mut conn = self.pool.get()?;
        let sql = query_sql::search(query, sort, &PgLayout, limit);
        Ok(query_rows(&mut conn, &sql)?
            .iter()
            .map(|r| crate::SearchMatch {
                id: r.get(0),
                patient_key: r.get(1),
                sort: (0..sort.len()).map(|i| r.get(2 + i)).collect(),
            })
            .collect())
    }

    fn counts_by_type(&self) -> Result<BTreeMap<String, u64>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            "SELECT resource_type, COUNT(*) FROM resource WHERE NOT deleted GROUP BY resource_type",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    fn search_patients(&self, search: &PatientSearch) -> Result<PatientPage> {
        let mut conn = self.pool.get()?;
        let mut sql = Sql::new('$');
        let filter = query_sql::patient_filter(search, &mut sql, &PgLayout);
        let mut count_sql = sql.clone();
        count_sql.text = format!("SELECT COUNT(*) FROM resource r WHERE {filter}");
        let total: i64 = query_rows(&mut conn, &count_sql)?[0].get(0);
        let limit = sql.bind(Arg::Int(search.limit as i64));
        let offset = sql.bind(Arg::Int(search.offset as i64));
        sql.text = format!(
            "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE {filter} ORDER BY r.sort_key, r.id LIMIT {limit} OFFSET {offset}"
        );
        let patients = query_rows(&mut conn, &sql)?
            .iter()
            .map(stored_from_row)
            .collect();
        Ok(PatientPage {
            total: total as u64,
            patients,
        })
    }

    fn patient_record(&self, patient_id: &str) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            &format!(
                "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.patient_key = $1 AND NOT r.deleted"
            ),
            &[&patient_id],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn patient_record_of_types(
        &self,
        patient_id: &str,
        types: &[&str],
    ) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            &format!(
                "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.patient_key = $1 AND NOT r.deleted AND r.resource_type = ANY($2)"
            ),
            &[&patient_id, &types],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn write_unindexed_rows(&self, rows: &[(String, String, String)]) -> Result<()> {
        let mut conn = self.pool.get()?;
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (resource_type TEXT, id TEXT, content TEXT)",
        )?;
        let mut tx = conn.transaction()?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        let (mut t, mut i, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for (ty, id, content) in rows {
            t.push(ty.as_str());
            i.push(id.as_str());
            c.push(content.as_str());
        }
        tx.execute(
            "INSERT INTO bench_floor SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
            &[&t, &i, &c],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn drop_unindexed_rows(&self) -> Result<()> {
        let mut conn = self.pool.get()?;
        conn.batch_execute("DROP TABLE IF EXISTS bench_floor")?;
        Ok(())
    }
}
