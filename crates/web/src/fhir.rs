//! The FHIR R4 REST API under `/fhir` (FHIR R4 http.html), first part: the CapabilityStatement,
//! read, vread and instance history, with every error an OperationOutcome.
//!
//! Every request is authorised per resource (`rapport_auth::authorize_resource`: the patient the
//! resource belongs to, by the Patient CompartmentDefinition, and the token's resource-level
//! scopes) and audited, like the console. Bearer tokens and browser sessions both work; without
//! either the answer is 401.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use rapport_access::policy::{Action, Decision};
use rapport_store::{ResourceKey, StoredResource};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{AppState, Caller, RouteAccess, RouteBook, WebError};

mod export;
mod flag;
mod search;

pub(crate) fn routes(book: RouteBook) -> RouteBook {
    book.add("GET", "/fhir/metadata", RouteAccess::Public, get(metadata))
        .add(
            "POST",
            "/fhir",
            RouteAccess::PatientWrite,
            post(batch_or_transaction),
        )
        // Some clients (fhir-kit-client) post bundles to the base with a trailing slash.
        .add(
            "POST",
            "/fhir/",
            RouteAccess::PatientWrite,
            post(batch_or_transaction),
        )
        .add(
            "GET",
            "/fhir/{type}/{id}",
            RouteAccess::PatientRead,
            get(read),
        )
        .add("GET", "/fhir/{type}", RouteAccess::PatientList, get(search))
        .add(
            "GET",
            "/fhir/_history",
            RouteAccess::PatientList,
            get(system_history),
        )
        // Bulk Data export (fhir/export.rs). The kick-off and status answer no patient data; a
        // job exports what its owner may read, audited when it runs, and each file download is
        // audited again.
        .add(
            "GET",
            "/fhir/$export",
            RouteAccess::SignedIn,
            get(export_system),
        )
        .add(
            "GET",
            "/fhir/$export-poll/{job}",
            RouteAccess::SignedIn,
            get(export_status).delete(export_cancel),
        )
        .add(
            "GET",
            "/fhir/$export-file/{job}/{file}",
            RouteAccess::SignedIn,
            get(export_file),
        )
        .add(
            "POST",
            "/fhir/{type}/_search",
            RouteAccess::PatientList,
            post(search_post),
        )
        .add(
            "POST",
            "/fhir/{type}",
            RouteAccess::PatientWrite,
            post(create),
        )
        .add(
            "PUT",
            "/fhir/{type}/{id}",
            RouteAccess::PatientWrite,
            put(update),
        )
        .add(
            "PATCH",
            "/fhir/{type}/{id}",
            RouteAccess::PatientWrite,
            patch(patch_resource),
        )
        .add(
            "PUT",
            "/fhir/{type}",
            RouteAccess::PatientWrite,
            put(conditional_update),
        )
        .add(
            "DELETE",
            "/fhir/{type}",
            RouteAccess::PatientWrite,
            delete(conditional_delete),
        )
        .add(
            "DELETE",
            "/fhir/{type}/{id}",
            RouteAccess::PatientWrite,
            delete(remove),
        )
        // `_history` and instance operations (`Patient/{id}/$everything`) share one route.
        .add(
            "GET",
            "/fhir/{type}/{id}/{operation}",
            RouteAccess::PatientRead,
            get(instance_operation),
        )
        .add(
            "GET",
            "/fhir/{type}/{id}/_history/{vid}",
            RouteAccess::PatientRead,
            get(vread),
        )
}

const FHIR_JSON: &str = "application/fhir+json; fhirVersion=4.0";

/// The largest request the FHIR API reads: a transaction bundle of a patient with decades of
/// history (the largest Synthea sample is 2.2 MB). The console's forms keep a much smaller limit.
pub(crate) const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// CORS for the FHIR API (Fetch standard; SMART App Launch apps run in browsers on other
/// origins): any origin may call it with a bearer token. Credentials (cookies) are never allowed
/// cross-origin, so another site cannot use a signed-in browser's session.
pub(crate) fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("if-none-exist"),
            HeaderName::from_static("prefer"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::CONTENT_LOCATION,
            header::LAST_MODIFIED,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Turn an error response that is not already FHIR (the framework's 413, 405, 415, a rejected
/// extractor) into an OperationOutcome with the same status (http.html: errors are
/// OperationOutcomes).
pub(crate) async fn outcome_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let fhir = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/fhir+json"));
    if !(status.is_client_error() || status.is_server_error()) || fhir {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => "not-supported",
        StatusCode::NOT_FOUND => "not-found",
        s if s.is_server_error() => "exception",
        _ => "invalid",
    };
    let diagnostics = if text.is_empty() || text.trim_start().starts_with('<') {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut r = Outcome::new(status, code, diagnostics).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        r.headers_mut().insert(header::ALLOW, allow.clone());
    }
    r
}

/// Any other path under `/fhir`: a 404 OperationOutcome rather than the console's page.
pub(crate) fn unknown_path(uri: &axum::http::Uri) -> Outcome {
    Outcome::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!(
            "{} is not a FHIR interaction Rapport has (see /fhir/metadata)",
            uri.path()
        ),
    )
}

/// An error as an OperationOutcome (FHIR R4 operationoutcome.html), with the HTTP status.
pub(crate) struct Outcome {
    status: StatusCode,
    code: &'static str,
    diagnostics: String,
    expression: Option<String>,
    /// Several issues, when there are (validation): they replace the single one.
    issues: Vec<Value>,
}

impl Outcome {
    /// 422 with one issue per problem (http.html: "the proposed resource violated applicable
    /// FHIR profiles").
    fn invalid_resource(issues: &[rapport_fhir::validate::Issue]) -> Self {
        let mut o = Outcome::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            issues
                .first()
                .map(|i| i.message.clone())
                .unwrap_or_default(),
        );
        o.issues = issues
            .iter()
            .map(|i| json!({"severity": "error", "code": "invalid", "diagnostics": i.message, "expression": [i.expression]}))
            .collect();
        o
    }

    fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Outcome {
            status,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            issues: Vec::new(),
        }
    }

    fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let mut issue =
            json!({"severity": "error", "code": self.code, "diagnostics": self.diagnostics});
        if let Some(e) = self.expression {
            issue["expression"] = json!([e]);
        }
        let issues = if self.issues.is_empty() {
            vec![issue]
        } else {
            self.issues
        };
        let body = json!({"resourceType": "OperationOutcome", "issue": issues});
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, FHIR_JSON)],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<WebError> for Outcome {
    fn from(e: WebError) -> Self {
        match e {
            WebError::SignInRequired { .. } | WebError::InvalidToken => Outcome::new(
                StatusCode::UNAUTHORIZED,
                "login",
                "a valid bearer token is required",
            ),
            WebError::Forbidden { message, .. } => {
                Outcome::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            WebError::NotFound => Outcome::new(StatusCode::NOT_FOUND, "not-found", "not found"),
            WebError::BadRequest(m) => Outcome::new(StatusCode::BAD_REQUEST, "invalid", m),
            other => {
                tracing::error!(error = %other, "FHIR request failed");
                Outcome::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the server failed; the error was logged",
                )
            }
        }
    }
}

/// The caller of a FHIR request: as the console's, but refusals are OperationOutcomes.
pub(crate) struct FhirCaller(Caller);

