//! Turning FHIR JSON into text people read: codes by their display, dates in a readable form,
//! quantities with their units exactly as recorded.

use chrono::{DateTime, NaiveDate};
use rapport_fhir::date;
use serde_json::Value;

pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A CodeableConcept or Coding as text: its `text`, else the first coding's display, else code.
pub fn concept(v: &Value) -> String {
    if let Some(t) = str_at(v, "text").filter(|t| !t.is_empty()) {
        return t.to_owned();
    }
    let codings: Vec<&Value> = match v.get("coding") {
        Some(Value::Array(c)) => c.iter().collect(),
        _ => vec![v],
    };
    for c in &codings {
        if let Some(d) = str_at(c, "display").filter(|d| !d.is_empty()) {
            return d.to_owned();
        }
    }
    codings
        .iter()
        .find_map(|c| str_at(c, "code"))
        .unwrap_or("(no code)")
        .to_owned()
}

/// The first coding's `system|code`, for a tooltip.
pub fn code_of(v: &Value) -> Option<String> {
    let c = v.get("coding")?.as_array()?.first()?;
    Some(format!(
        "{} {}",
        system_name(str_at(c, "system").unwrap_or_default()),
        str_at(c, "code")?
    ))
}

/// Short names of the code systems people recognise.
pub fn system_name(system: &str) -> &str {
    match system {
        "http://loinc.org" => "LOINC",
        "http://snomed.info/sct" => "SNOMED CT",
        "http://www.nlm.nih.gov/research/umls/rxnorm" => "RxNorm",
        "http://hl7.org/fhir/sid/cvx" => "CVX",
        "http://hl7.org/fhir/sid/icd-10" | "http://hl7.org/fhir/sid/icd-10-cm" => "ICD-10",
        "http://hl7.org/fhir/sid/us-npi" => "NPI",
        "http://hl7.org/fhir/sid/us-ssn" => "SSN",
        other => other,
    }
}

/// A HumanName (the official one if there is one) as "Given Family".
pub fn person_name(resource: &Value) -> String {
    let Some(names) = resource.get("name").and_then(Value::as_array) else {
        return str_at(resource, "name").unwrap_or("(no name)").to_owned();
    };
    let name = names
        .iter()
        .find(|n| str_at(n, "use") == Some("official"))
        .or_else(|| names.first());
    name.map(human_name)
        .unwrap_or_else(|| "(no name)".to_owned())
}

pub fn human_name(n: &Value) -> String {
    if let Some(t) = str_at(n, "text") {
        return t.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for key in ["prefix", "given"] {
        if let Some(Value::Array(items)) = n.get(key) {
            parts.extend(items.iter().filter_map(Value::as_str));
        }
    }
    if let Some(f) = str_at(n, "family") {
        parts.push(f);
    }
    if parts.is_empty() {
        "(no name)".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A FHIR date or dateTime shown at its own precision: "2019", "Mar 2019", "4 Mar 2019",
/// "4 Mar 2019 10:15".
pub fn format_date(s: &str) -> String {
    if s.contains('T') {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return dt.format("%-d %b %Y %H:%M").to_string();
        }
        // Date-times without an offset (not R4-conformant, but seen in the field).
        if let Some((d, t)) = s.split_once('T') {
            return format!("{} {}", format_date(d), &t[..t.len().min(5)]);
        }
    }
    match s.len() {
        4 => s.to_owned(),
        7 => NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
            .map(|d| d.format("%b %Y").to_string())
            .unwrap_or_else(|_| s.to_owned()),
        _ => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| d.format("%-d %b %Y").to_string())
            .unwrap_or_else(|_| s.to_owned()),
    }
}

/// A day: "2 Dec 2026".
pub fn format_ms_day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%-d %b %Y").to_string())
        .unwrap_or_default()
}

pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%-d %b %Y %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A Quantity with its value exactly as recorded (decimal precision kept) and its unit.
pub fn quantity(q: &Value) -> String {
    let value = match q.get("value") {
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let unit = str_at(q, "unit")
        .or_else(|| str_at(q, "code"))
        .unwrap_or("");
    let comparator = str_at(q, "comparator").unwrap_or("");
    format!("{comparator}{value} {unit}").trim().to_owned()
}

/// An Observation's value: quantity, coded, text, or its components ("120/80 mm[Hg]").
pub fn observation_value(obs: &Value) -> String {
    if let Some(q) = obs.get("valueQuantity") {
        return quantity(q);
    }
    if let Some(c) = obs.get("valueCodeableConcept") {
        return concept(c);
    }
    for key in ["valueString", "valueDateTime", "valueTime"] {
        if let Some(s) = str_at(obs, key) {
            return s.to_owned();
        }
    }
    if let Some(b) = obs.get("valueBoolean").and_then(Value::as_bool) {
        return if b { "yes" } else { "no" }.to_owned();
    }
    if let Some(Value::Array(components)) = obs.get("component") {
        let quantities: Vec<&Value> = components
            .iter()
            .filter_map(|c| c.get("valueQuantity"))
            .collect();
        if quantities.len() == components.len() && !quantities.is_empty() {
            let units: Vec<&str> = quantities
                .iter()
                .filter_map(|q| str_at(q, "unit").or_else(|| str_at(q, "code")))
                .collect();
            if units.windows(2).all(|w| w[0] == w[1]) && units.len() == quantities.len() {
                let values: Vec<String> = quantities
                    .iter()
                    .map(|q| q.get("value").map(|v| v.to_string()).unwrap_or_default())
                    .collect();
                return format!("{} {}", values.join("/"), units[0]);
            }
        }
        return components
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.get("code").map(concept).unwrap_or_default(),
                    observation_value(c)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(reason) = obs.get("dataAbsentReason") {
        return format!("({})", concept(reason));
    }
    String::new()
}

/// The date a resource is placed at on the timeline, as written in the resource.
pub fn clinical_date(r: &Value) -> Option<&str> {
    let period_start = |key: &str| r.get(key).and_then(|p| str_at(p, "start"));
    match str_at(r, "resourceType")? {
        "Encounter" => period_start("period"),
        "Observation" | "DiagnosticReport" => str_at(r, "effectiveDateTime")
            .or_else(|| period_start("effectivePeriod"))
            .or_else(|| str_at(r, "effectiveInstant"))
            .or_else(|| str_at(r, "issued")),
        "Procedure" => str_at(r, "performedDateTime").or_else(|| period_start("performedPeriod")),
        "DocumentReference" => str_at(r, "date").or_else(|| {
            r.get("context")
                .and_then(|c| c.get("period"))
                .and_then(|p| str_at(p, "start"))
        }),
        "Immunization" => str_at(r, "occurrenceDateTime"),
        "Condition" => str_at(r, "onsetDateTime").or_else(|| str_at(r, "recordedDate")),
        "MedicationRequest" => str_at(r, "authoredOn"),
        "MedicationDispense" => str_at(r, "whenHandedOver"),
        "AllergyIntolerance" => str_at(r, "recordedDate").or_else(|| str_at(r, "onsetDateTime")),
        "Appointment" => str_at(r, "start"),
        "CarePlan" | "CareTeam" => period_start("period"),
        "Claim" | "ExplanationOfBenefit" => period_start("billablePeriod"),
        _ => None,
    }
}

/// Milliseconds for ordering by [`clinical_date`]; undated items sort last.
pub fn sort_ms(r: &Value) -> i64 {
    clinical_date(r)
        .and_then(date::parse_range)
        .map_or(i64::MIN, |d| d.start)
}

/// The text of a DocumentReference's first inline attachment, if it is plain text.
pub fn document_text(doc: &Value) -> Option<String> {
    use base64::Engine;
    let attachment = doc.get("content")?.as_array()?.first()?.get("attachment")?;
    let content_type = str_at(attachment, "contentType").unwrap_or("text/plain");
    if !content_type.starts_with("text/plain") {
        return None;
    }
    let data = str_at(attachment, "data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_shown_at_their_precision() {
        assert_eq!(format_date("2019"), "2019");
        assert_eq!(format_date("2019-03"), "Mar 2019");
        assert_eq!(format_date("2019-03-04"), "4 Mar 2019");
        assert_eq!(format_date("2019-03-04T10:15:00+01:00"), "4 Mar 2019 10:15");
    }

    #[test]
    fn quantities_keep_their_decimals() {
        let v: Value = serde_json::from_str(r#"{"value": 1.50, "unit": "mmol/L"}"#).unwrap();
        assert_eq!(quantity(&v), "1.50 mmol/L");
    }

    #[test]
    fn blood_pressure_components_read_as_systolic_over_diastolic() {
        let obs: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","component":[
            {"code":{"text":"sys"},"valueQuantity":{"value":120,"unit":"mm[Hg]"}},
            {"code":{"text":"dia"},"valueQuantity":{"value":80,"unit":"mm[Hg]"}}]}"#,
        )
        .unwrap();
        assert_eq!(observation_value(&obs), "120/80 mm[Hg]");
    }

    #[test]
    fn concepts_prefer_text_then_display_then_code() {
        assert_eq!(
            concept(&json!({"text": "Asthma", "coding": [{"display": "x"}]})),
            "Asthma"
        );
        assert_eq!(
            concept(&json!({"coding": [{"code": "1"}, {"code": "2", "display": "Two"}]})),
            "Two"
        );
        assert_eq!(concept(&json!({"coding": [{"code": "1"}]})), "1");
    }
}
