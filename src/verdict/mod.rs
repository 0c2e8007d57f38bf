//! The verdict: a measured run judged against the targets.
//!
//! [`judge`] runs every check and returns a [`Verdict`] with one [`Check`] per target. A check
//! that does not apply (no memory samples, not an endurance run...) is *skipped* with the
//! reason, and does not fail the run.
//!
//! Decisions worth knowing:
//! - HTTP targets (P95, success rate, error rate) apply to HTTP rows only. WebSocket rows are
//!   judged apart: `ws_p95` over the message round trips (every WebSocket row whose name does
//!   not start with `connect` or `close`), `ws_error_rate` over every WebSocket operation.
//! - Judged answers: successes and failures; rate-limited answers (429) and expected errors
//!   are not judged (their own counts, their own times). Success rate = successes / judged,
//!   error rate = failures / judged: the two add up to 100%. With `--count-429-as-failure`,
//!   429s are judged and counted as failures. Every latency figure is over the judged
//!   answers only ([`RequestStats::judged_times`]).
//! - An interrupted run (Ctrl-C) is judged on what it measured; the verdict says so. A run
//!   aborted by `--abort-on-fail` gets a failed `aborted` check naming the reason.

mod advice;
mod baseline;
mod core;
mod degradation;
mod memory;
mod rate_limit;
pub mod rules;
mod spikes;
pub mod targets;
mod work;

pub use baseline::BaselineSummary;
pub use core::{CoreFigures, core_figures};
pub use memory::{MemorySummary, memory_summary};
pub use rules::{Comparison, RULE_SYNTAX, Rule, RuleMetric, parse_rule};
pub use spikes::{error_spike_windows, everything};
pub use targets::{TargetOptions, Targets};
pub use work::{LATE_SHARE_PCT, interruption_text};

use crate::exit::Exit;
use crate::measure::{MeasuredRun, RequestKind, RequestStats};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Configuration errors in the targets: bad options, rules or files. The runner maps them to
/// exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid target rule '{rule}': {reason}; accepted syntax: {syntax}", syntax = RULE_SYNTAX)]
    BadRule { rule: String, reason: String },
    #[error(
        "target rule '{rule}' names '{request}', which this scenario never makes; the requests it makes: {}",
        known.join(", ")
    )]
    UnknownRequest {
        rule: String,
        request: String,
        known: Vec<String>,
    },
    #[error("invalid value for {option}: {reason}")]
    BadValue { option: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("targets file {}: {reason}", path.display())]
    TargetsFile { path: PathBuf, reason: String },
}

/// What the runner knows about the run that the measurements do not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunFacts {
    #[serde(rename = "scenario")]
    pub preset_name: String,
    /// The run includes the rate-limit user class (RateLimitTestUser).
    pub rate_limit_traffic: bool,
    /// The recovery check applies (the spike preset asks for it).
    pub spike: bool,
    /// The degradation check applies (the endurance preset asks for it).
    pub endurance: bool,
    /// The run sent enough rate-limit traffic that a run without a 429 fails (the rate-limit
    /// preset asks for it).
    pub limits_must_engage: bool,
    /// User classes whose share of 429s is capped.
    pub ordinary_user_classes: Vec<String>,
    /// User classes that hammer the API on purpose to trigger rate limiting.
    pub rate_limit_user_classes: Vec<String>,
    /// How long the run was planned to last, in seconds (0 when unknown).
    pub planned_secs: f64,
    /// The server's certificate was not verified (`--insecure`).
    pub insecure_tls: bool,
    /// Faults the built-in server was told to inject (`--builtin-args --fault-...`), as
    /// given: failures they cause are on purpose, and the advice says so.
    pub injected_faults: Vec<String>,
}

