//! Validation of a resource against the FHIR R4 core definitions (validation.html): structure
//! (objects, arrays and primitives where the definitions put them, one choice type at most),
//! cardinality (required elements present, repeating elements as non-empty arrays, single ones
//! not), primitive formats (datatypes.html: id, code, uri, date, dateTime, instant, time,
//! decimal, integer, boolean, base64Binary…), the required bindings of `code` elements, and the
//! format of references (references.html).
//!
//! The element table (`generated/elements.rs`) is written by `cargo xtask gen-fhir` from the
//! official StructureDefinitions and ValueSets. Elements the definitions do not know are not
//! errors: Rapport keeps what it is given (unknown elements come back as they went in), and checks
//! what it knows.

use serde_json::{Map, Value};

use crate::search_param;

/// One element of a resource or datatype (StructureDefinition.snapshot.element).
#[derive(Debug)]
pub struct ElementDef {
    /// `Observation.status`, `Observation.value[x]`, `HumanName.given`.
    pub path: &'static str,
    pub min: u32,
    /// `max` is more than 1: a JSON array.
    pub many: bool,
    /// Type codes (`code`, `CodeableConcept`, `BackboneElement`, `System.String`…).
    pub types: &'static [&'static str],
    /// The codes of a required binding on a `code` element.
    pub codes: Option<&'static [&'static str]>,
    /// `contentReference` (`Questionnaire.item.item` is a `Questionnaire.item`).
    pub content_ref: Option<&'static str>,
}

#[path = "generated/elements.rs"]
mod elements;

pub use elements::ELEMENTS;

/// A problem, with the FHIRPath-like expression of the element (`Observation.status`,
/// `Patient.name[0].given[1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub expression: String,
    pub message: String,
}

/// The direct children of `parent` (a resource, datatype or element path).
fn children(parent: &str) -> &'static [ElementDef] {
    let prefix = format!("{parent}.");
    let start = ELEMENTS.partition_point(|e| e.path < prefix.as_str());
    let end = start
        + ELEMENTS[start..]
            .iter()
            .take_while(|e| e.path.starts_with(prefix.as_str()))
            .count();
    &ELEMENTS[start..end]
}

fn is_direct_child(parent: &str, e: &ElementDef) -> bool {
    !e.path[parent.len() + 1..].contains('.')
}

/// Validate `resource`; an empty list means it is valid as far as the core definitions go.
pub fn validate(resource: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    let Some(obj) = resource.as_object() else {
        issues.push(Issue {
            expression: String::new(),
            message: "a resource is a JSON object".into(),
        });
        return issues;
    };
    let Some(ty) = obj.get("resourceType").and_then(Value::as_str) else {
        issues.push(Issue {
            expression: "resourceType".into(),
            message: "resourceType is missing".into(),
        });
        return issues;
    };
    if !search_param::is_resource_type(ty) {
        issues.push(Issue {
            expression: "resourceType".into(),
            message: format!("'{ty}' is not a FHIR R4 resource type"),
        });
        return issues;
    }
    check_object(ty, obj, ty, &mut issues);
    issues
}

/// The JSON name of a choice element for one of its types: `value[x]` + `dateTime` →
/// `valueDateTime` (json.html#choice).
fn choice_key(base: &str, ty: &str) -> String {
    let mut chars = ty.chars();
    match chars.next() {
        Some(c) => format!("{base}{}{}", c.to_ascii_uppercase(), chars.as_str()),
        None => base.to_owned(),
    }
}

