//! SMART App Launch for third-party apps: registering an app, the authorization code flow with
//! PKCE, and the exchange of a code for an access token (SMART App Launch 1.0 and 2.0,
//! standalone launch; RFC 6749 §4.1; RFC 7636 with `S256` only).
//!
//! An app is a registered client: public (a browser or phone app, which proves possession of its
//! code with PKCE alone) or confidential (PKCE and a secret). A person signed in to Rapport allows
//! it some SMART scopes, narrowed to what their roles allow ([`grantable_scopes`]); the code that
//! results lives ten minutes, is used once, and is exchanged for an ordinary API token of that
//! person with those scopes, living one hour. Everything the app then does on the FHIR API goes
//! through the same authorisation point and audit trail as any other token's request: a scope
//! only ever narrows what the account may do.
//!
//! Every authorisation (allowed or declined), every token issued, every failed exchange of a
//! known code and every change to an app is audited. Errors are [`SmartError`]s, one variant per
//! RFC 6749 error code; the web layer turns them into redirects or JSON answers.

use rapport_access::audit::{Actor, AuditAction, AuditRecord, Outcome};
use rapport_access::policy::{Credential, Principal};
use rapport_access::role::Role;
use rapport_access::scope::{format_scopes, Context, Scope};
use rapport_access::secret::{hash_secret, is_pkce_verifier, new_secret, pkce_s256, secrets_equal};
use rapport_store::{
    Durability, OAuthClientRecord, OAuthCodeRecord, Store, StoreError, TakenCode, UserRecord,
};
use serde_json::{json, Value};

use crate::accounts::{change_record, insert_new_token, is_resource_type};
use crate::{actor_of, AuthError};

/// How long a code waits for its exchange (RFC 6749 §4.1.2: "a maximum authorization code
/// lifetime of 10 minutes is RECOMMENDED").
pub const CODE_LIFETIME_MS: i64 = 10 * 60_000;

/// How long an app's access token lives, in seconds (the token response's `expires_in`).
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;

/// Prefix of client secrets, so that one leaked into a file or a log is recognisable.
pub const CLIENT_SECRET_PREFIX: &str = "rps_";

/// Scopes accepted in a request that grant no resource access and are not stored: `openid` and
/// `fhirUser` ask for an OpenID Connect id token and `online_access` / `offline_access` for a
/// refresh token, none of which Rapport issues (the token response's `scope` says what was
/// granted). `launch/patient` is handled on its own: it asks for a patient in context.
const ACCEPTED_NOT_GRANTED: [&str; 4] = ["openid", "fhirUser", "online_access", "offline_access"];

/// What went wrong, as the RFC 6749 error codes (§4.1.2.1 for the authorization endpoint, §5.2
/// for the token endpoint). The message is the `error_description`: it names the problem and
/// never carries patient data.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    /// `invalid_request`: a parameter missing, repeated, malformed or wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_client`: unknown or disabled app, or its authentication failed.
    #[error("{0}")]
    InvalidClient(String),
    /// `invalid_grant`: the code is unknown, used, expired, for another app or redirect URI, or
    /// the PKCE verifier does not match it.
    #[error("{0}")]
    InvalidGrant(String),
    /// `unsupported_grant_type`: anything but `authorization_code`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// `unsupported_response_type`: anything but `code`.
    #[error("{0}")]
    UnsupportedResponseType(String),
    /// `invalid_scope`: an unknown scope, or none that the account may grant.
    #[error("{0}")]
    InvalidScope(String),
    /// `access_denied`: the person declined, or may not authorise apps this way.
    #[error("{0}")]
    AccessDenied(String),
    /// `server_error`: the details are logged, not sent.
    #[error(transparent)]
    Server(#[from] AuthError),
}

impl From<StoreError> for SmartError {
    fn from(e: StoreError) -> Self {
        SmartError::Server(AuthError::Store(e))
    }
}

