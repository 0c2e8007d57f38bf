//! What a run measured: the live [`Ledger`] every request reports to, and the
//! [`MeasuredRun`] snapshot that the validator, the reports and the distributed merge read.
//!
//! Goose keeps its own metrics (they feed its HTML report and dashboard); the ledger keeps
//! what Goose cannot: how each answer was classified (success, failure, rate limited,
//! expected error), the timeline of fixed windows with a histogram each (for error spikes,
//! degradation and recovery), authentication outcomes, rate-limit evidence, WebSocket
//! counters and account cleanup.

mod histogram;
pub mod memory;
mod merge;
mod server;

pub use histogram::{Histogram, bucket_floor, bucket_value};
pub use memory::MemorySource;
pub use merge::{MergeError, merge};
pub use server::{ServerMetrics, ServerPoint, ServerSeries};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a recorded operation is: judged apart, HTTP against the HTTP targets and
/// WebSocket operations against their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    Http,
    WebSocket,
}

/// How an answer was classified by the task that made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The request failed; the text says why (status, body check, transport error).
    Failure(String),
    /// 429: not judged by default (a failure with `--count-429-as-failure`); counted and
    /// timed on its own.
    RateLimited,
    /// An error the task's contract expects (for example 401 for the rate-limit user's
    /// unknown accounts): not judged (neither success nor failure), counted and timed apart.
    ExpectedError(String),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failure(_))
    }
}

/// `n` events over `secs` seconds, per second; 0 over no time.
pub fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Adds every count of `from` into `into`.
fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k.clone()).or_insert(0) += n;
    }
}

/// The order errors are listed in: most frequent first, then by request and text.
fn sort_errors(errors: &mut [ErrorCount]) {
    errors.sort_by(|a, b| {
        b.occurrences
            .cmp(&a.occurrences)
            .then_with(|| (&a.method, &a.name, &a.error).cmp(&(&b.method, &b.name, &b.error)))
    });
}

fn histogram_is_empty(h: &Histogram) -> bool {
    h.count == 0
}

/// A start later than this after its intended time is counted late.
pub const LATE_START: Duration = Duration::from_millis(10);

/// Largest share of an open-model run's starts that may come late (see [`LATE_START`]).
pub const LATE_SHARE_PCT: f64 = 1.0;

/// An open-model run's arrivals: how many the schedule planned, who took them, and how
/// late they started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrivalStats {
    /// The rate the run was given, in words (`10/s for 1m`).
    pub schedule: String,
    /// Arrivals whose intended time came.
    pub planned: u64,
    /// Taken by a started user that was waiting for one.
    pub taken: u64,
    /// Taken by a user of the pool not started yet, which started for it.
    pub on_demand: u64,
    /// Not taken: every user of the pool was busy.
    pub dropped: u64,
    /// Task iterations that began more than [`LATE_START`] after their intended time.
    pub late: u64,
    /// From each arrival's intended time to its task's start: the generator's own lag, and
    /// a new user's start.
    pub lag: Histogram,
    /// The pool's size (`--max-users`).
    pub max_users: u64,
    /// The schedule ran to its end (on every worker of a distributed run): its last
    /// arrival's time came, or the search that set the rate ended.
    #[serde(default)]
    pub completed: bool,
}

impl ArrivalStats {
    pub fn merge(&mut self, other: &ArrivalStats) {
        if self.schedule.is_empty() {
            self.schedule.clone_from(&other.schedule);
        }
        self.planned += other.planned;
        self.taken += other.taken;
        self.on_demand += other.on_demand;
        self.dropped += other.dropped;
        self.late += other.late;
        self.lag.merge(&other.lag);
        self.max_users += other.max_users;
        self.completed &= other.completed;
    }

    /// The arrivals that started (taken by a waiting user or a new one).
    pub fn started(&self) -> u64 {
        self.taken + self.on_demand
    }

    /// More starts came late than [`LATE_SHARE_PCT`] of them allows. One late start is
    /// always allowed: below 1/share starts (100 at 1%), a share of them cannot be told
    /// from a single hiccup of the machine.
    pub fn too_many_late(&self) -> bool {
        let allowed = (self.started() as f64 * LATE_SHARE_PCT / 100.0).floor() as u64;
        self.late > allowed.max(1)
    }
}

/// Counts and times of one request name, over a window or the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    pub kind: Option<RequestKind>,
    pub method: String,
    pub name: String,
    /// Times of the answers judged by default: successes and failures (a failed operation
    /// counts its time to failure). Read through [`RequestStats::judged_times`], which adds
    /// the 429s when they count as failures.
    pub times: Histogram,
    /// Times of the rate-limited answers (429), kept apart: a fast 429 must not make a slow
    /// endpoint look fast.
    #[serde(default)]
    pub rate_limited_times: Histogram,
    /// Times of the expected errors, kept apart for the same reason.
    #[serde(default)]
    pub expected_error_times: Histogram,
    /// Open model only: the judged answers' service times, from the actual send (`times`
    /// then counts from each arrival's intended start, and the verdict reads `times`).
    #[serde(default, skip_serializing_if = "histogram_is_empty")]
    pub service_times: Histogram,
    pub successes: u64,
    pub failures: u64,
    pub rate_limited: u64,
    pub expected_errors: u64,
    /// Status code → count; transport errors count under 0.
    pub status_codes: BTreeMap<u16, u64>,
    pub bytes_received: u64,
}