fn check_object(def_path: &str, obj: &Map<String, Value>, expr: &str, issues: &mut Vec<Issue>) {
    for def in children(def_path)
        .iter()
        .filter(|e| is_direct_child(def_path, e))
    {
        let name = &def.path[def_path.len() + 1..];
        // The JSON keys present for this element, with the type each stands for.
        let mut present: Vec<(String, &str)> = Vec::new();
        let mut only_extension = false;
        if let Some(base) = name.strip_suffix("[x]") {
            for ty in def.types {
                let key = choice_key(base, ty);
                if obj.contains_key(&key) {
                    present.push((key, ty));
                } else if obj.contains_key(&format!("_{key}")) {
                    only_extension = true;
                }
            }
            if present.len() > 1 {
                let keys: Vec<&str> = present.iter().map(|(k, _)| k.as_str()).collect();
                issues.push(Issue {
                    expression: format!("{expr}.{base}[x]"),
                    message: format!("only one of {} may be given", keys.join(", ")),
                });
            }
        } else if obj.contains_key(name) {
            present.push((name.to_owned(), def.types.first().copied().unwrap_or("")));
        } else if obj.contains_key(&format!("_{name}")) {
            only_extension = true;
        }
        if present.is_empty() {
            if def.min > 0 && !only_extension {
                issues.push(Issue {
                    expression: format!("{expr}.{}", name.trim_end_matches("[x]")),
                    message: format!("{} is required", def.path),
                });
            }
            continue;
        }
        for (key, ty) in present {
            let value = &obj[&key];
            let here = format!("{expr}.{key}");
            match (def.many, value) {
                (true, Value::Array(items)) => {
                    if items.is_empty() {
                        issues.push(Issue {
                            expression: here.clone(),
                            message: "an array may not be empty (json.html)".into(),
                        });
                    }
                    for (i, item) in items.iter().enumerate() {
                        check_value(def, ty, item, &format!("{here}[{i}]"), issues);
                    }
                    if def.min as usize > items.len() {
                        issues.push(Issue {
                            expression: here,
                            message: format!("{} needs at least {} values", def.path, def.min),
                        });
                    }
                }
                (true, _) => issues.push(Issue {
                    expression: here,
                    message: format!("{} repeats: it is written as a JSON array", def.path),
                }),
                (false, Value::Array(_)) => issues.push(Issue {
                    expression: here,
                    message: format!("{} has at most one value: not an array", def.path),
                }),
                (false, v) => check_value(def, ty, v, &here, issues),
            }
        }
    }
}

fn check_value(def: &ElementDef, ty: &str, v: &Value, expr: &str, issues: &mut Vec<Issue>) {
    // A null in an array of primitives stands beside an extension in `_name` (json.html).
    if v.is_null() {
        return;
    }
    if let Some(target) = def.content_ref {
        return match v.as_object() {
            Some(o) => check_object(target, o, expr, issues),
            None => issues.push(Issue {
                expression: expr.to_owned(),
                message: format!("{} is an object", def.path),
            }),
        };
    }
    if let Some(problem) = check_primitive(ty, v) {
        issues.push(Issue {
            expression: expr.to_owned(),
            message: problem,
        });
        return;
    }
    if is_primitive(ty) {
        if let (Some(codes), Some(code)) = (def.codes, v.as_str()) {
            if !codes.contains(&code) {
                let shown: Vec<&str> = codes.iter().take(12).copied().collect();
                issues.push(Issue {
                    expression: expr.to_owned(),
                    message: format!(
                        "'{code}' is not a code of the required value set of {} ({}{})",
                        def.path,
                        shown.join(", "),
                        if codes.len() > 12 { ", …" } else { "" }
                    ),
                });
            }
        }
        return;
    }
    let Some(obj) = v.as_object() else {
        issues.push(Issue {
            expression: expr.to_owned(),
            message: format!("{} is a {ty}: a JSON object", def.path),
        });
        return;
    };
    match ty {
        "Resource" => {
            for issue in validate(v) {
                issues.push(Issue {
                    expression: format!("{expr}.{}", issue.expression),
                    message: issue.message,
                });
            }
        }
        "BackboneElement" | "Element" => check_object(def.path, obj, expr, issues),
        _ => {
            if ty == "Reference" {
                if let Some(r) = obj.get("reference").and_then(Value::as_str) {
                    if let Some(problem) = reference_problem(r) {
                        issues.push(Issue {
                            expression: format!("{expr}.reference"),
                            message: problem,
                        });
                    }
                }
            }
            check_object(ty, obj, expr, issues)
        }
    }
}

fn is_primitive(ty: &str) -> bool {
    matches!(
        ty,
        "boolean"
            | "integer"
            | "positiveInt"
            | "unsignedInt"
            | "decimal"
            | "string"
            | "markdown"
            | "code"
            | "id"
            | "uri"
            | "url"
            | "canonical"
            | "oid"
            | "uuid"
            | "date"
            | "dateTime"
            | "instant"
            | "time"
            | "base64Binary"
            | "xhtml"
            | "System.String"
    )
}

