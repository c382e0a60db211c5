//! Every resource of the public Synthea samples (../shared/fixtures/fhir) is valid against the
//! core definitions: validation on write must accept real data.

use std::path::PathBuf;

fn fixtures() -> PathBuf {
    std::env::var_os("RAPPORT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
        .join("fhir")
}

#[test]
fn the_synthea_samples_are_valid_against_the_core_definitions() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for dir in std::fs::read_dir(fixtures()).expect("the fixtures directory") {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap();
            for (i, e) in v["entry"].as_array().into_iter().flatten().enumerate() {
                let Some(r) = e.get("resource") else { continue };
                checked += 1;
                for issue in rapport_fhir::validate::validate(r) {
                    problems.push(format!(
                        "{}: entry[{i}] {}: {}",
                        path.file_name().unwrap().to_string_lossy(),
                        issue.expression,
                        issue.message
                    ));
                }
            }
        }
    }
    assert!(checked > 4000, "{checked}");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