impl RequestStats {
    /// The key Goose uses for this request too: `"METHOD name"`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.name)
    }

    pub fn total(&self) -> u64 {
        self.successes + self.failures + self.rate_limited + self.expected_errors
    }

    /// The times of the judged answers: successes and failures, and the 429s when
    /// `count_429_as_failure` makes them judged. Every latency figure (percentiles, average,
    /// max, per endpoint, per window, the checks and the abort rule) is read from here.
    pub fn judged_times(&self, count_429_as_failure: bool) -> std::borrow::Cow<'_, Histogram> {
        if count_429_as_failure && self.rate_limited_times.count > 0 {
            let mut all = self.times.clone();
            all.merge(&self.rate_limited_times);
            std::borrow::Cow::Owned(all)
        } else {
            std::borrow::Cow::Borrowed(&self.times)
        }
    }

    /// Adds `other`'s counts and times (same request name).
    pub fn merge(&mut self, other: &RequestStats) {
        if self.kind.is_none() {
            self.kind = other.kind;
            self.method.clone_from(&other.method);
            self.name.clone_from(&other.name);
        }
        self.times.merge(&other.times);
        self.rate_limited_times.merge(&other.rate_limited_times);
        self.expected_error_times.merge(&other.expected_error_times);
        self.service_times.merge(&other.service_times);
        self.successes += other.successes;
        self.failures += other.failures;
        self.rate_limited += other.rate_limited;
        self.expected_errors += other.expected_errors;
        add_counts(&mut self.status_codes, &other.status_codes);
        self.bytes_received += other.bytes_received;
    }

    /// Counts one answer, its time in the histogram of its outcome (and, in an open-model
    /// run, a judged answer's service time apart).
    pub fn record(&mut self, obs: &Observation<'_>) {
        let (status, outcome, bytes) = (obs.status, obs.outcome, obs.bytes);
        let duration_us = obs.duration.as_micros() as u64;
        let judged = matches!(outcome, Outcome::Success | Outcome::Failure(_));
        if let (Some(service), true) = (obs.service, judged) {
            self.service_times.record(service.as_micros() as u64);
        }
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.times.record(duration_us);
            }
            Outcome::Failure(_) => {
                self.failures += 1;
                self.times.record(duration_us);
            }
            Outcome::RateLimited => {
                self.rate_limited += 1;
                self.rate_limited_times.record(duration_us);
            }
            Outcome::ExpectedError(_) => {
                self.expected_errors += 1;
                self.expected_error_times.record(duration_us);
            }
        }
        *self.status_codes.entry(status.unwrap_or(0)).or_insert(0) += 1;
        self.bytes_received += bytes;
    }
}

/// One fixed window of the run's timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Seconds from the start of the run to the start of this window.
    pub start_secs: f64,
    /// Per request key (`"METHOD name"`).
    pub requests: BTreeMap<String, RequestStats>,
}

impl WindowStats {
    /// All requests of one kind in this window together.
    pub fn combined(&self, kind: RequestKind) -> RequestStats {
        let mut all = RequestStats::default();
        for stats in self.requests.values().filter(|s| s.kind == Some(kind)) {
            all.merge(stats);
        }
        all
    }

    /// Adds `other`'s requests (the same seconds of the run, measured elsewhere).
    pub fn merge(&mut self, other: &WindowStats) {
        for (key, stats) in &other.requests {
            self.requests.entry(key.clone()).or_default().merge(stats);
        }
    }
}

/// One error message of one request name, and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    /// True for errors the task expects (see [`Outcome::ExpectedError`]).
    pub expected: bool,
}

/// How the simulated users fared at authenticating.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthOutcomes {
    pub registered: u64,
    pub logged_in: u64,
    pub refreshed: u64,
    pub refresh_failed: u64,
    /// Users that could not authenticate and stopped, by reason.
    pub users_refused: BTreeMap<String, u64>,
}

impl AuthOutcomes {
    pub fn merge(&mut self, other: &AuthOutcomes) {
        self.registered += other.registered;
        self.logged_in += other.logged_in;
        self.refreshed += other.refreshed;
        self.refresh_failed += other.refresh_failed;
        add_counts(&mut self.users_refused, &other.users_refused);
    }
}

/// How the users of one class started: launched (their on-start work began), started (it
/// ended with the user ready), refused (it ended with the user stopped, by reason); and users
/// that stopped later (for example a token that could not be renewed), by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassStarts {
    pub launched: u64,
    pub started: u64,
    pub refused: BTreeMap<String, u64>,
    pub stopped_later: BTreeMap<String, u64>,
}

impl ClassStarts {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    pub fn merge(&mut self, other: &ClassStarts) {
        self.launched += other.launched;
        self.started += other.started;
        add_counts(&mut self.refused, &other.refused);
        add_counts(&mut self.stopped_later, &other.stopped_later);
    }
}

/// What the 429 answers looked like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimitEvidence {
    pub responses_429: u64,
    pub with_retry_after: u64,
    pub with_ratelimit_headers: u64,
    /// Per user class: requests made and how many were rate limited.
    pub by_user_class: BTreeMap<String, ClassRateLimits>,
}