/// What is wrong with `v` as a value of primitive type `ty` (datatypes.html#primitive), if
/// anything; `None` also for complex types.
pub fn check_primitive(ty: &str, v: &Value) -> Option<String> {
    let want = |what: &str| Some(format!("a {ty} is {what}"));
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match ty {
        "boolean" => (!v.is_boolean()).then(|| "a boolean is true or false".to_owned()),
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = v.as_i64() else {
                return want("a whole JSON number");
            };
            let ok = match ty {
                "positiveInt" => (1..=i32::MAX as i64).contains(&n),
                "unsignedInt" => (0..=i32::MAX as i64).contains(&n),
                _ => (i32::MIN as i64..=i32::MAX as i64).contains(&n),
            };
            (!ok).then(|| format!("{n} is out of range for a {ty}"))
        }
        "decimal" => (!v.is_number()).then(|| "a decimal is a JSON number".to_owned()),
        "string" | "markdown" | "System.String" | "xhtml" => match text(v) {
            None => want("a JSON string"),
            Some(s) if s.is_empty() => Some("an empty string is not a value (json.html)".into()),
            Some(s) if ty == "xhtml" && !s.trim_start().starts_with("<div") => {
                Some("narrative xhtml is a <div> element".into())
            }
            _ => None,
        },
        "code" => match text(v) {
            None => want("a JSON string"),
            Some(s)
                if s.is_empty()
                    || s.trim() != s
                    || s.contains("  ")
                    || s.contains(['\t', '\n', '\r']) =>
            {
                Some(format!(
                    "'{s}' is not a code (no leading, trailing or repeated whitespace)"
                ))
            }
            _ => None,
        },
        "id" => match text(v) {
            Some(s) if crate::id::is_valid_id(&s) => None,
            Some(s) => Some(format!("'{s}' is not an id (1–64 of A–Z a–z 0–9 - .)")),
            None => want("a JSON string"),
        },
        "uri" | "url" | "canonical" => match text(v) {
            Some(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => None,
            Some(s) => Some(format!("'{s}' is not a {ty} (no whitespace)")),
            None => want("a JSON string"),
        },
        "oid" => match text(v) {
            Some(s)
                if s.strip_prefix("urn:oid:").is_some_and(|r| {
                    !r.is_empty()
                        && r.split('.')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                }) =>
            {
                None
            }
            _ => want("urn:oid: followed by dotted numbers"),
        },
        "uuid" => match text(v) {
            Some(s) if s.strip_prefix("urn:uuid:").is_some_and(uuid_like) => None,
            _ => want("urn:uuid: followed by a UUID"),
        },
        "date" | "dateTime" | "instant" => match text(v) {
            Some(s) if date_ok(ty, &s) => None,
            Some(s) => Some(format!(
                "'{s}' is not a {ty} ({})",
                match ty {
                    "date" => "YYYY, YYYY-MM or YYYY-MM-DD",
                    "dateTime" => "a date, or YYYY-MM-DDThh:mm:ss with a time zone",
                    _ => "YYYY-MM-DDThh:mm:ss(.sss) with a time zone",
                }
            )),
            None => want("a JSON string"),
        },
        "time" => match text(v) {
            Some(s) if time_ok(&s) => None,
            Some(s) => Some(format!("'{s}' is not a time (hh:mm:ss)")),
            None => want("a JSON string"),
        },
        "base64Binary" => match text(v) {
            Some(s)
                if s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'+' | b'/' | b'=' | b' ' | b'\n' | b'\r')
                }) =>
            {
                None
            }
            Some(_) => Some("not base64".into()),
            None => want("a JSON string"),
        },
        _ => None,
    }
}

fn uuid_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

fn date_part_ok(s: &str, full_only: bool) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let year = parts.first().and_then(|y| digits(y, 4));
    let month = parts.get(1).map(|m| digits(m, 2));
    let day = parts.get(2).map(|d| digits(d, 2));
    match (year, month, day, parts.len()) {
        (Some(_), None, None, 1) => !full_only,
        (Some(_), Some(Some(m)), None, 2) => !full_only && (1..=12).contains(&m),
        (Some(y), Some(Some(m)), Some(Some(d)), 3) => {
            let days = match m {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
                2 => 28,
                _ => return false,
            };
            (1..=days).contains(&d)
        }
        _ => false,
    }
}

