//! The web side of the one authorisation point: every handler that touches a patient's data
//! calls [`require`] (or [`visible`] for lists) before it reads, and [`record`] once it has what
//! it will show. A refusal is recorded here, so every request that reaches patient data leaves
//! exactly one audit record.

use rapport_access::audit::AuditRecord;
use rapport_access::policy::{Action, Decision, Denial};

use crate::{AppState, Caller, WebError};

/// Permission to act on one patient, with the decision the audit record will name.
#[derive(Debug, Clone)]
pub(crate) struct Granted {
    pub decision: Decision,
    pub patient: String,
    pub action: Action,
    /// The facts the decision was made on, so that a handler can ask a second question (may
    /// this reader also write?) without gathering them again.
    pub facts: rapport_access::Facts,
}

impl Granted {
    /// Would `action` be allowed too, on the same facts?
    pub(crate) fn also_allows(&self, caller: &Caller, action: Action, now_ms: i64) -> bool {
        rapport_access::decide(
            &caller.principal,
            &self.patient,
            &self.facts,
            action,
            now_ms,
        )
        .is_allowed()
    }
}

impl Granted {
    /// May this person also work the care team's alerts, tasks and care plans, on the same facts?
    pub(crate) fn allows_care_work(&self, caller: &Caller, now_ms: i64) -> bool {
        rapport_access::policy::decide_care_work(
            &caller.principal,
            &self.patient,
            &self.facts,
            now_ms,
        )
        .is_allowed()
    }

    /// The audit record of this access, for writes that append it in their own transaction.
    pub(crate) fn record(
        &self,
        caller: &Caller,
        entities: Vec<String>,
        now_ms: i64,
    ) -> AuditRecord {
        rapport_auth::access_record(
            &caller.principal,
            &caller.source,
            self.decision,
            self.action,
            Some(&self.patient),
            entities,
            now_ms,
        )
    }
}

/// Decide whether `caller` may do `action` to `patient`. A refusal is audited and becomes a 403
/// that, for care staff in person, offers break-the-glass.
pub(crate) async fn require(
    state: &AppState,
    caller: &Caller,
    patient: &str,
    action: Action,
) -> Result<Granted, WebError> {
    require_as(state, caller, patient, action, false).await
}

/// [`require`] for the care team's own work on a patient's alerts, tasks and care plans
/// (`rapport_access::policy::decide_care_work`): care staff only; audited as a write.
pub(crate) async fn require_care_work(
    state: &AppState,
    caller: &Caller,
    patient: &str,
) -> Result<Granted, WebError> {
    require_as(state, caller, patient, Action::Write, true).await
}

async fn require_as(
    state: &AppState,
    caller: &Caller,
    patient: &str,
    action: Action,
    care_work: bool,
) -> Result<Granted, WebError> {
    if !rapport_fhir::id::is_valid_id(patient) {
        return Err(WebError::NotFound);
    }
    let now = state.clock.now_ms();
    let (principal, id) = (caller.principal.clone(), patient.to_owned());
    let facts = state
        .with_auth(move |s| rapport_auth::facts_for(s, &principal, &id, now))
        .await?;
    let decision = if care_work {
        rapport_access::policy::decide_care_work(&caller.principal, patient, &facts, now)
    } else {
        rapport_access::decide(&caller.principal, patient, &facts, action, now)
    };
    let granted = Granted {
        decision,
        patient: patient.to_owned(),
        action,
        facts,
    };
    match decision {
        Decision::Allow(_) => Ok(granted),
        Decision::Deny(denial) => {
            let entities = vec![format!("Patient/{patient}")];
            record(state, caller, &granted, entities).await?;
            let break_glass_for = match (denial, caller.csrf()) {
                (
                    Denial::NotOnCareTeam {
                        break_glass_available: true,
                    },
                    Some(csrf),
                ) => Some((patient.to_owned(), csrf.to_owned())),
                _ => None,
            };
            Err(WebError::Forbidden {
                message: denial.message().to_owned(),
                break_glass_for,
            })
        }
    }
}

/// Write the audit record of an access (allowed or refused), durably, before answering.
pub(crate) async fn record(
    state: &AppState,
    caller: &Caller,
    granted: &Granted,
    entities: Vec<String>,
) -> Result<(), WebError> {
    let record = granted.record(caller, entities, state.clock.now_ms());
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await
}

/// The patients `caller` may see in lists. Admins without a clinical role are refused (audited).
pub(crate) async fn visible(state: &AppState, caller: &Caller) -> Result<Vec<String>, WebError> {
    let now = state.clock.now_ms();
    let p = &caller.principal;
    if p.roles.iter().all(|r| *r == rapport_access::Role::Admin) {
        let record = rapport_auth::access_record(
            p,
            &caller.source,
            Decision::Deny(Denial::AdminWithoutClinicalRole),
            Action::List,
            None,
            Vec::new(),
            now,
        );
        state
            .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
            .await?;
        return Err(WebError::Forbidden {
            message: Denial::AdminWithoutClinicalRole.message().to_owned(),
            break_glass_for: None,
        });
    }
    let principal = p.clone();
    state
        .with_auth(move |s| rapport_auth::visible_patients(s, &principal, now))
        .await
}

/// Record a list: which patients were shown.
pub(crate) async fn record_list(
    state: &AppState,
    caller: &Caller,
    shown: Vec<String>,
) -> Result<(), WebError> {
    let now = state.clock.now_ms();
    let basis = if caller.principal.patient_id.is_some() && shown.len() <= 1 {
        rapport_access::policy::Basis::OwnRecord
    } else {
        rapport_access::policy::Basis::CareTeam
    };
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        Decision::Allow(basis),
        Action::List,
        None,
        shown.iter().map(|p| format!("Patient/{p}")).collect(),
        now,
    );
    record.basis = "visible-patients".into();
    record.detail = format!("{} patients shown", shown.len());
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await
}