/// The result of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id: `p95`, `success_rate`, `error_rate`, `ws_p95`, `ws_error_rate`,
    /// `p95 POST /api/conversation`, `rate_limiting`, `error_spikes`, `memory`, `degradation`,
    /// `recovery`, `regression p95`, `aborted`, `abort_rule`.
    pub id: String,
    /// For people: `P95 Response Time`.
    pub label: String,
    /// The target, for example `< 500ms`; a target starting with a comparison reads after
    /// the actual value.
    pub target: String,
    /// The measured value, or the reason a skipped check was not judged.
    pub actual: String,
    pub passed: bool,
    /// Not applicable to this run; never fails it.
    pub skipped: bool,
    /// Figures behind the result (windows, classes, samples).
    pub details: Vec<String>,
    /// What to look at, for a failed check (the guide's warning signs).
    pub advice: Option<String>,
}

impl Check {
    pub(crate) fn judged(
        id: impl Into<String>,
        label: impl Into<String>,
        target: impl Into<String>,
        actual: impl Into<String>,
        passed: bool,
    ) -> Check {
        Check {
            id: id.into(),
            label: label.into(),
            target: target.into(),
            actual: actual.into(),
            passed,
            skipped: false,
            details: Vec::new(),
            advice: None,
        }
    }

    pub(crate) fn skipped(
        id: impl Into<String>,
        label: impl Into<String>,
        target: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check {
            skipped: true,
            passed: true,
            ..Check::judged(id, label, target, reason, true)
        }
    }

    pub(crate) fn with_details(mut self, details: Vec<String>) -> Check {
        self.details = details;
        self
    }

    /// Attaches what to look at, when the check failed.
    pub(crate) fn advise(mut self, advice: impl FnOnce() -> String) -> Check {
        if self.failed() {
            self.advice = Some(advice());
        }
        self
    }

    /// `PASS`, `FAIL` or `SKIP`.
    pub fn status(&self) -> &'static str {
        if self.skipped {
            "SKIP"
        } else if self.passed {
            "PASS"
        } else {
            "FAIL"
        }
    }

    pub fn failed(&self) -> bool {
        !self.skipped && !self.passed
    }
}

/// The judgement of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(rename = "scenario")]
    pub preset_name: String,
    pub checks: Vec<Check>,
    /// Every check that was judged passed.
    pub passed: bool,
    /// Rate-limited answers (429) over the whole run, HTTP and WebSocket.
    pub rate_limited: u64,
    /// The rates counted 429s as failures (`--count-429-as-failure`).
    pub rate_limited_counted_as_failures: bool,
    pub aborted: Option<String>,
    pub interrupted: bool,
    /// `INTERRUPTED at 7.0 s of 20 s (Ctrl-C)` when the run stopped before its planned end.
    #[serde(default)]
    pub stopped_early: Option<String>,
}

impl Verdict {
    /// Passed when every target is met, failed when one is missed.
    pub fn exit(&self) -> Exit {
        if self.passed {
            Exit::Passed
        } else {
            Exit::Failed
        }
    }

    /// The exit code the verdict alone gives: 0 or 1.
    pub fn exit_code(&self) -> i32 {
        self.exit().code()
    }

    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.failed())
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Success and error rates of a set of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub total: u64,
    /// The requests the rates are over: successes and failures, and the 429s when they
    /// count as failures; never the expected errors.
    pub judged: u64,
    pub successes: u64,
    /// Failures, plus the 429s when they count as failures.
    pub failures: u64,
    pub rate_limited: u64,
    pub expected_errors: u64,
    /// Percent of judged; 0 when nothing was judged.
    pub success_rate: f64,
    pub error_rate: f64,
}

impl Rates {
    pub fn of(stats: &RequestStats, count_429_as_failure: bool) -> Rates {
        let total = stats.total();
        let failures = if count_429_as_failure {
            stats.failures + stats.rate_limited
        } else {
            stats.failures
        };
        let successes = stats.successes;
        let judged = successes + failures;
        let share = |n: u64| {
            if judged == 0 {
                0.0
            } else {
                n as f64 * 100.0 / judged as f64
            }
        };
        Rates {
            total,
            judged,
            successes,
            failures,
            rate_limited: stats.rate_limited,
            expected_errors: stats.expected_errors,
            success_rate: share(successes),
            error_rate: share(failures),
        }
    }
}

