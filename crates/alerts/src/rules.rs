//! The rules. Each is a function of one patient's data, the parameters and `now`; the FHIR R4
//! elements each one reads are named in its comment.

use serde_json::Value;

use crate::codes::{codings, concept_text};
use crate::data::{
    day, day_number, day_time, duration_days, end_ms, id_of, iso_day, number, references,
    refers_to, start_ms, text, PatientData, DAY, HOUR,
};
use crate::{Alert, Config, Severity};

/// Appointment statuses of a visit still planned or that took place (appointment.html,
/// AppointmentStatus): a later one of these means the patient was rebooked.
const PLANNED_OR_HELD: &[&str] = &[
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "checked-in",
    "waitlist",
];

fn appointment_label(a: &Value) -> String {
    concept_text(a.get("serviceType").and_then(|s| s.get(0)))
        .or_else(|| concept_text(a.get("appointmentType")))
        .or_else(|| {
            a.get("description")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Appointment".to_owned())
}

/// The service an appointment is for, to tell a rebooking from an unrelated visit.
fn appointment_kind(a: &Value) -> Vec<(&str, &str)> {
    codings(a.get("serviceType").and_then(|s| s.get(0)))
        .chain(codings(a.get("appointmentType")))
        .collect()
}

/// Missed appointment: Appointment.status `noshow`, or `booked` with its end (else start) more
/// than `grace_hours` past and no Encounter for it (Encounter.appointment, or an encounter that
/// day). Cleared when a later appointment for the same service (any, if it names none) is
/// planned or held.
pub(crate) fn missed_appointment(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    let p = &c.missed_appointment;
    if !p.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let mut out = Vec::new();
    let appointments = d.of_type("Appointment");
    for a in appointments {
        let Some(start) = start_ms(a.get("start")) else {
            continue;
        };
        let end = start_ms(a.get("end")).unwrap_or(start);
        if start < now - p.lookback_days * DAY || start > now {
            continue;
        }
        let id = id_of(a);
        let how = match text(a, "status") {
            "noshow" => "did not attend",
            "booked" if end + p.grace_hours * HOUR <= now && !held(d, id, start, tz) => {
                "no encounter recorded"
            }
            _ => continue,
        };
        let kind = appointment_kind(a);
        let rebooked = appointments.iter().any(|b| {
            id_of(b) != id
                && PLANNED_OR_HELD.contains(&text(b, "status"))
                && start_ms(b.get("start")).is_some_and(|s| s > start)
                && (kind.is_empty() || appointment_kind(b).iter().any(|k| kind.contains(k)))
        });
        if rebooked {
            continue;
        }
        out.push(Alert {
            rule: "missed-appointment",
            cause: format!("Appointment/{id}"),
            severity: Severity::High,
            title: "Missed appointment".into(),
            why: format!(
                "{} on {}: {how}; not rebooked",
                appointment_label(a),
                day_time(start, tz)
            ),
            due_ms: None,
            focus: Some(format!("Appointment/{id}")),
        });
    }
    out
}

/// Whether an Encounter records the appointment `id` (Encounter.appointment) or took place on
/// its day.
fn held(d: &PatientData, id: &str, start: i64, tz: i64) -> bool {
    d.of_type("Encounter").iter().any(|e| {
        !matches!(text(e, "status"), "cancelled" | "entered-in-error")
            && (references(e, "appointment")
                .iter()
                .any(|r| refers_to(r, "Appointment", id))
                || start_ms(e.pointer("/period/start"))
                    .is_some_and(|s| day_number(s, tz) == day_number(start, tz)))
    })
}

/// Appointment to confirm: one starting tomorrow (the care team's calendar day) that is
/// `proposed` or `pending`, or whose patient participant's status is `needs-action` or
/// `tentative` (Appointment.participant.status).
pub(crate) fn unconfirmed_appointment(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    if !c.unconfirmed_appointment.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let tomorrow = day_number(now, tz) + 1;
    let mut out = Vec::new();
    for a in d.of_type("Appointment") {
        let Some(start) = start_ms(a.get("start")) else {
            continue;
        };
        if day_number(start, tz) != tomorrow {
            continue;
        }
        let status = text(a, "status");
        let patient_pending = a
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|p| {
                p.pointer("/actor/reference")
                    .and_then(Value::as_str)
                    .is_some_and(|r| refers_to(r, "Patient", &d.patient_id))
                    && matches!(text(p, "status"), "needs-action" | "tentative")
            });
        let state = match status {
            "proposed" | "pending" => status,
            "booked" if patient_pending => "the patient has not accepted",
            _ => continue,
        };
        let id = id_of(a);
        out.push(Alert {
            rule: "unconfirmed-appointment",
            cause: format!("Appointment/{id}"),
            severity: Severity::Normal,
            title: "Appointment to confirm".into(),
            why: format!(
                "{} tomorrow, {}: not confirmed ({state})",
                appointment_label(a),
                day_time(start, tz)
            ),
            due_ms: Some(start),
            focus: Some(format!("Appointment/{id}")),
        });
    }
    out
}

fn medication_label(v: &Value) -> String {
    concept_text(v.get("medicationCodeableConcept"))
        .or_else(|| {
            v.pointer("/medicationReference/display")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Medication".to_owned())
}

fn quantity_text(q: Option<&Value>) -> Option<String> {
    let q = q?;
    let value = q.get("value")?.to_string();
    let unit = q
        .get("unit")
        .or_else(|| q.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(format!("{value} {unit}").trim().to_owned())
}

/// Refill due (medicationrequest.html, medicationdispense.html): for each active
/// MedicationRequest, the run-out date is the last dispense (MedicationDispense linked by
/// authorizingPrescription, else of the same medication code) plus its days' supply
/// (`daysSupply`, else the request's `dispenseRequest.expectedSupplyDuration` scaled by the
/// dispensed over the prescribed quantity); with no dispense known, the start of
/// `dispenseRequest.validityPeriod` (else `authoredOn`) plus the expected supply duration.
/// Alerts `warn_days` before run-out, escalated after it; a run-out more than `stale_days` ago
/// is taken as a stopped medication. Stopping the request (any status but `active`) clears it;
/// a new dispense moves the run-out date and so the cause.
pub(crate) fn refill_due(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    let p = &c.refill_due;
    if !p.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let mut out = Vec::new();
    for r in d.of_type("MedicationRequest") {
        if text(r, "status") != "active" || text(r, "intent") == "proposal" {
            continue;
        }
        let id = id_of(r);
        let codes: Vec<(&str, &str)> = codings(r.get("medicationCodeableConcept")).collect();
        let dispenses = d.of_type("MedicationDispense").iter().filter(|m| {
            !matches!(
                text(m, "status"),
                "entered-in-error" | "cancelled" | "declined" | "stopped" | "preparation"
            ) && {
                let linked = references(m, "authorizingPrescription");
                if linked.is_empty() {
                    !codes.is_empty()
                        && codings(m.get("medicationCodeableConcept")).any(|x| codes.contains(&x))
                } else {
                    linked.iter().any(|l| refers_to(l, "MedicationRequest", id))
                }
            }
        });
        let handed = |m: &Value| {
            start_ms(m.get("whenHandedOver")).or_else(|| start_ms(m.get("whenPrepared")))
        };
        let last = dispenses
            .filter_map(|m| Some((handed(m)?, m)))
            .max_by_key(|(t, _)| *t);
        let supply = duration_days(r.pointer("/dispenseRequest/expectedSupplyDuration"));
        let (runout, basis) = match last {
            Some((at, m)) => {
                let days = duration_days(m.get("daysSupply")).or_else(|| {
                    let given = number(m.pointer("/quantity/value"));
                    let prescribed = number(r.pointer("/dispenseRequest/quantity/value"));
                    match (supply, given, prescribed) {
                        (Some(s), Some(g), Some(q)) if q > 0.0 => Some(s * g / q),
                        (Some(s), _, _) => Some(s),
                        _ => None,
                    }
                });
                let Some(days) = days else { continue };
                let what = quantity_text(m.get("quantity"))
                    .map_or_else(|| "dispensed".to_owned(), |q| format!("{q} dispensed"));
                (
                    at + (days * DAY as f64) as i64,
                    format!("{what} on {}", day(at, tz)),
                )
            }
            None => {
                let Some(days) = supply else { continue };
                let Some(from) = start_ms(r.pointer("/dispenseRequest/validityPeriod/start"))
                    .or_else(|| start_ms(r.get("authoredOn")))
                else {
                    continue;
                };
                (
                    from + (days * DAY as f64) as i64,
                    format!(
                        "prescribed on {} for {days:.0} days, no dispense recorded",
                        day(from, tz)
                    ),
                )
            }
        };
        if now < runout - p.warn_days * DAY || now > runout + p.stale_days * DAY {
            continue;
        }
        let (severity, title, runs) = if now >= runout {
            (Severity::High, "Medication ran out", "ran out")
        } else {
            (Severity::Normal, "Refill due", "runs out")
        };
        out.push(Alert {
            rule: "refill-due",
            cause: format!("MedicationRequest/{id}@{}", iso_day(runout, tz)),
            severity,
            title: title.into(),
            why: format!(
                "{}: {basis}, {runs} {}",
                medication_label(r),
                day(runout, tz)
            ),
            due_ms: Some(runout),
            focus: Some(format!("MedicationRequest/{id}")),
        });
    }
    out
}

/// Discharge follow-up: an Encounter `finished` whose class (Encounter.class, v3 ActCode) is an
/// inpatient one, discharged (period.end) within `lookback_days`, with no contact since (another
/// Encounter starting after the discharge, or a Communication sent after it). Due
/// `within_days` after discharge, escalated once overdue.
pub(crate) fn discharge_follow_up(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    let p = &c.discharge_follow_up;
    if !p.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let encounters = d.of_type("Encounter");
    let mut out = Vec::new();
    for e in encounters {
        if text(e, "status") != "finished" {
            continue;
        }
        let class = e
            .pointer("/class/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !p.inpatient_classes.iter().any(|k| k == class) {
            continue;
        }
        let Some(end) = start_ms(e.pointer("/period/end")) else {
            continue;
        };
        if end > now || end < now - p.lookback_days * DAY {
            continue;
        }
        let id = id_of(e);
        let contacted = encounters.iter().any(|o| {
            id_of(o) != id
                && !matches!(
                    text(o, "status"),
                    "cancelled" | "entered-in-error" | "planned"
                )
                && start_ms(o.pointer("/period/start")).is_some_and(|s| s >= end)
        }) || d.of_type("Communication").iter().any(|m| {
            !matches!(text(m, "status"), "entered-in-error" | "not-done")
                && start_ms(m.get("sent")).is_some_and(|s| s >= end)
        });
        if contacted {
            continue;
        }
        let due = end + p.within_days * DAY;
        let stay = concept_text(e.get("type").and_then(|t| t.get(0)))
            .or_else(|| concept_text(e.get("reasonCode").and_then(|t| t.get(0))))
            .unwrap_or_else(|| "inpatient stay".to_owned());
        out.push(Alert {
            rule: "discharge-follow-up",
            cause: format!("Encounter/{id}"),
            severity: if now >= due {
                Severity::High
            } else {
                Severity::Normal
            },
            title: "Discharge follow-up".into(),
            why: format!(
                "Discharged {} ({stay}); no contact since; follow-up due by {}",
                day(end, tz),
                day(due, tz)
            ),
            due_ms: Some(due),
            focus: Some(format!("Encounter/{id}")),
        });
    }
    out
}

/// Abnormal result: an Observation (not entered in error or cancelled) issued, else taken,
/// within `window_days`, whose interpretation (Observation.interpretation, v3
/// ObservationInterpretation) is one of `abnormal_codes`, or whose valueQuantity lies outside
/// referenceRange low/high; components are read the same way. Critical for `critical_codes`.
pub(crate) fn abnormal_result(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    let p = &c.abnormal_result;
    if !p.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let mut out = Vec::new();
    for o in d.of_type("Observation") {
        if matches!(text(o, "status"), "entered-in-error" | "cancelled") {
            continue;
        }
        let Some(at) = start_ms(o.get("issued"))
            .or_else(|| start_ms(o.get("effectiveDateTime")))
            .or_else(|| start_ms(o.pointer("/effectivePeriod/start")))
        else {
            continue;
        };
        if at < now - p.window_days * DAY || at > now + DAY {
            continue;
        }
        let mut parts = vec![o];
        parts.extend(
            o.get("component")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        let mut findings = Vec::new();
        let mut critical = false;
        for (n, part) in parts.into_iter().enumerate() {
            let flags: Vec<&str> = part
                .get("interpretation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|i| codings(Some(i)).map(|(_, code)| code))
                .filter(|code| p.abnormal_codes.iter().any(|a| a == code))
                .collect();
            let out_of_range = out_of_range(part);
            if flags.is_empty() && out_of_range.is_none() {
                continue;
            }
            critical |= flags
                .iter()
                .any(|f| p.critical_codes.iter().any(|k| k == f));
            let name = concept_text(part.get("code")).unwrap_or_else(|| "Result".into());
            let value = quantity_text(part.get("valueQuantity"))
                .or_else(|| concept_text(part.get("valueCodeableConcept")))
                .or_else(|| {
                    part.get("valueString")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                // A panel flagged as a whole (blood pressure) has its values in components.
                .or_else(|| (n == 0).then(|| components_text(o)).flatten())
                .unwrap_or_default();
            let flag = match (flags.first(), out_of_range) {
                (Some(f), _) => format!("flagged {f}"),
                (None, Some(range)) => range,
                (None, None) => unreachable!("checked above"),
            };
            findings.push(format!("{name} {value} ({flag})").replace("  ", " "));
        }
        if findings.is_empty() {
            continue;
        }
        let id = id_of(o);
        out.push(Alert {
            rule: "abnormal-result",
            cause: format!("Observation/{id}"),
            severity: if critical {
                Severity::Critical
            } else {
                Severity::High
            },
            title: if critical {
                "Critical result".into()
            } else {
                "Abnormal result".into()
            },
            why: format!("{} on {}", findings.join("; "), day(at, tz)),
            due_ms: None,
            focus: Some(format!("Observation/{id}")),
        });
    }
    out
}

/// The values of an Observation's components: "148/78 mmHg" when they share a unit (a blood
/// pressure), else "Systolic 148 mmHg, Heart rate 80 /min".
fn components_text(o: &Value) -> Option<String> {
    let parts: Vec<(String, String, String)> = o
        .get("component")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| {
            let q = c.get("valueQuantity")?;
            // As written (arbitrary precision keeps "7.0" as "7.0").
            let value = q.get("value")?.to_string();
            let unit = q
                .get("unit")
                .or_else(|| q.get("code"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let name = concept_text(c.get("code")).unwrap_or_default();
            Some((name, value, unit))
        })
        .collect();
    let (_, _, unit) = parts.first()?;
    if parts.iter().all(|(_, _, u)| u == unit) {
        let values: Vec<&str> = parts.iter().map(|(_, v, _)| v.as_str()).collect();
        return Some(format!("{} {unit}", values.join("/")).trim().to_owned());
    }
    Some(
        parts
            .iter()
            .map(|(name, v, u)| format!("{name} {v} {u}").trim().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// "above the range 3.5–5.1" when valueQuantity is outside the first reference range.
fn out_of_range(part: &Value) -> Option<String> {
    let value = number(part.pointer("/valueQuantity/value"))?;
    let range = part.get("referenceRange")?.get(0)?;
    let low = number(range.pointer("/low/value"));
    let high = number(range.pointer("/high/value"));
    let shown = |x: Option<f64>| x.map_or_else(|| "…".to_owned(), |x| format!("{x}"));
    let span = format!("{}–{}", shown(low), shown(high));
    if low.is_some_and(|l| value < l) {
        Some(format!("below the range {span}"))
    } else if high.is_some_and(|h| value > h) {
        Some(format!("above the range {span}"))
    } else {
        None
    }
}

/// Overdue task: a Task (task.html) not yet done (`requested`, `received`, `accepted`, `ready`,
/// `in-progress`, `on-hold`) whose due date (restriction.period.end, else executionPeriod.end)
/// has passed; urgent priorities escalate. A CarePlan `active` whose activity (detail.status
/// `not-started`, `scheduled` or `in-progress`) is past its scheduledPeriod end.
pub(crate) fn overdue_task(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    if !c.overdue_task.enabled {
        return Vec::new();
    }
    let tz = c.utc_offset_minutes;
    let mut out = Vec::new();
    for t in d.of_type("Task") {
        let status = text(t, "status");
        if !matches!(
            status,
            "requested" | "received" | "accepted" | "ready" | "in-progress" | "on-hold"
        ) {
            continue;
        }
        let Some(due) = end_ms(t.pointer("/restriction/period/end"))
            .or_else(|| end_ms(t.pointer("/executionPeriod/end")))
        else {
            continue;
        };
        if now < due {
            continue;
        }
        let id = id_of(t);
        let what = t
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| concept_text(t.get("code")))
            .unwrap_or_else(|| "Task".into());
        out.push(Alert {
            rule: "overdue-task",
            cause: format!("Task/{id}"),
            severity: if matches!(text(t, "priority"), "urgent" | "asap" | "stat") {
                Severity::High
            } else {
                Severity::Normal
            },
            title: "Overdue task".into(),
            // `due` is the end of the due date's precision (`2026-12-03` ends at midnight on the
            // 4th); the day shown is the last one inside it, the day it was due.
            why: format!("{what}: due {}, still {status}", day(due - 1, tz)),
            due_ms: Some(due),
            focus: Some(format!("Task/{id}")),
        });
    }
    for plan in d.of_type("CarePlan") {
        if text(plan, "status") != "active" {
            continue;
        }
        let id = id_of(plan);
        let activities = plan.get("activity").and_then(Value::as_array);
        for (n, activity) in activities.into_iter().flatten().enumerate() {
            let Some(detail) = activity.get("detail") else {
                continue;
            };
            let status = text(detail, "status");
            if !matches!(status, "not-started" | "scheduled" | "in-progress") {
                continue;
            }
            let Some(due) = end_ms(detail.pointer("/scheduledPeriod/end")) else {
                continue;
            };
            // An activity made into a task (crate::plans) is followed through its task.
            let key = crate::plans::activity_key(id, n);
            if now < due || crate::plans::has_task(d, &key) {
                continue;
            }
            let what = crate::plans::activity_name(detail);
            let plan_name = crate::plans::plan_name(plan);
            out.push(Alert {
                rule: "overdue-task",
                cause: key,
                severity: Severity::Normal,
                title: "Overdue care plan activity".into(),
                why: format!(
                    "{what} ({plan_name}): planned by {}, {status}",
                    day(due - 1, tz)
                ),
                due_ms: Some(due),
                focus: Some(format!("CarePlan/{id}")),
            });
        }
    }
    out
}

/// Care gaps, as configured: a Condition (active, recurring or relapsed; not refuted or
/// entered in error; not abated) with a code in `conditions` and no Observation, Procedure or
/// DiagnosticReport with a code in `required` within `within_days`. Immunization gaps: a
/// patient of the age range with no completed Immunization of `vaccines` within `every_days`
/// (or ever).
pub(crate) fn care_gaps(d: &PatientData, c: &Config, now: i64) -> Vec<Alert> {
    let tz = c.utc_offset_minutes;
    let mut out = Vec::new();
    for gap in &c.care_gap {
        let condition = d.of_type("Condition").iter().find(|x| {
            let clinical = codings(x.get("clinicalStatus")).map(|(_, c)| c).next();
            let verification = codings(x.get("verificationStatus")).map(|(_, c)| c).next();
            matches!(clinical, None | Some("active" | "recurrence" | "relapse"))
                && !matches!(verification, Some("refuted" | "entered-in-error"))
                && x.get("abatementDateTime").is_none()
                && gap.conditions.matches_concept(x.get("code"))
        });
        let Some(condition) = condition else { continue };
        let last = ["Observation", "Procedure", "DiagnosticReport"]
            .iter()
            .flat_map(|t| d.of_type(t))
            .filter(|x| {
                !matches!(
                    text(x, "status"),
                    "entered-in-error" | "cancelled" | "not-done"
                ) && gap.required.matches_concept(x.get("code"))
            })
            .filter_map(|x| {
                start_ms(x.get("effectiveDateTime"))
                    .or_else(|| start_ms(x.get("performedDateTime")))
                    .or_else(|| start_ms(x.pointer("/performedPeriod/start")))
                    .or_else(|| start_ms(x.pointer("/effectivePeriod/start")))
                    .or_else(|| start_ms(x.get("issued")))
            })
            .max();
        if last.is_some_and(|t| t >= now - gap.within_days * DAY) {
            continue;
        }
        let name = concept_text(condition.get("code")).unwrap_or_else(|| "Condition".into());
        let last_text = last.map_or_else(
            || "none recorded".to_owned(),
            |t| format!("last {}", day(t, tz)),
        );
        out.push(Alert {
            rule: "care-gap",
            cause: format!("gap:{}", gap.id),
            severity: Severity::Low,
            title: gap.title.clone(),
            why: format!("{name}; {last_text}"),
            due_ms: last.map(|t| t + gap.within_days * DAY),
            focus: Some(format!("Condition/{}", id_of(condition))),
        });
    }
    let Some(birth) = d.patient().and_then(|p| start_ms(p.get("birthDate"))) else {
        return out;
    };
    let age = age_years(birth, now);
    for gap in &c.immunization_gap {
        if age < gap.min_age_years || gap.max_age_years.is_some_and(|m| age > m) {
            continue;
        }
        let last = d
            .of_type("Immunization")
            .iter()
            .filter(|x| {
                matches!(text(x, "status"), "completed" | "")
                    && gap.vaccines.matches_concept(x.get("vaccineCode"))
            })
            .filter_map(|x| start_ms(x.get("occurrenceDateTime")))
            .max();
        let due = match (last, gap.every_days) {
            (None, _) => None,
            (Some(_), None) => continue,
            (Some(t), Some(every)) if t + every * DAY > now => continue,
            (Some(t), Some(every)) => Some(t + every * DAY),
        };
        let last_text = last.map_or_else(
            || "none recorded".to_owned(),
            |t| format!("last given {}", day(t, tz)),
        );
        out.push(Alert {
            rule: "care-gap",
            cause: format!("gap:{}", gap.id),
            severity: Severity::Low,
            title: gap.title.clone(),
            why: format!("Age {age}; {last_text}"),
            due_ms: due,
            focus: None,
        });
    }
    out
}

/// Whole years from `birth` to `now` (both ms), by calendar date.
fn age_years(birth: i64, now: i64) -> i64 {
    use chrono::Datelike;
    let (Some(b), Some(n)) = (
        chrono::DateTime::from_timestamp_millis(birth),
        chrono::DateTime::from_timestamp_millis(now),
    ) else {
        return 0;
    };
    let mut years = i64::from(n.year() - b.year());
    if (n.month(), n.day()) < (b.month(), b.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_panel_flagged_as_a_whole_shows_its_component_values() {
        let bp = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "Blood pressure"},
            "component": [
                {"code": {"text": "Systolic"}, "valueQuantity": {"value": 148, "unit": "mmHg"}},
                {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 78, "unit": "mmHg"}}]});
        assert_eq!(components_text(&bp).as_deref(), Some("148/78 mmHg"));
        let mixed = json!({"component": [
            {"code": {"text": "Systolic"}, "valueQuantity": {"value": 148, "unit": "mmHg"}},
            {"code": {"text": "Heart rate"}, "valueQuantity": {"value": 80.0, "unit": "/min"}}]});
        assert_eq!(
            components_text(&mixed).as_deref(),
            Some("Systolic 148 mmHg, Heart rate 80.0 /min")
        );
        assert_eq!(components_text(&json!({"code": {"text": "x"}})), None);
    }
}
