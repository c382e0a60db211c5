//! ORU^R01 (HL7 v2 chapter 7, "Observation Reporting") → DiagnosticReport per OBR and
//! Observation per OBX, after the v2-to-FHIR guide's OBR[DiagnosticReport] and
//! OBX[Observation] maps.
//!
//! - The report is a conditional update on OBR-3 (filler order number), else OBR-2 (placer),
//!   else the ORC's; each Observation on the report's identifier plus the OBX set id and
//!   OBX-3 code. A corrected result (OBX-11 `C`) therefore becomes a new version of the same
//!   Observation.
//! - OBX-5 by OBX-2: NM → valueQuantity (UCUM units where known), ST/TX/FT → valueString,
//!   CE/CWE → valueCodeableConcept, SN → Quantity with comparator, Range or Ratio, DT/TS →
//!   valueDateTime, TM → valueTime. ED (an embedded PDF, image …) goes to
//!   DiagnosticReport.presentedForm: FHIR R4 Observation has no valueAttachment (it came in
//!   R5), and presentedForm is R4's place for a rendered report.
//! - OBX-7 → referenceRange, OBX-8 (table 0078) → interpretation, OBX-11 (table 0085) →
//!   status, OBX-14 → effective, OBX-16 → performer, NTE after an OBX → note.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::adt::patient_from_segment;
use super::codes;
use super::datatypes::{
    clean, clean_base64, comp, decimal, entity_identifier, first, fixed_coding, Cwe, Ident, Person,
    Sn,
};
use super::{Ctx, MapError, Mapped, PatientRef, Seg};

const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// One OBR with its ORC and its OBX (each with its NTEs).
struct Group<'c> {
    patient: PatientRef,
    orc: Option<Seg<'c>>,
    obr: Option<Seg<'c>>,
    obr_notes: usize,
    results: Vec<(Seg<'c>, Vec<Seg<'c>>)>,
}

/// What the Observations of a report take from it.
pub(crate) struct ReportContext {
    pub(crate) ident: Option<Ident>,
    pub(crate) effective: Option<String>,
    pub(crate) issued: Option<String>,
}

/// What an OBX became.
pub(crate) enum ObxResult {
    Observation(String),
    Attachment(Value),
}

/// ORU^R01: every patient's (PID) results, report by report.
pub(crate) fn map(ctx: &mut Ctx<'_, '_>) -> Result<Mapped, MapError> {
    ctx.require_patient()?;
    for group in groups(ctx)? {
        report_from_group(ctx, group);
    }
    ctx.finish()
}

/// Splits the message into OBR groups, following the segment order of ORU_R01.
fn groups<'c>(ctx: &mut Ctx<'c, '_>) -> Result<Vec<Group<'c>>, MapError> {
    let mut groups: Vec<Group<'c>> = Vec::new();
    let mut patient = ctx.patient.clone().expect("checked by the caller");
    let mut first_pid = true;
    let mut orc = None;
    let mut last = "";
    let segs = ctx.segs.clone();
    for seg in segs {
        match seg.id() {
            "PID" => {
                if !first_pid {
                    if let Some(p) = patient_from_segment(ctx, seg)? {
                        patient = p;
                    }
                }
                first_pid = false;
                orc = None;
            }
            "ORC" => orc = Some(seg),
            "OBR" => groups.push(Group {
                patient: patient.clone(),
                orc: orc.take(),
                obr: Some(seg),
                obr_notes: 0,
                results: Vec::new(),
            }),
            "OBX" => {
                if groups
                    .last()
                    .is_none_or(|g| !same_patient(&g.patient, &patient))
                {
                    groups.push(Group {
                        patient: patient.clone(),
                        orc: None,
                        obr: None,
                        obr_notes: 0,
                        results: Vec::new(),
                    });
                }
                if let Some(group) = groups.last_mut() {
                    group.results.push((seg, Vec::new()));
                }
            }
            "NTE" => match (last, groups.last_mut()) {
                ("OBX" | "NTE", Some(group)) if !group.results.is_empty() => {
                    if let Some((_, notes)) = group.results.last_mut() {
                        notes.push(seg);
                    }
                }
                (_, Some(group)) if group.obr.is_some() => group.obr_notes += 1,
                _ => {}
            },
            _ => {}
        }
        if seg.id() != "NTE" {
            last = seg.id();
        }
    }
    Ok(groups)
}

fn same_patient(a: &PatientRef, b: &PatientRef) -> bool {
    a.full_url == b.full_url
}