impl axum::extract::FromRequestParts<AppState> for FhirCaller {
    type Rejection = Outcome;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Outcome> {
        let caller = Caller::from_request_parts(parts, state)
            .await
            .map_err(Outcome::from)?;
        // A browser's cookie is sent on cross-site requests too: writes need a bearer token,
        // which no other site can make the browser send (no CSRF through the API).
        let safe = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if !safe && caller.session.is_some() {
            return Err(Outcome::new(
                StatusCode::UNAUTHORIZED,
                "login",
                "writes through the FHIR API need a bearer token (rapport token create)",
            ));
        }
        Ok(FhirCaller(caller))
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct FormatParam {
    #[serde(default, rename = "_format")]
    format: Option<String>,
}

/// `_format` (http.html#mime): JSON is served; asking for XML or anything else is a 406.
fn check_format(q: &FormatParam, headers: &HeaderMap) -> Result<(), Outcome> {
    let json_ok = |v: &str| {
        let v = v.trim().to_ascii_lowercase();
        v == "json" || v.starts_with("application/fhir+json") || v.starts_with("application/json")
    };
    if let Some(f) = &q.format {
        if !json_ok(f) {
            return Err(Outcome::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                format!("_format '{f}' is not supported; Rapport serves application/fhir+json"),
            )
            .at("_format"));
        }
    }
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let acceptable = accept.split(',').any(|a| {
            let a = a.split(';').next().unwrap_or("").trim();
            a.is_empty() || a == "*/*" || a == "application/*" || json_ok(a)
        });
        if !acceptable {
            return Err(Outcome::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                "only application/fhir+json can be served",
            ));
        }
    }
    Ok(())
}

/// The resource types Rapport knows (those of the official definitions' search parameters).
fn resource_types() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = rapport_fhir::search_param::SEARCH_PARAMS
        .iter()
        .map(|p| p.resource_type)
        .filter(|t| !matches!(*t, "Resource" | "DomainResource"))
        .collect();
    types.dedup();
    types
}

fn check_type_and_id(ty: &str, id: &str) -> Result<(), Outcome> {
    if !resource_types().contains(&ty) {
        return Err(Outcome::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("'{ty}' is not a FHIR R4 resource type"),
        ));
    }
    if !rapport_fhir::id::is_valid_id(id) {
        return Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("'{id}' is not a valid id (FHIR R4 datatypes.html#id)"),
        )
        .at(format!("{ty}.id")));
    }
    Ok(())
}

/// `GET /fhir/metadata`: what this server supports, and nothing more (http.html#capabilities).
async fn metadata(
    State(state): State<AppState>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    let resources: Vec<Value> = resource_types()
        .into_iter()
        .map(|t| {
            if t == flag::TYPE {
                return flag::capability();
            }
            let mut r = json!({
                "type": t,
                "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "update"}, {"code": "patch"}, {"code": "delete"}, {"code": "history-instance"}, {"code": "history-type"}, {"code": "create"}],
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "versioning": "versioned",
                "readHistory": true,
            });
            r["searchParam"] = Value::Array(
                searchable(t)
                    .into_iter()
                    .map(|p| {
                        use rapport_fhir::search_param::ParamKind as K;
                        let kind = match p.kind {
                            K::Token => "token",
                            K::String => "string",
                            K::Reference => "reference",
                            K::Date => "date",
                            K::Number => "number",
                            K::Quantity => "quantity",
                            K::Uri => "uri",
                        };
                        json!({"name": p.code, "type": kind})
                    })
                    .collect(),
            );
            r["interaction"].as_array_mut().expect("an array").push(json!({"code": "search-type"}));
            // _include through this type's reference parameters; _revinclude through those of
            // other types that name this one as a target (search.html#include).
            use rapport_fhir::search_param::{ParamKind, SEARCH_PARAMS};
            let includes: Vec<String> = searchable(t)
                .into_iter()
                .filter(|p| p.kind == ParamKind::Reference && p.resource_type == t)
                .map(|p| format!("{t}:{}", p.code))
                .collect();
            let revincludes: Vec<String> = SEARCH_PARAMS
                .iter()
                .filter(|p| {
                    p.kind == ParamKind::Reference
                        && p.paths.iter().any(|path| path.target_types.contains(&t))
                })
                .map(|p| format!("{}:{}", p.resource_type, p.code))
                .collect();
            r["searchInclude"] = json!(includes);
            r["searchRevInclude"] = json!(revincludes);
            if t == "Patient" {
                r["operation"] = json!([
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
                ]);
            }
            if t == "Group" {
                r["operation"] = json!([{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]);
            }
            r
        })
        .collect();
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-04",
        "kind": "instance",
        "software": {"name": "Rapport", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Rapport FHIR R4 API"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": smart_security(&fhir_base(&state, &headers)),
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
            "operation": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}],
        }],
    });
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response())
}

/// `rest.security`: SMART on FHIR with the OAuth endpoints as the `oauth-uris` extension (SMART
/// App Launch 1.0 "Conformance"; the same as `.well-known/smart-configuration`).
fn smart_security(base: &str) -> Value {
    let site = base.strip_suffix("/fhir").unwrap_or(base);
    json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": format!("{site}/oauth/authorize")},
                {"url": "token", "valueUri": format!("{site}/oauth/token")},
            ],
        }],
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
        "description": "SMART App Launch (authorization code with PKCE S256) for third-party apps, bearer tokens (`rapport token create`) with SMART v1 scopes, or a signed-in session. Access follows care relationships; every request is audited.",
    })
}

/// The service base URL (FHIR R4 http.html#root) for absolute URLs in responses: the configured
/// public address, or the scheme and Host of the request. A Host that is not a plain host name
/// (and port) is not echoed back.
pub(crate) fn fhir_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.settings.public_url {
        return format!("{u}/fhir");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = if state.settings.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/fhir")
}

/// The patient a stored version belongs to (Patient CompartmentDefinition), from its content.
fn patient_of(stored: &StoredResource) -> Option<String> {
    stored.patient_key.clone()
}

/// Authorise reading `versions` (oldest first) of one resource and audit the request; the
/// patient is taken from the newest version that has content.
async fn authorise_read(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    versions: &[StoredResource],
    entity: String,
) -> Result<(), Outcome> {
    let patient = versions
        .iter()
        .rev()
        .find(|v| !v.deleted)
        .and_then(patient_of);
    authorise_read_of(state, caller, ty, patient, entity).await
}

/// Authorise reading `entity`, of type `ty` and belonging to `patient` (`None`: directory data),
/// and audit the request.
async fn authorise_read_of(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    patient: Option<String>,
    entity: String,
) -> Result<(), Outcome> {
    let now = state.clock.now_ms();
    let (principal, p, t) = (caller.principal.clone(), patient.clone(), ty.to_owned());
    let decision = state
        .with_auth(move |s| {
            rapport_auth::authorize_resource(s, &principal, p.as_deref(), &t, Action::Read, now)
        })
        .await?;
    let record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        decision,
        Action::Read,
        patient.as_deref(),
        vec![entity],
        now,
    );
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    match decision {
        Decision::Allow(_) => Ok(()),
        Decision::Deny(d) => Err(Outcome::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            d.message(),
        )),
    }
}

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn resource_response(stored: &StoredResource) -> Response {
    (
        [
            (header::CONTENT_TYPE, FHIR_JSON.to_owned()),
            (header::ETAG, format!("W/\"{}\"", stored.version)),
            (header::LAST_MODIFIED, http_date(stored.last_updated_ms)),
        ],
        stored.content.clone(),
    )
        .into_response()
}

fn gone(ty: &str, id: &str, version: i64) -> Response {
    let mut r = Outcome::new(
        StatusCode::GONE,
        "deleted",
        format!("{ty}/{id} was deleted (version {version})"),
    )
    .into_response();
    r.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&format!("W/\"{version}\"")).expect("a valid header"),
    );
    r
}

async fn versions_of(state: &AppState, ty: &str, id: &str) -> Result<Vec<StoredResource>, Outcome> {
    let key = ResourceKey::new(ty, id);
    Ok(state.with_store(move |s| s.history(&key)).await?)
}

fn not_found(ty: &str, id: &str) -> Outcome {
    Outcome::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("{ty}/{id} is not known"),
    )
}

