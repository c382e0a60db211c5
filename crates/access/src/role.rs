//! Roles and the e-mail address that names an account.

use std::fmt;
use std::str::FromStr;

use crate::AccessError;

/// What a person does in Rapport. An account may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Manages users and settings; reads no clinical data unless also holding a clinical role.
    Admin,
    /// GP, specialist or nurse.
    Clinician,
    /// Care coordinator.
    Coordinator,
    /// A patient, linked to their own record.
    Patient,
    /// A caregiver, who sees what a patient granted.
    Caregiver,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Clinician,
        Role::Coordinator,
        Role::Patient,
        Role::Caregiver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Coordinator => "coordinator",
            Role::Patient => "patient",
            Role::Caregiver => "caregiver",
        }
    }

    /// Staff who care for patients: their access follows the care team.
    pub fn is_care_staff(self) -> bool {
        matches!(self, Role::Clinician | Role::Coordinator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| AccessError::UnknownRole(s.to_owned()))
    }
}

/// Parse a comma-separated list of roles (`"clinician,admin"`), sorted and without repeats.
pub fn parse_roles(s: &str) -> Result<Vec<Role>, AccessError> {
    let mut roles = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Role::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(AccessError::UnknownRole(s.to_owned()));
    }
    Ok(roles)
}

/// The comma-separated form stored in the database.
pub fn format_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// An account's e-mail address, trimmed and lower-cased: the sign-in name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, AccessError> {
        let e = s.trim().to_lowercase();
        // RFC 5322 dot-atom local part and a host name; no quoted forms.
        let local_ok = |l: &str| {
            l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        };
        let domain_ok = |d: &str| {
            d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
        };
        let ok = e.len() <= 254
            && e.split_once('@').is_some_and(|(local, domain)| {
                local_ok(local)
                    && domain_ok(domain)
                    && !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                    && !domain.contains('@')
            });
        if ok {
            Ok(Email(e))
        } else {
            Err(AccessError::InvalidEmail(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_case_insensitively_and_sort() {
        assert_eq!(
            parse_roles("Clinician, admin,clinician").unwrap(),
            vec![Role::Admin, Role::Clinician]
        );
        assert!(parse_roles("doctor").is_err());
        assert!(parse_roles("").is_err());
        assert_eq!(
            format_roles(&[Role::Admin, Role::Clinician]),
            "admin,clinician"
        );
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased_and_must_look_like_addresses() {
        assert_eq!(
            Email::parse("  Ana.Lima@Example.ORG ").unwrap().as_str(),
            "ana.lima@example.org"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "a b@example.org",
            "a@b@c.org",
            "<script>@x.example",
            "ana@exa_mple.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
