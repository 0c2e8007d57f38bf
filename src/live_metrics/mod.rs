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
        let figures = match &*self.figures.lock().unwrap_or_else(|p| p.into_inner()) {
            Figures::Live(ledger) => Err(ledger.clone()),
            Figures::Final(run) => Ok(run.clone()),
        };
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let (run, phase) = match figures {
            Ok(run) => (run, Phase::Ended),
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

impl LiveMetrics {
    /// Listens on `address` and serves the figures of `ledger`, judged as `plan` says.
    pub async fn start(
        address: SocketAddr,
        plan: &Plan,
        ledger: Arc<Ledger>,
    ) -> Result<LiveMetrics, BindError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| BindError { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| BindError { address, source })?;
        let shared = Arc::new(Shared {
            preset_name: plan.preset_name.clone(),
            targets: plan.targets.clone(),
            facts: plan.facts(),
            figures: Mutex::new(Figures::Live(ledger)),
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
        Ok(LiveMetrics {
            shared,
            address: bound,
            shutdown,
            server,
        })
    }

    /// The address it listens on (the port picked when 0 was asked for).
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.address)
    }

    /// The run's final figures are in: from now on every scrape serves exactly these.
    pub fn finish(&self, run: &MeasuredRun) {
        *self
            .shared
            .figures
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Figures::Final(Arc::new(run.clone()));
    }

    /// Whether anything scraped the endpoint so far.
    pub fn scraped(&self) -> bool {
        self.shared.scrapes.load(Ordering::Relaxed) > 0
    }

    /// Stops serving: when something scraped during the run, after one scrape of the final
    /// figures or `linger`, whichever comes first; at once otherwise.
    pub async fn close(self, linger: Duration) {
        if self.scraped() && self.shared.final_scrapes.load(Ordering::Relaxed) == 0 {
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
