//! PostgreSQL side of [`AccessStore`] and [`AccessTx`] (schema in
//! migrations/postgres/0002_accounts_audit.sql and 0006_oauth.sql). The twin of
//! sqlite_access.rs.

use postgres::types::{ToSql, Type};
use postgres::Row;
use rapport_access::audit::{self, Actor, AuditAction, AuditRecord, ChainedRecord, Outcome};

use crate::access::{
    AccessRows, AccessStore, AccessTx, AuditFilter, BreakGlassRecord, NewUser, OAuthClientRecord,
    OAuthCodeRecord, SessionRecord, TakenCode, TokenRecord, UserRecord,
};
use crate::pg::{PgStore, PgTx};
use crate::{Result, StoreError};

const USER_COLUMNS: &str = "u.user_id, u.email, u.name, u.roles, u.patient_id, u.practitioner_id, u.password_hash, u.disabled, u.failed_sign_ins, u.locked_until, u.created_at";

fn user_from_row(r: &Row) -> UserRecord {
    UserRecord {
        user_id: r.get(0),
        email: r.get(1),
        name: r.get(2),
        roles: r.get(3),
        patient_id: r.get(4),
        practitioner_id: r.get(5),
        password_hash: r.get(6),
        disabled: r.get(7),
        failed_sign_ins: r.get(8),
        locked_until_ms: r.get(9),
        created_ms: r.get(10),
    }
}

const TOKEN_COLUMNS: &str = "token_id, user_id, scopes, label, created_at, expires_at, revoked_at";

fn token_from_row(r: &Row) -> TokenRecord {
    TokenRecord {
        token_id: r.get(0),
        user_id: r.get(1),
        scopes: r.get(2),
        label: r.get(3),
        created_ms: r.get(4),
        expires_ms: r.get(5),
        revoked_ms: r.get(6),
    }
}

const AUDIT_COLUMNS: &str = "seq, recorded_at, actor_user_id, actor, actor_role, action, outcome, patient_key, entities, source, basis, purpose, flagged, detail, prev_hash, hash";

/// Append one record to the audit chain in one statement (one round trip). The head row is
/// locked first (`FOR UPDATE`: a concurrent appender waits, then sees the head the other one
/// committed, schema 4), and the record's hash is computed here exactly as
/// `rapport_access::audit::chain_hash` does: SHA-256 of the domain prefix, the previous hash, the
/// sequence number as 8 big-endian bytes (`int8send`) and the record's JSON ($14).
/// Alone it is a transaction of its own (autocommit, durable: synchronous_commit is on); inside a
/// write transaction it commits with the action it records.
const APPEND_AUDIT: &str = "WITH head AS (
       SELECT seq + 1 AS seq, COALESCE(hash, '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS prev
       FROM audit_head WHERE id = 1 FOR UPDATE),
     linked AS (
       SELECT seq, prev, sha256($15 || prev || int8send(seq) || $14) AS hash FROM head),
     appended AS (
       INSERT INTO audit_event (seq, recorded_at, actor_user_id, actor, actor_role, action, outcome, patient_key, entities, source, basis, purpose, flagged, detail, prev_hash, hash)
       SELECT seq, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, prev, hash FROM linked
       RETURNING seq, hash)
   UPDATE audit_head SET seq = appended.seq, hash = appended.hash FROM appended WHERE id = 1
   RETURNING appended.seq";

/// The values of [`APPEND_AUDIT`]'s parameters, owned so that they outlive the borrow.
struct AppendValues<'a> {
    r: &'a AuditRecord,
    action: &'static str,
    outcome: &'static str,
    entities: String,
    body: &'a [u8],
}

fn append_params<'a>(r: &'a AuditRecord, body: &'a [u8]) -> AppendValues<'a> {
    AppendValues {
        r,
        action: r.action.as_str(),
        outcome: r.outcome.as_str(),
        entities: serde_json::to_string(&r.entities).expect("strings serialise"),
        body,
    }
}

