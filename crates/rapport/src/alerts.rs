//! The alert evaluator of a running server: a thread that evaluates, right after each commit,
//! the patients whose data changed (any write marks them: import, HL7 feed, API, console), and
//! sweeps every patient for the time-based rules at start and then every
//! `Settings::alert_sweep_every_ms`. It tells the Today page when alerts changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the evaluator looks for changed patients. A look is one indexed read of an
/// (almost always) empty table.
const POLL: Duration = Duration::from_millis(100);

pub struct Evaluator {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Evaluator {
    pub fn start(state: rapport_web::AppState) -> Evaluator {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("alert-evaluator".into())
            .spawn(move || run(&state, &flag))
            .expect("a thread can be started");
        Evaluator {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(state: &rapport_web::AppState, stop: &AtomicBool) {
    let store = state.store.as_ref();
    let config = state.settings.alert_rules.clone();
    let now = || state.clock.now_ms();
    let mut next_sweep = now();
    while !stop.load(Ordering::Relaxed) {
        match rapport_ingest::alerts::drain(store, &config, &now) {
            Ok((_, s)) if s.changed() => state.alert_events.send_modify(|v| *v += 1),
            Ok(_) => {}
            // Never the patient data: the store's error names tables and statements.
            Err(e) => tracing::error!(error = %e, "alert evaluation failed"),
        }
        if now() >= next_sweep {
            let started = std::time::Instant::now();
            match rapport_ingest::alerts::sweep(store, &config, &now, &mut |_| {
                if stop.load(Ordering::Relaxed) {
                    // The cursor is kept: the next start resumes here.
                }
            }) {
                Ok((n, s)) => {
                    tracing::info!(
                        patients = n,
                        raised = s.raised,
                        resolved = s.resolved,
                        seconds = started.elapsed().as_secs_f64(),
                        "alert sweep finished"
                    );
                    if s.changed() {
                        state.alert_events.send_modify(|v| *v += 1);
                    }
                }
                Err(e) => tracing::error!(error = %e, "alert sweep failed"),
            }
            next_sweep = now() + state.settings.alert_sweep_every_ms;
        }
        std::thread::sleep(POLL);
    }
}
