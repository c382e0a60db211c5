//! Reading import input into entries: Bundles of any type and NDJSON (FHIR R4 bundle.html,
//! http.html#transaction, and the Bulk Data NDJSON format: one resource per line).

use serde_json::Value;

use crate::id::is_valid_id;
use crate::search_param::is_resource_type;

/// How the entries of one input must be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All entries succeed or none is written (Bundle.type = transaction).
    Transaction,
    /// Each entry on its own (batch, collection, searchset, batch-response, NDJSON...).
    Independent,
}

/// The HTTP verb of a bundle entry (Bundle.entry.request.method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Delete,
    Get,
    Patch,
}

/// `Bundle.entry.request` (http.html#transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub if_none_exist: Option<String>,
    /// `request.ifMatch`: the version the entry expects to replace (http.html#concurrency).
    pub if_match: Option<i64>,
}

/// The version an ETag names: `W/"3"` (the form the spec shows), and the strong `"3"` and bare
/// `3` that some clients send, all mean version 3 (hard case B22). Anything else is an error.
pub fn parse_etag(etag: &str) -> Result<i64, String> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t);
    match t.parse::<i64>() {
        Ok(v) if v >= 1 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(format!(
            "'{etag}' is not an ETag of a version (expected W/\"<versionId>\")"
        )),
    }
}

/// One entry of the input, validated as far as it can be without a store.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in the input: the bundle's entry index, or the NDJSON line index (0-based).
    pub index: usize,
    pub full_url: Option<String>,
    pub resource: Option<Value>,
    pub request: Option<Request>,
}

/// An entry that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub index: usize,
    pub message: String,
}

/// One parsed input: how to apply it, and its entries (good or bad).
#[derive(Debug)]
pub struct Parsed {
    pub mode: Mode,
    pub bundle_type: String,
    pub entries: Vec<Result<Entry, EntryError>>,
}

/// Strip a UTF-8 byte-order mark, which several exporters write before JSON.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// The error for a document that is not usable at all (invalid JSON, not a resource...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

/// Parse one JSON document: a Bundle, or a single resource (treated as a one-entry collection).
pub fn parse_json_document(bytes: &[u8]) -> Result<Parsed, DocumentError> {
    let value: Value = serde_json::from_slice(strip_bom(bytes)).map_err(|e| {
        DocumentError(format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    parse_document_value(value)
}

/// [`parse_json_document`] for a document already parsed (e.g. generated in memory).
pub fn parse_document_value(value: Value) -> Result<Parsed, DocumentError> {
    let Value::Object(ref obj) = value else {
        return Err(DocumentError("the document is not a JSON object".into()));
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        None => Err(DocumentError(
            "the document has no resourceType: it is not a FHIR resource".into(),
        )),
        Some("Bundle") => parse_bundle(value),
        Some(_) => Ok(Parsed {
            mode: Mode::Independent,
            bundle_type: "resource".into(),
            entries: vec![check_resource(value, 0).map(|resource| Entry {
                index: 0,
                full_url: None,
                resource: Some(resource),
                request: None,
            })],
        }),
    }
}

/// Parse NDJSON: one resource per non-empty line. A bad line is an entry error; the rest stands.
pub fn parse_ndjson(bytes: &[u8]) -> Parsed {
    let entries = strip_bom(bytes)
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(index, line)| {
            let value: Value = serde_json::from_slice(line).map_err(|e| EntryError {
                index,
                message: format!("invalid JSON at column {}: {e}", e.column()),
            })?;
            check_resource(value, index).map(|resource| Entry {
                index,
                full_url: None,
                resource: Some(resource),
                request: None,
            })
        })
        .collect();
    Parsed {
        mode: Mode::Independent,
        bundle_type: "ndjson".into(),
        entries,
    }
}

fn parse_bundle(mut bundle: Value) -> Result<Parsed, DocumentError> {
    let bundle_type = bundle
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| DocumentError("Bundle.type is missing".into()))?
        .to_owned();
    let mode = match bundle_type.as_str() {
        "transaction" => Mode::Transaction,
        "batch"
        | "collection"
        | "searchset"
        | "history"
        | "batch-response"
        | "transaction-response"
        | "document"
        | "message" => Mode::Independent,
        other => {
            return Err(DocumentError(format!(
                "Bundle.type '{other}' is not a bundle type of FHIR R4"
            )))
        }
    };
    let entries = match bundle.get_mut("entry").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| parse_entry(item, index, mode))
            .collect(),
        Some(_) => return Err(DocumentError("Bundle.entry is not an array".into())),
    };
    Ok(Parsed {
        mode,
        bundle_type,
        entries,
    })
}

