//! `rapport bench …`: the benchmarks behind BENCHMARKS.md. Each run uses a fresh database: a
//! temporary SQLite file, or a new database on the PostgreSQL server given with `--postgres`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use rapport_ingest::{files, import_units, Payload, Unit};
use rapport_store::testing::fresh_database_url_on;
use rapport_store::Store;
use serde_json::Value;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Import throughput against the floor (the same resources written as plain rows with no
    /// index). Inputs are read into memory first; parsing is timed in both.
    Import {
        /// PostgreSQL server to create scratch databases on (default: SQLite in a temp dir).
        #[arg(long)]
        postgres: Option<String>,
        /// Number of runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Use N generated demo patients instead of files.
        #[arg(long)]
        demo_patients: Option<usize>,
        /// Files or directories to import.
        paths: Vec<PathBuf>,
    },
    /// What authorisation and the audit write add to a patient page: each step alone, over
    /// many repetitions, as a clinician on the patient's care team.
    Access {
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 500)]
        requests: usize,
        /// Files or directories to import first.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The FHIR API under load: `wrk -t2 -c8` (Debian's `wrk`) against the server loaded with
    /// the files (and `--demo-patients N` generated ones): read by id, a typical clinical search,
    /// `Patient/$everything` of the largest patient; then transaction bundles posted by 4
    /// concurrent clients. Requests carry a `user/*.*` token of a coordinator on every patient's
    /// care team, so each is authorised and audited as in use.
    Api {
        #[arg(long)]
        postgres: Option<String>,
        /// Generated demo patients to add to the files.
        #[arg(long, default_value_t = 0)]
        demo_patients: usize,
        /// Seconds per workload.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// The FHIR base URL of another server (e.g. helios-hfs) to load with the same data and
        /// run the same workloads against, in the same run, for the ratios.
        #[arg(long)]
        against: Option<String>,
        /// Files or directories to import first.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// HL7 v2 over MLLP end to end: generated ADT and ORU messages sent by several connections,
    /// each waiting for its durable acknowledgement; messages per second.
    Mllp {
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 4000)]
        messages: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Commit every message alone (one fsync each) instead of in groups.
        #[arg(long)]
        no_group: bool,
    },
    /// Alerts at scale on a generated demo population: the full sweep, the incremental
    /// evaluation after one incoming HL7 message, and the Today page of a coordinator with a
    /// panel of patients and their open alerts (topped up to `--alerts`).
    Alerts {
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 100_000)]
        patients: usize,
        /// Patients on the coordinator's panel.
        #[arg(long, default_value_t = 2_000)]
        panel: usize,
        /// Open alerts of the panel (synthetic ones are added to reach it).
        #[arg(long, default_value_t = 10_000)]
        alerts: usize,
        #[arg(long, default_value_t = 100)]
        requests: usize,
    },
    /// Server time of the Patient 360 page of the patient with the most resources.
    Page {
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 100)]
        requests: usize,
        /// Files or directories to import first.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Import {
            postgres,
            runs,
            demo_patients,
            paths,
        } => bench_import(postgres.as_deref(), runs, demo_patients, &paths),
        BenchCommand::Mllp {
            postgres,
            messages,
            connections,
            no_group,
        } => bench_mllp(postgres.as_deref(), messages, connections, no_group),
        BenchCommand::Alerts {
            postgres,
            patients,
            panel,
            alerts,
            requests,
        } => bench_alerts(postgres.as_deref(), patients, panel, alerts, requests),
        BenchCommand::Page {
            postgres,
            requests,
            paths,
        } => bench_page(postgres.as_deref(), requests, &paths),
        BenchCommand::Access {
            postgres,
            requests,
            paths,
        } => bench_access(postgres.as_deref(), requests, &paths),
        BenchCommand::Api {
            postgres,
            demo_patients,
            seconds,
            against,
            paths,
        } => bench_api(
            postgres.as_deref(),
            demo_patients,
            seconds,
            against.as_deref(),
            &paths,
        ),
    }
}

/// A store on a fresh scratch database; dropping it removes the database.
struct Scratch {
    store: Option<Box<dyn Store>>,
    url: rapport_store::DatabaseUrl,
    server: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("open until dropped")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Some(server) = &self.server {
            if let Err(e) = rapport_store::testing::drop_scratch_database(server, &self.url) {
                eprintln!("could not drop the scratch database: {e}");
            }
        }
    }
}