/// `GET /fhir/{type}/{id}` (http.html#read).
async fn read(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Query<FormatParam>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    if ty == flag::TYPE {
        // A Flag is an alert's current state: it has no history of versions.
        flag::refuse_write(if id == "_history" { &ty } else { "" })?;
        return flag::read(state, caller, &id, &q, &headers).await;
    }
    // `/fhir/{type}/_history` shares the route (`_` is not allowed in ids, datatypes.html#id).
    if id == "_history" {
        return history_list(state, caller, Some(ty), &uri, &headers).await;
    }
    if ty == "Patient" && id == "$export" {
        return export::kick_off(state, caller, export::Level::Patient, &uri, &headers).await;
    }
    check_format(&q, &headers)?;
    check_type_and_id(&ty, &id)?;
    let versions = versions_of(&state, &ty, &id).await?;
    let Some(current) = versions.last() else {
        return Err(not_found(&ty, &id));
    };
    authorise_read(&state, &caller, &ty, &versions, format!("{ty}/{id}")).await?;
    if current.deleted {
        return Ok(gone(&ty, &id, current.version));
    }
    Ok(resource_response(current))
}

/// `GET /fhir/{type}/{id}/_history/{vid}` (http.html#vread).
async fn vread(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id, vid)): Path<(String, String, String)>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id(&ty, &id)?;
    flag::refuse_write(&ty)?;
    let version: i64 = vid.parse().map_err(|_| {
        Outcome::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("'{vid}' is not a version id"),
        )
        .at("meta.versionId")
    })?;
    let versions = versions_of(&state, &ty, &id).await?;
    if versions.is_empty() {
        return Err(not_found(&ty, &id));
    }
    // Authorised as the patient that version belonged to (a resource can move between patients).
    let upto = versions
        .iter()
        .position(|v| v.version == version)
        .map_or(versions.len(), |i| i + 1);
    authorise_read(
        &state,
        &caller,
        &ty,
        &versions[..upto],
        format!("{ty}/{id}/_history/{version}"),
    )
    .await?;
    match versions.iter().find(|v| v.version == version) {
        Some(v) if v.deleted => Ok(gone(&ty, &id, v.version)),
        Some(v) => Ok(resource_response(v)),
        None => Err(Outcome::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{ty}/{id} has no version {version}"),
        )),
    }
}

/// `GET /fhir/{type}/{id}/_history` (http.html#history): a history Bundle, newest first.
async fn history(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id(&ty, &id)?;
    let versions = versions_of(&state, &ty, &id).await?;
    if versions.is_empty() {
        return Err(not_found(&ty, &id));
    }
    authorise_read(
        &state,
        &caller,
        &ty,
        &versions,
        format!("{ty}/{id}/_history"),
    )
    .await?;
    // Versions that belonged to another patient are shown only if that patient's data may be
    // read too.
    let newest = versions
        .iter()
        .rev()
        .find(|v| !v.deleted)
        .and_then(patient_of);
    let mut others: Vec<Option<String>> = Vec::new();
    for v in versions.iter().filter(|v| !v.deleted) {
        let p = patient_of(v);
        if p != newest && !others.contains(&p) {
            others.push(p);
        }
    }
    let mut hidden: Vec<Option<String>> = Vec::new();
    for p in others {
        let (principal, pt, t, now) = (
            caller.principal.clone(),
            p.clone(),
            ty.clone(),
            state.clock.now_ms(),
        );
        let d = state
            .with_auth(move |s| {
                rapport_auth::authorize_resource(
                    s,
                    &principal,
                    pt.as_deref(),
                    &t,
                    Action::Read,
                    now,
                )
            })
            .await?;
        if !d.is_allowed() {
            hidden.push(p);
        }
    }
    let base = fhir_base(&state, &headers);
    let entries: Vec<Value> = versions
        .iter()
        .rev()
        .filter(|v| v.deleted || hidden.is_empty() || !hidden.contains(&patient_of(v)))
        .map(|v| history_entry(&base, v))
        .collect();
    let body = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{base}/{ty}/{id}/_history")}],
        "entry": entries,
    });
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response())
}

/// One version as an entry of a history Bundle (http.html#history): the request that made it
/// (POST for the first version, PUT, DELETE) and its response.
fn history_entry(base: &str, v: &StoredResource) -> Value {
    let (ty, id) = (&v.key.resource_type, &v.key.id);
    let (method, status) = match (v.deleted, v.version) {
        (true, _) => ("DELETE", "204 No Content"),
        (false, 1) => ("POST", "201 Created"),
        (false, _) => ("PUT", "200 OK"),
    };
    let url = if method == "POST" {
        ty.clone()
    } else {
        format!("{ty}/{id}")
    };
    let mut entry = json!({
        "fullUrl": format!("{base}/{ty}/{id}"),
        "request": {"method": method, "url": url},
        "response": {"status": status, "etag": format!("W/\"{}\"", v.version), "lastModified": chrono::DateTime::from_timestamp_millis(v.last_updated_ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)},
    });
    if !v.deleted {
        if let Ok(resource) = serde_json::from_str::<Value>(&v.content) {
            entry["resource"] = resource;
        }
    }
    entry
}

/// `GET /fhir/_history` and `GET /fhir/{type}/_history` (http.html#history): the versions
/// written at or after `_since` (an instant or a date), newest first, `_count` per page (default
/// 50, at most 1000) with `next`/`previous` links. Only versions the caller may read are listed
/// and counted, each judged by the patient it belonged to; the request is audited as a list of
/// what it returned.
async fn history_list(
    state: AppState,
    caller: Caller,
    ty: Option<String>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    if let Some(t) = &ty {
        check_type_and_id(t, "history")?;
    }
    let (mut since, mut count, mut offset, mut before) = (None, DEFAULT_COUNT, 0usize, None);
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "_since" => since = Some(parse_since(&value)?),
            "_count" => {
                count = value
                    .parse::<usize>()
                    .map_err(|_| {
                        Outcome::new(
                            StatusCode::BAD_REQUEST,
                            "invalid",
                            "_count must be a whole number",
                        )
                        .at("_count")
                    })?
                    .min(MAX_COUNT)
            }
            "_format" => check_format(
                &FormatParam {
                    format: Some(value),
                },
                headers,
            )?,
            // Paging: the moment the first page was read (later versions stay out, so pages do
            // not shift) and how many readable versions came before.
            "_before" => {
                before = Some(value.parse::<i64>().map_err(|_| {
                    Outcome::new(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "_before is a paging link's value",
                    )
                    .at("_before")
                })?)
            }
            "_offset" => {
                offset = value.parse::<usize>().map_err(|_| {
                    Outcome::new(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "_offset must be a whole number",
                    )
                    .at("_offset")
                })?
            }
            other => {
                return Err(Outcome::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("history takes _since, _count and _format, not '{other}'"),
                )
                .at(other.to_owned()))
            }
        }
    }
    let now = state.clock.now_ms();
    // Versions up to this moment (the first page's; a later page keeps it): the pages of one
    // walk through the history do not move when new versions arrive.
    let before = before.unwrap_or(now + 1);
    let principal = caller.principal.clone();
    let t = ty.clone();
    let found = state
        .with_auth(move |s| {
            // Every matching version is looked at, so that what may not be read is left out
            // without cutting the history short; more than MAX_MATCHES asks for a narrower
            // `_since` rather than being cut silently.
            let found = s.history_since(t.as_deref(), since, Some(before), MAX_MATCHES + 1)?;
            if found.len() as u64 > MAX_MATCHES {
                return Ok(None);
            }
            // Each version judged by the patient it belonged to (a tombstone by the patient of
            // what it deleted).
            Ok(Some(rapport_auth::readable(s, &principal, found, now)?))
        })
        .await?;
    let Some(found) = found else {
        return Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "too-costly",
            format!("more than {MAX_MATCHES} versions match; give a later _since"),
        )
        .at("_since"));
    };
    let total = found.len();
    let versions: Vec<StoredResource> = found.into_iter().skip(offset).take(count).collect();
    let mut entities: Vec<String> = Vec::new();
    for v in &versions {
        let e = format!("{}/{}", v.key.resource_type, v.key.id);
        if !entities.contains(&e) {
            entities.push(e);
        }
    }
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        Decision::Allow(rapport_access::policy::Basis::CareTeam),
        Action::List,
        None,
        entities,
        now,
    );
    record.basis = "readable-results".into();
    record.detail = format!(
        "history of {}: {} versions",
        ty.as_deref().unwrap_or("all types"),
        versions.len()
    );
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    let base = fhir_base(&state, headers);
    let entries: Vec<Value> = versions.iter().map(|v| history_entry(&base, v)).collect();
    let path = match &ty {
        Some(t) => format!("{base}/{t}/_history"),
        None => format!("{base}/_history"),
    };
    let page = |o: usize| {
        let mut q = vec![
            format!("_count={count}"),
            format!("_before={before}"),
            format!("_offset={o}"),
        ];
        if let Some(s) = since {
            q.push(format!(
                "_since={}",
                chrono::DateTime::from_timestamp_millis(s)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .replace('+', "%2B")
            ));
        }
        format!("{path}?{}", q.join("&"))
    };
    let mut links = vec![json!({"relation": "self", "url": page(offset)})];
    if offset + count < total {
        links.push(json!({"relation": "next", "url": page(offset + count)}));
    }
    if offset > 0 {
        links.push(json!({"relation": "previous", "url": page(offset.saturating_sub(count))}));
    }
    let body = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": links,
        "entry": entries,
    });
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response())
}

