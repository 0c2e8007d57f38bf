//! A run's figures in Prometheus's text exposition format (0.0.4), rendered from one
//! [`MeasuredRun`] and its [`Verdict`]: the same values the metrics JSON is written from, so
//! the two cannot drift apart.
//!
//! Series are named `lva_loadtest_*`; counters end in `_total`. Labels stay bounded: the
//! tool's request templates (`/api/session/{id}/history`) and methods, status classes
//! (`2xx`), user classes, target ids, never a raw path or a server's text.
//!
//! Latency is exported as classic histograms. Native histograms need the protobuf
//! exposition, which no Rust client here writes (`prometheus-client` has none either).

use crate::measure::{Histogram, MeasuredRun, RequestKind, RequestStats, bucket_floor};
use crate::verdict::{Verdict, is_round_trip};
use std::borrow::Cow;
use std::fmt::{Display, Write};

/// The first word of every series the tool exports.
pub const PREFIX: &str = "lva_loadtest_";

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the first user started (a dashboard run waits for Start here).
    Starting,
    Running,
    /// The planned end (or a stop) has come; the users are finishing.
    Stopping,
    /// The final figures are in.
    Ended,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Starting,
        Phase::Running,
        Phase::Stopping,
        Phase::Ended,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Ended => "ended",
        }
    }
}

/// Round latency figures (µs); each is exported at the ledger histogram's bucket edge at
/// or below it (see [`latency_bounds_us`]).
const ROUND_BOUNDS_US: [u64; 16] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// The histograms' `le` bounds, in µs: bucket edges of the ledger's histogram (each within
/// 1/64 below its round figure), so every ledger bucket lies wholly under or over a bound
/// and the exported counts are exact, never interpolated.
pub fn latency_bounds_us() -> impl Iterator<Item = u64> {
    ROUND_BOUNDS_US.iter().map(|&us| bucket_floor(us))
}

/// The times exported as a request's latency: over its judged answers, the histogram every
/// latency figure of the metrics JSON is read from (the 429s are in it when they count as
/// failures).
pub fn judged_times(stats: &RequestStats, count_429_as_failure: bool) -> Cow<'_, Histogram> {
    stats.judged_times(count_429_as_failure)
}

/// `2xx`...`5xx` for a status code; `none` where no answer came (a transport error).
pub fn status_class(code: u16) -> String {
    match code {
        0 => "none".to_string(),
        100..=599 => format!("{}xx", code / 100),
        _ => "other".to_string(),
    }
}

fn kind_name(kind: Option<RequestKind>) -> &'static str {
    match kind {
        Some(RequestKind::WebSocket) => "websocket",
        _ => "http",
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition being written.
#[derive(Default)]
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.0, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.0, "{PREFIX}{name}");
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// One classic histogram's `_bucket`, `_sum` and `_count` lines, in seconds.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], times: &Histogram) {
        for bound in latency_bounds_us() {
            let under: u64 = times.buckets.range(..bound).map(|(_, n)| n).sum();
            let le = seconds(bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, under);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_le, times.count);
        self.sample(&format!("{name}_sum"), labels, seconds(times.sum_us));
        self.sample(&format!("{name}_count"), labels, times.count);
    }
}

/// Microseconds as seconds, in the shortest text that reads back exactly.
fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// Renders `run` (and its verdict) at `phase`.
pub fn render(run: &MeasuredRun, verdict: &Verdict, phase: Phase) -> String {
    let mut out = Out::default();
    out.family("run_info", "gauge", "The run's preset (always 1).");
    out.sample("run_info", &[("scenario", &run.preset_name)], 1);
    out.family(
        "phase",
        "gauge",
        "1 for the run's current phase, 0 for the others.",
    );
    for p in Phase::ALL {
        out.sample("phase", &[("phase", p.name())], u8::from(p == phase));
    }
    out.family("measured_seconds", "gauge", "Seconds measured so far.");
    out.sample("measured_seconds", &[], run.duration_secs);

    let count_429 = verdict.rate_limited_counted_as_failures;
    requests(&mut out, run, count_429);
    websocket(&mut out, run, count_429);
    users(&mut out, run);
    arrivals(&mut out, run);
    targets(&mut out, verdict);
    out.0
}

