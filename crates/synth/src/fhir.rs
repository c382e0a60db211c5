//! Small builders for the FHIR R4 JSON the generator writes: transaction bundles, codings,
//! references, quantities, dates and base64 attachments.
//!
//! They exist so that invariants hold by construction rather than by care: every entry's
//! `resource.id` equals the uuid in its `fullUrl`, every request is a POST to the resource
//! type, and decimals keep the precision they were written with.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Map, Number, Value};
use uuid::Uuid;

use crate::codes::{system, Code};

/// The entries of one `transaction` bundle (FHIR R4 bundle.html#transaction).
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    entries: Vec<Value>,
}

impl Transaction {
    pub(crate) fn new() -> Transaction {
        Transaction::default()
    }

    /// Adds `body` as a resource of `resource_type` with id `id`, to be created by POST.
    pub(crate) fn add(&mut self, resource_type: &str, id: Uuid, body: Value) {
        self.push(resource_type, id, body, None);
    }

    /// Like [`Transaction::add`], but the server creates the resource only if none matches
    /// `identifier` (a conditional create, FHIR R4 http.html#ccreate), so importing the
    /// demo twice does not duplicate the directory or the patients.
    pub(crate) fn add_unless_identified(
        &mut self,
        resource_type: &str,
        id: Uuid,
        body: Value,
        identifier_system: &str,
        identifier_value: &str,
    ) {
        let query = format!("identifier={identifier_system}|{identifier_value}");
        self.push(resource_type, id, body, Some(query));
    }

    fn push(&mut self, resource_type: &str, id: Uuid, body: Value, if_none_exist: Option<String>) {
        let mut resource = Map::new();
        resource.insert("resourceType".to_owned(), Value::from(resource_type));
        resource.insert("id".to_owned(), Value::from(id.to_string()));
        match body {
            Value::Object(fields) => resource.extend(fields),
            other => panic!("a resource body must be a JSON object, got {other}"),
        }
        let mut request = Map::new();
        request.insert("method".to_owned(), Value::from("POST"));
        request.insert("url".to_owned(), Value::from(resource_type));
        if let Some(query) = if_none_exist {
            request.insert("ifNoneExist".to_owned(), Value::from(query));
        }
        self.entries.push(json!({
            "fullUrl": urn(id),
            "resource": resource,
            "request": request,
        }));
    }

    pub(crate) fn into_bundle(self) -> Value {
        json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": self.entries,
        })
    }
}

/// `urn:uuid:…`, the fullUrl of an entry created in the same transaction.
pub(crate) fn urn(id: Uuid) -> String {
    format!("urn:uuid:{id}")
}

/// A reference to another entry of the same bundle.
pub(crate) fn local_reference(id: Uuid) -> Value {
    json!({ "reference": urn(id) })
}

/// A conditional reference (FHIR R4 http.html#trules): the importer resolves it by searching
/// for the identifier, so it works whichever file was imported first.
pub(crate) fn conditional_reference(
    resource_type: &str,
    identifier_system: &str,
    identifier_value: &str,
    display: &str,
) -> Value {
    json!({
        "reference": format!("{resource_type}?identifier={identifier_system}|{identifier_value}"),
        "display": display,
    })
}

pub(crate) fn coding(code: Code) -> Value {
    json!({ "system": code.system, "code": code.code, "display": code.display })
}

/// A CodeableConcept with one coding and the display as its text.
pub(crate) fn concept(code: Code) -> Value {
    json!({ "coding": [coding(code)], "text": code.display })
}

/// A CodeableConcept with one coding and no text, for categories and statuses where the
/// text would only repeat the display.
pub(crate) fn category(code: Code) -> Value {
    json!({ "coding": [coding(code)] })
}

/// A decimal written with exactly `places` digits after the point. With serde_json's
/// `arbitrary_precision` the digits survive as written, so 1.10 stays 1.10 (FHIR R4
/// datatypes.html#decimal: precision is significant).
pub(crate) fn decimal(value: f64, places: usize) -> Value {
    let text = format!("{value:.places$}");
    Value::Number(
        text.parse::<Number>()
            .expect("a formatted f64 is a JSON number"),
    )
}

/// A UCUM quantity.
pub(crate) fn quantity(value: Value, unit: &str, ucum_code: &str) -> Value {
    json!({ "value": value, "unit": unit, "system": system::UCUM, "code": ucum_code })
}

/// A duration in days, as FHIR wants it for supply durations.
pub(crate) fn days_quantity(days: i64) -> Value {
    quantity(Value::from(days), "days", "d")
}

pub(crate) fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A FHIR instant/dateTime in UTC. The generator has no time zones to model, and UTC keeps
/// instants comparable as strings.
pub(crate) fn instant(moment: NaiveDateTime) -> String {
    moment.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn period(start: NaiveDateTime, end: NaiveDateTime) -> Value {
    json!({ "start": instant(start), "end": instant(end) })
}

/// Standard base64 with padding (RFC 4648 §4), as FHIR's `base64Binary` requires.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected, "base64 of {input:?}");
        }
    }

    #[test]
    fn decimals_keep_trailing_zeros() {
        assert_eq!(decimal(1.1, 2).to_string(), "1.10");
        assert_eq!(decimal(7.24, 1).to_string(), "7.2");
        assert_eq!(decimal(98.0, 0).to_string(), "98");
    }

    #[test]
    fn entries_carry_the_uuid_as_id_and_full_url() {
        let id = Uuid::from_u128(42);
        let mut transaction = Transaction::new();
        transaction.add_unless_identified("Patient", id, json!({"active": true}), "s", "v");
        let bundle = transaction.into_bundle();
        let entry = &bundle["entry"][0];
        assert_eq!(entry["fullUrl"], format!("urn:uuid:{id}"));
        assert_eq!(entry["resource"]["id"], id.to_string());
        assert_eq!(entry["resource"]["resourceType"], "Patient");
        assert_eq!(entry["request"]["ifNoneExist"], "identifier=s|v");
    }
}