impl AppendValues<'_> {
    fn as_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        let r = self.r;
        vec![
            (&r.recorded_ms, Type::INT8),
            (&r.actor.user_id, Type::INT8),
            (&r.actor.label, Type::TEXT),
            (&r.actor.role, Type::TEXT),
            (&self.action, Type::TEXT),
            (&self.outcome, Type::TEXT),
            (&r.patient_id, Type::TEXT),
            (&self.entities, Type::TEXT),
            (&r.source, Type::TEXT),
            (&r.basis, Type::TEXT),
            (&r.purpose, Type::TEXT),
            (&r.flagged, Type::BOOL),
            (&r.detail, Type::TEXT),
            (&self.body, Type::BYTEA),
            (&audit::CHAIN_PREFIX, Type::BYTEA),
        ]
    }
}

/// A stored audit row as a chained record; a row whose values do not parse (only possible if it
/// was altered) gets a hash that cannot verify.
fn audit_from_row(r: &Row) -> ChainedRecord {
    let action: String = r.get(5);
    let outcome: String = r.get(6);
    let entities: String = r.get(8);
    let prev: Vec<u8> = r.get(14);
    let hash: Vec<u8> = r.get(15);
    let parsed_entities: Option<Vec<String>> = serde_json::from_str(&entities).ok();
    let intact = AuditAction::parse(&action).is_some()
        && Outcome::parse(&outcome).is_some()
        && parsed_entities.is_some();
    ChainedRecord {
        seq: r.get(0),
        record: AuditRecord {
            recorded_ms: r.get(1),
            actor: Actor {
                user_id: r.get(2),
                label: r.get(3),
                role: r.get(4),
            },
            action: AuditAction::parse(&action).unwrap_or(AuditAction::AuditExport),
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Failed),
            patient_id: r.get(7),
            entities: parsed_entities.unwrap_or_else(|| vec![entities]),
            source: r.get(9),
            basis: r.get(10),
            purpose: r.get(11),
            flagged: r.get(12),
            detail: r.get(13),
        },
        prev_hash: prev.try_into().unwrap_or([0xff; 32]),
        hash: if intact {
            hash.try_into().unwrap_or([0xff; 32])
        } else {
            [0xff; 32]
        },
    }
}

fn break_glass_from_row(r: &Row) -> BreakGlassRecord {
    BreakGlassRecord {
        id: r.get(0),
        patient_id: r.get(1),
        user_id: r.get(2),
        user_email: r.get(3),
        reason: r.get(4),
        started_ms: r.get(5),
        expires_ms: r.get(6),
        reviewed_by: r.get(7),
        reviewed_ms: r.get(8),
        review_note: r.get(9),
    }
}

const CLIENT_COLUMNS: &str = "client_id, name, redirect_uris, secret_hash, created_at, disabled";

fn client_from_row(r: &Row) -> OAuthClientRecord {
    let uris: String = r.get(2);
    let secret: Option<Vec<u8>> = r.get(3);
    OAuthClientRecord {
        client_id: r.get(0),
        name: r.get(1),
        // Written by `insert_oauth_client` only; an unreadable list matches no redirect URI.
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        // A hash of the wrong length verifies no secret, and the client stays confidential.
        secret_hash: secret.map(|h| h.try_into().unwrap_or([0xff; 32])),
        created_ms: r.get(4),
        disabled: r.get(5),
    }
}

const CODE_COLUMNS: &str = "code_hash, client_id, user_id, scopes, redirect_uri, code_challenge, patient_key, expires_at, used_at, token_id";

fn code_from_row(r: &Row) -> OAuthCodeRecord {
    let hash: Vec<u8> = r.get(0);
    OAuthCodeRecord {
        code_hash: hash.try_into().unwrap_or([0xff; 32]),
        client_id: r.get(1),
        user_id: r.get(2),
        scopes: r.get(3),
        redirect_uri: r.get(4),
        code_challenge: r.get(5),
        patient_key: r.get(6),
        expires_ms: r.get(7),
        used_ms: r.get(8),
        token_id: r.get(9),
    }
}

