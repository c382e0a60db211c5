//! The PostgreSQL backend: the production store.
//!
//! Writes inside a transaction are buffered per table and sent as one `INSERT … SELECT FROM
//! UNNEST(…)` per table, so a bundle of a thousand resources costs a handful of round trips
//! instead of tens of thousands. Any read inside the transaction flushes the buffers first, so
//! reads always see the transaction's own writes.

use std::collections::BTreeMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};
use rapport_fhir::query::Query;

use crate::pool::Pool;
use crate::query_sql::{self, Arg, Sql, STORED_COLUMNS, STORED_JOINS};
use crate::{
    Durability, Existing, NewSource, NewVersion, PatientPage, PatientSearch, ResourceKey, Result,
    SourceInfo, Store, StoreError, StoredResource, WriteTx,
};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/postgres/0001_resources.sql"))];

/// Serialises migrations of concurrent start-ups (pg_advisory_xact_lock key).
const MIGRATION_LOCK: i64 = 0x0052_4150_504f_5254;

pub struct PgStore {
    pool: Pool<Client>,
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

fn bind_args(args: &[Arg]) -> Vec<Box<dyn ToSql + Sync>> {
    args.iter()
        .map(|a| -> Box<dyn ToSql + Sync> {
            match a {
                Arg::Text(s) => Box::new(s.clone()),
                Arg::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

fn query_rows(client: &mut impl postgres::GenericClient, sql: &Sql) -> Result<Vec<Row>> {
    let boxed = bind_args(&sql.args);
    let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
    Ok(client.query(sql.text.as_str(), &refs)?)
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
    }
}

/// Column buffers of pending inserts, one tuple of arrays per table, in the column order of the
/// table's INSERT in [`PgTx::flush`].
#[derive(Default)]
#[allow(clippy::type_complexity)]
struct Buffers {
    versions: VersionCols,
    tokens: (
        Vec<String>,
        Vec<String>,
        Vec<&'static str>,
        Vec<String>,
        Vec<String>,
        Vec<Option<String>>,
    ),
    strings: (
        Vec<String>,
        Vec<String>,
        Vec<&'static str>,
        Vec<String>,
        Vec<Option<String>>,
    ),
    dates: (
        Vec<String>,
        Vec<String>,
        Vec<&'static str>,
        Vec<i64>,
        Vec<i64>,
        Vec<Option<String>>,
    ),
    refs: (
        Vec<String>,
        Vec<String>,
        Vec<&'static str>,
        Vec<String>,
        Vec<String>,
        Vec<Option<String>>,
    ),
    quantities: QuantityCols,
}

#[derive(Default)]
struct VersionCols {
    ty: Vec<String>,
    id: Vec<String>,
    version: Vec<i64>,
    patient_key: Vec<Option<String>>,
    last_updated: Vec<i64>,
    deleted: Vec<bool>,
    hash: Vec<Vec<u8>>,
    content: Vec<String>,
    source_id: Vec<Option<i64>>,
    source_entry: Vec<Option<i64>>,
    sort_key: Vec<Option<String>>,
}

#[derive(Default)]
struct QuantityCols {
    ty: Vec<String>,
    id: Vec<String>,
    param: Vec<&'static str>,
    value: Vec<f64>,
    system: Vec<String>,
    code: Vec<String>,
    unit: Vec<String>,
    patient_key: Vec<Option<String>>,
}

struct PgTx<'c> {
    tx: postgres::Transaction<'c>,
    buf: Buffers,
    pending: usize,
}

impl PgTx<'_> {
    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let b = std::mem::take(&mut self.buf);
        self.pending = 0;
        let tx = &mut self.tx;
        let v = &b.versions;
        if !v.ty.is_empty() {
            tx.execute(
                "INSERT INTO resource_version (resource_type, id, version, patient_key, last_updated, deleted, content_hash, content, source_id, source_entry)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bool[], $7::bytea[], $8::text[], $9::bigint[], $10::bigint[])",
                &[&v.ty, &v.id, &v.version, &v.patient_key, &v.last_updated, &v.deleted, &v.hash, &v.content, &v.source_id, &v.source_entry],
            )?;
            tx.execute(
                "INSERT INTO resource (resource_type, id, patient_key, version, last_updated, deleted, sort_key)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bool[], $7::text[])
                 ON CONFLICT (resource_type, id) DO UPDATE SET patient_key = excluded.patient_key,
                   version = excluded.version, last_updated = excluded.last_updated,
                   deleted = excluded.deleted, sort_key = excluded.sort_key",
                &[&v.ty, &v.id, &v.patient_key, &v.version, &v.last_updated, &v.deleted, &v.sort_key],
            )?;
        }
        let t = &b.tokens;
        if !t.0.is_empty() {
            tx.execute("INSERT INTO idx_token (resource_type, id, param, system, code, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT DO NOTHING",
                &[&t.0, &t.1, &t.2, &t.3, &t.4, &t.5])?;
        }
        let s = &b.strings;
        if !s.0.is_empty() {
            tx.execute("INSERT INTO idx_string (resource_type, id, param, value, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING",
                &[&s.0, &s.1, &s.2, &s.3, &s.4])?;
        }
        let d = &b.dates;
        if !d.0.is_empty() {
            tx.execute("INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) ON CONFLICT DO NOTHING",
                &[&d.0, &d.1, &d.2, &d.3, &d.4, &d.5])?;
        }
        let r = &b.refs;
        if !r.0.is_empty() {
            tx.execute("INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT DO NOTHING",
                &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5])?;
        }
        let q = &b.quantities;
        if !q.ty.is_empty() {
            tx.execute("INSERT INTO idx_quantity (resource_type, id, param, value, system, code, unit, patient_key) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[], $7::text[], $8::text[]) ON CONFLICT DO NOTHING",
                &[&q.ty, &q.id, &q.param, &q.value, &q.system, &q.code, &q.unit, &q.patient_key])?;
        }
        Ok(())
    }
}