/// An open-model run's arrivals: by who took them (or that nobody did), the late starts,
/// the start lag and the users busy with an arrival; absent from a closed-model run.
fn arrivals(out: &mut Out, run: &MeasuredRun) {
    let Some(a) = &run.arrivals else { return };
    out.family(
        "arrivals_total",
        "counter",
        "Open model: arrivals whose intended time came, by outcome (taken by a waiting user, \
         by a user started for it, or dropped: the pool was busy).",
    );
    for (outcome, n) in [
        ("taken", a.taken),
        ("on_demand", a.on_demand),
        ("dropped", a.dropped),
    ] {
        out.sample("arrivals_total", &[("outcome", outcome)], n);
    }
    out.family(
        "late_starts_total",
        "counter",
        &format!(
            "Open model: task iterations that began more than {} ms after their intended time.",
            crate::measure::LATE_START.as_millis()
        ),
    );
    out.sample("late_starts_total", &[], a.late);
    out.family(
        "start_lag_seconds",
        "histogram",
        "Open model: from each arrival's intended time to its task's start.",
    );
    out.histogram("start_lag_seconds", &[], &a.lag);
    out.family(
        "pool_users_max",
        "gauge",
        "Open model: the most users the pool may start (--max-users).",
    );
    out.sample("pool_users_max", &[], a.max_users);
}

/// A request's labels, and one more.
fn request_labels<'a>(r: &'a RequestStats, more: (&'a str, &'a str)) -> [(&'a str, &'a str); 4] {
    [
        ("kind", kind_name(r.kind)),
        ("method", r.method.as_str()),
        ("request", r.name.as_str()),
        more,
    ]
}

fn requests(out: &mut Out, run: &MeasuredRun, count_429: bool) {
    out.family(
        "requests_total",
        "counter",
        "Answers by request template and outcome (success, failure, rate_limited, \
         expected_error).",
    );
    for r in &run.requests {
        for (outcome, n) in [
            ("success", r.successes),
            ("failure", r.failures),
            ("rate_limited", r.rate_limited),
            ("expected_error", r.expected_errors),
        ] {
            out.sample(
                "requests_total",
                &request_labels(r, ("outcome", outcome)),
                n,
            );
        }
    }
    out.family(
        "responses_total",
        "counter",
        "Answers by request template and status class (none: no answer came).",
    );
    for r in &run.requests {
        let mut by_class = std::collections::BTreeMap::new();
        for (code, n) in &r.status_codes {
            *by_class.entry(status_class(*code)).or_insert(0u64) += n;
        }
        for (class, n) in by_class {
            let labels = request_labels(r, ("status_class", class.as_str()));
            out.sample("responses_total", &labels, n);
        }
    }
    out.family(
        "request_duration_seconds",
        "histogram",
        "Response times of judged answers by request template.",
    );
    for r in &run.requests {
        let labels = [
            ("kind", kind_name(r.kind)),
            ("method", r.method.as_str()),
            ("request", r.name.as_str()),
        ];
        out.histogram(
            "request_duration_seconds",
            &labels,
            &judged_times(r, count_429),
        );
    }
    // The answers kept out of the judged figures, each in its own histogram (a fast 429 must
    // not make a slow endpoint look fast); only requests that had any.
    for (name, help, pick) in [
        (
            "rate_limited_duration_seconds",
            "Response times of rate-limited answers (429) by request template.",
            (|r: &RequestStats| &r.rate_limited_times) as fn(&RequestStats) -> &Histogram,
        ),
        (
            "expected_error_duration_seconds",
            "Response times of expected errors by request template.",
            |r: &RequestStats| &r.expected_error_times,
        ),
    ] {
        out.family(name, "histogram", help);
        for r in run.requests.iter().filter(|r| pick(r).count > 0) {
            let labels = [
                ("kind", kind_name(r.kind)),
                ("method", r.method.as_str()),
                ("request", r.name.as_str()),
            ];
            out.histogram(name, &labels, pick(r));
        }
    }
}

