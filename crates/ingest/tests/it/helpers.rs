//! Shared helpers: fresh stores, importing in-memory inputs, reading resources back.

use std::path::PathBuf;

use rapport_ingest::{import_units, Payload, Summary, Unit, UnitReport};
use rapport_store::testing::{fresh_store, TestStore};
use rapport_store::{ResourceKey, Store};
use serde_json::Value;

pub fn store() -> TestStore {
    fresh_store()
        .expect("a fresh test store (is PostgreSQL running, if RAPPORT_TEST_DATABASE_URL is set?)")
}

/// `../shared/fixtures` next to the checkout, or `RAPPORT_FIXTURES`.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RAPPORT_FIXTURES") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set RAPPORT_FIXTURES)",
        dir.display()
    );
    dir
}

pub const NOW: i64 = 1_796_300_000_000;

pub fn import_json(store: &dyn Store, name: &str, doc: &Value) -> (Summary, Vec<UnitReport>) {
    import_many(
        store,
        vec![(name.to_owned(), serde_json::to_vec(doc).unwrap())],
    )
}

pub fn import_many(
    store: &dyn Store,
    inputs: Vec<(String, Vec<u8>)>,
) -> (Summary, Vec<UnitReport>) {
    let units = inputs.into_iter().map(|(name, bytes)| Unit {
        payload: if name.ends_with(".ndjson") {
            Payload::Ndjson(bytes)
        } else {
            Payload::Json(bytes)
        },
        name,
        kind: "file",
    });
    let mut reports = Vec::new();
    let summary = import_units(store, units, &|| NOW, &mut |r| reports.push(r.clone()));
    (summary, reports)
}

pub fn read(store: &dyn Store, ty: &str, id: &str) -> Option<Value> {
    let stored = store.read(&ResourceKey::new(ty, id)).unwrap()?;
    if stored.deleted {
        return None;
    }
    Some(serde_json::from_str(&stored.content).unwrap())
}

pub fn count(store: &dyn Store, ty: &str) -> u64 {
    store
        .counts_by_type()
        .unwrap()
        .get(ty)
        .copied()
        .unwrap_or(0)
}

/// The resource without the server-managed meta fields, for comparing with input.
pub fn without_server_meta(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
        meta.shift_remove("versionId");
        meta.shift_remove("lastUpdated");
        if meta.is_empty() {
            v.as_object_mut().unwrap().shift_remove("meta");
        }
    }
    v
}