fn parse_entry(item: Value, index: usize, mode: Mode) -> Result<Entry, EntryError> {
    let err = |message: String| EntryError { index, message };
    let Value::Object(mut obj) = item else {
        return Err(err("the entry is not a JSON object".into()));
    };
    if obj.contains_key("resourceType") {
        return Err(err(
            "the entry is itself a resource; a Bundle entry must wrap it in 'resource'".into(),
        ));
    }
    let full_url = match obj.remove("fullUrl") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(err("fullUrl is not a string".into())),
    };
    let request = match obj.remove("request") {
        None => None,
        Some(r) => Some(parse_request(&r).map_err(err)?),
    };
    if mode == Mode::Transaction && request.is_none() {
        return Err(err("a transaction entry needs a request".into()));
    }
    let resource = match obj.remove("resource") {
        None => None,
        Some(r) => Some(check_resource(r, index)?),
    };
    let needs_resource = match &request {
        None => true,
        Some(r) => matches!(r.method, Method::Post | Method::Put),
    };
    if needs_resource && resource.is_none() {
        return Err(err("the entry has no resource".into()));
    }
    Ok(Entry {
        index,
        full_url,
        resource,
        request,
    })
}

fn parse_request(r: &Value) -> Result<Request, String> {
    let method = match r.get("method").and_then(Value::as_str) {
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        Some("GET") => Method::Get,
        Some("PATCH") => Method::Patch,
        Some(other) => {
            return Err(format!(
                "request.method '{other}' is not an HTTP verb FHIR uses"
            ))
        }
        None => return Err("request.method is missing".into()),
    };
    let url = r
        .get("url")
        .and_then(Value::as_str)
        .ok_or("request.url is missing")?
        .to_owned();
    let if_none_exist = r
        .get("ifNoneExist")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let if_match = match r.get("ifMatch").and_then(Value::as_str) {
        Some(e) => Some(parse_etag(e).map_err(|m| format!("request.ifMatch: {m}"))?),
        None => None,
    };
    Ok(Request {
        method,
        url,
        if_none_exist,
        if_match,
    })
}

/// A resource must be an object with a known R4 resourceType and, if it has one, a valid id; its
/// contained resources must be referenced (dom-3). Repeating primitives that carry only
/// extensions get their null value arrays ([`crate::content::align_primitive_arrays`]).
pub fn check_resource(mut value: Value, index: usize) -> Result<Value, EntryError> {
    let err = |message: String| EntryError { index, message };
    let Value::Object(ref obj) = value else {
        return Err(err("the resource is not a JSON object".into()));
    };
    let ty = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| err("the resource has no resourceType: it is not a FHIR resource".into()))?;
    if !is_resource_type(ty) {
        return Err(err(format!("'{ty}' is not a FHIR R4 resource type")));
    }
    match obj.get("id") {
        None => {}
        Some(Value::String(id)) if is_valid_id(id) => {}
        Some(other) => {
            return Err(err(format!(
                "{ty}.id {other} is not a valid FHIR id (1 to 64 of A-Z a-z 0-9 - .)"
            )))
        }
    }
    let orphans = crate::content::unreferenced_contained(&value);
    if !orphans.is_empty() {
        return Err(err(format!(
            "{ty}.contained: resource(s) {} are not referenced from the resource (constraint dom-3)",
            orphans.join(", ")
        )));
    }
    crate::content::align_primitive_arrays(&mut value);
    Ok(value)
}

#[cfg(test)]
mod etag_tests {
    use super::parse_etag;

    #[test]
    fn weak_strong_and_bare_etags_name_the_same_version_b22() {
        for e in ["W/\"3\"", "\"3\"", "3", " W/\"3\" "] {
            assert_eq!(parse_etag(e), Ok(3), "{e}");
        }
        for bad in ["banana", "W/\"\"", "\"-1\"", "W/\"1.0\"", "0", ""] {
            assert!(parse_etag(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_before_json_is_accepted() {
        let parsed =
            parse_json_document(b"\xEF\xBB\xBF{\"resourceType\":\"Patient\",\"id\":\"a\"}")
                .unwrap();
        assert_eq!(parsed.entries.len(), 1);
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let err =
            parse_json_document(b"{\n  \"resourceType\": \"Bundle\",\n  oops\n}").unwrap_err();
        assert!(err.0.contains("line 3"), "{}", err.0);
    }

    #[test]
    fn a_bare_resource_as_entry_is_an_entry_error_and_others_stand() {
        let parsed = parse_json_document(
            br#"{"resourceType":"Bundle","type":"batch-response","entry":[
                {"resource":{"resourceType":"Patient","id":"f001"}},
                {"resourceType":"Encounter","id":"123"}]}"#,
        )
        .unwrap();
        assert!(parsed.entries[0].is_ok());
        let e = parsed.entries[1].as_ref().unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.message.contains("wrap it in 'resource'"));
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let parsed = parse_ndjson(b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\nnot json\n{\"resourceType\":\"Nope\"}\n");
        assert_eq!(parsed.entries.len(), 3);
        assert!(parsed.entries[0].is_ok());
        assert_eq!(parsed.entries[1].as_ref().unwrap_err().index, 2);
        assert!(parsed.entries[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("Nope"));
    }
}