/// `GET /fhir/_history`.
async fn system_history(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    history_list(state, caller, None, &uri, &headers).await
}

async fn export_system(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    export::kick_off(state, caller, export::Level::System, &uri, &headers).await
}

async fn export_status(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    export::status(state, caller, &job, &headers).await
}

async fn export_cancel(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(job): Path<String>,
) -> Result<Response, Outcome> {
    export::cancel(state, caller, &job).await
}

async fn export_file(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((job, file)): Path<(String, String)>,
) -> Result<Response, Outcome> {
    export::file(state, caller, &job, &file).await
}

/// `GET /fhir/Group/{id}/$export`: the group's patient members, as far as the caller may see
/// them; reading the group itself is authorised and audited like a read.
async fn export_group(
    state: AppState,
    caller: Caller,
    id: String,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    check_type_and_id("Group", &id)?;
    let versions = versions_of(&state, "Group", &id).await?;
    let Some(current) = versions.last().filter(|v| !v.deleted) else {
        return Err(not_found("Group", &id));
    };
    authorise_read(&state, &caller, "Group", &versions, format!("Group/{id}")).await?;
    let group: Value = serde_json::from_str(&current.content).unwrap_or(Value::Null);
    let members = export::group_members(&group);
    export::kick_off(state, caller, export::Level::Group(members), uri, headers).await
}

/// `GET /fhir/{type}/{id}/${operation}`: the instance operations Rapport has.
async fn instance_operation(
    state: State<AppState>,
    caller: FhirCaller,
    Path((ty, id, operation)): Path<(String, String, String)>,
    q: Query<FormatParam>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    flag::refuse_write(&ty)?;
    match (ty.as_str(), operation.as_str()) {
        (_, "_history") => history(state, caller, Path((ty, id)), q, headers).await,
        ("Patient", "$everything") => everything(state, caller, Path(id), q, uri, headers).await,
        ("Group", "$export") => export_group(state.0, caller.0, id, &uri, &headers).await,
        _ => Err(Outcome::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("{ty}/{{id}}/{operation} is not an operation Rapport supports"),
        )),
    }
}

/// `GET /fhir/Patient/{id}/$everything` (patient-operation-everything.html): the patient, every
/// current resource of their compartment, and the resources those refer to outside it
/// (practitioners, organisations, locations, medications…) as far as the caller may read them,
/// as a searchset Bundle; `_type` and `_since` narrow it. Authorised as a read of the whole
/// record (a resource-level scope does not cover it) and audited as `Patient/id/*`.
async fn everything(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(id): Path<String>,
    Query(q): Query<FormatParam>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id("Patient", &id)?;
    let (mut types, mut since): (Option<Vec<String>>, Option<i64>) = (None, None);
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "_type" => types = Some(parse_types(&value)?),
            "_since" => since = Some(parse_since(&value)?),
            _ => {}
        }
    }
    let base = fhir_base(&state, &headers);
    let now = state.clock.now_ms();
    let (principal, pid) = (caller.principal.clone(), id.clone());
    let decision = state
        .with_auth(move |s| rapport_auth::authorize(s, &principal, &pid, Action::Read, now))
        .await?;
    let record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        decision,
        Action::Read,
        Some(&id),
        vec![format!("Patient/{id}/*")],
        now,
    );
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    if let Decision::Deny(d) = decision {
        return Err(Outcome::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            d.message(),
        ));
    }
    let (pid, principal) = (id.clone(), caller.principal.clone());
    let (resources, found, alerts) = state
        .with_auth(move |s| {
            let mut resources = s.patient_record(&pid)?;
            // The patient's alerts, as Flags (fhir/flag.rs), open and closed.
            let alerts = s.patient_alerts(&pid, true)?;
            let found = resources
                .iter()
                .any(|r| r.key.resource_type == "Patient" && r.key.id == pid);
            // What the record refers to outside the compartment (directory data), one level.
            let mut keys: Vec<ResourceKey> = Vec::new();
            let mut seen: std::collections::HashSet<ResourceKey> = Default::default();
            for r in &resources {
                for target in rapport_fhir::reference::references_in_text(&r.content) {
                    if let rapport_fhir::reference::ReferenceTarget::Literal {
                        resource_type,
                        id,
                        ..
                    } = rapport_fhir::reference::parse(&target)
                    {
                        let outside = resource_type != "Patient"
                            && rapport_fhir::search_param::patient_compartment_params(
                                resource_type,
                            )
                            .is_none();
                        let key = ResourceKey::new(resource_type, id);
                        if outside && seen.insert(key.clone()) {
                            keys.push(key);
                        }
                    }
                }
            }
            let referenced = s.read_many(&keys)?;
            resources.extend(rapport_auth::readable(s, &principal, referenced, now)?);
            Ok((resources, found, alerts))
        })
        .await?;
    if !found {
        return Err(not_found("Patient", &id));
    }
    let resources: Vec<StoredResource> = resources
        .into_iter()
        .filter(|r| {
            types
                .as_ref()
                .is_none_or(|t| t.contains(&r.key.resource_type))
                && since.is_none_or(|s| r.last_updated_ms >= s)
        })
        .collect();
    let flags: Vec<Value> = alerts
        .iter()
        .filter(|a| {
            types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == flag::TYPE))
                && since.is_none_or(|s| a.updated_ms >= s)
        })
        .map(|a| flag::flag_for(a, &caller.principal))
        .collect();
    // The Patient first, then the rest by type and id, so the answer is stable.
    let mut resources = resources;
    resources.sort_by(|a, b| {
        let rank = |r: &StoredResource| {
            (
                r.key.resource_type != "Patient",
                r.key.resource_type.clone(),
                r.key.id.clone(),
            )
        };
        rank(a).cmp(&rank(b))
    });
    // Each resource is already JSON text: splice it in rather than parse and serialise it again.
    let mut body = String::with_capacity(
        resources
            .iter()
            .map(|r| r.content.len() + 96)
            .sum::<usize>()
            + 256,
    );
    body.push_str(&format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":{},\"entry\":[",
        resources.len() + flags.len()
    ));
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"fullUrl\":{},\"resource\":",
            Value::String(format!("{base}/{}/{}", r.key.resource_type, r.key.id))
        ));
        body.push_str(&r.content);
        body.push_str(",\"search\":{\"mode\":\"match\"}}");
    }
    for (i, f) in flags.iter().enumerate() {
        if i > 0 || !resources.is_empty() {
            body.push(',');
        }
        let url = format!("{base}/Flag/{}", f["id"].as_str().unwrap_or_default());
        body.push_str(
            &json!({"fullUrl": url, "resource": f, "search": {"mode": "match"}}).to_string(),
        );
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body).into_response())
}

