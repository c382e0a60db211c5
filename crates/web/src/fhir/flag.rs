//! Care-team alerts as FHIR R4 Flags (flag.html: "a warning about a subject of interest to
//! providers"). An alert is derived by the rules from the patient's data and the time, never
//! typed in (ARCHITECTURE, invariants), so `Flag` is a read-only view of the alert rows: read
//! and search, each authorised as a read of the alert's patient and audited; every write of a
//! Flag is refused (405) and people change an alert on the Today page. A Flag's id is its
//! alert's number, stable for the alert's whole life.
//!
//! Mapping: `status` active while the alert is open (new, acknowledged, snoozed), inactive once
//! dismissed or resolved; `category` the rule's flag-category; `code` the rule (Rapport's code
//! system) with the alert's own words as text; `period` from raised to resolved; the standard
//! extensions flag-priority (severity) and flag-detail (the resource it is about), and Rapport's
//! own for the lifecycle state, due date, snooze and reason.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_store::alerts::{status, StoredAlert};
use serde_json::{json, Value};

use super::{
    authorise_read_of, check_format, fhir_base, percent_decode, FormatParam, Outcome,
    DEFAULT_COUNT, FHIR_JSON, MAX_COUNT, MAX_MATCHES,
};
use crate::{AppState, Caller};

pub(super) const TYPE: &str = "Flag";

/// Rapport's code system for its alert rules (the code is the rule's id).
pub(crate) const RULE_SYSTEM: &str = "urn:rapport:alert-rule";
/// The identifier of an alert: rule and cause, unique per patient.
const ALERT_SYSTEM: &str = "urn:rapport:alert";
/// Rapport's extensions on a Flag (the state the Flag resource has no element for).
pub(crate) const EXT_STATE: &str = "urn:rapport:fhir:alert-state";
const EXT_DUE: &str = "urn:rapport:fhir:alert-due";
const EXT_SNOOZED_UNTIL: &str = "urn:rapport:fhir:alert-snoozed-until";
const EXT_REASON: &str = "urn:rapport:fhir:alert-reason";
/// flag.html extensions from the core specification (extension-definitions).
const EXT_PRIORITY: &str = "http://hl7.org/fhir/StructureDefinition/flag-priority";
const EXT_DETAIL: &str = "http://hl7.org/fhir/StructureDefinition/flag-detail";

/// The search parameters the Flag view answers (listed as such in the CapabilityStatement):
/// `patient` and `subject` (flag.html#search), `_id`, and `status`, which R4 does not define for
/// Flag but which is what a client of an alert list asks first.
pub(super) const SEARCH_PARAMS: [(&str, &str); 4] = [
    ("patient", "reference"),
    ("subject", "reference"),
    ("_id", "token"),
    ("status", "token"),
];

/// Flag's entry in the CapabilityStatement: read and search only.
pub(super) fn capability() -> Value {
    json!({
        "type": TYPE,
        "documentation": "Rapport's care-team alerts, derived from the patient's data by the alert rules (`rapport alerts rules`): read and search only; they are acknowledged, snoozed or dismissed on the Today page.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "searchParam": SEARCH_PARAMS
            .iter()
            .map(|(name, kind)| json!({"name": name, "type": kind}))
            .collect::<Vec<_>>(),
    })
}

/// An alert as a FHIR R4 Flag, as `reader` may see it: the reason a person gave for dismissing
/// it is the care team's note, shown to care staff only (a patient reading their own Flags, or a
/// caregiver, sees that it was dismissed, not why).
pub(crate) fn flag_for(a: &StoredAlert, reader: &rapport_access::policy::Principal) -> Value {
    let mut flag = flag_of(a);
    if !reader.roles.iter().any(|r| r.is_care_staff()) {
        if let Some(ext) = flag["extension"].as_array_mut() {
            ext.retain(|e| e["url"] != EXT_REASON);
        }
    }
    flag
}

