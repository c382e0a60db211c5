//! SQLite side of [`AccessStore`] and [`AccessTx`]: accounts, sessions, tokens, relationships,
//! break-the-glass and the audit chain (schema in migrations/sqlite/0002_accounts_audit.sql), and
//! SMART App Launch clients and codes (0006_oauth.sql).

use rapport_access::audit::{self, Actor, AuditAction, AuditRecord, ChainedRecord, Outcome};
use rusqlite::{params, params_from_iter, OptionalExtension, Row};

use crate::access::{
    AccessRows, AccessStore, AccessTx, AuditFilter, BreakGlassRecord, NewUser, OAuthClientRecord,
    OAuthCodeRecord, SessionRecord, TakenCode, TokenRecord, UserRecord,
};
use crate::sqlite::{SqliteStore, SqliteTx};
use crate::{Result, StoreError};

const USER_COLUMNS: &str = "u.user_id, u.email, u.name, u.roles, u.patient_id, u.practitioner_id, u.password_hash, u.disabled, u.failed_sign_ins, u.locked_until, u.created_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        user_id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        roles: r.get(3)?,
        patient_id: r.get(4)?,
        practitioner_id: r.get(5)?,
        password_hash: r.get(6)?,
        disabled: r.get(7)?,
        failed_sign_ins: r.get(8)?,
        locked_until_ms: r.get(9)?,
        created_ms: r.get(10)?,
    })
}

const TOKEN_COLUMNS: &str = "token_id, user_id, scopes, label, created_at, expires_at, revoked_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token_id: r.get(0)?,
        user_id: r.get(1)?,
        scopes: r.get(2)?,
        label: r.get(3)?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        revoked_ms: r.get(6)?,
    })
}

const AUDIT_COLUMNS: &str = "seq, recorded_at, actor_user_id, actor, actor_role, action, outcome, patient_key, entities, source, basis, purpose, flagged, detail, prev_hash, hash";

/// A stored audit row as a chained record.
fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<ChainedRecord> {
    let action: String = r.get(5)?;
    let outcome: String = r.get(6)?;
    let entities: String = r.get(8)?;
    let prev: Vec<u8> = r.get(14)?;
    let hash: Vec<u8> = r.get(15)?;
    let parsed_entities: Option<Vec<String>> = serde_json::from_str(&entities).ok();
    // A value that does not parse can only come from an altered row: give the record a hash
    // that cannot verify, so that `rapport audit verify` reports it.
    let intact = AuditAction::parse(&action).is_some()
        && Outcome::parse(&outcome).is_some()
        && parsed_entities.is_some();
    let hash: [u8; 32] = if intact {
        hash.try_into().unwrap_or([0xff; 32])
    } else {
        [0xff; 32]
    };
    Ok(ChainedRecord {
        seq: r.get(0)?,
        record: AuditRecord {
            recorded_ms: r.get(1)?,
            actor: Actor {
                user_id: r.get(2)?,
                label: r.get(3)?,
                role: r.get(4)?,
            },
            action: AuditAction::parse(&action).unwrap_or(AuditAction::AuditExport),
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
            patient_id: r.get(7)?,
            entities: parsed_entities.unwrap_or_else(|| vec![entities]),
            source: r.get(9)?,
            basis: r.get(10)?,
            purpose: r.get(11)?,
            flagged: r.get(12)?,
            detail: r.get(13)?,
        },
        prev_hash: prev.try_into().unwrap_or([0xff; 32]),
        hash,
    })
}

fn break_glass_from_row(r: &Row<'_>) -> rusqlite::Result<BreakGlassRecord> {
    Ok(BreakGlassRecord {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        user_id: r.get(2)?,
        user_email: r.get(3)?,
        reason: r.get(4)?,
        started_ms: r.get(5)?,
        expires_ms: r.get(6)?,
        reviewed_by: r.get(7)?,
        reviewed_ms: r.get(8)?,
        review_note: r.get(9)?,
    })
}

const CLIENT_COLUMNS: &str = "client_id, name, redirect_uris, secret_hash, created_at, disabled";

fn client_from_row(r: &Row<'_>) -> rusqlite::Result<OAuthClientRecord> {
    let uris: String = r.get(2)?;
    let secret: Option<Vec<u8>> = r.get(3)?;
    Ok(OAuthClientRecord {
        client_id: r.get(0)?,
        name: r.get(1)?,
        // Written by `insert_oauth_client` only; an unreadable list matches no redirect URI.
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        // A hash of the wrong length verifies no secret, and the client stays confidential.
        secret_hash: secret.map(|h| h.try_into().unwrap_or([0xff; 32])),
        created_ms: r.get(4)?,
        disabled: r.get(5)?,
    })
}

