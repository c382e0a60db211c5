//! FHIR R4 semantics for Rapport, as pure functions over JSON values.
//!
//! Resources are kept as `serde_json::Value` (with `arbitrary_precision` and `preserve_order`), so
//! whatever a client sent, including unknown elements, primitive extensions (`_birthDate`) and the
//! exact digits of decimals, is written back unchanged. This crate knows references, search
//! parameter extraction, dates with precision, bundles and content hashes. It does no I/O.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod content;
pub mod date;
pub mod hash;
pub mod id;
pub mod index;
pub mod query;
pub mod reference;
pub mod search_param;
pub mod text;
pub mod validate;

pub use id::{ResourceId, ResourceType};

/// Errors in FHIR content, each naming the element (FHIRPath-like) it is about.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FhirError {
    #[error("{expression}: {message}")]
    Invalid { expression: String, message: String },
}

impl FhirError {
    pub fn invalid(expression: impl Into<String>, message: impl Into<String>) -> Self {
        FhirError::Invalid {
            expression: expression.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = FhirError> = std::result::Result<T, E>;
