//! The authorisation decision: deny by default, access follows care relationships.
//!
//! [`decide`] is the only place in Rapport that answers "may this person do this to this
//! patient's data". Callers gather [`Facts`] from the store (care-team membership, panel
//! assignments, caregiver grants, break-the-glass accesses) and pass `now`; the answer is a
//! [`Decision`] that says why, so that the audit trail can record the basis of every access.
//!
//! The rules:
//! - **Clinicians and coordinators** see and change the patients on whose care team they are: a
//!   member of one of the patient's active FHIR CareTeams (through the Practitioner linked to the
//!   account), or assigned to the patient's panel. Any other patient needs break-the-glass: a
//!   stated reason buys time-limited access to that one patient, flagged for review.
//! - **Patients** see and add to their own record only.
//! - **Caregivers** see what a patient granted them (and change it only if the grant says so).
//! - **Admins** manage users and settings; they read no clinical data unless they also hold a
//!   clinical role.
//! - **API tokens** carry SMART scopes that narrow the above, never widen it; a `patient/` scope
//!   confines the token to the account's own record.

use std::collections::{BTreeMap, BTreeSet};

use crate::role::{Email, Role};
use crate::scope::{Context, Scope};

/// How the request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A signed-in browser session.
    Session,
    /// An API token with its scopes.
    Token { token_id: i64, scopes: Vec<Scope> },
}

/// The signed-in person (or integration) making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub email: Email,
    pub name: String,
    pub roles: Vec<Role>,
    /// The Patient id of a patient account.
    pub patient_id: Option<String>,
    /// The Practitioner id of a staff account (FHIR CareTeam membership gives access).
    pub practitioner_id: Option<String>,
    pub credential: Credential,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Only care staff may break the glass, and only in person (a signed-in session, not a token).
    pub fn may_break_glass(&self) -> bool {
        self.roles.iter().any(|r| r.is_care_staff()) && self.credential == Credential::Session
    }

    /// The roles as one string for the audit trail (`clinician,admin`).
    pub fn role_label(&self) -> String {
        crate::role::format_roles(&self.roles)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the patient in a list or search result.
    List,
    /// Read the patient's record.
    Read,
    /// Add to or change the patient's record.
    Write,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// An unexpired break-the-glass access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakGlass {
    pub id: i64,
    pub expires_at_ms: i64,
}

/// What the store knows of one principal's relationship to one patient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Member of one of the patient's active CareTeams, or assigned to the patient's panel.
    pub care_team: bool,
    /// A caregiver grant from the patient: `Some(can_write)`.
    pub caregiver_grant: Option<bool>,
    /// The principal's latest break-the-glass access to this patient, if any.
    pub break_glass: Option<BreakGlass>,
}

/// Why access was allowed (recorded in the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    CareTeam,
    /// Provider-directory data, outside every patient's compartment.
    Directory,
    OwnRecord,
    CaregiverGrant,
    BreakGlass {
        id: i64,
    },
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::CareTeam => "care-team",
            Basis::Directory => "directory",
            Basis::OwnRecord => "own-record",
            Basis::CaregiverGrant => "caregiver-grant",
            Basis::BreakGlass { .. } => "break-the-glass",
        }
    }
}

