//! Live metrics of a run for Prometheus (`--metrics-bind ADDR:PORT`): an HTTP endpoint,
//! `/metrics`, that renders the run's figures when it is scraped.
//!
//! Nothing is counted twice: each scrape takes the ledger's snapshot (the value the metrics
//! JSON is written from) and judges it against the plan's targets, so a run no one scrapes
//! pays nothing but an idle listener. Once the run's final figures are in
//! ([`LiveMetrics::finish`]) the endpoint serves exactly those, and the run's end waits (at
//! most `--metrics-linger`) for one scrape of them, so that the last values Prometheus holds
//! are the metrics JSON's.

pub mod exposition;

pub use exposition::{Phase, latency_bounds_us};

use crate::measure::{Ledger, MeasuredRun};
use crate::plan::Plan;
use crate::verdict::{self, RunFacts, Targets};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The text exposition's media type.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the endpoint could not be opened (a configuration error: before any traffic).
#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-bind {address}: cannot listen there ({source}); choose another address, or \
     port 0 for a free one"
)]
pub struct BindError {
    address: SocketAddr,
    source: std::io::Error,
}

/// What a scrape renders.
enum Figures {
    /// The run is going: its ledger, read at scrape time.
    Live(Arc<Ledger>),
    /// A distributed run's manager: each worker's latest exact figures (by name), merged at
    /// scrape time as the final figures will be.
    Parts {
        runs: BTreeMap<String, MeasuredRun>,
        phase: Phase,
    },
    /// The final figures.
    Final(Arc<MeasuredRun>),
}

struct Shared {
    preset_name: String,
    targets: Targets,
    facts: RunFacts,
    figures: Mutex<Figures>,
    scrapes: AtomicU64,
    final_scrapes: AtomicU64,
    final_scraped: Notify,
}

impl Shared {
    fn render(&self) -> String {
        let figures = match &*self.figures() {
            Figures::Live(ledger) => Err(ledger.clone()),
            Figures::Final(run) => Ok((run.clone(), Phase::Ended)),
            Figures::Parts { runs, phase } => {
                let runs: Vec<MeasuredRun> = runs.values().cloned().collect();
                // Before any worker reported, the figures are a run of nothing yet.
                let mut merged = crate::measure::merge(&runs).unwrap_or_default();
                merged.preset_name.clone_from(&self.preset_name);
                Ok((Arc::new(merged), *phase))
            }
        };
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let (run, phase) = match figures {
            Ok(done) => done,
            Err(ledger) => {
                let run = ledger.snapshot(&self.preset_name, ledger.interruption().is_some());
                let phase = if ledger.stopping() {
                    Phase::Stopping
                } else if run.first_user_secs.is_none() {
                    Phase::Starting
                } else {
                    Phase::Running
                };
                (Arc::new(run), phase)
            }
        };
        let verdict = verdict::judge(&run, &self.targets, &self.facts);
        let text = exposition::render(&run, &verdict, phase);
        if phase == Phase::Ended {
            self.final_scrapes.fetch_add(1, Ordering::Relaxed);
            self.final_scraped.notify_one();
        }
        text
    }
}

impl Shared {
    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn scrape(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT)], shared.render())
}

/// The endpoint of one run, from before its first user to its final figures.
pub struct LiveMetrics {
    shared: Arc<Shared>,
    address: SocketAddr,
    shutdown: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

/// The endpoint's address, taken before the run so that an address in use is a
/// configuration error; it serves once [`LiveMetrics::serve`] gives it figures.
pub struct Listener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

impl Listener {
    pub async fn bind(address: SocketAddr) -> Result<Listener, BindError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| BindError { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| BindError { address, source })?;
        Ok(Listener { listener, address })
    }

    /// The address it listens on (the port picked when 0 was asked for).
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.address)
    }
}

impl LiveMetrics {
    /// Serves the figures of `ledger` on `listener`, judged as `plan` says.
    pub fn serve(listener: Listener, plan: &Plan, ledger: Arc<Ledger>) -> LiveMetrics {
        LiveMetrics::serving(listener, plan, Figures::Live(ledger))
    }

    /// Serves a distributed run's merged figures on `listener`: the workers' latest figures
    /// come with [`LiveMetrics::update_part`], the run's phase with [`LiveMetrics::set_phase`].
    pub fn serve_parts(listener: Listener, plan: &Plan) -> LiveMetrics {
        let figures = Figures::Parts {
            runs: BTreeMap::new(),
            phase: Phase::Starting,
        };
        LiveMetrics::serving(listener, plan, figures)
    }

    /// Worker `name`'s figures so far (a distributed run's manager).
    pub fn update_part(&self, name: &str, run: MeasuredRun) {
        if let Figures::Parts { runs, .. } = &mut *self.shared.figures() {
            runs.insert(name.to_string(), run);
        }
    }

    /// The distributed run's phase now (a distributed run's manager).
    pub fn set_phase(&self, now: Phase) {
        if let Figures::Parts { phase, .. } = &mut *self.shared.figures() {
            *phase = now;
        }
    }

    fn serving(listener: Listener, plan: &Plan, figures: Figures) -> LiveMetrics {
        let Listener {
            listener,
            address: bound,
        } = listener;
        let shared = Arc::new(Shared {
            preset_name: plan.preset_name.clone(),
            targets: plan.targets.clone(),
            facts: plan.facts(),
            figures: Mutex::new(figures),
            scrapes: AtomicU64::new(0),
            final_scrapes: AtomicU64::new(0),
            final_scraped: Notify::new(),
        });
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .with_state(shared.clone());
        let shutdown = Arc::new(Notify::new());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        LiveMetrics {
            shared,
            address: bound,
            shutdown,
            server,
        }
    }

    /// The address it listens on (the port picked when 0 was asked for).
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.address)
    }

    /// The run's final figures are in: from now on every scrape serves exactly these.
    /// Said on the console when something scraped during the run: the end waits (at most
    /// `linger`, see [`LiveMetrics::close`]) for one scrape of them.
    pub fn finish(&self, run: &MeasuredRun, linger: Duration) {
        *self.shared.figures() = Figures::Final(Arc::new(run.clone()));
        if self.scraped() {
            outln!(
                "Live metrics: the final figures are served until scraped once more (at most {})",
                crate::duration::HumanDuration(linger)
            );
        }
    }

    /// Whether anything scraped the endpoint so far.
    pub fn scraped(&self) -> bool {
        self.shared.scrapes.load(Ordering::Relaxed) > 0
    }

    /// Stops serving: when something scraped during the run and its final figures are in,
    /// after one scrape of them or `linger`, whichever comes first; at once otherwise (a run
    /// that ended without figures has none to wait for).
    pub async fn close(self, linger: Duration) {
        let finished = matches!(&*self.shared.figures(), Figures::Final(_));
        if finished && self.scraped() && self.shared.final_scrapes.load(Ordering::Relaxed) == 0 {
            let _ = tokio::time::timeout(linger, self.shared.final_scraped.notified()).await;
        }
        self.shutdown.notify_one();
        let mut server = self.server;
        // A scraper holding its connection open is not waited for long.
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
