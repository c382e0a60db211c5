//! VXU^V04 (HL7 v2 chapter 4A.5, "Pharmacy/Treatment Administration", as profiled by the
//! CDC immunization guide) → Immunization per RXA, after the v2-to-FHIR guide's
//! RXA[Immunization] map.
//!
//! Each Immunization is a conditional update on its ORC-3 (filler order number), else ORC-2,
//! else a hash of patient, vaccine and date. RXA-20 (completion status) gives the status:
//! CP/PA completed, RE (refused) and NA not-done (reason RXA-18); RXA-21 `D` is a deletion,
//! entered-in-error.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::datatypes::{derived_value, entity_identifier, first, fixed_coding, Cwe, Ident};
use super::{Ctx, MapError, Mapped, PatientRef, Seg};

/// VXU^V04.
pub(crate) fn map(ctx: &mut Ctx<'_, '_>) -> Result<Mapped, MapError> {
    let patient = ctx.require_patient()?;
    let mut orc = None;
    let mut seen = HashSet::new();
    let segs = ctx.segs.clone();
    for (i, seg) in segs.iter().enumerate() {
        match seg.id() {
            "ORC" => orc = Some(*seg),
            "RXA" => {
                let rxr = segs[i + 1..]
                    .iter()
                    .take_while(|s| !matches!(s.id(), "RXA" | "ORC"))
                    .find(|s| s.id() == "RXR")
                    .copied();
                immunization_from_rxa(ctx, *seg, orc.take(), rxr, &patient, &mut seen)?;
            }
            _ => {}
        }
    }
    ctx.finish()
}

/// RXA (+ ORC, RXR) → Immunization: 3 date → occurrence (required), 5 vaccine (CVX), 6/7
/// dose, 9 information source (NIP001: 00 new → primary source), 10 performer, 15 lot, 16
/// expiration, 17 manufacturer, 18 refusal reason, 20 completion status, 21 action code.
fn immunization_from_rxa(
    ctx: &mut Ctx<'_, '_>,
    rxa: Seg<'_>,
    orc: Option<Seg<'_>>,
    rxr: Option<Seg<'_>>,
    patient: &PatientRef,
    seen: &mut HashSet<Ident>,
) -> Result<(), MapError> {
    let occurrence = ctx.required_date_time(rxa, 3)?;
    let vaccine = Cwe::from_rep(&rxa.field(5).repetition(1));
    let completion = first(&rxa.field(20)).to_ascii_uppercase();
    let status = if first(&rxa.field(21)).eq_ignore_ascii_case("D") {
        "entered-in-error"
    } else {
        match completion.as_str() {
            "RE" | "NA" => "not-done",
            _ => "completed",
        }
    };
    let refusal = Cwe::from_rep(&rxa.field(18).repetition(1)).concept();
    let amount = first(&rxa.field(6));
    let dose = if amount.is_empty() || amount == "999" {
        None
    } else {
        super::datatypes::decimal(&amount)
            .map(|v| ctx.quantity(v, &Cwe::from_rep(&rxa.field(7).repetition(1))))
    };
    let source = Cwe::from_rep(&rxa.field(9).repetition(1));
    let primary_source = match source.code.as_str() {
        "00" => Some(true),
        "" => None,
        _ => Some(false),
    };
    let performer = ctx.xcn_practitioner(&rxa.field(10).repetition(1)).map(|actor| {
        json!([{
            "function": { "coding": [fixed_coding(
                "http://terminology.hl7.org/CodeSystem/v2-0443", "AP", "Administering Provider")] },
            "actor": actor,
        }])
    });
    let manufacturer = Cwe::from_rep(&rxa.field(17).repetition(1));
    let manufacturer = if manufacturer.is_empty() {
        Value::Null
    } else {
        json!({ "display": manufacturer.display() })
    };
    let expiration = ctx.date(&first(&rxa.field(16)), &rxa.at(16));
    let ident = immunization_identifier(ctx, orc, patient, &vaccine, &occurrence, seen);
    let immunization = json!({
        "resourceType": "Immunization",
        "identifier": [ident.json()],
        "status": status,
        "statusReason": if status == "not-done" { refusal.unwrap_or(Value::Null) } else { Value::Null },
        "vaccineCode": vaccine.concept().unwrap_or_else(|| json!({ "text": "unknown" })),
        "patient": patient.reference(),
        "occurrenceDateTime": occurrence,
        "primarySource": primary_source,
        "reportOrigin": if primary_source == Some(false) { source.concept() } else { None },
        "manufacturer": manufacturer,
        "lotNumber": first(&rxa.field(15)),
        "expirationDate": expiration,
        "site": rxr.and_then(|r| Cwe::from_rep(&r.field(2).repetition(1)).concept()),
        "route": rxr.and_then(|r| Cwe::from_rep(&r.field(1).repetition(1)).concept()),
        "doseQuantity": dose,
        "performer": performer,
    });
    ctx.bundle.put(immunization, &ident);
    Ok(())
}

/// ORC-3, else ORC-2, else patient + vaccine + date.
fn immunization_identifier(
    ctx: &Ctx<'_, '_>,
    orc: Option<Seg<'_>>,
    patient: &PatientRef,
    vaccine: &Cwe,
    occurrence: &str,
    seen: &mut HashSet<Ident>,
) -> Ident {
    let system = ctx.local_system("immunization");
    let from_orc = orc.and_then(|orc| {
        entity_identifier(&orc.field(3).repetition(1), &system)
            .or_else(|| entity_identifier(&orc.field(2).repetition(1), &system))
    });
    let ident = from_orc.filter(|i| !seen.contains(i)).unwrap_or_else(|| {
        Ident::new(
            system.clone(),
            derived_value(&[
                &patient.identity.system,
                &patient.identity.value,
                &vaccine.system,
                &vaccine.code,
                occurrence,
            ]),
        )
    });
    seen.insert(ident.clone());
    ident
}
