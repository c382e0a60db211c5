//! Typed configuration: defaults, then `RAPPORT_*` environment variables, then flags (clap
//! applies them in that order).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use rapport_store::DatabaseUrl;

/// Where Rapport keeps its data and where it listens.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the HL7 v2 MLLP listener listens (`None`: no listener).
    pub mllp_listen: Option<SocketAddr>,
    /// Cookies marked Secure: Rapport is reached over HTTPS (a TLS-terminating proxy in front).
    pub secure_cookies: bool,
    /// The address users and FHIR clients reach Rapport at (`https://rapport.example.org`), for
    /// absolute URLs in FHIR responses; without it they follow the request's Host header.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// The administrator's alert rules file (`None`: the built-in defaults).
    pub alert_rules: Option<PathBuf>,
}

impl Config {
    /// The alert rules' parameters: the defaults with the administrator's file over them. A
    /// file that cannot be read or has a bad key stops start-up, naming the file and the key.
    pub fn alert_rules(
        &self,
    ) -> anyhow::Result<(rapport_alerts::Config, Option<(PathBuf, String)>)> {
        match &self.alert_rules {
            None => Ok((rapport_alerts::Config::default(), None)),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the alert rules file {}", path.display())
                })?;
                let rules = rapport_alerts::Config::from_toml(&text)
                    .with_context(|| format!("in the alert rules file {}", path.display()))?;
                Ok((rules, Some((path.clone(), text))))
            }
        }
    }
}

/// Flags shared by every command that opens the store.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB. Default: an SQLite file in
    /// the data directory.
    #[arg(long, env = "RAPPORT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for Rapport's files (the default SQLite database lives here).
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "./rapport-data")]
    pub data_dir: PathBuf,
}

/// Flags of commands that serve HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the HL7 v2 listener (MLLP over TCP), or `off`.
    #[arg(long, env = "RAPPORT_MLLP_LISTEN", default_value = "127.0.0.1:2575")]
    pub mllp_listen: String,
    /// Mark session cookies Secure. Set this whenever users reach Rapport over HTTPS (behind a
    /// TLS-terminating reverse proxy; see README, "Deploying").
    #[arg(long, env = "RAPPORT_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// The public address of this server (`https://rapport.example.org`), used in the absolute
    /// URLs of FHIR responses (Location, paging links, fullUrl). Default: from the Host header.
    #[arg(long, env = "RAPPORT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Alert rule parameters: a TOML file laid over the built-in defaults (`rapport alerts
    /// defaults` prints them).
    #[arg(long, env = "RAPPORT_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl StoreArgs {
    pub fn database_url(&self) -> anyhow::Result<DatabaseUrl> {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => DatabaseUrl::parse(url).context("RAPPORT_DATABASE_URL / --database-url"),
            None => Ok(DatabaseUrl::default_in(&self.data_dir)),
        }
    }
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let parsed = url::Url::parse(u)
                    .ok()
                    .filter(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
                    .with_context(|| {
                        format!("--public-url / RAPPORT_PUBLIC_URL '{u}' is not an http(s) URL")
                    })?;
                Some(parsed.as_str().trim_end_matches('/').to_owned())
            }
        };
        let mllp_listen = match self.mllp_listen.trim() {
            "" | "off" | "none" => None,
            a => Some(a.parse().with_context(|| {
                format!("--mllp-listen / RAPPORT_MLLP_LISTEN '{a}' is not an address or 'off'")
            })?),
        };
        Ok(Config {
            listen: self.listen,
            mllp_listen,
            secure_cookies: self.secure_cookies,
            public_url,
            data_dir: self.store.data_dir.clone(),
            database_url: self.store.database_url()?,
            alert_rules: self.alert_rules.clone(),
        })
    }
}

/// [`StoreArgs`] for commands with subcommands (`rapport user add …`): the flags may come before
/// or after the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalStoreArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB. Default: an SQLite file in
    /// the data directory.
    #[arg(long, env = "RAPPORT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Directory for Rapport's files (the default SQLite database lives here).
    #[arg(
        long,
        env = "RAPPORT_DATA_DIR",
        default_value = "./rapport-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

impl From<GlobalStoreArgs> for StoreArgs {
    fn from(g: GlobalStoreArgs) -> Self {
        StoreArgs {
            database_url: g.database_url,
            data_dir: g.data_dir,
        }
    }
}
