//! Start-up and wiring of Rapport: configuration, opening the store, binding the listener, and
//! the command-line commands' bodies. The libraries do the work; this crate connects them.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod alerts;
pub mod bench;
pub mod config;
pub mod import;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rapport_store::Store;
use tokio::net::TcpListener;

pub use config::Config;

/// The running HTTP application: bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: rapport_web::AppState,
}

impl Application {
    /// Open nothing, bind the listener (port 0 picks a free port) and build the routes.
    pub async fn build(listen: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        Self::build_with(
            listen,
            rapport_web::AppState::new(store, rapport_web::Settings::default()),
        )
        .await
    }

    /// [`Application::build`] with given state (settings, a clock tests can move).
    pub async fn build_with(
        listen: SocketAddr,
        state: rapport_web::AppState,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let router = rapport_web::router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The state the handlers share (tests move its clock).
    pub fn state(&self) -> &rapport_web::AppState {
        &self.state
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Alerts are evaluated while the server runs (and stop with it).
        let _evaluator = self
            .state
            .settings
            .alert_evaluation
            .then(|| alerts::Evaluator::start(self.state.clone()));
        // The peer address goes into the audit trail of each request.
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
    }
}

/// The HL7 v2 feed: an MLLP listener whose messages a group writer commits (rapport-mllp,
/// rapport_ingest::hl7). Bound, not yet serving.
pub struct MllpFeed {
    listener: TcpListener,
    store: Arc<dyn Store>,
    options: rapport_hl7::map::MapOptions,
    /// The most messages committed together (1: one commit, one fsync, per message).
    pub group_max: usize,
}

impl MllpFeed {
    pub async fn bind(listen: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for MLLP on {listen}"))?;
        Ok(MllpFeed {
            listener,
            store,
            options: rapport_hl7::map::MapOptions::default(),
            group_max: rapport_ingest::hl7::GROUP_MAX_MESSAGES,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` completes. Each message is answered once the group it was
    /// committed with is on disk.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (queue, queued) = std::sync::mpsc::channel::<rapport_ingest::hl7::Queued>();
        let (store, options, group_max) =
            (self.store.clone(), self.options.clone(), self.group_max);
        let writer = std::thread::Builder::new()
            .name("hl7-writer".into())
            .spawn(move || {
                rapport_ingest::hl7::group_writer(
                    store.as_ref(),
                    &options,
                    queued,
                    &now_ms,
                    group_max,
                )
            })
            .context("cannot start the HL7 writer")?;
        let queue = std::sync::Mutex::new(queue);
        let handler: rapport_mllp::Handler = Arc::new(move |raw: Vec<u8>, peer: SocketAddr| {
            let (reply, receipt) = tokio::sync::oneshot::channel();
            let input = rapport_ingest::hl7::Hl7Input {
                raw,
                feed: format!("mllp {}", peer.ip()),
            };
            let sent = queue.lock().expect("queue lock").send((
                input,
                Box::new(move |r| {
                    let _ = reply.send(r);
                }),
            ));
            Box::pin(async move {
                match (sent, receipt.await) {
                    (Ok(()), Ok(r)) => r.send,
                    // The writer is gone (shutting down): no answer is better than a false
                    // one; the sender, waiting, sends it again.
                    _ => Vec::new(),
                }
            })
        });
        rapport_mllp::serve(
            self.listener,
            rapport_mllp::Limits::default(),
            handler,
            shutdown,
        )
        .await;
        drop(writer);
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

/// Open (and migrate) the store the configuration names.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = rapport_store::open(&config.database_url)
        .with_context(|| format!("cannot open the database {}", config.database_url))?;
    Ok(Arc::from(store))
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
