//! Fresh stores for tests: a temporary SQLite file, or, when `RAPPORT_TEST_DATABASE_URL` is set to
//! a PostgreSQL server URL, a new database created on that server for this test alone.

use std::path::PathBuf;

use crate::{open, DatabaseUrl, Result, Store};

/// A store that lives as long as this value (the SQLite file is deleted on drop; PostgreSQL
/// test databases are left for inspection and named `rapport_test_<uuid>`).
pub struct TestStore {
    pub store: Box<dyn Store>,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => u.clone(),
        }
    }
}

/// Create a fresh, empty, migrated store for one test.
pub fn fresh_store() -> Result<TestStore> {
    let url = fresh_database_url()?;
    let (url, dir) = url;
    Ok(TestStore {
        store: open(&url)?,
        url,
        _dir: dir,
    })
}

/// A URL for a database that does not exist yet (SQLite) or was just created empty (PostgreSQL).
pub fn fresh_database_url() -> Result<(DatabaseUrl, Option<tempfile::TempDir>)> {
    match std::env::var("RAPPORT_TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let name = format!("rapport_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = postgres::Client::connect(&server, postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
            let mut url = ::url::Url::parse(&server)
                .map_err(|e| crate::StoreError::InvalidUrl(e.to_string()))?;
            url.set_path(&name);
            Ok((DatabaseUrl::Postgres(url.to_string()), None))
        }
        _ => {
            let dir = tempfile::tempdir().map_err(|source| crate::StoreError::DataDir {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?;
            let path: PathBuf = dir.path().join("rapport.db");
            Ok((DatabaseUrl::Sqlite(path), Some(dir)))
        }
    }
}
