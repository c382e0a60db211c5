//! SMART App Launch v1 scopes of API tokens (SMART App Launch 1.0, "Scopes and launch context"):
//! `patient/Observation.read`, `user/*.*`, `system/*.write`. A scope only ever narrows what the
//! account behind the token may do; it never widens it.

use std::fmt;
use std::str::FromStr;

use crate::AccessError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The patient in context (the token's account's own record, or the one it was launched for).
    Patient,
    /// Whatever the account may see.
    User,
    /// Backend services.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub context: Context,
    /// `None` is `*`.
    pub resource_type: Option<String>,
    pub read: bool,
    pub write: bool,
}

impl Scope {
    /// Whether this scope allows reading (or writing) resources of `resource_type` (`None`: of
    /// every type, as a patient page shows).
    pub fn allows(&self, resource_type: Option<&str>, write: bool) -> bool {
        let type_ok = match (&self.resource_type, resource_type) {
            (None, _) => true,
            (Some(mine), Some(wanted)) => mine == wanted,
            (Some(_), None) => false,
        };
        type_ok && if write { self.write } else { self.read }
    }
}

impl FromStr for Scope {
    type Err = AccessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AccessError::InvalidScope(s.to_owned());
        let (context, rest) = s.split_once('/').ok_or_else(bad)?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Err(bad()),
        };
        let (ty, perm) = rest.rsplit_once('.').ok_or_else(bad)?;
        let resource_type = match ty {
            "*" => None,
            t if !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphanumeric())
                && t.starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                Some(t.to_owned())
            }
            _ => return Err(bad()),
        };
        let (read, write) = match perm {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            _ => return Err(bad()),
        };
        Ok(Scope {
            context,
            resource_type,
            read,
            write,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        };
        let perm = match (self.read, self.write) {
            (true, true) => "*",
            (true, false) => "read",
            _ => "write",
        };
        write!(
            f,
            "{context}/{}.{perm}",
            self.resource_type.as_deref().unwrap_or("*")
        )
    }
}

/// Parse a space- or comma-separated list of scopes.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, AccessError> {
    let scopes = s
        .split([' ', ','])
        .filter(|p| !p.is_empty())
        .map(Scope::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(AccessError::InvalidScope(s.to_owned()));
    }
    Ok(scopes)
}

pub fn format_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_scopes_parse_and_print_back() {
        let scopes = parse_scopes("patient/*.read user/Observation.write system/*.*").unwrap();
        assert_eq!(
            format_scopes(&scopes),
            "patient/*.read user/Observation.write system/*.*"
        );
        assert!(scopes[0].allows(None, false) && !scopes[0].allows(None, true));
        assert!(scopes[1].allows(Some("Observation"), true));
        assert!(!scopes[1].allows(Some("Patient"), true) && !scopes[1].allows(None, true));
        for bad in [
            "",
            "patient",
            "doctor/*.read",
            "user/*.delete",
            "user/observation.read",
            "user/.read",
        ] {
            assert!(parse_scopes(bad).is_err(), "{bad}");
        }
    }
}
