//! Storage of accounts, sessions, tokens, the relationships that grant access, break-the-glass
//! accesses, third-party apps (SMART App Launch clients and their authorization codes) and the
//! audit trail: plain rows, read through [`AccessStore`] and written through
//! [`AccessTx`] inside [`crate::Store::write`], so that an action and its audit record commit
//! together or not at all.

use rapport_access::audit::{AuditRecord, ChainedRecord};

use crate::Result;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
    pub patient_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub failed_sign_ins: i64,
    pub locked_until_ms: Option<i64>,
    pub created_ms: i64,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub roles: String,
    pub patient_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub password_hash: Option<String>,
    pub created_ms: i64,
}

/// A browser session with its account.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: UserRecord,
    pub csrf_token: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked: bool,
}

/// An API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_id: i64,
    pub user_id: i64,
    pub scopes: String,
    pub label: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A break-the-glass access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRecord {
    pub id: i64,
    pub patient_id: String,
    pub user_id: i64,
    pub user_email: String,
    pub reason: String,
    pub started_ms: i64,
    pub expires_ms: i64,
    pub reviewed_by: Option<i64>,
    pub reviewed_ms: Option<i64>,
    pub review_note: Option<String>,
}

/// The relationship rows of one account (optionally for one patient only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRows {
    /// Patients whose panel the account is assigned to (current assignments).
    pub assigned: Vec<String>,
    /// Current caregiver grants: (patient, can_write).
    pub grants: Vec<(String, bool)>,
    /// The latest break-the-glass access per patient: (patient, id, expires_ms).
    pub break_glass: Vec<(String, i64, i64)>,
}

/// A third-party app registered for SMART App Launch (schema 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientRecord {
    pub client_id: String,
    pub name: String,
    /// The exact redirect URIs a request may name.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of a confidential client's secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<[u8; 32]>,
    pub created_ms: i64,
    pub disabled: bool,
}

/// An authorization code as stored (never the code itself: its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCodeRecord {
    pub code_hash: [u8; 32],
    pub client_id: String,
    pub user_id: i64,
    /// Space-separated resource scopes granted.
    pub scopes: String,
    pub redirect_uri: String,
    /// BASE64URL(SHA-256(code_verifier)) (RFC 7636 S256).
    pub code_challenge: String,
    /// The patient in context, if any.
    pub patient_key: Option<String>,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
    /// The API token the code was exchanged for.
    pub token_id: Option<i64>,
}

/// What [`AccessTx::take_oauth_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenCode {
    /// The code was unused: it is now marked used (by this transaction).
    Taken(OAuthCodeRecord),
    /// The code was used before: nothing changed.
    AlreadyUsed(OAuthCodeRecord),
    /// No such code.
    Unknown,
}

/// Which audit records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_user_id: Option<i64>,
    pub actor: Option<String>,
    pub patient_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub flagged_only: bool,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only records with a smaller sequence number (paging).
    pub before_seq: Option<i64>,
    pub limit: u64,
}

/// Reads of access data.
pub trait AccessStore {
    fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;
    fn user_by_id(&self, user_id: i64) -> Result<Option<UserRecord>>;
    fn users(&self) -> Result<Vec<UserRecord>>;
    /// The session whose secret hashes to `token_hash`, with its account.
    fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>>;
    fn token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>>;
    fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenRecord>>;
    /// The account's assignments, grants and break-the-glass accesses (for `patient` only, when
    /// given).
    fn access_rows(&self, user_id: i64, patient: Option<&str>) -> Result<AccessRows>;
    /// Who is assigned to a patient's panel: (user id, email, name).
    fn assigned_to(&self, patient: &str) -> Result<Vec<(i64, String, String)>>;
    /// Break-the-glass accesses, newest first (only those not yet reviewed, when asked).
    fn break_glass_list(&self, unreviewed_only: bool, limit: u64) -> Result<Vec<BreakGlassRecord>>;
    /// Audit records matching `filter`, newest first.
    fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<ChainedRecord>>;
    /// Audit records with `seq > after_seq`, oldest first, at most `limit` (verification, export).
    fn audit_after(&self, after_seq: i64, limit: u64) -> Result<Vec<ChainedRecord>>;
    /// The chain's head as the last append left it: its sequence number and hash (0 and `None`
    /// before the first record).
    fn audit_head(&self) -> Result<(i64, Option<[u8; 32]>)>;
    /// Append `record` to the audit chain in a transaction of its own, committed durably before
    /// this returns (the record of a read or a refusal, which changes nothing else).
    fn append_audit_committed(&self, record: &rapport_access::audit::AuditRecord) -> Result<i64>;
    /// A registered app, disabled or not.
    fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClientRecord>>;
    /// Every registered app, oldest first.
    fn oauth_clients(&self) -> Result<Vec<OAuthClientRecord>>;
}

