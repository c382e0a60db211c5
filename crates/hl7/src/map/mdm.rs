//! MDM (HL7 v2 chapter 9, "Medical Records/Information Management") → DocumentReference,
//! after the v2-to-FHIR guide's TXA[DocumentReference] map.
//!
//! The document is a conditional update on TXA-12 (unique document number), so an addendum
//! or a replacement of the same number (T04, T06, T08, T10) becomes a new version. Its text
//! is the OBX-5 of the TX/FT/ST OBX segments joined with line feeds, Base64-encoded as a
//! `text/plain` attachment (attachment.data is base64Binary); an ED OBX gives its own
//! attachment instead.

use serde_json::{json, Value};

use super::datatypes::{base64, entity_identifier, first, fixed_coding, Cwe};
use super::oru::attachment_from_ed;
use super::{Ctx, MapError, Mapped, Seg};
use crate::ErrorCode;

/// MDM^T01 … T11.
pub(crate) fn map(ctx: &mut Ctx<'_, '_>, _trigger: &str) -> Result<Mapped, MapError> {
    let Some(txa) = ctx.first("TXA") else {
        return Err(MapError::new(
            "TXA",
            1,
            None,
            ErrorCode::SegmentSequenceError,
            "MDM without a TXA segment",
        ));
    };
    let patient = ctx.require_patient()?;
    document_reference_from_txa(ctx, txa, &patient);
    ctx.finish()
}

/// Table 0271 (document completion status) → DocumentReference.docStatus.
fn doc_status(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "AU" | "LA" => "final",
        "DI" | "DO" | "IN" | "IP" | "PA" => "preliminary",
        "AM" => "amended",
        _ => return None,
    })
}

/// Table 0273 (document availability status) → DocumentReference.status.
fn status(code: &str) -> &'static str {
    match code.trim().to_ascii_uppercase().as_str() {
        "OB" => "superseded",
        "CA" => "entered-in-error",
        _ => "current",
    }
}

/// The note: OBX-5 of the text OBX (TX, FT, ST, CE text), one line per OBX or repetition.
fn note_text(ctx: &Ctx<'_, '_>) -> Option<String> {
    let mut lines = Vec::new();
    for obx in ctx.all("OBX") {
        let kind = first(&obx.field(2)).to_ascii_uppercase();
        if !matches!(kind.as_str(), "TX" | "FT" | "ST" | "") {
            continue;
        }
        for rep in obx.field(5).repetitions() {
            lines.push(rep.text().trim_end().to_owned());
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// TXA (+ OBX) → DocumentReference: 2 type (table 0270), 4/6 date, 5/9 authors, 10
/// authenticator, 12 identifier, 17 completion status, 19 availability status.
fn document_reference_from_txa(ctx: &mut Ctx<'_, '_>, txa: Seg<'_>, patient: &super::PatientRef) {
    let ident = entity_identifier(&txa.field(12).repetition(1), &ctx.local_system("document"));
    let mut kind = Cwe::from_rep(&txa.field(2).repetition(1));
    if kind.system.is_empty() {
        kind.system = "HL70270".to_owned();
    }
    let date = {
        let origination = first(&txa.field(6));
        let activity = first(&txa.field(4));
        let at = txa.at(6);
        ctx.instant(
            if origination.is_empty() {
                &activity
            } else {
                &origination
            },
            &at,
        )
    };
    let mut authors = Vec::new();
    for field in [5, 9] {
        for rep in txa.field(field).repetitions() {
            if let Some(r) = ctx.xcn_practitioner(&rep) {
                if !authors.contains(&r) {
                    authors.push(r);
                }
            }
        }
    }
    let authenticator = ctx.xcn_practitioner(&txa.field(10).repetition(1));
    let mut contents = Vec::new();
    if let Some(text) = note_text(ctx) {
        contents.push(json!({ "attachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64(text.as_bytes()),
        }}));
    }
    for obx in ctx.all("OBX") {
        if first(&obx.field(2)).eq_ignore_ascii_case("ED") {
            if let Some(attachment) = attachment_from_ed(ctx, obx) {
                contents.push(json!({ "attachment": attachment }));
            }
        }
    }
    if contents.is_empty() {
        contents.push(
            json!({ "attachment": { "contentType": "text/plain", "title": "no content sent" } }),
        );
    }
    let identifier = ident.as_ref().map(|i| {
        json!({
            "type": { "coding": [fixed_coding("http://terminology.hl7.org/CodeSystem/v2-0203", "FILL", "")] },
            "system": i.system,
            "value": i.value,
        })
    });
    let document = json!({
        "resourceType": "DocumentReference",
        "identifier": [identifier],
        "status": status(&first(&txa.field(19))),
        "docStatus": doc_status(&first(&txa.field(17))),
        "type": kind.concept(),
        "subject": patient.reference(),
        "date": date,
        "author": authors,
        "authenticator": authenticator.unwrap_or(Value::Null),
        "content": contents,
    });
    match &ident {
        Some(ident) => {
            ctx.bundle.put(document, ident);
        }
        None => {
            ctx.warn(format!(
                "{}: no unique document number; the document cannot be matched by later messages",
                txa.at(12)
            ));
            ctx.bundle.post("document", document);
        }
    }
}