/// The JSON body of a create or update: a resource of the URL's type, valid as the importer
/// checks resources (FHIR R4 json.html, resource.html), else a 400 naming the element.
fn parse_body(ty: &str, body: &[u8]) -> Result<Value, Outcome> {
    let value: Value =
        serde_json::from_slice(rapport_fhir::bundle::strip_bom(body)).map_err(|e| {
            Outcome::new(
                StatusCode::BAD_REQUEST,
                "structure",
                format!("the body is not JSON: {e}"),
            )
        })?;
    match value.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == ty => {}
        Some(t) => {
            return Err(Outcome::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("the body is a {t}, the URL names {ty}"),
            )
            .at("resourceType"))
        }
        None => {
            return Err(Outcome::new(
                StatusCode::BAD_REQUEST,
                "required",
                "the body has no resourceType",
            )
            .at("resourceType"))
        }
    }
    let value = rapport_fhir::bundle::check_resource(value, 0).map_err(|e| {
        Outcome::new(StatusCode::BAD_REQUEST, "invalid", e.message).at(ty.to_owned())
    })?;
    // Bundles are validated entry by entry in the write (each entry's error names it).
    if ty != "Bundle" {
        let issues = rapport_fhir::validate::validate(&value);
        if !issues.is_empty() {
            return Err(Outcome::invalid_resource(&issues));
        }
    }
    Ok(value)
}

/// The patient a resource belongs to, from its content (Patient CompartmentDefinition).
fn patient_of_value(ty: &str, id: &str, v: &Value) -> Option<String> {
    rapport_fhir::index::patient_key(ty, id, &rapport_fhir::index::extract(v))
}

/// `Prefer: return=…` (http.html#ops): the body of a successful write.
fn write_response(
    state: &AppState,
    status: StatusCode,
    stored: Option<&StoredResource>,
    headers: &HeaderMap,
) -> Response {
    let prefer = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut response = match (stored, prefer) {
        (Some(_), p) if p.contains("return=minimal") => status.into_response(),
        (Some(r), p) if p.contains("return=OperationOutcome") => {
            let body = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational", "diagnostics": format!("{}/{} is at version {}", r.key.resource_type, r.key.id, r.version)}]});
            (
                status,
                [(header::CONTENT_TYPE, FHIR_JSON)],
                body.to_string(),
            )
                .into_response()
        }
        (Some(r), _) => (
            status,
            [(header::CONTENT_TYPE, FHIR_JSON)],
            r.content.clone(),
        )
            .into_response(),
        (None, _) => status.into_response(),
    };
    if let Some(r) = stored {
        let h = response.headers_mut();
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&format!("W/\"{}\"", r.version)).expect("a valid header"),
        );
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&http_date(r.last_updated_ms)).expect("a valid header"),
        );
        h.insert(
            header::LOCATION,
            HeaderValue::from_str(&format!(
                "{}/{}/{}/_history/{}",
                fhir_base(state, headers),
                r.key.resource_type,
                r.key.id,
                r.version
            ))
            .expect("a valid header"),
        );
    }
    response
}

/// May the caller write this resource? Creating a Patient is for care staff (who then join the
/// new patient's care team); any other write needs write access to the patient the resource
/// belongs to, before and after the change.
async fn authorise_write(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    patients: &[Option<String>],
    creating_patient: bool,
) -> Result<Decision, Outcome> {
    let now = state.clock.now_ms();
    let mut decision = None;
    if creating_patient {
        decision = Some(rapport_access::policy::decide_create_patient(
            &caller.principal,
        ));
    }
    for patient in patients {
        let (principal, pt, t) = (caller.principal.clone(), patient.clone(), ty.to_owned());
        let d = state
            .with_auth(move |s| {
                rapport_auth::authorize_resource(
                    s,
                    &principal,
                    pt.as_deref(),
                    &t,
                    Action::Write,
                    now,
                )
            })
            .await?;
        if !d.is_allowed() || decision.is_none() {
            decision = Some(d);
        }
        if !d.is_allowed() {
            break;
        }
    }
    Ok(decision.unwrap_or(Decision::Deny(rapport_access::policy::Denial::NoRole)))
}

/// [`authorise_write`], and when it refuses: the refusal audited (naming `patient` and
/// `entity`) and answered with a 403.
#[allow(clippy::too_many_arguments)]
async fn require_write(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    patients: &[Option<String>],
    creating_patient: bool,
    patient: Option<&str>,
    entity: String,
) -> Result<Decision, Outcome> {
    let decision = authorise_write(state, caller, ty, patients, creating_patient).await?;
    if let Decision::Deny(d) = decision {
        audit_refusal(state, caller, decision, patient, entity, false).await?;
        return Err(Outcome::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            d.message(),
        ));
    }
    Ok(decision)
}

/// An importer entry's request with its version condition (http.html#concurrency), if any.
fn entry_request(method: &str, url: String, expected: Option<i64>) -> Value {
    let mut request = json!({"method": method, "url": url});
    if let Some(v) = expected {
        request["ifMatch"] = json!(format!("W/\"{v}\""));
    }
    request
}

async fn audit_refusal(
    state: &AppState,
    caller: &Caller,
    decision: Decision,
    patient: Option<&str>,
    entity: String,
    failed: bool,
) -> Result<(), Outcome> {
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        decision,
        Action::Write,
        patient,
        vec![entity],
        state.clock.now_ms(),
    );
    if failed {
        record.outcome = rapport_access::audit::Outcome::Failed;
    }
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    Ok(())
}

/// Write one entry through the importer (same semantics as a transaction bundle), with the
/// caller's audit record in the same transaction. Returns the entry's outcome and the stored
/// version it left.
async fn write_entry(
    state: &AppState,
    caller: &Caller,
    decision: Decision,
    patient: Option<String>,
    entity: String,
    entry: Value,
) -> Result<(rapport_ingest::Action, ResourceKey, Option<StoredResource>), Outcome> {
    let now = state.clock.now_ms();
    let record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        decision,
        Action::Write,
        patient.as_deref(),
        vec![entity.clone()],
        now,
    );
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry]});
    let (report, refused) = write_unit(state, caller, bundle, record).await?;
    if let Some(e) = report.errors.first() {
        let (status, code) = error_status(e);
        let message = e.message.clone();
        let decision = if e.forbidden {
            Decision::Deny(
                refused
                    .first()
                    .map_or(rapport_access::policy::Denial::NoRole, |r| r.1),
            )
        } else {
            decision
        };
        audit_refusal(
            state,
            caller,
            decision,
            patient.as_deref(),
            entity,
            !e.forbidden,
        )
        .await?;
        return Err(Outcome::new(status, code, message));
    }
    let outcome = report.outcomes.first().cloned().ok_or_else(|| {
        Outcome::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the write left no outcome",
        )
    })?;
    let key = outcome.key.clone();
    let k = key.clone();
    let stored = state.with_store(move |s| s.read(&k)).await?;
    Ok((outcome.action, key, stored))
}

/// Apply a batch or transaction bundle on behalf of the caller, in one store transaction: the
/// importer decides which resource each entry is, then every change is authorised by
/// `rapport_access::policy::decide_change` (the patient it belongs to before and after, with the
/// caller's relationships gathered once) before anything is written; the trail gets one record
/// per patient written (from `template`) in the same transaction.
async fn write_unit(
    state: &AppState,
    caller: &Caller,
    bundle: Value,
    template: rapport_access::audit::AuditRecord,
) -> Result<
    (
        rapport_ingest::UnitReport,
        Vec<(Option<String>, rapport_access::policy::Denial)>,
    ),
    Outcome,
