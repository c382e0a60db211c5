//! Code lists of the rules: `SYSTEM|CODE` entries (a trailing `*` matches codes by prefix, for
//! ICD-10 categories), matched against FHIR CodeableConcepts (datatypes.html#CodeableConcept:
//! any coding may match).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeEntry {
    pub system: String,
    pub code: String,
    pub prefix: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct CodeSet(pub Vec<CodeEntry>);

impl TryFrom<Vec<String>> for CodeSet {
    type Error = String;

    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let (system, code) = e
                    .split_once('|')
                    .filter(|(s, c)| !s.is_empty() && !c.is_empty())
                    .ok_or_else(|| format!("{e:?} is not SYSTEM|CODE"))?;
                let (code, prefix) = match code.strip_suffix('*') {
                    Some(c) => (c, true),
                    None => (code, false),
                };
                Ok(CodeEntry {
                    system: system.to_owned(),
                    code: code.to_owned(),
                    prefix,
                })
            })
            .collect::<Result<_, _>>()
            .map(CodeSet)
    }
}

impl CodeSet {
    pub fn matches(&self, system: &str, code: &str) -> bool {
        self.0.iter().any(|e| {
            e.system == system
                && if e.prefix {
                    code.starts_with(&e.code)
                } else {
                    code == e.code
                }
        })
    }

    /// Whether any coding of the CodeableConcept `concept` is in the set.
    pub fn matches_concept(&self, concept: Option<&Value>) -> bool {
        codings(concept).any(|(s, c)| self.matches(s, c))
    }
}

/// The (system, code) pairs of a CodeableConcept.
pub fn codings(concept: Option<&Value>) -> impl Iterator<Item = (&str, &str)> {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("system").and_then(Value::as_str).unwrap_or_default(),
                c.get("code").and_then(Value::as_str)?,
            ))
        })
}

/// What a person reads for a CodeableConcept: its text, else the first coding's display, else
/// its code.
pub fn concept_text(concept: Option<&Value>) -> Option<String> {
    let c = concept?;
    if let Some(t) = c.get("text").and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    let codings = c.get("coding").and_then(Value::as_array)?;
    codings
        .iter()
        .find_map(|x| x.get("display").and_then(Value::as_str))
        .or_else(|| {
            codings
                .iter()
                .find_map(|x| x.get("code").and_then(Value::as_str))
        })
        .map(str::to_owned)
}