fn unique_violation(e: postgres::Error, what: &str) -> StoreError {
    if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Duplicate(what.to_owned())
    } else {
        StoreError::Postgres(e)
    }
}

impl AccessStore for PgStore {
    fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query_typed_opt(
            &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.email = $1"),
            &[(&email, Type::TEXT)],
        )?
        .map(|r| user_from_row(&r)))
    }

    fn user_by_id(&self, user_id: i64) -> Result<Option<UserRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query_typed_opt(
            &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.user_id = $1"),
            &[(&user_id, Type::INT8)],
        )?
        .map(|r| user_from_row(&r)))
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query(
            &format!("SELECT {USER_COLUMNS} FROM app_user u ORDER BY u.email"),
            &[],
        )?
        .iter()
        .map(user_from_row)
        .collect())
    }

    fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let mut c = self.pool.get()?;
        let hash = &token_hash[..];
        Ok(c.query_typed_opt(
            &format!(
                "SELECT {USER_COLUMNS}, s.csrf_token, s.created_at, s.last_seen_at, s.revoked_at IS NOT NULL
                 FROM user_session s JOIN app_user u ON u.user_id = s.user_id WHERE s.token_hash = $1"
            ),
            &[(&hash, Type::BYTEA)],
        )?
        .map(|r| SessionRecord {
            user: user_from_row(&r),
            csrf_token: r.get(11),
            created_ms: r.get(12),
            last_seen_ms: r.get(13),
            revoked: r.get(14),
        }))
    }

    fn token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let mut c = self.pool.get()?;
        let hash = &token_hash[..];
        Ok(c.query_typed_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = $1"),
            &[(&hash, Type::BYTEA)],
        )?
        .map(|r| token_from_row(&r)))
    }

    fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE user_id = $1 ORDER BY token_id"),
            &[&user_id],
        )?
        .iter()
        .map(token_from_row)
        .collect())
    }

    fn access_rows(&self, user_id: i64, patient: Option<&str>) -> Result<AccessRows> {
        let mut c = self.pool.get()?;
        // One round trip for the three kinds of relationship: this runs on every patient page
        // (typed parameters: no separate prepare round trip).
        let rows = c.query_typed(
            "SELECT 'a', patient_key, NULL::bigint, NULL::bigint, NULL::boolean FROM care_assignment
               WHERE user_id = $1 AND ended_at IS NULL AND ($2::text IS NULL OR patient_key = $2)
             UNION ALL
             SELECT 'g', patient_key, NULL, NULL, can_write FROM caregiver_grant
               WHERE user_id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR patient_key = $2)
             UNION ALL
             (SELECT DISTINCT ON (patient_key) 'b', patient_key, break_glass_id, expires_at, NULL FROM break_glass
               WHERE user_id = $1 AND ($2::text IS NULL OR patient_key = $2)
               ORDER BY patient_key, break_glass_id DESC)",
            &[(&user_id, Type::INT8), (&patient, Type::TEXT)],
        )?;
        let mut out = AccessRows::default();
        for r in rows {
            let kind: &str = r.get(0);
            let patient: String = r.get(1);
            match kind {
                "a" => out.assigned.push(patient),
                "g" => out.grants.push((patient, r.get(4))),
                _ => out.break_glass.push((patient, r.get(2), r.get(3))),
            }
        }
        Ok(out)
    }

    fn assigned_to(&self, patient: &str) -> Result<Vec<(i64, String, String)>> {
        let mut c = self.pool.get()?;
        Ok(c.query("SELECT u.user_id, u.email, u.name FROM care_assignment a JOIN app_user u ON u.user_id = a.user_id WHERE a.patient_key = $1 AND a.ended_at IS NULL ORDER BY u.name", &[&patient])?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn break_glass_list(&self, unreviewed_only: bool, limit: u64) -> Result<Vec<BreakGlassRecord>> {
        let mut c = self.pool.get()?;
        let limit = limit as i64;
        Ok(c.query(
            "SELECT b.break_glass_id, b.patient_key, b.user_id, u.email, b.reason, b.started_at, b.expires_at, b.reviewed_by, b.reviewed_at, b.review_note
             FROM break_glass b JOIN app_user u ON u.user_id = b.user_id
             WHERE (NOT $1 OR b.reviewed_at IS NULL) ORDER BY b.break_glass_id DESC LIMIT $2",
            &[&unreviewed_only, &limit],
        )?
        .iter()
        .map(break_glass_from_row)
        .collect())
    }

    fn audit_page(&self, f: &AuditFilter) -> Result<Vec<ChainedRecord>> {
        let mut c = self.pool.get()?;
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_event WHERE true");
        let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        let mut add = |cond: &str, v: Box<dyn ToSql + Sync>| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(u) = f.actor_user_id {
            add("actor_user_id =", Box::new(u));
        }
        if let Some(a) = &f.actor {
            add("actor =", Box::new(a.clone()));
        }
        if let Some(p) = &f.patient_id {
            add("patient_key =", Box::new(p.clone()));
        }
        if let Some(a) = &f.action {
            add("action =", Box::new(a.clone()));
        }
        if let Some(o) = &f.outcome {
            add("outcome =", Box::new(o.clone()));
        }
        if f.flagged_only {
            add("flagged =", Box::new(true));
        }
        if let Some(t) = f.from_ms {
            add("recorded_at >=", Box::new(t));
        }
        if let Some(t) = f.to_ms {
            add("recorded_at <", Box::new(t));
        }
        if let Some(s) = f.before_seq {
            add("seq <", Box::new(s));
        }
        args.push(Box::new(f.limit as i64));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
        Ok(c.query(sql.as_str(), &refs)?
            .iter()
            .map(audit_from_row)
            .collect())
    }

    fn audit_after(&self, after_seq: i64, limit: u64) -> Result<Vec<ChainedRecord>> {
        let mut c = self.pool.get()?;
        let limit = limit as i64;
        Ok(c.query(
            &format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            &[&after_seq, &limit],
        )?
        .iter()
        .map(audit_from_row)
        .collect())
    }

    fn append_audit_committed(&self, r: &AuditRecord) -> Result<i64> {
        let mut c = self.pool.get()?;
        let body = audit::hashed_body(r);
        let row = c.query_typed_one(APPEND_AUDIT, &append_params(r, &body).as_params())?;
        Ok(row.get(0))
    }

    fn audit_head(&self) -> Result<(i64, Option<[u8; 32]>)> {
        let mut c = self.pool.get()?;
        let row = c.query_typed_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
        let hash: Option<Vec<u8>> = row.get(1);
        Ok((row.get(0), hash.map(|h| h.try_into().unwrap_or([0xff; 32]))))
    }

    fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClientRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query_typed_opt(
            &format!("SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id = $1"),
            &[(&client_id, Type::TEXT)],
        )?
        .map(|r| client_from_row(&r)))
    }

    fn oauth_clients(&self) -> Result<Vec<OAuthClientRecord>> {
        let mut c = self.pool.get()?;
        Ok(c.query_typed(
            &format!("SELECT {CLIENT_COLUMNS} FROM oauth_client ORDER BY created_at, client_id"),
            &[],
        )?
        .iter()
        .map(client_from_row)
        .collect())
    }
}

