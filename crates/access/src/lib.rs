//! Rapport's access rules as pure functions: who may see and change which patient's data, and
//! how every such touch is recorded.
//!
//! - [`role`]: the five roles and the e-mail newtype that names an account.
//! - [`policy`]: **the one authorisation decision** ([`policy::decide`]). Every console page,
//!   API call and command that touches patient data asks it, with the facts the store gathered.
//! - [`password`]: the password policy and Argon2id hashing.
//! - [`secret`]: random session ids, CSRF tokens and API tokens, and their stored hashes.
//! - [`scope`]: SMART-style scopes of API tokens (`patient/*.read`, `user/*.*`).
//! - [`audit`]: audit records, their hash chain (tamper evidence) and their FHIR AuditEvent form.
//! - [`session`]: session expiry and sign-in lockout rules.
//!
//! This crate does no I/O: it is given facts and `now`, and returns decisions.
#![forbid(unsafe_code)]

pub mod audit;
pub mod password;
pub mod policy;
pub mod role;
pub mod scope;
pub mod secret;
pub mod session;

pub use policy::{decide, Action, Decision, Facts, Principal};
pub use role::{Email, Role};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("'{0}' is not a role (roles: admin, clinician, coordinator, patient, caregiver)")]
    UnknownRole(String),
    #[error("'{0}' is not an e-mail address")]
    InvalidEmail(String),
    #[error("password refused: {0}")]
    WeakPassword(String),
    #[error(
        "'{0}' is not a scope (expected e.g. patient/*.read, user/Observation.write, system/*.*)"
    )]
    InvalidScope(String),
    #[error("the password hash could not be made: {0}")]
    Hashing(String),
}

pub type Result<T, E = AccessError> = std::result::Result<T, E>;
