//! Helpers for the mapping tests: mapping files and messages, rendering the outcome as JSON
//! for snapshots, and validating every resource with `rapport_fhir::validate`.

use std::path::Path;

use rapport_hl7::{parse, parse_bytes, split_messages, to_fhir, MapError, MapOptions, Mapped};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The key a store would give the raw message: sender, type, control id and a content hash.
pub fn message_key(bytes: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    match parse_bytes(bytes) {
        Ok(p) => format!(
            "{}|{}|{}|{}",
            p.message.sending_facility(),
            p.message.message_type(),
            p.message.control_id(),
            &digest[..16]
        ),
        Err(_) => format!("unparsed|{}", &digest[..16]),
    }
}

/// Maps one message given as text (segments joined by CR), with default options.
pub fn map_text(text: &str) -> Result<Mapped, MapError> {
    map_text_with(text, &MapOptions::default())
}

pub fn map_text_with(text: &str, options: &MapOptions) -> Result<Mapped, MapError> {
    let parsed = parse(text).unwrap_or_else(|e| panic!("parse failed: {e}"));
    to_fhir(&parsed.message, &message_key(text.as_bytes()), options)
}

/// Every message of a fixture file, mapped (a parse error is `None`).
pub fn map_file(path: &Path) -> Vec<Option<Result<Mapped, MapError>>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    split_messages(&bytes)
        .map(|piece| {
            let parsed = parse_bytes(piece).ok()?;
            Some(to_fhir(
                &parsed.message,
                &message_key(piece),
                &MapOptions::default(),
            ))
        })
        .collect()
}

/// The outcome as JSON, for snapshots.
pub fn render(outcome: &Option<Result<Mapped, MapError>>) -> Value {
    match outcome {
        None => json!({ "kind": "parse-error" }),
        Some(Err(e)) => json!({
            "kind": "error",
            "location": e.location(),
            "code": e.code.code(),
            "message": e.message,
        }),
        Some(Ok(Mapped::Nothing { reason })) => json!({ "kind": "nothing", "reason": reason }),
        Some(Ok(Mapped::Bundle {
            bundle,
            patient,
            warnings,
        })) => json!({
            "kind": "bundle",
            "patient": patient.as_ref().map(|p| json!({ "system": p.system, "value": p.value })),
            "warnings": warnings,
            "bundle": bundle,
        }),
        Some(Ok(Mapped::Merge {
            survivor,
            loser,
            bundle,
            warnings,
        })) => json!({
            "kind": "merge",
            "survivor": { "system": survivor.system, "value": survivor.value },
            "loser": { "system": loser.system, "value": loser.value },
            "warnings": warnings,
            "bundle": bundle,
        }),
    }
}

/// The bundle of a Bundle or Merge outcome.
pub fn bundle_of(mapped: &Mapped) -> &Value {
    match mapped {
        Mapped::Bundle { bundle, .. } | Mapped::Merge { bundle, .. } => bundle,
        Mapped::Nothing { reason } => panic!("expected a bundle, got nothing: {reason}"),
    }
}

/// A bundle, panicking with the error otherwise.
pub fn expect_bundle(outcome: Result<Mapped, MapError>) -> (Value, Vec<String>) {
    match outcome {
        Ok(Mapped::Bundle {
            bundle, warnings, ..
        }) => (bundle, warnings),
        Ok(other) => panic!("expected a bundle, got {other:?}"),
        Err(e) => panic!("expected a bundle, got the error {e}"),
    }
}

/// The resources of a bundle with this resourceType.
pub fn resources<'b>(bundle: &'b Value, ty: &str) -> Vec<&'b Value> {
    entries(bundle)
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == ty)
        .collect()
}

/// The one resource of this type.
pub fn one<'b>(bundle: &'b Value, ty: &str) -> &'b Value {
    let found = resources(bundle, ty);
    assert_eq!(found.len(), 1, "expected one {ty}, found {}", found.len());
    found[0]
}

pub fn entries(bundle: &Value) -> &Vec<Value> {
    bundle["entry"].as_array().expect("entries")
}

/// The entry whose resource is this one (compared by value).
pub fn entry_of<'b>(bundle: &'b Value, resource: &Value) -> &'b Value {
    entries(bundle)
        .iter()
        .find(|e| &e["resource"] == resource)
        .expect("the entry of the resource")
}

/// Every problem `rapport_fhir::validate` finds in the bundle's resources and the bundle,
/// each with the entry it is in.
pub fn validation_problems(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, entry) in entries(bundle).iter().enumerate() {
        for issue in rapport_fhir::validate::validate(&entry["resource"]) {
            problems.push(format!(
                "entry[{i}] {}: {} {}",
                entry["resource"]["resourceType"], issue.expression, issue.message
            ));
        }
        for key in ["fullUrl", "request"] {
            if entry.get(key).is_none() {
                problems.push(format!("entry[{i}] has no {key}"));
            }
        }
    }
    for issue in rapport_fhir::validate::validate(bundle) {
        problems.push(format!("Bundle {}: {}", issue.expression, issue.message));
    }
    problems
}