const CODE_COLUMNS: &str = "code_hash, client_id, user_id, scopes, redirect_uri, code_challenge, patient_key, expires_at, used_at, token_id";

fn code_from_row(r: &Row<'_>) -> rusqlite::Result<OAuthCodeRecord> {
    let hash: Vec<u8> = r.get(0)?;
    Ok(OAuthCodeRecord {
        code_hash: hash.try_into().unwrap_or([0xff; 32]),
        client_id: r.get(1)?,
        user_id: r.get(2)?,
        scopes: r.get(3)?,
        redirect_uri: r.get(4)?,
        code_challenge: r.get(5)?,
        patient_key: r.get(6)?,
        expires_ms: r.get(7)?,
        used_ms: r.get(8)?,
        token_id: r.get(9)?,
    })
}

fn unique_violation(e: rusqlite::Error, what: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Duplicate(what.to_owned())
        }
        _ => StoreError::Sqlite(e),
    }
}

impl AccessStore for SqliteStore {
    fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM app_user u WHERE u.email = ?1"
        ))?;
        Ok(stmt.query_row([email], user_from_row).optional()?)
    }

    fn user_by_id(&self, user_id: i64) -> Result<Option<UserRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM app_user u WHERE u.user_id = ?1"
        ))?;
        Ok(stmt.query_row([user_id], user_from_row).optional()?)
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM app_user u ORDER BY u.email"
        ))?;
        let rows = stmt
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.created_at, s.last_seen_at, s.revoked_at IS NOT NULL
             FROM user_session s JOIN app_user u ON u.user_id = s.user_id WHERE s.token_hash = ?1"
        ))?;
        Ok(stmt
            .query_row([&token_hash[..]], |r| {
                Ok(SessionRecord {
                    user: user_from_row(r)?,
                    csrf_token: r.get(11)?,
                    created_ms: r.get(12)?,
                    last_seen_ms: r.get(13)?,
                    revoked: r.get(14)?,
                })
            })
            .optional()?)
    }

    fn token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = ?1"
        ))?;
        Ok(stmt
            .query_row([&token_hash[..]], token_from_row)
            .optional()?)
    }

    fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_token WHERE user_id = ?1 ORDER BY token_id"
        ))?;
        let rows = stmt
            .query_map([user_id], token_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn access_rows(&self, user_id: i64, patient: Option<&str>) -> Result<AccessRows> {
        let conn = self.readers.get()?;
        // One patient's rows by the tables' keys (patient first), or all of the account's by
        // their user index. (A single statement with `?2 IS NULL OR patient_key = ?2` cannot use
        // the key, and read every assignment of a coordinator on every request.)
        let (only, args): (&str, Vec<rusqlite::types::Value>) = match patient {
            Some(p) => (
                "AND patient_key = ?2",
                vec![user_id.into(), p.to_owned().into()],
            ),
            None => ("", vec![user_id.into()]),
        };
        let assigned = conn
            .prepare_cached(&format!("SELECT patient_key FROM care_assignment WHERE user_id = ?1 AND ended_at IS NULL {only}"))?
            .query_map(params_from_iter(&args), |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        let grants = conn
            .prepare_cached(&format!("SELECT patient_key, can_write FROM caregiver_grant WHERE user_id = ?1 AND revoked_at IS NULL {only}"))?
            .query_map(params_from_iter(&args), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(String, bool)>>>()?;
        let break_glass = conn
            .prepare_cached(&format!(
                "SELECT patient_key, break_glass_id, expires_at FROM break_glass b
                 WHERE user_id = ?1 {only}
                   AND break_glass_id = (SELECT MAX(break_glass_id) FROM break_glass l WHERE l.user_id = b.user_id AND l.patient_key = b.patient_key)",
            ))?
            .query_map(params_from_iter(&args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<(String, i64, i64)>>>()?;
        Ok(AccessRows {
            assigned,
            grants,
            break_glass,
        })
    }

    fn assigned_to(&self, patient: &str) -> Result<Vec<(i64, String, String)>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached("SELECT u.user_id, u.email, u.name FROM care_assignment a JOIN app_user u ON u.user_id = a.user_id WHERE a.patient_key = ?1 AND a.ended_at IS NULL ORDER BY u.name")?
            .query_map([patient], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn break_glass_list(&self, unreviewed_only: bool, limit: u64) -> Result<Vec<BreakGlassRecord>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(
                "SELECT b.break_glass_id, b.patient_key, b.user_id, u.email, b.reason, b.started_at, b.expires_at, b.reviewed_by, b.reviewed_at, b.review_note
                 FROM break_glass b JOIN app_user u ON u.user_id = b.user_id
                 WHERE (?1 = 0 OR b.reviewed_at IS NULL) ORDER BY b.break_glass_id DESC LIMIT ?2",
            )?
            .query_map(params![unreviewed_only, limit as i64], break_glass_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn audit_page(&self, f: &AuditFilter) -> Result<Vec<ChainedRecord>> {
        let conn = self.readers.get()?;
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_event WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |cond: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        };
        use rusqlite::types::Value as V;
        if let Some(u) = f.actor_user_id {
            add("actor_user_id =", V::Integer(u));
        }
        if let Some(a) = &f.actor {
            add("actor =", V::Text(a.clone()));
        }
        if let Some(p) = &f.patient_id {
            add("patient_key =", V::Text(p.clone()));
        }
        if let Some(a) = &f.action {
            add("action =", V::Text(a.clone()));
        }
        if let Some(o) = &f.outcome {
            add("outcome =", V::Text(o.clone()));
        }
        if f.flagged_only {
            add("flagged =", V::Integer(1));
        }
        if let Some(t) = f.from_ms {
            add("recorded_at >=", V::Integer(t));
        }
        if let Some(t) = f.to_ms {
            add("recorded_at <", V::Integer(t));
        }
        if let Some(s) = f.before_seq {
            add("seq <", V::Integer(s));
        }
        args.push(V::Integer(f.limit as i64));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
        let rows = conn
            .prepare(&sql)?
            .query_map(params_from_iter(args), audit_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn audit_after(&self, after_seq: i64, limit: u64) -> Result<Vec<ChainedRecord>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?
            .query_map(params![after_seq, limit as i64], audit_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn append_audit_committed(&self, record: &AuditRecord) -> Result<i64> {
        // Group commit: a record waits in the queue; whoever holds the writer next commits every
        // waiting record in one transaction, with one fsync, and hands each its sequence number.
        // Under concurrent requests the durable audit write so costs one sync per batch instead
        // of one per request; each record is still committed before its caller goes on.
        let (sender, receiver) = std::sync::mpsc::channel();
        self.audit_queue
            .lock()
            .expect("audit queue lock")
            .push((record.clone(), sender));
        let mut conn = self.writer.lock().expect("writer lock");
        if let Ok(done) = receiver.try_recv() {
            // Committed by the writer before us.
            return done.map_err(StoreError::AuditBatch);
        }
        let batch = std::mem::take(&mut *self.audit_queue.lock().expect("audit queue lock"));
        let mut seqs = Vec::with_capacity(batch.len());
        let result = self.write_on(&mut conn, crate::Durability::Immediate, &mut |tx| {
            seqs.clear();
            for (r, _) in &batch {
                seqs.push(tx.append_audit(r)?);
            }
            Ok(())
        });
        drop(conn);
        match &result {
            Ok(()) => {
                for ((_, to), seq) in batch.iter().zip(&seqs) {
                    let _ = to.send(Ok(*seq));
                }
            }
            Err(e) => {
                for (_, to) in &batch {
                    let _ = to.send(Err(e.to_string()));
                }
            }
        }
        receiver
            .recv()
            .map_err(|_| StoreError::AuditBatch("the audit batch was lost".into()))?
            .map_err(StoreError::AuditBatch)
    }

    fn audit_head(&self) -> Result<(i64, Option<[u8; 32]>)> {
        let conn = self.readers.get()?;
        let (seq, hash): (i64, Option<Vec<u8>>) = conn
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok((seq, hash.map(|h| h.try_into().unwrap_or([0xff; 32]))))
    }

    fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClientRecord>> {
        let conn = self.readers.get()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id = ?1"
        ))?;
        Ok(stmt.query_row([client_id], client_from_row).optional()?)
    }

    fn oauth_clients(&self) -> Result<Vec<OAuthClientRecord>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_client ORDER BY created_at, client_id"
            ))?
            .query_map([], client_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

impl AccessTx for SqliteTx<'_> {
    fn insert_user(&mut self, u: &NewUser) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO app_user (email, name, roles, patient_id, practitioner_id, password_hash, created_at, password_changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?6 IS NULL THEN NULL ELSE ?7 END)",
            )?
            .execute(params![u.email, u.name, u.roles, u.patient_id, u.practitioner_id, u.password_hash, u.created_ms])
            .map_err(|e| unique_violation(e, "an account with this e-mail"))?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_user(&mut self, u: &UserRecord) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE app_user SET name = ?2, roles = ?3, patient_id = ?4, practitioner_id = ?5, disabled = ?6 WHERE user_id = ?1")?
            .execute(params![u.user_id, u.name, u.roles, u.patient_id, u.practitioner_id, u.disabled])?;
        Ok(())
    }

    fn set_password(&mut self, user_id: i64, hash: &str, now_ms: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE app_user SET password_hash = ?2, password_changed_at = ?3, failed_sign_ins = 0, locked_until = NULL WHERE user_id = ?1")?
            .execute(params![user_id, hash, now_ms])?;
        Ok(())
    }

    fn set_sign_in_failures(
        &mut self,
        user_id: i64,
        failures: i64,
        locked_until_ms: Option<i64>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE app_user SET failed_sign_ins = ?2, locked_until = ?3 WHERE user_id = ?1",
            )?
            .execute(params![user_id, failures, locked_until_ms])?;
        Ok(())
    }

    fn insert_session(
        &mut self,
        token_hash: &[u8; 32],
        user_id: i64,
        csrf: &str,
        now_ms: i64,
        source: &str,
    ) -> Result<()> {
        self.tx
            .prepare_cached("INSERT INTO user_session (token_hash, user_id, csrf_token, created_at, last_seen_at, source) VALUES (?1, ?2, ?3, ?4, ?4, ?5)")?
            .execute(params![&token_hash[..], user_id, csrf, now_ms, source])?;
        Ok(())
    }

    fn touch_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE user_session SET last_seen_at = ?2 WHERE token_hash = ?1 AND last_seen_at < ?2")?
            .execute(params![&token_hash[..], now_ms])?;
        Ok(())
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE user_session SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL")?
            .execute(params![&token_hash[..], now_ms])?;
        Ok(())
    }

    fn revoke_sessions_of(&mut self, user_id: i64, now_ms: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE user_session SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![user_id, now_ms])?;
        Ok(())
    }

    fn insert_token(
        &mut self,
        token_hash: &[u8; 32],
        user_id: i64,
        scopes: &str,
        label: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64> {
        self.tx
            .prepare_cached("INSERT INTO api_token (token_hash, user_id, scopes, label, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![&token_hash[..], user_id, scopes, label, now_ms, expires_ms])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn revoke_token(&mut self, token_id: i64, now_ms: i64) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE api_token SET revoked_at = ?2 WHERE token_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![token_id, now_ms])?;
        Ok(n > 0)
    }

    fn set_assignment(
        &mut self,
        user_id: i64,
        patient: &str,
        assigned: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<()> {
        if assigned {
            self.tx
                .prepare_cached(
                    "INSERT INTO care_assignment (patient_key, user_id, assigned_at, assigned_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (patient_key, user_id) DO UPDATE SET assigned_at = excluded.assigned_at, assigned_by = excluded.assigned_by, ended_at = NULL",
                )?
                .execute(params![patient, user_id, now_ms, by])?;
        } else {
            self.tx
                .prepare_cached("UPDATE care_assignment SET ended_at = ?3 WHERE patient_key = ?1 AND user_id = ?2 AND ended_at IS NULL")?
                .execute(params![patient, user_id, now_ms])?;
        }
        Ok(())
    }

    fn set_grant(
        &mut self,
        user_id: i64,
        patient: &str,
        grant: Option<bool>,
        by: &str,
        now_ms: i64,
    ) -> Result<()> {
        match grant {
            Some(can_write) => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO caregiver_grant (patient_key, user_id, can_write, granted_at, granted_by) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (patient_key, user_id) DO UPDATE SET can_write = excluded.can_write, granted_at = excluded.granted_at, granted_by = excluded.granted_by, revoked_at = NULL",
                    )?
                    .execute(params![patient, user_id, can_write, now_ms, by])?;
            }
            None => {
                self.tx
                    .prepare_cached("UPDATE caregiver_grant SET revoked_at = ?3 WHERE patient_key = ?1 AND user_id = ?2 AND revoked_at IS NULL")?
                    .execute(params![patient, user_id, now_ms])?;
            }
        }
        Ok(())
    }

    fn insert_break_glass(
        &mut self,
        user_id: i64,
        patient: &str,
        reason: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64> {
        self.tx
            .prepare_cached("INSERT INTO break_glass (patient_key, user_id, reason, started_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![patient, user_id, reason, now_ms, expires_ms])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn review_break_glass(
        &mut self,
        id: i64,
        reviewer: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached("UPDATE break_glass SET reviewed_by = ?2, reviewed_at = ?3, review_note = ?4 WHERE break_glass_id = ?1 AND reviewed_at IS NULL AND user_id <> ?2")?
            .execute(params![id, reviewer, now_ms, note])?;
        Ok(n > 0)
    }

    fn append_audit(&mut self, r: &AuditRecord) -> Result<i64> {
        // The write transaction holds SQLite's one write lock, so the head read here is the head
        // this record links to.
        let head: (i64, Option<Vec<u8>>) = self
            .tx
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let (seq, prev) = match head {
            (seq, Some(hash)) => (seq + 1, hash.try_into().unwrap_or([0xff; 32])),
            (_, None) => (1, audit::GENESIS),
        };
        let hash = audit::chain_hash(&prev, seq, r);
        let entities = serde_json::to_string(&r.entities).expect("strings serialise");
        self.tx
            .prepare_cached(&format!("INSERT INTO audit_event ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"))?
            .execute(params![
                seq,
                r.recorded_ms,
                r.actor.user_id,
                r.actor.label,
                r.actor.role,
                r.action.as_str(),
                r.outcome.as_str(),
                r.patient_id,
                entities,
                r.source,
                r.basis,
                r.purpose,
                r.flagged,
                r.detail,
                &prev[..],
                &hash[..]
            ])?;
        self.tx
            .prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
            .execute(params![seq, &hash[..]])?;
        Ok(seq)
    }

    fn insert_oauth_client(&mut self, c: &OAuthClientRecord) -> Result<()> {
        let uris = serde_json::to_string(&c.redirect_uris).expect("strings serialise");
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO oauth_client ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                c.client_id,
                c.name,
                uris,
                c.secret_hash.as_ref().map(|h| &h[..]),
                c.created_ms,
                c.disabled
            ])
            .map_err(|e| unique_violation(e, "an app with this client id"))?;
        Ok(())
    }

    fn set_oauth_client_disabled(&mut self, client_id: &str, disabled: bool) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached("UPDATE oauth_client SET disabled = ?2 WHERE client_id = ?1")?
            .execute(params![client_id, disabled])?;
        Ok(n > 0)
    }

    fn oauth_client_tokens(&mut self, client_id: &str) -> Result<Vec<i64>> {
        let rows = self
            .tx
            .prepare_cached("SELECT token_id FROM oauth_code WHERE client_id = ?1 AND token_id IS NOT NULL ORDER BY token_id")?
            .query_map([client_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(rows)
    }

    fn insert_oauth_code(&mut self, c: &OAuthCodeRecord) -> Result<()> {
        // Expired codes are of no use a day later (their tokens, one hour long, have expired
        // too): delete them here rather than in a job of their own.
        self.tx
            .prepare_cached("DELETE FROM oauth_code WHERE expires_at < ?1")?
            .execute([c.expires_ms - 86_400_000])?;
        self.tx
            .prepare_cached(
                "INSERT INTO oauth_code (code_hash, client_id, user_id, scopes, redirect_uri, code_challenge, patient_key, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &c.code_hash[..],
                c.client_id,
                c.user_id,
                c.scopes,
                c.redirect_uri,
                c.code_challenge,
                c.patient_key,
                c.expires_ms
            ])?;
        Ok(())
    }

    fn take_oauth_code(&mut self, code_hash: &[u8; 32], now_ms: i64) -> Result<TakenCode> {
        // The write transaction holds SQLite's one write lock: no other exchange runs between
        // this read and the update.
        let found = self
            .tx
            .prepare_cached(&format!(
                "SELECT {CODE_COLUMNS} FROM oauth_code WHERE code_hash = ?1"
            ))?
            .query_row([&code_hash[..]], code_from_row)
            .optional()?;
        let Some(code) = found else {
            return Ok(TakenCode::Unknown);
        };
        if code.used_ms.is_some() {
            return Ok(TakenCode::AlreadyUsed(code));
        }
        let n = self
            .tx
            .prepare_cached(
                "UPDATE oauth_code SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL",
            )?
            .execute(params![&code_hash[..], now_ms])?;
        Ok(if n == 1 {
            TakenCode::Taken(code)
        } else {
            TakenCode::AlreadyUsed(code)
        })
    }

    fn set_oauth_code_token(&mut self, code_hash: &[u8; 32], token_id: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE oauth_code SET token_id = ?2 WHERE code_hash = ?1")?
            .execute(params![&code_hash[..], token_id])?;
        Ok(())
    }
}
