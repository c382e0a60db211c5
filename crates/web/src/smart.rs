//! SMART App Launch over HTTP (SMART App Launch 1.0/2.0 standalone launch; RFC 6749 §4.1 with
//! PKCE, RFC 7636): the discovery document, the authorization endpoint with its consent page, and
//! the token endpoint. The rules are in `rapport_auth::smart`; this adapts requests and answers.
//!
//! - `GET /.well-known/smart-configuration` and `GET /fhir/.well-known/smart-configuration`: what
//!   an app needs to start (endpoints, PKCE method, scopes, capabilities).
//! - `GET /oauth/authorize`: an unknown app or an unregistered redirect URI gets an error page and
//!   never a redirect (RFC 6749 §4.1.2.1); other errors go back to the app with `error` and
//!   `state`; a visitor who is not signed in goes to /login and comes back; a signed-in person
//!   sees what the app asks for, in plain words, and allows or declines it.
//! - `POST /oauth/authorize`: the consent form (CSRF-checked); 303 to the app with the code, or
//!   with `error=access_denied`.
//! - `POST /oauth/token`: the code exchange; JSON answers, never cached, RFC 6749 §5.2 errors.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{html, Markup};
use rapport_access::scope::{Context, Scope};
use rapport_auth::smart::{self, AuthorizationRequest, Consent, SmartError, TokenRequest};
use rapport_store::Store;
use serde_json::json;

use crate::form::Form;
use crate::page::layout;
use crate::{AppState, Caller, RouteAccess, RouteBook, WebError};

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add(
        "GET",
        "/.well-known/smart-configuration",
        RouteAccess::Public,
        get(configuration),
    )
    .add(
        "GET",
        "/fhir/.well-known/smart-configuration",
        RouteAccess::Public,
        get(configuration),
    )
    .add(
        "GET",
        "/oauth/authorize",
        RouteAccess::SignedIn,
        get(authorize_page),
    )
    .add(
        "POST",
        "/oauth/authorize",
        RouteAccess::SignedIn,
        post(authorize_decision),
    )
    .add("POST", "/oauth/token", RouteAccess::Public, post(token))
}

/// The path of the authorization endpoint, the one page the sign-in form returns to with a query
/// string (see [`is_authorize_next`]).
const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// Whether `next` is an authorization request as [`sign_in_first`] writes it: the endpoint's path
/// and a query of form-urlencoded characters only (alphanumerics, `*-._`, `%`, `+`, `&`, `=`), so
/// that the sign-in page can send the browser back to it and nowhere else.
pub(crate) fn is_authorize_next(next: &str) -> bool {
    next.strip_prefix(AUTHORIZE_PATH)
        .and_then(|rest| rest.strip_prefix('?'))
        .is_some_and(|q| {
            next.len() <= 4096
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"*-._%+&=".contains(&b))
        })
}

/// The service base URL and the site's root, for absolute URLs.
fn bases(state: &AppState, headers: &HeaderMap) -> (String, String) {
    let fhir = crate::fhir::fhir_base(state, headers);
    let site = fhir.strip_suffix("/fhir").unwrap_or(&fhir).to_owned();
    (fhir, site)
}

/// `GET /.well-known/smart-configuration` (SMART App Launch "Conformance": both at the site
/// root and under the FHIR base).
async fn configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (fhir, site) = bases(&state, &headers);
    let body = json!({
        "issuer": fhir,
        "authorization_endpoint": format!("{site}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{site}/oauth/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "grant_types_supported": ["authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            "launch/patient",
            "patient/*.read", "patient/*.write", "patient/*.*",
            "user/*.read", "user/*.write", "user/*.*",
        ],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v1",
        ],
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Browser apps read it from their own origin; it holds nothing private.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Run a blocking `rapport_auth::smart` call off the async executor; a server error becomes the
/// web layer's (logged, generic page).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, SmartError> + Send + 'static,
) -> Result<Result<T, SmartError>, WebError> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| WebError::Internal(format!("store task failed: {e}")))?
    {
        Err(SmartError::Server(e)) => Err(WebError::Auth(e)),
        other => Ok(other),
    }
}

