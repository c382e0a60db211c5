//! The audit trail: one record per touch of patient data or change of access, chained by hash.
//!
//! Each record's hash covers the previous record's hash, its own sequence number and every one of
//! its fields, so altering, removing or reordering any record breaks every later link:
//! [`verify_chain`] finds the first broken one. The store appends records in the same database
//! transaction as the action they record.
//!
//! [`to_audit_event`] gives the FHIR R4 AuditEvent form (auditevent.html), with DICOM event
//! types (DICOM PS3.16 CID 400 "Audit Event ID") as the FHIR spec's own examples use.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The account, when there is one (`None` for the command line or an unknown e-mail).
    pub user_id: Option<i64>,
    /// The account's e-mail, or `cli` / `import` for work done on the command line.
    pub label: String,
    /// The roles acted in (`clinician`, `admin,clinician`, `system`).
    pub role: String,
}

impl Actor {
    /// Work done on the command line by whoever runs it (the operating system account).
    pub fn command_line(what: &str) -> Actor {
        Actor {
            user_id: None,
            label: format!("cli:{what}"),
            role: "system".into(),
        }
    }
}

/// What was done. The strings are stable: they are stored and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// Patients shown in a list or search.
    List,
    /// A patient's record read.
    Read,
    /// A patient's record added to or changed.
    Write,
    /// Data imported from a file or feed.
    Import,
    /// Emergency access to a patient outside the care team.
    BreakGlass,
    /// An admin reviewed a break-the-glass access.
    BreakGlassReview,
    SignIn,
    SignInFailed,
    SignOut,
    /// An account created.
    UserCreate,
    /// An account's roles, name, link or state changed.
    UserUpdate,
    PasswordChange,
    /// A staff member put on (or taken off) a patient's care team or panel.
    CareTeamChange,
    /// A caregiver grant given or revoked.
    GrantChange,
    TokenCreate,
    TokenRevoke,
    /// The audit trail exported.
    AuditExport,
    /// A person allowed (or declined) a third-party app access through SMART App Launch: an
    /// authorization code issued for the scopes they saw.
    AppAuthorize,
    /// A third-party app registered or disabled.
    AppChange,
}

impl AuditAction {
    pub const ALL: [AuditAction; 19] = [
        AuditAction::List,
        AuditAction::Read,
        AuditAction::Write,
        AuditAction::Import,
        AuditAction::BreakGlass,
        AuditAction::BreakGlassReview,
        AuditAction::SignIn,
        AuditAction::SignInFailed,
        AuditAction::SignOut,
        AuditAction::UserCreate,
        AuditAction::UserUpdate,
        AuditAction::PasswordChange,
        AuditAction::CareTeamChange,
        AuditAction::GrantChange,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::AuditExport,
        AuditAction::AppAuthorize,
        AuditAction::AppChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::List => "list",
            AuditAction::Read => "read",
            AuditAction::Write => "write",
            AuditAction::Import => "import",
            AuditAction::BreakGlass => "break-glass",
            AuditAction::BreakGlassReview => "break-glass-review",
            AuditAction::SignIn => "sign-in",
            AuditAction::SignInFailed => "sign-in-failed",
            AuditAction::SignOut => "sign-out",
            AuditAction::UserCreate => "user-create",
            AuditAction::UserUpdate => "user-update",
            AuditAction::PasswordChange => "password-change",
            AuditAction::CareTeamChange => "care-team-change",
            AuditAction::GrantChange => "grant-change",
            AuditAction::TokenCreate => "token-create",
            AuditAction::TokenRevoke => "token-revoke",
            AuditAction::AuditExport => "audit-export",
            AuditAction::AppAuthorize => "app-authorize",
            AuditAction::AppChange => "app-change",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the action touches a patient's clinical data.
    pub fn is_patient_data(self) -> bool {
        matches!(
            self,
            AuditAction::List
                | AuditAction::Read
                | AuditAction::Write
                | AuditAction::Import
                | AuditAction::BreakGlass
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    /// Refused by the access rules.
    Denied,
    /// Failed for another reason (a wrong password, an error).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Denied, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One audit record. Field order is the hashed order: never reorder, only append new fields
/// (with `#[serde(default)]`, which then hash as part of new records only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the epoch, UTC.
    pub recorded_ms: i64,
    pub actor: Actor,
    pub action: AuditAction,
    pub outcome: Outcome,
    /// The patient whose data was touched.
    pub patient_id: Option<String>,
    /// What was touched: `Patient/1`, `Patient/1/*` (the whole compartment), `AppUser/3`.
    pub entities: Vec<String>,
    /// Where the request came from: an IP address, or `cli`.
    pub source: String,
    /// The basis of access (`care-team`, `break-the-glass`…) or the reason for a denial.
    pub basis: String,
    /// The break-the-glass reason the person gave.
    pub purpose: Option<String>,
    /// Marked for review by an admin (break-the-glass).
    pub flagged: bool,
    /// Further non-patient detail (`roles=clinician`, `3 patients`).
    pub detail: String,
}

/// A record as stored: its place in the chain and the hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRecord {
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of record number `seq` that follows a record with hash `prev`.
/// SHA-256 of [`CHAIN_PREFIX`], `prev`, `seq` as 8 big-endian bytes and [`hashed_body`]. (The
/// PostgreSQL store computes the same in SQL so that an append is one statement; a test holds the
/// two to the same value.)
pub fn chain_hash(prev: &[u8; 32], seq: i64, record: &AuditRecord) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHAIN_PREFIX);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(hashed_body(record));
    h.finalize().into()
}

/// The domain-separation prefix of every chain hash.
pub const CHAIN_PREFIX: &[u8] = b"rapport-audit-v1\0";

/// The bytes of a record that its chain hash covers: its JSON form.
pub fn hashed_body(record: &AuditRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("an audit record serialises")
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// Checks records one by one, in sequence order, from the first ever written.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: [u8; 32],
    prev_seq: i64,
    count: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_hash: GENESIS,
            prev_seq: 0,
            count: 0,
        }
    }
}