/// Whether a WebSocket row is a message round trip (judged by `ws_p95`): every row whose
/// name does not start with `connect` or `close`.
pub fn is_round_trip(stats: &RequestStats) -> bool {
    let name = stats.name.trim_start().to_ascii_lowercase();
    stats.kind == Some(RequestKind::WebSocket)
        && !name.starts_with("connect")
        && !name.starts_with("close")
}

/// Judges `run` against `targets`.
pub fn judge(run: &MeasuredRun, targets: &Targets, facts: &RunFacts) -> Verdict {
    let mut checks = vec![
        work::run_completed(run, facts),
        work::work_done(run, targets),
        work::users_started(run, targets),
    ];
    checks.extend(work::arrivals(run));
    checks.extend(core::checks(run, targets));
    checks.extend(core::rule_checks(run, targets));
    checks.push(rate_limit::throttled(run, targets, facts));
    checks.push(rate_limit::check(run, targets, facts));
    checks.push(spikes::check(run, targets));
    checks.push(memory::check(run, targets));
    checks.push(degradation::degradation(run, targets, facts));
    checks.push(degradation::recovery(run, targets, facts));
    if let Some(rule) = &run.abort_rule {
        checks.push(work::abort_rule(run, rule, targets));
    }
    if let Some(base) = &targets.baseline {
        checks.push(baseline::check(run, targets, base));
    }
    if facts.insecure_tls {
        checks.push(Check::skipped(
            "tls",
            "Certificates Verified",
            "the server's certificate is verified",
            "NOT VERIFIED: --insecure accepted any certificate",
        ));
    }
    if !facts.injected_faults.is_empty() {
        let injected = format!(
            "The built-in server injected faults on purpose (--builtin-args {}): these failures \
             are the ones asked for, not the server's own. ",
            facts.injected_faults.join(" ")
        );
        for advice in checks.iter_mut().filter_map(|c| c.advice.as_mut()) {
            advice.insert_str(0, &injected);
        }
    }
    let rate_limited = run.requests.iter().map(|r| r.rate_limited).sum();
    Verdict {
        preset_name: if facts.preset_name.is_empty() {
            run.preset_name.clone()
        } else {
            facts.preset_name.clone()
        },
        passed: checks.iter().all(|c| !c.failed()),
        checks,
        rate_limited,
        rate_limited_counted_as_failures: targets.count_429_as_failure,
        aborted: run.aborted.clone(),
        interrupted: run.interrupted || run.aborted.is_some(),
        stopped_early: work::interruption_text(run, facts),
    }
}

/// A number without trailing zeros: 500, 99.5, 0.25.
pub fn trim_num(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Milliseconds for people: 145.4 ms, 2.35 ms, 1203 ms.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A comparison in words, as targets read: `below`, `at most`, `at least`, `above`.
pub(crate) fn bound_words(op: Comparison) -> &'static str {
    match op {
        Comparison::Lt => "below",
        Comparison::Le => "at most",
        Comparison::Gt => "above",
        Comparison::Ge => "at least",
    }
}

/// `actual` with enough decimals that it does not print like `target` when it differs
/// (99.499% is not shown as 99.50% next to a 99.5% target).
pub(crate) fn precise(actual: f64, target: f64, decimals: usize, unit: &str) -> String {
    let mut d = decimals;
    loop {
        let a = format!("{actual:.d$}");
        let t = format!("{target:.d$}");
        if a != t || actual == target || d >= 6 {
            return format!("{a}{unit}");
        }
        d += 1;
    }
}