/// An alert as a FHIR R4 Flag.
pub(crate) fn flag_of(a: &StoredAlert) -> Value {
    let c = &a.candidate;
    let rule = rapport_alerts::rule(&c.rule);
    let open = status::OPEN.contains(&a.status.as_str());
    // flag-priority-code: PH high, PM medium, PL low (a critical alert is high priority).
    let (priority, priority_display) = match c.severity {
        0 | 1 => ("PH", "High priority"),
        2 => ("PM", "Medium priority"),
        _ => ("PL", "Low priority"),
    };
    let mut extension = vec![
        json!({"url": EXT_PRIORITY, "valueCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/flag-priority-code", "code": priority, "display": priority_display}]}}),
        json!({"url": EXT_STATE, "valueCode": a.status}),
    ];
    if let Some(focus) = &c.focus {
        extension.push(json!({"url": EXT_DETAIL, "valueReference": {"reference": focus}}));
    }
    if let Some(due) = c.due_ms {
        extension.push(
            json!({"url": EXT_DUE, "valueDateTime": rapport_fhir::date::format_instant(due)}),
        );
    }
    if let (status::SNOOZED, Some(until)) = (a.status.as_str(), a.snoozed_until_ms) {
        extension.push(json!({"url": EXT_SNOOZED_UNTIL, "valueDateTime": rapport_fhir::date::format_instant(until)}));
    }
    if let Some(reason) = a.reason.as_deref().filter(|r| !r.is_empty()) {
        extension.push(json!({"url": EXT_REASON, "valueString": reason}));
    }
    let mut period = json!({"start": rapport_fhir::date::format_instant(a.raised_ms)});
    if !open {
        let end = a.resolved_ms.unwrap_or(a.updated_ms);
        period["end"] = json!(rapport_fhir::date::format_instant(end));
    }
    let category = rule.map(|r| r.flag_category).unwrap_or("clinical");
    json!({
        "resourceType": TYPE,
        "id": a.alert_id.to_string(),
        "meta": {"lastUpdated": rapport_fhir::date::format_instant(a.updated_ms)},
        "extension": extension,
        "identifier": [{"system": ALERT_SYSTEM, "value": format!("{}|{}", c.rule, c.cause)}],
        "status": if open { "active" } else { "inactive" },
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": category}]}],
        "code": {
            "coding": [{"system": RULE_SYSTEM, "code": c.rule, "display": rule.map(|r| r.name).unwrap_or(c.rule.as_str())}],
            "text": format!("{}: {}", c.title, c.why),
        },
        "subject": {"reference": format!("Patient/{}", a.patient_key)},
        "period": period,
        "author": {"display": "Rapport alert rules"},
    })
}

/// `PUT`, `POST`, `PATCH`, `DELETE` and history of a Flag: refused, naming where alerts are
/// changed.
pub(super) fn refuse_write(ty: &str) -> Result<(), Outcome> {
    if ty == TYPE {
        return Err(Outcome::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            "Flags are Rapport's alerts, raised and resolved by the alert rules from the patient's \
             data: they can be read and searched; acknowledge, snooze or dismiss them on the Today page",
        )
        .at("Flag"));
    }
    Ok(())
}

/// `GET /fhir/Flag/{id}`.
pub(super) async fn read(
    state: AppState,
    caller: Caller,
    id: &str,
    q: &FormatParam,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    check_format(q, headers)?;
    let not_found = || {
        Outcome::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("Flag/{id} is not known"),
        )
    };
    let alert_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    let alert = state
        .with_store(move |s| s.alert(alert_id))
        .await?
        .ok_or_else(not_found)?;
    authorise_read_of(
        &state,
        &caller,
        TYPE,
        Some(alert.patient_key.clone()),
        format!("Flag/{id}"),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, FHIR_JSON.to_owned()),
            (
                header::LAST_MODIFIED,
                super::http_date(alert.updated_ms).to_owned(),
            ),
        ],
        flag_for(&alert, &caller.principal).to_string(),
    )
        .into_response())
}

