//! Extraction of search index rows from a resource (FHIR R4 search.html), driven by the generated
//! search parameter table. The shape of each value (CodeableConcept, Identifier, HumanName,
//! Period, Quantity…) decides what is indexed, as the datatype tables in search.html describe.

use serde_json::Value;

use crate::date::{self, DateRange, MAX_MS, MIN_MS};
use crate::reference::{self, ReferenceTarget};
use crate::search_param::{params_for, ParamKind, ParamPath, SearchParamDef};
use crate::text::normalize;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub param: &'static str,
    /// Empty when the value has no system (a plain `code`, or an Identifier without system).
    pub system: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringRow {
    pub param: &'static str,
    /// Normalised with [`crate::text::normalize`].
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DateRow {
    pub param: &'static str,
    pub range: DateRange,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceRow {
    pub param: &'static str,
    pub target_type: String,
    pub target_id: String,
}

/// Quantities and numbers. Numbers have empty system, code and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityRow {
    pub param: &'static str,
    pub value: f64,
    pub system: String,
    pub code: String,
    pub unit: String,
}

/// All index rows of one resource.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IndexRows {
    pub tokens: Vec<TokenRow>,
    pub strings: Vec<StringRow>,
    pub dates: Vec<DateRow>,
    pub references: Vec<ReferenceRow>,
    pub quantities: Vec<QuantityRow>,
}

impl IndexRows {
    pub fn len(&self) -> usize {
        self.tokens.len()
            + self.strings.len()
            + self.dates.len()
            + self.references.len()
            + self.quantities.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Extract the index rows of `resource` for every search parameter of its type.
/// `_id` and `_lastUpdated` are columns of the resource table and are not repeated here.
pub fn extract(resource: &Value) -> IndexRows {
    let mut rows = IndexRows::default();
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return rows;
    };
    let mut found = Vec::new();
    for def in params_for(resource_type) {
        if def.code == "_id" || def.code == "_lastUpdated" {
            continue;
        }
        for path in def.paths {
            found.clear();
            collect(resource, path.steps, &mut found);
            for value in &found {
                if let Some((key, expected)) = path.where_eq {
                    if value.get(key).and_then(Value::as_str) != Some(expected) {
                        continue;
                    }
                }
                add_value(def, path, value, &mut rows);
            }
        }
    }
    dedup(&mut rows);
    rows
}

fn dedup(rows: &mut IndexRows) {
    fn dedup_vec<T: PartialEq>(v: &mut Vec<T>) {
        let mut i = 0;
        while i < v.len() {
            if v[..i].contains(&v[i]) {
                v.remove(i);
            } else {
                i += 1;
            }
        }
    }
    dedup_vec(&mut rows.tokens);
    dedup_vec(&mut rows.strings);
    dedup_vec(&mut rows.dates);
    dedup_vec(&mut rows.references);
    dedup_vec(&mut rows.quantities);
}

/// Follow `steps` from `value`, flattening arrays at every step.
fn collect<'a>(value: &'a Value, steps: &[&str], out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, steps, out);
            }
        }
        _ => match steps.split_first() {
            None => {
                if !value.is_null() {
                    out.push(value)
                }
            }
            Some((first, rest)) => {
                if let Some(child) = value.get(*first) {
                    collect(child, rest, out);
                }
            }
        },
    }
}

