//! Choosing the backend from the database URL (the scheme decides, as in vaultwarden's
//! `src/db/mod.rs`).

use std::path::PathBuf;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path/to/file.db`, `sqlite:///abs/path.db` or `sqlite:path`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to the driver as is.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Let the driver check the rest now, so a typo stops start-up with a clear message.
            url.parse::<postgres::Config>()
                .map_err(|e| StoreError::InvalidUrl(format!("{url}: {e}")))?;
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::InvalidUrl(format!("{url}: no file path")));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err(StoreError::InvalidUrl(format!(
            "'{url}': expected sqlite://PATH or postgres://USER@HOST:PORT/DB"
        )))
    }

    /// The default: an SQLite file in the data directory.
    pub fn default_in(data_dir: &std::path::Path) -> Self {
        DatabaseUrl::Sqlite(data_dir.join("rapport.db"))
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => match ::url::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://…"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_selects_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://rapport-data/rapport.db").unwrap(),
            DatabaseUrl::Sqlite("rapport-data/rapport.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/rapport").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
    }

    #[test]
    fn a_malformed_url_is_refused() {
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("rapport.db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("postgres://u@h:notaport/db").is_err());
    }

    #[test]
    fn passwords_are_not_displayed() {
        let u = DatabaseUrl::parse("postgres://u:secret@127.0.0.1/db").unwrap();
        assert!(!u.to_string().contains("secret"));
    }
}