/// The decoded query (or form) parameters.
fn pairs_of(encoded: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded).into_owned().collect()
}

/// A page telling the person the request cannot go on; nothing is sent to the app, whose
/// redirect URI is not trusted.
fn request_error_page(caller: Option<&Caller>, e: &SmartError) -> Response {
    let body = html! {
        h1 { "This app's request cannot be completed" }
        p { (e.description()) }
        p.muted { "Nothing was sent to the app. If you did not expect this, close this page; otherwise tell the app's maker (error " code { (e.code()) } ")." }
    };
    (
        StatusCode::BAD_REQUEST,
        Html(layout("App authorisation", caller, body).into_string()),
    )
        .into_response()
}

/// 303 to the app's registered redirect URI with `params` added to its query (RFC 6749 §4.1.2:
/// the URI's own query is kept).
fn back_to_app(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Registered URIs are absolute URLs (checked at registration).
        return WebError::Internal("a registered redirect URI does not parse".into())
            .into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.as_str())]).into_response()
}

/// The error answer of RFC 6749 §4.1.2.1, at the app's redirect URI.
fn error_to_app(redirect_uri: &str, e: &SmartError, state: Option<&str>) -> Response {
    let description = e.description();
    let mut params = vec![("error", e.code()), ("error_description", &description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    back_to_app(redirect_uri, &params)
}

/// A visitor who is not signed in: to the sign-in page, then back to this very request (its
/// parameters form-urlencoded again, which [`is_authorize_next`] accepts).
fn sign_in_first(req: &AuthorizationRequest) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(req.pairs())
        .finish();
    let next = format!("{AUTHORIZE_PATH}?{query}");
    let to = format!(
        "/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// `GET /oauth/authorize`.
async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    caller: Result<Caller, WebError>,
) -> Result<Response, WebError> {
    let req = AuthorizationRequest::from_pairs(pairs_of(uri.query().unwrap_or("").as_bytes()));
    let (client, redirect_uri) = {
        let req = req.clone();
        match blocking(&state, move |s| smart::requesting_client(s, &req)).await? {
            Ok(found) => found,
            Err(e) => return Ok(request_error_page(caller.as_ref().ok(), &e)),
        }
    };
    let caller = match caller {
        Ok(c) => c,
        Err(WebError::SignInRequired { .. }) => return Ok(sign_in_first(&req)),
        Err(e) => return Err(e),
    };
    let (fhir, _) = bases(&state, &headers);
    match smart::check_authorization(&caller.principal, client, redirect_uri.clone(), &req, &fhir) {
        Ok(consent) => Ok(consent_page(&caller, &req, &consent)),
        Err(SmartError::Server(e)) => Err(WebError::Auth(e)),
        Err(e) => Ok(error_to_app(&redirect_uri, &e, req.state.as_deref())),
    }
}

/// `POST /oauth/authorize`: the person's answer on the consent page. Every parameter is checked
/// again: the form is in the browser's hands.
async fn authorize_decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    caller.check_csrf(field("csrf").unwrap_or_default())?;
    let allow = match field("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return Err(WebError::BadRequest(
                "Choose Allow or Deny on the app's page.".into(),
            ))
        }
    };
    let req = AuthorizationRequest::from_pairs(fields.clone());
    let (client, redirect_uri) = {
        let req = req.clone();
        match blocking(&state, move |s| smart::requesting_client(s, &req)).await? {
            Ok(found) => found,
            Err(e) => return Ok(request_error_page(Some(&caller), &e)),
        }
    };
    let (fhir, _) = bases(&state, &headers);
    let consent = match smart::check_authorization(
        &caller.principal,
        client,
        redirect_uri.clone(),
        &req,
        &fhir,
    ) {
        Ok(c) => c,
        Err(SmartError::Server(e)) => return Err(WebError::Auth(e)),
        Err(e) => return Ok(error_to_app(&redirect_uri, &e, req.state.as_deref())),
    };
    let (principal, source, now) = (
        caller.principal.clone(),
        caller.source.clone(),
        state.clock.now_ms(),
    );
    let state_param = consent.state.clone();
    if allow {
        let code = blocking(&state, move |s| {
            smart::issue_code(s, &principal, &source, &consent, now)
        })
        .await?;
        match code {
            Ok(code) => Ok(back_to_app(
                &redirect_uri,
                &[("code", &code), ("state", &state_param)],
            )),
            Err(e) => Ok(error_to_app(&redirect_uri, &e, Some(&state_param))),
        }
    } else {
        blocking(&state, move |s| {
            smart::record_declined(s, &principal, &source, &consent, now)
        })
        .await??;
        let declined = SmartError::AccessDenied("the person declined the app's request".into());
        Ok(error_to_app(&redirect_uri, &declined, Some(&state_param)))
    }
}

