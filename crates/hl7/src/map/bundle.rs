//! The transaction Bundle (FHIR R4 http.html#transaction) a message becomes.
//!
//! - Every entry's `fullUrl` is `urn:uuid:` + a version 5 UUID of the message key and the
//!   entry's role (for a conditional update, its URL), so the same message always gives the
//!   same bundle, byte for byte, and the importer gives a new resource the same id each time.
//! - Resources with a business identifier are conditional updates, `PUT
//!   Type?identifier=system|value` (http.html#cond-update): they create the resource when it is
//!   absent and update the one match otherwise. The same condition twice in one message (the
//!   attending doctor who is also the admitting one) is one entry.
//! - Resources without one are POSTs whose id comes from the `urn:uuid` (the importer's rule),
//!   so a resend of the same message still writes nothing new.
//! - One Provenance (provenance.html) targets every entry and names the raw message.
//! - Null values, empty strings, arrays and objects are dropped at the end, so the mappers
//!   can write `json!` with optional parts (FHIR json.html: no empty elements).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::datatypes::Ident;
/// A version 5 UUID of `name` in `namespace` (RFC 9562 section 5.5), in its text form.
fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*namespace), name).to_string()
}

/// The namespace of Rapport's HL7 v2 full URLs: uuid5(URL namespace, "urn:rapport:hl7v2").
const NAMESPACE: [u8; 16] = [
    0x3c, 0x1f, 0x8e, 0x52, 0x6b, 0x0d, 0x5a, 0x4e, 0x9f, 0x12, 0x7a, 0x40, 0xc2, 0x6e, 0x11, 0x95,
];

/// What the Provenance says about the message.
pub(crate) struct ProvenanceInfo {
    /// MSH-7 as an instant.
    pub(crate) recorded: String,
    /// MSH-9.2.
    pub(crate) trigger: String,
    /// The sending application and facility.
    pub(crate) who: String,
    /// `HL7 v2 ADT^A01 CTRL0014`.
    pub(crate) display: String,
}

struct Entry {
    full_url: String,
    resource: Value,
    request: Value,
}

/// The entries of one message's bundle, in the order they were added.
pub(crate) struct BundleBuilder {
    key: String,
    entries: Vec<Entry>,
    by_condition: HashMap<String, String>,
    roles: HashSet<String>,
}

impl BundleBuilder {
    pub(crate) fn new(key: &str) -> Self {
        BundleBuilder {
            key: key.to_owned(),
            entries: Vec::new(),
            by_condition: HashMap::new(),
            roles: HashSet::new(),
        }
    }

    fn full_url(&mut self, role: &str) -> String {
        let mut role = role.to_owned();
        let mut n = 1;
        while !self.roles.insert(role.clone()) {
            n += 1;
            role = format!("{role}#{n}");
        }
        let name = format!("{}\n{role}", self.key);
        format!("urn:uuid:{}", uuid_v5(&NAMESPACE, name.as_bytes()))
    }

    /// A conditional update on `identifier`; returns the entry's full URL. When an entry with
    /// the same condition exists, that one is kept and its full URL returned.
    pub(crate) fn put(&mut self, resource: Value, identifier: &Ident) -> String {
        self.put_query(resource, &identifier.query())
    }

    /// A conditional update on the search `query` (`identifier=a|1,b|2`).
    pub(crate) fn put_query(&mut self, resource: Value, query: &str) -> String {
        let ty = resource_type(&resource);
        let url = format!("{ty}?{query}");
        if let Some(full_url) = self.by_condition.get(&url) {
            return full_url.clone();
        }
        let full_url = self.full_url(&url);
        self.by_condition.insert(url.clone(), full_url.clone());
        self.entries.push(Entry {
            full_url: full_url.clone(),
            resource,
            request: json!({ "method": "PUT", "url": url }),
        });
        full_url
    }

    /// A create without a condition: its id comes from the full URL, derived from `role`.
    pub(crate) fn post(&mut self, role: &str, resource: Value) -> String {
        let ty = resource_type(&resource);
        let full_url = self.full_url(&format!("{ty}/{role}"));
        self.entries.push(Entry {
            full_url: full_url.clone(),
            resource,
            request: json!({ "method": "POST", "url": ty }),
        });
        full_url
    }

    /// The bundle, with a Provenance targeting every entry.
    pub(crate) fn finish(mut self, info: ProvenanceInfo) -> Value {
        let targets: Vec<Value> = self
            .entries
            .iter()
            .map(|e| json!({ "reference": e.full_url }))
            .collect();
        let provenance = json!({
            "resourceType": "Provenance",
            "target": targets,
            "recorded": info.recorded,
            "activity": {
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                    "code": info.trigger,
                }]
            },
            "agent": [{
                "type": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "author",
                }]},
                "who": { "display": info.who },
            }],
            "entity": [{
                "role": "source",
                "what": {
                    "identifier": { "system": "urn:rapport:hl7v2-message", "value": self.key },
                    "display": info.display,
                },
            }],
        });
        self.post("provenance", provenance);
        let entries: Vec<Value> = self
            .entries
            .into_iter()
            .map(|mut e| {
                prune(&mut e.resource);
                json!({ "fullUrl": e.full_url, "resource": e.resource, "request": e.request })
            })
            .collect();
        json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
    }
}

fn resource_type(resource: &Value) -> String {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Basic")
        .to_owned()
}

/// Drops nulls, empty strings, empty arrays and empty objects, deepest first; true when
/// `value` itself is then empty.
pub(crate) fn prune(value: &mut Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => {
            items.retain_mut(|item| !prune(item));
            items.is_empty()
        }
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if map.get_mut(&key).is_some_and(prune) {
                    map.shift_remove(&key);
                }
            }
            map.is_empty()
        }
        _ => false,
    }
}
