//! `rapport user …`, `rapport token …`, `rapport client …`, `rapport audit …` and the demo's
//! accounts. The work is
//! done by `rapport-auth`; this only reads arguments and prints results. Changes made here are
//! audited as the command line (`cli:user add`…), since no signed-in user is behind them.

use std::io::{BufRead, Write};

use anyhow::Context;
use rapport_access::audit::{to_audit_event, Actor};
use rapport_auth::NewAccount;
use rapport_store::{PatientSearch, Store};

use crate::now_ms;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a strong password is generated and printed once.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, clinician, coordinator, patient or caregiver (several: comma-separated).
        #[arg(long)]
        role: String,
        /// For a patient account: its own record, as a resource id or an identifier system|value.
        #[arg(long)]
        patient: Option<String>,
        /// For staff: their Practitioner id; the patients whose CareTeams list it become theirs.
        #[arg(long)]
        practitioner: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends the account's sessions and lifts a lockout).
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Put a staff member on a patient's care team (panel), or take them off with --remove.
    Assign {
        #[arg(long)]
        email: String,
        /// A resource id or an identifier system|value.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        patient: Option<String>,
        /// Every patient in the store (a small practice where everyone sees everyone).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        remove: bool,
    },
    /// Let a caregiver see a patient's record (--write: also add to it), or --revoke it.
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        patient: String,
        #[arg(long, conflicts_with = "revoke")]
        write: bool,
        #[arg(long)]
        revoke: bool,
    },
    /// Disable an account (its sessions end at once).
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// List accounts.
    List,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an account and print it (shown only this once).
    Create {
        #[arg(long)]
        email: String,
        /// SMART scopes, e.g. "user/*.read" or "patient/*.read system/Observation.write".
        #[arg(long)]
        scopes: String,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token, by its id (from `rapport token list`) or by the token itself.
    Revoke {
        #[arg(long, required_unless_present = "token", conflicts_with = "token")]
        id: Option<i64>,
        /// The token (`rpt_…`), e.g. one found where it should not be.
        #[arg(long)]
        token: Option<String>,
    },
    /// List an account's tokens.
    List {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Register a third-party app for SMART App Launch; prints its client id (and, with
    /// --confidential, its secret, shown only this once).
    Add {
        /// The app's name, shown to people when it asks for access.
        #[arg(long)]
        name: String,
        /// Where codes may be sent (repeat for several): an https URL, or an http://localhost or
        /// http://127.0.0.1 URL for an app on the person's own computer. Requests must name one
        /// exactly.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A server-side app that can keep a secret (it then authenticates with it as well as
        /// PKCE); without it, a public client (PKCE only).
        #[arg(long)]
        confidential: bool,
    },
    /// List the registered apps.
    List,
    /// Disable an app: it can no longer be authorised, and its live tokens are revoked.
    Disable {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain; names the first broken record.
    Verify,
    /// Write the audit trail as FHIR AuditEvent resources, one per line (NDJSON).
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((rapport_access::secret::new_secret(), true))
    }
}

fn cli(what: &str) -> Actor {
    Actor::command_line(what)
}

pub fn run_user(store: &dyn Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            name,
            role,
            patient,
            practitioner,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            let account = NewAccount {
                email: email.clone(),
                name,
                roles: role,
                patient,
                practitioner,
                password: password.clone(),
            };
            let id = rapport_auth::create_user(store, &cli("user add"), "cli", &account, now_ms())?;
            println!("created account #{id} for {}", email.trim().to_lowercase());
            if generated {
                println!("password (shown once): {password}");
            }
        }
        UserCommand::ResetPassword {
            email,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            rapport_auth::reset_password(
                store,
                &cli("user reset-password"),
                "cli",
                &email,
                &password,
                now_ms(),
            )?;
            println!("password changed; the account's sessions have ended");
            if generated {
                println!("new password (shown once): {password}");
            }
        }
        UserCommand::Assign {
            email,
            patient,
            all,
            remove,
        } => {
            let patients = match (patient, all) {
                (Some(p), _) => vec![p],
                (None, true) => all_patient_ids(store)?,
                (None, false) => anyhow::bail!("give --patient P or --all"),
            };
            for patient in &patients {
                let id = rapport_auth::assign(
                    store,
                    &cli("user assign"),
                    "cli",
                    &email,
                    patient,
                    !remove,
                    now_ms(),
                )?;
                if patients.len() == 1 {
                    println!(
                        "{} {} the care team of Patient/{id}",
                        email.trim().to_lowercase(),
                        if remove { "removed from" } else { "is on" }
                    );
                }
            }
            if patients.len() != 1 {
                println!(
                    "{} {} the care team of {} patients",
                    email.trim().to_lowercase(),
                    if remove { "removed from" } else { "is on" },
                    patients.len()
                );
            }
        }
        UserCommand::Grant {
            email,
            patient,
            write,
            revoke,
        } => {
            let grant = if revoke { None } else { Some(write) };
            let id = rapport_auth::grant(
                store,
                &cli("user grant"),
                "cli",
                &email,
                &patient,
                grant,
                now_ms(),
            )?;
            println!(
                "{}: access to Patient/{id} {}",
                email.trim().to_lowercase(),
                match grant {
                    None => "revoked",
                    Some(true) => "granted (read and add)",
                    Some(false) => "granted (read)",
                }
            );
        }
        UserCommand::Disable { email } => {
            let user = rapport_auth::find_user(store, &email)?;
            rapport_auth::set_disabled(
                store,
                &cli("user disable"),
                "cli",
                user.user_id,
                true,
                now_ms(),
            )?;
            println!("{} disabled", user.email);
        }
        UserCommand::Enable { email } => {
            let user = rapport_auth::find_user(store, &email)?;
            rapport_auth::set_disabled(
                store,
                &cli("user enable"),
                "cli",
                user.user_id,
                false,
                now_ms(),
            )?;
            println!("{} enabled", user.email);
        }
        UserCommand::List => {
            for u in store.users()? {
                println!(
                    "#{:<4} {:<36} {:<24} {:<22} {}{}",
                    u.user_id,
                    u.email,
                    u.name,
                    u.roles,
                    u.patient_id
                        .map(|p| format!("Patient/{p} "))
                        .unwrap_or_default(),
                    if u.disabled { "disabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

pub fn run_token(store: &dyn Store, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            email,
            scopes,
            days,
            label,
        } => {
            let (id, token) = rapport_auth::create_token(
                store,
                &cli("token create"),
                "cli",
                &rapport_auth::NewToken {
                    email: email.clone(),
                    scopes,
                    days,
                    label,
                },
                now_ms(),
            )?;
            eprintln!(
                "token #{id} for {} (expires in {days} days); it is shown only this once:",
                email.trim().to_lowercase()
            );
            println!("{token}");
        }
        TokenCommand::Revoke { id, token } => {
            let id = match (id, token) {
                (Some(id), _) => id,
                (None, Some(t)) => store
                    .token_by_hash(&rapport_access::secret::hash_secret(t.trim()))?
                    .map(|t| t.token_id)
                    .context("no such token")?,
                (None, None) => anyhow::bail!("give --id or --token"),
            };
            if rapport_auth::revoke_token(store, &cli("token revoke"), "cli", id, now_ms())? {
                println!("token #{id} revoked");
            } else {
                anyhow::bail!("no live token #{id}");
            }
        }
        TokenCommand::List { email } => {
            let user = rapport_auth::find_user(store, &email)?;
            let now = now_ms();
            for t in store.tokens_of(user.user_id)? {
                let state = match t.revoked_ms {
                    Some(_) => "revoked",
                    None if t.expires_ms <= now => "expired",
                    None => "live",
                };
                let expires = chrono::DateTime::from_timestamp_millis(t.expires_ms)
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                println!(
                    "#{:<4} {:<8} expires {expires}  {:<40} {}",
                    t.token_id, state, t.scopes, t.label
                );
            }
        }
    }
    Ok(())
}

pub fn run_client(store: &dyn Store, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            redirect_uris,
            confidential,
        } => {
            let registered = rapport_auth::smart::register_client(
                store,
                &cli("client add"),
                "cli",
                &rapport_auth::smart::NewClient {
                    name,
                    redirect_uris,
                    confidential,
                },
                now_ms(),
            )?;
            println!("client_id {}", registered.client_id);
            if let Some(secret) = registered.secret {
                eprintln!("the client secret is shown only this once:");
                println!("client_secret {secret}");
            }
        }
        ClientCommand::List => {
            for c in store.oauth_clients()? {
                let registered = chrono::DateTime::from_timestamp_millis(c.created_ms)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                println!(
                    "{}  {:<12} {:<8} {registered}  {:<30} {}",
                    c.client_id,
                    if c.secret_hash.is_some() {
                        "confidential"
                    } else {
                        "public"
                    },
                    if c.disabled { "disabled" } else { "active" },
                    c.name,
                    c.redirect_uris.join(" ")
                );
            }
        }
        ClientCommand::Disable { id } => {
            let revoked = rapport_auth::smart::set_client_disabled(
                store,
                &cli("client disable"),
                "cli",
                &id,
                true,
                now_ms(),
            )?;
            println!(
                "app {} disabled; {revoked} live token(s) revoked",
                id.trim()
            );
        }
    }
    Ok(())
}

/// Returns false when the chain is broken.
pub fn run_audit(store: &dyn Store, cmd: AuditCommand) -> anyhow::Result<bool> {
    match cmd {
        AuditCommand::Verify => match rapport_auth::verify_audit_head(store)? {
            Ok(v) => {
                println!("audit chain intact: {} records verified", v.records);
                // Removing the newest records leaves an intact, shorter chain: compare the head
                // with one noted earlier, outside this database.
                println!(
                    "head: record {} hash {}",
                    v.head_seq,
                    hex_string(&v.head_hash)
                );
                Ok(true)
            }
            Err(broken) => {
                println!("{broken}");
                Ok(false)
            }
        },
        AuditCommand::Export { output } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(open_private(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut n = 0u64;
            let mut failed = None;
            rapport_auth::walk_audit(store, &mut |batch| {
                for r in batch {
                    if failed.is_none() {
                        if let Err(e) = writeln!(out, "{}", to_audit_event(r)) {
                            failed = Some(e);
                        }
                        n += 1;
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e).context("writing the export");
            }
            out.flush()?;
            drop(out);
            rapport_auth::record_export(store, &cli("audit export"), "cli", n, now_ms())?;
            eprintln!("exported {n} audit records as FHIR AuditEvent");
            Ok(true)
        }
    }
}

/// The ids of every current patient, in list order.
fn all_patient_ids(store: &dyn Store) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    loop {
        let page = store.search_patients(&PatientSearch {
            offset: ids.len() as u64,
            limit: 1000,
            ..Default::default()
        })?;
        let n = page.patients.len();
        ids.extend(page.patients.into_iter().map(|p| p.key.id));
        if n < 1000 {
            return Ok(ids);
        }
    }
}

/// A new file readable by its owner only (the export holds who saw which patient).
fn open_private(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| path.display().to_string())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A demo sign-in to print.
pub struct DemoLogin {
    pub role: &'static str,
    pub email: String,
    pub password: String,
    pub sees: String,
}

/// Create (or refresh) one demo account per role. Passwords come from `RAPPORT_DEMO_PASSWORD`
/// or are generated for this run.
pub fn demo_accounts(store: &dyn Store) -> anyhow::Result<Vec<DemoLogin>> {
    let password = match std::env::var("RAPPORT_DEMO_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => rapport_access::secret::new_secret()[..20].to_owned(),
    };
    let page = store.search_patients(&PatientSearch {
        limit: 30,
        ..Default::default()
    })?;
    let ids: Vec<String> = page.patients.iter().map(|p| p.key.id.clone()).collect();
    anyhow::ensure!(
        ids.len() >= 3,
        "the demo population has too few patients for the demo accounts"
    );
    // The Practitioner on most of these patients' current care teams becomes the demo clinician.
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for id in &ids {
        for team in store
            .patient_record(id)?
            .iter()
            .filter(|r| r.key.resource_type == "CareTeam")
        {
            let Ok(t) = serde_json::from_str::<serde_json::Value>(&team.content) else {
                continue;
            };
            if t["status"] != "active" {
                continue;
            }
            for p in t["participant"].as_array().into_iter().flatten() {
                if let Some(pid) = p
                    .pointer("/member/reference")
                    .and_then(|r| r.as_str())
                    .and_then(|r| r.strip_prefix("Practitioner/"))
                {
                    *counts.entry(pid.to_owned()).or_default() += 1;
                }
            }
        }
    }
    // Of those, the one with the most patients overall (an indexed search per candidate).
    let now = now_ms();
    let mut best: Option<(usize, String)> = None;
    for pid in counts.into_keys() {
        let n = rapport_auth::care_team_patients(store, &pid, None, now)?.len();
        if best.as_ref().is_none_or(|(m, _)| n > *m) {
            best = Some((n, pid));
        }
    }
    let practitioner = best.map(|(_, p)| p);
    let accounts = [
        (
            "admin",
            "admin@demo.rapport.example",
            "Ada Admin",
            "admin",
            None,
            None,
            "users, the audit trail and break-the-glass reviews; no clinical data".to_owned(),
        ),
        (
            "clinician",
            "gp@demo.rapport.example",
            "Dr Gale Practitioner",
            "clinician",
            None,
            practitioner.clone(),
            "patients whose care team includes their Practitioner".to_owned(),
        ),
        (
            "coordinator",
            "coordinator@demo.rapport.example",
            "Cora Coordinator",
            "coordinator",
            None,
            None,
            format!("a panel of {} patients", ids.len().min(20)),
        ),
        (
            "patient",
            "patient@demo.rapport.example",
            "Demo Patient",
            "patient",
            Some(ids[0].clone()),
            None,
            format!("their own record (Patient/{})", ids[0]),
        ),
        (
            "caregiver",
            "caregiver@demo.rapport.example",
            "Cam Caregiver",
            "caregiver",
            None,
            None,
            format!("Patient/{} (granted read access)", ids[1]),
        ),
    ];
    let actor = cli("demo");
    let mut out = Vec::new();
    for (role, email, name, roles, patient, practitioner, sees) in accounts {
        match store.user_by_email(email)? {
            Some(_) => rapport_auth::reset_password(store, &actor, "cli", email, &password, now)?,
            None => {
                rapport_auth::create_user(
                    store,
                    &actor,
                    "cli",
                    &NewAccount {
                        email: email.into(),
                        name: name.into(),
                        roles: roles.into(),
                        patient,
                        practitioner,
                        password: password.clone(),
                    },
                    now,
                )?;
            }
        }
        out.push(DemoLogin {
            role,
            email: email.into(),
            password: password.clone(),
            sees,
        });
    }
    for id in ids.iter().take(20) {
        rapport_auth::assign(
            store,
            &actor,
            "cli",
            "coordinator@demo.rapport.example",
            id,
            true,
            now,
        )?;
    }
    rapport_auth::grant(
        store,
        &actor,
        "cli",
        "caregiver@demo.rapport.example",
        &ids[1],
        Some(false),
        now,
    )?;
    Ok(out)
}
