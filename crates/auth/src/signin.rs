//! Sign-in, sessions and API tokens: from a credential to a [`Principal`].

use rapport_access::audit::{Actor, AuditAction, AuditRecord, Outcome};
use rapport_access::password;
use rapport_access::policy::{Credential, Principal};
use rapport_access::role::{parse_roles, Email};
use rapport_access::scope::parse_scopes;
use rapport_access::secret::{hash_secret, new_secret};
use rapport_access::session::{LockoutPolicy, SessionPolicy, SessionState};
use rapport_store::{Durability, SessionRecord, Store, UserRecord};

use crate::Result;

/// The principal an account acts as.
pub fn principal_of(user: &UserRecord, credential: Credential) -> Result<Principal> {
    Ok(Principal {
        user_id: user.user_id,
        email: Email::parse(&user.email)?,
        name: user.name.clone(),
        roles: parse_roles(&user.roles)?,
        patient_id: user.patient_id.clone(),
        practitioner_id: user.practitioner_id.clone(),
        credential,
    })
}

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum SignIn {
    /// A new session: the cookie's secret and the session's CSRF token.
    Success {
        principal: Principal,
        session_secret: String,
        csrf_token: String,
    },
    /// Unknown e-mail or wrong password (the two are not told apart).
    BadCredentials,
    /// Too many failures: locked until this time.
    Locked { until_ms: i64 },
    /// The account is disabled.
    Disabled,
}

fn auth_record(
    actor: Actor,
    action: AuditAction,
    outcome: Outcome,
    source: &str,
    basis: &str,
    now_ms: i64,
) -> AuditRecord {
    AuditRecord {
        recorded_ms: now_ms,
        actor,
        action,
        outcome,
        patient_id: None,
        entities: Vec::new(),
        source: source.to_owned(),
        basis: basis.to_owned(),
        purpose: None,
        flagged: false,
        detail: String::new(),
    }
}

fn user_actor(user: &UserRecord) -> Actor {
    Actor {
        user_id: Some(user.user_id),
        label: user.email.clone(),
        role: user.roles.clone(),
    }
}