/// Why access was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// An admin without a clinical role.
    AdminWithoutClinicalRole,
    /// Care staff not on the patient's care team (break-the-glass is available in person).
    NotOnCareTeam { break_glass_available: bool },
    /// A patient asking for someone else's record.
    NotOwnRecord,
    /// A caregiver without a grant from this patient.
    NoGrant,
    /// A caregiver whose grant is read-only, asking to write.
    ReadOnlyGrant,
    /// The API token's scopes do not cover the request.
    Scope,
    /// No role that gives access to patient data.
    NoRole,
    /// A patient or caregiver asking to work the care team's alerts, tasks or care plans.
    NotCareStaff,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::AdminWithoutClinicalRole => "admin-without-clinical-role",
            Denial::NotOnCareTeam { .. } => "not-on-care-team",
            Denial::NotOwnRecord => "not-own-record",
            Denial::NoGrant => "no-caregiver-grant",
            Denial::ReadOnlyGrant => "read-only-grant",
            Denial::Scope => "token-scope",
            Denial::NoRole => "no-role",
            Denial::NotCareStaff => "not-care-staff",
        }
    }

    /// What to tell the person (no patient data).
    pub fn message(self) -> &'static str {
        match self {
            Denial::AdminWithoutClinicalRole => "Administrators do not see clinical data unless they also hold a clinical role.",
            Denial::NotOnCareTeam { break_glass_available: true } => "You are not on this patient's care team. In an emergency you can break the glass: state a reason to get time-limited access, which is recorded and reviewed.",
            Denial::NotOnCareTeam { break_glass_available: false } => "You are not on this patient's care team.",
            Denial::NotOwnRecord => "You can only see your own record.",
            Denial::NoGrant => "This patient has not given you access to their record.",
            Denial::ReadOnlyGrant => "This patient has given you read-only access.",
            Denial::Scope => "This token's scopes do not allow this request.",
            Denial::NoRole => "Your account has no role that gives access to patient data.",
            Denial::NotCareStaff => "Alerts, tasks and care plans are worked by the care team: ask them to change this one.",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Basis),
    Deny(Denial),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// May `principal` do `action` to the data of patient `patient_id`, given `facts`, at `now_ms`?
/// (The whole record, as a patient page shows it.)
pub fn decide(
    principal: &Principal,
    patient_id: &str,
    facts: &Facts,
    action: Action,
    now_ms: i64,
) -> Decision {
    decide_for_type(principal, patient_id, facts, action, None, now_ms)
}

/// [`decide`] for resources of one type (`Some("Observation")`), as the FHIR API asks: a token's
/// resource-level scopes (`user/Observation.read`) then count.
pub fn decide_for_type(
    principal: &Principal,
    patient_id: &str,
    facts: &Facts,
    action: Action,
    resource_type: Option<&str>,
    now_ms: i64,
) -> Decision {
    let own = principal.patient_id.as_deref() == Some(patient_id);
    if let Credential::Token { scopes, .. } = &principal.credential {
        let write = action == Action::Write;
        let covered = scopes
            .iter()
            .any(|s| s.allows(resource_type, write) && (s.context != Context::Patient || own));
        if !covered {
            return Decision::Deny(Denial::Scope);
        }
    }
    let mut denial = None;
    // Strongest basis first, so the audit trail names the ordinary relationship when there is one.
    if principal.roles.iter().any(|r| r.is_care_staff()) {
        if facts.care_team {
            return Decision::Allow(Basis::CareTeam);
        }
        denial = Some(Denial::NotOnCareTeam {
            break_glass_available: principal.may_break_glass(),
        });
    }
    if principal.has(Role::Patient) {
        if own {
            return Decision::Allow(Basis::OwnRecord);
        }
        denial = denial.or(Some(Denial::NotOwnRecord));
    }
    if principal.has(Role::Caregiver) {
        match facts.caregiver_grant {
            Some(can_write) if can_write || action != Action::Write => {
                return Decision::Allow(Basis::CaregiverGrant)
            }
            Some(_) => denial = denial.or(Some(Denial::ReadOnlyGrant)),
            None => denial = denial.or(Some(Denial::NoGrant)),
        }
    }
    if principal.roles.iter().any(|r| r.is_care_staff()) {
        if let Some(bg) = facts.break_glass.filter(|b| b.expires_at_ms > now_ms) {
            return Decision::Allow(Basis::BreakGlass { id: bg.id });
        }
    }
    Decision::Deny(denial.unwrap_or(if principal.is_admin() {
        Denial::AdminWithoutClinicalRole
    } else {
        Denial::NoRole
    }))
}

