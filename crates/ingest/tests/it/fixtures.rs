//! Every FHIR bundle in `../shared/fixtures/fhir`, imported and compared with its input.

use std::collections::{BTreeMap, HashMap, HashSet};

use rapport_fhir::reference;
use rapport_ingest::{files, Action};
use rapport_store::ResourceKey;
use serde_json::Value;

use crate::helpers::*;

fn fixture_inputs() -> Vec<(String, Vec<u8>)> {
    let files = files::collect_files(&[fixtures_dir().join("fhir")]).unwrap();
    assert!(
        files.len() >= 20,
        "expected the Synthea fixtures, found {}",
        files.len()
    );
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn every_fixture_bundle_is_stored_faithfully_and_a_second_import_changes_nothing() {
    let db = store();
    let store = db.store.as_ref();
    let inputs = fixture_inputs();
    let (summary, reports) = import_many(store, inputs.clone());

    // The one malformed entry in the fixtures is reported with its file and index; nothing else fails.
    let errors: Vec<String> = summary.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("ObservationBundle_batch-response_bom.json: Bundle.entry[1]"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("wrap it in 'resource'"), "{}", errors[0]);

    let by_file: HashMap<&str, &rapport_ingest::UnitReport> =
        reports.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut all_keys: HashSet<ResourceKey> = HashSet::new();
    for (name, bytes) in &inputs {
        let report = by_file[name.as_str()];
        let doc: Value = serde_json::from_slice(rapport_fhir::bundle::strip_bom(bytes)).unwrap();
        let entries = doc["entry"].as_array().unwrap();
        let outcome: HashMap<usize, &rapport_ingest::EntryOutcome> =
            report.outcomes.iter().map(|o| (o.index, o)).collect();
        // fullUrl → stored reference, to rewrite the input as the importer must have.
        let by_url: HashMap<String, String> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((e.get("fullUrl")?.as_str()?.to_owned(), outcome.get(&i)?)))
            .map(|(u, o)| (u, format!("{}/{}", o.key.resource_type, o.key.id)))
            .collect();
        let mut expected_counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut stored_keys: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some(input) = entry.get("resource") else {
                continue;
            };
            let ty = input["resourceType"].as_str().unwrap();
            *expected_counts.entry(ty.to_owned()).or_default() += 1;
            let o = outcome
                .get(&i)
                .unwrap_or_else(|| panic!("{name}: entry {i} has no outcome"));
            assert!(
                matches!(
                    o.action,
                    Action::Created | Action::Updated | Action::Unchanged
                ),
                "{name} entry {i}: {:?}",
                o.action
            );
            stored_keys
                .entry(ty.to_owned())
                .or_default()
                .insert(o.key.id.clone());
            all_keys.insert(o.key.clone());

            let mut expected = input.clone();
            reference::rewrite_references::<()>(&mut expected, &mut |r| Ok(by_url.get(r).cloned()))
                .unwrap();
            expected["id"] = Value::String(o.key.id.clone());
            let expected = without_server_meta(expected);
            // Some providers appear in several files with different content: one of the versions is this input.
            let versions: Vec<Value> = store
                .history(&o.key)
                .unwrap()
                .into_iter()
                .map(|v| without_server_meta(serde_json::from_str(&v.content).unwrap()))
                .collect();
            assert!(
                versions.contains(&expected),
                "{name} entry {i} ({ty}/{}): no stored version equals the input\ninput:  {}\nstored: {}",
                o.key.id,
                serde_json::to_string(&expected).unwrap(),
                serde_json::to_string(versions.last().unwrap()).unwrap()
            );
            assert!(
                !serde_json::to_string(versions.last().unwrap())
                    .unwrap()
                    .contains("urn:uuid:"),
                "{name} entry {i}: a urn:uuid reference is left"
            );
        }
        let stored_counts: BTreeMap<String, usize> = stored_keys
            .iter()
            .map(|(t, ids)| (t.clone(), ids.len()))
            .collect();
        assert_eq!(
            stored_counts, expected_counts,
            "{name}: stored counts by type differ from the bundle's"
        );
    }
    // The store holds exactly the distinct resources of all bundles.
    let mut distinct: BTreeMap<String, u64> = BTreeMap::new();
    for k in &all_keys {
        *distinct.entry(k.resource_type.clone()).or_default() += 1;
    }
    assert_eq!(store.counts_by_type().unwrap(), distinct);
    assert_eq!(
        distinct["Patient"], 18,
        "17 Synthea patients and one from the FHIR-Converter sample: {distinct:?}"
    );

    // A second import of the same files creates nothing and writes no new version.
    let versions_before: usize = all_keys
        .iter()
        .map(|k| store.history(k).unwrap().len())
        .sum();
    let (again, _) = import_many(store, inputs);
    assert_eq!(
        (again.created, again.updated, again.deleted),
        (0, 0, 0),
        "{again:?}"
    );
    let versions_after: usize = all_keys
        .iter()
        .map(|k| store.history(k).unwrap().len())
        .sum();
    assert_eq!(versions_before, versions_after);
    assert_eq!(store.counts_by_type().unwrap(), distinct);
}

#[test]
fn the_order_of_files_does_not_matter() {
    let mut forward = fixture_inputs();
    let db_a = store();
    let (a, _) = import_many(db_a.store.as_ref(), forward.clone());
    forward.reverse();
    let db_b = store();
    let (b, _) = import_many(db_b.store.as_ref(), forward);
    assert_eq!(a.errors.len(), b.errors.len());
    assert_eq!(
        db_a.store.counts_by_type().unwrap(),
        db_b.store.counts_by_type().unwrap()
    );
}

#[test]
fn accented_fixture_names_are_found_without_accents() {
    let db = store();
    let (_, _) = import_many(db.store.as_ref(), fixture_inputs());
    let page = db
        .store
        .search_patients(&rapport_store::PatientSearch {
            name_words: vec!["ordonez".into()],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total, 1);
    let p: Value = serde_json::from_str(&page.patients[0].content).unwrap();
    assert_eq!(p["name"][0]["family"], "Ordóñez");
}