impl SmartError {
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            SmartError::InvalidRequest(_) => "invalid_request",
            SmartError::InvalidClient(_) => "invalid_client",
            SmartError::InvalidGrant(_) => "invalid_grant",
            SmartError::UnsupportedGrantType(_) => "unsupported_grant_type",
            SmartError::UnsupportedResponseType(_) => "unsupported_response_type",
            SmartError::InvalidScope(_) => "invalid_scope",
            SmartError::AccessDenied(_) => "access_denied",
            SmartError::Server(_) => "server_error",
        }
    }

    /// The `error_description` for the app: the reason, or nothing of a server error's details.
    pub fn description(&self) -> String {
        match self {
            SmartError::Server(_) => "the server could not complete the request".into(),
            other => other.to_string(),
        }
    }
}

type SmartResult<T> = std::result::Result<T, SmartError>;

// ---------------------------------------------------------------------------------------------
// Registration

/// An app to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Shown to people on the consent page.
    pub name: String,
    /// Where codes may be sent: absolute https URLs, or http://localhost and http://127.0.0.1
    /// ones for an app running on the person's own computer (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// A confidential client (a server-side app) gets a secret; a public one relies on PKCE.
    pub confidential: bool,
}

/// A registered app: its id and, for a confidential client, its secret (shown only this once).
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub secret: Option<String>,
}

/// Whether `uri` may be registered as a redirect URI. Requests must later name it exactly.
pub fn check_redirect_uri(uri: &str) -> std::result::Result<(), String> {
    let refuse = |why: &str| Err(format!("redirect URI '{uri}' {why}"));
    if uri.len() > 2000 {
        return refuse("is longer than 2000 characters");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("contains spaces or control characters");
    }
    let Ok(url) = url::Url::parse(uri) else {
        return refuse("is not an absolute URL");
    };
    if url.fragment().is_some() {
        return refuse("must not have a fragment (RFC 6749 §3.1.2)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("must not carry a user name or password");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if matches!(url.host_str(), Some("localhost" | "127.0.0.1")) => Ok(()),
        _ => refuse(
            "must be an https URL, or an http://localhost or http://127.0.0.1 URL for an app on the person's own computer",
        ),
    }
}

/// 128 random bits as 32 lower-case hex digits: public, unguessable, and safe on a command line.
fn new_client_id() -> String {
    hash_secret(&new_secret())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Register an app (audited).
pub fn register_client(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    new: &NewClient,
    now_ms: i64,
) -> crate::Result<RegisteredClient> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid(
            "an app's name has 1 to 100 characters".into(),
        ));
    }
    let mut uris: Vec<String> = Vec::new();
    for uri in &new.redirect_uris {
        let uri = uri.trim();
        check_redirect_uri(uri).map_err(AuthError::Invalid)?;
        if !uris.iter().any(|u| u == uri) {
            uris.push(uri.to_owned());
        }
    }
    if uris.is_empty() {
        return Err(AuthError::Invalid(
            "an app needs at least one redirect URI".into(),
        ));
    }
    let secret = new
        .confidential
        .then(|| format!("{CLIENT_SECRET_PREFIX}{}", new_secret()));
    let client = OAuthClientRecord {
        client_id: new_client_id(),
        name: name.to_owned(),
        redirect_uris: uris,
        secret_hash: secret.as_deref().map(hash_secret),
        created_ms: now_ms,
        disabled: false,
    };
    let record = change_record(
        actor,
        source,
        AuditAction::AppChange,
        format!("OAuthClient/{}", client.client_id),
        None,
        format!(
            "registered {} client name={:?} redirect_uris={}",
            if new.confidential {
                "confidential"
            } else {
                "public"
            },
            client.name,
            client.redirect_uris.join(" ")
        ),
        now_ms,
    );
    store.write(Durability::Immediate, &mut |tx| {
        tx.insert_oauth_client(&client)?;
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(RegisteredClient {
        client_id: client.client_id,
        secret,
    })
}

/// Disable an app (or enable it again). Disabling refuses its new authorisations and exchanges
/// and revokes the live tokens it obtained. Returns how many tokens were revoked.
pub fn set_client_disabled(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    client_id: &str,
    disabled: bool,
    now_ms: i64,
) -> crate::Result<usize> {
    let client_id = client_id.trim();
    let (mut found, mut revoked) = (false, 0);
    store.write(Durability::Immediate, &mut |tx| {
        revoked = 0;
        found = tx.set_oauth_client_disabled(client_id, disabled)?;
        if !found {
            return Ok(());
        }
        if disabled {
            for token_id in tx.oauth_client_tokens(client_id)? {
                if tx.revoke_token(token_id, now_ms)? {
                    revoked += 1;
                    tx.append_audit(&change_record(
                        actor,
                        source,
                        AuditAction::TokenRevoke,
                        format!("ApiToken/{token_id}"),
                        None,
                        format!("app {client_id} disabled"),
                        now_ms,
                    ))?;
                }
            }
        }
        tx.append_audit(&change_record(
            actor,
            source,
            AuditAction::AppChange,
            format!("OAuthClient/{client_id}"),
            None,
            format!("disabled={disabled}"),
            now_ms,
        ))
        .map(|_| ())
    })?;
    if !found {
        return Err(AuthError::Invalid(format!(
            "no app is registered with the client id {client_id}"
        )));
    }
    Ok(revoked)
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint

/// Keep the first value of each known parameter; note the ones given twice (RFC 6749 §3.1:
/// "Request and response parameters MUST NOT be included more than once"); a parameter sent
/// without a value is treated as omitted (same section).
fn collect_params<const N: usize>(
    known: [&'static str; N],
    pairs: impl IntoIterator<Item = (String, String)>,
) -> ([Option<String>; N], Vec<String>) {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut repeated: Vec<String> = Vec::new();
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        let Some(i) = known.iter().position(|n| *n == k) else {
            continue;
        };
        if values[i].is_some() {
            if !repeated.contains(&k) {
                repeated.push(k);
            }
        } else {
            values[i] = Some(v);
        }
    }
    (values, repeated)
}

/// An authorization request's parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, SMART's `aud`), as
/// given in the query (or repeated by the consent form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub aud: Option<String>,
    /// Parameters given more than once.
    pub repeated: Vec<String>,
}

impl AuthorizationRequest {
    pub const PARAMETERS: [&'static str; 8] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "aud",
    ];

    /// The request from decoded query (or form) parameters; others are ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let (
            [response_type, client_id, redirect_uri, scope, state, code_challenge, code_challenge_method, aud],
            repeated,
        ) = collect_params(Self::PARAMETERS, pairs);
        AuthorizationRequest {
            response_type,
            client_id,
            redirect_uri,
            scope,
            state,
            code_challenge,
            code_challenge_method,
            aud,
            repeated,
        }
    }

    /// The parameters as name/value pairs, to carry them through the consent form.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let values = [
            &self.response_type,
            &self.client_id,
            &self.redirect_uri,
            &self.scope,
            &self.state,
            &self.code_challenge,
            &self.code_challenge_method,
            &self.aud,
        ];
        Self::PARAMETERS
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }
}