impl AccessTx for PgTx<'_> {
    fn insert_user(&mut self, u: &NewUser) -> Result<i64> {
        let row = self
            .tx
            .query_one(
                "INSERT INTO app_user (email, name, roles, patient_id, practitioner_id, password_hash, created_at, password_changed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, CASE WHEN $6::text IS NULL THEN NULL::bigint ELSE $7::bigint END) RETURNING user_id",
                &[&u.email, &u.name, &u.roles, &u.patient_id, &u.practitioner_id, &u.password_hash, &u.created_ms],
            )
            .map_err(|e| unique_violation(e, "an account with this e-mail"))?;
        Ok(row.get(0))
    }

    fn update_user(&mut self, u: &UserRecord) -> Result<()> {
        self.tx.execute(
            "UPDATE app_user SET name = $2, roles = $3, patient_id = $4, practitioner_id = $5, disabled = $6 WHERE user_id = $1",
            &[&u.user_id, &u.name, &u.roles, &u.patient_id, &u.practitioner_id, &u.disabled],
        )?;
        Ok(())
    }

    fn set_password(&mut self, user_id: i64, hash: &str, now_ms: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE app_user SET password_hash = $2, password_changed_at = $3, failed_sign_ins = 0, locked_until = NULL WHERE user_id = $1",
            &[&user_id, &hash, &now_ms],
        )?;
        Ok(())
    }

    fn set_sign_in_failures(
        &mut self,
        user_id: i64,
        failures: i64,
        locked_until_ms: Option<i64>,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE app_user SET failed_sign_ins = $2, locked_until = $3 WHERE user_id = $1",
            &[&user_id, &failures, &locked_until_ms],
        )?;
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
        let hash = &token_hash[..];
        self.tx.execute(
            "INSERT INTO user_session (token_hash, user_id, csrf_token, created_at, last_seen_at, source) VALUES ($1, $2, $3, $4, $4, $5)",
            &[&hash, &user_id, &csrf, &now_ms, &source],
        )?;
        Ok(())
    }

    fn touch_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()> {
        let hash = &token_hash[..];
        self.tx.execute(
            "UPDATE user_session SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2",
            &[&hash, &now_ms],
        )?;
        Ok(())
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()> {
        let hash = &token_hash[..];
        self.tx.execute(
            "UPDATE user_session SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&hash, &now_ms],
        )?;
        Ok(())
    }

    fn revoke_sessions_of(&mut self, user_id: i64, now_ms: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE user_session SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user_id, &now_ms],
        )?;
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
        let hash = &token_hash[..];
        let row = self.tx.query_one(
            "INSERT INTO api_token (token_hash, user_id, scopes, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING token_id",
            &[&hash, &user_id, &scopes, &label, &now_ms, &expires_ms],
        )?;
        Ok(row.get(0))
    }

    fn revoke_token(&mut self, token_id: i64, now_ms: i64) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE api_token SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL",
            &[&token_id, &now_ms],
        )?;
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
            self.tx.execute(
                "INSERT INTO care_assignment (patient_key, user_id, assigned_at, assigned_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (patient_key, user_id) DO UPDATE SET assigned_at = excluded.assigned_at, assigned_by = excluded.assigned_by, ended_at = NULL",
                &[&patient, &user_id, &now_ms, &by],
            )?;
        } else {
            self.tx.execute(
                "UPDATE care_assignment SET ended_at = $3 WHERE patient_key = $1 AND user_id = $2 AND ended_at IS NULL",
                &[&patient, &user_id, &now_ms],
            )?;
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
                self.tx.execute(
                    "INSERT INTO caregiver_grant (patient_key, user_id, can_write, granted_at, granted_by) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (patient_key, user_id) DO UPDATE SET can_write = excluded.can_write, granted_at = excluded.granted_at, granted_by = excluded.granted_by, revoked_at = NULL",
                    &[&patient, &user_id, &can_write, &now_ms, &by],
                )?;
            }
            None => {
                self.tx.execute(
                    "UPDATE caregiver_grant SET revoked_at = $3 WHERE patient_key = $1 AND user_id = $2 AND revoked_at IS NULL",
                    &[&patient, &user_id, &now_ms],
                )?;
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
        let row = self.tx.query_one(
            "INSERT INTO break_glass (patient_key, user_id, reason, started_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING break_glass_id",
            &[&patient, &user_id, &reason, &now_ms, &expires_ms],
        )?;
        Ok(row.get(0))
    }

    fn review_break_glass(
        &mut self,
        id: i64,
        reviewer: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE break_glass SET reviewed_by = $2, reviewed_at = $3, review_note = $4 WHERE break_glass_id = $1 AND reviewed_at IS NULL AND user_id <> $2",
            &[&id, &reviewer, &now_ms, &note],
        )?;
        Ok(n > 0)
    }

    fn append_audit(&mut self, r: &AuditRecord) -> Result<i64> {
        let body = audit::hashed_body(r);
        let row = self
            .tx
            .query_typed_one(APPEND_AUDIT, &append_params(r, &body).as_params())?;
        Ok(row.get(0))
    }

    fn insert_oauth_client(&mut self, c: &OAuthClientRecord) -> Result<()> {
        let uris = serde_json::to_string(&c.redirect_uris).expect("strings serialise");
        let secret = c.secret_hash.as_ref().map(|h| &h[..]);
        self.tx
            .execute(
                &format!(
                    "INSERT INTO oauth_client ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &c.client_id,
                    &c.name,
                    &uris,
                    &secret,
                    &c.created_ms,
                    &c.disabled,
                ],
            )
            .map_err(|e| unique_violation(e, "an app with this client id"))?;
        Ok(())
    }

    fn set_oauth_client_disabled(&mut self, client_id: &str, disabled: bool) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE oauth_client SET disabled = $2 WHERE client_id = $1",
            &[&client_id, &disabled],
        )?;
        Ok(n > 0)
    }

    fn oauth_client_tokens(&mut self, client_id: &str) -> Result<Vec<i64>> {
        Ok(self
            .tx
            .query_typed(
                "SELECT token_id FROM oauth_code WHERE client_id = $1 AND token_id IS NOT NULL ORDER BY token_id",
                &[(&client_id, Type::TEXT)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn insert_oauth_code(&mut self, c: &OAuthCodeRecord) -> Result<()> {
        // Expired codes are of no use a day later (their tokens, one hour long, have expired
        // too): delete them here rather than in a job of their own.
        let stale = c.expires_ms - 86_400_000;
        self.tx
            .execute("DELETE FROM oauth_code WHERE expires_at < $1", &[&stale])?;
        let hash = &c.code_hash[..];
        self.tx.execute(
            "INSERT INTO oauth_code (code_hash, client_id, user_id, scopes, redirect_uri, code_challenge, patient_key, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&hash, &c.client_id, &c.user_id, &c.scopes, &c.redirect_uri, &c.code_challenge, &c.patient_key, &c.expires_ms],
        )?;
        Ok(())
    }

    fn take_oauth_code(&mut self, code_hash: &[u8; 32], now_ms: i64) -> Result<TakenCode> {
        let hash = &code_hash[..];
        // `used_at IS NULL` in the UPDATE itself: a concurrent exchange of the same code waits
        // for this one's row lock, then re-checks the condition on the committed row and takes
        // nothing (READ COMMITTED re-evaluation). RETURNING gives the row as it was before
        // (only `used_at` changes, and it was NULL).
        let taken = self.tx.query_typed(
            &format!("UPDATE oauth_code SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL RETURNING {CODE_COLUMNS}"),
            &[(&hash, Type::BYTEA), (&now_ms, Type::INT8)],
        )?;
        if let Some(row) = taken.first() {
            let mut code = code_from_row(row);
            code.used_ms = None;
            return Ok(TakenCode::Taken(code));
        }
        let found = self.tx.query_typed(
            &format!("SELECT {CODE_COLUMNS} FROM oauth_code WHERE code_hash = $1"),
            &[(&hash, Type::BYTEA)],
        )?;
        Ok(match found.first() {
            Some(row) => TakenCode::AlreadyUsed(code_from_row(row)),
            None => TakenCode::Unknown,
        })
    }

    fn set_oauth_code_token(&mut self, code_hash: &[u8; 32], token_id: i64) -> Result<()> {
        let hash = &code_hash[..];
        self.tx.execute(
            "UPDATE oauth_code SET token_id = $2 WHERE code_hash = $1",
            &[&hash, &token_id],
        )?;
        Ok(())
    }
}