fn add_value(def: &SearchParamDef, path: &ParamPath, value: &Value, rows: &mut IndexRows) {
    let param = def.code;
    match def.kind {
        ParamKind::Token => add_token(param, value, rows),
        ParamKind::String => add_string(param, value, rows),
        ParamKind::Date => {
            if let Some(range) = date_range_of(value) {
                rows.dates.push(DateRow { param, range });
            }
        }
        ParamKind::Reference => {
            if let Some(r) = value.get("reference").and_then(Value::as_str) {
                if let ReferenceTarget::Literal {
                    resource_type, id, ..
                } = reference::parse(r)
                {
                    if path.target_types.is_empty() || path.target_types.contains(&resource_type) {
                        rows.references.push(ReferenceRow {
                            param,
                            target_type: resource_type.to_owned(),
                            target_id: id.to_owned(),
                        });
                    }
                }
            }
        }
        ParamKind::Quantity | ParamKind::Number => {
            let (number, system, code, unit) = match value {
                Value::Number(n) => (Some(n), "", "", ""),
                Value::Object(o) => (
                    o.get("value").and_then(|v| match v {
                        Value::Number(n) => Some(n),
                        _ => None,
                    }),
                    o.get("system").and_then(Value::as_str).unwrap_or(""),
                    o.get("code")
                        .or_else(|| o.get("currency"))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    o.get("unit").and_then(Value::as_str).unwrap_or(""),
                ),
                _ => (None, "", "", ""),
            };
            if let Some(v) = number.and_then(|n| n.to_string().parse::<f64>().ok()) {
                rows.quantities.push(QuantityRow {
                    param,
                    value: v,
                    system: system.to_owned(),
                    code: code.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        }
        ParamKind::Uri => {
            if let Some(s) = value.as_str() {
                rows.tokens.push(TokenRow {
                    param,
                    system: String::new(),
                    code: s.to_owned(),
                });
            }
        }
    }
}

/// Tokens, per the search.html table "token": Coding, CodeableConcept, Identifier, ContactPoint,
/// code, boolean, string and uri.
fn add_token(param: &'static str, value: &Value, rows: &mut IndexRows) {
    let mut push = |system: &str, code: &str| {
        if !code.is_empty() {
            rows.tokens.push(TokenRow {
                param,
                system: system.to_owned(),
                code: code.to_owned(),
            });
        }
    };
    match value {
        Value::String(s) => push("", s),
        Value::Bool(b) => push("", if *b { "true" } else { "false" }),
        Value::Object(o) => {
            let str_of = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
            if let Some(Value::Array(codings)) = o.get("coding") {
                for c in codings {
                    let system = c.get("system").and_then(Value::as_str).unwrap_or("");
                    if let Some(code) = c.get("code").and_then(Value::as_str) {
                        push(system, code);
                    }
                }
            } else if o.contains_key("code") {
                push(str_of("system"), str_of("code"));
            } else if o.contains_key("value") {
                // Identifier (system|value) or ContactPoint (value).
                push(str_of("system"), str_of("value"));
            }
        }
        _ => {}
    }
}

/// Strings, per search.html "string": HumanName and Address are searched by each of their parts.
fn add_string(param: &'static str, value: &Value, rows: &mut IndexRows) {
    string_parts(value, &mut |s: &str| {
        let value = normalize(s);
        if !value.is_empty() {
            rows.strings.push(StringRow { param, value });
        }
    });
}

/// The values of string parameter `code` of `resource` exactly as written (the index holds them
/// normalised): for `:exact` (search.html#modifiers: "the search parameter value must exactly
/// match, including case and accents"), which is checked against these.
pub fn exact_strings(resource: &Value, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(def) = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|ty| crate::search_param::param(ty, code))
        .filter(|d| d.kind == ParamKind::String)
    else {
        return out;
    };
    let mut found = Vec::new();
    for path in def.paths {
        found.clear();
        collect(resource, path.steps, &mut found);
        for value in &found {
            if let Some((key, expected)) = path.where_eq {
                if value.get(key).and_then(Value::as_str) != Some(expected) {
                    continue;
                }
            }
            string_parts(value, &mut |s: &str| out.push(s.to_owned()));
        }
    }
    out
}

/// Each searchable string of a string, HumanName or Address value.
fn string_parts(value: &Value, push: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => push(s),
        Value::Object(o) => {
            for key in [
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                match o.get(key) {
                    Some(Value::String(s)) => push(s),
                    Some(Value::Array(items)) => {
                        for s in items.iter().filter_map(Value::as_str) {
                            push(s)
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A date, dateTime, instant, Period or Timing as the range it covers (search.html#date).
pub fn date_range_of(value: &Value) -> Option<DateRange> {
    match value {
        Value::String(s) => date::parse_range(s),
        Value::Object(o) => {
            if let Some(Value::Array(events)) = o.get("event") {
                let ranges: Vec<DateRange> = events
                    .iter()
                    .filter_map(|e| e.as_str().and_then(date::parse_range))
                    .collect();
                return Some(DateRange {
                    start: ranges.iter().map(|r| r.start).min()?,
                    end: ranges.iter().map(|r| r.end).max()?,
                });
            }
            let start = o
                .get("start")
                .and_then(Value::as_str)
                .and_then(date::parse_range);
            let end = o
                .get("end")
                .and_then(Value::as_str)
                .and_then(date::parse_range);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some(DateRange {
                start: start.map_or(MIN_MS, |r| r.start),
                end: end.map_or(MAX_MS, |r| r.end),
            })
        }
        _ => None,
    }
}

/// The patient this resource belongs to, from the Patient CompartmentDefinition: a Patient is its
/// own key; other types use the first `Patient/…` reference among their compartment parameters.
/// Resources outside the compartment (Practitioner, Organization…) have none.
pub fn patient_key(resource_type: &str, id: &str, rows: &IndexRows) -> Option<String> {
    if resource_type == "Patient" {
        return Some(id.to_owned());
    }
    let params = crate::search_param::patient_compartment_params(resource_type)?;
    params.iter().find_map(|p| {
        rows.references
            .iter()
            .find(|r| r.param == *p && r.target_type == "Patient")
            .map(|r| r.target_id.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn patient_names_with_accents_are_indexed_normalised() {
        let rows = extract(&json!({
            "resourceType": "Patient", "id": "p1",
            "name": [{"family": "Ordóñez", "given": ["Bernardo", "José"]}],
            "birthDate": "1957-03",
            "identifier": [{"system": "http://hospital.smarthealthit.org", "value": "MRN-1"}]
        }));
        let family: Vec<_> = rows
            .strings
            .iter()
            .filter(|s| s.param == "family")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(family, ["ordonez"]);
        let name: Vec<_> = rows
            .strings
            .iter()
            .filter(|s| s.param == "name")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(name, ["ordonez", "bernardo", "jose"]);
        let birth = rows.dates.iter().find(|d| d.param == "birthdate").unwrap();
        assert_eq!(birth.range.start, ms("1957-03-01T00:00:00Z"));
        assert_eq!(birth.range.end, ms("1957-04-01T00:00:00Z"));
        assert!(rows.tokens.contains(&TokenRow {
            param: "identifier",
            system: "http://hospital.smarthealthit.org".into(),
            code: "MRN-1".into()
        }));
    }

    #[test]
    fn a_birth_date_with_only_an_extension_has_no_date_row_b12() {
        // Hard case B12: `_birthDate` without `birthDate` is kept but not searchable as a date.
        let rows = extract(&json!({
            "resourceType": "Patient", "id": "pat-ext-1",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]}
        }));
        assert!(rows.dates.iter().all(|d| d.param != "birthdate"));
    }

    #[test]
    fn observation_codes_subject_values_and_dates_are_indexed() {
        let obs = json!({
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2019-05-31T12:00:00+02:00",
            "valueQuantity": {"value": 72.50, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
        });
        let rows = extract(&obs);
        assert!(rows.tokens.contains(&TokenRow {
            param: "code",
            system: "http://loinc.org".into(),
            code: "8867-4".into()
        }));
        assert!(rows.tokens.contains(&TokenRow {
            param: "status",
            system: "".into(),
            code: "final".into()
        }));
        for p in ["subject", "patient"] {
            assert!(
                rows.references.contains(&ReferenceRow {
                    param: p,
                    target_type: "Patient".into(),
                    target_id: "p1".into()
                }),
                "{p}"
            );
        }
        let date = rows.dates.iter().find(|d| d.param == "date").unwrap();
        assert_eq!(date.range.start, ms("2019-05-31T10:00:00Z"));
        let q = rows
            .quantities
            .iter()
            .find(|q| q.param == "value-quantity")
            .unwrap();
        assert_eq!((q.value, q.code.as_str()), (72.5, "/min"));
        assert_eq!(
            patient_key("Observation", "o1", &rows).as_deref(),
            Some("p1")
        );
    }

    #[test]
    fn an_open_period_extends_to_the_end_of_time() {
        let r = date_range_of(&json!({"start": "2020-01-01"})).unwrap();
        assert_eq!(r.start, ms("2020-01-01T00:00:00Z"));
        assert_eq!(r.end, MAX_MS);
    }

    #[test]
    fn practitioners_belong_to_no_patient() {
        let rows = extract(&json!({"resourceType": "Practitioner", "id": "x"}));
        assert_eq!(patient_key("Practitioner", "x", &rows), None);
    }
}
