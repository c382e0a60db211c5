//! References between resources (FHIR R4 references.html) and their rewriting on import
//! (FHIR R4 http.html#trules: "servers SHALL replace all matching links in the bundle").

use serde_json::Value;

use crate::id::is_valid_id;
use crate::search_param::is_resource_type;

/// What a `Reference.reference` string points at.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ReferenceTarget<'a> {
    /// `#med1`: a contained resource, resolved inside the resource itself.
    Contained(&'a str),
    /// `urn:uuid:…` or `urn:oid:…`: a bundle-local identity that must be rewritten on import.
    Urn(&'a str),
    /// `Patient?identifier=…`: a conditional reference to resolve by search (http.html#trules).
    Conditional {
        resource_type: &'a str,
        query: &'a str,
    },
    /// `Patient/123` or `Patient/123/_history/2`, possibly preceded by a base URL.
    Literal {
        base: Option<&'a str>,
        resource_type: &'a str,
        id: &'a str,
        version: Option<&'a str>,
    },
    /// Anything else: a canonical URL or a reference to a system Rapport does not know.
    Other(&'a str),
}

/// Classify a reference string.
pub fn parse(reference: &str) -> ReferenceTarget<'_> {
    if let Some(local) = reference.strip_prefix('#') {
        return ReferenceTarget::Contained(local);
    }
    if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
        return ReferenceTarget::Urn(reference);
    }
    if let Some((resource_type, query)) = reference.split_once('?') {
        if is_resource_type(resource_type) {
            return ReferenceTarget::Conditional {
                resource_type,
                query,
            };
        }
        return ReferenceTarget::Other(reference);
    }
    // Work from the end: [base/]Type/id[/_history/vid]
    let segments: Vec<&str> = reference.rsplitn(5, '/').collect();
    let (resource_type, id, version, consumed) = match segments.as_slice() {
        [vid, "_history", id, ty, ..] if is_resource_type(ty) && is_valid_id(id) => {
            (*ty, *id, Some(*vid), 4)
        }
        [id, ty, ..] if is_resource_type(ty) && is_valid_id(id) => (*ty, *id, None, 2),
        _ => return ReferenceTarget::Other(reference),
    };
    let base = if segments.len() > consumed {
        let suffix_len: usize = segments[..consumed].iter().map(|s| s.len() + 1).sum();
        Some(&reference[..reference.len() - suffix_len])
    } else {
        None
    };
    if let Some(b) = base {
        if !(b.starts_with("http://") || b.starts_with("https://")) {
            return ReferenceTarget::Other(reference);
        }
    }
    ReferenceTarget::Literal {
        base,
        resource_type,
        id,
        version,
    }
}

/// Call `rewrite` on every `reference` string in `value` (resource, contained resources and all)
/// and replace it with what `rewrite` returns, if anything. The walk stops at the first error.
pub fn rewrite_references<E>(
    value: &mut Value,
    rewrite: &mut impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<(), E> {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference" {
                    if let Value::String(s) = child {
                        if let Some(new) = rewrite(s)? {
                            *s = new;
                        }
                        continue;
                    }
                }
                rewrite_references(child, rewrite)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_references(item, rewrite)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `reference` string in `value`, in document order.
pub fn collect_references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("reference", Value::String(s)) => out.push(s),
                    _ => collect_references(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

/// Every `reference` string in the JSON text `json`, in document order, read without building
/// the document (a streaming pass that keeps only those strings): for reading many stored
/// resources' references (`$everything`), where building each document cost more than the rest.
/// Text that is not JSON gives no references.
pub fn references_in_text(json: &str) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Walk<'o>(&'o mut Vec<String>);
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "reference" {
                    if let serde_json::Value::String(s) = map.next_value()? {
                        self.0.push(s);
                    }
                } else {
                    map.next_value_seed(Walk(self.0))?;
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Walk(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    if Walk(&mut out).deserialize(&mut de).is_err() {
        return Vec::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_in_text_are_those_of_the_document() {
        let doc = json!({
            "resourceType": "Observation",
            "valueQuantity": {"value": 1.50, "unit": "mg"},
            "subject": {"reference": "Patient/p1"},
            "performer": [{"reference": "Practitioner/d1", "display": "a \"reference\" in text"}],
            "note": [{"text": "{\"reference\": \"Organization/not-one\"}"}],
            "contained": [{"resourceType": "Medication", "manufacturer": {"reference": "Organization/o1"}}],
            "reference": 3
        });
        let text = doc.to_string();
        let mut expected = Vec::new();
        collect_references(&doc, &mut expected);
        assert_eq!(
            references_in_text(&text),
            vec!["Patient/p1", "Practitioner/d1", "Organization/o1"]
        );
        assert_eq!(references_in_text(&text), expected);
        assert!(references_in_text("not json").is_empty());
    }

    #[test]
    fn references_are_classified() {
        assert_eq!(parse("#med1"), ReferenceTarget::Contained("med1"));
        assert_eq!(
            parse("urn:uuid:00000000-0000-4000-8000-000000000001"),
            ReferenceTarget::Urn("urn:uuid:00000000-0000-4000-8000-000000000001")
        );
        assert_eq!(
            parse("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999990"),
            ReferenceTarget::Conditional {
                resource_type: "Practitioner",
                query: "identifier=http://hl7.org/fhir/sid/us-npi|9999999990"
            }
        );
        assert_eq!(
            parse("Patient/123"),
            ReferenceTarget::Literal {
                base: None,
                resource_type: "Patient",
                id: "123",
                version: None
            }
        );
        assert_eq!(
            parse("ServiceRequest/sr-1/_history/2"),
            ReferenceTarget::Literal {
                base: None,
                resource_type: "ServiceRequest",
                id: "sr-1",
                version: Some("2")
            }
        );
        assert_eq!(
            parse("https://example.org/fhir/Patient/123/_history/2"),
            ReferenceTarget::Literal {
                base: Some("https://example.org/fhir"),
                resource_type: "Patient",
                id: "123",
                version: Some("2")
            }
        );
        assert_eq!(
            parse("http://loinc.org"),
            ReferenceTarget::Other("http://loinc.org")
        );
        assert_eq!(parse("NotAType/1"), ReferenceTarget::Other("NotAType/1"));
    }

    #[test]
    fn rewriting_reaches_nested_and_contained_references() {
        let mut r = json!({
            "resourceType": "MedicationDispense",
            "contained": [{"resourceType": "MedicationRequest", "id": "mr1", "subject": {"reference": "urn:uuid:a"}}],
            "subject": {"reference": "urn:uuid:a", "display": "reference"},
            "authorizingPrescription": [{"reference": "#mr1"}],
            "note": [{"text": "reference"}]
        });
        rewrite_references::<()>(&mut r, &mut |s| {
            Ok((s == "urn:uuid:a").then(|| "Patient/p1".to_owned()))
        })
        .unwrap();
        assert_eq!(r["subject"]["reference"], "Patient/p1");
        assert_eq!(r["subject"]["display"], "reference");
        assert_eq!(r["contained"][0]["subject"]["reference"], "Patient/p1");
        assert_eq!(r["authorizingPrescription"][0]["reference"], "#mr1");
    }
}
