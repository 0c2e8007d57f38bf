//! Saved runs, re-judged without traffic: our `_metrics.json` (exact: it holds the whole
//! measured run, the facts and the targets it was judged with) or Goose's JSON report
//! (`raw_metrics`, with what Goose keeps: per-request times, counts, status codes, errors).
//!
//! From a Goose report: requests recorded with a custom method (`record_custom_request`) are
//! WebSocket rows; 429s are counted as rate limited and taken out of Goose's failures when
//! Goose counted them there (it does for any non-2xx); expected errors cannot be told apart;
//! there is no timeline of windows, memory or rate-limit evidence, so those checks are skipped.

use super::json;
use super::provenance::Provenance;
use crate::measure::{ErrorCount, Histogram, MeasuredRun, RequestKind, RequestStats, UserSample};
use crate::probes::{
    Finding, ProbeAnswer, ProbeOutcome, ProbeReport, ProbeRequest, ProbeStatus, Severity,
};
use crate::verdict::{BaselineSummary, RunFacts, Targets};
use chrono::{DateTime, Utc};
use goose::goose::GooseMethod;
use goose::metrics::GooseMetrics;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a saved run cannot be read. Configuration errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SavedRunError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is neither a metrics JSON written by lva-loadtest nor a Goose JSON report: {reason}",
        path.display()
    )]
    NotARun { path: PathBuf, reason: String },
    #[error(
        "{} has metrics schema version {found}; this build reads versions up to {supported}",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("baseline: {0}")]
    Baseline(#[source] Box<SavedRunError>),
}

/// What kind of file a saved run came from.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedSource {
    Metrics { schema_version: u64 },
    GooseReport,
}

impl SavedSource {
    /// What the file's latency figures cover, when it is not what this build writes: the
    /// judged answers only.
    pub fn latency_note(&self) -> Option<&'static str> {
        match self {
            SavedSource::Metrics { schema_version } if *schema_version < 2 => Some(
                "this metrics JSON is of schema 1, which kept one histogram per request: its \
                 latency figures include the 429s and the expected errors, and are judged so",
            ),
            SavedSource::Metrics { .. } => None,
            SavedSource::GooseReport => Some(
                "a Goose report does not tell 429s and expected errors apart: its latency \
                 figures are over every answer",
            ),
        }
    }
}

/// A run read back from a file.
#[derive(Debug, Clone)]
pub struct SavedRun {
    pub run: MeasuredRun,
    pub facts: RunFacts,
    /// The targets the run was judged with (our metrics JSON only).
    pub targets: Option<Targets>,
    pub source: SavedSource,
    /// Where the run came from (our metrics JSON, when it recorded it).
    pub provenance: Option<Provenance>,
    /// The security probes' report, when they ran (our metrics JSON only).
    pub probes: Option<ProbeReport>,
    pub probes_report_only: bool,
}

#[derive(Deserialize)]
struct GooseReportIn {
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    ended: Option<String>,
    #[serde(default)]
    ended_by: Option<String>,
    raw_metrics: GooseMetrics,
}

