//! Fresh stores for tests: a temporary SQLite file, or, when `RAPPORT_TEST_DATABASE_URL` is set to
//! a PostgreSQL server URL, a new database created on that server for this test alone.

use std::path::PathBuf;

use crate::{open, DatabaseUrl, Result, Store};

/// A store that lives as long as this value: the SQLite file, or the PostgreSQL database
/// (`rapport_test_<uuid>`), is removed on drop. Set `RAPPORT_TEST_KEEP_DB=1` to keep them for
/// inspection.
pub struct TestStore {
    pub store: Box<dyn Store>,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    server: Option<String>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if std::env::var_os("RAPPORT_TEST_KEEP_DB").is_some() {
            if let Some(dir) = self._dir.take() {
                let _ = dir.keep();
            }
            return;
        }
        if let (Some(server), DatabaseUrl::Postgres(url)) = (self.server.clone(), self.url.clone())
        {
            // Close our connections first, then drop the database; on a thread of its own,
            // because the blocking client cannot run inside an async test's runtime.
            let store = std::mem::replace(&mut self.store, Box::new(Closed));
            let _ = std::thread::spawn(move || {
                drop(store);
                let name = url.rsplit('/').next().unwrap_or_default();
                if name.starts_with("rapport_test_") {
                    if let Ok(mut admin) = postgres::Client::connect(&server, postgres::NoTls) {
                        let _ = admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                    }
                }
            })
            .join();
        }
    }
}

/// Drop a scratch database made by [`fresh_database_url_on`] (PostgreSQL only; a temporary
/// SQLite directory removes itself). Names other than `rapport_test_*` are left alone.
pub fn drop_scratch_database(server: &str, url: &DatabaseUrl) -> Result<()> {
    if let DatabaseUrl::Postgres(url) = url {
        let name = url.rsplit('/').next().unwrap_or_default();
        if name.starts_with("rapport_test_") {
            let mut admin = postgres::Client::connect(server, postgres::NoTls)?;
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
    }
    Ok(())
}

/// Stands in for a store that has been closed.
struct Closed;

/// A store whose every write fails (a database outage, for tests of what happens then).
pub fn closed() -> Box<dyn Store> {
    Box::new(Closed)
}

impl crate::Hl7Store for Closed {
    fn hl7_messages(
        &self,
        _: Option<&str>,
        _: Option<i64>,
        _: u64,
    ) -> Result<Vec<crate::Hl7Message>> {
        Err(crate::StoreError::Aborted)
    }
    fn hl7_message(&self, _: i64) -> Result<Option<crate::Hl7Message>> {
        Err(crate::StoreError::Aborted)
    }
    fn hl7_counts(&self) -> Result<Vec<(String, String, u64)>> {
        Err(crate::StoreError::Aborted)
    }
    fn hl7_messages_of_patient(&self, _: &str, _: u64) -> Result<Vec<crate::Hl7Message>> {
        Err(crate::StoreError::Aborted)
    }
}

impl crate::AlertStore for Closed {
    fn dirty_patients(&self, _: u64) -> Result<Vec<(String, i64)>> {
        Err(crate::StoreError::Aborted)
    }
    fn showing_alerts(
        &self,
        _: &[String],
        _: i64,
        _: u64,
    ) -> Result<Vec<crate::alerts::StoredAlert>> {
        Err(crate::StoreError::Aborted)
    }
    fn patient_alerts(&self, _: &str, _: bool) -> Result<Vec<crate::alerts::StoredAlert>> {
        Err(crate::StoreError::Aborted)
    }
    fn alert(&self, _: i64) -> Result<Option<crate::alerts::StoredAlert>> {
        Err(crate::StoreError::Aborted)
    }
    fn patient_ids_after(&self, _: &str, _: u64) -> Result<Vec<String>> {
        Err(crate::StoreError::Aborted)
    }
    fn sweep_state(&self) -> Result<Option<crate::alerts::SweepState>> {
        Err(crate::StoreError::Aborted)
    }
    fn alert_counts(&self) -> Result<Vec<(String, u64)>> {
        Err(crate::StoreError::Aborted)
    }
}

impl Store for Closed {
    fn backend(&self) -> &'static str {
        "closed"
    }
    fn write(
        &self,
        _: crate::Durability,
        _: &mut dyn FnMut(&mut dyn crate::WriteTx) -> Result<()>,
    ) -> Result<()> {
        Err(crate::StoreError::Aborted)
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, _: &crate::ResourceKey) -> Result<Option<crate::StoredResource>> {
        Ok(None)
    }
    fn read_many(&self, _: &[crate::ResourceKey]) -> Result<Vec<crate::StoredResource>> {
        Ok(Vec::new())
    }
    fn history_since(
        &self,
        _: Option<&str>,
        _: Option<i64>,
        _: Option<i64>,
        _: u64,
    ) -> Result<Vec<crate::StoredResource>> {
        Err(crate::StoreError::Aborted)
    }
    fn history(&self, _: &crate::ResourceKey) -> Result<Vec<crate::StoredResource>> {
        Ok(Vec::new())
    }
    fn find_ids(&self, _: &rapport_fhir::query::Query) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn search(
        &self,
        _: &rapport_fhir::query::Query,
        _: &[crate::SortKey],
        _: u64,
    ) -> Result<Vec<crate::SearchMatch>> {
        Ok(Vec::new())
    }
    fn counts_by_type(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        Ok(Default::default())
    }
    fn search_patients(&self, _: &crate::PatientSearch) -> Result<crate::PatientPage> {
        Ok(crate::PatientPage {
            total: 0,
            patients: Vec::new(),
        })
    }
    fn patient_record_of_types(&self, _: &str, _: &[&str]) -> Result<Vec<crate::StoredResource>> {
        Ok(Vec::new())
    }
    fn patient_record(&self, _: &str) -> Result<Vec<crate::StoredResource>> {
        Ok(Vec::new())
    }
    fn write_unindexed_rows(&self, _: &[(String, String, String)]) -> Result<()> {
        Ok(())
    }
    fn drop_unindexed_rows(&self) -> Result<()> {
        Ok(())
    }
}

