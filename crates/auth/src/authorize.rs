//! The authorisation point: every read or write of a patient's data asks [`authorize`] (one
//! patient) or [`visible_patients`] (lists), and records the outcome with [`record_access`].

use std::collections::BTreeSet;

use rapport_access::audit::{AuditAction, AuditRecord, Outcome};
use rapport_access::policy::{
    self, Action, Basis, BreakGlass, Decision, Facts, Principal, UserFacts,
};
use rapport_fhir::query::{Clause, Query};
use rapport_store::{Durability, ResourceKey, Store};
use serde_json::Value;

use crate::{actor_of, Result};

/// Patients whose active CareTeams list the practitioner as a participant (FHIR R4
/// careteam.html: `CareTeam.participant.member`, `CareTeam.subject`). A team that is inactive,
/// entered in error, or whose period has ended gives no access.
pub fn care_team_patients(
    store: &dyn Store,
    practitioner_id: &str,
    patient: Option<&str>,
    now_ms: i64,
) -> Result<BTreeSet<String>> {
    let mut clauses = vec![Clause::Reference {
        param: "participant",
        target_type: "Practitioner".into(),
        target_id: practitioner_id.into(),
    }];
    if let Some(p) = patient {
        clauses.push(Clause::Reference {
            param: "subject",
            target_type: "Patient".into(),
            target_id: p.into(),
        });
    }
    // A practitioner's teams: all of them (a GP may be on thousands).
    let ids = store.search_ids(
        &Query {
            resource_type: "CareTeam".into(),
            clauses,
        },
        1_000_000,
    )?;
    let keys: Vec<ResourceKey> = ids
        .into_iter()
        .map(|id| ResourceKey::new("CareTeam", id))
        .collect();
    let mut out = BTreeSet::new();
    for team in store.read_many(&keys)? {
        let Ok(v) = serde_json::from_str::<Value>(&team.content) else {
            continue;
        };
        if matches!(
            v.get("status").and_then(Value::as_str),
            Some("inactive" | "entered-in-error")
        ) {
            continue;
        }
        let ended = v
            .pointer("/period/end")
            .and_then(Value::as_str)
            .and_then(rapport_fhir::date::parse_range)
            .is_some_and(|r| r.end <= now_ms);
        if ended {
            continue;
        }
        if let Some(subject) = v.pointer("/subject/reference").and_then(Value::as_str) {
            if let Some(id) = subject.strip_prefix("Patient/") {
                out.insert(id.to_owned());
            }
        }
    }
    Ok(out)
}

/// Everything the store knows of the principal's relationships (for `patient` only, if given).
pub fn user_facts(
    store: &dyn Store,
    principal: &Principal,
    patient: Option<&str>,
    now_ms: i64,
) -> Result<UserFacts> {
    let rows = store.access_rows(principal.user_id, patient)?;
    let mut facts = UserFacts::default();
    facts.care_team.extend(rows.assigned);
    if principal.roles.iter().any(|r| r.is_care_staff()) {
        // The principal is read from the account on every request (session or token lookup),
        // so its Practitioner link is current.
        if let Some(pid) = &principal.practitioner_id {
            facts
                .care_team
                .extend(care_team_patients(store, pid, patient, now_ms)?);
        }
    }
    facts.grants.extend(rows.grants);
    for (p, id, expires_at_ms) in rows.break_glass {
        facts
            .break_glass
            .insert(p, BreakGlass { id, expires_at_ms });
    }
    Ok(facts)
}

/// The facts about one patient.
pub fn facts_for(
    store: &dyn Store,
    principal: &Principal,
    patient: &str,
    now_ms: i64,
) -> Result<Facts> {
    Ok(user_facts(store, principal, Some(patient), now_ms)?.facts_for(patient))
}

/// May `principal` do `action` to `patient`'s data now?
pub fn authorize(
    store: &dyn Store,
    principal: &Principal,
    patient: &str,
    action: Action,
    now_ms: i64,
) -> Result<Decision> {
    let facts = facts_for(store, principal, patient, now_ms)?;
    Ok(policy::decide(principal, patient, &facts, action, now_ms))
}

/// May `principal` do `action` to a resource of `resource_type` that belongs to `patient` (or,
/// with `None`, to no patient: directory data)? The FHIR API asks this per resource.
pub fn authorize_resource(
    store: &dyn Store,
    principal: &Principal,
    patient: Option<&str>,
    resource_type: &str,
    action: Action,
    now_ms: i64,
) -> Result<Decision> {
    Ok(match patient {
        Some(p) => {
            let facts = facts_for(store, principal, p, now_ms)?;
            policy::decide_for_type(principal, p, &facts, action, Some(resource_type), now_ms)
        }
        None => policy::decide_directory(principal, resource_type, action),
    })
}