fn not_a_run(path: &Path, reason: impl Into<String>) -> SavedRunError {
    SavedRunError::NotARun {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads our metrics JSON or a Goose JSON report.
pub fn load_saved_run(path: &Path) -> Result<SavedRun, SavedRunError> {
    let text = std::fs::read_to_string(path).map_err(|source| SavedRunError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| not_a_run(path, format!("not JSON: {e}")))?;
    if value.get("schema_version").is_some() {
        let saved = json::read_metrics_json(value).map_err(|e| match e {
            json::ReadError::Shape(reason) => not_a_run(path, reason),
            json::ReadError::NewerSchema { found } => SavedRunError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                supported: json::SCHEMA_VERSION,
            },
        })?;
        let probes = saved_probes(&saved.extra);
        let probes_report_only = saved.extra["probes_report_only"].as_bool() == Some(true);
        let facts = saved.facts.unwrap_or_else(|| RunFacts {
            preset_name: saved.measured.preset_name.clone(),
            ..RunFacts::default()
        });
        return Ok(SavedRun {
            run: saved.measured,
            facts,
            targets: saved.target_settings,
            source: SavedSource::Metrics {
                schema_version: saved.schema_version,
            },
            provenance: saved.provenance,
            probes,
            probes_report_only,
        });
    }
    if value.get("raw_metrics").is_some() {
        let report: GooseReportIn = serde_json::from_value(value)
            .map_err(|e| not_a_run(path, format!("raw_metrics: {e}")))?;
        let preset_name = preset_from_file_name(path);
        let run = from_goose(report, &preset_name);
        return Ok(SavedRun {
            facts: RunFacts {
                preset_name,
                ..RunFacts::default()
            },
            run,
            targets: None,
            source: SavedSource::GooseReport,
            provenance: None,
            probes: None,
            probes_report_only: false,
        });
    }
    Err(not_a_run(
        path,
        "it has neither schema_version (metrics JSON) nor raw_metrics (Goose report)",
    ))
}

/// `load_test_spike_20260101_120000_goose.json` → `spike`; anything else → `goose-report`.
fn preset_from_file_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(rest) = stem.strip_prefix("load_test_") else {
        return "goose-report".to_string();
    };
    let rest = rest.strip_suffix("_goose").unwrap_or(rest);
    let parts: Vec<&str> = rest.rsplitn(3, '_').collect();
    match parts.as_slice() {
        [time, date, preset_name]
            if time.len() == 6
                && date.len() == 8
                && time.chars().chain(date.chars()).all(|c| c.is_ascii_digit()) =>
        {
            (*preset_name).to_string()
        }
        _ => rest.to_string(),
    }
}

fn parse_time(text: Option<&String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn method_text(method: GooseMethod, custom: &str) -> String {
    if custom.is_empty() {
        method.to_string()
    } else {
        custom.to_string()
    }
}

fn from_goose(report: GooseReportIn, preset_name: &str) -> MeasuredRun {
    let m = &report.raw_metrics;
    let mut requests: Vec<RequestStats> = m
        .requests
        .values()
        .map(|agg| {
            let raw = &agg.raw_data;
            let times = Histogram {
                buckets: raw.times_us.iter().map(|(b, n)| (*b, *n as u64)).collect(),
                count: raw.counter as u64,
                sum_us: raw.total_time_us,
                min_us: raw.minimum_time_us,
                max_us: raw.maximum_time_us,
            };
            let status_codes: BTreeMap<u16, u64> = agg
                .status_code_counts
                .iter()
                .map(|(code, n)| (*code, *n as u64))
                .collect();
            let total = (agg.success_count + agg.fail_count) as u64;
            let fail = agg.fail_count as u64;
            let limited = status_codes.get(&429).copied().unwrap_or(0).min(total);
            let failures = fail - limited.min(fail);
            RequestStats {
                kind: Some(if agg.method == GooseMethod::Custom {
                    RequestKind::WebSocket
                } else {
                    RequestKind::Http
                }),
                method: method_text(agg.method, &agg.custom_method),
                name: agg.path.clone(),
                // Goose keeps one histogram of every answer: it stands for the judged one.
                times,
                rate_limited_times: Histogram::default(),
                expected_error_times: Histogram::default(),
                service_times: Histogram::default(),
                successes: total.saturating_sub(failures + limited),
                failures,
                rate_limited: limited,
                expected_errors: 0,
                status_codes,
                bytes_received: 0,
            }
        })
        .collect();
    requests.sort_by_key(|r| r.key());
    let mut errors: Vec<ErrorCount> = m
        .errors
        .values()
        .map(|e| ErrorCount {
            method: method_text(e.method, &e.custom_method),
            name: e.name.clone(),
            error: e.error.clone(),
            occurrences: e.occurrences as u64,
            expected: false,
        })
        .collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.occurrences));
    let started_at = parse_time(report.started.as_ref());
    let first_step = m.history.first().map(|h| h.timestamp);
    let users_over_time = m
        .history
        .iter()
        .filter_map(|h| {
            let start = first_step?;
            Some(UserSample {
                t_secs: (h.timestamp - start).num_milliseconds() as f64 / 1000.0,
                users: h.users as u64,
            })
        })
        .collect();
    MeasuredRun {
        preset_name: preset_name.to_string(),
        started_at,
        ended_at: parse_time(report.ended.as_ref()),
        duration_secs: m.duration as f64,
        window_secs: 0.0,
        requests,
        windows: Vec::new(),
        errors,
        users_over_time,
        max_users: m.maximum_users as u64,
        interrupted: report.ended_by.as_deref() == Some("canceled"),
        ..MeasuredRun::default()
    }
}

