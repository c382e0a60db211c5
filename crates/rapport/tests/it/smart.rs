//! SMART App Launch: the discovery document, the authorization code flow with PKCE through the
//! consent page, the token exchange and the tokens it gives on the FHIR API; the `rapport client`
//! commands.

use rapport_access::audit::{AuditAction, Outcome};
use rapport_auth::smart::{NewClient, RegisteredClient};
use serde_json::Value;

use crate::helpers::{spawn_app, Reply, Session, TestApp};

const REDIRECT: &str = "https://app.example.org/callback";
const PATIENT_EMAIL: &str = "patient@test.example";

fn register(app: &TestApp, confidential: bool) -> RegisteredClient {
    tokio::task::block_in_place(|| {
        rapport_auth::smart::register_client(
            app.store.as_ref(),
            &rapport_access::audit::Actor::command_line("test"),
            "cli",
            &NewClient {
                name: "Health Diary".into(),
                redirect_uris: vec![REDIRECT.into(), "http://localhost:8123/cb".into()],
                confidential,
            },
            app.state.clock.now_ms(),
        )
        .expect("the app is registered")
    })
}

/// A PKCE verifier (RFC 7636 §4.1) and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        rapport_access::secret::new_secret(),
        rapport_access::secret::new_secret()
    );
    let challenge = rapport_access::secret::pkce_s256(&verifier);
    (verifier, challenge)
}

