//! Small builders for the FHIR R4 JSON the generator writes: transaction bundles, codings,
//! references, quantities, dates and base64 attachments.
//!
//! They exist so that invariants hold by construction rather than by care: every entry's
//! `resource.id` equals the uuid in its `fullUrl`, every request is a POST to the resource
//! type, and decimals keep the precision they were written with.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde_json::{Map, Number, Value};
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
        // Built field by field rather than with `json!`, which would copy the whole resource
        // through the serializer (it calls `to_value(&expr)` on every interpolated value).
        let mut entry = Map::new();
        entry.insert("fullUrl".to_owned(), Value::from(urn(id)));
        entry.insert("resource".to_owned(), Value::Object(resource));
        entry.insert("request".to_owned(), Value::Object(request));
        self.entries.push(Value::Object(entry));
    }

    pub(crate) fn into_bundle(self) -> Value {
        let mut bundle = Map::new();
        bundle.insert("resourceType".to_owned(), Value::from("Bundle"));
        bundle.insert("type".to_owned(), Value::from("transaction"));
        bundle.insert("entry".to_owned(), Value::Array(self.entries));
        Value::Object(bundle)
    }
}

/// `urn:uuid:…`, the fullUrl of an entry created in the same transaction.
pub(crate) fn urn(id: Uuid) -> String {
    format!("urn:uuid:{id}")
}

/// A JSON object from key–value pairs, moving the values in. The helpers below use it
/// instead of `json!`, which copies every interpolated value through the serializer; they
/// run millions of times for a large demo.
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in fields {
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

/// A reference to another entry of the same bundle.
pub(crate) fn local_reference(id: Uuid) -> Value {
    object([("reference", Value::from(urn(id)))])
}

/// A conditional reference (FHIR R4 http.html#trules): the importer resolves it by searching
/// for the identifier, so it works whichever file was imported first.
pub(crate) fn conditional_reference(
    resource_type: &str,
    identifier_system: &str,
    identifier_value: &str,
    display: &str,
) -> Value {
    let reference = format!("{resource_type}?identifier={identifier_system}|{identifier_value}");
    object([
        ("reference", Value::from(reference)),
        ("display", Value::from(display)),
    ])
}

pub(crate) fn coding(code: Code) -> Value {
    object([
        ("system", Value::from(code.system)),
        ("code", Value::from(code.code)),
        ("display", Value::from(code.display)),
    ])
}

/// A CodeableConcept with one coding and the display as its text.
pub(crate) fn concept(code: Code) -> Value {
    object([
        ("coding", Value::Array(vec![coding(code)])),
        ("text", Value::from(code.display)),
    ])
}

/// A CodeableConcept with one coding and no text, for categories and statuses where the
/// text would only repeat the display.
pub(crate) fn category(code: Code) -> Value {
    object([("coding", Value::Array(vec![coding(code)]))])
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
    object([
        ("value", value),
        ("unit", Value::from(unit)),
        ("system", Value::from(system::UCUM)),
        ("code", Value::from(ucum_code)),
    ])
}

/// A duration in days, as FHIR wants it for supply durations.
pub(crate) fn days_quantity(days: i64) -> Value {
    quantity(Value::from(days), "days", "d")
}

/// A FHIR date, `YYYY-MM-DD` (formatted by hand: chrono's `format` re-parses its pattern
/// on every call).
pub(crate) fn date(day: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// A FHIR instant/dateTime in UTC. The generator has no time zones to model, and UTC keeps
/// instants comparable as strings.
pub(crate) fn instant(moment: NaiveDateTime) -> String {
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(moment.date()),
        moment.hour(),
        moment.minute(),
        moment.second()
    )
}

pub(crate) fn period(start: NaiveDateTime, end: NaiveDateTime) -> Value {
    object([
        ("start", Value::from(instant(start))),
        ("end", Value::from(instant(end))),
    ])
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
    use serde_json::json;

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
    fn dates_and_instants_use_fhir_formats() {
        let day = NaiveDate::from_ymd_opt(2025, 3, 7).unwrap();
        assert_eq!(date(day), "2025-03-07");
        let moment = day.and_hms_opt(8, 5, 0).unwrap();
        assert_eq!(instant(moment), "2025-03-07T08:05:00Z");
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
