//! Who is calling: the [`Caller`] extractor turns a session cookie or a bearer token into a
//! [`Principal`], or refuses. Also the cookies, CSRF check and client address it relies on.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use rapport_access::policy::Principal;
use rapport_access::secret::secrets_equal;
use rapport_auth::LiveSession;

use crate::{AppState, WebError};

/// The session cookie. With TLS the `__Host-` prefix pins it to this host, path `/` and Secure
/// (RFC 6265bis §4.1.3.2).
pub(crate) fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-rapport_session"
    } else {
        "rapport_session"
    }
}

/// `Set-Cookie` value for a cookie the browser keeps until it closes (no Max-Age), never shown to
/// scripts, and not sent on cross-site subrequests.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    same_site: &str,
) -> String {
    format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    format!(
        "{name}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The peer's address (a reverse proxy's, when behind one: see README "Deploying").
pub(crate) fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The browser session, when signed in with a cookie (none for bearer tokens).
    pub session: Option<LiveSession>,
    /// Where the request came from, for the audit trail.
    pub source: String,
}

impl Caller {
    /// The session's CSRF token, for the forms of a page.
    pub fn csrf(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.csrf_token.as_str())
    }

    /// A form that changes something must carry the session's CSRF token (synchroniser token
    /// pattern, OWASP CSRF cheat sheet). Bearer-token requests carry no ambient credential, so
    /// they cannot be forged cross-site and need none.
    pub fn check_csrf(&self, given: &str) -> Result<(), WebError> {
        match &self.session {
            None => Ok(()),
            Some(s) if secrets_equal(&s.csrf_token, given) => Ok(()),
            Some(_) => Err(WebError::Csrf),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let source = client_address(parts);
        let now = state.clock.now_ms();
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let token = auth
                .strip_prefix("Bearer ")
                .ok_or(WebError::InvalidToken)?
                .trim()
                .to_owned();
            let principal = state
                .with_auth(move |s| rapport_auth::token_principal(s, &token, now))
                .await?
                .ok_or(WebError::InvalidToken)?;
            return Ok(Caller {
                principal,
                session: None,
                source,
            });
        }
        let next = (parts.method == Method::GET).then(|| {
            parts
                .uri
                .path_and_query()
                .map(|p| p.path().to_owned())
                .unwrap_or_default()
        });
        let Some(secret) = cookie(
            &parts.headers,
            session_cookie_name(state.settings.secure_cookies),
        )
        .map(str::to_owned) else {
            return Err(WebError::SignInRequired { next });
        };
        let policy = state.settings.session;
        let live = state
            .with_auth(move |s| {
                let live = rapport_auth::session(s, &secret, &policy, now)?;
                if let Some(l) = &live {
                    // Refresh the idle timer now and then rather than on every request.
                    if policy.should_touch(l.last_seen_ms, now) {
                        let hash = l.token_hash;
                        s.write(rapport_store::Durability::Deferred, &mut |tx| {
                            tx.touch_session(&hash, now)
                        })?;
                    }
                }
                Ok(live)
            })
            .await?;
        match live {
            Some(l) => Ok(Caller {
                principal: l.principal.clone(),
                session: Some(l),
                source,
            }),
            None => Err(WebError::SignInRequired { next }),
        }
    }
}
