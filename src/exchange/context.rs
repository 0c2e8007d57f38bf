//! What every simulated user shares during a run: the ledger, the run's identity, the
//! address of the server under test, the TLS configuration and the flow options.

use crate::measure::Ledger;
use crate::transport::user_client::{HttpSettings, UserClient};
use crate::transport::{LOOPBACK_SOURCES, TlsOptions, loopback_source, tls_config, ws_url_of};
use rustls::ClientConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

/// How the WebSocket user behaves.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WsOptions {
    /// Send the access token as `?token=` (true) or as an `Authorization` header.
    pub token_in_query: bool,
    /// How long the long-lived session keeps its socket open.
    pub hold: Duration,
    /// Time between two `audio` messages of the long-lived session.
    pub pace: Duration,
    /// Size of the `audio` payload before base64.
    pub payload_bytes: usize,
    /// How long to wait for a reply before calling it a failure.
    pub reply_timeout: Duration,
    /// `Origin` header of the handshake, if any.
    pub origin: Option<String>,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            token_in_query: true,
            hold: Duration::from_secs(10),
            pace: Duration::from_secs(1),
            payload_bytes: 256,
            reply_timeout: Duration::from_secs(10),
            origin: None,
        }
    }
}

/// Options of the user flows that the command line sets.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FlowOptions {
    /// Leave the accounts the run created in place at the end.
    pub keep_accounts: bool,
    /// Each user sends its own `X-Forwarded-For` from this many documentation addresses.
    pub forwarded_for_pool: Option<u32>,
    /// Each user connects from its own loopback address (127.0.x.y), so that a server on
    /// this machine applies its per-client limits per simulated user.
    pub loopback_sources: bool,
    pub ws: WsOptions,
    /// Request timeout of every user's client.
    pub timeout: Option<Duration>,
    /// Users are numbered from this + 1: the workers of a distributed run number theirs
    /// apart, so loopback sources and forwarded-for addresses stay one per user.
    pub first_user_index: u64,
    /// Where this run's loopback source addresses start (random per run, see
    /// [`loopback_source`]).
    pub source_offset: u64,
    /// How the clients trust the server's certificate.
    pub tls: TlsOptions,
}

/// Shared by every simulated user of one run.
pub struct RunContext {
    pub ledger: Arc<Ledger>,
    /// The run's id (the plan's, see [`crate::plan::Plan::run_id`]): it makes the run's
    /// account addresses unique.
    pub run_id: String,
    base: String,
    /// The host URL's path without its trailing `/` (empty for most hosts).
    base_path: String,
    pub host: Url,
    pub options: FlowOptions,
    tls: Arc<ClientConfig>,
    /// How every user's client reaches the host.
    http: Arc<HttpSettings>,
    next_user: AtomicU64,
    /// Turns `true` once the run is ending; idle users wait on it.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Goose keeps figures of its own (its dashboard or its reports show them): every
    /// request is recorded there too, and Goose paces the users. Off, the ledger alone
    /// records and each user waits between its tasks by itself (see
    /// [`RunContext::wait_between_tasks`]).
    pub goose_metrics: bool,
    /// Open model: the pool users wait in for their arrivals (`None`: a closed model, each
    /// user going on after its wait).
    pub arrivals: Option<Arc<super::arrivals::ArrivalPool>>,
}

impl RunContext {
    pub fn new(
        host: Url,
        run_id: &str,
        options: FlowOptions,
        ledger: Arc<Ledger>,
    ) -> Result<Self, String> {
        let tls = Arc::new(tls_config(&options.tls).map_err(|e| e.to_string())?);
        let http =
            HttpSettings::new(&host, tls.clone(), options.timeout).map_err(|e| e.to_string())?;
        let base = host.as_str().trim_end_matches('/').to_string();
        let base_path = host.path().trim_end_matches('/').to_string();
        Ok(RunContext {
            ledger,
            run_id: run_id.to_string(),
            base,
            base_path,
            host,
            options,
            tls,
            http: Arc::new(http),
            next_user: AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            goose_metrics: true,
            arrivals: None,
        })
    }

    /// The context with Goose's own figures on or off (see [`RunContext::goose_metrics`]).
    pub fn with_goose_metrics(mut self, on: bool) -> Self {
        self.goose_metrics = on;
        self
    }

    /// The context of an open-model run, whose users take their work from `pool`.
    pub fn with_arrivals(mut self, pool: Option<Arc<super::arrivals::ArrivalPool>>) -> Self {
        self.arrivals = pool;
        self
    }