impl RateLimitEvidence {
    pub fn merge(&mut self, other: &RateLimitEvidence) {
        self.responses_429 += other.responses_429;
        self.with_retry_after += other.with_retry_after;
        self.with_ratelimit_headers += other.with_ratelimit_headers;
        for (class, counts) in &other.by_user_class {
            let into = self.by_user_class.entry(class.clone()).or_default();
            into.requests += counts.requests;
            into.rate_limited += counts.rate_limited;
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassRateLimits {
    pub requests: u64,
    pub rate_limited: u64,
}

/// WebSocket session counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebSocketStats {
    pub connections_opened: u64,
    pub peak_concurrent: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Close code (as text, `"none"` for a dropped connection) → count.
    pub closes_by_code: BTreeMap<String, u64>,
}

impl WebSocketStats {
    /// Adds `other`'s counters. The peak becomes the sum of both peaks: an upper bound, since
    /// the two need not have peaked at the same moment.
    pub fn merge(&mut self, other: &WebSocketStats) {
        self.connections_opened += other.connections_opened;
        self.peak_concurrent += other.peak_concurrent;
        self.messages_sent += other.messages_sent;
        self.messages_received += other.messages_received;
        add_counts(&mut self.closes_by_code, &other.closes_by_code);
    }
}

/// Accounts the run created and what became of them at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    pub accounts_created: u64,
    pub logged_out: u64,
    pub deleted: u64,
    pub failed: u64,
    /// The accounts created and not deleted, for the operator to remove (never a password
    /// or a token).
    #[serde(default)]
    pub left_behind: Vec<LeftAccount>,
}

/// An account the run created on the server and could not delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeftAccount {
    pub email: String,
    /// The server's id for it, when its registration answer gave one.
    pub id: Option<String>,
    /// Why it was not deleted: `no token to delete it with`, `delete refused (500)`.
    pub reason: String,
}

impl Cleanup {
    pub fn merge(&mut self, other: &Cleanup) {
        self.accounts_created += other.accounts_created;
        self.logged_out += other.logged_out;
        self.deleted += other.deleted;
        self.failed += other.failed;
        self.left_behind.extend(other.left_behind.iter().cloned());
        self.left_behind.sort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UserSample {
    pub t_secs: f64,
    pub users: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    pub t_secs: f64,
    pub rss_bytes: u64,
}

/// The server's memory through the run, and where it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySeries {
    /// For example `pid 1234 (/proc/1234/status VmRSS)` or a metrics URL.
    pub source: String,
    pub samples: Vec<MemorySample>,
}

/// Everything a run measured, as one value: what the validator judges, the reports print
/// and the manager of a distributed run merges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRun {
    #[serde(rename = "scenario")]
    pub preset_name: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Length of the measured window, in seconds.
    pub duration_secs: f64,
    pub window_secs: f64,
    /// Per request key, sorted by key.
    pub requests: Vec<RequestStats>,
    pub windows: Vec<WindowStats>,
    pub errors: Vec<ErrorCount>,
    pub auth: AuthOutcomes,
    pub rate_limit: RateLimitEvidence,
    pub websocket: WebSocketStats,
    pub cleanup: Cleanup,
    /// The requests made after the run began to stop (its planned end or an
    /// interruption): the users' cleanup and what was in flight. Counted in the run's
    /// totals, never in a window of the timeline: no check or chart reads them as load.
    #[serde(default)]
    pub stop_phase: Option<WindowStats>,
    pub users_over_time: Vec<UserSample>,
    pub max_users: u64,
    /// Seconds from the start of measuring to the first user's start, and to the latest
    /// one's: how long initialisation and the spawn schedule took.
    pub first_user_secs: Option<f64>,
    pub last_user_secs: Option<f64>,
    pub memory: Option<MemorySeries>,
    /// The server's own metrics, scraped through the run (`--server-metrics-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<ServerMetrics>,
    /// The run was stopped before its planned end (a signal, the dashboard, a lost
    /// manager, `--abort-on-fail`).
    pub interrupted: bool,
    /// Why the run was aborted early by `--abort-on-fail`, if it was.
    pub aborted: Option<String>,
    /// What stopped an interrupted run, in words: `Ctrl-C`, `SIGTERM`, `the dashboard's Stop`.
    #[serde(default)]
    pub interruption: Option<String>,
    /// Per user class: how its users started.
    #[serde(default)]
    pub user_starts: BTreeMap<String, ClassStarts>,
    /// `--abort-on-fail`'s rule as the run saw it, when it was on: whether it was ever armed.
    #[serde(default)]
    pub abort_rule: Option<AbortArming>,
    /// An open-model run's arrivals (`--rate`, `--rate-stages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<ArrivalStats>,
}

/// When `--abort-on-fail`'s rule may stop the run, and when it could first (if ever): below
/// its minimums it does nothing, and the verdict says so.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AbortArming {
    /// `--abort-min-requests`: judged requests before it may stop the run.
    pub min_requests: u64,
    /// `--abort-min-time`, in seconds.
    pub min_secs: f64,
    /// Seconds into the run when both minimums were first met; `None`: never.
    pub armed_at_secs: Option<f64>,
}

impl MeasuredRun {
    /// "28 requests (19 HTTP, 9 WebSocket)": the count a worker reports, split by kind so
    /// that it can be checked against the summary's HTTP total.
    pub fn request_count(&self) -> String {
        let all: u64 = self.requests.iter().map(|r| r.total()).sum();
        format!(
            "{all} requests ({} HTTP, {} WebSocket)",
            self.combined(RequestKind::Http).total(),
            self.combined(RequestKind::WebSocket).total()
        )
    }

    /// All requests of one kind together.
    pub fn combined(&self, kind: RequestKind) -> RequestStats {
        let mut all = RequestStats::default();
        for stats in self.requests.iter().filter(|s| s.kind == Some(kind)) {
            all.merge(stats);
        }
        all
    }

    pub fn request(&self, key: &str) -> Option<&RequestStats> {
        self.requests.iter().find(|s| s.key() == key)
    }