/// The app a request comes from, and the registered redirect URI it named. An error here must be
/// shown to the person and never sent to the redirect URI, which cannot be trusted
/// (RFC 6749 §4.1.2.1).
pub fn requesting_client(
    store: &dyn Store,
    req: &AuthorizationRequest,
) -> SmartResult<(OAuthClientRecord, String)> {
    for p in ["client_id", "redirect_uri"] {
        if req.repeated.iter().any(|r| r == p) {
            return Err(SmartError::InvalidRequest(format!(
                "{p} is given more than once"
            )));
        }
    }
    let client_id = req
        .client_id
        .as_deref()
        .ok_or_else(|| SmartError::InvalidRequest("client_id is missing".into()))?;
    let client = store
        .oauth_client(client_id)?
        .filter(|c| !c.disabled)
        .ok_or_else(|| {
            SmartError::InvalidClient(
                "no app is registered with this client_id, or it has been disabled".into(),
            )
        })?;
    let uri = req
        .redirect_uri
        .as_deref()
        .ok_or_else(|| SmartError::InvalidRequest("redirect_uri is missing".into()))?;
    // Exact string comparison (RFC 9700 §4.1.3: no pattern or prefix matching).
    if !client.redirect_uris.iter().any(|u| u == uri) {
        return Err(SmartError::InvalidRequest(
            "redirect_uri is not one of the app's registered redirect URIs".into(),
        ));
    }
    Ok((client, uri.to_owned()))
}