> {
    let now = state.clock.now_ms();
    let principal = caller.principal.clone();
    let unit = rapport_ingest::Unit {
        name: format!("FHIR API, {}", caller.principal.email),
        kind: "api",
        payload: rapport_ingest::Payload::Value(bundle),
    };
    Ok(state
        .with_auth(move |s| {
            let facts = rapport_auth::user_facts(s, &principal, None, now)?;
            // The patients of refused changes, for the caller to record the refusal.
            let refused = std::sync::Mutex::new(Vec::new());
            let guard = |changes: &[rapport_ingest::Change<'_>]| -> Vec<Option<String>> {
                let created: Vec<&str> = changes
                    .iter()
                    .filter(|c| {
                        c.action == rapport_ingest::Action::Created
                            && c.key.resource_type == "Patient"
                    })
                    .map(|c| c.key.id.as_str())
                    .collect();
                changes
                    .iter()
                    .map(|c| {
                        match rapport_access::policy::decide_change(
                            &principal,
                            &facts,
                            &c.key.resource_type,
                            c.old_patient,
                            c.new_patient,
                            &created,
                            now,
                        ) {
                            Decision::Allow(_) => None,
                            Decision::Deny(d) => {
                                let mut r = refused.lock().expect("not poisoned");
                                for p in [c.old_patient, c.new_patient] {
                                    let p = p.map(str::to_owned);
                                    if !r.iter().any(|(q, _)| *q == p) {
                                        r.push((p, d));
                                    }
                                }
                                Some(format!(
                                    "{}/{} may not be changed: {}",
                                    c.key.resource_type,
                                    c.key.id,
                                    d.message()
                                ))
                            }
                        }
                    })
                    .collect()
            };
            let on_behalf = rapport_ingest::OnBehalf {
                guard: &guard,
                audit: &template,
            };
            let report = rapport_ingest::apply_unit_audited(s, &unit, now, &on_behalf);
            let mut refused = refused.into_inner().expect("not poisoned");
            // A patient is named when one was involved; directory data only otherwise.
            if refused.iter().any(|(p, _)| p.is_some()) {
                refused.retain(|(p, _)| p.is_some());
            }
            Ok((report, refused))
        })
        .await?)
}

/// The HTTP status and OperationOutcome code of an entry's error.
fn error_status(e: &rapport_ingest::ImportError) -> (StatusCode, &'static str) {
    if e.forbidden {
        (StatusCode::FORBIDDEN, "forbidden")
    } else if e.conflict {
        (StatusCode::PRECONDITION_FAILED, "conflict")
    } else if e.retryable {
        (StatusCode::NOT_FOUND, "not-found")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "processing")
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// `POST /fhir` with a Bundle of type `batch` or `transaction` (http.html#transaction): the
/// importer's semantics (identities, `urn:uuid:` and conditional references, `ifNoneExist`,
/// conditional update and delete, `ifMatch`); a transaction is all or nothing, a batch applies
/// each good entry. Each change is authorised as the patient it touches (see [`write_unit`]); a
/// staff member who creates patients joins their care teams. GET entries are not run here yet:
/// they are answered with a 400 in a batch and refuse a transaction.
async fn batch_or_transaction(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    let bundle = parse_body("Bundle", &body)?;
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let transaction = match kind {
        "transaction" => true,
        "batch" => false,
        other => {
            return Err(Outcome::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("POST /fhir takes a batch or transaction Bundle, not '{other}'"),
            )
            .at("Bundle.type"))
        }
    };
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let gets: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.pointer("/request/method").and_then(Value::as_str) == Some("GET"))
        .map(|(i, _)| i)
        .collect();
    if transaction {
        if let Some(i) = gets.first() {
            return Err(Outcome::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "GET entries in a transaction are not supported yet; send reads separately",
            )
            .at(format!("Bundle.entry[{i}].request.method")));
        }
    }
    // Flags are derived from the alert rules: a transaction that would write one is refused
    // whole, naming the entry, before anything of it is written (in a batch, the importer
    // answers that entry alone).
    if let Some(i) = entries.iter().enumerate().position(|(i, e)| {
        transaction
            && !gets.contains(&i)
            && (e.pointer("/resource/resourceType").and_then(Value::as_str) == Some(flag::TYPE)
                || e.pointer("/request/url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| {
                        u == flag::TYPE || u.starts_with("Flag/") || u.starts_with("Flag?")
                    }))
    }) {
        return Err(flag::refuse_write(flag::TYPE)
            .expect_err("Flag writes are refused")
            .at(format!("Bundle.entry[{i}]")));
    }
    let now = state.clock.now_ms();
    let mut template = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        Decision::Allow(rapport_access::policy::Basis::CareTeam),
        Action::Write,
        None,
        Vec::new(),
        now,
    );
    template.basis = "authorised-per-change".into();
    template.detail = format!("{kind} of {} entries", entries.len());
    let (report, refused) = write_unit(&state, &caller, bundle, template).await?;
    // Refused changes write nothing of theirs: each patient refused gets a denied record.
    for (patient, denial) in &refused {
        audit_refusal(
            &state,
            &caller,
            Decision::Deny(*denial),
            patient.as_deref(),
            "Bundle".into(),
            false,
        )
        .await?;
    }

    if transaction && !report.errors.is_empty() {
        // Nothing was written. The first error decides the status; all are listed.
        let (status, _) = error_status(&report.errors[0]);
        if refused.is_empty() {
            audit_refusal(
                &state,
                &caller,
                Decision::Allow(rapport_access::policy::Basis::CareTeam),
                None,
                "Bundle".into(),
                true,
            )
            .await?;
        }
        let issues: Vec<Value> = report
            .errors
            .iter()
            .map(|e| {
                let mut issue = json!({"severity": "error", "code": error_status(e).1, "diagnostics": e.message});
                if let Some(i) = e.entry {
                    issue["expression"] = json!([format!("Bundle.entry[{i}]")]);
                }
                issue
            })
            .collect();
        let body = json!({"resourceType": "OperationOutcome", "issue": issues});
        return Ok((
            status,
            [(header::CONTENT_TYPE, FHIR_JSON)],
            body.to_string(),
        )
            .into_response());
    }

    // Created patients: their creator joins the care team (as with a single create).
    for o in &report.outcomes {
        if o.action == rapport_ingest::Action::Created && o.key.resource_type == "Patient" {
            let (actor, source, email, pid) = (
                rapport_auth::actor_of(&caller.principal),
                caller.source.clone(),
                caller.principal.email.to_string(),
                o.key.id.clone(),
            );
            state
                .with_auth(move |s| {
                    rapport_auth::assign(s, &actor, &source, &email, &pid, true, now).map(|_| ())
                })
                .await?;
        }
    }
    let keys: Vec<ResourceKey> = report.outcomes.iter().map(|o| o.key.clone()).collect();
    let stored = state
        .with_store(move |s| {
            let mut out = std::collections::HashMap::new();
            for k in keys.into_iter().filter(|k| !k.id.is_empty()) {
                if let Some(r) = s.read(&k)? {
                    out.insert(k, r);
                }
            }
            Ok(out)
        })
        .await?;
    let base = fhir_base(&state, &headers);
    let mut response_entries: Vec<Value> = vec![Value::Null; entries.len()];
    for o in &report.outcomes {
        let status = match o.action {
            rapport_ingest::Action::Created => StatusCode::CREATED,
            rapport_ingest::Action::Deleted => StatusCode::NO_CONTENT,
            rapport_ingest::Action::Skipped if o.key.id.is_empty() => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        };
        let mut response = json!({"status": status_line(status)});
        if let Some(r) = stored.get(&o.key) {
            response["location"] = json!(format!(
                "{}/{}/_history/{}",
                r.key.resource_type, r.key.id, r.version
            ));
            response["etag"] = json!(format!("W/\"{}\"", r.version));
            response["lastModified"] =
                json!(chrono::DateTime::from_timestamp_millis(r.last_updated_ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        let mut entry = json!({"response": response});
        if let Some(r) = stored.get(&o.key).filter(|r| !r.deleted) {
            entry["fullUrl"] = json!(format!("{base}/{}/{}", r.key.resource_type, r.key.id));
            if let Ok(v) = serde_json::from_str::<Value>(&r.content) {
                entry["resource"] = v;
            }
        }
        if let Some(slot) = response_entries.get_mut(o.index) {
            *slot = entry;
        }
    }
    let mut failed = Vec::new();
    for e in &report.errors {
        failed.push(e.entry);
        let (status, code) = error_status(e);
        let entry = json!({"response": {"status": status_line(status), "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": e.message}]}}});
        match e.entry.and_then(|i| response_entries.get_mut(i)) {
            Some(slot) => *slot = entry,
            None => {
                return Err(Outcome::new(
                    StatusCode::BAD_REQUEST,
                    code,
                    e.message.clone(),
                ))
            }
        }
    }
    for i in gets {
        response_entries[i] = json!({"response": {"status": "400 Bad Request", "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "GET entries in a batch are not supported yet"}]}}});
    }
    let body = json!({
        "resourceType": "Bundle",
        "type": if transaction { "transaction-response" } else { "batch-response" },
        "entry": response_entries,
    });
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response())
}

/// 201 for a write that created its resource, 200 otherwise (http.html#create, #update).
fn write_status(action: rapport_ingest::Action) -> StatusCode {
    if action == rapport_ingest::Action::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// `_type=A,B` of history, `$everything` and `$export`: resource types, each checked.
pub(crate) fn parse_types(value: &str) -> Result<Vec<String>, Outcome> {
    let list: Vec<String> = value
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    match list
        .iter()
        .find(|t| !rapport_fhir::search_param::is_resource_type(t))
    {
        Some(bad) => Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("_type: '{bad}' is not a FHIR R4 resource type"),
        )
        .at("_type")),
        None => Ok(list),
    }
}

