//! Writes buffered inside a transaction, shared by both backends: they are sent to the database
//! in large batches (see each backend's `flush`), and reads inside the transaction combine the
//! database with this buffer, so that they see the transaction's own writes without sending it.

use std::collections::BTreeMap;

use rapport_fhir::query::{self, Query};

use crate::{Existing, NewVersion, ResourceKey};

/// Versions not yet sent to the database.
#[derive(Default)]
pub(crate) struct Pending {
    /// In write order, each with its `vrow` (SQLite; 0 on PostgreSQL).
    pub(crate) versions: Vec<(i64, NewVersion)>,
    /// Positions in `versions` of each resource's versions, oldest first. Sorted by key, so that
    /// the resources of one type are a range (for `find_ids`).
    by_key: BTreeMap<(String, String), Vec<usize>>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.versions.len()
    }

    /// The patients the buffered versions belong to, each once.
    pub(crate) fn patients(&self) -> std::collections::BTreeSet<&str> {
        self.versions
            .iter()
            .filter_map(|(_, v)| v.patient_key.as_deref())
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub(crate) fn contains(&self, key: &ResourceKey) -> bool {
        self.positions(key).is_some()
    }

    fn positions(&self, key: &ResourceKey) -> Option<&Vec<usize>> {
        // A BTreeMap of tuples cannot be searched by borrowed parts; keys are short.
        self.by_key
            .get(&(key.resource_type.clone(), key.id.clone()))
    }

    pub(crate) fn push(&mut self, vrow: i64, v: NewVersion) {
        let position = self.versions.len();
        self.by_key
            .entry((v.key.resource_type.clone(), v.key.id.clone()))
            .or_default()
            .push(position);
        self.versions.push((vrow, v));
    }

    /// Add the buffered versions of `key` to what the database holds of it (they are newer).
    pub(crate) fn add_to_existing(&self, key: &ResourceKey, existing: &mut Option<Existing>) {
        for &i in self.positions(key).into_iter().flatten() {
            let v = &self.versions[i].1;
            let e = existing.get_or_insert(Existing {
                current_version: 0,
                deleted: false,
                hashes: Vec::new(),
                patient_key: None,
            });
            e.current_version = v.version;
            e.deleted = v.deleted;
            e.hashes.push(v.content_hash);
            e.patient_key.clone_from(&v.patient_key);
        }
    }

    /// The current (latest) version of each buffered resource, in key order.
    pub(crate) fn current(&self) -> Vec<&(i64, NewVersion)> {
        self.by_key
            .values()
            .filter_map(|positions| positions.last().map(|&i| &self.versions[i]))
            .collect()
    }

    /// Combine the ids the database found for `query` with the buffered resources that match.
    /// `None` when a stored match has a newer version in the buffer, which may no longer match:
    /// the caller then writes the buffer out and asks the database again.
    pub(crate) fn merge_found(&self, query: &Query, stored: Vec<String>) -> Option<Vec<String>> {
        let ty = query.resource_type.as_str();
        if stored
            .iter()
            .any(|id| self.by_key.contains_key(&(ty.to_owned(), id.clone())))
        {
            return None;
        }
        let mut ids = stored;
        let current = self
            .by_key
            .range((ty.to_owned(), String::new())..)
            .take_while(|((t, _), _)| t == ty)
            .filter_map(|((_, id), positions)| Some((id, &self.versions[*positions.last()?].1)));
        for (id, v) in current {
            if !v.deleted && query::matches(query, id, &v.index) && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        Some(ids)
    }
}
