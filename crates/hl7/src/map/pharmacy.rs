//! Pharmacy orders and dispenses (HL7 v2 chapter 4A, "Pharmacy/Treatment"): RDE^O11/O25 and
//! ORM^O01/OMP^O09 carrying RXO/RXE → MedicationRequest; RDS^O13 → MedicationDispense (and
//! the MedicationRequest it fills), after the v2-to-FHIR guide's ORC/RXO/RXE[MedicationRequest]
//! and RXD[MedicationDispense] maps.
//!
//! The refill-due alert reads these, so the quantities are mapped with care:
//! - `dispenseRequest.quantity` = RXE-10 dispense amount in RXE-11 units (RXO-11/12);
//! - `dispenseRequest.expectedSupplyDuration` = dispense amount / daily dose, where the daily
//!   dose is RXE-19 (total daily dose) or RXE-3 give amount × the TQ1-3 repeat pattern's
//!   administrations a day, each only when its units are the dispense units; else TQ1-6
//!   (service duration);
//! - `MedicationDispense.daysSupply` = RXD-4 / RXD-12 (total daily dose) likewise, else the
//!   order's daily dose; `whenHandedOver` = RXD-3, which is required (102 when invalid).

use serde_json::{json, Value};

use super::codes;
use super::datatypes::{comp, decimal, first, fixed_coding, Cwe, Dtm, Ident};
use super::{Ctx, MapError, Mapped, PatientRef, Seg};
use crate::ErrorCode;

/// One ORC with the pharmacy segments after it.
#[derive(Default)]
struct Order<'c> {
    orc: Option<Seg<'c>>,
    /// TQ1 of the order (before RXE) and of the RXE (after it).
    order_timing: Option<Seg<'c>>,
    rxe_timing: Option<Seg<'c>>,
    rxo: Option<Seg<'c>>,
    rxe: Option<Seg<'c>>,
    rxd: Vec<Seg<'c>>,
}

/// What an order says about the medication, from RXE or else RXO.
struct OrderFields {
    medication: Cwe,
    give_amount: String,
    give_units: Cwe,
    dispense_amount: String,
    dispense_units: Cwe,
    refills: String,
    /// RXE-19 total daily dose: quantity and units.
    daily_dose: Option<(String, Cwe)>,
    substitution: String,
    instructions: Vec<Cwe>,
    special: Vec<String>,
}

/// RDE, RDS, ORM, OMP.
pub(crate) fn map(ctx: &mut Ctx<'_, '_>, kind: &str) -> Result<Mapped, MapError> {
    let orders = orders(ctx);
    if orders.iter().all(|o| o.rxe.is_none() && o.rxo.is_none()) {
        return Err(match kind {
            "ORM" | "OMP" => MapError::new(
                "MSH",
                1,
                Some(9),
                ErrorCode::UnsupportedMessageType,
                format!("{kind} without RXO/RXE (a non-pharmacy order) is not mapped"),
            ),
            _ => MapError::new(
                "RXE",
                1,
                None,
                ErrorCode::SegmentSequenceError,
                format!("{kind} without an RXE segment"),
            ),
        });
    }
    let patient = ctx.require_patient()?;
    for (i, order) in orders.iter().enumerate() {
        if order.rxe.is_none() && order.rxo.is_none() {
            continue;
        }
        let request = medication_request_from_order(ctx, order, &patient, i)?;
        if kind == "RDS" {
            for rxd in &order.rxd {
                medication_dispense_from_rxd(ctx, *rxd, order, request.as_ref(), &patient)?;
            }
        }
    }
    ctx.finish()
}

fn orders<'c>(ctx: &Ctx<'c, '_>) -> Vec<Order<'c>> {
    let mut orders: Vec<Order<'c>> = Vec::new();
    for seg in ctx.segs.iter().copied() {
        match seg.id() {
            "ORC" => orders.push(Order {
                orc: Some(seg),
                ..Order::default()
            }),
            "TQ1" | "RXO" | "RXE" | "RXD" => {
                if orders.is_empty() {
                    orders.push(Order::default());
                }
                let order = orders.last_mut().expect("just pushed");
                match seg.id() {
                    "TQ1" if order.rxe.is_some() => {
                        order.rxe_timing.get_or_insert(seg);
                    }
                    "TQ1" => {
                        order.order_timing.get_or_insert(seg);
                    }
                    "RXO" => order.rxo = Some(seg),
                    "RXE" => order.rxe = Some(seg),
                    _ => order.rxd.push(seg),
                }
            }
            _ => {}
        }
    }
    orders
}