/// `_since=…`: the start of the instant or date given, in ms.
pub(crate) fn parse_since(value: &str) -> Result<i64, Outcome> {
    rapport_fhir::date::parse_range(value)
        .map(|r| r.start)
        .ok_or_else(|| {
            Outcome::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("_since '{value}' is not an instant or a date"),
            )
            .at("_since")
        })
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Outcome> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(e) => rapport_fhir::bundle::parse_etag(e)
            .map(Some)
            .map_err(|m| Outcome::new(StatusCode::BAD_REQUEST, "invalid", m).at("If-Match")),
        None => Ok(None),
    }
}

/// `POST /fhir/{type}` (http.html#create), with `If-None-Exist` (conditional create).
async fn create(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(ty): Path<String>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id(&ty, "new")?;
    flag::refuse_write(&ty)?;
    let mut resource = parse_body(&ty, &body)?;
    // A create ignores any id in the body (http.html#create): the server assigns one.
    if let Some(o) = resource.as_object_mut() {
        o.remove("id");
    }
    // The id the new resource will get: the importer takes it from the entry's urn:uuid.
    let id = uuid::Uuid::new_v4().to_string();
    let patient = patient_of_value(&ty, &id, &resource);
    let creating_patient = ty == "Patient";
    let patients = if creating_patient {
        Vec::new()
    } else {
        vec![patient.clone()]
    };
    let decision = require_write(
        &state,
        &caller,
        &ty,
        &patients,
        creating_patient,
        patient.as_deref(),
        ty.clone(),
    )
    .await?;
    let mut request = json!({"method": "POST", "url": ty});
    if let Some(cond) = headers.get("if-none-exist").and_then(|v| v.to_str().ok()) {
        request["ifNoneExist"] = json!(cond);
    }
    let entry =
        json!({"fullUrl": format!("urn:uuid:{id}"), "resource": resource, "request": request});
    let (action, key, stored) =
        write_entry(&state, &caller, decision, patient, ty.clone(), entry).await?;
    if creating_patient && action == rapport_ingest::Action::Created {
        // The creator joins the new patient's care team (issue 3: access follows care).
        let (actor, source, email, pid, now) = (
            rapport_auth::actor_of(&caller.principal),
            caller.source.clone(),
            caller.principal.email.to_string(),
            key.id.clone(),
            state.clock.now_ms(),
        );
        state
            .with_auth(move |s| {
                rapport_auth::assign(s, &actor, &source, &email, &pid, true, now).map(|_| ())
            })
            .await?;
    }
    let status = write_status(action);
    Ok(write_response(&state, status, stored.as_ref(), &headers))
}

/// `PUT /fhir/{type}/{id}` (http.html#update): update, or create with the client's id; with
/// `If-Match`, only over that version (412 otherwise, hard case B22).
async fn update(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id(&ty, &id)?;
    flag::refuse_write(&ty)?;
    let expected = if_match(&headers)?;
    let resource = parse_body(&ty, &body)?;
    update_resource(&state, &caller, &ty, &id, resource, expected, &headers).await
}

/// Update `ty/id` with `resource` (over version `expected`, if given): authorised as the patient
/// the resource belongs to before and after, written through the importer, audited.
async fn update_resource(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    id: &str,
    mut resource: Value,
    expected: Option<i64>,
    headers: &HeaderMap,
) -> Result<Response, Outcome> {
    let (state, caller, ty, id) = (state.clone(), caller, ty.to_owned(), id.to_owned());
    match resource.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id != id => {
            return Err(Outcome::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("the body's id '{body_id}' is not the URL's '{id}'"),
            )
            .at(format!("{ty}.id")))
        }
        Some(_) => {}
        None => {
            resource["id"] = json!(id);
        }
    }
    let current = versions_of(&state, &ty, &id)
        .await?
        .into_iter()
        .last()
        .filter(|v| !v.deleted);
    let new_patient = patient_of_value(&ty, &id, &resource);
    let old_patient = current.as_ref().and_then(patient_of);
    let mut patients = vec![new_patient.clone()];
    if old_patient != new_patient && current.is_some() {
        patients.push(old_patient);
    }
    let decision = require_write(
        &state,
        caller,
        &ty,
        &patients,
        false,
        new_patient.as_deref(),
        format!("{ty}/{id}"),
    )
    .await?;
    let request = entry_request("PUT", format!("{ty}/{id}"), expected);
    let entry = json!({"resource": resource, "request": request});
    let (action, _, stored) = write_entry(
        &state,
        caller,
        decision,
        new_patient,
        format!("{ty}/{id}"),
        entry,
    )
    .await?;
    let status = write_status(action);
    Ok(write_response(&state, status, stored.as_ref(), headers))
}

/// `PUT /fhir/{type}?criteria` (http.html#cond-update): no match creates, one match updates that
/// resource, several are a 412. The resource to change is only known once the criteria are
/// searched, so the change is authorised inside the write (see [`write_unit`]).
async fn conditional_update(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(ty): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    check_type_and_id(&ty, "new")?;
    flag::refuse_write(&ty)?;
    let criteria = criteria_of(&uri)?;
    let resource = parse_body(&ty, &body)?;
    let request = entry_request("PUT", format!("{ty}?{criteria}"), if_match(&headers)?);
    let entry = json!({"resource": resource, "request": request});
    let (action, _, stored) = write_guarded(&state, &caller, ty.clone(), entry).await?;
    let status = write_status(action);
    Ok(write_response(&state, status, stored.as_ref(), &headers))
}

