//! Rapport's HTTP layer: the care team's console (server-rendered HTML, no JavaScript build
//! step) and the health check. This is the only crate that knows HTTP; handlers adapt requests
//! to store calls and render the results.
#![forbid(unsafe_code)]

mod console;
mod error;
mod view;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use rapport_store::Store;

pub use error::WebError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
}

impl AppState {
    /// Run a blocking store call off the async executor.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> rapport_store::Result<T> + Send + 'static,
    ) -> Result<T, WebError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| WebError::Internal(format!("store task failed: {e}")))?
            .map_err(WebError::from)
    }
}

/// All routes of the application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(console::routes())
        .with_state(state)
}

/// 200 once the store answers a query.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, WebError> {
    let backend = state.store.backend();
    state.with_store(|s| s.counts_by_type().map(|_| ())).await?;
    Ok(Json(serde_json::json!({"status": "ok", "store": backend})))
}