impl WriteTx for PgTx<'_> {
    fn existing(&mut self, keys: &[ResourceKey]) -> Result<Vec<Option<Existing>>> {
        self.flush()?;
        let types: Vec<&str> = keys.iter().map(|k| k.resource_type.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let rows = self.tx.query(
            "SELECT k.ord, v.version, v.deleted, v.content_hash
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
            });
            e.current_version = row.get(1);
            e.deleted = row.get(2);
            e.hashes.push(hash.try_into().unwrap_or([0; 32]));
        }
        Ok(out)
    }

    fn find_ids(&mut self, query: &Query) -> Result<Vec<String>> {
        self.flush()?;
        let sql = query_sql::find_ids(query, &PgLayout);
        Ok(query_rows(&mut self.tx, &sql)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn add_source(&mut self, source: &NewSource) -> Result<i64> {
        let row = self.tx.query_one(
            "INSERT INTO source (kind, name, received_at, sha256) VALUES ($1, $2, $3, $4) RETURNING source_id",
            &[&source.kind, &source.name, &source.received_at_ms, &source.sha256],
        )?;
        Ok(row.get(0))
    }

    fn put(&mut self, v: NewVersion) -> Result<()> {
        let (ty, id) = (v.key.resource_type, v.key.id);
        if v.existed {
            // The old rows must go before this version's rows are inserted; flush what is
            // buffered so the order of operations is kept.
            self.flush()?;
            for table in [
                "idx_token",
                "idx_string",
                "idx_date",
                "idx_reference",
                "idx_quantity",
            ] {
                self.tx.execute(
                    &format!("DELETE FROM {table} WHERE resource_type = $1 AND id = $2"),
                    &[&ty, &id],
                )?;
            }
        }
        let b = &mut self.buf;
        let pk = v.patient_key;
        for r in v.index.tokens {
            b.tokens.0.push(ty.clone());
            b.tokens.1.push(id.clone());
            b.tokens.2.push(r.param);
            b.tokens.3.push(r.system);
            b.tokens.4.push(r.code);
            b.tokens.5.push(pk.clone());
        }
        for r in v.index.strings {
            b.strings.0.push(ty.clone());
            b.strings.1.push(id.clone());
            b.strings.2.push(r.param);
            b.strings.3.push(r.value);
            b.strings.4.push(pk.clone());
        }
        for r in v.index.dates {
            b.dates.0.push(ty.clone());
            b.dates.1.push(id.clone());
            b.dates.2.push(r.param);
            b.dates.3.push(r.range.start);
            b.dates.4.push(r.range.end);
            b.dates.5.push(pk.clone());
        }
        for r in v.index.references {
            b.refs.0.push(ty.clone());
            b.refs.1.push(id.clone());
            b.refs.2.push(r.param);
            b.refs.3.push(r.target_type);
            b.refs.4.push(r.target_id);
            b.refs.5.push(pk.clone());
        }
        for r in v.index.quantities {
            let q = &mut b.quantities;
            q.ty.push(ty.clone());
            q.id.push(id.clone());
            q.param.push(r.param);
            q.value.push(r.value);
            q.system.push(r.system);
            q.code.push(r.code);
            q.unit.push(r.unit);
            q.patient_key.push(pk.clone());
        }
        let c = &mut b.versions;
        c.ty.push(ty);
        c.id.push(id);
        c.version.push(v.version);
        c.patient_key.push(pk);
        c.last_updated.push(v.last_updated_ms);
        c.deleted.push(v.deleted);
        c.hash.push(v.content_hash.to_vec());
        c.content.push(v.content);
        c.source_id.push(v.source_id);
        c.source_entry.push(v.source_entry);
        c.sort_key.push(v.sort_key);
        self.pending += 1;
        // Bound the memory a huge transaction holds.
        if c.ty.len() >= 2000 {
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
            buf: Buffers::default(),
            pending: 0,
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
        let rows = conn.query(
            &format!(
                "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE r.resource_type = $1 AND r.id = $2"
            ),
            &[&key.resource_type, &key.id],
        )?;
        Ok(rows.first().map(stored_from_row))
    }

    fn read_many(&self, keys: &[ResourceKey]) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let types: Vec<&str> = keys.iter().map(|k| k.resource_type.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let rows = conn.query(
            &format!("SELECT {STORED_COLUMNS} {STORED_JOINS} JOIN UNNEST($1::text[], $2::text[]) AS k(ty, id) ON r.resource_type = k.ty AND r.id = k.id WHERE NOT r.deleted"),
            &[&types, &ids],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn history(&self, key: &ResourceKey) -> Result<Vec<StoredResource>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(
            "SELECT v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry
             FROM resource_version v LEFT JOIN source s ON s.source_id = v.source_id
             WHERE v.resource_type = $1 AND v.id = $2 ORDER BY v.version",
            &[&key.resource_type, &key.id],
        )?;
        Ok(rows.iter().map(stored_from_row).collect())
    }

    fn find_ids(&self, query: &Query) -> Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let sql = query_sql::find_ids(query, &PgLayout);
        Ok(query_rows(&mut *conn, &sql)?
            .iter()
            .map(|r| r.get(0))
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
        let total: i64 = query_rows(&mut *conn, &count_sql)?[0].get(0);
        let limit = sql.bind(Arg::Int(search.limit as i64));
        let offset = sql.bind(Arg::Int(search.offset as i64));
        sql.text = format!(
            "SELECT {STORED_COLUMNS} {STORED_JOINS} WHERE {filter} ORDER BY r.sort_key, r.id LIMIT {limit} OFFSET {offset}"
        );
        let patients = query_rows(&mut *conn, &sql)?
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
