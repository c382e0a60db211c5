//! Accounts and access as services over the [`Store`]: the authorisation point, sign-in and
//! sessions, API tokens, break-the-glass, account administration and the audit trail.
//!
//! The rules themselves are pure and live in `rapport-access`; this crate gathers the facts they
//! need from the store (care-team membership from FHIR CareTeam resources and panel assignments,
//! caregiver grants, break-the-glass accesses) and writes every change together with its audit
//! record, in one transaction. The web layer and the command line both call it, so the console,
//! the API and the commands share one authorisation point and one audit trail. [`smart`] lets
//! third-party apps obtain tokens through SMART App Launch.
#![forbid(unsafe_code)]

mod accounts;
mod authorize;
mod signin;
pub mod smart;

use rapport_access::audit::Actor;
use rapport_access::policy::Principal;

pub use accounts::*;
pub use authorize::*;
pub use signin::*;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] rapport_store::StoreError),
    #[error(transparent)]
    Access(#[from] rapport_access::AccessError),
    #[error("no account with the e-mail {0}")]
    UnknownUser(String),
    #[error("no patient matches '{0}'")]
    UnknownPatient(String),
    #[error("'{0}' matches more than one patient; use the resource id")]
    AmbiguousPatient(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// The audit actor for a signed-in principal.
pub fn actor_of(p: &Principal) -> Actor {
    Actor {
        user_id: Some(p.user_id),
        label: p.email.to_string(),
        role: p.role_label(),
    }
}
