//! The metrics JSON: the guide's structure (`test_summary`, `response_times`, `status_codes`,
//! `targets`, `endpoint_metrics`) plus every extra target's figures, and the whole measured
//! run so that `lva-loadtest validate` re-judges it exactly. Written by [`metrics_json`], read
//! back by [`read_metrics_json`]. Documented in `docs/METRICS_JSON.md`; bump
//! [`SCHEMA_VERSION`] when a key changes meaning or goes away (adding keys does not).
//!
//! Version 2: every latency figure is over the judged answers (the 429s and the expected
//! errors have their own times), expected errors are no longer counted as successes, and
//! the stop phase is apart from the timeline. A version 1 file is still read: its one
//! histogram per request stands for the judged one (`validate` says so).

use super::provenance::Provenance;
use super::{ApartTimes, Headline, ReportError, TimeSummary};
use crate::measure::{
    AuthOutcomes, Cleanup, MeasuredRun, MemorySample, RateLimitEvidence, RequestKind,
};
use crate::presets;
use crate::verdict::{
    Check, MemorySummary, RunFacts, Targets, Verdict, everything, is_round_trip, memory_summary,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the metrics JSON's shape.
pub const SCHEMA_VERSION: u64 = 2;

/// What [`read_metrics_json`] takes back from the file.
#[derive(Deserialize)]
pub struct MetricsIn {
    pub schema_version: u64,
    pub measured: MeasuredRun,
    #[serde(default)]
    pub facts: Option<RunFacts>,
    #[serde(default)]
    pub target_settings: Option<Targets>,
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// What the run's kind added (host, plan figures, the probes' results).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Why a metrics JSON could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Shape(String),
    #[error("schema version {found}; this build reads versions up to {SCHEMA_VERSION}")]
    NewerSchema { found: u64 },
}

/// Reads a metrics JSON (already parsed as `value`) back: the run it measured, the facts and
/// the targets it was judged with.
pub fn read_metrics_json(value: serde_json::Value) -> Result<MetricsIn, ReadError> {
    let found = value["schema_version"]
        .as_u64()
        .ok_or_else(|| ReadError::Shape("schema_version is not a number".into()))?;
    if found > SCHEMA_VERSION {
        return Err(ReadError::NewerSchema { found });
    }
    // Files written before the facts carried it: the preset's own table says.
    let engage_unrecorded = value["facts"].get("limits_must_engage").is_none();
    let mut saved: MetricsIn =
        serde_json::from_value(value).map_err(|e| ReadError::Shape(e.to_string()))?;
    if engage_unrecorded && let Some(facts) = saved.facts.as_mut() {
        facts.limits_must_engage =
            presets::find(&facts.preset_name).is_some_and(|p| p.checks.limits_must_engage);
    }
    Ok(saved)
}

#[derive(Serialize)]
struct TestSummary {
    #[serde(rename = "scenario")]
    preset_name: String,
    start_time: Option<String>,
    end_time: Option<String>,
    duration_seconds: f64,
    total_requests: u64,
    judged_requests: u64,
    successful_requests: u64,
    failed_requests: u64,
    rate_limited_requests: u64,
    expected_errors: u64,
    success_rate: f64,
    error_rate: f64,
    requests_per_second: f64,
    rate_limited_counted_as_failures: bool,
    max_users: u64,
    interrupted: bool,
    aborted: Option<String>,
}

#[derive(Serialize)]
struct TargetResult<'a> {
    label: &'a str,
    target: &'a str,
    actual: &'a str,
    passed: bool,
    skipped: bool,
}

#[derive(Serialize)]
struct Endpoint {
    kind: Option<RequestKind>,
    method: String,
    name: String,
    count: u64,
    successes: u64,
    failures: u64,
    rate_limited: u64,
    expected_errors: u64,
    avg_ms: f64,
    min_ms: f64,
    max_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    /// The 429s' and the expected errors' own times.
    not_judged_ms: ApartTimes,
    status_codes: BTreeMap<u16, u64>,
}

#[derive(Serialize)]
struct WebSocket<'a> {
    connections_opened: u64,
    peak_concurrent: u64,
    messages_sent: u64,
    messages_received: u64,
    closes_by_code: &'a BTreeMap<String, u64>,
    /// Message round trips (WebSocket rows not named `connect...`/`close...`).
    round_trip_count: u64,
    round_trip_ms: Option<TimeSummary>,
    operations: u64,
    operation_failures: u64,
}

#[derive(Serialize)]
struct RateLimiting<'a> {
    rate_limited_requests: u64,
    #[serde(flatten)]
    evidence: &'a RateLimitEvidence,
}