/// `GET /fhir/Flag?…` and `POST /fhir/Flag/_search`: the alerts of the patients named (or, with
/// no patient, the open alerts of every patient the caller may see), by alert number; only those
/// the caller may read are returned or counted (hard case B41).
pub(super) async fn search(
    state: AppState,
    caller: Caller,
    raw: &str,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    let strict = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("handling=strict"));
    let mut patients: Option<Vec<String>> = None;
    let mut statuses: Option<Vec<String>> = None;
    let mut ids: Option<Vec<i64>> = None;
    let mut count = DEFAULT_COUNT;
    let mut summary_count = false;
    let mut offset = 0usize;
    let mut format = FormatParam::default();
    let mut kept: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        let bad = |m: String| Outcome::new(StatusCode::BAD_REQUEST, "invalid", m).at(name.clone());
        let values = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match name.as_str() {
            "patient" | "subject" => {
                let mut list = Vec::new();
                for v in values() {
                    // `Patient/id`, an absolute URL ending so, or (for `patient`) the bare id.
                    let id = v
                        .rsplit_once("Patient/")
                        .filter(|(base, _)| base.is_empty() || base.ends_with('/'))
                        .map(|(_, id)| id)
                        .or((name == "patient").then_some(v))
                        .filter(|id| rapport_fhir::id::is_valid_id(id))
                        .ok_or_else(|| {
                            bad(format!(
                                "{name} must be Patient/id (a Flag here is always about a patient), not '{v}'"
                            ))
                        })?;
                    list.push(id.to_owned());
                }
                // Two criteria on the patient are both required (search.html#combining).
                patients = Some(match patients {
                    Some(before) => before.into_iter().filter(|p| list.contains(p)).collect(),
                    None => list,
                });
            }
            "status" => {
                let list: Vec<String> = values().map(str::to_owned).collect();
                if let Some(v) = list
                    .iter()
                    .find(|v| !matches!(v.as_str(), "active" | "inactive"))
                {
                    return Err(bad(format!(
                        "a Flag's status is active or inactive (flag-status), not '{v}'"
                    )));
                }
                statuses = Some(list);
            }
            "_id" => {
                ids = Some(values().filter_map(|v| v.parse().ok()).collect());
            }
            "_count" => {
                count = value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("_count must be a number, not '{value}'")))?
                    .min(MAX_COUNT);
                continue;
            }
            "_offset" => {
                offset = value
                    .parse()
                    .map_err(|_| bad(format!("_offset must be a number, not '{value}'")))?;
                continue;
            }
            "_format" => {
                format.format = Some(value.clone());
                continue;
            }
            "_summary" if value == "count" => {
                summary_count = true;
                continue;
            }
            // A modifier changes what a parameter means: one not understood is refused
            // (search.html#modifiers), never ignored.
            other if other.contains(':') => {
                return Err(bad(format!(
                    "'{other}': Flag search takes no modifiers (patient, subject, _id, status)"
                )))
            }
            other if strict => {
                return Err(bad(format!(
                "'{other}' is not a search parameter of Flag here (patient, subject, _id, status)"
            )))
            }
            other => {
                warnings.push(format!(
                    "the parameter '{other}' is not supported for Flag and was ignored"
                ));
                continue;
            }
        }
        kept.push(part.to_owned());
    }
    check_format(&format, headers)?;
    let wants = |statuses: &Option<Vec<String>>, open: bool| {
        statuses.as_ref().is_none_or(|s| {
            s.iter()
                .any(|v| v == if open { "active" } else { "inactive" })
        })
    };
    // With no patient named, the open alerts of everyone visible (what the care team works
    // from); closed ones are listed per patient.
    if patients.is_none() && ids.is_none() && statuses.is_none() {
        statuses = Some(vec!["active".to_owned()]);
    }
    let closed_too = wants(&statuses, false);
    let now = state.clock.now_ms();
    let principal = caller.principal.clone();
    let named = patients.clone();
    let wanted_ids = ids.clone();
    let found = state
        .with_auth(move |s| {
            let alerts: Vec<StoredAlert> =
                match named {
                    Some(list) => {
                        let mut out = Vec::new();
                        for p in &list {
                            out.extend(s.patient_alerts(p, closed_too)?);
                        }
                        out
                    }
                    // Flags asked for by id: those alerts, open or closed.
                    None if wanted_ids.is_some() => {
                        let mut out = Vec::new();
                        for id in wanted_ids.iter().flatten() {
                            out.extend(s.alert(*id)?);
                        }
                        out
                    }
                    None if closed_too => return Ok(Err(
                        "inactive Flags are listed per patient: give patient=… (or status=active)",
                    )),
                    None => {
                        let visible = rapport_auth::visible_patients(s, &principal, now)?;
                        // Open alerts, snoozed ones included (`now` past every snooze).
                        s.showing_alerts(&visible, i64::MAX, MAX_MATCHES + 1)?
                    }
                };
            let allowed = rapport_auth::readable_keys(
                s,
                &principal,
                alerts.iter().map(|a| (TYPE, Some(a.patient_key.as_str()))),
                now,
            )?;
            Ok(Ok(alerts
                .into_iter()
                .zip(allowed)
                .filter_map(|(a, ok)| ok.then_some(a))
                .collect::<Vec<_>>()))
        })
        .await?
        .map_err(|m| Outcome::new(StatusCode::BAD_REQUEST, "required", m).at("patient"))?;
    let mut matches: Vec<StoredAlert> = found
        .into_iter()
        .filter(|a| wants(&statuses, status::OPEN.contains(&a.status.as_str())))
        .filter(|a| ids.as_ref().is_none_or(|ids| ids.contains(&a.alert_id)))
        .collect();
    if matches.len() as u64 > MAX_MATCHES {
        return Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "too-costly",
            format!("more than {MAX_MATCHES} Flags match; name a patient"),
        ));
    }
    matches.sort_by_key(|a| a.alert_id);
    let total = matches.len();
    // `_summary=count` and `_count=0` answer the total alone (search.html#summary).
    if summary_count {
        count = 0;
    }
    let page: Vec<&StoredAlert> = matches.iter().skip(offset).take(count).collect();
    let more = count > 0 && offset + page.len() < total;

    super::search::record_search(
        &state,
        &caller,
        TYPE,
        page.iter()
            .map(|a| format!("Flag/{}", a.alert_id))
            .collect(),
        &kept,
        total,
        now,
    )
    .await?;

    let base = fhir_base(&state, headers);
    let link = |offset: usize| {
        let mut parts = kept.clone();
        parts.push(format!("_count={count}"));
        parts.push(format!("_offset={offset}"));
        format!("{base}/Flag?{}", parts.join("&"))
    };
    let mut links = vec![json!({"relation": "self", "url": link(offset)})];
    if more {
        links.push(json!({"relation": "next", "url": link(offset + count)}));
    }
    if offset > 0 {
        links.push(json!({"relation": "previous", "url": link(offset.saturating_sub(count))}));
    }
    let mut entries: Vec<Value> = page
        .iter()
        .map(|a| {
            json!({
                "fullUrl": format!("{base}/Flag/{}", a.alert_id),
                "resource": flag_for(a, &caller.principal),
                "search": {"mode": "match"},
            })
        })
        .collect();
    if !warnings.is_empty() {
        let issues: Vec<Value> = warnings
            .iter()
            .map(|w| json!({"severity": "warning", "code": "not-supported", "diagnostics": w}))
            .collect();
        entries.push(json!({"resource": {"resourceType": "OperationOutcome", "issue": issues}, "search": {"mode": "outcome"}}));
    }
    let body = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    });
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_store::alerts::AlertCandidate;

    fn alert(status: &str) -> StoredAlert {
        StoredAlert {
            alert_id: 42,
            patient_key: "p1".into(),
            candidate: AlertCandidate {
                rule: "refill-due".into(),
                cause: "MedicationRequest/7@2026-12-02".into(),
                severity: 1,
                title: "Refill due".into(),
                why: "Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026, runs out 2 Dec 2026"
                    .into(),
                due_ms: Some(1_764_633_600_000),
                focus: Some("MedicationRequest/7".into()),
            },
            status: status.into(),
            raised_ms: 1_764_028_800_000,
            updated_ms: 1_764_115_200_000,
            snoozed_until_ms: None,
            reason: None,
            assigned_to: None,
            resolved_ms: (status == "resolved").then_some(1_764_201_600_000),
        }
    }

    #[test]
    fn an_open_alert_is_an_active_flag_that_validates() {
        let flag = flag_of(&alert("acknowledged"));
        assert_eq!(flag["status"], "active");
        assert_eq!(flag["id"], "42");
        assert_eq!(flag["subject"]["reference"], "Patient/p1");
        assert_eq!(flag["category"][0]["coding"][0]["code"], "drug");
        assert_eq!(flag["code"]["coding"][0]["code"], "refill-due");
        assert_eq!(
            flag["code"]["text"],
            "Refill due: Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026, runs out 2 Dec 2026"
        );
        assert_eq!(flag["period"]["start"], "2025-11-25T00:00:00.000Z");
        assert!(flag["period"].get("end").is_none());
        let ext = |url: &str| {
            flag["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"] == url)
                .cloned()
        };
        assert_eq!(
            ext(EXT_PRIORITY).unwrap()["valueCodeableConcept"]["coding"][0]["code"],
            "PH"
        );
        assert_eq!(
            ext(EXT_DETAIL).unwrap()["valueReference"]["reference"],
            "MedicationRequest/7"
        );
        assert_eq!(ext(EXT_STATE).unwrap()["valueCode"], "acknowledged");
        assert_eq!(
            rapport_fhir::validate::validate(&flag),
            Vec::new(),
            "a Flag valid against the R4 definitions"
        );
    }

    #[test]
    fn a_resolved_alert_is_an_inactive_flag_with_an_end() {
        let flag = flag_of(&alert("resolved"));
        assert_eq!(flag["status"], "inactive");
        assert_eq!(flag["period"]["end"], "2025-11-27T00:00:00.000Z");
        assert_eq!(rapport_fhir::validate::validate(&flag), Vec::new());
    }

    #[test]
    fn writes_of_flags_are_refused_and_others_pass() {
        assert!(refuse_write("Flag").is_err());
        assert!(refuse_write("Task").is_ok());
    }
}