fn fresh_store(postgres: Option<&str>) -> anyhow::Result<Scratch> {
    let (url, dir) = fresh_database_url_on(postgres)?;
    Ok(Scratch {
        store: Some(rapport_store::open(&url)?),
        url,
        server: postgres.map(str::to_owned),
        _dir: dir,
    })
}

fn load_inputs(
    demo_patients: Option<usize>,
    paths: &[PathBuf],
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if let Some(patients) = demo_patients {
        let config = rapport_synth::DemoConfig {
            patients,
            seed: 1,
            today: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("a valid date"),
        };
        return Ok(rapport_synth::generate(&config)
            .map(|b| {
                (
                    b.name,
                    serde_json::to_vec(&b.bundle).expect("JSON serialises"),
                )
            })
            .collect());
    }
    files::collect_files(paths)?
        .into_iter()
        .map(|p| {
            Ok((
                p.display().to_string(),
                std::fs::read(&p).with_context(|| p.display().to_string())?,
            ))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_import(
    postgres: Option<&str>,
    runs: usize,
    demo_patients: Option<usize>,
    paths: &[PathBuf],
) -> anyhow::Result<()> {
    let inputs = load_inputs(demo_patients, paths)?;
    let mut floor_secs = Vec::new();
    let mut import_secs = Vec::new();
    let mut resources = 0;
    for run in 0..runs.max(1) {
        // Floor: parse each input and write its resources as plain rows, one transaction per
        // input, into a table with no index. Its durability is the importer's: commits that do
        // not wait for the disk, then one sync before the time is taken. (The floor used to
        // sync every input's commit, which the importer does not do: that made the floor slower
        // than the least the import could cost.)
        let scratch = fresh_store(postgres)?;
        let store = scratch.store();
        let started = Instant::now();
        let mut floor_count = 0;
        for (_, bytes) in &inputs {
            let doc: Value = serde_json::from_slice(rapport_fhir::bundle::strip_bom(bytes))?;
            let mut rows = Vec::new();
            let resources: Vec<&Value> = match doc.get("entry").and_then(Value::as_array) {
                Some(entries) => entries.iter().filter_map(|e| e.get("resource")).collect(),
                None => vec![&doc],
            };
            for r in resources {
                let ty = r
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                rows.push((ty.to_owned(), id.to_owned(), serde_json::to_string(r)?));
            }
            floor_count += rows.len();
            store.write_unindexed_rows(&rows)?;
        }
        store.sync()?;
        floor_secs.push(started.elapsed().as_secs_f64());
        store.drop_unindexed_rows()?;
        drop(scratch);

        let scratch = fresh_store(postgres)?;
        let store = scratch.store();
        let units = inputs.iter().map(|(name, bytes)| Unit {
            name: name.clone(),
            kind: "file",
            payload: Payload::Json(bytes.clone()),
        });
        let started = Instant::now();
        let summary = import_units(store, units, &crate::now_ms, &mut |_| {});
        import_secs.push(started.elapsed().as_secs_f64());
        resources = summary.resources();
        eprintln!(
            "run {}: floor {floor_count} rows in {:.3} s; import {} resources in {:.3} s ({} errors)",
            run + 1,
            floor_secs.last().unwrap_or(&0.0),
            resources,
            import_secs.last().unwrap_or(&0.0),
            summary.errors.len()
        );
    }
    let (floor, import) = (median(floor_secs), median(import_secs));
    println!(
        "backend={} inputs={} resources={resources} runs={runs}\nfloor (plain rows, no index): {:.3} s = {:.0} resources/s\nimport (versioned, indexed):   {:.3} s = {:.0} resources/s\nimport / floor time: {:.2}x",
        if postgres.is_some() { "postgres" } else { "sqlite" },
        inputs.len(),
        floor,
        resources as f64 / floor,
        import,
        resources as f64 / import,
        import / floor
    );
    Ok(())
}

fn bench_page(postgres: Option<&str>, requests: usize, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut scratch = fresh_store(postgres)?;
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::from(scratch.store.take().expect("a fresh store"));
    let files = files::collect_files(paths)?;
    let units = files
        .iter()
        .map(|p| files::read_unit(p))
        .collect::<Result<Vec<_>, _>>()?;
    import_units(store.as_ref(), units, &crate::now_ms, &mut |_| {});
    // The patient with the most resources.
    let page = store.search_patients(&rapport_store::PatientSearch {
        limit: 100_000,
        ..Default::default()
    })?;
    let (patient, size) = page
        .patients
        .iter()
        .map(|p| Ok((p.key.id.clone(), store.patient_record(&p.key.id)?.len())))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .context("no patients imported")?;
    // The page is served as it is in use: to a signed-in clinician on the patient's care team,
    // so every request pays for the session lookup, the authorisation and the audit record.
    let actor = rapport_access::audit::Actor::command_line("bench");
    let password = rapport_access::secret::new_secret();
    let account = rapport_auth::NewAccount {
        email: "bench@rapport.example".into(),
        name: "Bench Clinician".into(),
        roles: "clinician".into(),
        patient: None,
        practitioner: None,
        password: password.clone(),
    };
    rapport_auth::create_user(store.as_ref(), &actor, "cli", &account, crate::now_ms())?;
    rapport_auth::assign(
        store.as_ref(),
        &actor,
        "cli",
        &account.email,
        &patient,
        true,
        crate::now_ms(),
    )?;
    let lockout = rapport_access::session::LockoutPolicy::default();
    let cookie = match rapport_auth::sign_in(
        store.as_ref(),
        &account.email,
        &password,
        "bench",
        &lockout,
        crate::now_ms(),
    )? {
        rapport_auth::SignIn::Success { session_secret, .. } => {
            format!("rapport_session={session_secret}")
        }
        other => anyhow::bail!("the bench user could not sign in: {other:?}"),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = crate::Application::build("127.0.0.1:0".parse()?, store).await?;
        let addr = app.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/patients/{patient}");
        for _ in 0..5 {
            let body = client.get(&url).header("cookie", &cookie).send().await?.error_for_status()?.bytes().await?;
            anyhow::ensure!(body.len() > 10_000, "the page was not served (signed out?)");
        }
        let mut times: Vec<Duration> = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let body = client.get(&url).header("cookie", &cookie).send().await?.error_for_status()?.bytes().await?;
            times.push(started.elapsed());
            bytes = body.len();
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "patient 360 page (signed in, authorised, audited): patient {patient} with {size} resources, {bytes} bytes of HTML, {requests} requests over loopback\nmedian {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        let _ = tx.send(());
        server.await??;
        anyhow::Ok(())
    })
}

/// Median and 99th percentile of `times`, in milliseconds.
fn median_p99(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    (pct(0.5).as_secs_f64() * 1e3, pct(0.99).as_secs_f64() * 1e3)
}

fn bench_access(postgres: Option<&str>, requests: usize, paths: &[PathBuf]) -> anyhow::Result<()> {
    use rapport_access::policy::{Action, Decision};
    let scratch = fresh_store(postgres)?;
    let store = scratch.store();
    let units = files::collect_files(paths)?
        .iter()
        .map(|p| files::read_unit(p))
        .collect::<Result<Vec<_>, _>>()?;
    import_units(store, units, &crate::now_ms, &mut |_| {});
    let patient = store
        .search_patients(&rapport_store::PatientSearch {
            limit: 1,
            ..Default::default()
        })?
        .patients
        .first()
        .map(|p| p.key.id.clone())
        .context("no patients imported")?;
    let actor = rapport_access::audit::Actor::command_line("bench");
    let account = rapport_auth::NewAccount {
        email: "bench@rapport.example".into(),
        name: "Bench Clinician".into(),
        roles: "clinician".into(),
        patient: None,
        practitioner: None,
        password: rapport_access::secret::new_secret(),
    };
    rapport_auth::create_user(store, &actor, "cli", &account, crate::now_ms())?;
    rapport_auth::assign(
        store,
        &actor,
        "cli",
        &account.email,
        &patient,
        true,
        crate::now_ms(),
    )?;
    let user = rapport_auth::find_user(store, &account.email)?;
    let principal = rapport_auth::principal_of(&user, rapport_access::policy::Credential::Session)?;
    let (mut decide, mut audit, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..requests.max(1) {
        let now = crate::now_ms();
        let started = Instant::now();
        let decision = rapport_auth::authorize(store, &principal, &patient, Action::Read, now)?;
        let decided = started.elapsed();
        anyhow::ensure!(
            matches!(decision, Decision::Allow(_)),
            "the bench clinician must be allowed"
        );
        let record = rapport_auth::access_record(
            &principal,
            "127.0.0.1",
            decision,
            Action::Read,
            Some(&patient),
            vec![format!("Patient/{patient}/*")],
            now,
        );
        let started_audit = Instant::now();
        rapport_auth::record_access(store, &record, None)?;
        audit.push(started_audit.elapsed());
        decide.push(decided);
        both.push(started.elapsed());
    }
    let (d50, d99) = median_p99(decide);
    let (a50, a99) = median_p99(audit);
    let (b50, b99) = median_p99(both);
    println!(
        "backend={} requests={requests} (clinician on the patient's care team, durable audit commit)\nauthorize:           median {d50:.3} ms, p99 {d99:.3} ms\naudit record:        median {a50:.3} ms, p99 {a99:.3} ms\nauthorize + audit:   median {b50:.3} ms, p99 {b99:.3} ms",
        if postgres.is_some() { "postgres" } else { "sqlite" }
    );
    match rapport_auth::verify_audit(store)? {
        Ok(n) => println!("audit chain intact after the run: {n} records"),
        Err(b) => anyhow::bail!("{b}"),
    }
    Ok(())
}

/// What `wrk --latency` reported.
struct WrkFigures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn parse_wrk(out: &str) -> Option<WrkFigures> {
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            return x.parse::<f64>().ok().map(|x| x / 1000.0);
        }
        if let Some(x) = v.strip_suffix("ms") {
            return x.parse().ok();
        }
        v.strip_suffix('s')?.parse::<f64>().ok().map(|x| x * 1000.0)
    };
    let mut f = WrkFigures {
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        non_2xx: 0,
    };
    for line in out.lines().map(str::trim) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["Requests/sec:", v] => f.requests_per_sec = v.parse().ok()?,
            ["50%", v] => f.p50_ms = ms(v)?,
            ["99%", v] => f.p99_ms = ms(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => f.non_2xx = n.parse().ok()?,
            _ => {}
        }
    }
    (f.requests_per_sec > 0.0).then_some(f)
}