/// The scopes of a request that an account may grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Resource scopes, narrowed to the account's roles, without repeats.
    pub scopes: Vec<Scope>,
    /// Requested scopes left out because the account's roles do not allow them.
    pub not_granted: Vec<String>,
    /// `launch/patient` was asked for.
    pub launch_patient: bool,
}

/// The requested scopes (space-separated, RFC 6749 §3.3) that `principal` may grant:
/// `patient/…` scopes only for a patient account (their own record is the patient in context),
/// `user/…` scopes for staff and caregivers (what the account may see), never `system/…` (backend
/// services do not go through a person). `launch/patient`, `openid`, `fhirUser`,
/// `online_access` and `offline_access` are accepted and grant no resource access. Any other
/// scope is refused, as is a request of which nothing can be granted.
pub fn grantable_scopes(principal: &Principal, requested: &str) -> SmartResult<Granted> {
    let patient_account = principal.has(Role::Patient) && principal.patient_id.is_some();
    let user_account = principal.roles.iter().any(|r| *r != Role::Patient);
    let mut granted = Granted {
        scopes: Vec::new(),
        not_granted: Vec::new(),
        launch_patient: false,
    };
    for word in requested.split(' ').filter(|w| !w.is_empty()) {
        if word == "launch/patient" {
            granted.launch_patient = true;
            if !patient_account {
                // Staff choose no patient here (no patient picker): they get user/ scopes.
                granted.not_granted.push(word.to_owned());
            }
            continue;
        }
        if ACCEPTED_NOT_GRANTED.contains(&word) {
            continue;
        }
        if word == "launch" {
            return Err(SmartError::InvalidScope(
                "'launch' is for apps launched from inside an EHR, which Rapport does not offer; use a standalone launch (launch/patient)".into(),
            ));
        }
        let scope: Scope = word.parse().map_err(|_| {
            SmartError::InvalidScope(format!(
                "'{word}' is not a scope Rapport knows: resource scopes are SMART v1 (patient/*.read, user/Observation.write, patient/*.*), and launch/patient, openid, fhirUser and online_access are accepted"
            ))
        })?;
        if let Some(t) = scope.resource_type.as_deref() {
            if !is_resource_type(t) {
                return Err(SmartError::InvalidScope(format!(
                    "'{word}': {t} is not a FHIR R4 resource type"
                )));
            }
        }
        let allowed = match scope.context {
            Context::Patient => patient_account,
            Context::User => user_account,
            Context::System => false,
        };
        if !allowed {
            granted.not_granted.push(word.to_owned());
        } else if !granted.scopes.contains(&scope) {
            granted.scopes.push(scope);
        }
    }
    if granted.scopes.is_empty() {
        return Err(SmartError::InvalidScope(
            "none of the requested scopes can be granted to this account: a patient's own account grants patient/ scopes, staff and caregivers grant user/ scopes".into(),
        ));
    }
    Ok(granted)
}

/// What the person is asked to allow, once the request is in order.
#[derive(Debug, Clone)]
pub struct Consent {
    pub client: OAuthClientRecord,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: String,
    pub granted: Granted,
    /// The patient in context: a patient account's own record.
    pub patient: Option<String>,
}

