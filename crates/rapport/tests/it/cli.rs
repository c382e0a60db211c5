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

/// Run the binary with `stdin`, returning (success, stdout, stderr).
fn run_with_stdin(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = rapport()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn accounts_tokens_and_the_audit_trail_are_managed_on_the_command_line() {
    let (url, _dir) = fresh_database_url().unwrap();
    let url = url_string(&url);
    let db = ["--database-url", url.as_str()];
    let fixture = crate::helpers::fixtures_dir().join("fhir/synthea-smart-r4");
    let out = rapport()
        .args(["import", "--database-url", &url])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The first admin: a weak password is refused with the reason, a good one accepted.
    let add = |email: &str, role: &str, extra: &[&str], password: &str| {
        let mut args = vec![
            "user",
            "add",
            "--email",
            email,
            "--name",
            "Sam Example",
            "--role",
            role,
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&db);
        run_with_stdin(&args, &format!("{password}\n"))
    };
    let (ok, _, err) = add("admin@example.org", "admin", &[], "password123");
    assert!(!ok && err.contains("at least 12 characters"), "{err}");
    let (ok, _, err) = add("admin@example.org", "admin", &[], "Password2024!!");
    assert!(!ok && err.contains("commonly used"), "{err}");
    let (ok, out, err) = add(
        "Admin@Example.org",
        "admin",
        &[],
        "correct horse battery staple",
    );
    assert!(ok, "{err}");
    assert!(out.contains("admin@example.org"), "{out}");
    let (ok, _, err) = add(
        "admin@example.org",
        "admin",
        &[],
        "correct horse battery staple",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = add(
        "x@example.org",
        "doctor",
        &[],
        "correct horse battery staple",
    );
    assert!(!ok && err.contains("not a role"), "{err}");
    let (ok, _, err) = add(
        "p@example.org",
        "patient",
        &[],
        "correct horse battery staple",
    );
    assert!(!ok && err.contains("--patient"), "{err}");
    // A patient account linked by identifier system|value (the Synthea MRN system).
    let (ok, out, err) = add(
        "p@example.org",
        "patient",
        &[
            "--patient",
            "https://github.com/synthetichealth/synthea|e27d88b0-c5e5-4042-ad49-184f6a900ee3",
        ],
        "correct horse battery staple",
    );
    assert!(ok, "{out}{err}");
    // Without --password-stdin, a password is generated and shown once.
    let out = rapport()
        .args([
            "user",
            "add",
            "--email",
            "nurse@example.org",
            "--name",
            "Nora Nurse",
            "--role",
            "clinician",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("password (shown once): "));
    let out = rapport()
        .args([
            "user",
            "assign",
            "--email",
            "nurse@example.org",
            "--patient",
            "https://github.com/synthetichealth/synthea|e27d88b0-c5e5-4042-ad49-184f6a900ee3",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rapport()
        .args([
            "user",
            "assign",
            "--email",
            "nurse@example.org",
            "--patient",
            "no-such-patient",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no patient matches"));

    let out = rapport()
        .args(["user", "assign", "--email", "nurse@example.org", "--all"])
        .args(db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the care team of 18 patients") || stdout.contains("patients"),
        "{stdout}"
    );

    // Tokens: created and printed once, listed, revoked by the token itself.
    let out = rapport()
        .args([
            "token",
            "create",
            "--email",
            "nurse@example.org",
            "--scopes",
            "user/*.read",
            "--days",
            "7",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("rpt_"), "{token}");
    let out = rapport()
        .args([
            "token",
            "create",
            "--email",
            "nurse@example.org",
            "--scopes",
            "everything",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a scope"));
    let out = rapport()
        .args([
            "token",
            "create",
            "--email",
            "nurse@example.org",
            "--scopes",
            "user/Foo.read",
        ])
        .args(db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a FHIR R4 resource type"));
    let out = rapport()
        .args(["token", "revoke", "--token", &token])
        .args(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = rapport()
        .args(["token", "list", "--email", "nurse@example.org"])
        .args(db)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("revoked"));

    // Everything above is in the audit trail, which verifies and exports as AuditEvent.
    let out = rapport()
        .args(["audit", "verify"])
        .args(db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("audit chain intact"),
        "{stdout}"
    );
    let out = rapport()
        .args(["audit", "export"])
        .args(db)
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .filter_map(|e| e["subtype"][0]["code"].as_str())
        .collect();
    for a in [
        "import",
        "user-create",
        "care-team-change",
        "token-create",
        "token-revoke",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(events.iter().all(|e| e["resourceType"] == "AuditEvent"));
}