    /// Where window `i` of the timeline ends, in seconds: one window length after its start,
    /// but for the last, which ends with the measured time (see [`Ledger::snapshot`] for why
    /// it can be up to half a window longer, or shorter when the run was cut).
    pub fn window_end(&self, i: usize) -> f64 {
        let Some(w) = self.windows.get(i) else {
            return self.duration_secs;
        };
        if i + 1 == self.windows.len() {
            self.duration_secs.max(w.start_secs)
        } else {
            w.start_secs + self.window_secs
        }
    }
}

type Key = (&'static str, &'static str);

#[derive(Default)]
struct LedgerState {
    windows: Vec<HashMap<Key, (RequestKind, RequestStats)>>,
    /// Requests started after the run began to stop.
    stop_phase: HashMap<Key, (RequestKind, RequestStats)>,
    errors: HashMap<(Key, String, bool), u64>,
    auth: AuthOutcomes,
    rate_limit: RateLimitEvidence,
    websocket: WebSocketStats,
    open_websockets: u64,
    cleanup: Cleanup,
    users_over_time: Vec<UserSample>,
    first_user_secs: Option<f64>,
    last_user_secs: Option<f64>,
    memory: Option<MemorySeries>,
    server_metrics: Option<ServerMetrics>,
    aborted: Option<String>,
    interruption: Option<String>,
    user_starts: BTreeMap<String, ClassStarts>,
    abort_rule: Option<AbortArming>,
    arrivals: Option<ArrivalStats>,
    /// Seconds from the ledger's start to the start of what is measured: the first user's
    /// start in a dashboard run (which waits for Start), 0 otherwise.
    origin_secs: f64,
    /// When the run began to stop (its planned end, or an interruption).
    stop_secs: Option<f64>,
}

/// Live totals for the progress line, readable without the lock.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// HTTP requests answered (or failed): the summary's Total Requests.
    pub requests: AtomicU64,
    /// WebSocket operations (handshakes, round trips, closes).
    pub ws_operations: AtomicU64,
    pub failures: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Users launched so far.
    pub users: AtomicU64,
    /// Users whose work has ended (they stopped, or the run is ending).
    pub users_done: AtomicU64,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicU64,
    /// Open model: users running an arrival's task now.
    pub busy: AtomicU64,
}

/// Something that sees every request as the ledger records it (a distributed worker's
/// live statistics for its master).
pub type RequestTap = Box<dyn Fn(&Observation<'_>) + Send + Sync>;

/// The run's collector: every request, authentication and WebSocket event reports here.
/// Cheap on the request path: one short lock and a few counter updates.
pub struct Ledger {
    started: Instant,
    started_at: DateTime<Utc>,
    window: Duration,
    /// Measure from the first user's start (see [`Ledger::measure_from_first_user`]).
    from_first_user: std::sync::atomic::AtomicBool,
    /// The origin, in nanoseconds after `started`, for the request path (no lock).
    origin_nanos: AtomicU64,
    /// When the run began to stop, in nanoseconds after `started` (`u64::MAX` until then).
    stop_nanos: AtomicU64,
    state: Mutex<LedgerState>,
    pub live: LiveCounters,
    tap: OnceLock<RequestTap>,
}

/// What [`Ledger::record`] needs to know about one request.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub kind: RequestKind,
    pub method: &'static str,
    pub name: &'static str,
    /// The user class that made it.
    pub user_class: &'static str,
    pub started: Instant,
    /// The time judged: from the send, or in an open-model run from the arrival's
    /// intended start.
    pub duration: Duration,
    /// Open model only: from the actual send to the end.
    pub service: Option<Duration>,
    pub status: Option<u16>,
    pub outcome: &'a Outcome,
    pub bytes: u64,
}

impl Ledger {
    pub fn new(window: Duration) -> Self {
        Ledger {
            started: Instant::now(),
            started_at: Utc::now(),
            window: window.max(Duration::from_millis(100)),
            from_first_user: std::sync::atomic::AtomicBool::new(false),
            origin_nanos: AtomicU64::new(0),
            stop_nanos: AtomicU64::new(u64::MAX),
            state: Mutex::new(LedgerState::default()),
            live: LiveCounters::default(),
            tap: OnceLock::new(),
        }
    }

