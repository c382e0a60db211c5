//! The `rapport` command: parses the command line, sets up logging, and runs one command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rapport::config::{GlobalStoreArgs, ServeArgs, StoreArgs};
use rapport::{bench, import, open_store, shutdown_signal, Application};

/// mimalloc rather than the system allocator: an import builds and frees millions of small JSON
/// values and index rows, partly on the parsing thread and partly on the writer (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Rapport: an open-source patient relationship manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console and APIs over HTTP.
    Serve(ServeArgs),
    /// Import FHIR R4 data: JSON Bundles or resources, and NDJSON files, or directories of them.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Files or directories (searched recursively for .json, .ndjson and .jsonl).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Counts of current resources by type.
    Stats {
        #[command(flatten)]
        store: StoreArgs,
        /// Print a JSON object {"Patient": 12, …}.
        #[arg(long)]
        json: bool,
    },
    /// Generate a synthetic demo population into the store, then serve.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Number of patients.
        #[arg(long, default_value_t = 200)]
        patients: usize,
        /// Random seed: the same seed gives the same population.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Generate and import, then exit instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Accounts: add, reset passwords, put staff on care teams, grant caregivers access.
    User {
        #[command(flatten)]
        store: GlobalStoreArgs,
        #[command(subcommand)]
        command: rapport::accounts::UserCommand,
    },
    /// API tokens for integrations.
    Token {
        #[command(flatten)]
        store: GlobalStoreArgs,
        #[command(subcommand)]
        command: rapport::accounts::TokenCommand,
    },
    /// Third-party apps that people may authorise through SMART App Launch.
    Client {
        #[command(flatten)]
        store: GlobalStoreArgs,
        #[command(subcommand)]
        command: rapport::accounts::ClientCommand,
    },
    /// The audit trail: verify its hash chain, export it as FHIR AuditEvent.
    Audit {
        #[command(flatten)]
        store: GlobalStoreArgs,
        #[command(subcommand)]
        command: rapport::accounts::AuditCommand,
    },
    /// Care-team alerts: evaluate changed patients, sweep everyone, print the rule defaults.
    Alerts {
        #[command(flatten)]
        store: GlobalStoreArgs,
        /// Alert rule parameters (TOML over the defaults).
        #[arg(long, env = "RAPPORT_ALERT_RULES", global = true)]
        alert_rules: Option<PathBuf>,
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Benchmarks whose figures go into BENCHMARKS.md.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Evaluate the patients whose data changed since their last evaluation.
    Evaluate,
    /// Evaluate every patient (the scheduled sweep), resuming an unfinished one.
    Sweep,
    /// Print the built-in rule parameters (a starting point for --alert-rules).
    Defaults,
    /// List the rules.
    Rules,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAPPORT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            let store = open_store(&config)?;
            serve(&config, store)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { store, paths } => {
            let config = store_only(&store)?;
            let store = open_store(&config)?;
            let summary = import::import_paths(store.as_ref(), &paths)?;
            Ok(if summary.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Stats { store, json } => {
            let config = store_only(&store)?;
            let store = open_store(&config)?;
            let counts = store.counts_by_type()?;
            if json {
                println!("{}", serde_json::to_string(&counts)?);
            } else {
                for (ty, n) in &counts {
                    println!("{ty:<28} {n:>10}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            serve: args,
            patients,
            seed,
            no_serve,
        } => {
            let config = args.config()?;
            let store = open_store(&config)?;
            let demo = rapport_synth::DemoConfig {
                patients,
                seed,
                today: chrono::Utc::now().date_naive(),
            };
            let units = rapport_synth::generate(&demo).map(|b| rapport_ingest::Unit {
                name: b.name,
                kind: "demo",
                payload: rapport_ingest::Payload::Value(b.bundle),
            });
            let summary = import::import_generated(store.as_ref(), units, 0);
            if !summary.errors.is_empty() {
                anyhow::bail!(
                    "the demo data did not import cleanly ({} errors)",
                    summary.errors.len()
                );
            }
            let logins = rapport::accounts::demo_accounts(store.as_ref())?;
            println!("Demo sign-ins (at /login):");
            for l in &logins {
                println!(
                    "  {:<12} {:<36} password {}  sees {}",
                    l.role, l.email, l.password, l.sees
                );
            }
            if no_serve {
                return Ok(ExitCode::SUCCESS);
            }
            serve(&config, store)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            store,
            command: cmd,
        } => {
            let store = open_store(&store_only(&store.into())?)?;
            rapport::accounts::run_user(store.as_ref(), cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            store,
            command: cmd,
        } => {
            let store = open_store(&store_only(&store.into())?)?;
            rapport::accounts::run_token(store.as_ref(), cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client {
            store,
            command: cmd,
        } => {
            let store = open_store(&store_only(&store.into())?)?;
            rapport::accounts::run_client(store.as_ref(), cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            store,
            command: cmd,
        } => {
            let store = open_store(&store_only(&store.into())?)?;
            Ok(if rapport::accounts::run_audit(store.as_ref(), cmd)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Alerts {
            store,
            alert_rules,
            command: cmd,
        } => {
            let mut config = store_only(&store.into())?;
            config.alert_rules = alert_rules;
            run_alerts(&config, cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(cmd) => {
            bench::run(cmd)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_alerts(config: &rapport::Config, cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::Defaults => {
            print!("{}", rapport_alerts::config::DEFAULTS_TOML);
            return Ok(());
        }
        AlertsCommand::Rules => {
            for r in rapport_alerts::RULES {
                println!("{:<24} {}\n{:<24} {}", r.id, r.name, "", r.description);
            }
            return Ok(());
        }
        _ => {}
    }
    let (rules, _) = config.alert_rules()?;
    let store = open_store(config)?;
    let started = std::time::Instant::now();
    let (patients, s) = match cmd {
        AlertsCommand::Evaluate => {
            rapport_ingest::alerts::drain(store.as_ref(), &rules, &rapport::now_ms)?
        }
        _ => {
            let bar = indicatif::ProgressBar::new_spinner();
            let result =
                rapport_ingest::alerts::sweep(store.as_ref(), &rules, &rapport::now_ms, &mut |n| {
                    bar.set_message(format!("{n} patients evaluated"))
                });
            bar.finish_and_clear();
            result?
        }
    };
    println!(
        "{patients} patients evaluated in {:.1} s: {} alerts raised, {} reopened, {} resolved, {} updated",
        started.elapsed().as_secs_f64(),
        s.raised,
        s.reopened,
        s.resolved,
        s.refreshed
    );
    Ok(())
}

fn store_only(args: &StoreArgs) -> anyhow::Result<rapport::Config> {
    Ok(rapport::Config {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        mllp_listen: None,
        secure_cookies: false,
        public_url: None,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url()?,
        alert_rules: None,
    })
}

fn serve(
    config: &rapport::Config,
    store: std::sync::Arc<dyn rapport_store::Store>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // Bulk exports that were running when the server last stopped will not finish: say so.
    let interrupted = store
        .fail_running_exports(rapport::now_ms())
        .context("cannot mark interrupted exports")?;
    if interrupted > 0 {
        tracing::warn!(
            jobs = interrupted,
            "bulk export jobs were cut off by the last stop"
        );
    }
    let (alert_rules, alert_rules_file) = config.alert_rules()?;
    let settings = rapport_web::Settings {
        alert_rules: std::sync::Arc::new(alert_rules),
        alert_rules_file,
        secure_cookies: config.secure_cookies,
        public_url: config.public_url.clone(),
        export_dir: config.data_dir.join("exports"),
        ..rapport_web::Settings::default()
    };
    let listen = config.listen;
    let (config_mllp, feed_store) = (config.mllp_listen, store.clone());
    runtime.block_on(async move {
        let app =
            Application::build_with(listen, rapport_web::AppState::new(store, settings)).await?;
        println!("Rapport is serving on http://{}/", app.local_addr());
        let feed = match config_mllp {
            Some(addr) => {
                let feed = rapport::MllpFeed::bind(addr, feed_store).await?;
                println!("HL7 v2 (MLLP) on {}", feed.local_addr());
                Some(tokio::spawn(feed.run_until(shutdown_signal())))
            }
            None => None,
        };
        app.run_until(shutdown_signal()).await?;
        if let Some(feed) = feed {
            feed.abort();
        }
        Ok(())
    })
}