fn bench_api(
    postgres: Option<&str>,
    demo_patients: usize,
    seconds: u32,
    against: Option<&str>,
    paths: &[PathBuf],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok(),
        "bench api drives the server with wrk: apt-get install wrk"
    );
    let mut scratch = fresh_store(postgres)?;
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::from(scratch.store.take().expect("a fresh store"));
    let inputs = load_inputs(None, paths)?;
    let mut units: Vec<Unit> = inputs
        .into_iter()
        .map(|(name, bytes)| Unit {
            name,
            kind: "file",
            payload: Payload::Json(bytes),
        })
        .collect();
    if demo_patients > 0 {
        units.extend(
            load_inputs(Some(demo_patients), &[])?
                .into_iter()
                .map(|(name, bytes)| Unit {
                    name,
                    kind: "demo",
                    payload: Payload::Json(bytes),
                }),
        );
    }
    let other_inputs: Vec<Value> = match against {
        Some(_) => units
            .iter()
            .filter_map(|u| match &u.payload {
                Payload::Json(b) => serde_json::from_slice(rapport_fhir::bundle::strip_bom(b)).ok(),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    let summary = import_units(store.as_ref(), units, &crate::now_ms, &mut |_| {});
    eprintln!("loaded {} resources", summary.resources());
    let actor = rapport_access::audit::Actor::command_line("bench");
    let account = rapport_auth::NewAccount {
        email: "api-bench@rapport.example".into(),
        name: "API Bench".into(),
        roles: "coordinator".into(),
        patient: None,
        practitioner: None,
        password: rapport_access::secret::new_secret(),
    };
    rapport_auth::create_user(store.as_ref(), &actor, "cli", &account, crate::now_ms())?;
    let page = store.search_patients(&rapport_store::PatientSearch {
        limit: 1_000_000,
        ..Default::default()
    })?;
    let mut largest = (String::new(), 0usize);
    for p in &page.patients {
        rapport_auth::assign(
            store.as_ref(),
            &actor,
            "cli",
            &account.email,
            &p.key.id,
            true,
            crate::now_ms(),
        )?;
        let n = store.patient_record(&p.key.id)?.len();
        if n > largest.1 {
            largest = (p.key.id.clone(), n);
        }
    }
    let (_, token) = rapport_auth::create_token(
        store.as_ref(),
        &actor,
        "cli",
        &rapport_auth::NewToken {
            email: account.email.clone(),
            scopes: "user/*.*".into(),
            days: 1,
            label: "bench".into(),
        },
        crate::now_ms(),
    )?;
    // The typical clinical search: the largest patient's most frequent Observation code, the
    // last two years of it, newest first.
    let record = store.patient_record(&largest.0)?;
    let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
    for r in record
        .iter()
        .filter(|r| r.key.resource_type == "Observation")
    {
        let v: Value = serde_json::from_str(&r.content)?;
        if let Some(c) = v.pointer("/code/coding/0/code").and_then(Value::as_str) {
            *codes.entry(c.to_owned()).or_default() += 1;
        }
    }
    let code = codes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| c.clone())
        .context("the largest patient has no coded Observation")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let store_for_app = store.clone();
    runtime.block_on(async move {
        let app = crate::Application::build("127.0.0.1:0".parse()?, store_for_app).await?;
        let addr = app.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let base = format!("http://{addr}/fhir");
        let largest_identifier = store
            .read(&rapport_store::ResourceKey::new("Patient", largest.0.clone()))?
            .and_then(|p| serde_json::from_str::<Value>(&p.content).ok())
            .and_then(|v| {
                let i = &v["identifier"][0];
                Some(format!("{}|{}", i["system"].as_str()?, i["value"].as_str()?))
            })
            .context("the largest patient has no identifier")?;
        println!(
            "backend={} resources={} patients={} largest patient {} ({} resources); wrk -t2 -c8 -d{seconds}s --latency",
            store.backend(),
            summary.resources(),
            page.patients.len(),
            largest.0,
            largest.1
        );
        let ours = run_api_workloads(&base, Some(&token), &largest.0, &code, seconds).await?;
        if let Some(other) = against {
            let other = other.trim_end_matches('/').to_owned();
            // Directory bundles (practitioners, organisations) first: the patients' bundles
            // refer to them by conditional reference, and not every server defers those.
            let mut other_inputs = other_inputs;
            other_inputs.sort_by_key(|b| {
                b["entry"].as_array().is_some_and(|es| {
                    es.iter().any(|e| e["resource"]["resourceType"] == "Patient")
                })
            });
            eprintln!("loading the same {} inputs into {other}", other_inputs.len());
            let client = reqwest::Client::new();
            let started = Instant::now();
            let mut failed = 0;
            for doc in &other_inputs {
                let ok = client
                    .post(&other)
                    .header("content-type", "application/fhir+json")
                    .body(doc.to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failed += 1;
                }
            }
            eprintln!(
                "loaded in {:.1} s ({failed} of {} inputs refused)",
                started.elapsed().as_secs_f64(),
                other_inputs.len()
            );
            let found: Value = client
                .get(format!("{other}/Patient?identifier={largest_identifier}"))
                .send()
                .await?
                .json()
                .await?;
            let their_id = found["entry"][0]["resource"]["id"]
                .as_str()
                .context("the other server does not find the largest patient by identifier")?
                .to_owned();
            println!("\nThe same workloads against {other} (largest patient {their_id}):");
            let theirs = run_api_workloads(&other, None, &their_id, &code, seconds).await?;
            println!("\n| workload | Rapport | other | ratio |\n|---|---|---|---|");
            for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
                match (a, b) {
                    (Some(a), Some(b)) => println!("| {name} | {a:.0}/s | {b:.0}/s | {:.2}x |", a / b),
                    (Some(a), None) => println!("| {name} | {a:.0}/s | failed | |"),
                    _ => println!("| {name} | failed | | |"),
                }
            }
        }
        let _ = tx.send(());
        server.await??;
        anyhow::Ok(())
    })
}