/// `DELETE /fhir/{type}?criteria` (http.html#3.1.0.7.1): deletes the one match (nothing to do
/// without a match: 204); several matches are a 412.
async fn conditional_delete(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(ty): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, Outcome> {
    check_type_and_id(&ty, "new")?;
    flag::refuse_write(&ty)?;
    let criteria = criteria_of(&uri)?;
    let entry = json!({"request": {"method": "DELETE", "url": format!("{ty}?{criteria}")}});
    write_guarded(&state, &caller, ty, entry).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The search criteria of a conditional interaction: the query string less `_format`.
fn criteria_of(uri: &axum::http::Uri) -> Result<String, Outcome> {
    let criteria: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_format="))
        .collect();
    if criteria.is_empty() {
        return Err(Outcome::new(
            StatusCode::BAD_REQUEST,
            "required",
            "a conditional update or delete needs search criteria (Type?identifier=…)",
        ));
    }
    Ok(criteria.join("&"))
}

/// Write one entry whose target is only known once the importer has resolved it (conditional
/// forms): every change is authorised in the write, refusals and failures are audited.
async fn write_guarded(
    state: &AppState,
    caller: &Caller,
    entity: String,
    entry: Value,
) -> Result<(rapport_ingest::Action, ResourceKey, Option<StoredResource>), Outcome> {
    let now = state.clock.now_ms();
    let mut template = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        Decision::Allow(rapport_access::policy::Basis::CareTeam),
        Action::Write,
        None,
        vec![entity.clone()],
        now,
    );
    template.basis = "authorised-per-change".into();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry]});
    let (report, refused) = write_unit(state, caller, bundle, template).await?;
    if let Some(e) = report.errors.first() {
        let (status, code) = error_status(e);
        if refused.is_empty() {
            audit_refusal(
                state,
                caller,
                Decision::Allow(rapport_access::policy::Basis::CareTeam),
                None,
                entity.clone(),
                true,
            )
            .await?;
        }
        for (patient, denial) in &refused {
            audit_refusal(
                state,
                caller,
                Decision::Deny(*denial),
                patient.as_deref(),
                entity.clone(),
                false,
            )
            .await?;
        }
        return Err(Outcome::new(status, code, e.message.clone()));
    }
    let outcome = report.outcomes.first().cloned().ok_or_else(|| {
        Outcome::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the write left no outcome",
        )
    })?;
    if outcome.action == rapport_ingest::Action::Skipped {
        // Nothing matched: no data was touched, but the request is recorded all the same.
        let mut record = rapport_auth::access_record(
            &caller.principal,
            &caller.source,
            Decision::Allow(rapport_access::policy::Basis::CareTeam),
            Action::Write,
            None,
            vec![entity],
            now,
        );
        record.basis = "authorised-per-change".into();
        record.detail = "no resource matched".into();
        state
            .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
            .await?;
    }
    let key = outcome.key.clone();
    let k = key.clone();
    let stored = if key.id.is_empty() {
        None
    } else {
        state.with_store(move |s| s.read(&k)).await?
    };
    Ok((outcome.action, key, stored))
}

/// `PATCH /fhir/{type}/{id}` with a JSON Patch document (`application/json-patch+json`,
/// RFC 6902; http.html#patch): applied to the current version, then written as an update over
/// that very version (a concurrent change in between is a 412, not a lost update). `If-Match`,
/// when given, must name the current version.
async fn patch_resource(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Query<FormatParam>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    check_format(&q, &headers)?;
    check_type_and_id(&ty, &id)?;
    flag::refuse_write(&ty)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json-patch+json") {
        return Err(Outcome::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "PATCH takes a JSON Patch document (Content-Type: application/json-patch+json)",
        ));
    }
    let operations: json_patch::Patch = serde_json::from_slice(&body).map_err(|e| {
        Outcome::new(
            StatusCode::BAD_REQUEST,
            "structure",
            format!("the body is not a JSON Patch document: {e}"),
        )
    })?;
    let versions = versions_of(&state, &ty, &id).await?;
    let Some(current) = versions.last() else {
        return Err(not_found(&ty, &id));
    };
    if current.deleted {
        return Ok(gone(&ty, &id, current.version));
    }
    // Authorised before the patch is looked at (a `test` operation would otherwise tell what the
    // record holds); the update below checks again with the new content and leaves the request's
    // one audit record, or a refusal or failure here leaves it.
    let patient = patient_of(current);
    let entity = format!("{ty}/{id}");
    let decision = require_write(
        &state,
        &caller,
        &ty,
        std::slice::from_ref(&patient),
        false,
        patient.as_deref(),
        entity.clone(),
    )
    .await?;
    let failed = |outcome: Outcome| {
        let (state, caller, patient, entity) = (&state, &caller, patient.clone(), entity.clone());
        async move {
            audit_refusal(state, caller, decision, patient.as_deref(), entity, true).await?;
            Err::<Response, Outcome>(outcome)
        }
    };
    if let Some(expected) = if_match(&headers)? {
        if expected != current.version {
            return failed(Outcome::new(
                StatusCode::PRECONDITION_FAILED,
                "conflict",
                format!(
                    "{ty}/{id} is at version W/\"{}\", not W/\"{expected}\"",
                    current.version
                ),
            ))
            .await;
        }
    }
    let mut resource: Value = serde_json::from_str(&current.content).map_err(|e| {
        Outcome::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("the stored resource does not parse: {e}"),
        )
    })?;
    if let Err(e) = json_patch::patch(&mut resource, &operations) {
        return failed(Outcome::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            format!("the patch does not apply: {e}"),
        ))
        .await;
    }
    if resource.get("resourceType").and_then(Value::as_str) != Some(ty.as_str())
        || resource.get("id").and_then(Value::as_str) != Some(id.as_str())
    {
        return failed(Outcome::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            "a patch may not change resourceType or id",
        ))
        .await;
    }
    // meta.versionId and meta.lastUpdated are the store's to set.
    if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
    }
    let body = serde_json::to_vec(&resource).expect("JSON serialises");
    let resource = parse_body(&ty, &body)?;
    update_resource(
        &state,
        &caller,
        &ty,
        &id,
        resource,
        Some(current.version),
        &headers,
    )
    .await
}

/// `DELETE /fhir/{type}/{id}` (http.html#delete): a tombstone version; 204.
async fn remove(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_type_and_id(&ty, &id)?;
    flag::refuse_write(&ty)?;
    let expected = if_match(&headers)?;
    let current = versions_of(&state, &ty, &id)
        .await?
        .into_iter()
        .last()
        .filter(|v| !v.deleted);
    let Some(current) = current else {
        // Nothing to delete (or already deleted): the spec allows 204 (http.html#delete).
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let patient = patient_of(&current);
    let decision = require_write(
        &state,
        &caller,
        &ty,
        std::slice::from_ref(&patient),
        false,
        patient.as_deref(),
        format!("{ty}/{id}"),
    )
    .await?;
    let request = entry_request("DELETE", format!("{ty}/{id}"), expected);
    write_entry(
        &state,
        &caller,
        decision,
        patient,
        format!("{ty}/{id}"),
        json!({"request": request}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The search parameters a type supports (FHIR R4 search.html): every indexed one (composite and
/// special parameters are not generated), with `_id` and `_lastUpdated`. Listed in the
/// CapabilityStatement.
fn searchable(ty: &str) -> Vec<&'static rapport_fhir::search_param::SearchParamDef> {
    rapport_fhir::search_param::params_for(ty).iter().collect()
}

const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;
/// Matches looked at per search; more is a 400 asking for narrower criteria (no silent cut).
const MAX_MATCHES: u64 = 10_000;

/// `GET /fhir/{type}?…` (search.html), first part: token (`system|code`, `|code`, `code`),
/// string (starts with, accents and case ignored), reference (`Type/id`), date (prefixes eq ne
/// gt lt ge le sa eb ap, compared at the value's precision) and `_id`, all
/// criteria combined with AND; `_count` and `_offset` paging. Unknown or unsupported parameters
/// are ignored with a warning, or refused with `Prefer: handling=strict`. Only what the caller
/// may read is returned or counted.
async fn search(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(ty): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    search_in(state, caller, ty, uri.query().unwrap_or(""), headers).await
}

/// `POST /fhir/{type}/_search` (search.html#Introduction): the parameters in an
/// `application/x-www-form-urlencoded` body (and the URL), kept out of URLs and their logs.
async fn search_post(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(ty): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Outcome> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form && !body.is_empty() {
        return Err(Outcome::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "_search takes its parameters as application/x-www-form-urlencoded",
        ));
    }
    let body = std::str::from_utf8(&body)
        .map_err(|_| Outcome::new(StatusCode::BAD_REQUEST, "invalid", "the form is not UTF-8"))?;
    let raw: Vec<&str> = [uri.query().unwrap_or(""), body.trim()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    search_in(state, caller, ty, &raw.join("&"), headers).await
}

async fn search_in(
    state: AppState,
    caller: Caller,
    ty: String,
    raw: &str,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    if ty == flag::TYPE {
        return flag::search(state, caller, raw, &headers).await;
    }
    search::run(state, caller, ty, raw, headers).await
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}