/// Check an authorization request from the app `client` (see [`requesting_client`]) for the
/// signed-in `principal`; `fhir_base` is the FHIR base URL the request's `aud` must name (SMART
/// App Launch: the app says which server it means to talk to, so a code is never issued for a
/// counterfeit one). Errors here go back to the app's redirect URI.
pub fn check_authorization(
    principal: &Principal,
    client: OAuthClientRecord,
    redirect_uri: String,
    req: &AuthorizationRequest,
    fhir_base: &str,
) -> SmartResult<Consent> {
    if let Some(p) = req.repeated.first() {
        return Err(SmartError::InvalidRequest(format!(
            "{p} is given more than once"
        )));
    }
    if principal.credential != Credential::Session {
        // A token must not mint other tokens (its scopes would no longer bound them).
        return Err(SmartError::AccessDenied(
            "an app is authorised by a person signed in to Rapport in a browser".into(),
        ));
    }
    match req.response_type.as_deref() {
        None => {
            return Err(SmartError::InvalidRequest(
                "response_type is missing".into(),
            ))
        }
        Some("code") => {}
        Some(_) => {
            return Err(SmartError::UnsupportedResponseType(
                "only response_type=code (the authorization code flow) is supported".into(),
            ))
        }
    }
    let state = req.state.clone().ok_or_else(|| {
        SmartError::InvalidRequest("state is missing (SMART App Launch requires it)".into())
    })?;
    match req.code_challenge_method.as_deref() {
        Some("S256") => {}
        None => {
            return Err(SmartError::InvalidRequest(
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            ))
        }
        Some(_) => {
            return Err(SmartError::InvalidRequest(
                "code_challenge_method must be S256 (plain is not accepted)".into(),
            ))
        }
    }
    let code_challenge = req
        .code_challenge
        .clone()
        .ok_or_else(|| SmartError::InvalidRequest("code_challenge is missing".into()))?;
    // S256 gives 32 bytes: 43 base64url characters without padding (RFC 7636 §4.2).
    if code_challenge.len() != 43
        || !code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(SmartError::InvalidRequest(
            "code_challenge must be BASE64URL(SHA-256(code_verifier)), 43 characters (RFC 7636 §4.2)"
                .into(),
        ));
    }
    let aud = req.aud.as_deref().ok_or_else(|| {
        SmartError::InvalidRequest(format!(
            "aud is missing: it must be this server's FHIR base URL, {fhir_base}"
        ))
    })?;
    if aud.trim_end_matches('/') != fhir_base.trim_end_matches('/') {
        return Err(SmartError::InvalidRequest(format!(
            "aud must be this server's FHIR base URL, {fhir_base}"
        )));
    }
    let scope = req
        .scope
        .as_deref()
        .ok_or_else(|| SmartError::InvalidScope("scope is missing".into()))?;
    let granted = grantable_scopes(principal, scope)?;
    let in_patient_context =
        granted.scopes.iter().any(|s| s.context == Context::Patient) || granted.launch_patient;
    let patient = principal
        .patient_id
        .clone()
        .filter(|_| in_patient_context && principal.has(Role::Patient));
    Ok(Consent {
        client,
        redirect_uri,
        state,
        code_challenge,
        granted,
        patient,
    })
}

fn authorization_record(
    principal: &Principal,
    source: &str,
    consent: &Consent,
    outcome: Outcome,
    now_ms: i64,
) -> AuditRecord {
    AuditRecord {
        recorded_ms: now_ms,
        actor: actor_of(principal),
        action: AuditAction::AppAuthorize,
        outcome,
        patient_id: consent.patient.clone(),
        entities: vec![format!("OAuthClient/{}", consent.client.client_id)],
        source: source.to_owned(),
        basis: match outcome {
            Outcome::Success => "allowed by the person",
            _ => "declined by the person",
        }
        .into(),
        purpose: None,
        flagged: false,
        detail: format!("scopes={}", format_scopes(&consent.granted.scopes)),
    }
}

/// The person allowed the app: issue a ten-minute, single-use code (returned once; only its hash
/// is stored), audited in the same transaction.
pub fn issue_code(
    store: &dyn Store,
    principal: &Principal,
    source: &str,
    consent: &Consent,
    now_ms: i64,
) -> SmartResult<String> {
    let code = new_secret();
    let row = OAuthCodeRecord {
        code_hash: hash_secret(&code),
        client_id: consent.client.client_id.clone(),
        user_id: principal.user_id,
        scopes: format_scopes(&consent.granted.scopes),
        redirect_uri: consent.redirect_uri.clone(),
        code_challenge: consent.code_challenge.clone(),
        patient_key: consent.patient.clone(),
        expires_ms: now_ms + CODE_LIFETIME_MS,
        used_ms: None,
        token_id: None,
    };
    let record = authorization_record(principal, source, consent, Outcome::Success, now_ms);
    store.write(Durability::Immediate, &mut |tx| {
        tx.insert_oauth_code(&row)?;
        tx.append_audit(&record).map(|_| ())
    })?;
    Ok(code)
}