fn websocket(out: &mut Out, run: &MeasuredRun, count_429: bool) {
    let mut round_trips = Histogram::default();
    for r in run.requests.iter().filter(|r| is_round_trip(r)) {
        round_trips.merge(&judged_times(r, count_429));
    }
    out.family(
        "websocket_round_trip_seconds",
        "histogram",
        "WebSocket message round trips, all together.",
    );
    out.histogram("websocket_round_trip_seconds", &[], &round_trips);
    let ws = &run.websocket;
    out.family(
        "websocket_connections_opened_total",
        "counter",
        "WebSocket connections opened.",
    );
    out.sample(
        "websocket_connections_opened_total",
        &[],
        ws.connections_opened,
    );
    out.family(
        "websocket_messages_total",
        "counter",
        "WebSocket messages by direction.",
    );
    out.sample(
        "websocket_messages_total",
        &[("direction", "sent")],
        ws.messages_sent,
    );
    out.sample(
        "websocket_messages_total",
        &[("direction", "received")],
        ws.messages_received,
    );
    out.family(
        "websocket_closes_total",
        "counter",
        "WebSocket connections ended, by close code (none: dropped).",
    );
    for (code, n) in &ws.closes_by_code {
        out.sample("websocket_closes_total", &[("code", code)], n);
    }
}

fn users(out: &mut Out, run: &MeasuredRun) {
    out.family(
        "users",
        "gauge",
        "Simulated users running at the last sample.",
    );
    let now = run.users_over_time.last().map_or(0, |s| s.users);
    out.sample("users", &[], now);
    out.family("users_max", "gauge", "The most simulated users at once.");
    out.sample("users_max", &[], run.max_users);
    out.family(
        "user_starts_total",
        "counter",
        "Users by class and how their start went (launched, started, refused, \
         stopped_later).",
    );
    for (class, starts) in &run.user_starts {
        for (state, n) in [
            ("launched", starts.launched),
            ("started", starts.started),
            ("refused", starts.refused_total()),
            ("stopped_later", starts.stopped_later.values().sum()),
        ] {
            out.sample(
                "user_starts_total",
                &[("class", class), ("state", state)],
                n,
            );
        }
    }
}

