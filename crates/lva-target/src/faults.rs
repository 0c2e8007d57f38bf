//! Fault injection: added latency, injected 500s, a deliberate memory leak, a known
//! capacity (slots) and periodic stalls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::json;

use super::Shared;

/// Memory kept on purpose when `--fault-leak-bytes` is set.
pub(crate) struct Faults {
    retained: Mutex<Vec<Box<[u8]>>>,
    retained_bytes: AtomicU64,
    /// `--fault-slots`: the slots /api/* requests hold while served.
    slots: Option<tokio::sync::Semaphore>,
    /// Where the stall periods count from.
    started: Instant,
}

impl Faults {
    pub fn new(config: &super::config::FaultConfig) -> Self {
        Faults {
            retained: Mutex::default(),
            retained_bytes: AtomicU64::new(0),
            slots: (config.slots > 0).then(|| tokio::sync::Semaphore::new(config.slots as usize)),
            started: Instant::now(),
        }
    }

    /// How long a request arriving now waits for the stall it fell in to end.
    fn stall_left(&self, stall: Duration, period: Duration) -> Duration {
        if stall.is_zero() {
            return Duration::ZERO;
        }
        let into = self.started.elapsed().as_nanos() % period.as_nanos().max(1);
        let into = Duration::from_nanos(u64::try_from(into).unwrap_or(u64::MAX));
        stall.saturating_sub(into)
    }

    fn leak(&self, bytes: usize) {
        // A non-zero fill touches every page, so the leak shows in RSS.
        let block = vec![0xA5u8; bytes].into_boxed_slice();
        self.retained
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(block);
        self.retained_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn retained_bytes(&self) -> u64 {
        self.retained_bytes.load(Ordering::Relaxed)
    }
}

/// Waits the configured latency (fixed plus jitter), if any: before an HTTP answer and
/// before each WebSocket reply.
pub(crate) async fn sleep_injected_latency(state: &Shared) {
    let cfg = &state.config.faults;
    let mut delay = cfg.latency;
    if !cfg.jitter.is_zero() {
        let max = u64::try_from(cfg.jitter.as_millis()).unwrap_or(u64::MAX);
        delay += Duration::from_millis(rand::rng().random_range(0..=max));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Middleware: applies the configured faults (never to /metrics; injected
/// 500s only to /api/*).
pub(crate) async fn inject(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let cfg = &state.config.faults;
    let path = req.uri().path();
    if path == "/metrics" {
        return next.run(req).await;
    }
    sleep_injected_latency(&state).await;
    let stall = state.faults.stall_left(cfg.stall, cfg.stall_period);
    if !stall.is_zero() {
        tokio::time::sleep(stall).await;
    }
    // Held until the answer is built: a request waits here for a free slot.
    let _slot = match (&state.faults.slots, path.starts_with("/api/")) {
        (Some(slots), true) => {
            let slot = slots.acquire().await.ok();
            tokio::time::sleep(cfg.slot_time).await;
            slot
        }
        _ => None,
    };
    if cfg.leak_bytes > 0 {
        state.faults.leak(cfg.leak_bytes);
    }
    if cfg.error_rate > 0.0
        && path.starts_with("/api/")
        && rand::rng().random::<f64>() < cfg.error_rate
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "detail": "Injected fault" })),
        )
            .into_response();
    }
    next.run(req).await
}
