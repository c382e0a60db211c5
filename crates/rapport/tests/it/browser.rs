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

/// The Today page in the browser (tests/browser/today.mjs): an abnormal result written while the
/// page is open appears without a reload, and is acknowledged from the keyboard.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_appears_live_on_the_today_page_and_is_acknowledged_in_the_browser() {
    use std::io::{BufRead, BufReader};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = dir.join("node_modules/playwright-core").is_dir()
        && std::path::Path::new(&chromium).exists();
    if !ready {
        assert!(
            std::env::var_os("RAPPORT_REQUIRE_BROWSER").is_none(),
            "browser test needs {chromium} and `npm install` in {}",
            dir.display()
        );
        eprintln!("SKIPPED: browser test needs {chromium} and npm install");
        return;
    }
    let app = spawn_app().await;
    // A living fixture patient on the coordinator's panel.
    let patient = tokio::task::block_in_place(|| {
        app.add_user("live@test.example", "coordinator", None, None);
        let id = app
            .patient_ids()
            .into_iter()
            .find(|id| {
                let p = app
                    .store
                    .read(&rapport_store::ResourceKey::new("Patient", id.clone()))
                    .unwrap()
                    .unwrap();
                !p.content.contains("deceased")
            })
            .unwrap();
        app.assign("live@test.example", &id);
        id
    });
    let base = app.url("");
    let mut child = std::process::Command::new("node")
        .current_dir(&dir)
        .args([
            "today.mjs",
            &base,
            "live@test.example",
            crate::helpers::PASSWORD,
            "Potassium 7.1 mmol/L (flagged HH)",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    // Once the page is open, the lab result arrives.
    tokio::task::block_in_place(|| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push(line.clone());
            if line == "READY" {
                break;
            }
        }
        let now = app.state.clock.now_ms();
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {
                "resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}], "text": "Potassium"},
                "subject": {"reference": format!("Patient/{patient}")},
                "issued": chrono::DateTime::from_timestamp_millis(now - 600_000).unwrap().to_rfc3339(),
                "valueQuantity": {"value": 7.1, "unit": "mmol/L"},
                "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "HH"}]}],
            },
            "request": {"method": "POST", "url": "Observation"},
        }]});
        let unit = rapport_ingest::Unit {
            name: "lab feed".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(bundle),
        };
        let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        seen.extend(lines.map_while(Result::ok));
    });
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let out = seen.join("\n");
    assert!(status.success(), "{out}\n{stderr}");
    assert!(out.contains("alert acknowledged"), "{out}");
}