/// The person declined: recorded, and the app is told `access_denied`.
pub fn record_declined(
    store: &dyn Store,
    principal: &Principal,
    source: &str,
    consent: &Consent,
    now_ms: i64,
) -> SmartResult<()> {
    let record = authorization_record(principal, source, consent, Outcome::Denied, now_ms);
    store.append_audit_committed(&record)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

/// A token request's parameters (RFC 6749 §4.1.3, RFC 7636 §4.5) and the client credentials
/// that came with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Client id and secret from an HTTP Basic `Authorization` header (RFC 6749 §2.3.1),
    /// decoded.
    pub basic: Option<(String, String)>,
    /// Parameters given more than once.
    pub repeated: Vec<String>,
}

impl TokenRequest {
    const PARAMETERS: [&'static str; 6] = [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
    ];

    /// The request from decoded form parameters and the decoded Basic credentials, if any.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        basic: Option<(String, String)>,
    ) -> Self {
        let ([grant_type, code, redirect_uri, code_verifier, client_id, client_secret], repeated) =
            collect_params(Self::PARAMETERS, pairs);
        TokenRequest {
            grant_type,
            code,
            redirect_uri,
            code_verifier,
            client_id,
            client_secret,
            basic,
            repeated,
        }
    }
}

/// An access token issued to an app (RFC 6749 §5.1, SMART App Launch "access token response").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_id: i64,
    pub expires_in: i64,
    pub scope: String,
    /// The patient in context.
    pub patient: Option<String>,
}

impl TokenResponse {
    /// The JSON body of the answer.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let Some(p) = &self.patient {
            v["patient"] = json!(p);
        }
        v
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> SmartResult<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| SmartError::InvalidRequest(format!("{name} is missing")))
}