impl From<SmartError> for WebError {
    fn from(e: SmartError) -> Self {
        match e {
            SmartError::Server(e) => WebError::Auth(e),
            other => WebError::BadRequest(other.description()),
        }
    }
}

/// Friendlier words for the resource types people meet most.
fn plain_type(t: &str) -> String {
    let known = match t {
        "Patient" => "personal details (name, birth date, contacts)",
        "Observation" => "measurements and test results",
        "Condition" => "conditions and diagnoses",
        "MedicationRequest" => "prescriptions",
        "MedicationStatement" => "medicines taken",
        "AllergyIntolerance" => "allergies",
        "Immunization" => "immunisations",
        "Encounter" => "visits",
        "Procedure" => "procedures",
        "DiagnosticReport" => "reports",
        "DocumentReference" => "documents and notes",
        "CarePlan" => "care plans",
        "CareTeam" => "care teams",
        "Appointment" => "appointments",
        _ => "",
    };
    if !known.is_empty() {
        return format!("{known} ({t})");
    }
    // `MedicationDispense` → "medication dispense records".
    let mut words = String::new();
    for (i, c) in t.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    format!("{words} records ({t})")
}

/// A scope in plain words.
fn describe(scope: &Scope) -> String {
    let verb = match (scope.read, scope.write) {
        (true, true) => "See, add to and change",
        (true, false) => "See",
        _ => "Add to and change",
    };
    let what = match &scope.resource_type {
        None => "everything".to_owned(),
        Some(t) => plain_type(t),
    };
    match scope.context {
        Context::Patient => format!("{verb} {what} in your record"),
        _ => format!("{verb} {what} in the records of the patients you may see"),
    }
}

/// The consent page: which app, what it asks for in plain words, for which patient; Allow and
/// Deny post the request back with the session's CSRF token. The page's Content-Security-Policy
/// lets its form lead to the app's origin, since browsers apply `form-action` to the redirect
/// that follows the submission.
fn consent_page(caller: &Caller, req: &AuthorizationRequest, consent: &Consent) -> Response {
    let origin = url::Url::parse(&consent.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let csrf = caller.csrf().unwrap_or_default();
    let body: Markup = html! {
        section.card.consent {
            h1 { "Allow " q { (consent.client.name) } " to use your Rapport account?" }
            p { "The app " strong { (consent.client.name) } " asks to:" }
            ul {
                @for s in &consent.granted.scopes {
                    li { (describe(s)) }
                }
            }
            h2 { "For which patient" }
            @if consent.patient.is_some() {
                p { "Your own record only." }
            } @else {
                p { "Every patient whose record you may see in Rapport (your care team, panel or the access patients gave you). The app acts as you and can never do more than you can." }
            }
            @if !consent.granted.not_granted.is_empty() {
                p.muted {
                    "Also asked for, and not granted (your account does not allow it): "
                    @for (i, s) in consent.granted.not_granted.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (s) }
                    }
                }
            }
            p.muted {
                "Access lasts one hour and is recorded in the audit trail. After you choose, you return to "
                (origin) ". Only allow apps you trust."
            }
            form method="post" action=(AUTHORIZE_PATH) {
                input type="hidden" name="csrf" value=(csrf);
                @for (k, v) in req.pairs() {
                    input type="hidden" name=(k) value=(v);
                }
                button type="submit" name="decision" value="allow" { "Allow" }
                " "
                button.secondary type="submit" name="decision" value="deny" { "Deny" }
            }
            p.muted { "App id " code { (consent.client.client_id) } }
        }
    };
    let csp = crate::security::csp_with_form_action(&origin);
    let mut response =
        Html(layout("Allow an app", Some(caller), body).into_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The client's address, for the audit trail.
pub(crate) struct Source(String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(crate::caller::client_address(parts)))
    }
}

