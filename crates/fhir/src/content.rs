//! Rules on resource content that hold whatever the resource type: primitive extensions
//! (FHIR R4 json.html#primitive) and contained resources (references.html#contained, dom-3).

use serde_json::{Map, Value};

/// Give a repeating primitive that has only extensions its value array of nulls, so that the
/// two arrays line up as json.html#primitive requires: `"_line": [{…}, {…}]` alone becomes
/// `"line": [null, null], "_line": [{…}, {…}]` (hard case B12). Applies at every depth.
pub fn align_primitive_arrays(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let missing: Vec<(String, usize)> = map
                .iter()
                .filter_map(|(k, v)| {
                    let base = k.strip_prefix('_')?;
                    let len = v.as_array()?.len();
                    (!map.contains_key(base)).then(|| (base.to_owned(), len))
                })
                .collect();
            if !missing.is_empty() {
                let old = std::mem::take(map);
                let mut new = Map::with_capacity(old.len() + missing.len());
                for (k, v) in old {
                    if let Some((base, len)) = k
                        .strip_prefix('_')
                        .and_then(|b| missing.iter().find(|(m, _)| m == b))
                    {
                        new.insert(base.clone(), Value::Array(vec![Value::Null; *len]));
                    }
                    new.insert(k, v);
                }
                *map = new;
            }
            for v in map.values_mut() {
                align_primitive_arrays(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(align_primitive_arrays),
        _ => {}
    }
}

/// dom-3: every contained resource is referenced from elsewhere in the resource (`#id`), or
/// refers to its container (`#`). Returns the ids that break the rule.
pub fn unreferenced_contained(resource: &Value) -> Vec<String> {
    let Some(Value::Array(contained)) = resource.get("contained") else {
        return Vec::new();
    };
    // Most resources contain nothing: the walk below is only done when needed.
    let mut refs = Vec::new();
    crate::reference::collect_references(resource, &mut refs);
    contained
        .iter()
        .filter_map(|c| {
            let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
            let referenced = refs.iter().any(|r| r.strip_prefix('#') == Some(id));
            let mut own = Vec::new();
            crate::reference::collect_references(c, &mut own);
            let refers_to_container = own.contains(&"#");
            (!referenced && !refers_to_container).then(|| id.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valueless_repeating_primitives_get_null_values_b12() {
        // Hard case B12.
        let mut p = json!({"resourceType": "Patient", "address": [{"city": "Testville", "_line": [
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName", "valueString": "Test Street"}]},
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber", "valueString": "1"}]}
        ]}], "_birthDate": {"extension": []}});
        align_primitive_arrays(&mut p);
        let text = serde_json::to_string(&p["address"][0]).unwrap();
        assert!(
            text.starts_with(r#"{"city":"Testville","line":[null,null],"_line":[{"#),
            "{text}"
        );
        // A single primitive with only an extension stays as it is: no birthDate is invented.
        assert!(p.get("birthDate").is_none());
    }

    #[test]
    fn contained_resources_must_be_referenced_b19() {
        // Hard case B19.
        let ok = json!({"resourceType": "MedicationDispense",
            "contained": [{"resourceType": "Medication", "id": "med1"},
                          {"resourceType": "MedicationRequest", "id": "mr1", "medicationReference": {"reference": "#med1"}}],
            "medicationReference": {"reference": "#med1"},
            "authorizingPrescription": [{"reference": "#mr1"}]});
        assert!(unreferenced_contained(&ok).is_empty());
        let bad = json!({"resourceType": "MedicationDispense",
            "contained": [{"resourceType": "Medication", "id": "orphan"}]});
        assert_eq!(unreferenced_contained(&bad), ["orphan"]);
    }
}