/// May `principal` work the care team's alerts, tasks and care plans of a patient (acknowledge,
/// snooze, dismiss or assign an alert, make or move on a task, start a care plan)? That is the
/// care team's own work: care staff who may change the record (on the care team, or through
/// break-the-glass). A patient or a caregiver adds to the record but does not close the team's
/// alerts or tasks.
pub fn decide_care_work(
    principal: &Principal,
    patient_id: &str,
    facts: &Facts,
    now_ms: i64,
) -> Decision {
    match decide(principal, patient_id, facts, Action::Write, now_ms) {
        Decision::Allow(b @ (Basis::CareTeam | Basis::BreakGlass { .. })) => Decision::Allow(b),
        Decision::Allow(_) => Decision::Deny(Denial::NotCareStaff),
        denied => denied,
    }
}

/// May `principal` read or change a resource outside every patient's compartment (the provider
/// directory: Practitioner, Organization, Location…)? Reading is open to every signed-in role,
/// within the token's scopes; changing it is for admins and care staff.
pub fn decide_directory(principal: &Principal, resource_type: &str, action: Action) -> Decision {
    if let Credential::Token { scopes, .. } = &principal.credential {
        let write = action == Action::Write;
        // A patient-context token is confined to the patient's compartment.
        let covered = scopes
            .iter()
            .any(|s| s.allows(Some(resource_type), write) && s.context != Context::Patient);
        if !covered {
            return Decision::Deny(Denial::Scope);
        }
    }
    let may = match action {
        Action::List | Action::Read => !principal.roles.is_empty(),
        Action::Write => principal.is_admin() || principal.roles.iter().any(|r| r.is_care_staff()),
    };
    if may {
        Decision::Allow(Basis::Directory)
    } else {
        Decision::Deny(Denial::NoRole)
    }
}

/// May `principal` create a new patient's record? Care staff may (they then join the new
/// patient's care team); a token also needs a Patient write scope outside a patient context.
pub fn decide_create_patient(principal: &Principal) -> Decision {
    if let Credential::Token { scopes, .. } = &principal.credential {
        let covered = scopes
            .iter()
            .any(|s| s.allows(Some("Patient"), true) && s.context != Context::Patient);
        if !covered {
            return Decision::Deny(Denial::Scope);
        }
    }
    if principal.roles.iter().any(|r| r.is_care_staff()) {
        Decision::Allow(Basis::CareTeam)
    } else {
        Decision::Deny(Denial::NoRole)
    }
}

/// May `principal` make one change to a resource of `resource_type` that belongs to patient
/// `old` before the change and `new` after it (both, when it moves; `None` for directory data)?
/// Patients in `created` are new records made by the same write: writing to them is decided by
/// [`decide_create_patient`]. This is what a FHIR batch or transaction entry asks, once the
/// importer knows which resource each entry is.
pub fn decide_change(
    principal: &Principal,
    facts: &UserFacts,
    resource_type: &str,
    old: Option<&str>,
    new: Option<&str>,
    created: &[&str],
    now_ms: i64,
) -> Decision {
    let patients: Vec<&str> = match (old, new) {
        (Some(a), Some(b)) if a == b => vec![a],
        (a, b) => a.into_iter().chain(b).collect(),
    };
    if patients.is_empty() {
        return decide_directory(principal, resource_type, Action::Write);
    }
    let mut decision = Decision::Deny(Denial::NoRole);
    for p in patients {
        decision = if created.contains(&p) {
            decide_create_patient(principal)
        } else {
            decide_for_type(
                principal,
                p,
                &facts.facts_for(p),
                Action::Write,
                Some(resource_type),
                now_ms,
            )
        };
        if !decision.is_allowed() {
            return decision;
        }
    }
    decision
}

/// Everything the store knows of one principal's relationships, for lists: the patients they
/// might see, each with its [`Facts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFacts {
    /// Patients whose care team the principal is on (CareTeam membership or panel).
    pub care_team: BTreeSet<String>,
    /// Caregiver grants: patient → can_write.
    pub grants: BTreeMap<String, bool>,
    /// Latest break-the-glass access per patient.
    pub break_glass: BTreeMap<String, BreakGlass>,
}