/// Check an e-mail and password; on success open a new session (the caller sets its cookie and
/// forgets any previous one). Every attempt is audited; failures count towards a lockout.
pub fn sign_in(
    store: &dyn Store,
    email: &str,
    password_given: &str,
    source: &str,
    lockout: &LockoutPolicy,
    now_ms: i64,
) -> Result<SignIn> {
    let email = Email::parse(email).ok();
    let user = match &email {
        Some(e) => store.user_by_email(e.as_str())?,
        None => None,
    };
    let Some(user) = user else {
        // Same cost as a wrong password, so that timing does not tell which e-mails exist.
        let _ = password::verify_password(password::dummy_hash(), password_given);
        let label = email
            .map(|e| e.to_string())
            .unwrap_or_else(|| "(not an e-mail)".into());
        let record = auth_record(
            Actor {
                user_id: None,
                label,
                role: String::new(),
            },
            AuditAction::SignInFailed,
            Outcome::Failed,
            source,
            "unknown-account",
            now_ms,
        );
        store.write(Durability::Immediate, &mut |tx| {
            tx.append_audit(&record).map(|_| ())
        })?;
        return Ok(SignIn::BadCredentials);
    };
    let fail = |basis: &str| {
        auth_record(
            user_actor(&user),
            AuditAction::SignInFailed,
            Outcome::Failed,
            source,
            basis,
            now_ms,
        )
    };
    if let Some(until) = user.locked_until_ms.filter(|t| *t > now_ms) {
        let record = fail("locked");
        store.write(Durability::Immediate, &mut |tx| {
            tx.append_audit(&record).map(|_| ())
        })?;
        return Ok(SignIn::Locked { until_ms: until });
    }
    let ok = user
        .password_hash
        .as_deref()
        .is_some_and(|h| password::verify_password(h, password_given));
    if !ok {
        let (failures, locked_until) = lockout.after_failure(user.failed_sign_ins, now_ms);
        let record = fail(if locked_until.is_some() {
            "wrong-password; account locked"
        } else {
            "wrong-password"
        });
        store.write(Durability::Immediate, &mut |tx| {
            tx.set_sign_in_failures(user.user_id, failures, locked_until)?;
            tx.append_audit(&record).map(|_| ())
        })?;
        return Ok(match locked_until {
            Some(until_ms) => SignIn::Locked { until_ms },
            None => SignIn::BadCredentials,
        });
    }
    if user.disabled {
        let record = fail("disabled");
        store.write(Durability::Immediate, &mut |tx| {
            tx.append_audit(&record).map(|_| ())
        })?;
        return Ok(SignIn::Disabled);
    }
    let (session_secret, csrf_token) = (new_secret(), new_secret());
    let record = auth_record(
        user_actor(&user),
        AuditAction::SignIn,
        Outcome::Success,
        source,
        "password",
        now_ms,
    );
    store.write(Durability::Immediate, &mut |tx| {
        tx.set_sign_in_failures(user.user_id, 0, None)?;
        tx.insert_session(
            &hash_secret(&session_secret),
            user.user_id,
            &csrf_token,
            now_ms,
            source,
        )?;
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(SignIn::Success {
        principal: principal_of(&user, Credential::Session)?,
        session_secret,
        csrf_token,
    })
}

/// Record a sign-in refused because its address made too many failed attempts.
pub fn record_throttled(store: &dyn Store, email: &str, source: &str, now_ms: i64) -> Result<()> {
    let label = Email::parse(email)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| "(not an e-mail)".into());
    let record = auth_record(
        Actor {
            user_id: None,
            label,
            role: String::new(),
        },
        AuditAction::SignInFailed,
        Outcome::Denied,
        source,
        "throttled",
        now_ms,
    );
    store.write(Durability::Immediate, &mut |tx| {
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}

/// A live session, found by the secret in its cookie.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub principal: Principal,
    pub token_hash: [u8; 32],
    pub csrf_token: String,
    pub last_seen_ms: i64,
}

/// The session a cookie's secret opens, if it is live (not revoked, idle or too old, and its
/// account not disabled).
pub fn session(
    store: &dyn Store,
    secret: &str,
    policy: &SessionPolicy,
    now_ms: i64,
) -> Result<Option<LiveSession>> {
    let token_hash = hash_secret(secret);
    let Some(SessionRecord {
        user,
        csrf_token,
        created_ms,
        last_seen_ms,
        revoked,
    }) = store.session_by_hash(&token_hash)?
    else {
        return Ok(None);
    };
    if user.disabled
        || policy.state(created_ms, last_seen_ms, revoked, now_ms) != SessionState::Active
    {
        return Ok(None);
    }
    Ok(Some(LiveSession {
        principal: principal_of(&user, Credential::Session)?,
        token_hash,
        csrf_token,
        last_seen_ms,
    }))
}

/// End a session (sign-out), audited.
pub fn sign_out(store: &dyn Store, session: &LiveSession, source: &str, now_ms: i64) -> Result<()> {
    let record = auth_record(
        crate::actor_of(&session.principal),
        AuditAction::SignOut,
        Outcome::Success,
        source,
        "",
        now_ms,
    );
    store.write(Durability::Immediate, &mut |tx| {
        tx.revoke_session(&session.token_hash, now_ms)?;
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(())
}

/// The principal an API token acts as, if the token is live (hard case B40: a revoked or expired
/// token stops working at once; nothing is cached).
pub fn token_principal(store: &dyn Store, token: &str, now_ms: i64) -> Result<Option<Principal>> {
    let Some(t) = store.token_by_hash(&hash_secret(token))? else {
        return Ok(None);
    };
    if t.revoked_ms.is_some() || t.expires_ms <= now_ms {
        return Ok(None);
    }
    let Some(user) = store.user_by_id(t.user_id)? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    let scopes = parse_scopes(&t.scopes)?;
    Ok(Some(principal_of(
        &user,
        Credential::Token {
            token_id: t.token_id,
            scopes,
        },
    )?))
}