/// A duration in seconds for people: 10s, 2.5s.
pub(crate) fn fmt_secs(secs: f64) -> String {
    format!("{}s", trim_num((secs * 10.0).round() / 10.0))
}

/// Least-squares slope of `points` (x, y); `None` with fewer than two distinct x.
pub(crate) fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Synthetic runs for the checks' tests.
    use crate::measure::{Histogram, MeasuredRun, RequestKind, RequestStats, WindowStats};
    use std::collections::BTreeMap;

    /// A row with `ok` successes at `ms`, `fail` failures (500) and `limited` 429s, all at `ms`.
    pub fn row(
        method: &str,
        name: &str,
        ms: u64,
        ok: u64,
        fail: u64,
        limited: u64,
    ) -> RequestStats {
        let mut s = RequestStats {
            kind: Some(if method == "WS" {
                RequestKind::WebSocket
            } else {
                RequestKind::Http
            }),
            method: method.into(),
            name: name.into(),
            times: Histogram::default(),
            successes: ok,
            failures: fail,
            rate_limited: limited,
            ..RequestStats::default()
        };
        for _ in 0..(ok + fail) {
            s.times.record(ms * 1000);
        }
        for _ in 0..limited {
            s.rate_limited_times.record(ms * 1000);
        }
        if ok > 0 {
            s.status_codes
                .insert(if method == "WS" { 101 } else { 200 }, ok);
        }
        if fail > 0 {
            s.status_codes.insert(500, fail);
        }
        if limited > 0 {
            s.status_codes.insert(429, limited);
        }
        s
    }

    /// A run made of `windows` (each a list of rows) of `window_secs`; totals are the sums.
    pub fn run_of(window_secs: f64, windows: Vec<Vec<RequestStats>>) -> MeasuredRun {
        let mut totals: BTreeMap<String, RequestStats> = BTreeMap::new();
        let windows: Vec<WindowStats> = windows
            .into_iter()
            .enumerate()
            .map(|(i, rows)| {
                let mut requests = BTreeMap::new();
                for r in rows {
                    totals.entry(r.key()).or_default().merge(&r);
                    requests.insert(r.key(), r);
                }
                WindowStats {
                    start_secs: i as f64 * window_secs,
                    requests,
                }
            })
            .collect();
        MeasuredRun {
            preset_name: "load".into(),
            duration_secs: windows.len() as f64 * window_secs,
            window_secs,
            requests: totals.into_values().collect(),
            windows,
            ..MeasuredRun::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{row, run_of};
    use super::*;

    fn healthy() -> MeasuredRun {
        run_of(
            10.0,
            (0..6)
                .map(|_| {
                    vec![
                        row("GET", "/health", 20, 100, 0, 0),
                        row("POST", "/api/conversation", 120, 50, 0, 0),
                    ]
                })
                .collect(),
        )
    }

    #[test]
    fn a_healthy_run_passes_and_exits_0() {
        let v = judge(&healthy(), &Targets::default(), &RunFacts::default());
        assert!(v.passed, "{:#?}", v.checks);
        assert_eq!(v.exit_code(), 0);
        for id in ["p95", "success_rate", "error_rate"] {
            let c = v.check(id).expect(id);
            assert!(c.passed && !c.skipped, "{c:?}");
        }
        assert!(v.check("memory").expect("memory").skipped);
    }

    #[test]
    fn a_slow_endpoint_fails_p95_and_is_named() {
        let mut windows = Vec::new();
        for _ in 0..6 {
            windows.push(vec![
                row("GET", "/health", 20, 50, 0, 0),
                row("POST", "/api/conversation", 900, 50, 0, 0),
            ]);
        }
        let v = judge(
            &run_of(10.0, windows),
            &Targets::default(),
            &RunFacts::default(),
        );
        assert_eq!(v.exit_code(), 1);
        let p95 = v.check("p95").expect("p95");
        assert!(p95.failed());
        let advice = p95.advice.as_deref().expect("advice");
        assert!(advice.contains("POST /api/conversation"), "{advice}");
        assert!(v.failed_checks().all(|c| c.advice.is_some()));
    }

    #[test]
    fn interrupted_and_aborted_runs_fail_with_the_reason() {
        let mut run = healthy();
        run.interrupted = true;
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        assert!(!v.passed && v.interrupted);
        assert!(v.check("run_completed").expect("check").failed());
        run.interrupted = false;
        run.aborted = Some("p95 1200ms over 500ms".into());
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        assert!(!v.passed);
        let c = v.check("run_completed").expect("run completed check");
        assert!(c.actual.contains("--abort-on-fail: p95 1200ms"), "{c:?}");
        assert_eq!(v.aborted.as_deref(), Some("p95 1200ms over 500ms"));
    }

    #[test]
    fn rates_with_and_without_429s() {
        let mut s = row("GET", "/api/stats", 10, 990, 5, 100);
        s.expected_errors = 5;
        let r = Rates::of(&s, false);
        // Expected errors and 429s are not judged: 995 judged, the rates add up to 100%.
        assert_eq!(
            (r.total, r.judged, r.successes, r.failures),
            (1100, 995, 990, 5)
        );
        assert!((r.success_rate - 990.0 * 100.0 / 995.0).abs() < 1e-9);
        assert!((r.success_rate + r.error_rate - 100.0).abs() < 1e-9);
        let r = Rates::of(&s, true);
        assert_eq!((r.judged, r.failures), (1095, 105));
        assert!((r.error_rate - 105.0 * 100.0 / 1095.0).abs() < 1e-9);
        assert_eq!(Rates::of(&RequestStats::default(), false).success_rate, 0.0);
    }

    #[test]
    fn precise_never_prints_a_miss_like_the_target() {
        assert_eq!(precise(99.72, 99.5, 2, "%"), "99.72%");
        assert_eq!(precise(99.499, 99.5, 2, "%"), "99.499%");
        assert_eq!(precise(99.5, 99.5, 2, "%"), "99.50%");
        assert_eq!(trim_num(500.0), "500");
        assert_eq!(trim_num(0.25), "0.25");
        assert_eq!(fmt_ms(145.408), "145.4 ms");
    }

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<_> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 1.0)).collect();
        assert!((slope(&pts).expect("slope") - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn a_run_recorded_through_the_ledger_is_judged() {
        use crate::measure::{Ledger, Observation, Outcome};
        use std::time::{Duration, Instant};
        let ledger = Ledger::new(Duration::from_secs(10));
        let outcomes = [
            (Outcome::Success, 399),
            (Outcome::Failure("500".into()), 1),
            (Outcome::RateLimited, 15),
            (Outcome::ExpectedError("401 unknown account".into()), 19),
        ];
        for (outcome, n) in &outcomes {
            for _ in 0..*n {
                ledger.record(&Observation {
                    kind: RequestKind::Http,
                    method: "POST",
                    name: "/api/auth/login/json",
                    user_class: "RateLimitTestUser",
                    started: Instant::now(),
                    duration: Duration::from_millis(40),
                    service: None,
                    status: Some(match outcome {
                        Outcome::Success => 200,
                        Outcome::Failure(_) => 500,
                        Outcome::RateLimited => 429,
                        Outcome::ExpectedError(_) => 401,
                    }),
                    outcome,
                    bytes: 100,
                });
            }
        }
        let run = ledger.snapshot("rate-limit", false);
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        assert_eq!(v.rate_limited, 15);
        // 400 judged: 399 successes, 1 failure; the 19 expected errors and 15 429s apart.
        let s = v.check("success_rate").expect("success");
        assert_eq!(s.actual, "99.75%");
        assert!(s.passed);
        assert_eq!(v.check("error_rate").expect("error").actual, "0.25%");
        assert!(v.check("error_rate").expect("error").passed);
    }
}