fn time_ok(s: &str) -> bool {
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    parts.len() == 3
        && digits(parts[0], 2).is_some_and(|h| h < 24)
        && digits(parts[1], 2).is_some_and(|m| m < 60)
        && digits(parts[2], 2).is_some_and(|s| s < 61)
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn date_ok(ty: &str, s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return ty != "instant" && date_part_ok(s, false);
    };
    if ty == "date" || !date_part_ok(date, true) {
        return false;
    }
    // A time always carries its zone: Z or ±hh:mm.
    let (clock, zone) = if let Some(c) = time.strip_suffix('Z') {
        (c, "Z")
    } else {
        match time.rfind(['+', '-']) {
            Some(i) => (&time[..i], &time[i..]),
            None => return false,
        }
    };
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && digits(&zone[1..3], 2).is_some_and(|h| h <= 14)
            && &zone[3..4] == ":"
            && digits(&zone[4..6], 2).is_some_and(|m| m < 60));
    zone_ok && time_ok(clock)
}

/// What is wrong with a literal reference (references.html#literal), if anything: `Type/id`
/// (optionally `/_history/v`), an absolute URL, `urn:uuid:`/`urn:oid:`, `#contained`, or a
/// conditional reference `Type?criteria` (inside bundles).
pub fn reference_problem(r: &str) -> Option<String> {
    if r.is_empty() {
        return Some("an empty reference".into());
    }
    if r.starts_with('#') || r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
        return None;
    }
    if r.starts_with("http://") || r.starts_with("https://") {
        return None;
    }
    if let Some((ty, _)) = r.split_once('?') {
        return (!search_param::is_resource_type(ty))
            .then(|| format!("'{ty}' in the conditional reference '{r}' is not a resource type"));
    }
    let parts: Vec<&str> = r.split('/').collect();
    let ok = match parts.as_slice() {
        [ty, id] | [ty, id, "_history", _] => {
            search_param::is_resource_type(ty) && crate::id::is_valid_id(id)
        }
        _ => false,
    };
    (!ok).then(|| format!("'{r}' is not a reference of the form Type/id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expressions(v: Value) -> Vec<String> {
        validate(&v).into_iter().map(|i| i.expression).collect()
    }

    #[test]
    fn a_valid_observation_has_no_issues() {
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2020-01-01T10:00:00+01:00",
            "valueQuantity": {"value": 72, "unit": "/min"},
            "unknownElement": {"kept": true}});
        assert_eq!(validate(&o), vec![]);
    }

    #[test]
    fn required_elements_bindings_formats_and_shapes_are_checked() {
        let o = json!({"resourceType": "Observation", "status": "done",
            "subject": {"reference": "not a reference"},
            "effectiveDateTime": "2020-13-01",
            "valueQuantity": {"value": "72"},
            "valueString": "also",
            "identifier": {"value": "x"},
            "category": []});
        let e = expressions(o);
        for want in [
            "Observation.code",
            "Observation.status",
            "Observation.subject.reference",
            "Observation.effectiveDateTime",
            "Observation.valueQuantity.value",
            "Observation.value[x]",
            "Observation.identifier",
            "Observation.category",
        ] {
            assert!(e.contains(&want.to_owned()), "{want} missing from {e:?}");
        }
    }

    #[test]
    fn primitive_formats_follow_datatypes_html() {
        for (ty, v, ok) in [
            ("date", "2020", true),
            ("date", "2020-02-30", false),
            ("date", "2024-02-29", true),
            ("dateTime", "2020-01-01T10:00:00Z", true),
            ("dateTime", "2020-01-01T10:00:00", false),
            ("dateTime", "2020-01-01T10:00:00.123-05:00", true),
            ("instant", "2020-01-01", false),
            ("time", "25:00:00", false),
            ("id", "a.b-C_1", false),
            ("code", " final", false),
            ("uri", "http://x.org/a b", false),
        ] {
            assert_eq!(check_primitive(ty, &json!(v)).is_none(), ok, "{ty} {v}");
        }
        assert!(check_primitive("decimal", &json!("1.5")).is_some());
        assert!(check_primitive("positiveInt", &json!(0)).is_some());
        assert!(check_primitive("boolean", &json!("true")).is_some());
    }

    #[test]
    fn contained_resources_and_backbone_elements_are_validated_too() {
        let p = json!({"resourceType": "Patient", "gender": "female",
            "contact": [{"gender": "nobody"}],
            "contained": [{"resourceType": "Observation", "status": "final"}]});
        let e = expressions(p);
        assert!(e.contains(&"Patient.contact[0].gender".to_owned()), "{e:?}");
        assert!(
            e.contains(&"Patient.contained[0].Observation.code".to_owned()),
            "{e:?}"
        );
    }
}