/// Writes of access data, inside a [`crate::Store::write`] transaction.
pub trait AccessTx {
    fn insert_user(&mut self, user: &NewUser) -> Result<i64>;
    /// Change name, roles, linked patient and practitioner, and the disabled flag.
    fn update_user(&mut self, user: &UserRecord) -> Result<()>;
    fn set_password(&mut self, user_id: i64, password_hash: &str, now_ms: i64) -> Result<()>;
    fn set_sign_in_failures(
        &mut self,
        user_id: i64,
        failures: i64,
        locked_until_ms: Option<i64>,
    ) -> Result<()>;
    fn insert_session(
        &mut self,
        token_hash: &[u8; 32],
        user_id: i64,
        csrf_token: &str,
        now_ms: i64,
        source: &str,
    ) -> Result<()>;
    fn touch_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()>;
    fn revoke_session(&mut self, token_hash: &[u8; 32], now_ms: i64) -> Result<()>;
    /// End every session of an account (password reset, disabling).
    fn revoke_sessions_of(&mut self, user_id: i64, now_ms: i64) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn insert_token(
        &mut self,
        token_hash: &[u8; 32],
        user_id: i64,
        scopes: &str,
        label: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64>;
    /// Returns whether a live token was revoked.
    fn revoke_token(&mut self, token_id: i64, now_ms: i64) -> Result<bool>;
    /// Assign (or, with `assigned = false`, end the assignment of) a staff member to a panel.
    fn set_assignment(
        &mut self,
        user_id: i64,
        patient: &str,
        assigned: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<()>;
    /// Give (or, with `None`, revoke) a caregiver access to a patient: `Some(can_write)`.
    fn set_grant(
        &mut self,
        user_id: i64,
        patient: &str,
        grant: Option<bool>,
        by: &str,
        now_ms: i64,
    ) -> Result<()>;
    fn insert_break_glass(
        &mut self,
        user_id: i64,
        patient: &str,
        reason: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64>;
    /// Returns whether an unreviewed access was marked reviewed (never by the one who broke the
    /// glass).
    fn review_break_glass(
        &mut self,
        id: i64,
        reviewer: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<bool>;
    /// Append a record to the audit chain; returns its sequence number.
    fn append_audit(&mut self, record: &AuditRecord) -> Result<i64>;
    fn insert_oauth_client(&mut self, client: &OAuthClientRecord) -> Result<()>;
    /// Returns whether the app exists.
    fn set_oauth_client_disabled(&mut self, client_id: &str, disabled: bool) -> Result<bool>;
    /// Ids of the API tokens an app's codes were exchanged for (to revoke them with the app).
    fn oauth_client_tokens(&mut self, client_id: &str) -> Result<Vec<i64>>;
    /// Store a new code (`used_ms` and `token_id` are ignored); codes expired for more than a
    /// day are deleted on the way.
    fn insert_oauth_code(&mut self, code: &OAuthCodeRecord) -> Result<()>;
    /// Take a code for an exchange: mark it used now, unless it was used before. Only one
    /// transaction can ever take a given code.
    fn take_oauth_code(&mut self, code_hash: &[u8; 32], now_ms: i64) -> Result<TakenCode>;
    /// Record the token a code was exchanged for.
    fn set_oauth_code_token(&mut self, code_hash: &[u8; 32], token_id: i64) -> Result<()>;
}