/// The order number a report is known by: OBR-3 filler, OBR-2 placer, ORC-3, ORC-2.
pub(crate) fn order_identifier(
    ctx: &Ctx<'_, '_>,
    obr: Option<Seg<'_>>,
    orc: Option<Seg<'_>>,
) -> Option<Ident> {
    let filler = ctx.local_system("filler-order");
    let placer = ctx.local_system("placer-order");
    let candidates = [
        (obr, 3, &filler),
        (obr, 2, &placer),
        (orc, 3, &filler),
        (orc, 2, &placer),
    ];
    let found = candidates.into_iter().find_map(|(seg, field, system)| {
        seg.and_then(|s| entity_identifier(&s.field(field).repetition(1), system))
    });
    found
}

/// OBR → DiagnosticReport with its Observations (v2-to-fhir OBR[DiagnosticReport]): 4 code,
/// 7/8 effective, 22 issued, 24 category (table 0074), 25 status (table 0123), 32 results
/// interpreter. OBX without an OBR become Observations alone.
fn report_from_group(ctx: &mut Ctx<'_, '_>, group: Group<'_>) {
    let Some(obr) = group.obr else {
        let context = ReportContext {
            ident: None,
            effective: None,
            issued: None,
        };
        let mut used = HashSet::new();
        for (i, (obx, notes)) in group.results.iter().enumerate() {
            if let Some(ObxResult::Attachment(_)) =
                observation_from_obx(ctx, *obx, notes, &context, &group.patient, i, &mut used)
            {
                ctx.warn(format!(
                    "{}: an embedded document outside a report is not mapped",
                    obx.at(5)
                ));
            }
        }
        return;
    };
    if group.obr_notes > 0 {
        ctx.warn(format!(
            "{}: {} NTE after the OBR (order notes) are not mapped",
            obr.at(1),
            group.obr_notes
        ));
    }
    let ident = order_identifier(ctx, Some(obr), group.orc);
    let effective = ctx.date_time(&first(&obr.field(7)), &obr.at(7));
    let effective_end = ctx.date_time(&first(&obr.field(8)), &obr.at(8));
    let issued = ctx.instant(&first(&obr.field(22)), &obr.at(22));
    let context = ReportContext {
        ident: ident.clone(),
        effective: effective.clone(),
        issued: issued.clone(),
    };
    let mut results = Vec::new();
    let mut forms = Vec::new();
    let mut performers = Vec::new();
    let mut used = HashSet::new();
    for (i, (obx, notes)) in group.results.iter().enumerate() {
        let organisation = first(&obx.field(23));
        if !organisation.is_empty() {
            let performer = json!({ "display": organisation });
            if !performers.contains(&performer) {
                performers.push(performer);
            }
        }
        match observation_from_obx(ctx, *obx, notes, &context, &group.patient, i, &mut used) {
            Some(ObxResult::Observation(url)) => results.push(json!({ "reference": url })),
            Some(ObxResult::Attachment(a)) => forms.push(a),
            None => {}
        }
    }
    let code = Cwe::from_rep(&obr.field(4).repetition(1)).concept();
    if code.is_none() {
        ctx.warn(format!("{}: no universal service identifier", obr.at(4)));
    }
    let interpreter = Person::from_cnn(&obr.field(32).repetition(1).component(1));
    let interpreter = ctx.practitioner(&interpreter);
    let category = Cwe::from_rep(&obr.field(24).repetition(1));
    let category = if category.code.is_empty() {
        Value::Null
    } else {
        json!({ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/v2-0074", &category.code, &category.text)] })
    };
    let (effective_date, effective_period) = match (&effective, &effective_end) {
        (Some(start), Some(end)) => (None, json!({ "start": start, "end": end })),
        _ => (effective.clone(), Value::Null),
    };
    let report = json!({
        "resourceType": "DiagnosticReport",
        "identifier": [ident.as_ref().map(|i| identifier_json(i, order_kind(obr)))],
        "status": codes::report_status(&first(&obr.field(25))),
        "category": [category],
        "code": code.unwrap_or_else(|| json!({ "text": "unknown" })),
        "subject": group.patient.reference(),
        "effectiveDateTime": effective_date,
        "effectivePeriod": effective_period,
        "issued": issued,
        "performer": performers,
        "resultsInterpreter": [interpreter],
        "result": results,
        "presentedForm": forms,
    });
    match &ident {
        Some(ident) => {
            ctx.bundle.put(report, ident);
        }
        None => {
            ctx.warn(format!(
                "{}: no order number (OBR-2/OBR-3/ORC-2/ORC-3); the report cannot be matched by a correction",
                obr.at(3)
            ));
            ctx.bundle.post(&format!("report-{}", obr.seq), report);
        }
    }
}

/// FILL or PLAC: which order number identifies the report.
fn order_kind(obr: Seg<'_>) -> &'static str {
    if first(&obr.field(3)).is_empty() {
        "PLAC"
    } else {
        "FILL"
    }
}

fn identifier_json(ident: &Ident, kind: &str) -> Value {
    json!({
        "type": { "coding": [fixed_coding("http://terminology.hl7.org/CodeSystem/v2-0203", kind, "")] },
        "system": ident.system,
        "value": ident.value,
    })
}

/// OBX → Observation (v2-to-fhir OBX[Observation]), or the attachment of an ED value.
pub(crate) fn observation_from_obx(
    ctx: &mut Ctx<'_, '_>,
    obx: Seg<'_>,
    notes: &[Seg<'_>],
    report: &ReportContext,
    patient: &PatientRef,
    index: usize,
    used: &mut HashSet<String>,
) -> Option<ObxResult> {
    let value_type = first(&obx.field(2)).to_ascii_uppercase();
    if value_type == "ED" {
        return attachment_from_ed(ctx, obx).map(ObxResult::Attachment);
    }
    let code_cwe = Cwe::from_rep(&obx.field(3).repetition(1));
    let code = code_cwe.concept().unwrap_or_else(|| {
        ctx.warn(format!("{}: no observation identifier", obx.at(3)));
        json!({ "text": "unknown" })
    });
    let unit = Cwe::from_rep(&obx.field(6).repetition(1));
    // Results of an ORU are laboratory results (observation-category `laboratory`), so that
    // they are found and shown as such beside vital signs and surveys.
    let mut observation = json!({
        "resourceType": "Observation",
        "status": codes::observation_status(&first(&obx.field(11))),
        "category": [{ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")] }],
        "code": code,
        "subject": patient.reference(),
    });
    let effective = ctx
        .date_time(&first(&obx.field(14)), &obx.at(14))
        .or_else(|| report.effective.clone());
    observation["effectiveDateTime"] = json!(effective);
    observation["issued"] = json!(report.issued);
    let performers: Vec<Value> = obx
        .field(16)
        .repetitions()
        .filter_map(|rep| ctx.xcn_practitioner(&rep))
        .collect();
    observation["performer"] = json!(performers);
    if let Some((key, value)) = observation_value(ctx, obx, &value_type, &unit) {
        observation[key] = value;
    }
    observation["interpretation"] = interpretation(obx);
    let note: Vec<Value> = notes
        .iter()
        .map(|nte| note_text(nte))
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    observation["note"] = json!(note);
    observation["referenceRange"] = reference_range(ctx, obx, &unit);
    let full_url = match &report.ident {
        Some(ident) => {
            let set_id = first(&obx.field(1));
            let set_id = if set_id.is_empty() {
                (index + 1).to_string()
            } else {
                set_id
            };
            let mut value = format!("{}:obx:{set_id}:{}", ident.value, code_cwe.code);
            let sub_id = first(&obx.field(4));
            if !sub_id.is_empty() {
                value.push_str(&format!(":{sub_id}"));
            }
            let mut unique = value.clone();
            let mut n = 1;
            while !used.insert(unique.clone()) {
                n += 1;
                unique = format!("{value}#{n}");
            }
            let obs_ident = Ident::new(ident.system.clone(), unique);
            observation["identifier"] = json!([obs_ident.json()]);
            ctx.bundle.put(observation, &obs_ident)
        }
        None => ctx.bundle.post(&format!("obx-{}", obx.seq), observation),
    };
    Some(ObxResult::Observation(full_url))
}

/// NTE-3 (comment, FT): its repetitions as lines.
pub(crate) fn note_text(nte: &Seg<'_>) -> String {
    let lines: Vec<String> = nte
        .field(3)
        .repetitions()
        .map(|r| r.text().trim_end().to_owned())
        .collect();
    lines.join("\n").trim().to_owned()
}

/// OBX-5 as the Observation's value[x], by OBX-2.
fn observation_value(
    ctx: &mut Ctx<'_, '_>,
    obx: Seg<'_>,
    value_type: &str,
    unit: &Cwe,
) -> Option<(&'static str, Value)> {
    let field = obx.field(5);
    let reps: Vec<_> = field.repetitions().collect();
    if reps.is_empty() || (reps.len() == 1 && clean(&reps[0].text()).is_empty()) {
        return None;
    }
    let at = obx.at(5);
    let single = |ctx: &mut Ctx<'_, '_>| {
        if reps.len() > 1 {
            ctx.warn(format!(
                "{at}: {} repetitions, only the first is mapped",
                reps.len()
            ));
        }
    };
    match value_type {
        "NM" => {
            single(ctx);
            let text = clean(&reps[0].value());
            if let Some(quantity) = numeric_quantity(ctx, &text, unit) {
                return Some(("valueQuantity", quantity));
            }
            ctx.warn(format!("{at}: NM value is not a number, kept as text"));
            Some(("valueString", json!(text)))
        }
        "CE" | "CWE" | "CNE" | "CF" | "IS" | "ID" => {
            let mut concept = Cwe::from_rep(&reps[0]).concept()?;
            for rep in &reps[1..] {
                if let Some(Value::Array(more)) = Cwe::from_rep(rep)
                    .concept()
                    .and_then(|c| c.get("coding").cloned())
                {
                    if let Some(Value::Array(codings)) = concept.get_mut("coding") {
                        codings.extend(more);
                    }
                }
            }
            Some(("valueCodeableConcept", concept))
        }
        "SN" => {
            single(ctx);
            let sn = Sn::from_rep(&reps[0])?;
            Some(match sn {
                Sn::Quantity { comparator, value } => {
                    let mut q = ctx.quantity(value, unit);
                    if let Some(c) = comparator {
                        q["comparator"] = json!(c);
                    }
                    ("valueQuantity", q)
                }
                Sn::Range { low, high } => (
                    "valueRange",
                    json!({ "low": ctx.quantity(low, unit), "high": ctx.quantity(high, unit) }),
                ),
                Sn::Ratio {
                    numerator,
                    denominator,
                } => (
                    "valueRatio",
                    json!({ "numerator": { "value": numerator }, "denominator": { "value": denominator } }),
                ),
                Sn::Text(t) => ("valueString", json!(t)),
            })
        }
        "DT" | "TS" | "DTM" => {
            single(ctx);
            let when = ctx.date_time(&reps[0].value(), &at)?;
            Some(("valueDateTime", json!(when)))
        }
        "TM" => {
            single(ctx);
            match time_of_day(&clean(&reps[0].value())) {
                Some(t) => Some(("valueTime", json!(t))),
                None => {
                    ctx.warn(format!("{at}: not a valid HL7 time, left out"));
                    None
                }
            }
        }
        "RP" => Some(("valueString", json!(comp(&reps[0], 1)))),
        _ => {
            let lines: Vec<String> = reps
                .iter()
                .map(|r| r.text().trim_end().to_owned())
                .collect();
            Some(("valueString", json!(lines.join("\n"))))
        }
    }
}

/// A number, or a comparator and a number (`<5`, `>=10`), as a Quantity.
fn numeric_quantity(ctx: &Ctx<'_, '_>, text: &str, unit: &Cwe) -> Option<Value> {
    let (comparator, number) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|c| text.strip_prefix(c).map(|rest| (Some(*c), rest.trim())))
        .unwrap_or((None, text));
    let value = decimal(number)?;
    let mut q = ctx.quantity(value, unit);
    if let Some(c) = comparator {
        q["comparator"] = json!(c);
    }
    Some(q)
}

/// HL7 TM (`HHMM[SS[.S]]`) → FHIR time.
fn time_of_day(raw: &str) -> Option<String> {
    let digits = raw.split(['+', '-']).next()?;
    let (main, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if !main.bytes().all(|b| b.is_ascii_digit()) || ![2, 4, 6].contains(&main.len()) {
        return None;
    }
    let part = |i: usize| main.get(i..i + 2).unwrap_or("00");
    let (h, m, s): (u32, u32, u32) = (
        part(0).parse().ok()?,
        part(2).parse().ok()?,
        part(4).parse().ok()?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut out = format!("{}:{}:{}", part(0), part(2), part(4));
    if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

/// OBX-8 abnormal flags (table 0078) → interpretation (v3 ObservationInterpretation).
fn interpretation(obx: Seg<'_>) -> Value {
    let concepts: Vec<Value> = obx
        .field(8)
        .repetitions()
        .filter_map(|rep| {
            let cwe = Cwe::from_rep(&rep);
            match codes::interpretation(&cwe.code) {
                Some(code) => {
                    Some(json!({ "coding": [fixed_coding(INTERPRETATION, code, &cwe.text)] }))
                }
                None => cwe.concept(),
            }
        })
        .collect();
    json!(concepts)
}

/// OBX-7 (references range, ST) → referenceRange: `3.5-5.0`, `<5`, `>10` as low/high in the
/// OBX-6 units, anything else as text. Components are text here (B05: `^CUT-OFF 300 ng/mL`).
fn reference_range(ctx: &Ctx<'_, '_>, obx: Seg<'_>, unit: &Cwe) -> Value {
    let rep = obx.field(7).repetition(1);
    let parts: Vec<String> = rep
        .components()
        .map(|c| clean(&c.text()))
        .filter(|s| !s.is_empty())
        .collect();
    let text = parts.join(" ");
    if text.is_empty() {
        return Value::Null;
    }
    let q = |v: Value| ctx.quantity(v, unit);
    // `[ < 4.5]`, `(3.5-5.0)`, `13 to 18`: the same ranges, written differently.
    let bare = text
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')'])
        .trim()
        .replace(" to ", "-");
    let bare = bare.trim();
    let range = if let Some(rest) = bare.strip_prefix("<=").or_else(|| bare.strip_prefix('<')) {
        decimal(rest).map(|high| json!({ "high": q(high) }))
    } else if let Some(rest) = bare.strip_prefix(">=").or_else(|| bare.strip_prefix('>')) {
        decimal(rest).map(|low| json!({ "low": q(low) }))
    } else {
        split_range(bare).map(|(low, high)| json!({ "low": q(low), "high": q(high) }))
    };
    let mut range = range.unwrap_or_else(|| json!({}));
    range["text"] = json!(text);
    json!([range])
}

/// `low-high`, negative numbers allowed (`-5--1`).
fn split_range(text: &str) -> Option<(Value, Value)> {
    text.char_indices()
        .filter(|&(i, c)| c == '-' && i > 0)
        .find_map(|(i, _)| Some((decimal(&text[..i])?, decimal(&text[i + 1..])?)))
}

/// OBX-5 of type ED (source ^ type of data ^ subtype ^ encoding ^ data) → Attachment.
pub(crate) fn attachment_from_ed(ctx: &mut Ctx<'_, '_>, obx: Seg<'_>) -> Option<Value> {
    let rep = obx.field(5).repetition(1);
    let (kind, subtype, encoding) = (comp(&rep, 2), comp(&rep, 3), comp(&rep, 4));
    let raw = rep.component(5).value();
    let data = match encoding.to_ascii_uppercase().as_str() {
        "BASE64" | "B64" => clean_base64(&raw),
        "A" | "ASCII" | "" => {
            (!raw.trim().is_empty()).then(|| super::datatypes::base64(raw.as_bytes()))
        }
        "HEX" => hex::decode(raw.trim())
            .ok()
            .map(|b| super::datatypes::base64(&b)),
        _ => None,
    };
    let Some(data) = data else {
        ctx.warn(format!(
            "{}: embedded data missing or not in its declared encoding, left out",
            obx.at(5)
        ));
        return None;
    };
    Some(json!({
        "contentType": content_type(&kind, &subtype),
        "data": data,
        "title": Cwe::from_rep(&obx.field(3).repetition(1)).display(),
    }))
}

/// ED-2 type of data (table 0191) and ED-3 subtype (table 0291) → a MIME type.
pub(crate) fn content_type(kind: &str, subtype: &str) -> String {
    let subtype = subtype.trim().to_ascii_lowercase();
    if subtype.contains('/') {
        return subtype;
    }
    let major = match kind.trim().to_ascii_uppercase().as_str() {
        "AP" | "APPLICATION" => "application",
        "IM" | "IMAGE" => "image",
        "AU" | "AUDIO" => "audio",
        "TX" | "TEXT" | "FT" => "text",
        "VIDEO" => "video",
        "MULTIPART" => "multipart",
        _ => "",
    };
    match (major, subtype.as_str()) {
        (_, "pdf") => "application/pdf".to_owned(),
        (_, "rtf") => "application/rtf".to_owned(),
        (_, "jpeg" | "jpg") => "image/jpeg".to_owned(),
        (_, "png") => "image/png".to_owned(),
        (_, "tiff") => "image/tiff".to_owned(),
        (_, "html") => "text/html".to_owned(),
        (_, "xml") => "application/xml".to_owned(),
        ("text", _) => "text/plain".to_owned(),
        ("", _) | (_, "") => "application/octet-stream".to_owned(),
        (major, sub) => format!("{major}/{sub}"),
    }
}
