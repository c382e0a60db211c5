//! The console in real headless Chromium (tests/browser/console.mjs, driven by playwright-core).
//! Needs Debian's `chromium` and `npm install` in tests/browser; `.ci/run` provides both and sets
//! RAPPORT_REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_signs_in_sees_only_her_patients_finds_a_condition_and_signs_out_in_the_browser(
) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = dir.join("node_modules/playwright-core").is_dir()
        && std::path::Path::new(&chromium).exists();
    if !ready {
        let required = std::env::var_os("RAPPORT_REQUIRE_BROWSER").is_some();
        let message = format!(
            "browser test needs {chromium} and `npm install` in {} (run .ci/run, or apt-get install chromium)",
            dir.display()
        );
        assert!(!required, "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    }
    let app = spawn_app().await;
    // A coordinator with two patients on her panel, one of them the patient searched for.
    tokio::task::block_in_place(|| {
        app.add_user("browser@test.example", "coordinator", None, None);
        let ids = app.patient_ids();
        let lourdes = app
            .store
            .search_patients(&rapport_store::PatientSearch {
                name_words: vec!["alcantar".into()],
                limit: 5,
                ..Default::default()
            })
            .unwrap()
            .patients[0]
            .key
            .id
            .clone();
        app.assign("browser@test.example", &lourdes);
        app.assign(
            "browser@test.example",
            ids.iter().find(|id| **id != lourdes).unwrap(),
        );
    });
    let base = app.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&dir)
            .args([
                "console.mjs",
                &base,
                "lourdes alcantar",
                "Mrs. Lourdes Alcántar",
                "Alzheimer's disease",
                "browser@test.example",
                crate::helpers::PASSWORD,
                "2",
            ])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("back button shows nothing"), "{stdout}");
}
