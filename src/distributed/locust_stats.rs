//! A worker's live figures in Locust's shape: every request the ledger records is also
//! counted here, per request name, and every report takes what was counted since the
//! previous one (Locust's masters add the deltas up). These figures feed the master's web
//! UI, console and CSV files; the verdict never reads them (Locust rounds the times it keeps
//! to two significant digits), it reads the exact run each worker delivers at the end.
//!
//! How the tool's outcomes map onto Locust's: a failure is a failure with its reason; a
//! rate-limited answer is a failure too (as Goose counts it), with the reason
//! `429 rate limited`; an expected error is a success. Times are milliseconds to the end of
//! the body, as the ledger measures them.

use super::wire::{StatsEntry, StatsError};
use crate::measure::{Observation, Outcome, RequestKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The reason Locust shows for a rate-limited answer.
pub const RATE_LIMITED: &str = "429 rate limited";

/// Now, in seconds since the Unix epoch (Locust's clock).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Locust's rounding of a response time for its distribution: to the millisecond below
/// 100 ms, to 10 ms below 1 s, to 100 ms below 10 s, to the second above; halves go to the
/// even neighbour, as Python's `round` does.
pub fn round_ms(us: u64) -> u64 {
    let unit = match us {
        0..100_000 => 1_000,
        100_000..1_000_000 => 10_000,
        1_000_000..10_000_000 => 100_000,
        _ => 1_000_000,
    };
    let (whole, rest) = (us / unit, us % unit);
    let rounded = match (rest * 2).cmp(&unit) {
        std::cmp::Ordering::Less => whole,
        std::cmp::Ordering::Greater => whole + 1,
        std::cmp::Ordering::Equal => whole + (whole % 2),
    };
    rounded * unit / 1_000
}

/// The method Locust shows: the HTTP method, or `WS` for a WebSocket operation (the
/// ledger's own label, so Locust's rows and the tool's carry the same names).
fn method_of(obs: &Observation<'_>) -> &'static str {
    match obs.kind {
        RequestKind::Http => obs.method,
        RequestKind::WebSocket => "WS",
    }
}

fn empty_entry(name: &str, method: &str, start_time: f64) -> StatsEntry {
    StatsEntry {
        name: name.to_string(),
        method: method.to_string(),
        last_request_timestamp: None,
        start_time,
        num_requests: 0,
        num_none_requests: 0,
        num_failures: 0,
        total_response_time: 0.0,
        max_response_time: 0.0,
        min_response_time: None,
        total_content_length: 0,
        response_times: BTreeMap::new(),
        num_reqs_per_sec: BTreeMap::new(),
        num_fail_per_sec: BTreeMap::new(),
    }
}

fn log(entry: &mut StatsEntry, us: u64, bytes: u64, failed: bool, now: f64) {
    let ms = us as f64 / 1000.0;
    let second = now as u64;
    entry.num_requests += 1;
    entry.total_response_time += ms;
    entry.max_response_time = entry.max_response_time.max(ms);
    entry.min_response_time = Some(entry.min_response_time.map_or(ms, |m| m.min(ms)));
    entry.total_content_length += bytes;
    *entry.response_times.entry(round_ms(us)).or_insert(0) += 1;
    *entry.num_reqs_per_sec.entry(second).or_insert(0) += 1;
    entry.last_request_timestamp = Some(now);
    if failed {
        entry.num_failures += 1;
        *entry.num_fail_per_sec.entry(second).or_insert(0) += 1;
    }
}

struct Period {
    started: f64,
    entries: HashMap<(&'static str, &'static str), StatsEntry>,
    total: StatsEntry,
    errors: BTreeMap<String, StatsError>,
}

impl Period {
    fn new(now: f64) -> Period {
        Period {
            started: now,
            entries: HashMap::new(),
            total: empty_entry("Aggregated", "", now),
            errors: BTreeMap::new(),
        }
    }
}

/// The counts since the last report.
pub struct LocustStats {
    period: Mutex<Period>,
}

impl Default for LocustStats {
    fn default() -> Self {
        LocustStats {
            period: Mutex::new(Period::new(unix_now())),
        }
    }
}

/// One report's figures: per request name, all together, and the errors.
pub struct Report {
    pub entries: Vec<StatsEntry>,
    pub total: StatsEntry,
    pub errors: BTreeMap<String, StatsError>,
}

impl LocustStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Period> {
        self.period.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request (the ledger's tap calls this for every one).
    pub fn record(&self, obs: &Observation<'_>) {
        self.record_at(obs, unix_now());
    }

    fn record_at(&self, obs: &Observation<'_>, now: f64) {
        let us = obs.duration.as_micros() as u64;
        let method = method_of(obs);
        let error = match obs.outcome {
            Outcome::Failure(reason) => Some(reason.as_str()),
            Outcome::RateLimited => Some(RATE_LIMITED),
            Outcome::Success | Outcome::ExpectedError(_) => None,
        };
        let mut period = self.lock();
        let started = period.started;
        let entry = period
            .entries
            .entry((method, obs.name))
            .or_insert_with(|| empty_entry(obs.name, method, started));
        log(entry, us, obs.bytes, error.is_some(), now);
        log(&mut period.total, us, obs.bytes, error.is_some(), now);
        if let Some(error) = error {
            // Any stable key will do: the master adds up occurrences by key.
            let key = format!("{method} {} {error}", obs.name);
            let slot = period.errors.entry(key).or_insert_with(|| StatsError {
                name: obs.name.to_string(),
                method: method.to_string(),
                error: error.to_string(),
                occurrences: 0,
                first_seen: Some(now),
                last_seen: None,
            });
            slot.occurrences += 1;
            slot.last_seen = Some(now);
        }
    }

    /// What was counted since the previous report; counting starts afresh.
    pub fn take(&self) -> Report {
        let now = unix_now();
        let period = std::mem::replace(&mut *self.lock(), Period::new(now));
        let mut entries: Vec<StatsEntry> = period.entries.into_values().collect();
        entries.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
        Report {
            entries,
            total: period.total,
            errors: period.errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn times_round_as_locust_rounds_them() {
        for (us, ms) in [
            (0, 0),
            (12_499, 12),
            (12_500, 12),
            (13_500, 14),
            (99_400, 99),
            (99_600, 100),
            (147_000, 150),
            (145_000, 140),
            (155_000, 160),
            (3_432_000, 3400),
            (58_760_000, 59_000),
        ] {
            assert_eq!(round_ms(us), ms, "{us} µs");
        }
    }

    #[test]
    fn a_period_counts_requests_failures_and_errors_then_starts_afresh() {
        let stats = LocustStats::default();
        let observe = |outcome: Outcome, ms: u64| {
            stats.record_at(
                &Observation {
                    kind: RequestKind::Http,
                    method: "GET",
                    name: "/health",
                    user_class: "AuthenticatedUser",
                    started: Instant::now(),
                    duration: Duration::from_millis(ms),
                    service: None,
                    status: Some(200),
                    outcome: &outcome,
                    bytes: 10,
                },
                1_700_000_000.5,
            )
        };
        observe(Outcome::Success, 5);
        observe(Outcome::RateLimited, 7);
        observe(Outcome::ExpectedError("401".into()), 9);
        observe(Outcome::Failure("500 boom".into()), 300);
        let report = stats.take();
        assert_eq!(report.entries.len(), 1);
        let health = &report.entries[0];
        assert_eq!(
            (health.method.as_str(), health.name.as_str()),
            ("GET", "/health")
        );
        assert_eq!((health.num_requests, health.num_failures), (4, 2));
        assert_eq!(health.total_response_time, 321.0);
        assert_eq!(health.min_response_time, Some(5.0));
        assert_eq!(health.max_response_time, 300.0);
        assert_eq!(health.total_content_length, 40);
        assert_eq!(
            health.response_times,
            BTreeMap::from([(5, 1), (7, 1), (9, 1), (300, 1)])
        );
        assert_eq!(
            health.num_reqs_per_sec,
            BTreeMap::from([(1_700_000_000, 4)])
        );
        assert_eq!(
            health.num_fail_per_sec,
            BTreeMap::from([(1_700_000_000, 2)])
        );
        assert_eq!(report.total.num_requests, 4);
        assert_eq!(report.total.name, "Aggregated");
        let errors: Vec<(&str, u64)> = report
            .errors
            .values()
            .map(|e| (e.error.as_str(), e.occurrences))
            .collect();
        assert_eq!(errors, [(RATE_LIMITED, 1), ("500 boom", 1)]);
        let next = stats.take();
        assert!(next.entries.is_empty() && next.errors.is_empty());
        assert_eq!(next.total.num_requests, 0);
    }
}
