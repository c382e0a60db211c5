//! SIU (HL7 v2 chapter 10, "Scheduling") → Appointment, after the v2-to-FHIR guide's
//! SCH[Appointment], AIS, AIP and AIL maps.
//!
//! The Appointment is a conditional update on SCH-2 (filler appointment id, the scheduler's
//! own), else SCH-1 (placer). Its status follows the trigger (chapter 10.3): S12 new, S13
//! rescheduled and S14 modified → booked (or what SCH-25 filler status says), S15 cancelled,
//! S17 deleted → entered-in-error, S26 no-show → noshow. Start and end come from SCH-11
//! (TQ-4/TQ-5), else the TQ1 after SCH (TQ1-7/TQ1-8), else AIS-4 plus AIS-7 minutes.

use serde_json::{json, Value};

use super::datatypes::{entity_identifier, first, fixed_coding, location_display, Cwe, Dtm};
use super::oru::note_text;
use super::{Ctx, MapError, Mapped, Seg};
use crate::ErrorCode;

/// SIU^S12 … S26.
pub(crate) fn map(ctx: &mut Ctx<'_, '_>, trigger: &str) -> Result<Mapped, MapError> {
    let Some(sch) = ctx.first("SCH") else {
        return Err(MapError::new(
            "SCH",
            1,
            None,
            ErrorCode::SegmentSequenceError,
            "SIU without an SCH segment",
        ));
    };
    let patient = ctx.require_patient()?;
    appointment_from_sch(ctx, sch, trigger, &patient)?;
    ctx.finish()
}

/// Table 0278 (filler status codes) → Appointment.status.
fn filler_status(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_lowercase().as_str() {
        "booked" => "booked",
        "pending" | "waitlist" => "pending",
        "complete" => "fulfilled",
        "started" => "arrived",
        "noshow" => "noshow",
        "cancelled" | "deleted" => "cancelled",
        "blocked" | "overbook" => "booked",
        _ => return None,
    })
}

