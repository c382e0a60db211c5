//! Rapport's HTTP layer: the care team's console (server-rendered HTML, no JavaScript build
//! step), sign-in, the admin pages, the FHIR API, SMART App Launch and the health check. This is
//! the only crate that knows HTTP; handlers adapt requests to `rapport-auth` and store calls and
//! render the results.
//!
//! Every route is declared once, in [`routes`], with what it touches ([`RouteAccess`]); the
//! authorisation matrix test walks that list, so a route cannot be added without being covered.
#![forbid(unsafe_code)]

mod access;
mod admin;
mod caller;
mod console;
mod error;
mod fhir;
mod form;
mod interfaces;
mod login;
mod page;
mod plans;
mod security;
mod smart;
mod today;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use rapport_access::session::{LockoutPolicy, SessionPolicy};
use rapport_store::Store;

pub use caller::Caller;
pub use error::WebError;

/// Security settings of the web layer.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session: SessionPolicy,
    pub lockout: LockoutPolicy,
    /// Mark cookies Secure (the site is served over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Failed sign-in attempts allowed per client address per 5 minutes. Behind a reverse proxy
    /// every user shares the proxy's address, hence a generous default.
    pub sign_in_attempts_per_address: u32,
    /// The public address (`https://rapport.example.org`, no trailing slash) for absolute URLs in
    /// FHIR responses; `None`: taken from each request's Host header.
    pub public_url: Option<String>,
    /// Where bulk export jobs write their NDJSON files (`rapport serve`: `DATA_DIR/exports`).
    pub export_dir: std::path::PathBuf,
    /// The alert rules' parameters, and the administrator's file they came from (shown at
    /// /admin/alerts; `None`: the compiled-in defaults).
    pub alert_rules: Arc<rapport_alerts::Config>,
    pub alert_rules_file: Option<(std::path::PathBuf, String)>,
    /// How often the sweep re-evaluates every patient's time-based rules.
    pub alert_sweep_every_ms: i64,
    /// Whether the running server evaluates alerts (off only for benchmarks that measure a
    /// page without the evaluator working beside it).
    pub alert_evaluation: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            secure_cookies: false,
            sign_in_attempts_per_address: 100,
            public_url: None,
            export_dir: std::env::temp_dir().join("rapport-exports"),
            alert_rules: Arc::new(rapport_alerts::Config::default()),
            alert_rules_file: None,
            alert_sweep_every_ms: 15 * 60 * 1000,
            alert_evaluation: true,
        }
    }
}

/// The time, with an offset that tests move forward to travel in time.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Failed sign-ins per client address and per unknown e-mail in the current window (in memory:
/// a restart forgets; the per-account lockout in the database does not).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    by_address: Mutex<HashMap<String, (i64, u32)>>,
    by_email: Mutex<HashMap<String, (i64, i64)>>,
}

impl Throttle {
    const WINDOW_MS: i64 = 5 * 60 * 1000;

    fn prune<V>(map: &mut HashMap<String, (i64, V)>, now_ms: i64, keep_ms: i64) {
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now_ms - *start < keep_ms);
        }
    }

    /// Whether the address has used up its failed attempts in this window.
    pub(crate) fn address_blocked(&self, address: &str, limit: u32, now_ms: i64) -> bool {
        let map = self.by_address.lock().expect("throttle lock");
        map.get(address)
            .is_some_and(|(start, n)| now_ms - start < Self::WINDOW_MS && *n >= limit)
    }

    /// Count a failed attempt from `address`.
    pub(crate) fn failed(&self, address: &str, now_ms: i64) {
        let mut map = self.by_address.lock().expect("throttle lock");
        Self::prune(&mut map, now_ms, Self::WINDOW_MS);
        let entry = map.entry(address.to_owned()).or_insert((now_ms, 0));
        if now_ms - entry.0 >= Self::WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
    }

    /// Count a failure for an e-mail with no account (or a wrong password); true once it has
    /// failed as often as locks a real account, until the lock would have ended.
    pub(crate) fn email_failed(&self, email: &str, policy: LockoutPolicy, now_ms: i64) -> bool {
        let mut map = self.by_email.lock().expect("throttle lock");
        Self::prune(&mut map, now_ms, policy.lock_ms);
        let entry = map.entry(email.to_owned()).or_insert((now_ms, 0));
        if now_ms - entry.0 >= policy.lock_ms {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
        entry.1 >= policy.max_failures
    }

    /// A successful sign-in starts the e-mail's count again, as the account's does.
    pub(crate) fn email_succeeded(&self, email: &str) {
        self.by_email.lock().expect("throttle lock").remove(email);
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    pub clock: Arc<Clock>,
    pub(crate) throttle: Arc<Throttle>,
    /// Bumped whenever alerts change (the evaluator, a person's action): the Today page's
    /// live refresh listens to it.
    pub alert_events: Arc<tokio::sync::watch::Sender<u64>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        AppState {
            store,
            settings,
            clock: Arc::new(Clock::default()),
            throttle: Arc::new(Throttle::default()),
            alert_events: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

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

    /// Run a blocking `rapport-auth` call off the async executor.
    pub(crate) async fn with_auth<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> rapport_auth::Result<T> + Send + 'static,
    ) -> Result<T, WebError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| WebError::Internal(format!("store task failed: {e}")))?
            .map_err(WebError::from)
    }
}

