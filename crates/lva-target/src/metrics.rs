//! Prometheus text metrics: process memory, request counters, WebSocket gauges.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Shared;
use crate::storage::Counted;

/// Status codes are counted in a fixed array indexed by code (100..=599).
const STATUS_SLOTS: usize = 600;

pub(crate) struct Metrics {
    by_status: Box<[AtomicU64]>,
    ws_open: AtomicUsize,
    ws_total: AtomicU64,
    rate_limited: AtomicU64,
    /// Requests received and not yet answered.
    in_flight: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            ws_open: AtomicUsize::new(0),
            ws_total: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        if let Some(slot) = self.by_status.get(usize::from(status)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ws_opened(&self) {
        self.ws_open.fetch_add(1, Ordering::SeqCst);
        self.ws_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ws_closed(&self) {
        self.ws_open.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn ws_open(&self) -> usize {
        self.ws_open.load(Ordering::SeqCst)
    }
}

/// Decrements the open-socket gauge when a WebSocket session ends, however it ends.
pub(crate) struct OpenSocket<'a>(&'a Metrics);

impl<'a> OpenSocket<'a> {
    pub fn new(metrics: &'a Metrics) -> Self {
        metrics.ws_opened();
        Self(metrics)
    }
}

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.ws_closed();
    }
}

/// Middleware: counts every answer by status, and the requests in flight.
pub(crate) async fn count(State(state): State<Shared>, req: Request, next: Next) -> Response {
    // Dropped when answered, or when the client gave up.
    let in_flight = Counted::new(&state.metrics.in_flight);
    let res = next.run(req).await;
    drop(in_flight);
    state.metrics.count_status(res.status().as_u16());
    res
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/metrics", get(render))
}

/// User and system CPU time of this process, in seconds, from /proc/self/stat (0 where
/// unavailable).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces, so it is skipped by its
    // closing parenthesis): utime and stime are the 12th and 13th of them.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // Linux reports these in USER_HZ, 100 a second on every architecture.
    ticks as f64 / 100.0
}

/// `(VmRSS, VmSize)` in bytes from /proc/self/status (zeros where unavailable).
fn process_memory() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmSize:"))
}

async fn render(State(state): State<Shared>) -> Response {
    let m = &state.metrics;
    let (rss, vsize) = process_memory();
    let mut out = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        rss.to_string(),
    );
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        "gauge",
        vsize.to_string(),
    );
    gauge(
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds.",
        "counter",
        process_cpu_seconds().to_string(),
    );
    gauge(
        "lva_http_requests_in_flight",
        "HTTP requests received and not yet answered.",
        "gauge",
        m.in_flight.load(Ordering::Relaxed).to_string(),
    );
    let pool = state.db.pool();
    gauge(
        "lva_db_pool_connections",
        "Connections to the database (one SQLite connection).",
        "gauge",
        pool.size.to_string(),
    );
    gauge(
        "lva_db_pool_in_use",
        "Database connections in use now.",
        "gauge",
        pool.in_use.to_string(),
    );
    gauge(
        "lva_db_pool_waiting",
        "Database calls waiting for a connection now.",
        "gauge",
        pool.waiting.to_string(),
    );
    gauge(
        "lva_websocket_connections_open",
        "WebSocket sessions open now.",
        "gauge",
        m.ws_open().to_string(),
    );
    gauge(
        "lva_websocket_connections_total",
        "WebSocket sessions opened since start.",
        "counter",
        m.ws_total.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        "lva_rate_limited_total",
        "Requests answered 429 by the rate limiter.",
        "counter",
        m.rate_limited.load(Ordering::Relaxed).to_string(),
    );
    gauge(
        "lva_rate_limit_windows",
        "Rate-limit windows currently tracked.",
        "gauge",
        state.limiter.tracked().to_string(),
    );
    gauge(
        "lva_fault_leaked_bytes",
        "Bytes retained on purpose by --fault-leak-bytes.",
        "gauge",
        state.faults.retained_bytes().to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP lva_http_requests_total HTTP answers by status code.\n# TYPE lva_http_requests_total counter"
    );
    for (code, slot) in m.by_status.iter().enumerate() {
        let n = slot.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(out, "lva_http_requests_total{{status=\"{code}\"}} {n}");
        }
    }
    let mut res = out.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
