//! One patient's data as the rules read it: the resources of their compartment by type, and the
//! small readers of FHIR elements the rules share.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 86_400_000;

/// The resources of one patient's compartment (Patient CompartmentDefinition), by type.
#[derive(Debug, Clone, Default)]
pub struct PatientData {
    pub patient_id: String,
    by_type: BTreeMap<String, Vec<Value>>,
}

impl PatientData {
    pub fn new(patient_id: impl Into<String>, resources: impl IntoIterator<Item = Value>) -> Self {
        let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in resources {
            let ty = r
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            by_type.entry(ty).or_default().push(r);
        }
        PatientData {
            patient_id: patient_id.into(),
            by_type,
        }
    }

    pub fn of_type(&self, resource_type: &str) -> &[Value] {
        self.by_type
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn patient(&self) -> Option<&Value> {
        let id = self.patient_id.as_str();
        self.of_type("Patient")
            .iter()
            .find(|p| p.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Patient.deceased[x] (patient.html): true, or a date of death.
    pub fn deceased(&self) -> bool {
        self.patient().is_some_and(|p| {
            p.get("deceasedBoolean").and_then(Value::as_bool) == Some(true)
                || p.get("deceasedDateTime").is_some()
        })
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.by_type.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn id_of(v: &Value) -> &str {
    text(v, "id")
}

/// The start of a FHIR date, dateTime or instant (precision kept as a range; the start is when
/// it began).
pub(crate) fn start_ms(v: Option<&Value>) -> Option<i64> {
    rapport_fhir::date::parse_range(v?.as_str()?).map(|r| r.start)
}

/// The end of a FHIR date or dateTime's precision (`2026-12-02` ends at the next midnight).
pub(crate) fn end_ms(v: Option<&Value>) -> Option<i64> {
    rapport_fhir::date::parse_range(v?.as_str()?).map(|r| r.end)
}

/// A day for people, in the care team's time zone: "2 Dec 2026".
pub(crate) fn day(ms: i64, offset_minutes: i64) -> String {
    local(ms, offset_minutes)
        .map(|t| t.format("%-d %b %Y").to_string())
        .unwrap_or_default()
}

/// A day and time for people: "2 Dec 2026 09:30".
pub(crate) fn day_time(ms: i64, offset_minutes: i64) -> String {
    local(ms, offset_minutes)
        .map(|t| t.format("%-d %b %Y %H:%M").to_string())
        .unwrap_or_default()
}

/// The calendar day number (days since the epoch) of `ms` in the care team's time zone.
pub(crate) fn day_number(ms: i64, offset_minutes: i64) -> i64 {
    (ms + offset_minutes * 60_000).div_euclid(DAY)
}

/// The date part of a cause: `2026-12-02`.
pub(crate) fn iso_day(ms: i64, offset_minutes: i64) -> String {
    local(ms, offset_minutes)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn local(ms: i64, offset_minutes: i64) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(i32::try_from(offset_minutes * 60).ok()?)?;
    Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&offset))
}

/// The references (`Type/id`) of `v`'s element `key`, a Reference or a list of them.
pub(crate) fn references<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    match v.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| r.get("reference").and_then(Value::as_str))
            .collect(),
        Some(r) => r
            .get("reference")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

/// Whether a reference string (`Patient/1`, `http://…/Patient/1`, `Patient/1/_history/2`)
/// names `ty/id`.
pub(crate) fn refers_to(reference: &str, ty: &str, id: &str) -> bool {
    let target = format!("{ty}/{id}");
    reference == target
        || reference.ends_with(&format!("/{target}"))
        || reference.starts_with(&format!("{target}/_history/"))
}

/// A number of a FHIR decimal (kept as written by serde_json's arbitrary precision).
pub(crate) fn number(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    v.as_f64().or_else(|| v.to_string().parse().ok())
}

/// A Duration or Quantity of time in days (datatypes.html#Duration, UCUM units of time).
pub(crate) fn duration_days(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    let value = number(v.get("value"))?;
    let unit = v
        .get("code")
        .or_else(|| v.get("unit"))
        .and_then(Value::as_str)
        .unwrap_or("d");
    let per = match unit {
        "d" | "day" | "days" => 1.0,
        "wk" | "week" | "weeks" => 7.0,
        "mo" | "month" | "months" => 30.0,
        "a" | "year" | "years" => 365.0,
        "h" | "hour" | "hours" => 1.0 / 24.0,
        _ => return None,
    };
    Some(value * per)
}