impl UserFacts {
    pub fn facts_for(&self, patient_id: &str) -> Facts {
        Facts {
            care_team: self.care_team.contains(patient_id),
            caregiver_grant: self.grants.get(patient_id).copied(),
            break_glass: self.break_glass.get(patient_id).copied(),
        }
    }
}

/// The patients `principal` may see in lists: every candidate the facts name, and their own
/// record, each passed through [`decide`].
pub fn visible_patients(principal: &Principal, facts: &UserFacts, now_ms: i64) -> Vec<String> {
    let mut candidates: BTreeSet<&str> = facts
        .care_team
        .iter()
        .chain(facts.grants.keys())
        .chain(facts.break_glass.keys())
        .map(String::as_str)
        .collect();
    if let Some(own) = &principal.patient_id {
        candidates.insert(own);
    }
    candidates
        .into_iter()
        .filter(|p| decide(principal, p, &facts.facts_for(p), Action::List, now_ms).is_allowed())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::parse_scopes;

    fn principal(roles: &[Role], patient: Option<&str>) -> Principal {
        Principal {
            user_id: 1,
            email: Email::parse("someone@example.org").unwrap(),
            name: "Someone".into(),
            roles: roles.to_vec(),
            patient_id: patient.map(str::to_owned),
            practitioner_id: None,
            credential: Credential::Session,
        }
    }

    const NOW: i64 = 1_000_000;

    #[test]
    fn care_staff_see_their_care_team_and_need_break_the_glass_for_others() {
        for role in [Role::Clinician, Role::Coordinator] {
            let p = principal(&[role], None);
            let team = Facts {
                care_team: true,
                ..Facts::default()
            };
            for action in [Action::List, Action::Read, Action::Write] {
                assert_eq!(
                    decide(&p, "p1", &team, action, NOW),
                    Decision::Allow(Basis::CareTeam)
                );
                assert_eq!(
                    decide(&p, "p1", &Facts::default(), action, NOW),
                    Decision::Deny(Denial::NotOnCareTeam {
                        break_glass_available: true
                    })
                );
            }
            let glass = Facts {
                break_glass: Some(BreakGlass {
                    id: 7,
                    expires_at_ms: NOW + 1,
                }),
                ..Facts::default()
            };
            assert_eq!(
                decide(&p, "p1", &glass, Action::Read, NOW),
                Decision::Allow(Basis::BreakGlass { id: 7 })
            );
            // Hard case B43: after expiry, access is denied again.
            assert!(!decide(&p, "p1", &glass, Action::Read, NOW + 1).is_allowed());
        }
    }

    #[test]
    fn admins_read_no_clinical_data_unless_they_hold_a_clinical_role() {
        let admin = principal(&[Role::Admin], None);
        let team = Facts {
            care_team: true,
            caregiver_grant: Some(true),
            ..Facts::default()
        };
        assert_eq!(
            decide(&admin, "p1", &team, Action::Read, NOW),
            Decision::Deny(Denial::AdminWithoutClinicalRole)
        );
        let both = principal(&[Role::Admin, Role::Clinician], None);
        assert!(decide(&both, "p1", &team, Action::Read, NOW).is_allowed());
    }

    #[test]
    fn patients_see_only_their_own_record_and_caregivers_what_was_granted() {
        let patient = principal(&[Role::Patient], Some("p1"));
        assert_eq!(
            decide(&patient, "p1", &Facts::default(), Action::Write, NOW),
            Decision::Allow(Basis::OwnRecord)
        );
        assert_eq!(
            decide(
                &patient,
                "p2",
                &Facts {
                    care_team: true,
                    ..Facts::default()
                },
                Action::Read,
                NOW
            ),
            Decision::Deny(Denial::NotOwnRecord)
        );
        let carer = principal(&[Role::Caregiver], None);
        let read_only = Facts {
            caregiver_grant: Some(false),
            ..Facts::default()
        };
        assert!(decide(&carer, "p1", &read_only, Action::Read, NOW).is_allowed());
        assert_eq!(
            decide(&carer, "p1", &read_only, Action::Write, NOW),
            Decision::Deny(Denial::ReadOnlyGrant)
        );
        assert_eq!(
            decide(&carer, "p1", &Facts::default(), Action::Read, NOW),
            Decision::Deny(Denial::NoGrant)
        );
        // A caregiver cannot break the glass.
        let glass = Facts {
            break_glass: Some(BreakGlass {
                id: 1,
                expires_at_ms: NOW + 10,
            }),
            ..Facts::default()
        };
        assert!(!decide(&carer, "p1", &glass, Action::Read, NOW).is_allowed());
    }

    #[test]
    fn token_scopes_narrow_access_and_patient_scopes_confine_to_the_own_record() {
        let mut p = principal(&[Role::Clinician, Role::Patient], Some("me"));
        let team = Facts {
            care_team: true,
            ..Facts::default()
        };
        p.credential = Credential::Token {
            token_id: 1,
            scopes: parse_scopes("user/*.read").unwrap(),
        };
        assert!(decide(&p, "p1", &team, Action::Read, NOW).is_allowed());
        assert_eq!(
            decide(&p, "p1", &team, Action::Write, NOW),
            Decision::Deny(Denial::Scope)
        );
        p.credential = Credential::Token {
            token_id: 1,
            scopes: parse_scopes("patient/*.*").unwrap(),
        };
        assert_eq!(
            decide(&p, "p1", &team, Action::Read, NOW),
            Decision::Deny(Denial::Scope)
        );
        assert!(decide(&p, "me", &Facts::default(), Action::Write, NOW).is_allowed());
        // A resource-level scope does not cover a whole patient page.
        p.credential = Credential::Token {
            token_id: 1,
            scopes: parse_scopes("user/Observation.read").unwrap(),
        };
        assert_eq!(
            decide(&p, "p1", &team, Action::Read, NOW),
            Decision::Deny(Denial::Scope)
        );
        assert!(!p.may_break_glass());
    }

    #[test]
    fn resource_level_scopes_count_for_one_type_and_directory_reads_are_open_to_every_role() {
        let mut p = principal(&[Role::Clinician], None);
        let team = Facts {
            care_team: true,
            ..Facts::default()
        };
        p.credential = Credential::Token {
            token_id: 1,
            scopes: parse_scopes("user/Observation.read").unwrap(),
        };
        assert!(
            decide_for_type(&p, "p1", &team, Action::Read, Some("Observation"), NOW).is_allowed()
        );
        assert_eq!(
            decide_for_type(&p, "p1", &team, Action::Read, Some("Condition"), NOW),
            Decision::Deny(Denial::Scope)
        );
        assert_eq!(
            decide_directory(&p, "Practitioner", Action::Read),
            Decision::Deny(Denial::Scope)
        );
        let carer = principal(&[Role::Caregiver], None);
        assert_eq!(
            decide_directory(&carer, "Practitioner", Action::Read),
            Decision::Allow(Basis::Directory)
        );
        assert_eq!(
            decide_directory(&carer, "Practitioner", Action::Write),
            Decision::Deny(Denial::NoRole)
        );
        let mut patient = principal(&[Role::Patient], Some("me"));
        patient.credential = Credential::Token {
            token_id: 2,
            scopes: parse_scopes("patient/*.read").unwrap(),
        };
        assert_eq!(
            decide_directory(&patient, "Organization", Action::Read),
            Decision::Deny(Denial::Scope)
        );
    }

    #[test]
    fn the_visible_list_is_the_allowed_candidates() {
        let p = principal(&[Role::Coordinator], None);
        let mut facts = UserFacts::default();
        facts.care_team.insert("a".into());
        facts.break_glass.insert(
            "b".into(),
            BreakGlass {
                id: 1,
                expires_at_ms: NOW + 5,
            },
        );
        facts.break_glass.insert(
            "c".into(),
            BreakGlass {
                id: 2,
                expires_at_ms: NOW - 5,
            },
        );
        facts.grants.insert("d".into(), false);
        assert_eq!(
            visible_patients(&p, &facts, NOW),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}
