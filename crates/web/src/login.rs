//! Sign-in and sign-out (`/login`, `/logout`).
//!
//! The sign-in form is protected against login CSRF by a double-submit token: a random value in
//! a SameSite=Strict cookie scoped to /login, repeated in the form. A successful sign-in always
//! opens a new session (the id is rotated) and ends the one the browser had before.

use crate::form::Form;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use rapport_access::secret::{new_secret, secrets_equal};
use rapport_auth::SignIn;
use serde::Deserialize;

use crate::caller::{self, clear_cookie, cookie, session_cookie_name, set_cookie, Caller};
use crate::page::layout;
use crate::{AppState, RouteAccess, RouteBook, WebError};

/// The login CSRF cookie; with TLS, `__Host-` pins it to this host (RFC 6265bis §4.1.3.2) so that
/// a sibling domain cannot plant one.
fn login_csrf_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-rapport_login_csrf"
    } else {
        "rapport_login_csrf"
    }
}

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add("GET", "/login", RouteAccess::Public, get(login_page))
        .add("POST", "/login", RouteAccess::Public, post(login))
        .add("POST", "/logout", RouteAccess::SignedIn, post(logout))
}

#[derive(Deserialize, Default)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only paths on this site (`/patients/…`), never `//elsewhere`, a full URL, or anything a
/// browser might reinterpret (URL parsers drop tabs and newlines, so `/<TAB>/evil` would become
/// `//evil`): plain path characters only (OWASP Unvalidated Redirects cheat sheet).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    let plain = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b))
    };
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 512
                && plain(n)
                && n != "/logout" =>
        {
            n.to_owned()
        }
        // A SMART app's authorization request, resumed once the person has signed in.
        Some(n) if crate::smart::is_authorize_next(n) => n.to_owned(),
        _ => "/patients".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_plain_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/patients/abc-1")), "/patients/abc-1");
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/patients\r\nSet-Cookie:x=1",
            "/logout",
            "/%09/x?y",
        ] {
            assert_eq!(safe_next(Some(bad)), "/patients", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/patients");
    }
}

fn login_form(state: &AppState, next: &str, message: Option<&str>, email: &str) -> Response {
    let token = new_secret();
    let body = html! {
        div.login {
            h1 { "Sign in to Rapport" }
            @if let Some(m) = message { p.badge.warn role="alert" { (m) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "E-mail" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        }
    };
    let secure = state.settings.secure_cookies;
    let cookie = set_cookie(
        login_csrf_cookie(secure),
        &token,
        if secure { "/" } else { "/login" },
        secure,
        "Strict",
    );
    let status = if message.is_some() {
        axum::http::StatusCode::UNAUTHORIZED
    } else {
        axum::http::StatusCode::OK
    };
    (
        status,
        [(SET_COOKIE, cookie)],
        Html(layout("Sign in", None, body).into_string()),
    )
        .into_response()
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    // No page asked for: the form says so, and sign-in lands on the person's own start page.
    let next = q
        .next
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| safe_next(Some(n)))
        .unwrap_or_default();
    login_form(&state, &next, None, "")
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// The request's headers and client address, without consuming the body.
pub(crate) struct RequestInfo {
    headers: HeaderMap,
    source: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestInfo {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestInfo {
            headers: parts.headers.clone(),
            source: caller::client_address(parts),
        })
    }
}

async fn login(
    State(state): State<AppState>,
    info: RequestInfo,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let asked = form.next.as_deref().is_some_and(|n| !n.is_empty());
    let next = safe_next(form.next.as_deref());
    let source = info.source.clone();
    let secure = state.settings.secure_cookies;
    match cookie(&info.headers, login_csrf_cookie(secure)) {
        Some(expected) if secrets_equal(expected, &form.csrf) => {}
        _ => return Err(WebError::Csrf),
    }
    let now = state.clock.now_ms();
    // Failed attempts per address are limited (successful ones do not count).
    if state
        .throttle
        .address_blocked(&source, state.settings.sign_in_attempts_per_address, now)
    {
        let (src, email) = (source.clone(), form.email.clone());
        state
            .with_auth(move |s| rapport_auth::record_throttled(s, &email, &src, now))
            .await?;
        return Err(WebError::TooManyRequests);
    }
    let previous = cookie(
        &info.headers,
        session_cookie_name(state.settings.secure_cookies),
    )
    .map(str::to_owned);
    let (email, password, lockout, src) = (
        form.email.clone(),
        form.password,
        state.settings.lockout,
        source.clone(),
    );
    let outcome = state
        .with_auth(move |s| rapport_auth::sign_in(s, &email, &password, &src, &lockout, now))
        .await?;
    if !matches!(outcome, SignIn::Success { .. }) {
        state.throttle.failed(&source, now);
    }
    // Unknown e-mails "lock" after as many failures as real accounts do, so that the lockout
    // message does not tell which accounts exist.
    let email_key = form.email.trim().to_lowercase();
    let outcome = match outcome {
        SignIn::BadCredentials
            if state
                .throttle
                .email_failed(&email_key, state.settings.lockout, now) =>
        {
            SignIn::Locked { until_ms: now }
        }
        SignIn::BadCredentials => SignIn::BadCredentials,
        other => other,
    };
    match outcome {
        SignIn::Success { principal, session_secret, .. } => {
            state.throttle.email_succeeded(&email_key);
            // Rotation: the session the browser came with (if any) ends now.
            if let Some(old) = previous {
                state
                    .with_store(move |s| {
                        let hash = rapport_access::secret::hash_secret(&old);
                        s.write(rapport_store::Durability::Immediate, &mut |tx| tx.revoke_session(&hash, now))
                    })
                    .await?;
            }
            // Without a page asked for: staff land on Today, admins alone on the user list,
            // patients and caregivers on their patient list.
            let staff = principal.roles.iter().any(|r| matches!(r, rapport_access::Role::Clinician | rapport_access::Role::Coordinator));
            let admin_only = principal.roles.iter().all(|r| *r == rapport_access::Role::Admin);
            let to = if admin_only && (!asked || next == "/patients") { "/admin/users".to_owned() } else if staff && !asked { "/today".to_owned() } else { next };
            let secure = state.settings.secure_cookies;
            let mut headers = HeaderMap::new();
            headers.append(SET_COOKIE, set_cookie(session_cookie_name(secure), &session_secret, "/", secure, "Lax").parse().expect("a valid header"));
            headers.append(SET_COOKIE, clear_cookie(login_csrf_cookie(secure), if secure { "/" } else { "/login" }, secure).parse().expect("a valid header"));
            Ok((headers, Redirect::to(&to)).into_response())
        }
        SignIn::BadCredentials => Ok(login_form(&state, &next, Some("The e-mail or password is not right."), &form.email)),
        SignIn::Locked { .. } => Ok(login_form(&state, &next, Some("This account is temporarily locked after repeated failed sign-ins. Try again in 15 minutes, or ask an administrator."), &form.email)),
        SignIn::Disabled => Ok(login_form(&state, &next, Some("This account is disabled. Ask an administrator."), &form.email)),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    caller.check_csrf(&form.csrf)?;
    if let Some(session) = caller.session.clone() {
        let (source, now) = (caller.source.clone(), state.clock.now_ms());
        state
            .with_auth(move |s| rapport_auth::sign_out(s, &session, &source, now))
            .await?;
    }
    let secure = state.settings.secure_cookies;
    Ok((
        [(
            SET_COOKIE,
            clear_cookie(session_cookie_name(secure), "/", secure),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}