#[derive(Serialize)]
struct TopFailing {
    request: String,
    failures: u64,
}

#[derive(Serialize)]
struct TimelineWindow {
    /// `load` for a window of the run, `stop` for the stop phase (last, with no end).
    phase: &'static str,
    start_secs: f64,
    end_secs: Option<f64>,
    requests: u64,
    failures: u64,
    rate_limited: u64,
    p95_ms: f64,
    top_failing: Vec<TopFailing>,
}

#[derive(Serialize)]
struct Memory<'a> {
    #[serde(flatten)]
    summary: MemorySummary,
    sample_points: &'a [MemorySample],
}

#[derive(Serialize)]
struct VerdictOut<'a> {
    passed: bool,
    exit_code: i32,
    interrupted: bool,
    aborted: &'a Option<String>,
    rate_limited: u64,
    rate_limited_counted_as_failures: bool,
    checks: &'a [Check],
}

#[derive(Serialize)]
struct MetricsJson<'a> {
    schema_version: u64,
    generator: String,
    test_summary: TestSummary,
    response_times: TimeSummary,
    response_times_not_judged: ApartTimes,
    status_codes: BTreeMap<u16, u64>,
    targets: BTreeMap<&'a str, TargetResult<'a>>,
    endpoint_metrics: BTreeMap<String, Endpoint>,
    websocket: WebSocket<'a>,
    rate_limiting: RateLimiting<'a>,
    authentication: &'a AuthOutcomes,
    cleanup: &'a Cleanup,
    error_timeline: Vec<TimelineWindow>,
    memory: Option<Memory<'a>>,
    /// Present only for an open-model run.
    #[serde(skip_serializing_if = "Option::is_none")]
    open_model: Option<OpenModelOut<'a>>,
    verdict: VerdictOut<'a>,
    facts: &'a RunFacts,
    target_settings: &'a Targets,
    extra: &'a serde_json::Value,
    provenance: &'a Provenance,
    measured: &'a MeasuredRun,
}

fn timeline(run: &MeasuredRun, count_429: bool) -> Vec<TimelineWindow> {
    let windows = run.windows.iter().enumerate().map(|(i, w)| (Some(i), w));
    windows
        .chain(run.stop_phase.iter().map(|w| (None, w)))
        .map(|(i, w)| {
            let all = everything(w);
            let mut top: Vec<TopFailing> = w
                .requests
                .iter()
                .map(|(k, s)| TopFailing {
                    request: k.clone(),
                    failures: s.failures + if count_429 { s.rate_limited } else { 0 },
                })
                .filter(|t| t.failures > 0)
                .collect();
            top.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.request.cmp(&b.request)));
            top.truncate(3);
            TimelineWindow {
                phase: if i.is_some() { "load" } else { "stop" },
                start_secs: w.start_secs,
                end_secs: i.map(|i| run.window_end(i)),
                requests: all.total(),
                failures: all.failures,
                rate_limited: all.rate_limited,
                p95_ms: w
                    .combined(RequestKind::Http)
                    .judged_times(count_429)
                    .percentile_ms(95.0),
                top_failing: top,
            }
        })
        .collect()
}

/// An open-model run's arrivals, and its HTTP service times (from the actual send) beside
/// `response_times` (from each arrival's intended start).
#[derive(Serialize)]
struct OpenModelOut<'a> {
    schedule: &'a str,
    planned_arrivals: u64,
    started_arrivals: u64,
    started_on_demand: u64,
    dropped_arrivals: u64,
    late_starts: u64,
    late_after_ms: u128,
    start_lag_p50_ms: f64,
    start_lag_p99_ms: f64,
    start_lag_max_ms: f64,
    max_users: u64,
    schedule_completed: bool,
    service_times: TimeSummary,
}

impl<'a> OpenModelOut<'a> {
    fn of(run: &'a MeasuredRun) -> Option<Self> {
        let a = run.arrivals.as_ref()?;
        Some(OpenModelOut {
            schedule: &a.schedule,
            planned_arrivals: a.planned,
            started_arrivals: a.started(),
            started_on_demand: a.on_demand,
            dropped_arrivals: a.dropped,
            late_starts: a.late,
            late_after_ms: crate::measure::LATE_START.as_millis(),
            start_lag_p50_ms: a.lag.percentile_ms(50.0),
            start_lag_p99_ms: a.lag.percentile_ms(99.0),
            start_lag_max_ms: a.lag.max_us as f64 / 1000.0,
            max_users: a.max_users,
            schedule_completed: a.completed,
            service_times: TimeSummary::of(&run.combined(RequestKind::Http).service_times),
        })
    }
}