fn cwe_list(seg: Seg<'_>, field: usize) -> Vec<Cwe> {
    seg.field(field)
        .repetitions()
        .map(|r| Cwe::from_rep(&r))
        .filter(|c| !c.is_empty())
        .collect()
}

fn order_fields(order: &Order<'_>) -> OrderFields {
    if let Some(rxe) = order.rxe {
        let dose = rxe.field(19).repetition(1);
        let daily = comp(&dose, 1);
        OrderFields {
            medication: Cwe::from_rep(&rxe.field(2).repetition(1)),
            give_amount: first(&rxe.field(3)),
            give_units: Cwe::from_rep(&rxe.field(5).repetition(1)),
            dispense_amount: first(&rxe.field(10)),
            dispense_units: Cwe::from_rep(&rxe.field(11).repetition(1)),
            refills: first(&rxe.field(12)),
            daily_dose: (!daily.is_empty())
                .then(|| (daily, Cwe::from_component(&dose.component(2)))),
            substitution: first(&rxe.field(9)),
            instructions: cwe_list(rxe, 7),
            special: rxe
                .field(21)
                .repetitions()
                .map(|r| r.text().trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    } else {
        let rxo = order.rxo.expect("an order has an RXE or an RXO");
        OrderFields {
            medication: Cwe::from_rep(&rxo.field(1).repetition(1)),
            give_amount: first(&rxo.field(2)),
            give_units: Cwe::from_rep(&rxo.field(4).repetition(1)),
            dispense_amount: first(&rxo.field(11)),
            dispense_units: Cwe::from_rep(&rxo.field(12).repetition(1)),
            refills: first(&rxo.field(13)),
            daily_dose: None,
            substitution: first(&rxo.field(9)),
            instructions: cwe_list(rxo, 7),
            special: Vec::new(),
        }
    }
}

/// Two unit CWEs name the same unit: same code, else same text (case-insensitive); a
/// missing unit on either side matches (a count of the dispensed form).
fn same_units(a: &Cwe, b: &Cwe) -> bool {
    let key = |c: &Cwe| {
        if c.code.is_empty() {
            c.text.to_ascii_lowercase()
        } else {
            c.code.to_ascii_lowercase()
        }
    };
    key(a).is_empty() || key(b).is_empty() || key(a) == key(b)
}

/// The TQ1 that times the administrations: the RXE's, else the order's.
fn timing<'c>(order: &Order<'c>) -> Option<Seg<'c>> {
    order.rxe_timing.or(order.order_timing)
}

/// TQ1-3 repeat pattern (RPT: code ^ text …), else RXE-1.2 / ORC-7.2 (TQ interval).
fn repeat_pattern(order: &Order<'_>) -> Cwe {
    if let Some(tq1) = timing(order) {
        // RPT: the repeat pattern code is a CWE in component 1's subcomponents.
        let cwe = Cwe::from_component(&tq1.field(3).repetition(1).component(1));
        if !cwe.is_empty() {
            return cwe;
        }
    }
    for (seg, field) in [(order.rxe, 1), (order.orc, 7)] {
        if let Some(seg) = seg {
            let interval = seg
                .field(field)
                .repetition(1)
                .component(2)
                .subcomponent(1)
                .value();
            let interval = interval.trim();
            if !interval.is_empty() {
                return Cwe {
                    code: interval.to_owned(),
                    ..Cwe::default()
                };
            }
        }
    }
    Cwe::default()
}

