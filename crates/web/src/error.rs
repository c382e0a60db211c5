//! The web layer's one error type. Details of server errors are logged, never sent; no message
//! carries patient data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    /// No session: the browser is sent to the sign-in page, then back to `next`.
    #[error("sign-in required")]
    SignInRequired { next: Option<String> },
    /// A bearer token that is unknown, expired or revoked.
    #[error("invalid token")]
    InvalidToken,
    /// Refused by the access rules. `break_glass_for` offers emergency access to that patient.
    #[error("forbidden: {message}")]
    Forbidden {
        message: String,
        break_glass_for: Option<(String, String)>,
    },
    /// A form without the right CSRF token.
    #[error("the form has expired")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("too many attempts")]
    TooManyRequests,
    #[error("storage: {0}")]
    Store(#[from] rapport_store::StoreError),
    #[error("{0}")]
    Auth(#[from] rapport_auth::AuthError),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found", "Not found.".to_owned()),
            WebError::SignInRequired { next } => {
                let to = match next {
                    Some(n) => format!("/login?next={}", crate::urlencode(n)),
                    None => "/login".to_owned(),
                };
                return Redirect::to(&to).into_response();
            }
            WebError::InvalidToken => {
                let mut r = (StatusCode::UNAUTHORIZED, "invalid or expired token").into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return r;
            }
            WebError::Forbidden { message, .. } => (StatusCode::FORBIDDEN, "Access denied", message.clone()),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or did not come from Rapport. Go back, reload the page and try again.".to_owned(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m.clone()),
            WebError::Auth(rapport_auth::AuthError::Invalid(m)) => (StatusCode::BAD_REQUEST, "Cannot do that", m.clone()),
            WebError::Auth(rapport_auth::AuthError::Store(rapport_store::StoreError::Duplicate(what)))
            | WebError::Store(rapport_store::StoreError::Duplicate(what)) => {
                (StatusCode::BAD_REQUEST, "Cannot do that", format!("{what} already exists."))
            }
            WebError::Auth(
                e @ (rapport_auth::AuthError::UnknownUser(_)
                | rapport_auth::AuthError::UnknownPatient(_)
                | rapport_auth::AuthError::AmbiguousPatient(_)
                | rapport_auth::AuthError::Access(_)),
            ) => (StatusCode::BAD_REQUEST, "Cannot do that", e.to_string()),
            WebError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many sign-in attempts from your address. Wait a few minutes and try again.".to_owned(),
            ),
            WebError::Store(_) | WebError::Auth(_) | WebError::Internal(_) => {
                // Store errors carry no patient data (SQL errors name tables and constraints).
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "Something went wrong; the error was logged.".to_owned(),
                )
            }
        };
        let body = crate::page::layout(
            title,
            None,
            html! {
                h1 { (title) }
                p { (message) }
                @if let WebError::Forbidden { break_glass_for: Some((patient, csrf)), .. } = &self {
                    form.card method="post" action={ "/patients/" (patient) "/break-glass" } {
                        h2 { "Break the glass" }
                        input type="hidden" name="csrf" value=(csrf);
                        label { "Reason (required) " input type="text" name="reason" required minlength="5" size="60"; }
                        " "
                        button type="submit" { "Get emergency access" }
                        p.muted { "Access lasts a limited time, is recorded with your reason and is reviewed by an administrator." }
                    }
                }
                p { a href="/patients" { "Back to the patient list" } }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}