impl ChainVerifier {
    /// Check the next record.
    pub fn check(&mut self, r: &ChainedRecord) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink { seq: r.seq, reason };
        if r.seq != self.prev_seq + 1 {
            return Err(broken(format!(
                "expected record {} next (records are missing or out of order)",
                self.prev_seq + 1
            )));
        }
        if r.prev_hash != self.prev_hash {
            return Err(broken(
                "its link to the previous record does not match".into(),
            ));
        }
        if chain_hash(&self.prev_hash, r.seq, &r.record) != r.hash {
            return Err(broken(
                "its content does not match its hash (the record was altered)".into(),
            ));
        }
        self.prev_hash = r.hash;
        self.prev_seq = r.seq;
        self.count += 1;
        Ok(())
    }

    /// Records checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The last record checked and its hash: note it somewhere else (a ticket, a log kept
    /// elsewhere) to detect later that newer records were removed, which a chain alone cannot.
    pub fn head(&self) -> (i64, [u8; 32]) {
        (self.prev_seq, self.prev_hash)
    }
}

/// Check records given in sequence order, starting from the first ever written. Returns how many
/// were checked.
pub fn verify_chain(records: impl IntoIterator<Item = ChainedRecord>) -> Result<u64, BrokenLink> {
    let mut v = ChainVerifier::default();
    for r in records {
        v.check(&r)?;
    }
    Ok(v.count())
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// The record as a FHIR R4 AuditEvent.
pub fn to_audit_event(r: &ChainedRecord) -> Value {
    let rec = &r.record;
    let (code, display) = match rec.action {
        AuditAction::List | AuditAction::Read | AuditAction::Write | AuditAction::BreakGlass => {
            ("110110", "Patient Record")
        }
        AuditAction::Import => ("110107", "Import"),
        AuditAction::AuditExport => ("110106", "Export"),
        AuditAction::SignIn | AuditAction::SignInFailed | AuditAction::SignOut => {
            ("110114", "User Authentication")
        }
        AuditAction::BreakGlassReview => ("110113", "Security Alert"),
        AuditAction::UserCreate
        | AuditAction::UserUpdate
        | AuditAction::PasswordChange
        | AuditAction::CareTeamChange
        | AuditAction::GrantChange
        | AuditAction::TokenCreate
        | AuditAction::TokenRevoke
        | AuditAction::AppAuthorize
        | AuditAction::AppChange => ("110136", "Security Roles Changed"),
    };
    // AuditEvent.action (value set audit-event-action): C create, R read, U update, E execute.
    let action = match rec.action {
        AuditAction::Read | AuditAction::BreakGlass => "R",
        AuditAction::Write => "U",
        AuditAction::Import
        | AuditAction::UserCreate
        | AuditAction::TokenCreate
        | AuditAction::AppAuthorize => "C",
        AuditAction::UserUpdate
        | AuditAction::PasswordChange
        | AuditAction::CareTeamChange
        | AuditAction::GrantChange
        | AuditAction::TokenRevoke
        | AuditAction::BreakGlassReview
        | AuditAction::AppChange => "U",
        _ => "E",
    };
    // AuditEvent.outcome (value set audit-event-outcome): 0 success, 4 minor failure.
    let outcome = match rec.outcome {
        Outcome::Success => "0",
        Outcome::Denied | Outcome::Failed => "4",
    };
    // A person, or work done by the system itself (imports, commands without an account).
    let (agent_code, agent_display) = if rec.actor.user_id.is_some() || rec.actor.role != "system" {
        ("humanuser", "human user")
    } else {
        ("dataprocessor", "data processor")
    };
    let mut agent = json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": agent_code, "display": agent_display}]},
        "who": {"display": rec.actor.label},
        "requestor": true,
        "role": [{"text": rec.actor.role}],
    });
    if let Some(id) = rec.actor.user_id {
        agent["who"]["identifier"] = json!({"system": "urn:rapport:user", "value": id.to_string()});
    }
    if rec.source != "cli" && !rec.source.is_empty() {
        // AuditEvent.agent.network.type 2: IP address.
        agent["network"] = json!({"address": rec.source, "type": "2"});
    }
    if rec.purpose.is_some() {
        // Break-the-glass: emergency treatment (v3 ActReason ETREAT), with the stated reason.
        agent["purposeOfUse"] = json!([{
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT", "display": "Emergency Treatment"}],
            "text": rec.purpose,
        }]);
    }
    let mut entities: Vec<Value> = Vec::new();
    if let Some(p) = &rec.patient_id {
        entities.push(json!({
            "what": {"reference": format!("Patient/{p}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
        }));
    }
    for e in rec.entities.iter().filter(|e| {
        Some(e.as_str())
            != rec
                .patient_id
                .as_ref()
                .map(|p| format!("Patient/{p}"))
                .as_deref()
    }) {
        entities.push(json!({"what": {"reference": e}}));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", r.seq),
        "type": {"system": DCM, "code": code, "display": display},
        "subtype": [{"system": "urn:rapport:audit-action", "code": rec.action.as_str()}],
        "action": action,
        "recorded": chrono::DateTime::from_timestamp_millis(rec.recorded_ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "outcome": outcome,
        "outcomeDesc": if rec.basis.is_empty() { rec.outcome.as_str().to_owned() } else { format!("{}: {}", rec.outcome.as_str(), rec.basis) },
        "agent": [agent],
        "source": {
            "observer": {"display": "Rapport"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
    });
    if rec.purpose.is_some() {
        event["purposeOfEvent"] = event["agent"][0]["purposeOfUse"].clone();
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> AuditRecord {
        AuditRecord {
            recorded_ms: 1_700_000_000_000 + n,
            actor: Actor {
                user_id: Some(3),
                label: "gp@example.org".into(),
                role: "clinician".into(),
            },
            action: AuditAction::Read,
            outcome: Outcome::Success,
            patient_id: Some("p1".into()),
            entities: vec!["Patient/p1/*".into()],
            source: "127.0.0.1".into(),
            basis: "care-team".into(),
            purpose: None,
            flagged: false,
            detail: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<ChainedRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let record = record(seq);
                let hash = chain_hash(&prev, seq, &record);
                let c = ChainedRecord {
                    seq,
                    record,
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                c
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_any_alteration_names_the_first_broken_record() {
        assert_eq!(verify_chain(chain(5)), Ok(5));
        let mut altered = chain(5);
        altered[2].record.actor.label = "someone-else@example.org".into();
        assert_eq!(verify_chain(altered).unwrap_err().seq, 3);
        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify_chain(removed).unwrap_err().seq, 3);
        let mut relinked = chain(5);
        relinked[3].prev_hash = [1; 32];
        assert_eq!(verify_chain(relinked).unwrap_err().seq, 4);
    }

    #[test]
    fn a_break_the_glass_record_becomes_an_audit_event_with_purpose_of_use_etreat() {
        let mut c = chain(1).remove(0);
        c.record.action = AuditAction::BreakGlass;
        c.record.purpose = Some("unconscious in ED".into());
        c.record.flagged = true;
        let e = to_audit_event(&c);
        assert_eq!(e["resourceType"], "AuditEvent");
        assert_eq!(e["action"], "R");
        assert_eq!(e["recorded"], "2023-11-14T22:13:20.001Z");
        assert_eq!(
            e["agent"][0]["purposeOfUse"][0]["coding"][0]["code"],
            "ETREAT"
        );
        assert_eq!(
            e["agent"][0]["purposeOfUse"][0]["text"],
            "unconscious in ED"
        );
        assert_eq!(e["agent"][0]["who"]["identifier"]["value"], "3");
        assert_eq!(e["entity"][0]["what"]["reference"], "Patient/p1");
        assert_eq!(e["entity"][1]["what"]["reference"], "Patient/p1/*");
    }
}
