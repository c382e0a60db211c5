//! The web layer's one error type. Details of server errors are logged, never sent.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    #[error("storage: {0}")]
    Store(#[from] rapport_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            WebError::Store(_) | WebError::Internal(_) => {
                // Store errors carry no patient data (SQL errors name tables and constraints).
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong; the error was logged.",
                )
            }
        };
        let body = crate::console::layout(
            message,
            maud::html! { h1 { (message) } p { a href="/patients" { "Back to the patient list" } } },
        );
        (status, Html(body.into_string())).into_response()
    }
}
