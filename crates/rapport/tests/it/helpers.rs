//! `spawn_app`: the application on a free port, with the FHIR fixtures imported.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rapport_ingest::{files, import_units};
use rapport_store::testing::{fresh_store, TestStore};
use rapport_store::Store;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _db: TestStore,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("the app answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RAPPORT_FIXTURES") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set RAPPORT_FIXTURES)",
        dir.display()
    );
    dir
}

/// Import the FHIR fixtures into a store.
pub fn import_fixtures(store: &dyn Store) {
    let paths = files::collect_files(&[fixtures_dir().join("fhir")]).unwrap();
    let units = paths.iter().map(|p| files::read_unit(p).unwrap());
    import_units(store, units, &rapport::now_ms, &mut |_| {});
}

/// Start the real application on 127.0.0.1:0 against a fresh store holding the fixtures.
pub async fn spawn_app() -> TestApp {
    // Opening a store blocks (the PostgreSQL client has its own runtime): not on the async thread.
    let (db, store) = tokio::task::spawn_blocking(|| {
        let db = fresh_store().expect("a fresh store");
        // The store is opened a second time for the app, as `rapport serve` would.
        let store: Arc<dyn Store> = Arc::from(rapport_store::open(&db.url).unwrap());
        import_fixtures(store.as_ref());
        (db, store)
    })
    .await
    .unwrap();
    let app = rapport::Application::build("127.0.0.1:0".parse().unwrap(), store.clone())
        .await
        .unwrap();
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        _db: db,
        _shutdown: tx,
    }
}
