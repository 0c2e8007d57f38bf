//! Per-client fixed-window rate limiting, applied before routing and validation.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use super::config::RateLimitConfig;

/// Above this many tracked (category, client) pairs, expired windows are
/// dropped at once instead of waiting for the periodic sweep.
const MAX_TRACKED: usize = 200_000;

/// The contract's rate-limit categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Auth,
    Api,
    Health,
    WebSocket,
}

/// The category of a request, or `None` when it is not limited
/// (`/metrics`, and WebSocket handshakes).
pub(crate) fn categorize(path: &str, headers: &HeaderMap) -> Option<Category> {
    if path == "/metrics" {
        None
    } else if path == "/api/auth" || path.starts_with("/api/auth/") {
        Some(Category::Auth)
    } else if path.starts_with("/health") {
        Some(Category::Health)
    } else if path == "/ws" || path.starts_with("/ws/") {
        (!is_ws_handshake(headers)).then_some(Category::WebSocket)
    } else {
        Some(Category::Api)
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// A request asking for a WebSocket upgrade.
pub(crate) fn is_ws_handshake(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

/// Who the request counts against: the TCP peer's IP, or the first
/// `X-Forwarded-For` entry when that header is trusted.
pub(crate) fn client_key(req: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for
        && let Some(first) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return match first.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => first.to_owned(),
        };
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

struct Window {
    start: Instant,
    count: u32,
}

/// The outcome of counting one request.
#[derive(Debug)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds until the window ends (at least 1).
    pub retry_after: u64,
    /// Epoch second at which the window ends.
    pub reset_epoch: u64,
}

/// Fixed windows per (category, client); a window starts at the client's
/// first request in that category.
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    windows: Mutex<HashMap<(Category, String), Window>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn limit_of(&self, category: Category) -> u32 {
        match category {
            Category::Auth => self.config.auth,
            Category::Api => self.config.api,
            Category::Health => self.config.health,
            Category::WebSocket => self.config.websocket,
        }
    }

    /// Counts one request of `client` in `category`.
    pub fn check(&self, category: Category, client: &str) -> Decision {
        let limit = self.limit_of(category);
        let window = self.config.window;
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.start) < window);
        }
        let entry = windows
            .entry((category, client.to_owned()))
            .or_insert(Window {
                start: now,
                count: 0,
            });
        if now.duration_since(entry.start) >= window {
            *entry = Window {
                start: now,
                count: 0,
            };
        }
        let allowed = entry.count < limit;
        if allowed {
            entry.count += 1;
        }
        let left = window.saturating_sub(now.duration_since(entry.start));
        let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let retry_after = retry_after.max(1);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(entry.count),
            retry_after,
            reset_epoch: (epoch + left.as_secs_f64()).ceil() as u64,
        }
    }

    /// Drops windows that have ended, so the limiter does not grow without bound.
    pub fn sweep(&self) {
        let now = Instant::now();
        let window = self.config.window;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.retain(|_, w| now.duration_since(w.start) < window);
    }

    /// Number of tracked windows (for /metrics).
    pub fn tracked(&self) -> usize {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_epoch));
}

/// Middleware: counts the request, answers 429 when over the limit.
pub(crate) async fn limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if !state.config.rate_limiting() {
        return next.run(req).await;
    }
    let Some(category) = categorize(req.uri().path(), req.headers()) else {
        return next.run(req).await;
    };
    let client = client_key(&req, state.config.trusts_forwarded_for());
    let decision = state.limiter.check(category, &client);
    if decision.allowed {
        let mut res = next.run(req).await;
        set_headers(res.headers_mut(), &decision);
        return res;
    }
    state.metrics.count_rate_limited();
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "detail": "Rate limit exceeded" })),
    )
        .into_response();
    let headers = res.headers_mut();
    set_headers(headers, &decision);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after));
    res
}
