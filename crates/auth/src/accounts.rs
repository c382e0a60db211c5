//! Account administration, break-the-glass and the audit trail's checks. Every change is
//! written together with its audit record in one transaction.

use rapport_access::audit::{
    Actor, AuditAction, AuditRecord, BrokenLink, ChainVerifier, ChainedRecord, Outcome,
};
use rapport_access::password;
use rapport_access::policy::Principal;
use rapport_access::role::{format_roles, parse_roles, Email, Role};
use rapport_access::scope::{format_scopes, parse_scopes};
use rapport_access::secret::{hash_secret, new_api_token};
use rapport_fhir::query::{Clause, Query};
use rapport_store::{Durability, NewUser, ResourceKey, Store, UserRecord};

use crate::{actor_of, AuthError, Result};

pub(crate) fn change_record(
    actor: &Actor,
    source: &str,
    action: AuditAction,
    entity: String,
    patient: Option<&str>,
    detail: String,
    now_ms: i64,
) -> AuditRecord {
    AuditRecord {
        recorded_ms: now_ms,
        actor: actor.clone(),
        action,
        outcome: Outcome::Success,
        patient_id: patient.map(str::to_owned),
        entities: vec![entity],
        source: source.to_owned(),
        basis: String::new(),
        purpose: None,
        flagged: false,
        detail,
    }
}

/// A patient given as a resource id or as an identifier `system|value`.
pub fn resolve_patient(store: &dyn Store, given: &str) -> Result<String> {
    let given = given.trim();
    let ids = match given.split_once('|') {
        Some((system, value)) => store.find_ids(&Query {
            resource_type: "Patient".into(),
            clauses: vec![Clause::Token {
                param: "identifier",
                system: Some(system.to_owned()),
                code: value.to_owned(),
            }],
        })?,
        None => {
            let id = given.strip_prefix("Patient/").unwrap_or(given);
            if !rapport_fhir::id::is_valid_id(id) {
                return Err(AuthError::UnknownPatient(given.to_owned()));
            }
            store
                .read(&ResourceKey::new("Patient", id))?
                .filter(|r| !r.deleted)
                .map(|r| vec![r.key.id])
                .unwrap_or_default()
        }
    };
    match ids.as_slice() {
        [] => Err(AuthError::UnknownPatient(given.to_owned())),
        [one] => Ok(one.clone()),
        _ => Err(AuthError::AmbiguousPatient(given.to_owned())),
    }
}

/// A new account's details.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
    /// For a patient account: its own record (id or `system|value`).
    pub patient: Option<String>,
    /// For staff: their Practitioner id (CareTeam membership gives access).
    pub practitioner: Option<String>,
    pub password: String,
}

pub fn find_user(store: &dyn Store, email: &str) -> Result<UserRecord> {
    let e = Email::parse(email)?;
    store
        .user_by_email(e.as_str())?
        .ok_or_else(|| AuthError::UnknownUser(e.to_string()))
}

