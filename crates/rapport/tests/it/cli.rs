//! The `rapport` binary's commands, run as a user would.

use std::process::Command;

use rapport_store::testing::fresh_database_url;

pub(crate) fn rapport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rapport"))
}

pub(crate) fn url_string(url: &rapport_store::DatabaseUrl) -> String {
    match url {
        rapport_store::DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        rapport_store::DatabaseUrl::Postgres(u) => u.clone(),
    }
}

#[test]
fn import_then_stats_reports_the_fixture_counts_and_names_the_bad_entry() {
    let (url, _dir) = fresh_database_url().unwrap();
    let url = url_string(&url);
    let out = rapport()
        .args(["import", "--database-url", &url])
        .arg(crate::helpers::fixtures_dir().join("fhir"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One entry of the fixtures is malformed: the exit code says so, the rest is imported.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ObservationBundle_batch-response_bom.json: Bundle.entry[1]"),
        "{stderr}"
    );
    assert!(stdout.starts_with("Imported 22 files: "), "{stdout}");
    assert!(stdout.contains("resources/s"), "{stdout}");

    let out = rapport()
        .args(["stats", "--json", "--database-url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["Patient"], 18, "{counts}");
    assert_eq!(counts["Observation"], 1879, "{counts}");
    assert_eq!(counts["Practitioner"], 119, "{counts}");

    // Importing again changes nothing.
    let out = rapport()
        .args(["import", "--database-url", &url])
        .arg(crate::helpers::fixtures_dir().join("fhir"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" 0 created, 0 updated"), "{stdout}");
}

#[test]
fn a_malformed_database_url_refuses_to_start() {
    let out = rapport()
        .args(["stats", "--json", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid database URL"), "{stderr}");
}

#[test]
fn the_demo_generates_a_population_through_the_importer() {
    let (url, _dir) = fresh_database_url().unwrap();
    let url = url_string(&url);
    let out = rapport()
        .args([
            "demo",
            "--patients",
            "30",
            "--seed",
            "7",
            "--no-serve",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rapport()
        .args(["stats", "--json", "--database-url", &url])
        .output()
        .unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["Patient"], 30, "{counts}");
    for ty in [
        "Practitioner",
        "Organization",
        "Encounter",
        "Condition",
        "MedicationRequest",
        "Appointment",
        "Observation",
        "Immunization",
        "DocumentReference",
    ] {
        assert!(counts[ty].as_u64().unwrap_or(0) > 0, "no {ty} in {counts}");
    }
}
