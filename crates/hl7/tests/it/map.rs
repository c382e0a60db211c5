//! The HL7 v2 → FHIR R4 mapping (`rapport_hl7::map`) on every shared fixture: a snapshot of
//! each file's outcome, every resource valid, and the values that matter checked by name.

use std::path::{Path, PathBuf};

use expect_test::expect_file;

use crate::map_support::{map_file, render, validation_problems};
use crate::support::fixtures_dir;

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn snapshot_name(dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap();
    let folder = relative
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .replace('/', "__");
    let stem = relative.file_stem().unwrap().to_str().unwrap();
    format!("{folder}__{stem}.json")
}

#[test]
fn every_fixture_maps_to_its_snapshot_and_every_resource_is_valid_fhir() {
    let Some(dir) = fixtures_dir() else { return };
    let files = all_files(&dir);
    assert!(files.len() >= 50, "only {} fixture files", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let name = snapshot_name(&dir, path);
        let outcomes = map_file(path);
        let rendered: Vec<serde_json::Value> = outcomes.iter().map(render).collect();
        for (i, outcome) in outcomes.iter().enumerate() {
            if let Some(Ok(mapped)) = outcome {
                if let rapport_hl7::Mapped::Nothing { .. } = mapped {
                    continue;
                }
                let bundle = crate::map_support::bundle_of(mapped);
                for p in validation_problems(bundle) {
                    problems.push(format!("{name} message {i}: {p}"));
                }
            }
        }
        let text = serde_json::to_string_pretty(&serde_json::json!({ "messages": rendered }))
            .unwrap()
            + "\n";
        expect_file![format!("../snapshots/{name}")].assert_eq(&text);
    }
    assert!(
        problems.is_empty(),
        "invalid resources:\n{}",
        problems.join("\n")
    );
}
