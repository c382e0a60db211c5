//! `spawn_app`: the application on a free port, with the FHIR fixtures imported.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rapport_ingest::{files, import_units};
use rapport_store::testing::{fresh_store, TestStore};
use rapport_store::Store;

pub struct TestApp {
    pub addr: SocketAddr,
    /// A client that does not follow redirects (tests look at them).
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub state: rapport_web::AppState,
    pub db: TestStore,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in browser: its session cookie and the CSRF token of its forms.
pub struct Session<'a> {
    pub app: &'a TestApp,
    pub cookie: String,
    pub csrf: String,
}

/// The value of the first `name="csrf"` field in a page.
pub fn csrf_of(page: &str) -> Option<String> {
    let rest = page.split("name=\"csrf\" value=\"").nth(1)?;
    rest.split('"').next().map(str::to_owned)
}

/// The session cookie (`name=value`) a response sets, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rapport_session=") && !v.starts_with("rapport_session=;"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Session<'_> {
    pub async fn get(&self, path: &str) -> Reply {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("the app answers");
        reply(r).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("the app answers");
        reply(r).await
    }

    /// POST a form with this session's CSRF token.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(path, &form).await
    }
}

pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Reply {
        status,
        location,
        body: r.text().await.unwrap(),
    }
}

impl TestApp {
    /// The URL of a path on the app; an absolute URL (a FHIR paging link) is kept as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        format!("http://{}{path}", self.addr)
    }

    /// Sign in through the form, as a browser would: fetch the form (and its login CSRF cookie),
    /// post it, keep the session cookie, and read the CSRF token from the page it leads to.
    pub async fn try_login(&self, email: &str, password: &str) -> Result<Session<'_>, Reply> {
        let form_page = self.client.get(self.url("/login")).send().await.unwrap();
        let login_cookie = form_page
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("rapport_login_csrf="))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .expect("the sign-in form sets its CSRF cookie");
        let token =
            csrf_of(&form_page.text().await.unwrap()).expect("the sign-in form has a CSRF field");
        let r = self
            .client
            .post(self.url("/login"))
            .header("cookie", &login_cookie)
            .form(&[
                ("csrf", token.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let Some(cookie) = session_cookie(&r) else {
            return Err(reply(r).await);
        };
        let to = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("/patients")
            .to_owned();
        let mut session = Session {
            app: self,
            cookie,
            csrf: String::new(),
        };
        let page = session.get(&to).await;
        session.csrf = csrf_of(&page.body).unwrap_or_default();
        Ok(session)
    }

    pub async fn login(&self, email: &str) -> Session<'_> {
        match self.try_login(email, PASSWORD).await {
            Ok(s) => s,
            Err(r) => panic!("sign-in as {email} failed: {} {}", r.status, r.body),
        }
    }

    /// Create an account directly in the store.
    pub fn add_user(
        &self,
        email: &str,
        roles: &str,
        patient: Option<&str>,
        practitioner: Option<&str>,
    ) -> i64 {
        let account = rapport_auth::NewAccount {
            email: email.into(),
            name: format!("Test {roles}"),
            roles: roles.into(),
            patient: patient.map(str::to_owned),
            practitioner: practitioner.map(str::to_owned),
            password: PASSWORD.into(),
        };
        // The PostgreSQL client blocks: off the async worker (here and below).
        tokio::task::block_in_place(|| {
            rapport_auth::create_user(
                self.store.as_ref(),
                &rapport_access::audit::Actor::command_line("test"),
                "cli",
                &account,
                self.state.clock.now_ms(),
            )
            .expect("the account is created")
        })
    }

    pub fn assign(&self, email: &str, patient: &str) {
        tokio::task::block_in_place(|| {
            rapport_auth::assign(
                self.store.as_ref(),
                &rapport_access::audit::Actor::command_line("test"),
                "cli",
                email,
                patient,
                true,
                self.state.clock.now_ms(),
            )
            .unwrap()
        });
    }

    /// Ids of the fixture patients, in list order.
    pub fn patient_ids(&self) -> Vec<String> {
        tokio::task::block_in_place(|| {
            self.store
                .search_patients(&rapport_store::PatientSearch {
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap()
                .patients
                .into_iter()
                .map(|p| p.key.id)
                .collect()
        })
    }

    /// Audit records after `seq`, oldest first.
    pub fn audit_after(&self, seq: i64) -> Vec<rapport_access::audit::ChainedRecord> {
        tokio::task::block_in_place(|| self.store.audit_after(seq, 100_000).unwrap())
    }

    pub fn last_audit_seq(&self) -> i64 {
        self.audit_after(0).last().map_or(0, |r| r.seq)
    }
}

pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RAPPORT_FIXTURES") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set RAPPORT_FIXTURES)",
        dir.display()
    );
    dir
}