/// The API workloads against one FHIR base: read by id, the typical search and `$everything` under
/// wrk, then transaction bundles from 4 clients. Prints a table; returns each workload's rate
/// (requests/s, resources/s for the bundles), `None` for one the server failed.
async fn run_api_workloads(
    base: &str,
    token: Option<&str>,
    patient: &str,
    code: &str,
    seconds: u32,
) -> anyhow::Result<Vec<(&'static str, Option<f64>)>> {
    let workloads = [
        ("read by id", format!("{base}/Patient/{patient}")),
        (
            "search",
            format!(
                "{base}/Observation?patient={patient}&code={code}&date=ge2015-01-01&_sort=-date"
            ),
        ),
        (
            "$everything",
            format!("{base}/Patient/{patient}/$everything"),
        ),
    ];
    let mut rates = Vec::new();
    println!("| workload | requests/s | p50 | p99 |\n|---|---|---|---|");
    for (name, url) in &workloads {
        let url = url.clone();
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let out = tokio::task::spawn_blocking(move || {
            let mut wrk = std::process::Command::new("wrk");
            wrk.args(["-t2", "-c8", &format!("-d{seconds}s"), "--latency"]);
            if let Some(auth) = auth {
                wrk.args(["-H", &auth]);
            }
            wrk.arg(url).output()
        })
        .await??;
        let text = String::from_utf8_lossy(&out.stdout);
        match parse_wrk(&text) {
            Some(f) if f.non_2xx == 0 => {
                println!(
                    "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
                    f.requests_per_sec, f.p50_ms, f.p99_ms
                );
                rates.push((*name, Some(f.requests_per_sec)));
            }
            Some(f) => {
                println!("| {name} | {} answers were not 2xx | | |", f.non_2xx);
                rates.push((*name, None));
            }
            None => {
                println!("| {name} | wrk failed | | |");
                rates.push((*name, None));
            }
        }
    }
    // Transaction bundles: a generated population posted by 4 clients at once, after its
    // directory (practitioners and organisations the households refer to).
    let (directory, bundles): (Vec<_>, Vec<_>) =
        rapport_synth::generate(&rapport_synth::DemoConfig {
            patients: 200,
            seed: 99,
            today: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("a valid date"),
        })
        .partition(|b| !b.name.starts_with("household-"));
    let client = reqwest::Client::new();
    let post = |bundle: String| {
        let mut r = client
            .post(base)
            .header("content-type", "application/fhir+json")
            .body(bundle);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    for d in directory {
        let mut bundle = d.bundle;
        if bundle["type"] != "transaction" {
            bundle["type"] = "batch".into();
        }
        post(bundle.to_string()).send().await?.error_for_status()?;
    }
    let bundles: Vec<Value> = bundles.into_iter().map(|b| b.bundle).collect();
    let resources: usize = bundles
        .iter()
        .map(|b| b["entry"].as_array().map_or(0, Vec::len))
        .sum();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bundles));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let queue = queue.clone();
        let (client, url, token) = (client.clone(), base.to_owned(), token.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(bundle) = queue.lock().await.pop() else {
                    return anyhow::Ok(());
                };
                let mut r = client
                    .post(&url)
                    .header("content-type", "application/fhir+json")
                    .body(bundle.to_string());
                if let Some(t) = &token {
                    r = r.bearer_auth(t);
                }
                r.send().await?.error_for_status()?;
            }
        }));
    }
    let mut failed = false;
    for t in tasks {
        failed |= t.await?.is_err();
    }
    let secs = started.elapsed().as_secs_f64();
    if failed {
        println!("| transaction bundles (4 clients) | failed | | |");
        rates.push(("transaction bundles", None));
    } else {
        println!(
            "| transaction bundles (4 clients) | {:.0} resources/s | {resources} resources in {secs:.2} s | |",
            resources as f64 / secs
        );
        rates.push(("transaction bundles", Some(resources as f64 / secs)));
    }
    Ok(rates)
}