#[derive(Deserialize)]
struct ProbeIn {
    name: String,
    status: String,
    passed: bool,
    requests: u64,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Deserialize)]
struct FindingIn {
    probe: String,
    severity: String,
    /// Files written before findings were grouped by cause have neither: the endpoint is
    /// then the request's, and the inputs none.
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    request: RequestIn,
    answer: AnswerIn,
    meaning: String,
}

#[derive(Deserialize)]
struct RequestIn {
    method: String,
    path: String,
    summary: String,
}

#[derive(Deserialize)]
struct AnswerIn {
    status: Option<u16>,
    body: String,
}

/// The probes' report as the metrics JSON's `extra` saved it (`probes`, `findings` and
/// `probes_elapsed_secs`, written from [`ProbeReport::json_parts`]); `None` when the probes
/// did not run or the file's shape is not this build's.
fn saved_probes(extra: &serde_json::Value) -> Option<ProbeReport> {
    let outcomes: Vec<ProbeIn> = serde_json::from_value(extra.get("probes")?.clone()).ok()?;
    let findings: Vec<FindingIn> =
        serde_json::from_value(extra.get("findings")?.clone()).unwrap_or_default();
    let mut findings: Vec<Finding> = findings
        .into_iter()
        .filter_map(|f| {
            Some(Finding {
                probe: f.probe,
                severity: match f.severity.as_str() {
                    "high" => Severity::High,
                    "medium" => Severity::Medium,
                    "low" => Severity::Low,
                    _ => return None,
                },
                endpoint: f
                    .endpoint
                    .unwrap_or_else(|| format!("{} {}", f.request.method, f.request.path)),
                inputs: f.inputs,
                request: ProbeRequest {
                    method: f.request.method,
                    path: f.request.path,
                    summary: f.request.summary,
                },
                answer: ProbeAnswer {
                    status: f.answer.status,
                    body: f.answer.body,
                },
                meaning: f.meaning,
            })
        })
        .collect();
    let probes = outcomes
        .into_iter()
        .map(|p| {
            let (mine, others) = findings.drain(..).partition(|f| f.probe == p.name);
            findings = others;
            Some(ProbeOutcome {
                status: match p.status.as_str() {
                    "passed" => ProbeStatus::Passed,
                    "findings" => ProbeStatus::Findings,
                    "not_tested" => ProbeStatus::NotTested,
                    _ => return None,
                },
                name: p.name,
                passed: p.passed,
                requests: p.requests,
                notes: p.notes,
                findings: mine,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ProbeReport {
        probes,
        elapsed_secs: extra["probes_elapsed_secs"].as_f64().unwrap_or(0.0),
        ..ProbeReport::default()
    })
}

/// Reads the baseline named in `targets` (if any) into its summary, judged with the
/// targets' own rule for 429s.
pub fn load_baseline(targets: &mut Targets) -> Result<(), SavedRunError> {
    if let Some(path) = &targets.baseline_file {
        let saved = load_saved_run(path).map_err(|e| SavedRunError::Baseline(Box::new(e)))?;
        targets.baseline = Some(BaselineSummary::of(
            &saved.run,
            &path.display().to_string(),
            targets.count_429_as_failure,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose::metrics::{GooseRequestMetricAggregate, GooseRequestMetricTimingData};
    use std::collections::HashMap;

    fn aggregate(
        method: GooseMethod,
        custom: &str,
        path: &str,
        times_ms: &[u64],
        codes: &[(u16, usize)],
    ) -> GooseRequestMetricAggregate {
        let mut h = Histogram::default();
        for ms in times_ms {
            h.record(ms * 1000);
        }
        let success = codes
            .iter()
            .filter(|(c, _)| (200..300).contains(c) || *c == 101)
            .map(|(_, n)| n)
            .sum();
        let fail = codes.iter().map(|(_, n)| n).sum::<usize>() - success;
        GooseRequestMetricAggregate {
            path: path.into(),
            method,
            raw_data: GooseRequestMetricTimingData {
                times_us: h.buckets.iter().map(|(b, n)| (*b, *n as usize)).collect(),
                minimum_time_us: h.min_us,
                maximum_time_us: h.max_us,
                total_time_us: h.sum_us,
                counter: h.count as usize,
            },
            coordinated_omission_data: None,
            status_code_counts: codes.iter().copied().collect::<HashMap<_, _>>(),
            status_code_timings: HashMap::new(),
            success_count: success,
            fail_count: fail,
            load_test_hash: 0,
            custom_method: custom.into(),
        }
    }

    #[test]
    fn a_goose_report_reads_into_a_measured_run() {
        let mut metrics = GooseMetrics::default();
        metrics.duration = 60;
        metrics.maximum_users = 10;
        let times: Vec<u64> = (1..=100).collect();
        metrics.requests.insert(
            "GET /api/stats".into(),
            aggregate(
                GooseMethod::Get,
                "",
                "/api/stats",
                &times,
                &[(200, 90), (429, 8), (500, 2)],
            ),
        );
        metrics.requests.insert(
            "WS message /ws/{session_id}".into(),
            aggregate(
                GooseMethod::Custom,
                "WS",
                "message /ws/{session_id}",
                &[5, 6, 7],
                &[(101, 3)],
            ),
        );
        let report = serde_json::json!({
            "goose_version": "0.19.0",
            "started": "2026-01-01T12:00:00Z",
            "ended": "2026-01-01T12:01:00Z",
            "ended_by": "canceled",
            "raw_metrics": metrics,
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir
            .path()
            .join("load_test_smoke_20260101_120000_goose.json");
        std::fs::write(&path, report.to_string()).expect("write");
        let saved = load_saved_run(&path).expect("loads");
        assert_eq!(saved.source, SavedSource::GooseReport);
        assert_eq!(saved.facts.preset_name, "smoke");
        let run = &saved.run;
        assert!(run.interrupted);
        assert_eq!(run.duration_secs, 60.0);
        let stats = run.request("GET /api/stats").expect("row");
        assert_eq!(
            (stats.successes, stats.failures, stats.rate_limited),
            (90, 2, 8)
        );
        let mut expected = Histogram::default();
        for ms in &times {
            expected.record(ms * 1000);
        }
        assert_eq!(
            stats.times, expected,
            "buckets, count, sum, min and max carry over"
        );
        assert_eq!(
            stats.times.percentile_us(95.0),
            expected.percentile_us(95.0)
        );
        let ws = run.request("WS message /ws/{session_id}").expect("ws row");
        assert_eq!(ws.kind, Some(RequestKind::WebSocket));
        let verdict = crate::verdict::judge(run, &Targets::default(), &saved.facts);
        assert!(verdict.check("error_spikes").expect("spikes").skipped);
        assert!(verdict.check("p95").expect("p95").passed);
    }

    #[test]
    fn unknown_files_are_configuration_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"hello\": 1}").expect("write");
        assert!(matches!(
            load_saved_run(&path),
            Err(SavedRunError::NotARun { .. })
        ));
        std::fs::write(&path, "not json").expect("write");
        assert!(matches!(
            load_saved_run(&path),
            Err(SavedRunError::NotARun { .. })
        ));
        std::fs::write(&path, "{\"schema_version\": 999, \"measured\": {}}").expect("write");
        assert!(matches!(
            load_saved_run(&path),
            Err(SavedRunError::SchemaVersion { found: 999, .. })
        ));
        assert!(matches!(
            load_saved_run(&dir.path().join("missing.json")),
            Err(SavedRunError::Read { .. })
        ));
    }

    #[test]
    fn preset_names_from_file_names() {
        let name = |s: &str| preset_from_file_name(Path::new(s));
        assert_eq!(
            name("load_test_rate-limit_20260101_120000_goose.json"),
            "rate-limit"
        );
        assert_eq!(
            name("load_test_auth-only_20260101_120000.json"),
            "auth-only"
        );
        assert_eq!(name("report.json"), "goose-report");
    }
}
