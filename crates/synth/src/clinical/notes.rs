//! Short clinical notes, as DocumentReference with a plain-text attachment.
//!
//! Each note is two to four sentences assembled from templates around the facts of the
//! visit (the conditions reviewed, the readings taken, abnormal results, what was decided),
//! so that search and summaries in the console have realistic text to work on. Notes refer
//! to "the patient" rather than by name and are plain ASCII, so `text/plain` needs no charset.

use serde_json::json;

use super::observations::{LabResults, Vitals};
use super::{Occasion, Story};
use crate::codes;
use crate::fhir::{self, Transaction};
use crate::random::{self, SynthRng};

pub(super) fn write_note(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    written: Occasion,
    text: &str,
) {
    transaction.add(
        "DocumentReference",
        random::uuid(rng),
        json!({
            "status": "current",
            "docStatus": "final",
            "type": fhir::concept(codes::PROGRESS_NOTE),
            "category": [fhir::category(codes::CLINICAL_NOTE)],
            "subject": story.subject(),
            "date": fhir::instant(written.at),
            "author": [written.by],
            "description": text.split(". ").next().unwrap_or(text),
            "content": [{
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en",
                    "data": fhir::base64(text.as_bytes()),
                    "title": "Progress note",
                    "creation": fhir::instant(written.at),
                },
            }],
            "context": {
                "encounter": [fhir::local_reference(written.encounter)],
                "period": { "start": fhir::instant(written.at) },
            },
        }),
    );
}

/// "hypertension, type 2 diabetes and COPD"
pub(super) fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "BP 142/88 mmHg, pulse 76/min, SpO2 97%."
pub(super) fn vitals_sentence(vitals: &Vitals) -> String {
    let mut parts = Vec::new();
    if let Some((systolic, diastolic)) = vitals.blood_pressure {
        parts.push(format!("BP {systolic}/{diastolic} mmHg"));
    }
    if let Some(rate) = vitals.heart_rate {
        parts.push(format!("pulse {rate}/min"));
    }
    if let Some(temperature) = vitals.temperature {
        parts.push(format!("temperature {temperature:.1} C"));
    }
    if let Some(saturation) = vitals.oxygen_saturation {
        parts.push(format!("SpO2 {saturation}%"));
    }
    if let Some(weight) = vitals.weight {
        parts.push(format!("weight {weight:.1} kg"));
    }
    if parts.is_empty() {
        return String::new();
    }
    let sentence = parts.join(", ");
    let mut characters = sentence.chars();
    let first = characters
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_default();
    format!("{first}{}.", characters.as_str())
}

/// A sentence on results: the abnormal ones, or reassurance, or that bloods were sent.
pub(super) fn labs_sentence(labs: Option<&LabResults>) -> Option<String> {
    let labs = labs?;
    if !labs.abnormal.is_empty() {
        let findings: Vec<&str> = labs.abnormal.iter().map(String::as_str).collect();
        return Some(format!("Bloods today: {}.", list(&findings)));
    }
    match (labs.hba1c, labs.egfr) {
        (Some(hba1c), _) => Some(format!("HbA1c {hba1c:.1}%, other bloods unremarkable.")),
        (None, Some(egfr)) => Some(format!("Renal function stable, eGFR {egfr}.")),
        _ => Some("Routine bloods within normal limits.".to_owned()),
    }
}

/// Joins non-empty sentences with spaces.
pub(super) fn paragraph(sentences: &[Option<String>]) -> String {
    sentences
        .iter()
        .flatten()
        .filter(|sentence| !sentence.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_naturally() {
        assert_eq!(list(&["asthma"]), "asthma");
        assert_eq!(list(&["asthma", "COPD"]), "asthma and COPD");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn vitals_sentences_start_with_a_capital() {
        let vitals = Vitals {
            heart_rate: Some(70),
            oxygen_saturation: Some(97),
            ..Vitals::default()
        };
        assert_eq!(vitals_sentence(&vitals), "Pulse 70/min, SpO2 97%.");
    }
}