/// A generated message: an ADT^A04 for even `n`, an ORU^R01 with two results for odd `n`, about
/// one of `n / 2` made-up patients.
fn generated_hl7(n: usize) -> Vec<u8> {
    let patient = 800_000 + n / 2;
    let stamp = format!(
        "2026010{}{:02}{:02}{:02}",
        1 + n % 9,
        n / 3600 % 24,
        n / 60 % 60,
        n % 60
    );
    let text = if n.is_multiple_of(2) {
        format!(
            "MSH|^~\\&|PAS|BENCH|RAPPORT|FAC|{stamp}||ADT^A04^ADT_A01|B{n:07}|P|2.5\rEVN|A04|{stamp}\rPID|1||{patient}^^^BENCH^MR||BENCH^PATIENT{n}||19700101|F\rPV1|1|O|CLINIC^^^FAC||||||||||||||||V{n:07}^^^BENCH^VN\r"
        )
    } else {
        format!(
            "MSH|^~\\&|LAB|BENCH|RAPPORT|FAC|{stamp}||ORU^R01^ORU_R01|B{n:07}|P|2.5.1\rPID|1||{patient}^^^BENCH^MR||BENCH^PATIENT{n}||19700101|F\rOBR|1||ACC{n:07}|GLU^Glucose^L|||{stamp}\rOBX|1|NM|2345-7^Glucose^LN||{}|mg/dL|70-100|N|||F\rOBX|2|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F\r",
            80 + n % 40
        )
    };
    text.into_bytes()
}

