//! Work on an input done ahead, on the thread that parses it, on a guess of the identities its
//! entries will get: reference rewriting, serialisation, content hash and search index rows are
//! most of an import's CPU time, and none of them needs the store once the identities are known.
//!
//! The guess is what [`crate::apply`] decides when the store holds nothing that changes it: each
//! entry keeps its own id (or its fullUrl's uuid), identity matching finds only earlier entries
//! of the same input. The writer then decides the identities for real, with the store, and uses
//! this work only if it decided the very same ones: the same identity for every entry and the same
//! map of fullUrls and `Type/id`s, which is everything reference rewriting reads. The results are
//! then those it would have computed itself. Otherwise it prepares the input again, plainly.
//!
//! Inputs that need a search to be understood (conditional references, conditional updates and
//! deletes, `ifNoneExist`), that have a bad entry, or whose entries need ids derived from their
//! content are not guessed at.

use std::collections::{HashMap, HashSet};

use rapport_fhir::bundle::{Entry, Method, Parsed};
use rapport_fhir::id::is_valid_id;
use rapport_fhir::index::{self, IndexRows};
use rapport_fhir::reference::{self, ReferenceTarget};
use rapport_store::ResourceKey;
use serde_json::{Map, Value};

use crate::apply::{
    identifiers, new_id, rewrite_local, set_id, sort_key_of, type_and_id, Serialized,
    MATCH_BY_IDENTIFIER,
};

/// The guessed identities of an input's entries and what follows from them.
pub(crate) struct Speculation {
    /// fullUrl and `Type/id` as written, to the guessed identity (as `Run::by_url`).
    pub(crate) by_url: HashMap<String, ResourceKey>,
    /// One per entry, in entry order.
    pub(crate) entries: Vec<Precomputed>,
}

/// What the writer needs of one entry's resource once its identity is known.
pub(crate) struct Precomputed {
    pub(crate) key: ResourceKey,
    pub(crate) serialized: Serialized,
    pub(crate) rows: IndexRows,
    pub(crate) patient_key: Option<String>,
    pub(crate) sort_key: Option<String>,
}

/// Guess the identities of `parsed`'s entries and do the work that follows from them. On success
/// each entry's resource is replaced by a stub that keeps only what identification reads
/// (`resourceType`, `id`, `identifier`); on failure `parsed` is left as it was.
pub(crate) fn speculate(parsed: &mut Parsed) -> Option<Speculation> {
    let entries: Vec<&Entry> = parsed
        .entries
        .iter()
        .map(|e| e.as_ref().ok())
        .collect::<Option<_>>()?;
    // 1. Identities, as `Run::identify` decides them when the store has no match.
    let mut keys = Vec::with_capacity(entries.len());
    let mut by_url: HashMap<String, ResourceKey> = HashMap::new();
    let mut written: HashSet<ResourceKey> = HashSet::new();
    let mut by_identifier: HashMap<(String, String, String), ResourceKey> = HashMap::new();
    for entry in &entries {
        let resource = entry.resource.as_ref()?;
        let ty = resource.get("resourceType")?.as_str()?;
        let own_id = resource.get("id").and_then(Value::as_str);
        let key = match entry.request.as_ref() {
            Some(r) if r.method == Method::Put => {
                let (url_ty, id) = type_and_id(r.url.trim_start_matches('/'))?;
                if url_ty != ty || own_id.is_some_and(|own| own != id) {
                    return None;
                }
                ResourceKey::new(ty, id)
            }
            Some(r) if r.method != Method::Post || r.if_none_exist.is_some() => return None,
            _ => {
                let matched = if MATCH_BY_IDENTIFIER.contains(&ty) {
                    identifiers(resource)
                        .into_iter()
                        .find_map(|(system, value)| {
                            by_identifier.get(&(ty.to_owned(), system, value)).cloned()
                        })
                } else {
                    None
                };
                match matched {
                    Some(key) => key,
                    None => {
                        // An id derived from the content would differ on the stub.
                        let has_id = own_id.is_some_and(is_valid_id)
                            || entry
                                .full_url
                                .as_deref()
                                .and_then(|u| u.strip_prefix("urn:uuid:"))
                                .is_some_and(is_valid_id);
                        if !has_id {
                            return None;
                        }
                        ResourceKey::new(ty, new_id(resource, entry.full_url.as_deref()))
                    }
                }
            }
        };
        if !written.insert(key.clone()) {
            return None;
        }
        if let Some(url) = &entry.full_url {
            by_url.insert(url.clone(), key.clone());
        }
        if let Some(id) = own_id {
            by_url
                .entry(format!("{ty}/{id}"))
                .or_insert_with(|| key.clone());
        }
        if MATCH_BY_IDENTIFIER.contains(&ty) {
            for (system, value) in identifiers(resource) {
                by_identifier
                    .entry((ty.to_owned(), system, value))
                    .or_insert_with(|| key.clone());
            }
        }
        keys.push(key);
    }
    // 2. Every reference must be rewritable without a search.
    let mut refs = Vec::new();
    for entry in &entries {
        refs.clear();
        reference::collect_references(entry.resource.as_ref()?, &mut refs);
        for r in &refs {
            match reference::parse(r) {
                ReferenceTarget::Conditional { .. } => return None,
                target => {
                    rewrite_local(&by_url, target).ok()?;
                }
            }
        }
    }
    // 3. The work itself; nothing below can fail.
    let mut precomputed = Vec::with_capacity(keys.len());
    for (entry, key) in parsed.entries.iter_mut().zip(keys) {
        let entry = entry.as_mut().expect("checked above");
        let mut resource = entry.resource.take().expect("checked above");
        entry.resource = Some(stub(&resource));
        let result = reference::rewrite_references(&mut resource, &mut |r: &str| {
            rewrite_local(&by_url, reference::parse(r))
        });
        debug_assert!(result.is_ok(), "checked above");
        set_id(&mut resource, &key.id);
        let serialized = Serialized::new(&resource);
        let rows = index::extract(&resource);
        let patient_key = index::patient_key(&key.resource_type, &key.id, &rows);
        let sort_key = sort_key_of(&resource);
        precomputed.push(Precomputed {
            key,
            serialized,
            rows,
            patient_key,
            sort_key,
        });
    }
    Some(Speculation {
        by_url,
        entries: precomputed,
    })
}

/// What identification reads of a resource: its type, id and identifiers.
fn stub(resource: &Value) -> Value {
    let mut stub = Map::new();
    for key in ["resourceType", "id", "identifier"] {
        if let Some(v) = resource.get(key) {
            stub.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(stub)
}