/// The `_metrics.json` bytes (pretty-printed).
pub fn metrics_json(
    run: &MeasuredRun,
    verdict: &Verdict,
    targets: &Targets,
    facts: &RunFacts,
    extra: &serde_json::Value,
    provenance: &Provenance,
) -> Result<Vec<u8>, ReportError> {
    let count_429 = verdict.rate_limited_counted_as_failures;
    let head = Headline::of(run, count_429);
    let ws_all = run.combined(RequestKind::WebSocket);
    let mut round_trips = crate::measure::RequestStats::default();
    for r in run.requests.iter().filter(|r| is_round_trip(r)) {
        round_trips.merge(r);
    }
    let doc = MetricsJson {
        schema_version: SCHEMA_VERSION,
        generator: format!("lva-loadtest {}", env!("CARGO_PKG_VERSION")),
        test_summary: TestSummary {
            preset_name: verdict.preset_name.clone(),
            start_time: run.started_at.map(|t| t.to_rfc3339()),
            end_time: run.ended_at.map(|t| t.to_rfc3339()),
            duration_seconds: run.duration_secs,
            total_requests: head.rates.total,
            judged_requests: head.rates.judged,
            successful_requests: head.rates.successes,
            failed_requests: head.rates.failures,
            rate_limited_requests: head.rates.rate_limited,
            expected_errors: head.rates.expected_errors,
            success_rate: head.rates.success_rate,
            error_rate: head.rates.error_rate,
            requests_per_second: head.requests_per_second,
            rate_limited_counted_as_failures: count_429,
            max_users: run.max_users,
            interrupted: run.interrupted,
            aborted: run.aborted.clone(),
        },
        response_times: head.times,
        response_times_not_judged: head.apart,
        status_codes: head.status_codes.clone(),
        targets: verdict
            .checks
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    TargetResult {
                        label: &c.label,
                        target: &c.target,
                        actual: &c.actual,
                        passed: c.passed,
                        skipped: c.skipped,
                    },
                )
            })
            .collect(),
        endpoint_metrics: run
            .requests
            .iter()
            .map(|s| {
                let t = TimeSummary::of(&s.judged_times(count_429));
                (
                    s.key(),
                    Endpoint {
                        kind: s.kind,
                        method: s.method.clone(),
                        name: s.name.clone(),
                        count: s.total(),
                        successes: s.successes,
                        failures: s.failures,
                        rate_limited: s.rate_limited,
                        expected_errors: s.expected_errors,
                        avg_ms: t.average,
                        min_ms: t.min,
                        max_ms: t.max,
                        p50_ms: t.p50,
                        p95_ms: t.p95,
                        p99_ms: t.p99,
                        not_judged_ms: ApartTimes::of(s),
                        status_codes: s.status_codes.clone(),
                    },
                )
            })
            .collect(),
        websocket: WebSocket {
            connections_opened: run.websocket.connections_opened,
            peak_concurrent: run.websocket.peak_concurrent,
            messages_sent: run.websocket.messages_sent,
            messages_received: run.websocket.messages_received,
            closes_by_code: &run.websocket.closes_by_code,
            round_trip_count: round_trips.judged_times(count_429).count,
            round_trip_ms: {
                let times = round_trips.judged_times(count_429);
                (times.count > 0).then(|| TimeSummary::of(&times))
            },
            operations: ws_all.total(),
            operation_failures: ws_all.failures,
        },
        rate_limiting: RateLimiting {
            rate_limited_requests: run.requests.iter().map(|r| r.rate_limited).sum(),
            evidence: &run.rate_limit,
        },
        authentication: &run.auth,
        cleanup: &run.cleanup,
        error_timeline: timeline(run, count_429),
        memory: memory_summary(run, targets).map(|summary| Memory {
            summary,
            sample_points: run
                .memory
                .as_ref()
                .map_or(&[][..], |m| m.samples.as_slice()),
        }),
        open_model: OpenModelOut::of(run),
        verdict: VerdictOut {
            passed: verdict.passed,
            exit_code: verdict.exit_code(),
            interrupted: verdict.interrupted,
            aborted: &verdict.aborted,
            rate_limited: verdict.rate_limited,
            rate_limited_counted_as_failures: count_429,
            checks: &verdict.checks,
        },
        facts,
        target_settings: targets,
        extra,
        provenance,
        measured: run,
    };
    serde_json::to_vec_pretty(&doc).map_err(|e| ReportError::Encode {
        what: "metrics JSON",
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::MemorySeries;
    use crate::verdict::judge;
    use crate::verdict::testing::{row, run_of};

    /// A run with a slow conversation, a burst of failures and memory samples.
    pub(crate) fn sample_run() -> MeasuredRun {
        let mut windows: Vec<Vec<_>> = (0..6)
            .map(|_| {
                vec![
                    row("GET", "/health", 15, 100, 0, 0),
                    row("POST", "/api/conversation", 120, 40, 0, 2),
                    row("WS", "message /ws/{session_id}", 30, 10, 0, 0),
                ]
            })
            .collect();
        windows[3].push(row("GET", "/api/stats", 40, 10, 8, 0));
        let mut run = run_of(10.0, windows);
        run.memory = Some(MemorySeries {
            source: "pid 7".into(),
            samples: (0..=12)
                .map(|i| MemorySample {
                    t_secs: i as f64 * 5.0,
                    rss_bytes: 50 << 20,
                })
                .collect(),
        });
        run.started_at = Some(chrono::Utc::now());
        run
    }

    #[test]
    fn every_documented_key_is_present() {
        let run = sample_run();
        let t = Targets::default();
        let facts = RunFacts {
            preset_name: "load".into(),
            ..RunFacts::default()
        };
        let v = judge(&run, &t, &facts);
        let bytes = metrics_json(
            &run,
            &v,
            &t,
            &facts,
            &serde_json::json!({"users": 10}),
            &Provenance::default(),
        )
        .expect("json");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("parse");
        for key in [
            "schema_version",
            "test_summary",
            "response_times",
            "response_times_not_judged",
            "status_codes",
            "targets",
            "endpoint_metrics",
            "websocket",
            "rate_limiting",
            "authentication",
            "cleanup",
            "error_timeline",
            "memory",
            "verdict",
            "facts",
            "target_settings",
            "extra",
            "provenance",
            "measured",
        ] {
            assert!(doc.get(key).is_some(), "missing {key}");
        }
        assert_eq!(doc["schema_version"], 2);
        for key in [
            "start_time",
            "end_time",
            "duration_seconds",
            "total_requests",
            "judged_requests",
            "successful_requests",
            "failed_requests",
            "rate_limited_requests",
            "expected_errors",
            "success_rate",
            "error_rate",
            "requests_per_second",
            "interrupted",
            "aborted",
        ] {
            assert!(
                doc["test_summary"].get(key).is_some(),
                "missing test_summary.{key}"
            );
        }
        for key in ["average", "min", "max", "p50", "p90", "p95", "p99"] {
            assert!(doc["response_times"].get(key).is_some(), "missing {key}");
        }
        // HTTP only: 600 + 252 + 18.
        assert_eq!(doc["test_summary"]["total_requests"], 870);
        assert_eq!(doc["test_summary"]["rate_limited_requests"], 12);
        assert_eq!(doc["status_codes"]["500"], 8);
        let p95 = &doc["targets"]["p95"];
        for key in ["target", "actual", "passed", "skipped"] {
            assert!(p95.get(key).is_some(), "missing targets.p95.{key}");
        }
        let conv = &doc["endpoint_metrics"]["POST /api/conversation"];
        assert_eq!(conv["count"], 252);
        assert_eq!(conv["kind"], "http");
        assert_eq!(
            doc["endpoint_metrics"]["WS message /ws/{session_id}"]["kind"],
            "websocket"
        );
        assert_eq!(doc["websocket"]["round_trip_count"], 60);
        let timeline = doc["error_timeline"].as_array().expect("timeline");
        assert_eq!(timeline.len(), 6);
        assert_eq!(timeline[3]["failures"], 8);
        assert_eq!(timeline[3]["top_failing"][0]["request"], "GET /api/stats");
        assert_eq!(doc["memory"]["source"], "pid 7");
        assert_eq!(doc["verdict"]["exit_code"], v.exit_code());
        assert_eq!(doc["extra"]["users"], 10);
    }

    #[test]
    #[ignore = "prints an example document for docs/METRICS_JSON.md"]
    fn print_example() {
        let run = sample_run();
        let t = Targets::default();
        let facts = RunFacts {
            preset_name: "load".into(),
            ordinary_user_classes: vec!["AuthenticatedUser".into()],
            ..RunFacts::default()
        };
        let v = judge(&run, &t, &facts);
        let bytes = metrics_json(
            &run,
            &v,
            &t,
            &facts,
            &serde_json::json!({"users": 100}),
            &Provenance::default(),
        )
        .expect("json");
        outln!("{}", String::from_utf8_lossy(&bytes));
    }
}