fn bench_mllp(
    postgres: Option<&str>,
    messages: usize,
    connections: usize,
    no_group: bool,
) -> anyhow::Result<()> {
    let mut scratch = fresh_store(postgres)?;
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::from(scratch.store.take().expect("a fresh store"));
    let runtime = tokio::runtime::Runtime::new()?;
    let backend = store.backend();
    runtime.block_on(async move {
        let mut feed = crate::MllpFeed::bind("127.0.0.1:0".parse()?, store.clone()).await?;
        if no_group {
            feed.group_max = 1;
        }
        let addr = feed.local_addr();
        tokio::spawn(feed.run_until(std::future::pending()));
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections.max(1) {
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut frames = rapport_mllp::Frames::default();
                let mut buf = vec![0u8; 8192];
                let mut accepted = 0usize;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= messages {
                        return anyhow::Ok(accepted);
                    }
                    stream.write_all(&rapport_mllp::frame(&generated_hl7(n))).await?;
                    let ack = loop {
                        if let Some(f) = frames.next_frame(1 << 20).map_err(|e| anyhow::anyhow!("{e}"))? {
                            break f;
                        }
                        let read = stream.read(&mut buf).await?;
                        anyhow::ensure!(read > 0, "the listener closed the connection");
                        frames.push(&buf[..read]);
                    };
                    if String::from_utf8_lossy(&ack).contains("\rMSA|AA|") {
                        accepted += 1;
                    }
                }
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            accepted += t.await??;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "backend={backend} connections={connections} grouped={} messages={messages} accepted (AA)={accepted}\n{:.0} messages/s ({secs:.2} s), each acknowledged after its durable commit",
            !no_group,
            messages as f64 / secs
        );
        anyhow::ensure!(accepted == messages, "{} messages were not accepted", messages - accepted);
        anyhow::Ok(())
    })
}