fn targets(out: &mut Out, verdict: &Verdict) {
    out.family(
        "target_state",
        "gauge",
        "1 for each target's current state (passed, failed, skipped), 0 for the others.",
    );
    for check in &verdict.checks {
        let state = if check.skipped {
            "skipped"
        } else if check.passed {
            "passed"
        } else {
            "failed"
        };
        for s in ["passed", "failed", "skipped"] {
            out.sample(
                "target_state",
                &[("target", &check.id), ("state", s)],
                u8::from(s == state),
            );
        }
    }
    out.family(
        "verdict_passed",
        "gauge",
        "1 while every judged target passes.",
    );
    out.sample("verdict_passed", &[], u8::from(verdict.passed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_bucket_edges_near_their_round_figures() {
        for (bound, round) in latency_bounds_us().zip(ROUND_BOUNDS_US) {
            assert_eq!(bucket_floor(bound), bound);
            assert!(
                bound <= round && (round - bound) * 64 <= round,
                "{bound} for {round}"
            );
        }
        assert_eq!(seconds(1_000), "0.001");
    }

    #[test]
    fn histogram_counts_are_exact_at_every_bound() {
        let mut times = Histogram::default();
        let recorded: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % 3_000_000).collect();
        for us in &recorded {
            times.record(*us);
        }
        let mut out = Out::default();
        out.histogram("t", &[("request", "/x")], &times);
        for bound in latency_bounds_us() {
            let truth = recorded.iter().filter(|us| **us < bound).count();
            let line = format!(
                "{PREFIX}t_bucket{{request=\"/x\",le=\"{}\"}} {truth}\n",
                seconds(bound)
            );
            assert!(out.0.contains(&line), "{line} not in\n{}", out.0);
        }
        assert!(
            out.0
                .contains(&format!("le=\"+Inf\"}} {}\n", recorded.len()))
        );
    }

    #[test]
    fn rate_limited_and_expected_answers_have_histograms_of_their_own() {
        let mut stats = RequestStats {
            kind: Some(RequestKind::Http),
            method: "POST".into(),
            name: "/api/auth/login".into(),
            successes: 1,
            rate_limited: 2,
            expected_errors: 1,
            ..RequestStats::default()
        };
        stats.times.record(300_000);
        stats.rate_limited_times.record(1_000);
        stats.rate_limited_times.record(2_000);
        stats.expected_error_times.record(5_000);
        let run = MeasuredRun {
            requests: vec![stats],
            ..MeasuredRun::default()
        };
        let text = |count_429| {
            let mut verdict = crate::verdict::judge(
                &run,
                &crate::verdict::Targets::default(),
                &crate::verdict::RunFacts::default(),
            );
            verdict.rate_limited_counted_as_failures = count_429;
            render(&run, &verdict, Phase::Running)
        };
        let labels = "{kind=\"http\",method=\"POST\",request=\"/api/auth/login\"}";
        let judged = text(false);
        for (family, count) in [
            ("request_duration_seconds", 1),
            ("rate_limited_duration_seconds", 2),
            ("expected_error_duration_seconds", 1),
        ] {
            let line = format!("{PREFIX}{family}_count{labels} {count}\n");
            assert!(judged.contains(&line), "{line} not in\n{judged}");
        }
        // Judged 429s join the judged histogram and keep their own.
        let counted = text(true);
        for line in [
            format!("{PREFIX}request_duration_seconds_count{labels} 3\n"),
            format!("{PREFIX}rate_limited_duration_seconds_count{labels} 2\n"),
        ] {
            assert!(counted.contains(&line), "{line} not in\n{counted}");
        }
    }

    #[test]
    fn an_open_model_runs_arrivals_are_exported_and_a_closed_ones_are_not() {
        let mut run = MeasuredRun::default();
        let verdict = crate::verdict::judge(
            &run,
            &crate::verdict::Targets::default(),
            &crate::verdict::RunFacts::default(),
        );
        assert!(!render(&run, &verdict, Phase::Running).contains("arrivals_total"));
        let mut lag = Histogram::default();
        lag.record(150);
        lag.record(20_000);
        run.arrivals = Some(crate::measure::ArrivalStats {
            planned: 10,
            taken: 7,
            on_demand: 1,
            dropped: 2,
            late: 1,
            lag,
            max_users: 4,
            ..Default::default()
        });
        let text = render(&run, &verdict, Phase::Running);
        for line in [
            "lva_loadtest_arrivals_total{outcome=\"taken\"} 7",
            "lva_loadtest_arrivals_total{outcome=\"on_demand\"} 1",
            "lva_loadtest_arrivals_total{outcome=\"dropped\"} 2",
            "lva_loadtest_late_starts_total 1",
            "lva_loadtest_start_lag_seconds_count 2",
            "lva_loadtest_start_lag_seconds_bucket{le=\"+Inf\"} 2",
            "lva_loadtest_pool_users_max 4",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Out::default();
        out.sample("x", &[("request", "a\"b\\c\nd")], 1);
        assert_eq!(out.0, "lva_loadtest_x{request=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(0), "none");
    }
}