/// Import the FHIR fixtures into a store.
pub fn import_fixtures(store: &dyn Store) {
    let paths = files::collect_files(&[fixtures_dir().join("fhir")]).unwrap();
    let units = paths.iter().map(|p| files::read_unit(p).unwrap());
    import_units(store, units, &rapport::now_ms, &mut |_| {});
}

/// Start the real application on 127.0.0.1:0 against a fresh store holding the fixtures, with a
/// coordinator (`coordinator@test.example`) on every fixture patient's care team and an admin.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(rapport_web::Settings::default()).await
}

/// [`spawn_app`] with given security settings.
pub async fn spawn_app_with(settings: rapport_web::Settings) -> TestApp {
    // Opening a store blocks (the PostgreSQL client has its own runtime): not on the async thread.
    let (db, store) = tokio::task::spawn_blocking(|| {
        let db = fresh_store().expect("a fresh store");
        // The store is opened a second time for the app, as `rapport serve` would.
        let store: Arc<dyn Store> = Arc::from(rapport_store::open(&db.url).unwrap());
        import_fixtures(store.as_ref());
        // The fixtures' alerts are evaluated before the app starts, so that tests begin from a
        // settled state (the app's evaluator then only sees what the test itself writes).
        let rules = rapport_alerts::Config::default();
        rapport_ingest::alerts::drain(store.as_ref(), &rules, &rapport::now_ms).unwrap();
        (db, store)
    })
    .await
    .unwrap();
    let state = rapport_web::AppState::new(store.clone(), settings);
    let app = rapport::Application::build_with("127.0.0.1:0".parse().unwrap(), state.clone())
        .await
        .unwrap();
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let app = TestApp {
        addr,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        store,
        state,
        db,
        _shutdown: tx,
    };
    let setup = |app: &TestApp| {
        app.add_user("coordinator@test.example", "coordinator", None, None);
        app.add_user("admin@test.example", "admin", None, None);
        for id in app.patient_ids() {
            app.assign("coordinator@test.example", &id);
        }
    };
    tokio::task::block_in_place(|| setup(&app));
    app
}

/// A fixture patient who is alive (the rules raise nothing for the deceased).
pub fn living_patient(app: &TestApp) -> String {
    tokio::task::block_in_place(|| {
        app.patient_ids()
            .into_iter()
            .find(|id| {
                let p = app
                    .store
                    .read(&rapport_store::ResourceKey::new("Patient", id.clone()))
                    .unwrap()
                    .unwrap();
                !p.content.contains("deceased")
            })
            .unwrap()
    })
}

/// Write a critical potassium result for `patient` (as a feed would) and evaluate the marked
/// patients.
pub fn critical_potassium(app: &TestApp, patient: &str) {
    let now = app.state.clock.now_ms();
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {
                "resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}], "text": "Potassium"},
                "subject": {"reference": format!("Patient/{patient}")},
                "issued": chrono::DateTime::from_timestamp_millis(now - 3_600_000).unwrap().to_rfc3339(),
                "valueQuantity": {"value": 6.9, "unit": "mmol/L"},
                "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "HH"}]}],
            },
            "request": {"method": "POST", "url": "Observation"},
        }]
    });
    tokio::task::block_in_place(|| {
        let unit = rapport_ingest::Unit {
            name: "lab".into(),
            kind: "file",
            payload: rapport_ingest::Payload::Value(bundle),
        };
        let report = rapport_ingest::apply_unit(app.store.as_ref(), &unit, now, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let rules = rapport_alerts::Config::default();
        rapport_ingest::alerts::drain(app.store.as_ref(), &rules, &rapport::now_ms).unwrap();
    });
}