/// Create an account (the password must pass the policy).
pub fn create_user(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    account: &NewAccount,
    now_ms: i64,
) -> Result<i64> {
    let email = Email::parse(&account.email)?;
    let name = account.name.trim();
    if name.is_empty() {
        return Err(AuthError::Invalid("the name must not be empty".into()));
    }
    let roles = parse_roles(&account.roles)?;
    if account.patient.is_some() && !roles.contains(&Role::Patient) {
        return Err(AuthError::Invalid(
            "a linked patient record is for patient accounts; add the patient role".into(),
        ));
    }
    let patient = match &account.patient {
        Some(p) => Some(resolve_patient(store, p)?),
        None => None,
    };
    if roles.contains(&Role::Patient) && patient.is_none() {
        return Err(AuthError::Invalid(
            "a patient account needs --patient (its own record)".into(),
        ));
    }
    if patient.is_some() && !roles.contains(&Role::Patient) {
        return Err(AuthError::Invalid(
            "--patient links a patient account to its record; add the patient role".into(),
        ));
    }
    let practitioner = account
        .practitioner
        .as_ref()
        .map(|p| p.trim().trim_start_matches("Practitioner/").to_owned());
    if let Some(p) = &practitioner {
        if !rapport_fhir::id::is_valid_id(p) {
            return Err(AuthError::Invalid(format!(
                "'{p}' is not a Practitioner id"
            )));
        }
    }
    if let Some(p) = &practitioner {
        if !roles.iter().any(|r| r.is_care_staff()) {
            return Err(AuthError::Invalid(
                "a Practitioner link is for care staff (clinician or coordinator)".into(),
            ));
        }
        if store
            .read(&ResourceKey::new("Practitioner", p.as_str()))?
            .filter(|r| !r.deleted)
            .is_none()
        {
            return Err(AuthError::Invalid(format!(
                "there is no Practitioner/{p} in the store"
            )));
        }
    }
    password::check_policy(&account.password, email.local_part(), name)?;
    let hash = password::hash_password(&account.password)?;
    let user = NewUser {
        email: email.to_string(),
        name: name.to_owned(),
        roles: format_roles(&roles),
        patient_id: patient.clone(),
        practitioner_id: practitioner,
        password_hash: Some(hash),
        created_ms: now_ms,
    };
    let mut id = 0;
    store.write(Durability::Immediate, &mut |tx| {
        id = tx.insert_user(&user)?;
        let record = change_record(
            actor,
            source,
            AuditAction::UserCreate,
            format!("AppUser/{id}"),
            patient.as_deref(),
            format!("email={} roles={}", user.email, user.roles),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(id)
}

/// Set a new password (policy-checked); ends the account's sessions and clears any lockout.
pub fn reset_password(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    email: &str,
    new_password: &str,
    now_ms: i64,
) -> Result<()> {
    let user = find_user(store, email)?;
    let e = Email::parse(&user.email)?;
    password::check_policy(new_password, e.local_part(), &user.name)?;
    let hash = password::hash_password(new_password)?;
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_password(user.user_id, &hash, now_ms)?;
        tx.revoke_sessions_of(user.user_id, now_ms)?;
        let record = change_record(
            actor,
            source,
            AuditAction::PasswordChange,
            format!("AppUser/{}", user.user_id),
            None,
            String::new(),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}

/// Disable or enable an account; disabling ends its sessions at once.
pub fn set_disabled(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    user_id: i64,
    disabled: bool,
    now_ms: i64,
) -> Result<()> {
    let mut user = store
        .user_by_id(user_id)?
        .ok_or_else(|| AuthError::UnknownUser(format!("#{user_id}")))?;
    user.disabled = disabled;
    store.write(Durability::Immediate, &mut |tx| {
        tx.update_user(&user)?;
        if disabled {
            tx.revoke_sessions_of(user_id, now_ms)?;
        }
        let record = change_record(
            actor,
            source,
            AuditAction::UserUpdate,
            format!("AppUser/{user_id}"),
            None,
            format!("disabled={disabled}"),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}

/// Lift a sign-in lockout.
pub fn unlock(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    user_id: i64,
    now_ms: i64,
) -> Result<()> {
    store
        .user_by_id(user_id)?
        .ok_or_else(|| AuthError::UnknownUser(format!("#{user_id}")))?;
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_sign_in_failures(user_id, 0, None)?;
        let record = change_record(
            actor,
            source,
            AuditAction::UserUpdate,
            format!("AppUser/{user_id}"),
            None,
            "unlocked".into(),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}

/// Put a staff member on (or take them off) a patient's panel.
pub fn assign(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    email: &str,
    patient: &str,
    assigned: bool,
    now_ms: i64,
) -> Result<String> {
    let user = find_user(store, email)?;
    let roles = parse_roles(&user.roles)?;
    if !roles.iter().any(|r| r.is_care_staff()) {
        return Err(AuthError::Invalid(format!(
            "{} is not care staff (clinician or coordinator)",
            user.email
        )));
    }
    let patient = resolve_patient(store, patient)?;
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_assignment(user.user_id, &patient, assigned, &actor.label, now_ms)?;
        let record = change_record(
            actor,
            source,
            AuditAction::CareTeamChange,
            format!("AppUser/{}", user.user_id),
            Some(&patient),
            format!("assigned={assigned}"),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(patient)
}

/// Give (`Some(can_write)`) or revoke (`None`) a caregiver's access to a patient.
pub fn grant(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    email: &str,
    patient: &str,
    grant: Option<bool>,
    now_ms: i64,
) -> Result<String> {
    let user = find_user(store, email)?;
    if !parse_roles(&user.roles)?.contains(&Role::Caregiver) {
        return Err(AuthError::Invalid(format!(
            "{} is not a caregiver account",
            user.email
        )));
    }
    let patient = resolve_patient(store, patient)?;
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_grant(user.user_id, &patient, grant, &actor.label, now_ms)?;
        let detail = match grant {
            Some(w) => format!("granted can_write={w}"),
            None => "revoked".to_owned(),
        };
        let record = change_record(
            actor,
            source,
            AuditAction::GrantChange,
            format!("AppUser/{}", user.user_id),
            Some(&patient),
            detail,
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(patient)
}

/// A token to create: for which account, with which SMART scopes, for how many days.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub email: String,
    pub scopes: String,
    pub days: u32,
    pub label: String,
}

/// Create an API token for an account; returns its id and the token, shown only this once.
pub fn create_token(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    new: &NewToken,
    now_ms: i64,
) -> Result<(i64, String)> {
    let (email, days, label) = (new.email.as_str(), new.days, new.label.as_str());
    let user = find_user(store, email)?;
    let scopes = format_scopes(&checked_scopes(&new.scopes)?);
    if days == 0 || days > 366 {
        return Err(AuthError::Invalid("a token lives 1 to 366 days".into()));
    }
    let expires = now_ms + i64::from(days) * 86_400_000;
    let mut id = 0;
    let mut token = String::new();
    store.write(Durability::Immediate, &mut |tx| {
        (id, token) = insert_new_token(tx, user.user_id, &scopes, label, now_ms, expires)?;
        let record = change_record(
            actor,
            source,
            AuditAction::TokenCreate,
            format!("ApiToken/{id}"),
            None,
            format!("user={} scopes={scopes} days={days}", user.email),
            now_ms,
        );
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok((id, token))
}

/// Parse SMART scopes for a token, refusing any that names a type that is not a FHIR R4 resource
/// type (it would silently grant nothing).
pub(crate) fn checked_scopes(scopes: &str) -> Result<Vec<rapport_access::scope::Scope>> {
    let parsed = parse_scopes(scopes)?;
    if let Some(bad) = parsed
        .iter()
        .filter_map(|s| s.resource_type.as_deref())
        .find(|t| !is_resource_type(t))
    {
        return Err(AuthError::Invalid(format!(
            "'{bad}' is not a FHIR R4 resource type"
        )));
    }
    Ok(parsed)
}

/// Whether `t` is a FHIR R4 resource type (every one has search parameters).
pub(crate) fn is_resource_type(t: &str) -> bool {
    !rapport_fhir::search_param::params_for(t).is_empty()
}

/// Write a new API token of an account inside a write transaction, with `expires_ms` as its
/// end: `rapport token create` (days) and the SMART token endpoint (one hour) both make their
/// tokens here. Returns its id and the token, which is shown only this once; the caller appends
/// the audit record in the same transaction.
pub(crate) fn insert_new_token(
    tx: &mut dyn rapport_store::WriteTx,
    user_id: i64,
    scopes: &str,
    label: &str,
    now_ms: i64,
    expires_ms: i64,
) -> rapport_store::Result<(i64, String)> {
    let token = new_api_token();
    let id = tx.insert_token(
        &hash_secret(&token),
        user_id,
        scopes,
        label,
        now_ms,
        expires_ms,
    )?;
    Ok((id, token))
}

/// Revoke an API token by id; returns whether a live token was revoked.
pub fn revoke_token(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    token_id: i64,
    now_ms: i64,
) -> Result<bool> {
    let mut revoked = false;
    store.write(Durability::Immediate, &mut |tx| {
        revoked = tx.revoke_token(token_id, now_ms)?;
        if revoked {
            let record = change_record(
                actor,
                source,
                AuditAction::TokenRevoke,
                format!("ApiToken/{token_id}"),
                None,
                String::new(),
                now_ms,
            );
            tx.append_audit(&record)?;
        }
        Ok(())
    })?;
    Ok(revoked)
}

/// Break the glass: time-limited access to one patient outside the care team, with a reason,
/// flagged for review (hard case B43). The caller has checked that the principal may.
pub fn break_glass(
    store: &dyn Store,
    principal: &Principal,
    source: &str,
    patient: &str,
    reason: &str,
    duration_ms: i64,
    now_ms: i64,
) -> Result<i64> {
    let reason = reason.trim();
    if reason.chars().count() < 5 {
        return Err(AuthError::Invalid(
            "a reason of at least a few words is required".into(),
        ));
    }
    if !principal.may_break_glass() {
        return Err(AuthError::Invalid(
            "only care staff, signed in, may break the glass".into(),
        ));
    }
    let mut id = 0;
    store.write(Durability::Immediate, &mut |tx| {
        id = tx.insert_break_glass(
            principal.user_id,
            patient,
            reason,
            now_ms,
            now_ms + duration_ms,
        )?;
        let record = AuditRecord {
            recorded_ms: now_ms,
            actor: actor_of(principal),
            action: AuditAction::BreakGlass,
            outcome: Outcome::Success,
            patient_id: Some(patient.to_owned()),
            entities: vec![format!("Patient/{patient}")],
            source: source.to_owned(),
            basis: "break-the-glass".into(),
            purpose: Some(reason.to_owned()),
            flagged: true,
            detail: format!("break-glass #{id} for {} minutes", duration_ms / 60_000),
        };
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(id)
}

/// An admin marks a break-the-glass access reviewed; not their own (four eyes).
pub fn review_break_glass(
    store: &dyn Store,
    admin: &Principal,
    source: &str,
    id: i64,
    note: &str,
    now_ms: i64,
) -> Result<bool> {
    let mut done = false;
    store.write(Durability::Immediate, &mut |tx| {
        done = tx.review_break_glass(id, admin.user_id, note.trim(), now_ms)?;
        if done {
            let record = change_record(
                &actor_of(admin),
                source,
                AuditAction::BreakGlassReview,
                format!("BreakGlass/{id}"),
                None,
                note.trim().to_owned(),
                now_ms,
            );
            tx.append_audit(&record)?;
        }
        Ok(())
    })?;
    Ok(done)
}

/// Walk the whole audit chain in batches; `on_batch` sees every record in order.
pub fn walk_audit(store: &dyn Store, on_batch: &mut dyn FnMut(&[ChainedRecord])) -> Result<()> {
    let mut after = 0;
    loop {
        let batch = store.audit_after(after, 5000)?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.seq;
        on_batch(&batch);
    }
}

/// The audit chain checked to its end: how many records, and the last one's number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    pub records: u64,
    pub head_seq: i64,
    pub head_hash: [u8; 32],
}

/// Check the audit chain from its first record, with its head.
pub fn verify_audit_head(
    store: &dyn Store,
) -> Result<std::result::Result<VerifiedChain, BrokenLink>> {
    let (verifier, broken) = check_chain(store)?;
    let (head_seq, head_hash) = verifier.head();
    Ok(match broken {
        Some(b) => Err(b),
        None => Ok(VerifiedChain {
            records: verifier.count(),
            head_seq,
            head_hash,
        }),
    })
}

/// Check the audit chain from its first record: the number of records, or the first broken link.
pub fn verify_audit(store: &dyn Store) -> Result<std::result::Result<u64, BrokenLink>> {
    let (verifier, broken) = check_chain(store)?;
    Ok(match broken {
        Some(b) => Err(b),
        None => Ok(verifier.count()),
    })
}

/// Walk the chain from its first record, and hold it against the head row the last append left
/// (read first, so that records appended during the walk do not count against it): the record
/// the head names must be there with the head's hash, which notices records removed from the end.
fn check_chain(store: &dyn Store) -> Result<(ChainVerifier, Option<BrokenLink>)> {
    let (head_seq, head_hash) = store.audit_head()?;
    let mut verifier = ChainVerifier::default();
    let mut broken = None;
    walk_audit(store, &mut |batch| {
        for r in batch {
            if broken.is_some() {
                return;
            }
            if let Err(b) = verifier.check(r) {
                broken = Some(b);
            } else if r.seq == head_seq && Some(r.hash) != head_hash {
                broken = Some(BrokenLink {
                    seq: r.seq,
                    reason: "the record differs from the chain head recorded when it was appended"
                        .into(),
                });
            }
        }
    })?;
    let last = verifier.head().0;
    if broken.is_none() && last < head_seq {
        broken = Some(BrokenLink {
            seq: last + 1,
            reason: format!(
                "the trail ends at record {last} but records up to {head_seq} were appended: records were removed"
            ),
        });
    }
    Ok((verifier, broken))
}

/// Record that the audit trail was exported.
pub fn record_export(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    records: u64,
    now_ms: i64,
) -> Result<()> {
    let record = change_record(
        actor,
        source,
        AuditAction::AuditExport,
        "AuditEvent/*".into(),
        None,
        format!("{records} records"),
        now_ms,
    );
    store.write(Durability::Immediate, &mut |tx| {
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}