    /// Shows every request recorded from now on to `tap` as well; a ledger has one tap
    /// (a second is refused and returned).
    pub fn set_tap(&self, tap: RequestTap) -> Result<(), RequestTap> {
        self.tap.set(tap)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // A panic while holding the lock leaves counters that are still worth reporting.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, obs: &Observation<'_>) {
        if let Some(tap) = self.tap.get() {
            tap(obs);
        }
        match obs.kind {
            RequestKind::Http => self.live.requests.fetch_add(1, Ordering::Relaxed),
            RequestKind::WebSocket => self.live.ws_operations.fetch_add(1, Ordering::Relaxed),
        };
        match obs.outcome {
            Outcome::Failure(_) => {
                self.live.failures.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::RateLimited => {
                self.live.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let origin = Duration::from_nanos(self.origin_nanos.load(Ordering::Relaxed));
        let offset = obs.started.saturating_duration_since(self.started + origin);
        let index = (offset.as_nanos() / self.window.as_nanos()) as usize;
        let key = (obs.method, obs.name);
        // A request that started once the run was stopping is the stop phase's, not load.
        let stopping = obs
            .started
            .saturating_duration_since(self.started)
            .as_nanos()
            >= u128::from(self.stop_nanos.load(Ordering::Relaxed));
        let mut state = self.lock();
        let rows = if stopping {
            &mut state.stop_phase
        } else {
            if state.windows.len() <= index {
                state.windows.resize_with(index + 1, HashMap::new);
            }
            &mut state.windows[index]
        };
        let (_, stats) = rows
            .entry(key)
            .or_insert_with(|| (obs.kind, RequestStats::default()));
        stats.record(obs);
        // Looked up by &str first: no allocation per request once the class is known.
        let classes = &mut state.rate_limit.by_user_class;
        if !classes.contains_key(obs.user_class) {
            classes.insert(obs.user_class.to_string(), ClassRateLimits::default());
        }
        if let Some(class) = classes.get_mut(obs.user_class) {
            class.requests += 1;
            class.rate_limited += u64::from(matches!(obs.outcome, Outcome::RateLimited));
        }
        match obs.outcome {
            Outcome::Failure(text) => {
                *state.errors.entry((key, text.clone(), false)).or_insert(0) += 1;
            }
            Outcome::ExpectedError(text) => {
                *state.errors.entry((key, text.clone(), true)).or_insert(0) += 1;
            }
            _ => {}
        }
    }

    /// The run is an open-model one, with this schedule and pool: its arrivals are counted
    /// from now on.
    pub fn count_arrivals(&self, schedule: String, max_users: u64) {
        self.lock().arrivals = Some(ArrivalStats {
            schedule,
            max_users,
            ..ArrivalStats::default()
        });
    }

    /// An arrival's time came: taken by a waiting user, by a new one (`on_demand`), or
    /// dropped (taken by neither).
    pub fn arrival(&self, taken: bool, on_demand: bool) {
        if let Some(a) = self.lock().arrivals.as_mut() {
            a.planned += 1;
            match (taken, on_demand) {
                (false, _) => a.dropped += 1,
                (true, true) => a.on_demand += 1,
                (true, false) => a.taken += 1,
            }
        }
    }

    /// A task iteration began `lag` after its arrival's intended time.
    pub fn arrival_started(&self, lag: Duration) {
        if let Some(a) = self.lock().arrivals.as_mut() {
            a.lag.record(lag.as_micros() as u64);
            a.late += u64::from(lag > LATE_START);
        }
    }

    /// The pool has `users` users (a distributed worker's is the users it was given).
    pub fn pool_size(&self, users: u64) {
        if let Some(a) = self.lock().arrivals.as_mut() {
            a.max_users = users;
        }
    }

    /// The schedule's last arrival was handed out (or the rate's setter ended its work).
    pub fn arrivals_completed(&self) {
        if let Some(a) = self.lock().arrivals.as_mut() {
            a.completed = true;
        }
    }

    /// The arrivals so far (an open-model run's).
    pub fn arrivals(&self) -> Option<ArrivalStats> {
        self.lock().arrivals.clone()
    }

    /// Notes the headers of a 429 answer.
    pub fn record_rate_limit_headers(&self, retry_after: bool, ratelimit_headers: bool) {
        let mut state = self.lock();
        state.rate_limit.responses_429 += 1;
        state.rate_limit.with_retry_after += u64::from(retry_after);
        state.rate_limit.with_ratelimit_headers += u64::from(ratelimit_headers);
    }

    pub fn auth(&self, update: impl FnOnce(&mut AuthOutcomes)) {
        update(&mut self.lock().auth);
    }

    pub fn cleanup(&self, update: impl FnOnce(&mut Cleanup)) {
        update(&mut self.lock().cleanup);
    }

    /// A user stopped: refused while starting (`at_start`), or later. Counted in the
    /// run's refusals by reason, and in its class's starts.
    pub fn user_refused(&self, class: &str, reason: &str, at_start: bool) {
        let mut state = self.lock();
        *state
            .auth
            .users_refused
            .entry(reason.to_string())
            .or_insert(0) += 1;
        let starts = state.user_starts.entry(class.to_string()).or_default();
        let by_reason = if at_start {
            &mut starts.refused
        } else {
            &mut starts.stopped_later
        };
        *by_reason.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// A user's on-start work ended with the user ready to run its tasks.
    pub fn user_ready(&self, class: &str) {
        self.lock()
            .user_starts
            .entry(class.to_string())
            .or_default()
            .started += 1;
    }

    /// A user's work ended (its on-stop work is done).
    pub fn user_done(&self) {
        self.live.users_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn websocket_opened(&self) {
        let mut state = self.lock();
        state.open_websockets += 1;
        state.websocket.connections_opened += 1;
        state.websocket.peak_concurrent =
            state.websocket.peak_concurrent.max(state.open_websockets);
    }

    /// A socket ended: `code` is the close code, `None` for a dropped connection.
    pub fn websocket_closed(&self, code: Option<u16>) {
        let mut state = self.lock();
        state.open_websockets = state.open_websockets.saturating_sub(1);
        let label = code.map_or_else(|| "none".to_string(), |c| c.to_string());
        *state.websocket.closes_by_code.entry(label).or_insert(0) += 1;
    }

    pub fn websocket_messages(&self, sent: u64, received: u64) {
        let mut state = self.lock();
        state.websocket.messages_sent += sent;
        state.websocket.messages_received += received;
    }

    pub fn open_websockets(&self) -> u64 {
        self.lock().open_websockets
    }

    /// A simulated user of `class` has been launched: counted live, and its time kept.
    pub fn user_started(&self, class: &str) {
        self.live.users.fetch_add(1, Ordering::Relaxed);
        let elapsed = self.elapsed();
        let t_secs = elapsed.as_secs_f64();
        let mut state = self.lock();
        if state.first_user_secs.is_none() && self.from_first_user.load(Ordering::Relaxed) {
            // Before any request of this user: every window counts from here.
            state.origin_secs = t_secs;
            self.origin_nanos
                .store(elapsed.as_nanos() as u64, Ordering::Relaxed);
        }
        state.first_user_secs.get_or_insert(t_secs);
        state.last_user_secs = Some(t_secs);
        state
            .user_starts
            .entry(class.to_string())
            .or_default()
            .launched += 1;
    }

    /// Users whose on-start work has ended, ready or refused.
    pub fn users_settled(&self) -> u64 {
        self.lock()
            .user_starts
            .values()
            .map(|s| s.started + s.refused_total())
            .sum()
    }

    /// Seconds since the ledger started when the first user was launched.
    pub fn first_user_secs(&self) -> Option<f64> {
        self.lock().first_user_secs
    }

    /// Measures from the first user's start: a dashboard run starts when the page's Start
    /// is pressed, not when the tool does. Call before any user starts.
    pub fn measure_from_first_user(&self) {
        self.from_first_user.store(true, Ordering::Relaxed);
    }

    /// Notes that the run began to stop now (its planned end, or an interruption): the
    /// measured time ends here. The first call counts.
    pub fn mark_stop(&self) {
        let elapsed = self.elapsed();
        let mut state = self.lock();
        if state.stop_secs.is_none() {
            state.stop_secs = Some(elapsed.as_secs_f64());
            self.stop_nanos
                .store(elapsed.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Whether the run has begun to stop (see [`Ledger::mark_stop`]).
    pub fn stopping(&self) -> bool {
        self.lock().stop_secs.is_some()
    }

    /// Notes what interrupted the run; the first reason counts.
    pub fn set_interruption(&self, reason: &str) {
        self.lock()
            .interruption
            .get_or_insert_with(|| reason.to_string());
    }

    /// Notes that `--abort-on-fail`'s rule watches this run, with its minimums.
    pub fn watch_abort(&self, min_requests: u64, min_elapsed: Duration) {
        self.lock().abort_rule = Some(AbortArming {
            min_requests,
            min_secs: min_elapsed.as_secs_f64(),
            armed_at_secs: None,
        });
    }

    /// Notes that the abort rule's minimums are met from now on; the first call counts.
    pub fn abort_armed(&self) {
        let t_secs = self.elapsed().as_secs_f64();
        if let Some(rule) = self.lock().abort_rule.as_mut() {
            rule.armed_at_secs.get_or_insert(t_secs);
        }
    }

    /// What interrupted the run, if something did.
    pub fn interruption(&self) -> Option<String> {
        self.lock().interruption.clone()
    }

    pub fn sample_users(&self, users: u64) {
        let t_secs = self.elapsed().as_secs_f64();
        self.lock()
            .users_over_time
            .push(UserSample { t_secs, users });
    }

    pub fn set_memory_source(&self, source: String) {
        self.lock().memory = Some(MemorySeries {
            source,
            samples: Vec::new(),
        });
    }

    pub fn sample_memory(&self, rss_bytes: u64) {
        let t_secs = self.elapsed().as_secs_f64();
        if let Some(series) = self.lock().memory.as_mut() {
            series.samples.push(MemorySample { t_secs, rss_bytes });
        }
    }

    /// The server's metrics are scraped from now on; `metrics` says from where and which
    /// series (no points yet).
    pub fn set_server_metrics(&self, metrics: ServerMetrics) {
        self.lock().server_metrics = Some(metrics);
    }

    /// Changes the server's metrics (after a scrape), handing `change` the seconds since
    /// the ledger started.
    pub fn update_server_metrics(&self, change: impl FnOnce(&mut ServerMetrics, f64)) {
        let t_secs = self.elapsed().as_secs_f64();
        if let Some(metrics) = self.lock().server_metrics.as_mut() {
            change(metrics, t_secs);
        }
    }

    pub fn set_aborted(&self, reason: String) {
        self.lock().aborted.get_or_insert(reason);
    }

    /// The requests of one kind of the window now running and the one before it, and the
    /// seconds they cover (from the earlier window's start to now): the live progress line's
    /// rate and P95, which move with every request.
    pub fn recent(&self, kind: RequestKind) -> (RequestStats, f64) {
        let now = self.elapsed();
        let origin = Duration::from_nanos(self.origin_nanos.load(Ordering::Relaxed));
        let state = self.lock();
        let mut all = RequestStats::default();
        let n = state.windows.len();
        let first = n.saturating_sub(2);
        for window in &state.windows[first..] {
            for (k, stats) in window.values() {
                if *k == kind {
                    all.merge(stats);
                }
            }
        }
        let from = origin + self.window * first as u32;
        (all, now.saturating_sub(from).as_secs_f64())
    }

    /// Everything measured so far, as one value.
    ///
    /// Time in it counts from the origin (see [`Ledger::measure_from_first_user`]); the measured duration
    /// ends when the run began to stop (see [`Ledger::mark_stop`]), or now.
    pub fn snapshot(&self, preset_name: &str, interrupted: bool) -> MeasuredRun {
        let state = self.lock();
        let window_secs = self.window.as_secs_f64();
        let origin = state.origin_secs;
        let shift = |t: f64| (t - origin).max(0.0);
        let mut totals: BTreeMap<String, RequestStats> = BTreeMap::new();
        let mut rows_of = |window: &HashMap<Key, (RequestKind, RequestStats)>, start_secs| {
            let mut requests = BTreeMap::new();
            for ((method, name), (kind, stats)) in window {
                let mut stats = stats.clone();
                stats.kind = Some(*kind);
                stats.method = (*method).to_string();
                stats.name = (*name).to_string();
                let key = stats.key();
                totals.entry(key.clone()).or_default().merge(&stats);
                requests.insert(key, stats);
            }
            WindowStats {
                start_secs,
                requests,
            }
        };
        let mut windows: Vec<WindowStats> = state
            .windows
            .iter()
            .enumerate()
            .map(|(i, window)| rows_of(window, i as f64 * window_secs))
            .collect();
        // A run measured from its first user that never had one measured nothing: its
        // time waiting (for a dashboard's Start) is no part of the run.
        let end_secs =
            if self.from_first_user.load(Ordering::Relaxed) && state.first_user_secs.is_none() {
                origin
            } else {
                state
                    .stop_secs
                    .unwrap_or_else(|| self.elapsed().as_secs_f64())
            };
        // The hold rarely ends on a window's edge: a last window shorter than half a window
        // (often a few milliseconds) joins the one before, so that no window's rate is a
        // handful of requests over a sliver of time.
        let measured = shift(end_secs);
        if windows.len() >= 2
            && windows
                .last()
                .is_some_and(|w| measured - w.start_secs < window_secs / 2.0)
            && let Some(tail) = windows.pop()
            && let Some(last) = windows.last_mut()
        {
            last.merge(&tail);
        }
        let stop_phase =
            (!state.stop_phase.is_empty()).then(|| rows_of(&state.stop_phase, measured));
        let mut errors: Vec<ErrorCount> = state
            .errors
            .iter()
            .map(|(((method, name), error, expected), n)| ErrorCount {
                method: (*method).to_string(),
                name: (*name).to_string(),
                error: error.clone(),
                occurrences: *n,
                expected: *expected,
            })
            .collect();
        sort_errors(&mut errors);
        let max_users = state
            .users_over_time
            .iter()
            .map(|s| s.users)
            .max()
            .unwrap_or(0);
        let started_at =
            self.started_at + chrono::Duration::milliseconds((origin * 1000.0).round() as i64);
        let ended_at =
            self.started_at + chrono::Duration::milliseconds((end_secs * 1000.0).round() as i64);
        MeasuredRun {
            preset_name: preset_name.to_string(),
            started_at: Some(started_at),
            ended_at: Some(ended_at),
            duration_secs: measured,
            window_secs,
            requests: totals.into_values().collect(),
            windows,
            stop_phase,
            errors,
            auth: state.auth.clone(),
            rate_limit: state.rate_limit.clone(),
            websocket: state.websocket.clone(),
            cleanup: state.cleanup.clone(),
            users_over_time: state
                .users_over_time
                .iter()
                .filter(|s| s.t_secs >= origin)
                .map(|s| UserSample {
                    t_secs: shift(s.t_secs),
                    users: s.users,
                })
                .collect(),
            max_users,
            first_user_secs: state.first_user_secs.map(shift),
            last_user_secs: state.last_user_secs.map(shift),
            memory: state.memory.as_ref().map(|m| MemorySeries {
                source: m.source.clone(),
                samples: m
                    .samples
                    .iter()
                    .filter(|s| s.t_secs >= origin)
                    .map(|s| MemorySample {
                        t_secs: shift(s.t_secs),
                        rss_bytes: s.rss_bytes,
                    })
                    .collect(),
            }),
            server_metrics: state.server_metrics.as_ref().map(|m| ServerMetrics {
                series: m
                    .series
                    .iter()
                    .map(|s| ServerSeries {
                        points: s
                            .points
                            .iter()
                            .filter(|p| p.t_secs >= origin)
                            .map(|p| ServerPoint {
                                t_secs: shift(p.t_secs),
                                value: p.value,
                            })
                            .collect(),
                        ..s.clone()
                    })
                    .collect(),
                ..m.clone()
            }),
            interrupted,
            aborted: state.aborted.clone(),
            interruption: state.interruption.clone(),
            user_starts: state.user_starts.clone(),
            abort_rule: state.abort_rule.as_ref().map(|rule| AbortArming {
                armed_at_secs: rule.armed_at_secs.map(shift),
                ..rule.clone()
            }),
            arrivals: state.arrivals.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_late_start_is_allowed_then_one_in_a_hundred() {
        let late = |started: u64, late: u64| ArrivalStats {
            taken: started,
            late,
            ..ArrivalStats::default()
        };
        assert!(!late(90, 1).too_many_late());
        assert!(late(90, 2).too_many_late());
        assert!(!late(1000, 10).too_many_late());
        assert!(late(1000, 11).too_many_late());
        assert!(!late(0, 0).too_many_late());
    }

    fn observe(ledger: &Ledger, name: &'static str, ms: u64, outcome: Outcome) {
        ledger.record(&Observation {
            kind: RequestKind::Http,
            method: "GET",
            name,
            user_class: "AuthenticatedUser",
            started: Instant::now(),
            duration: Duration::from_millis(ms),
            service: None,
            status: Some(match outcome {
                Outcome::RateLimited => 429,
                Outcome::Failure(_) => 500,
                _ => 200,
            }),
            outcome: &outcome,
            bytes: 10,
        });
    }

    #[test]
    fn user_starts_are_counted_and_their_first_and_latest_times_kept() {
        let ledger = Ledger::new(Duration::from_secs(10));
        assert_eq!(ledger.snapshot("smoke", false).first_user_secs, None);
        ledger.user_started("AuthenticatedUser");
        std::thread::sleep(Duration::from_millis(20));
        ledger.user_started("AuthenticatedUser");
        let run = ledger.snapshot("smoke", false);
        assert_eq!(ledger.live.users.load(Ordering::Relaxed), 2);
        let (first, last) = (
            run.first_user_secs.expect("first"),
            run.last_user_secs.expect("last"),
        );
        assert!(last - first >= 0.02, "{first} {last}");
    }

    #[test]
    fn snapshot_totals_equal_the_sum_of_windows() {
        let ledger = Ledger::new(Duration::from_secs(10));
        observe(&ledger, "/health", 5, Outcome::Success);
        observe(&ledger, "/health", 7, Outcome::RateLimited);
        observe(&ledger, "/api/stats", 9, Outcome::Failure("500".into()));
        let run = ledger.snapshot("smoke", false);
        let health = run.request("GET /health").expect("health row");
        assert_eq!(
            (health.successes, health.rate_limited, health.total()),
            (1, 1, 2)
        );
        assert_eq!(health.status_codes.get(&429), Some(&1));
        let stats = run.request("GET /api/stats").expect("stats row");
        assert_eq!(stats.failures, 1);
        assert_eq!(run.errors.len(), 1);
        assert_eq!(run.errors[0].error, "500");
        let windowed: u64 = run
            .windows
            .iter()
            .map(|w| w.combined(RequestKind::Http).total())
            .sum();
        assert_eq!(windowed, 3);
        assert_eq!(ledger.live.rate_limited.load(Ordering::Relaxed), 1);
        assert_eq!(
            run.rate_limit.by_user_class["AuthenticatedUser"].rate_limited,
            1
        );
    }

    #[test]
    fn each_outcome_keeps_its_own_times_and_only_judged_ones_are_judged() {
        let ledger = Ledger::new(Duration::from_secs(10));
        for _ in 0..10 {
            observe(&ledger, "/api/auth/login/json", 3000, Outcome::Success);
        }
        for _ in 0..90 {
            observe(&ledger, "/api/auth/login/json", 1, Outcome::RateLimited);
        }
        let row = ledger.snapshot("load", false).requests.remove(0);
        assert_eq!((row.times.count, row.rate_limited_times.count), (10, 90));
        // The fast 429s do not pull the judged P95 down...
        assert!(row.judged_times(false).percentile_ms(95.0) >= 2900.0);
        // ...and join it only when they count as failures.
        assert_eq!(row.judged_times(true).count, 100);
        assert!(row.judged_times(true).percentile_ms(50.0) < 10.0);
    }

    #[test]
    fn requests_after_the_stop_are_a_phase_of_their_own() {
        let ledger = Ledger::new(Duration::from_secs(10));
        observe(&ledger, "/health", 5, Outcome::Success);
        ledger.mark_stop();
        observe(&ledger, "/api/auth/logout", 5, Outcome::Success);
        observe(
            &ledger,
            "/api/auth/logout",
            5,
            Outcome::Failure("500".into()),
        );
        let run = ledger.snapshot("smoke", false);
        assert_eq!(run.windows.len(), 1);
        let load = run.windows[0].combined(RequestKind::Http).total();
        assert_eq!(load, 1, "the cleanup is not load");
        let phase = run.stop_phase.as_ref().expect("stop phase");
        assert_eq!(phase.combined(RequestKind::Http).total(), 2);
        assert!(phase.start_secs <= run.duration_secs + 1e-9);
        // Counted in the run's totals all the same.
        assert_eq!(run.combined(RequestKind::Http).total(), 3);
        assert_eq!(run.combined(RequestKind::Http).failures, 1);
    }

    #[test]
    fn a_sliver_of_a_last_window_joins_the_one_before() {
        let ledger = Ledger::new(Duration::from_secs(1));
        observe(&ledger, "/health", 1, Outcome::Success);
        std::thread::sleep(Duration::from_millis(1050));
        observe(&ledger, "/health", 1, Outcome::Success);
        // Stopped a little into the second window (well under half of it, on any machine
        // that is not stalled for 400 ms): that sliver joins the first window.
        ledger.mark_stop();
        let run = ledger.snapshot("smoke", false);
        assert!(run.duration_secs < 1.5, "{}", run.duration_secs);
        assert_eq!(run.windows.len(), 1, "{:?}", run.windows);
        assert_eq!(run.windows[0].combined(RequestKind::Http).total(), 2);
        assert_eq!(run.window_end(0), run.duration_secs);
    }

    #[test]
    fn the_recent_figures_cover_the_last_windows_up_to_now() {
        let ledger = Ledger::new(Duration::from_secs(10));
        for _ in 0..20 {
            observe(&ledger, "/health", 5, Outcome::Success);
        }
        std::thread::sleep(Duration::from_millis(50));
        let (recent, secs) = ledger.recent(RequestKind::Http);
        assert_eq!(recent.total(), 20);
        assert!((0.05..10.0).contains(&secs), "{secs}");
        assert!(per_second(recent.total(), secs) > 0.0);
    }

    #[test]
    fn websocket_peak_tracks_concurrency() {
        let ledger = Ledger::new(Duration::from_secs(10));
        ledger.websocket_opened();
        ledger.websocket_opened();
        ledger.websocket_closed(Some(1000));
        ledger.websocket_opened();
        ledger.websocket_closed(None);
        let run = ledger.snapshot("smoke", false);
        assert_eq!(run.websocket.connections_opened, 3);
        assert_eq!(run.websocket.peak_concurrent, 2);
        assert_eq!(run.websocket.closes_by_code["1000"], 1);
        assert_eq!(run.websocket.closes_by_code["none"], 1);
    }
}