/// The dose a day in dispense units, when the order says it.
fn daily_dose(fields: &OrderFields, order: &Order<'_>) -> Option<f64> {
    if let Some((amount, units)) = &fields.daily_dose {
        // A total daily dose counts only with its units stated (RXE-19 is often filled
        // with other things).
        if !units.is_empty() && same_units(units, &fields.dispense_units) {
            if let Ok(n) = amount.parse::<f64>() {
                if n > 0.0 {
                    return Some(n);
                }
            }
        }
    }
    if !same_units(&fields.give_units, &fields.dispense_units) {
        return None;
    }
    let give: f64 = fields.give_amount.parse().ok()?;
    let per_day = codes::doses_per_day(&repeat_pattern(order).code)?;
    let quantity = timing(order)
        .and_then(|t| {
            t.field(2)
                .repetition(1)
                .component(1)
                .value()
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(1.0);
    let dose = give * per_day * quantity;
    (dose > 0.0).then_some(dose)
}

/// A number of days (or other UCUM time unit) as a FHIR Duration.
fn duration(value: f64, unit: &str) -> Value {
    let rounded = (value * 100.0).round() / 100.0;
    let text = format!("{rounded:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let display = match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "wk" => "weeks",
        "mo" => "months",
        "a" => "years",
        _ => unit,
    };
    json!({
        "value": decimal(text),
        "unit": display,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    })
}

/// TQ1-6 service duration (CQ: quantity ^ time unit).
fn service_duration(order: &Order<'_>) -> Option<Value> {
    let tq1 = timing(order)?;
    let rep = tq1.field(6).repetition(1);
    let amount: f64 = comp(&rep, 1).parse().ok()?;
    let unit = Cwe::from_component(&rep.component(2));
    let ucum = codes::time_unit(&unit.code).or_else(|| codes::time_unit(&unit.text))?;
    Some(duration(amount, ucum))
}

/// A SimpleQuantity of an amount in a unit CWE (UCUM when the unit is one).
fn simple_quantity(ctx: &Ctx<'_, '_>, amount: &str, units: &Cwe) -> Option<Value> {
    let value = decimal(amount)?;
    Some(ctx.quantity(value, units))
}

/// The identifier a MedicationRequest is matched on: ORC-2 placer, else ORC-3 filler, else
/// RXE-15 prescription number.
fn request_identifier(ctx: &Ctx<'_, '_>, order: &Order<'_>) -> Option<Ident> {
    let placer = ctx.local_system("placer-order");
    let filler = ctx.local_system("filler-order");
    let from_orc = order.orc.and_then(|orc| {
        super::datatypes::entity_identifier(&orc.field(2).repetition(1), &placer)
            .or_else(|| super::datatypes::entity_identifier(&orc.field(3).repetition(1), &filler))
    });
    from_orc.or_else(|| {
        let rxe = order.rxe?;
        let number = first(&rxe.field(15));
        (!number.is_empty()).then(|| Ident::new(ctx.local_system("prescription"), number))
    })
}

/// ORC + RXE (or RXO) + TQ1 → MedicationRequest; returns its identifier for the dispenses.
fn medication_request_from_order(
    ctx: &mut Ctx<'_, '_>,
    order: &Order<'_>,
    patient: &PatientRef,
    index: usize,
) -> Result<Option<Ident>, MapError> {
    let fields = order_fields(order);
    let ident = request_identifier(ctx, order);
    let (control, status) = order
        .orc
        .map(|orc| (first(&orc.field(1)), first(&orc.field(5))))
        .unwrap_or_default();
    let medication = fields.medication.concept().unwrap_or_else(|| {
        ctx.warn("RXE^1^2: no medication code".to_owned());
        json!({ "text": "unknown" })
    });
    let authored = match order.orc {
        Some(orc) => ctx.date_time(&first(&orc.field(9)), &orc.at(9)),
        None => None,
    };
    let requester = order
        .orc
        .and_then(|orc| ctx.xcn_practitioner(&orc.field(12).repetition(1)));
    let identifiers = order_identifiers(ctx, order);
    let dosage = dosage_instruction(ctx, order, &fields);
    let supply = daily_dose(&fields, order)
        .and_then(|per_day| {
            let amount: f64 = fields.dispense_amount.parse().ok()?;
            Some(duration(amount / per_day, "d"))
        })
        .or_else(|| service_duration(order));
    let validity = validity_period(ctx, order);
    let substitution = match fields.substitution.to_ascii_uppercase().as_str() {
        "N" => json!({ "allowedBoolean": false }),
        "G" | "T" => json!({ "allowedBoolean": true }),
        _ => Value::Null,
    };
    let request = json!({
        "resourceType": "MedicationRequest",
        "identifier": identifiers,
        "status": codes::medication_request_status(&control, &status),
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": patient.reference(),
        "authoredOn": authored,
        "requester": requester,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "validityPeriod": validity,
            "numberOfRepeatsAllowed": super::datatypes::unsigned(&fields.refills),
            "quantity": simple_quantity(ctx, &fields.dispense_amount, &fields.dispense_units),
            "expectedSupplyDuration": supply,
        },
        "substitution": substitution,
    });
    match &ident {
        Some(ident) => {
            ctx.bundle.put(request, ident);
        }
        None => {
            ctx.warn(format!(
                "ORC^{}^2: no order number; the order cannot be matched by later messages",
                index + 1
            ));
            ctx.bundle
                .post(&format!("medication-request-{index}"), request);
        }
    }
    Ok(ident)
}

/// ORC-2 (PLAC) and ORC-3 (FILL) as identifiers, and RXE-15 prescription number.
fn order_identifiers(ctx: &Ctx<'_, '_>, order: &Order<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(orc) = order.orc {
        for (field, kind, system) in [(2, "PLAC", "placer-order"), (3, "FILL", "filler-order")] {
            let default = ctx.local_system(system);
            if let Some(i) =
                super::datatypes::entity_identifier(&orc.field(field).repetition(1), &default)
            {
                out.push(json!({
                    "type": { "coding": [fixed_coding("http://terminology.hl7.org/CodeSystem/v2-0203", kind, "")] },
                    "system": i.system,
                    "value": i.value,
                }));
            }
        }
    }
    if out.is_empty() {
        if let Some(ident) = request_identifier(ctx, order) {
            out.push(ident.json());
        }
    }
    out
}

/// Dosage: text from the dose, the repeat pattern and RXE-21; timing from TQ1 (repeat
/// pattern, start/end or service duration); dose RXE-3 in RXE-5 units; RXE-7 as
/// additional instructions.
fn dosage_instruction(ctx: &mut Ctx<'_, '_>, order: &Order<'_>, fields: &OrderFields) -> Value {
    let pattern = repeat_pattern(order);
    let dose_units = fields.give_units.display();
    let mut text = Vec::new();
    if !fields.give_amount.is_empty() {
        text.push(
            format!("{} {dose_units}", fields.give_amount)
                .trim()
                .to_owned(),
        );
    }
    let pattern_text = pattern.display();
    if !pattern_text.is_empty() {
        text.push(pattern_text.clone());
    }
    text.extend(fields.special.iter().cloned());
    let mut repeat = json!({});
    if let Some(per_day) = codes::doses_per_day(&pattern.code) {
        if per_day >= 1.0 && per_day.fract() == 0.0 {
            repeat["frequency"] = json!(per_day as u32);
            repeat["period"] = json!(1);
            repeat["periodUnit"] = json!("d");
        }
    }
    if let Some(tq1) = timing(order) {
        let start = ctx.date_time(&first(&tq1.field(7)), &tq1.at(7));
        let end = ctx.date_time(&first(&tq1.field(8)), &tq1.at(8));
        if start.is_some() || end.is_some() {
            repeat["boundsPeriod"] = json!({ "start": start, "end": end });
        } else if let Some(d) = service_duration(order) {
            repeat["boundsDuration"] = d;
        }
    }
    let dose = simple_quantity(ctx, &fields.give_amount, &fields.give_units)
        .map(|q| json!([{ "doseQuantity": q }]));
    let additional: Vec<Value> = fields
        .instructions
        .iter()
        .filter_map(Cwe::concept)
        .collect();
    json!({
        "text": text.join(", "),
        "additionalInstruction": additional,
        "timing": {
            "repeat": repeat,
            "code": if pattern.is_empty() { Value::Null } else { json!({ "text": pattern_text }) },
        },
        "doseAndRate": dose,
    })
}

/// dispenseRequest.validityPeriod: ORC-15 order effective date, else the order's TQ1-7;
/// end from TQ1-8.
fn validity_period(ctx: &mut Ctx<'_, '_>, order: &Order<'_>) -> Value {
    let start = match order.orc {
        Some(orc) => ctx.date_time(&first(&orc.field(15)), &orc.at(15)),
        None => None,
    };
    let (tq_start, tq_end) = match order.order_timing {
        Some(tq1) => (
            ctx.date_time(&first(&tq1.field(7)), &tq1.at(7)),
            ctx.date_time(&first(&tq1.field(8)), &tq1.at(8)),
        ),
        None => (None, None),
    };
    json!({ "start": start.or(tq_start), "end": tq_end })
}

/// RXD → MedicationDispense (v2-to-fhir RXD[MedicationDispense]): 1 dispense counter, 2 code,
/// 3 date dispensed → whenHandedOver, 4/5 quantity, 7 prescription number, 9 notes, 10
/// dispensing provider, 12 total daily dose → daysSupply, 33 dispense type.
fn medication_dispense_from_rxd(
    ctx: &mut Ctx<'_, '_>,
    rxd: Seg<'_>,
    order: &Order<'_>,
    request: Option<&Ident>,
    patient: &PatientRef,
) -> Result<(), MapError> {
    let handed_over = if first(&rxd.field(3)).is_empty() {
        ctx.warn(format!("{}: no dispense date/time", rxd.at(3)));
        None
    } else {
        Some(ctx.required_date_time(rxd, 3)?)
    };
    let medication = Cwe::from_rep(&rxd.field(2).repetition(1))
        .concept()
        .or_else(|| order_fields(order).medication.concept())
        .unwrap_or_else(|| json!({ "text": "unknown" }));
    let amount = first(&rxd.field(4));
    let units = Cwe::from_rep(&rxd.field(5).repetition(1));
    let days_supply = dispense_days_supply(rxd, order, &amount, &units);
    let performer = ctx
        .xcn_practitioner(&rxd.field(10).repetition(1))
        .map(|actor| json!([{ "actor": actor }]));
    let notes: Vec<Value> = rxd
        .field(9)
        .repetitions()
        .map(|r| r.text().trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    let prescription = first(&rxd.field(7));
    let counter = first(&rxd.field(1));
    let key = if counter.is_empty() {
        Dtm::parse(&first(&rxd.field(3)))
            .map(|d| d.digits().to_owned())
            .unwrap_or_default()
    } else {
        counter
    };
    let base = if prescription.is_empty() {
        request.map(|r| r.value.clone()).unwrap_or_default()
    } else {
        prescription
    };
    let ident = (!base.is_empty())
        .then(|| Ident::new(ctx.local_system("dispense"), format!("{base}:{key}")));
    let dispense = json!({
        "resourceType": "MedicationDispense",
        "identifier": [ident.as_ref().map(Ident::json)],
        "status": "completed",
        "medicationCodeableConcept": medication,
        "subject": patient.reference(),
        "performer": performer,
        "authorizingPrescription": [request.map(|r| json!({
            "reference": r.conditional_reference("MedicationRequest") }))],
        "type": Cwe::from_rep(&rxd.field(33).repetition(1)).concept(),
        "quantity": simple_quantity(ctx, &amount, &units),
        "daysSupply": days_supply,
        "whenHandedOver": handed_over,
        "note": notes,
    });
    match &ident {
        Some(ident) => {
            ctx.bundle.put(dispense, ident);
        }
        None => {
            ctx.warn(format!(
                "{}: no prescription number; the dispense cannot be matched by later messages",
                rxd.at(7)
            ));
            ctx.bundle.post(&format!("dispense-{}", rxd.seq), dispense);
        }
    }
    Ok(())
}

/// RXD-4 / RXD-12 (total daily dose, CQ) in days, else RXD-4 / the order's daily dose.
fn dispense_days_supply(
    rxd: Seg<'_>,
    order: &Order<'_>,
    amount: &str,
    units: &Cwe,
) -> Option<Value> {
    let amount: f64 = amount.parse().ok()?;
    let dose = rxd.field(12).repetition(1);
    let daily: Option<f64> = comp(&dose, 1).parse().ok();
    let daily_units = Cwe::from_component(&dose.component(2));
    let per_day = match daily {
        Some(d) if d > 0.0 && !daily_units.is_empty() && same_units(&daily_units, units) => Some(d),
        _ => {
            let fields = order_fields_if_any(order)?;
            if same_units(&fields.dispense_units, units) {
                daily_dose(&fields, order)
            } else {
                None
            }
        }
    }?;
    Some(duration(amount / per_day, "d"))
}

fn order_fields_if_any(order: &Order<'_>) -> Option<OrderFields> {
    (order.rxe.is_some() || order.rxo.is_some()).then(|| order_fields(order))
}