/// The patients `principal` may see in lists and searches.
pub fn visible_patients(
    store: &dyn Store,
    principal: &Principal,
    now_ms: i64,
) -> Result<Vec<String>> {
    let facts = user_facts(store, principal, None, now_ms)?;
    Ok(policy::visible_patients(principal, &facts, now_ms))
}

/// The audit record of an access decision.
pub fn access_record(
    principal: &Principal,
    source: &str,
    decision: Decision,
    action: Action,
    patient: Option<&str>,
    entities: Vec<String>,
    now_ms: i64,
) -> AuditRecord {
    let (outcome, basis, flagged) = match decision {
        Decision::Allow(b) => (
            Outcome::Success,
            b.as_str().to_owned(),
            matches!(b, Basis::BreakGlass { .. }),
        ),
        Decision::Deny(d) => (Outcome::Denied, d.as_str().to_owned(), false),
    };
    AuditRecord {
        recorded_ms: now_ms,
        actor: actor_of(principal),
        action: match action {
            Action::List => AuditAction::List,
            Action::Read => AuditAction::Read,
            Action::Write => AuditAction::Write,
        },
        outcome,
        patient_id: patient.map(str::to_owned),
        entities,
        source: source.to_owned(),
        basis,
        purpose: None,
        // Reads under break-the-glass are flagged for review with the access itself.
        flagged,
        // Requests made with an API token say which one.
        detail: match &principal.credential {
            rapport_access::policy::Credential::Token { token_id, .. } => {
                format!("via API token #{token_id}")
            }
            rapport_access::policy::Credential::Session => String::new(),
        },
    }
}

/// Record a read (or a refused request) in the audit trail, durably, before the data is shown.
/// `touch_session` also refreshes the session's idle timer in the same transaction.
pub fn record_access(
    store: &dyn Store,
    record: &AuditRecord,
    touch_session: Option<(&[u8; 32], i64)>,
) -> Result<i64> {
    let Some((hash, now)) = touch_session else {
        return Ok(store.append_audit_committed(record)?);
    };
    let mut seq = 0;
    store.write(Durability::Immediate, &mut |tx| {
        tx.touch_session(hash, now)?;
        seq = tx.append_audit(record)?;
        Ok(())
    })?;
    Ok(seq)
}

/// The resources among `found` that `principal` may read, for search results: one gathering of
/// the account's relationships, then the decision per resource by the patient it belongs to
/// (hard case B41: what may not be read is left out, and not counted).
pub fn readable(
    store: &dyn Store,
    principal: &Principal,
    found: Vec<rapport_store::StoredResource>,
    now_ms: i64,
) -> Result<Vec<rapport_store::StoredResource>> {
    let allowed = readable_keys(
        store,
        principal,
        found
            .iter()
            .map(|r| (r.key.resource_type.as_str(), r.patient_key.as_deref())),
        now_ms,
    )?;
    Ok(found
        .into_iter()
        .zip(allowed)
        .filter_map(|(r, ok)| ok.then_some(r))
        .collect())
}

/// Whether `principal` may read each resource given by its type and patient key (the patient it
/// belongs to, `None` for directory resources), in order: [`readable`] before the content is
/// read, so that a search authorises its matches and reads only the page it shows.
pub fn readable_keys<'a>(
    store: &dyn Store,
    principal: &Principal,
    items: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    now_ms: i64,
) -> Result<Vec<bool>> {
    let items: Vec<(&str, Option<&str>)> = items.into_iter().collect();
    // Only the relationships that matter: none for directory data, one patient's for a search
    // within a patient's record (the usual case), else all of the account's.
    let mut patients = items.iter().filter_map(|(_, p)| *p);
    let facts = match patients.next() {
        None => UserFacts::default(),
        Some(first) if patients.all(|p| p == first) => {
            user_facts(store, principal, Some(first), now_ms)?
        }
        Some(_) => user_facts(store, principal, None, now_ms)?,
    };
    Ok(items
        .into_iter()
        .map(|(ty, patient_key)| {
            // The patient key was indexed when the version was written.
            let decision = match patient_key {
                Some(p) => policy::decide_for_type(
                    principal,
                    p,
                    &facts.facts_for(p),
                    Action::Read,
                    Some(ty),
                    now_ms,
                ),
                None => policy::decide_directory(principal, ty, Action::Read),
            };
            decision.is_allowed()
        })
        .collect())
}