/// The parameters of an authorization request.
fn request_params(
    app: &TestApp,
    client_id: &str,
    scope: &str,
    challenge: &str,
) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "af0ifjsldkj"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("aud", &app.url("/fhir")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn authorize_path(params: &[(String, String)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth/authorize?{query}")
}

/// The query parameters of a redirect to the app.
fn redirect_params(reply: &Reply) -> Vec<(String, String)> {
    let location = reply
        .location
        .as_deref()
        .unwrap_or_else(|| panic!("no redirect: {} {}", reply.status, reply.body));
    assert!(
        location.starts_with(REDIRECT),
        "redirected elsewhere: {location}"
    );
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Answer the consent page: `decision` is "allow" or "deny".
async fn decide(session: &Session<'_>, params: &[(String, String)], decision: &str) -> Reply {
    let mut form: Vec<(&str, &str)> = vec![("csrf", session.csrf.as_str())];
    form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    form.push(("decision", decision));
    session.post("/oauth/authorize", &form).await
}

/// Sign in, see the consent page, allow: the code the app receives.
async fn authorize(session: &Session<'_>, params: &[(String, String)]) -> String {
    let page = session.get(&authorize_path(params)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Health Diary"), "{}", page.body);
    let reply = decide(session, params, "allow").await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let back = redirect_params(&reply);
    assert_eq!(param(&back, "state"), Some("af0ifjsldkj"), "{back:?}");
    param(&back, "code")
        .unwrap_or_else(|| panic!("no code: {back:?}"))
        .to_owned()
}

async fn exchange(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.client.post(app.url("/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, headers, body)
}

fn token_form<'a>(client_id: &'a str, code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ]
}

async fn fhir_status(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A patient account linked to the first fixture patient; returns (own id, another patient).
fn patient_account(app: &TestApp) -> (String, String) {
    let ids = app.patient_ids();
    app.add_user(PATIENT_EMAIL, "patient", Some(&ids[0]), None);
    (ids[0].clone(), ids[1].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_discovery_document_and_the_capability_statement_name_the_oauth_endpoints() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["issuer"], app.url("/fhir"), "{doc}");
        assert_eq!(
            doc["authorization_endpoint"],
            app.url("/oauth/authorize"),
            "{doc}"
        );
        assert_eq!(doc["token_endpoint"], app.url("/oauth/token"), "{doc}");
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["authorization_code"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        for capability in [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v1",
        ] {
            assert!(
                doc["capabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == capability),
                "{capability}: {doc}"
            );
        }
        assert!(doc["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "patient/*.read"));
        assert!(doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "client_secret_basic"));
    }
    let metadata: Value = app
        .client
        .get(app.url("/fhir/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let security = &metadata["rest"][0]["security"];
    let uris = &security["extension"][0];
    assert_eq!(
        uris["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(uris["extension"][0]["url"], "authorize");
    assert_eq!(
        uris["extension"][0]["valueUri"],
        app.url("/oauth/authorize")
    );
    assert_eq!(uris["extension"][1]["url"], "token");
    assert_eq!(uris["extension"][1]["valueUri"], app.url("/oauth/token"));
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_authorises_an_app_whose_token_reads_their_own_record_and_no_one_elses() {
    let app = spawn_app().await;
    let (own, other) = patient_account(&app);
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(
        &app,
        &client.client_id,
        "launch/patient openid fhirUser patient/*.read user/*.read",
        &challenge,
    );
    let before = app.last_audit_seq();

    let page = session.get(&authorize_path(&params)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("See everything in your record"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Your own record only."), "{}", page.body);
    // user/ scopes are for staff and caregivers: shown as not granted.
    assert!(page.body.contains("not granted"), "{}", page.body);
    assert!(page.body.contains("name=\"decision\" value=\"allow\""));
    // No inline script; the page's form may lead to the app's origin.
    assert!(!page.body.contains("<script"));
    let code = authorize(&session, &params).await;

    let (status, headers, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 3600, "{body}");
    assert_eq!(body["scope"], "launch/patient patient/*.read", "{body}");
    assert_eq!(body["patient"], own.as_str(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("rpt_"), "{body}");

    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), token).await,
        200
    );
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{other}"), token).await,
        403
    );
    // Read-only: a write is refused by the token's scope.
    let write = app
        .client
        .delete(app.url(&format!("/fhir/Patient/{own}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);

    // The authorisation and the token are in the audit trail, naming the patient in context.
    let records = app.audit_after(before);
    let authorised = records
        .iter()
        .find(|r| r.record.action == AuditAction::AppAuthorize)
        .expect("the authorisation is audited");
    assert_eq!(authorised.record.outcome, Outcome::Success);
    assert_eq!(authorised.record.actor.label, PATIENT_EMAIL);
    assert_eq!(authorised.record.patient_id.as_deref(), Some(own.as_str()));
    let issued = records
        .iter()
        .find(|r| r.record.action == AuditAction::TokenCreate)
        .expect("the token is audited");
    assert_eq!(issued.record.outcome, Outcome::Success);
    assert!(
        issued
            .record
            .entities
            .contains(&format!("OAuthClient/{}", client.client_id)),
        "{issued:?}"
    );
    assert!(
        !records.iter().any(|r| r.record.detail.contains(&code)),
        "the code is not in the trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_works_once_and_presenting_it_again_revokes_the_token_it_gave() {
    let app = spawn_app().await;
    let (own, _) = patient_account(&app);
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    let code = authorize(&session, &params).await;
    let form = token_form(&client.client_id, &code, &verifier);

    let (status, _, body) = exchange(&app, &form, None).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), &token).await,
        200
    );

    let (status, _, body) = exchange(&app, &form, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // RFC 6749 §4.1.2: the token issued for the code is revoked.
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), &token).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_verifier_or_redirect_uri_gets_invalid_grant_and_burns_the_code() {
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);

    let code = authorize(&session, &params).await;
    let (wrong, _) = pkce();
    let (status, headers, body) =
        exchange(&app, &token_form(&client.client_id, &code, &wrong), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("code_verifier"));
    assert_eq!(headers["cache-control"], "no-store");
    // The code was taken by the failed attempt: the right verifier no longer helps.
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = authorize(&session, &params).await;
    let mut form = token_form(&client.client_id, &code, &verifier);
    form[2] = ("redirect_uri", "http://localhost:8123/cb");
    let (status, _, body) = exchange(&app, &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // A malformed verifier, a missing parameter, another grant type.
    let code = authorize(&session, &params).await;
    let (status, _, body) = exchange(
        &app,
        &token_form(&client.client_id, &code, "too-short"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, _, body) = exchange(
        &app,
        &[("grant_type", "password"), ("client_id", &client.client_id)],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "{body}"
    );
    // The malformed verifier did not take the code.
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_app_or_unregistered_redirect_uri_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, false);
    let (_, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;

    let mut params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    params[2].1 = "https://evil.example/steal".into();
    let reply = session.get(&authorize_path(&params)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.location, None);
    assert!(reply.body.contains("redirect_uri"), "{}", reply.body);
    assert!(
        !reply.body.contains("evil.example/steal?"),
        "{}",
        reply.body
    );
    // The same through the consent form.
    let reply = decide(&session, &params, "allow").await;
    assert_eq!((reply.status, reply.location.as_deref()), (400, None));

    let params = request_params(&app, "no-such-app", "patient/*.read", &challenge);
    let reply = session.get(&authorize_path(&params)).await;
    assert_eq!((reply.status, reply.location.as_deref()), (400, None));
    // Even before signing in.
    let reply = crate::helpers::reply(
        app.client
            .get(app.url(&authorize_path(&params)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((reply.status, reply.location.as_deref()), (400, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_request_errors_and_a_refusal_go_back_to_the_app_with_the_state() {
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, false);
    let (_, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);

    let before = app.last_audit_seq();
    let reply = decide(&session, &params, "deny").await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let back = redirect_params(&reply);
    assert_eq!(param(&back, "error"), Some("access_denied"), "{back:?}");
    assert_eq!(param(&back, "state"), Some("af0ifjsldkj"), "{back:?}");
    assert_eq!(param(&back, "code"), None);
    let declined = app.audit_after(before);
    assert_eq!(declined.len(), 1, "{declined:#?}");
    assert_eq!(declined[0].record.action, AuditAction::AppAuthorize);
    assert_eq!(declined[0].record.outcome, Outcome::Denied);

    // A consent form without the session's CSRF token does nothing.
    let mut forged = params.clone();
    forged.push(("decision".into(), "allow".into()));
    let forged: Vec<(&str, &str)> = forged
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = session.post("/oauth/authorize", &forged).await;
    assert_eq!((reply.status, reply.location.as_deref()), (403, None));

    let cases: [(&str, Option<&str>, &str); 5] = [
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("code_challenge", None, "invalid_request"),
        ("scope", Some("patient/*.read banana"), "invalid_scope"),
        ("aud", Some("https://other.example/fhir"), "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
    ];
    for (name, value, error) in cases {
        let mut changed: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != name).cloned().collect();
        if let Some(v) = value {
            changed.push((name.into(), v.into()));
        }
        let reply = session.get(&authorize_path(&changed)).await;
        assert_eq!(reply.status, 303, "{name}: {}", reply.body);
        let back = redirect_params(&reply);
        assert_eq!(param(&back, "error"), Some(error), "{name}: {back:?}");
        assert_eq!(param(&back, "state"), Some("af0ifjsldkj"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_who_is_not_signed_in_signs_in_first_and_comes_back_to_the_request() {
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, false);
    let (_, challenge) = pkce();
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    let path = authorize_path(&params);

    let r = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let to_login = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to_login.starts_with("/login?next="), "{to_login}");

    // The sign-in form carries the request and returns to it.
    let form_page = app.client.get(app.url(&to_login)).send().await.unwrap();
    let login_cookie = form_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rapport_login_csrf="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let page = form_page.text().await.unwrap();
    let csrf = crate::helpers::csrf_of(&page).unwrap();
    let next = page
        .split("name=\"next\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", PATIENT_EMAIL),
            ("password", crate::helpers::PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let cookie = crate::helpers::session_cookie(&r).expect("signed in");
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with("/oauth/authorize?"), "{back}");
    let consent = app
        .client
        .get(app.url(&back))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    assert!(consent.text().await.unwrap().contains("Health Diary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confidential_app_must_authenticate_with_its_secret() {
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, true);
    let secret = client
        .secret
        .clone()
        .expect("a confidential client has a secret");
    assert!(secret.starts_with("rps_"));
    let (verifier, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    let code = authorize(&session, &params).await;
    let form = token_form(&client.client_id, &code, &verifier);

    let (status, headers, body) = exchange(&app, &form, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, body) = exchange(&app, &form, Some((&client.client_id, "rps_wrong"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A failed client authentication leaves the code alone.
    let (status, _, body) = exchange(&app, &form, Some((&client.client_id, &secret))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");

    // client_secret in the form works too (client_secret_post).
    let code = authorize(&session, &params).await;
    let mut form = token_form(&client.client_id, &code, &verifier);
    form.push(("client_secret", &secret));
    let (status, _, body) = exchange(&app, &form, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staff_member_grants_user_scopes_and_the_token_sees_their_patients() {
    let app = spawn_app().await;
    let ids = app.patient_ids();
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let session = app.login("coordinator@test.example").await;
    let params = request_params(
        &app,
        &client.client_id,
        "launch/patient patient/*.read user/*.read user/Observation.read",
        &challenge,
    );
    let page = session.get(&authorize_path(&params)).await;
    assert!(
        page.body.contains("Every patient whose record you may see"),
        "{}",
        page.body
    );
    let code = authorize(&session, &params).await;
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "user/*.read user/Observation.read", "{body}");
    assert!(body.get("patient").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{}", ids[0]), token).await,
        200
    );

    // A patient scope alone grants a staff member nothing.
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    let back = redirect_params(&session.get(&authorize_path(&params)).await);
    assert_eq!(param(&back, "error"), Some("invalid_scope"), "{back:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_commands_register_list_and_disable_apps() {
    let app = spawn_app().await;
    let url = crate::cli::url_string(&app.db.url);
    let run = |args: &[&str]| {
        let out = crate::cli::rapport()
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        run(&[
            "client",
            "add",
            "--name",
            "Practice Dashboard",
            "--redirect-uri",
            "https://dash.example.org/cb",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
            "--confidential",
        ])
    });
    assert!(ok, "{stdout}{stderr}");
    let client_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_id "))
        .unwrap()
        .to_owned();
    assert!(stdout.contains("client_secret rps_"), "{stdout}");

    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        run(&[
            "client",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://dash.example.org/cb",
        ])
    });
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("https"), "{stderr}");

    let (ok, stdout, _) = tokio::task::block_in_place(|| run(&["client", "list"]));
    assert!(ok);
    let line = stdout.lines().find(|l| l.starts_with(&client_id)).unwrap();
    assert!(
        line.contains("confidential") && line.contains("active"),
        "{line}"
    );
    assert!(line.contains("Practice Dashboard"), "{line}");

    let (ok, stdout, stderr) =
        tokio::task::block_in_place(|| run(&["client", "disable", "--id", &client_id]));
    assert!(ok, "{stdout}{stderr}");
    let (_, stdout, _) = tokio::task::block_in_place(|| run(&["client", "list"]));
    assert!(stdout.contains("disabled"), "{stdout}");

    // A disabled app cannot be authorised.
    let (_, challenge) = pkce();
    let session = app.login("coordinator@test.example").await;
    let mut params = request_params(&app, &client_id, "user/*.read", &challenge);
    params[2].1 = "https://dash.example.org/cb".into();
    let reply = session.get(&authorize_path(&params)).await;
    assert_eq!((reply.status, reply.location.as_deref()), (400, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_real_browser_the_consent_form_leads_to_the_app_with_a_code() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = dir.join("node_modules/playwright-core").is_dir()
        && std::path::Path::new(&chromium).exists();
    if !ready {
        let message = format!(
            "browser test needs {chromium} and `npm install` in {} (run .ci/run)",
            dir.display()
        );
        assert!(
            std::env::var_os("RAPPORT_REQUIRE_BROWSER").is_none(),
            "{message}"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }
    let app = spawn_app().await;
    patient_account(&app);
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);
    let url = app.url(&authorize_path(&params));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .current_dir(&dir)
            .args([
                "smart.mjs",
                &url,
                REDIRECT,
                PATIENT_EMAIL,
                crate::helpers::PASSWORD,
                "Health Diary",
            ])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("state=af0ifjsldkj"), "{stdout}");
    let code = stdout
        .lines()
        .find_map(|l| l.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_simultaneous_exchanges_of_a_code_one_succeeds_and_codes_and_tokens_expire() {
    let app = spawn_app().await;
    let (own, _) = patient_account(&app);
    let client = register(&app, false);
    let (verifier, challenge) = pkce();
    let session = app.login(PATIENT_EMAIL).await;
    let params = request_params(&app, &client.client_id, "patient/*.read", &challenge);

    let code = authorize(&session, &params).await;
    let form = token_form(&client.client_id, &code, &verifier);
    let (a, b) = tokio::join!(exchange(&app, &form, None), exchange(&app, &form, None));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", a.2, b.2);
    let (ok, refused) = if a.0 == 200 { (a.2, b.2) } else { (b.2, a.2) };
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    // The loser presented a used code: the winner's token was revoked (RFC 6749 §4.1.2).
    let token = ok["access_token"].as_str().unwrap();
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), token).await,
        401
    );

    // A code waits ten minutes at most.
    let code = authorize(&session, &params).await;
    app.state.clock.advance(10 * 60_000 + 1);
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // A token lives one hour.
    let session = app.login(PATIENT_EMAIL).await;
    let code = authorize(&session, &params).await;
    let (status, _, body) =
        exchange(&app, &token_form(&client.client_id, &code, &verifier), None).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    app.state.clock.advance(59 * 60_000);
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), token).await,
        200
    );
    app.state.clock.advance(60_000);
    assert_eq!(
        fhir_status(&app, &format!("/fhir/Patient/{own}"), token).await,
        401
    );
}