fn appointment_status(trigger: &str, sch: Seg<'_>) -> &'static str {
    match trigger {
        "S15" => "cancelled",
        "S17" => "entered-in-error",
        "S26" => "noshow",
        _ => filler_status(&first(&sch.field(25)))
            .filter(|s| !matches!(*s, "cancelled" | "noshow"))
            .unwrap_or("booked"),
    }
}

/// Minutes in a duration of `amount` `unit` (CNE/CWE: `min`, `h`, `s`, `d`…).
fn minutes(amount: &str, unit: &str) -> Option<i64> {
    let n: f64 = amount.trim().parse().ok()?;
    let factor = match super::codes::time_unit(unit)? {
        "s" => 1.0 / 60.0,
        "min" => 1.0,
        "h" => 60.0,
        "d" => 1440.0,
        "wk" => 10080.0,
        _ => return None,
    };
    let m = (n * factor).round() as i64;
    (m > 0).then_some(m)
}

/// Start, end and minutes: SCH-11, else TQ1, else AIS-4 + AIS-7/8.
fn appointment_times(
    ctx: &mut Ctx<'_, '_>,
    sch: Seg<'_>,
) -> (Option<String>, Option<String>, Option<i64>) {
    let tq = sch.field(11).repetition(1);
    let mut start = ctx.date_time(&tq.component(4).value(), &sch.at(11));
    let mut end = ctx.date_time(&tq.component(5).value(), &sch.at(11));
    let mut raw_start = first_sub(&tq.component(4).value());
    if start.is_none() {
        if let Some(tq1) = ctx.first("TQ1") {
            start = ctx.date_time(&first(&tq1.field(7)), &tq1.at(7));
            end = ctx.date_time(&first(&tq1.field(8)), &tq1.at(8));
            raw_start = first(&tq1.field(7));
        }
    }
    let mut duration = minutes(&first(&sch.field(9)), &first(&sch.field(10)));
    if let Some(ais) = ctx.first("AIS") {
        if start.is_none() {
            start = ctx.date_time(&first(&ais.field(4)), &ais.at(4));
            raw_start = first(&ais.field(4));
        }
        duration = duration.or_else(|| minutes(&first(&ais.field(7)), &first(&ais.field(8))));
    }
    if end.is_none() {
        if let (Some(_), Some(m)) = (&start, duration) {
            end = Dtm::parse(&raw_start)
                .and_then(|d| d.plus_minutes(m))
                .map(|d| d.date_time(ctx.options.default_offset_minutes));
        }
    }
    (start, end, duration)
}

fn first_sub(s: &str) -> String {
    s.trim().to_owned()
}

/// SCH (+ AIS, AIP, AIL, NTE) → Appointment.
fn appointment_from_sch(
    ctx: &mut Ctx<'_, '_>,
    sch: Seg<'_>,
    trigger: &str,
    patient: &super::PatientRef,
) -> Result<(), MapError> {
    let filler = entity_identifier(
        &sch.field(2).repetition(1),
        &ctx.local_system("appointment"),
    );
    let placer = entity_identifier(
        &sch.field(1).repetition(1),
        &ctx.local_system("appointment-placer"),
    );
    let Some(ident) = filler.clone().or_else(|| placer.clone()) else {
        return Err(sch.error(
            2,
            ErrorCode::RequiredFieldMissing,
            "an appointment needs SCH-1 or SCH-2 (appointment id)",
        ));
    };
    let (start, end, duration) = appointment_times(ctx, sch);
    let mut participants = vec![json!({ "actor": patient.reference(), "status": "accepted" })];
    for aip in ctx.all("AIP") {
        for rep in aip.field(3).repetitions() {
            if let Some(actor) = ctx.xcn_practitioner(&rep) {
                participants.push(json!({
                    "type": [Cwe::from_rep(&aip.field(4).repetition(1)).concept()],
                    "actor": actor,
                    "status": "accepted",
                }));
            }
        }
    }
    for ail in ctx.all("AIL") {
        let place = location_display(&ail.field(3).repetition(1));
        if !place.is_empty() {
            participants.push(json!({ "actor": { "display": place }, "status": "accepted" }));
        }
    }
    let service = ctx
        .first("AIS")
        .and_then(|ais| Cwe::from_rep(&ais.field(3).repetition(1)).concept());
    let reason = Cwe::from_rep(&sch.field(7).repetition(1))
        .concept()
        .or_else(|| Cwe::from_rep(&sch.field(6).repetition(1)).concept());
    let appointment_type = Cwe::from_rep(&sch.field(8).repetition(1)).concept();
    let comment = sch_notes(ctx, sch);
    let identifiers: Vec<Value> = [(placer, "PLAC"), (filler, "FILL")]
        .into_iter()
        .filter_map(|(i, kind)| {
            i.map(|i| {
                json!({
                    "type": { "coding": [fixed_coding("http://terminology.hl7.org/CodeSystem/v2-0203", kind, "")] },
                    "system": i.system,
                    "value": i.value,
                })
            })
        })
        .collect();
    let appointment = json!({
        "resourceType": "Appointment",
        "identifier": identifiers,
        "status": appointment_status(trigger, sch),
        "serviceType": [service],
        "appointmentType": appointment_type,
        "reasonCode": [reason],
        "start": start,
        "end": end,
        "minutesDuration": duration,
        "comment": comment,
        "participant": participants,
    });
    ctx.bundle.put(appointment, &ident);
    Ok(())
}

/// The NTE right after SCH (or its TQ1), as the appointment's comment.
fn sch_notes(ctx: &Ctx<'_, '_>, sch: Seg<'_>) -> String {
    let start = sch.segment.position();
    let mut notes = Vec::new();
    for seg in ctx.segs.iter().skip(start) {
        match seg.id() {
            "NTE" => notes.push(note_text(seg)),
            "TQ1" => {}
            _ => break,
        }
    }
    notes.retain(|n| !n.is_empty());
    notes.join("\n")
}
