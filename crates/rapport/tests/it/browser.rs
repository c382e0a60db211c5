//! The console in real headless Chromium (tests/browser/console.mjs, driven by playwright-core).
//! Needs Debian's `chromium` and `npm install` in tests/browser; `.ci/run` provides both and sets
//! RAPPORT_REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn a_care_coordinator_finds_a_patient_and_their_condition_in_the_browser() {
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
            ])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok: searched"), "{stdout}");
}