/// Who the client is, by the credentials it sent (RFC 6749 §2.3): a confidential client proves
/// it with its secret, a public client sends its id only.
fn authenticate_client(store: &dyn Store, req: &TokenRequest) -> SmartResult<OAuthClientRecord> {
    let (client_id, secret) =
        match (&req.basic, &req.client_secret) {
            (Some(_), Some(_)) => return Err(SmartError::InvalidRequest(
                "authenticate the client one way only: HTTP Basic or client_secret (RFC 6749 §2.3)"
                    .into(),
            )),
            (Some((id, secret)), None) => {
                if req.client_id.as_deref().is_some_and(|c| c != id) {
                    return Err(SmartError::InvalidRequest(
                        "client_id differs from the client authenticated with HTTP Basic".into(),
                    ));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            (None, secret) => (required(&req.client_id, "client_id")?, secret.as_deref()),
        };
    let client = store
        .oauth_client(client_id)?
        .filter(|c| !c.disabled)
        .ok_or_else(|| SmartError::InvalidClient("unknown or disabled client".into()))?;
    match (&client.secret_hash, secret) {
        (None, None) => Ok(client),
        (None, Some(_)) => Err(SmartError::InvalidClient(
            "this app is a public client: it has no secret to send".into(),
        )),
        (Some(_), None) => Err(SmartError::InvalidClient(
            "this app is a confidential client: authenticate it with its secret (HTTP Basic or client_secret)"
                .into(),
        )),
        // Hashes of a 256-bit random secret: comparing them tells nothing about the secret.
        (Some(hash), Some(s)) if hash_secret(s) == *hash => Ok(client),
        (Some(_), Some(_)) => Err(SmartError::InvalidClient(
            "client authentication failed".into(),
        )),
    }
}

fn user_actor(user: &UserRecord) -> Actor {
    Actor {
        user_id: Some(user.user_id),
        label: user.email.clone(),
        role: user.roles.clone(),
    }
}

/// The app, as the actor of a failed exchange (whoever sent it holds the code, not necessarily
/// the person it was issued to).
fn app_actor(client_id: &str) -> Actor {
    Actor {
        user_id: None,
        label: format!("app:{client_id}"),
        role: "app".into(),
    }
}

/// Exchange a code for an access token: the client is authenticated, then in one write
/// transaction the code is taken (marked used whatever follows, so that it can never be tried
/// twice), checked (same app, same redirect URI, unexpired, `S256(code_verifier)` equal to the
/// challenge: RFC 7636 §4.6, and the account still enabled) and exchanged for an API token of the
/// account with the granted scopes, expiring in an hour. A code presented again has the token
/// it gave revoked (RFC 6749 §4.1.2). Every outcome with a known code is audited.
pub fn exchange_code(
    store: &dyn Store,
    req: &TokenRequest,
    source: &str,
    now_ms: i64,
) -> SmartResult<TokenResponse> {
    if let Some(p) = req.repeated.first() {
        return Err(SmartError::InvalidRequest(format!(
            "{p} is given more than once"
        )));
    }
    match req.grant_type.as_deref() {
        None => return Err(SmartError::InvalidRequest("grant_type is missing".into())),
        Some("authorization_code") => {}
        Some(_) => {
            return Err(SmartError::UnsupportedGrantType(
                "only grant_type=authorization_code is supported".into(),
            ))
        }
    }
    let client = authenticate_client(store, req)?;
    let code = required(&req.code, "code")?;
    let redirect_uri = required(&req.redirect_uri, "redirect_uri")?;
    let verifier = required(&req.code_verifier, "code_verifier")?;
    if !is_pkce_verifier(verifier) {
        return Err(SmartError::InvalidRequest(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)"
                .into(),
        ));
    }
    let code_hash = hash_secret(code);
    let failure = |code: &OAuthCodeRecord, reason: &str| AuditRecord {
        recorded_ms: now_ms,
        actor: app_actor(&client.client_id),
        action: AuditAction::TokenCreate,
        outcome: Outcome::Failed,
        patient_id: code.patient_key.clone(),
        entities: vec![
            format!("OAuthClient/{}", code.client_id),
            format!("AppUser/{}", code.user_id),
        ],
        source: source.to_owned(),
        basis: "invalid_grant".into(),
        purpose: None,
        flagged: false,
        detail: reason.to_owned(),
    };
    let mut outcome: SmartResult<TokenResponse> =
        Err(SmartError::InvalidGrant("the code is not valid".into()));
    store.write(Durability::Immediate, &mut |tx| {
        let code = match tx.take_oauth_code(&code_hash, now_ms)? {
            TakenCode::Unknown => {
                outcome = Err(SmartError::InvalidGrant("the code is not valid".into()));
                return Ok(());
            }
            TakenCode::AlreadyUsed(code) => {
                let reason = "the code has already been used";
                if let Some(token_id) = code.token_id {
                    if tx.revoke_token(token_id, now_ms)? {
                        tx.append_audit(&change_record(
                            &app_actor(&client.client_id),
                            source,
                            AuditAction::TokenRevoke,
                            format!("ApiToken/{token_id}"),
                            code.patient_key.as_deref(),
                            "its authorization code was presented again (RFC 6749 §4.1.2)".into(),
                            now_ms,
                        ))?;
                    }
                }
                tx.append_audit(&failure(&code, reason))?;
                outcome = Err(SmartError::InvalidGrant(reason.into()));
                return Ok(());
            }
            TakenCode::Taken(code) => code,
        };
        let user = store.user_by_id(code.user_id)?;
        let refused = if code.client_id != client.client_id {
            Some("the code was issued to another app")
        } else if code.redirect_uri != redirect_uri {
            Some("redirect_uri differs from the one in the authorization request")
        } else if code.expires_ms <= now_ms {
            Some("the code has expired")
        } else if !secrets_equal(&pkce_s256(verifier), &code.code_challenge) {
            Some("code_verifier does not match the code_challenge (RFC 7636 §4.6)")
        } else if user.as_ref().is_none_or(|u| u.disabled) {
            Some("the account that authorised the app is disabled")
        } else {
            None
        };
        let (Some(user), None) = (user, refused) else {
            let reason = refused.unwrap_or("the account that authorised the app is disabled");
            tx.append_audit(&failure(&code, reason))?;
            outcome = Err(SmartError::InvalidGrant(reason.into()));
            return Ok(());
        };
        let label = format!("SMART app {} ({})", client.name, client.client_id);
        let expires = now_ms + TOKEN_LIFETIME_SECONDS * 1000;
        let (token_id, token) =
            insert_new_token(tx, user.user_id, &code.scopes, &label, now_ms, expires)?;
        tx.set_oauth_code_token(&code_hash, token_id)?;
        tx.append_audit(&AuditRecord {
            recorded_ms: now_ms,
            actor: user_actor(&user),
            action: AuditAction::TokenCreate,
            outcome: Outcome::Success,
            patient_id: code.patient_key.clone(),
            entities: vec![
                format!("ApiToken/{token_id}"),
                format!("OAuthClient/{}", client.client_id),
            ],
            source: source.to_owned(),
            basis: "smart-authorization-code".into(),
            purpose: None,
            flagged: false,
            detail: format!(
                "user={} app={} scopes={} minutes={}",
                user.email,
                client.client_id,
                code.scopes,
                TOKEN_LIFETIME_SECONDS / 60
            ),
        })?;
        let scope = match &code.patient_key {
            Some(_) => format!("launch/patient {}", code.scopes),
            None => code.scopes.clone(),
        };
        outcome = Ok(TokenResponse {
            access_token: token,
            token_id,
            expires_in: TOKEN_LIFETIME_SECONDS,
            scope,
            patient: code.patient_key.clone(),
        });
        Ok(())
    })?;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_access::role::Email;

    fn principal(roles: &[Role], patient: Option<&str>) -> Principal {
        Principal {
            user_id: 7,
            email: Email::parse("someone@example.org").unwrap(),
            name: "Someone".into(),
            roles: roles.to_vec(),
            patient_id: patient.map(str::to_owned),
            practitioner_id: None,
            credential: Credential::Session,
        }
    }

    #[test]
    fn a_patient_account_grants_patient_scopes_and_staff_grant_user_scopes() {
        let patient = principal(&[Role::Patient], Some("p1"));
        let g = grantable_scopes(
            &patient,
            "launch/patient openid fhirUser patient/*.read user/*.read patient/*.read",
        )
        .unwrap();
        assert_eq!(format_scopes(&g.scopes), "patient/*.read");
        assert_eq!(g.not_granted, vec!["user/*.read"]);
        assert!(g.launch_patient);

        let staff = principal(&[Role::Clinician], None);
        let g =
            grantable_scopes(&staff, "patient/*.read user/Observation.read system/*.*").unwrap();
        assert_eq!(format_scopes(&g.scopes), "user/Observation.read");
        assert_eq!(g.not_granted, vec!["patient/*.read", "system/*.*"]);

        let caregiver = principal(&[Role::Caregiver], None);
        assert!(grantable_scopes(&caregiver, "user/*.*").is_ok());
    }

    #[test]
    fn unknown_scopes_and_requests_granting_nothing_are_refused() {
        let patient = principal(&[Role::Patient], Some("p1"));
        for bad in [
            "patient/Observation.rs",
            "patient/Nonsense.read",
            "launch",
            "admin",
            "user/*.read",
            "openid fhirUser",
            "",
        ] {
            let e = grantable_scopes(&patient, bad).unwrap_err();
            assert_eq!(e.code(), "invalid_scope", "{bad}: {e}");
        }
    }

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        for good in [
            "https://app.example.org/callback",
            "https://app.example.org/cb?tenant=3",
            "http://localhost:8000/cb",
            "http://127.0.0.1/cb",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "app.example.org/callback",
            "http://app.example.org/cb",
            "https://app.example.org/cb#x",
            "https://user:pw@app.example.org/cb",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "https://app.example.org/c b",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_parameters_are_noted_and_empty_ones_are_omitted() {
        let req = AuthorizationRequest::from_pairs(
            [
                ("client_id", "a"),
                ("scope", ""),
                ("state", "1"),
                ("state", "2"),
                ("other", "x"),
                ("other", "y"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(req.client_id.as_deref(), Some("a"));
        assert_eq!(req.scope, None);
        assert_eq!(req.state.as_deref(), Some("1"));
        assert_eq!(req.repeated, vec!["state"]);
        assert_eq!(req.pairs(), vec![("client_id", "a"), ("state", "1")]);
    }
}
