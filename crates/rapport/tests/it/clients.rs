//! The FHIR API driven by real FHIR clients (issue 4): fhirpy (Python,
//! tests/clients/fhirpy_check.py) and fhir-kit-client (JavaScript,
//! tests/clients/fhir_kit_client_check.mjs). Each script creates a patient, repeats it as a
//! conditional create, searches by identifier, posts a transaction bundle of its own and a Synthea
//! fixture bundle, pages through Observations, reads history and updates with a stale ETag.
//! Needs `tests/clients/.venv` (fhirpy) and `npm ci` in tests/clients; `.ci/run` provides both and
//! sets RAPPORT_REQUIRE_CLIENTS=1 so that a missing client fails instead of skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{fixtures_dir, spawn_app, TestApp};

const COORDINATOR: &str = "coordinator@test.example";

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// Is the client installed? If not, skip with a message, or fail under RAPPORT_REQUIRE_CLIENTS.
fn installed(client: &str, needed: &Path, install: &str) -> bool {
    if needed.exists() {
        return true;
    }
    let message = format!(
        "the {client} client test needs {} ({install}; .ci/run does it)",
        needed.display()
    );
    assert!(
        std::env::var_os("RAPPORT_REQUIRE_CLIENTS").is_none(),
        "{message}"
    );
    eprintln!("SKIPPED: {message}");
    false
}

fn token(app: &TestApp) -> String {
    tokio::task::block_in_place(|| {
        let new = rapport_auth::NewToken {
            email: COORDINATOR.into(),
            scopes: "user/*.*".into(),
            days: 1,
            label: "client tests".into(),
        };
        rapport_auth::create_token(
            app.store.as_ref(),
            &rapport_access::audit::Actor::command_line("test"),
            "cli",
            &new,
            app.state.clock.now_ms(),
        )
        .unwrap()
        .1
    })
}

/// The smallest fixture that is a transaction Bundle with a Patient (with the shared fixtures,
/// Luigi Wiegand's Synthea record: 61 entries, 31 Observations). spawn_app has imported it
/// already, so posting it again is a replay.
fn fixture_transaction() -> PathBuf {
    let mut files = rapport_ingest::files::collect_files(&[fixtures_dir().join("fhir")]).unwrap();
    files.sort_by_key(|p| {
        (
            std::fs::metadata(p).map_or(u64::MAX, |m| m.len()),
            p.clone(),
        )
    });
    files
        .into_iter()
        .find(|p| {
            let Ok(text) = std::fs::read(p) else {
                return false;
            };
            let Ok(bundle) = serde_json::from_slice::<Value>(&text) else {
                return false;
            };
            bundle["resourceType"] == "Bundle"
                && bundle["type"] == "transaction"
                && bundle["entry"].as_array().is_some_and(|entries| {
                    entries
                        .iter()
                        .any(|e| e["resource"]["resourceType"] == "Patient")
                })
        })
        .expect("a fixture transaction Bundle with a Patient")
}

/// Run a client script against a fresh app: `program args… BASE TOKEN FIXTURE`, in tests/clients.
async fn run_client(program: PathBuf, script: &str) {
    let app = spawn_app().await;
    let token = token(&app);
    let base = app.url("/fhir");
    let fixture = fixture_transaction();
    let dir = clients_dir();
    let script = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .current_dir(&dir)
            .arg(&script)
            .arg(&base)
            .arg(&token)
            .arg(&fixture)
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the client check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("every check passed"), "{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fhirpy_creates_searches_posts_a_transaction_pages_reads_history_and_gets_412_on_a_stale_etag(
) {
    let python = clients_dir().join(".venv/bin/python");
    let install = "python3 -m venv tests/clients/.venv && \
                   tests/clients/.venv/bin/pip install -r tests/clients/requirements.txt";
    if installed("fhirpy", &python, install) {
        run_client(python, "fhirpy_check.py").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fhir_kit_client_creates_searches_posts_a_transaction_pages_reads_history_and_gets_412_on_a_stale_etag(
) {
    let module = clients_dir().join("node_modules/fhir-kit-client");
    if installed("fhir-kit-client", &module, "cd tests/clients && npm ci") {
        run_client("node".into(), "fhir_kit_client_check.mjs").await;
    }
}