/// What a route touches, and so who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAccess {
    /// Anyone (sign-in page, health check, style sheet).
    Public,
    /// Any signed-in user; no patient data.
    SignedIn,
    /// Admins only; no clinical data.
    Admin,
    /// Patients in a list: only those the user may see.
    PatientList,
    /// One patient's record, read.
    PatientRead,
    /// One patient's record, added to or changed.
    PatientWrite,
    /// The care team's work on a patient's alerts, tasks and care plans: a write that only care
    /// staff may make (`rapport_access::policy::decide_care_work`), never the patient or a
    /// caregiver.
    CareWork,
    /// Emergency access to one patient.
    BreakGlass,
}

impl RouteAccess {
    pub fn touches_patient_data(self) -> bool {
        matches!(
            self,
            RouteAccess::PatientList
                | RouteAccess::PatientRead
                | RouteAccess::PatientWrite
                | RouteAccess::CareWork
                | RouteAccess::BreakGlass
        )
    }
}

/// One route: method, path (axum syntax) and what it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: RouteAccess,
}

/// Routes and their specs, built together so that the list cannot drift from the router.
pub(crate) struct RouteBook {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl RouteBook {
    fn new() -> Self {
        RouteBook {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    pub(crate) fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: RouteAccess,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.specs.push(RouteSpec {
            method,
            path,
            access,
        });
        // The FHIR API takes whole bundles (a Synthea patient is megabytes) and answers every
        // error, the framework's own included (413, 405, 415), as an OperationOutcome.
        let handler = if path.starts_with("/fhir") {
            let handler: MethodRouter<AppState> = handler
                .layer(axum::extract::DefaultBodyLimit::max(fhir::MAX_BODY_BYTES))
                .layer(axum::middleware::from_fn(fhir::outcome_errors));
            handler.layer(fhir::cors())
        } else {
            handler
        };
        self.router = self.router.route(path, handler);
        self
    }
}

fn book() -> RouteBook {
    let book = RouteBook::new()
        .add("GET", "/healthz", RouteAccess::Public, get(healthz))
        .add(
            "GET",
            "/static/rapport.css",
            RouteAccess::Public,
            get(style_sheet),
        );
    let book = login::routes(book);
    let book = console::routes(book);
    let book = fhir::routes(book);
    let book = smart::routes(book);
    let book = interfaces::routes(book);
    let book = today::routes(book);
    let book = plans::routes(book);
    admin::routes(book)
}

/// Every route of the application with what it touches.
pub fn routes() -> Vec<RouteSpec> {
    book().specs
}

/// All routes of the application, with the security layers.
pub fn router(state: AppState) -> Router {
    let router = book().router.fallback(|uri: axum::http::Uri| async move {
        if uri.path() == "/fhir" || uri.path().starts_with("/fhir/") {
            axum::response::IntoResponse::into_response(fhir::unknown_path(&uri))
        } else {
            axum::response::IntoResponse::into_response(WebError::NotFound)
        }
    });
    security::harden(router, state.settings.secure_cookies).with_state(state)
}

/// 200 once the store answers a query.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, WebError> {
    let backend = state.store.backend();
    state.with_store(|s| s.counts_by_type().map(|_| ())).await?;
    Ok(Json(serde_json::json!({"status": "ok", "store": backend})))
}

async fn style_sheet() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        page::STYLE,
    )
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
