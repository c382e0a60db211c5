//! Web hardening for every response: security headers (OWASP Secure Headers), no caching of
//! pages (a signed-out browser's back button must show nothing), and a request size limit.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::AppState;

/// Forms are small; nothing the console accepts comes near this.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// No inline script or style anywhere, no framing, forms only to this site.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`] with one more origin a form may lead to: the SMART consent page's form answers with a
/// redirect to the app, and browsers apply `form-action` to that redirect too. `origin` is a URL
/// origin as `url` serialises it (`https://app.example.org:8443`); a handler that sets its own
/// policy keeps it.
pub(crate) fn csp_with_form_action(origin: &str) -> String {
    let safe = !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b));
    if safe {
        CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        )
    } else {
        CSP.to_owned()
    }
}

pub(crate) fn harden(router: Router<AppState>, https: bool) -> Router<AppState> {
    let router = router
        .layer(middleware::from_fn(headers))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if https {
        // Served over HTTPS (behind a TLS proxy): browsers must not fall back to HTTP.
        router.layer(middleware::from_fn(hsts))
    } else {
        router
    }
}

async fn hsts(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    response
}

async fn headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