impl TestStore {
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => u.clone(),
        }
    }
}

impl crate::AccessStore for Closed {
    fn user_by_email(&self, _: &str) -> Result<Option<crate::UserRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn user_by_id(&self, _: i64) -> Result<Option<crate::UserRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn users(&self) -> Result<Vec<crate::UserRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn session_by_hash(&self, _: &[u8; 32]) -> Result<Option<crate::SessionRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn token_by_hash(&self, _: &[u8; 32]) -> Result<Option<crate::TokenRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn tokens_of(&self, _: i64) -> Result<Vec<crate::TokenRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn access_rows(&self, _: i64, _: Option<&str>) -> Result<crate::AccessRows> {
        Err(crate::StoreError::Aborted)
    }
    fn assigned_to(&self, _: &str) -> Result<Vec<(i64, String, String)>> {
        Err(crate::StoreError::Aborted)
    }
    fn break_glass_list(&self, _: bool, _: u64) -> Result<Vec<crate::BreakGlassRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn audit_page(
        &self,
        _: &crate::AuditFilter,
    ) -> Result<Vec<rapport_access::audit::ChainedRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn audit_after(&self, _: i64, _: u64) -> Result<Vec<rapport_access::audit::ChainedRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn audit_head(&self) -> Result<(i64, Option<[u8; 32]>)> {
        Err(crate::StoreError::Aborted)
    }
    fn append_audit_committed(&self, _: &rapport_access::audit::AuditRecord) -> Result<i64> {
        Err(crate::StoreError::Aborted)
    }
    fn oauth_client(&self, _: &str) -> Result<Option<crate::OAuthClientRecord>> {
        Err(crate::StoreError::Aborted)
    }
    fn oauth_clients(&self) -> Result<Vec<crate::OAuthClientRecord>> {
        Err(crate::StoreError::Aborted)
    }
}

/// Create a fresh, empty, migrated store for one test.
pub fn fresh_store() -> Result<TestStore> {
    let (url, dir) = fresh_database_url()?;
    let server = std::env::var("RAPPORT_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty());
    Ok(TestStore {
        store: open(&url)?,
        url,
        _dir: dir,
        server,
    })
}

/// A URL for a database that does not exist yet (SQLite) or was just created empty (PostgreSQL
/// server named by `RAPPORT_TEST_DATABASE_URL`).
pub fn fresh_database_url() -> Result<(DatabaseUrl, Option<tempfile::TempDir>)> {
    let server = std::env::var("RAPPORT_TEST_DATABASE_URL").ok();
    fresh_database_url_on(server.as_deref())
}

/// Like [`fresh_database_url`], on the PostgreSQL server `postgres` if given, else SQLite.
pub fn fresh_database_url_on(
    postgres: Option<&str>,
) -> Result<(DatabaseUrl, Option<tempfile::TempDir>)> {
    match postgres {
        Some(server) if !server.is_empty() => {
            let name = format!("rapport_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = postgres::Client::connect(server, postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
            let mut url = ::url::Url::parse(server)
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

impl crate::ExportStore for Closed {
    fn insert_export(&self, _: &crate::ExportJob) -> Result<()> {
        Err(crate::StoreError::Aborted)
    }
    fn export_job(&self, _: &str) -> Result<Option<crate::ExportJob>> {
        Err(crate::StoreError::Aborted)
    }
    fn finish_export(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
        _: i64,
    ) -> Result<bool> {
        Err(crate::StoreError::Aborted)
    }
    fn fail_running_exports(&self, _: i64) -> Result<u64> {
        Err(crate::StoreError::Aborted)
    }
}