/// Client credentials from `Authorization: Basic …`: the id and secret, each form-urlencoded,
/// joined by a colon and base64-encoded (RFC 6749 §2.3.1). `Ok(None)` without the header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, SmartError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        SmartError::InvalidClient(
            "the Authorization header is not HTTP Basic client credentials".into(),
        )
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        })
        .map(|(_, rest)| rest.trim())
        .ok_or_else(bad)?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// A token endpoint answer: JSON, never stored by caches (RFC 6749 §5.1).
fn token_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
            // Browser apps (public clients) call it from their own origin; it uses no cookie.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn token_error(e: &SmartError) -> Response {
    let status = match e {
        SmartError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        SmartError::Server(inner) => {
            tracing::error!(error = %inner, "token request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = token_answer(
        status,
        json!({"error": e.code(), "error_description": e.description()}),
    );
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6749 §5.2: a 401 names the authentication scheme the client may use.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Rapport\""),
        );
    }
    response
}

/// `POST /oauth/token`: exchange a code for an access token.
async fn token(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return token_error(&SmartError::InvalidRequest(
            "send the parameters as application/x-www-form-urlencoded (RFC 6749 §4.1.3)".into(),
        ));
    }
    let basic = match basic_credentials(&headers) {
        Ok(b) => b,
        Err(e) => return token_error(&e),
    };
    let req = TokenRequest::from_pairs(pairs_of(&body), basic);
    let now = state.clock.now_ms();
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        smart::exchange_code(store.as_ref(), &req, &source, now)
    })
    .await;
    match result {
        Ok(Ok(answer)) => token_answer(StatusCode::OK, answer.to_json()),
        Ok(Err(e)) => token_error(&e),
        Err(e) => token_error(&SmartError::Server(rapport_auth::AuthError::Invalid(
            format!("token task failed: {e}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_authorization_requests_in_form_encoding_are_followed_after_sign_in() {
        assert!(is_authorize_next(
            "/oauth/authorize?response_type=code&client_id=ab12&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=patient%2F*.read+launch%2Fpatient"
        ));
        for bad in [
            "/oauth/authorize",
            "/oauth/authorizex?a=b",
            "/oauth/authorize?a=//evil",
            "/oauth/authorize?a=b\r\nSet-Cookie:x",
            "/oauth/authorize?a=<script>",
            "//evil.example/oauth/authorize?a=b",
        ] {
            assert!(!is_authorize_next(bad), "{bad:?}");
        }
        assert!(!is_authorize_next(&format!(
            "/oauth/authorize?a={}",
            "b".repeat(5000)
        )));
    }

    #[test]
    fn scopes_read_as_plain_words() {
        let s: Scope = "patient/*.read".parse().unwrap();
        assert_eq!(describe(&s), "See everything in your record");
        let s: Scope = "user/Observation.*".parse().unwrap();
        assert_eq!(
            describe(&s),
            "See, add to and change measurements and test results (Observation) in the records of the patients you may see"
        );
        let s: Scope = "patient/MedicationDispense.write".parse().unwrap();
        assert_eq!(
            describe(&s),
            "Add to and change medication dispense records (MedicationDispense) in your record"
        );
    }
}