fn bench_alerts(
    postgres: Option<&str>,
    patients: usize,
    panel: usize,
    alerts: usize,
    requests: usize,
) -> anyhow::Result<()> {
    let mut scratch = fresh_store(postgres)?;
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::from(scratch.store.take().expect("a fresh store"));
    let backend = store.backend();
    let rules = rapport_alerts::Config::default();
    let started = Instant::now();
    let demo = rapport_synth::DemoConfig {
        patients,
        seed: 1,
        today: chrono::Utc::now().date_naive(),
    };
    let units = rapport_synth::generate(&demo).map(|b| Unit {
        name: b.name,
        kind: "demo",
        payload: Payload::Value(b.bundle),
    });
    let summary = import_units(store.as_ref(), units, &crate::now_ms, &mut |_| {});
    anyhow::ensure!(summary.errors.is_empty(), "the demo did not import cleanly");
    eprintln!(
        "imported {patients} demo patients ({} resources) in {:.0} s",
        summary.resources(),
        started.elapsed().as_secs_f64()
    );
    // The first evaluation of everyone (every patient was marked by the import).
    let started = Instant::now();
    let (n, first) = rapport_ingest::alerts::drain(store.as_ref(), &rules, &crate::now_ms)?;
    let first_secs = started.elapsed().as_secs_f64();
    // The scheduled sweep: everyone again, for the rules that depend on time alone.
    let started = Instant::now();
    let (swept, _) =
        rapport_ingest::alerts::sweep(store.as_ref(), &rules, &crate::now_ms, &mut |_| {})?;
    let sweep_secs = started.elapsed().as_secs_f64();
    // Incremental evaluation after one message: an ORU with a high result for a patient,
    // committed (not timed), then the evaluation the server runs right after the commit.
    let ids = store.patient_ids_after("", patients as u64)?;
    let step = (ids.len() / 500).max(1);
    let mut incremental = Vec::new();
    for (n, id) in ids.iter().step_by(step).take(500).enumerate() {
        let now = crate::now_ms();
        let when = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .format("%Y%m%d%H%M%S")
            .to_string();
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}], "text": "Potassium"},
                "subject": {"reference": format!("Patient/{id}")},
                "issued": rapport_fhir::date::format_instant(now),
                "valueQuantity": {"value": 6.1, "unit": "mmol/L"},
                "interpretation": [{"coding": [{"code": "H"}]}]},
            "request": {"method": "POST", "url": "Observation"}}]});
        let unit = Unit {
            name: format!("lab {when} {n}"),
            kind: "bench",
            payload: Payload::Value(bundle),
        };
        let report = rapport_ingest::apply_unit(store.as_ref(), &unit, now, false);
        anyhow::ensure!(report.errors.is_empty(), "{:?}", report.errors);
        let started = Instant::now();
        rapport_ingest::alerts::drain(store.as_ref(), &rules, &crate::now_ms)?;
        incremental.push(started.elapsed());
    }
    let (inc_median, inc_p99) = median_p99(incremental);
    // The coordinator's panel and its open alerts.
    let actor = rapport_access::audit::Actor::command_line("bench");
    let password = rapport_access::secret::new_secret();
    let account = rapport_auth::NewAccount {
        email: "coordinator@bench.example".into(),
        name: "Bench Coordinator".into(),
        roles: "coordinator".into(),
        patient: None,
        practitioner: None,
        password: password.clone(),
    };
    rapport_auth::create_user(store.as_ref(), &actor, "cli", &account, crate::now_ms())?;
    let step = (ids.len() / panel.max(1)).max(1);
    let panel_ids: Vec<String> = ids.iter().step_by(step).take(panel).cloned().collect();
    for id in &panel_ids {
        rapport_auth::assign(
            store.as_ref(),
            &actor,
            "cli",
            &account.email,
            id,
            true,
            crate::now_ms(),
        )?;
    }
    let now = crate::now_ms();
    let open = store.showing_alerts(&panel_ids, now, 1_000_000)?.len();
    let natural = open;
    // Synthetic alerts top the rules' own up to `alerts`; a patient's sync is given all of
    // them, since a sync resolves the open alerts it is not given.
    let extra = alerts.saturating_sub(open);
    let mut per_patient: std::collections::BTreeMap<
        &String,
        Vec<rapport_store::alerts::AlertCandidate>,
    > = std::collections::BTreeMap::new();
    for a in store.showing_alerts(&panel_ids, now, 1_000_000)? {
        let key = panel_ids
            .iter()
            .find(|p| **p == a.patient_key)
            .expect("a panel patient");
        per_patient.entry(key).or_default().push(a.candidate);
    }
    for k in 0..extra {
        let p = &panel_ids[k % panel_ids.len()];
        per_patient
            .entry(p)
            .or_default()
            .push(rapport_store::alerts::AlertCandidate {
                rule: rapport_alerts::RULES[k % rapport_alerts::RULES.len()]
                    .id
                    .to_owned(),
                cause: format!("bench:{k}"),
                severity: (k % 4) as i64,
                title: "Bench alert".into(),
                why: format!("synthetic alert {k} for the Today benchmark"),
                due_ms: Some(now + (k as i64 % 30 - 10) * 86_400_000),
                focus: None,
            });
    }
    store.write(rapport_store::Durability::Immediate, &mut |tx| {
        for (p, found) in &per_patient {
            tx.sync_alerts(p, found, now, None)?;
        }
        Ok(())
    })?;
    let open = store.showing_alerts(&panel_ids, now, 1_000_000)?.len();
    let lockout = rapport_access::session::LockoutPolicy::default();
    let cookie = match rapport_auth::sign_in(
        store.as_ref(),
        &account.email,
        &password,
        "bench",
        &lockout,
        crate::now_ms(),
    )? {
        rapport_auth::SignIn::Success { session_secret, .. } => {
            format!("rapport_session={session_secret}")
        }
        other => anyhow::bail!("the bench user could not sign in: {other:?}"),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (page_median, page_p99, bytes) = runtime.block_on(async move {
        // The page alone: no evaluator sweeping beside it (it would also resolve the synthetic
        // alerts, which no rule reports).
        let settings = rapport_web::Settings {
            alert_evaluation: false,
            ..rapport_web::Settings::default()
        };
        let app = crate::Application::build_with(
            "127.0.0.1:0".parse()?,
            rapport_web::AppState::new(store, settings),
        )
        .await?;
        let addr = app.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/today");
        for _ in 0..5 {
            let body = client
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            anyhow::ensure!(
                body.contains("id=\"today-list\""),
                "the Today page was not served (signed out?)"
            );
        }
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let body = client
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            times.push(started.elapsed());
            bytes = body.len();
        }
        let _ = tx.send(());
        server.await??;
        let (m, p) = median_p99(times);
        anyhow::Ok((m, p, bytes))
    })?;
    println!(
        "backend={backend} patients={patients} (first evaluation of {n}: {first_secs:.1} s, {} alerts raised)\nfull sweep: {swept} patients in {sweep_secs:.1} s ({:.0} patients/s)\nincremental evaluation after one message (500 patients): median {inc_median:.2} ms, p99 {inc_p99:.2} ms\nToday page: {} panel patients, {open} open alerts ({natural} from the rules, the rest synthetic), {requests} requests, {bytes} bytes: median {page_median:.1} ms, p99 {page_p99:.1} ms",
        first.raised,
        swept as f64 / sweep_secs,
        panel_ids.len(),
    );
    Ok(())
}