    /// The full URL of an API path (which may end in a query). Built from the host's parsed
    /// URL, so the host is not parsed again for every request.
    pub fn url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = self.host.clone();
        url.set_path(&format!("{}{path}", self.base_path));
        url.set_query(query);
        url.set_fragment(None);
        url
    }

    /// The WebSocket URL of a path: `ws://` or `wss://` after the host's scheme.
    pub fn ws_url(&self, path: &str) -> String {
        ws_url_of(&self.base, path)
    }

    pub fn tls(&self) -> Arc<ClientConfig> {
        self.tls.clone()
    }

    /// A number for each simulated user of the run, from 1.
    pub fn next_user_index(&self) -> u64 {
        self.options.first_user_index + self.next_user.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Set when the run is ending: on_stop work keeps to a short budget.
    pub fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// True once the run is ending: its time is up, or it was stopped (Ctrl-C, the
    /// dashboard, `--abort-on-fail`), which Goose signals through its kill switch.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow() || goose::is_killswitch_triggered()
    }

    /// Waits `at_most`, or less when the run begins stopping meanwhile.
    pub async fn idle(&self, at_most: Duration) {
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(at_most) => {}
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    }

    /// A user's wait between two tasks: a random time from `min` to `max` (to the
    /// millisecond, as Goose draws it), cut short when the run begins stopping. One timer,
    /// one wake-up: Goose's own wait wakes every 500 ms to look for its stop command.
    pub async fn wait_between_tasks(&self, min: Duration, max: Duration) {
        use rand::Rng;
        if self.is_stopping() {
            return;
        }
        let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
        let millis = rand::rng().random_range(min..=max.max(min));
        self.idle(Duration::from_millis(millis)).await;
    }

    /// The `X-Forwarded-For` address of user `index`, when the pool is on: the first
    /// addresses of the documentation ranges (see [`documentation_address`]).
    pub fn forwarded_for(&self, index: u64) -> Option<String> {
        let pool = u64::from(self.options.forwarded_for_pool?.max(1));
        Some(documentation_address((index - 1) % pool).to_string())
    }

    /// A client of the user's own: its own keep-alive connection, from its own loopback
    /// source address when the run gives users theirs. Cheap: it connects on first use.
    pub fn build_client(&self, index: u64) -> UserClient {
        let source = self
            .options
            .loopback_sources
            .then(|| loopback_source(self.options.source_offset + index));
        UserClient::new(self.http.clone(), source)
    }

    /// A client for a request made outside any user's session.
    pub fn anonymous_client(&self) -> UserClient {
        UserClient::new(self.http.clone(), None)
    }
}

/// A random start for a run's loopback source addresses.
pub fn new_source_offset() -> u64 {
    use rand::Rng;
    rand::rng().random_range(0..LOOPBACK_SOURCES)
}

/// How many addresses the IPv4 documentation ranges (RFC 5737) hold, without the .0 and
/// .255 of each: 3 × 254.
pub const DOCUMENTATION_ADDRESSES: u64 = 762;

/// The `n`-th address (from 0) of the IPv4 documentation ranges, which route nowhere:
/// 192.0.2.1 to .254, then 198.51.100.x, then 203.0.113.x, and round again.
pub fn documentation_address(n: u64) -> std::net::Ipv4Addr {
    let ranges = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
    let n = n % DOCUMENTATION_ADDRESSES;
    let [a, b, c] = ranges[(n / 254) as usize];
    std::net::Ipv4Addr::new(a, b, c, (n % 254 + 1) as u8)
}

/// A short random id: a run's (see [`crate::plan::Plan::run_id`]), or a dashboard's token.
pub fn new_run_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_pool_cycles_through_documentation_addresses() {
        let ctx = RunContext::new(
            Url::parse("http://127.0.0.1:1").expect("url"),
            "testrun1",
            FlowOptions {
                forwarded_for_pool: Some(3),
                ..FlowOptions::default()
            },
            Arc::new(Ledger::new(Duration::from_secs(10))),
        )
        .expect("context");
        let got: Vec<_> = (1..=4).filter_map(|i| ctx.forwarded_for(i)).collect();
        assert_eq!(got, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"]);
        assert_eq!(documentation_address(254).to_string(), "198.51.100.1");
        assert_eq!(documentation_address(761).to_string(), "203.0.113.254");
        assert_eq!(documentation_address(762).to_string(), "192.0.2.1");
        assert_eq!(ctx.ws_url("/ws/a"), "ws://127.0.0.1:1/ws/a");
    }

    #[test]
    fn request_urls_keep_the_hosts_path_and_carry_the_query() {
        for (host, path, want) in [
            ("http://127.0.0.1:1", "/health", "http://127.0.0.1:1/health"),
            (
                "http://127.0.0.1:1/",
                "/api/stats",
                "http://127.0.0.1:1/api/stats",
            ),
            (
                "http://[::1]:8000/lva/",
                "/api/session/a b/history?limit=5&x=%2F",
                "http://[::1]:8000/lva/api/session/a%20b/history?limit=5&x=%2F",
            ),
            (
                "https://example.test/v1?q=1#top",
                "/health",
                "https://example.test/v1/health",
            ),
        ] {
            let ctx = RunContext::new(
                Url::parse(host).expect("url"),
                "testrun1",
                FlowOptions::default(),
                Arc::new(Ledger::new(Duration::from_secs(10))),
            )
            .expect("context");
            assert_eq!(ctx.url(path).as_str(), want, "{host} + {path}");
        }
    }
}
