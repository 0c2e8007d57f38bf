//! Live metrics (`--metrics-bind`): Debian's real Prometheus scrapes a short run against the
//! reference server, and the series it stored, read back through its HTTP API, must equal
//! the run's metrics JSON.

use crate::support::process::{Proc, serial};
use crate::support::{free_port, http_get};
use lva_loadtest::measure::bucket_floor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// An instant query's result: each series' labels and value.
fn query(port: u16, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let Some((200, body)) = http_get(port, &format!("/api/v1/query?query={encoded}")) else {
        return Vec::new();
    };
    let answer: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    let Some(result) = answer["data"]["result"].as_array() else {
        return Vec::new();
    };
    result
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = series["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .expect("a sample value");
            (labels, value)
        })
        .collect()
}

/// The last value Prometheus stored of each series of `metric` (the run's endpoint is gone,
/// so an instant query would see its staleness markers).
fn last(port: u16, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    query(port, &format!("last_over_time({metric}[10m])"))
}

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// The metrics JSON's row of the request a series names (by its method and template).
fn row_of<'a>(rows: &'a [Value], labels: &BTreeMap<String, String>) -> &'a Value {
    rows.iter()
        .find(|r| {
            r["method"].as_str() == Some(label(labels, "method"))
                && r["name"].as_str() == Some(label(labels, "request"))
        })
        .unwrap_or_else(|| panic!("a series of no request of the run: {labels:?}"))
}

#[test]
fn prometheus_scrapes_a_run_and_its_last_values_equal_the_metrics_json() {
    assert!(
        std::path::Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: .ci/run installs Debian's prometheus package"
    );
    let _one = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let (metrics_port, prometheus_port) = (free_port(), free_port());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: \
             lva\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .expect("write the scrape config");
    let data = dir.path().join("data");
    let prometheus = Proc::spawn_program(
        "prometheus",
        std::path::Path::new(PROMETHEUS),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &[],
    );
    prometheus.wait_for_log(
        "Server is ready to receive web requests",
        Duration::from_secs(60),
    );

    let out = dir.path().join("out");
    let bind = format!("127.0.0.1:{metrics_port}");
    let out_text = out.display().to_string();
    let mut run = Proc::spawn(
        "lva-loadtest",
        &[
            "--scenario",
            "custom",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--duration",
            "6s",
            "--metrics-bind",
            &bind,
            "--metrics-linger",
            "30s",
            "-o",
            &out_text,
        ],
        &[],
    );
    let code = run.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "{}", run.output());
    assert!(
        run.stdout()
            .contains("the final figures are served until scraped once more"),
        "{}",
        run.output()
    );
    let metrics_file = std::fs::read_dir(&out)
        .expect("the output folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_metrics.json"))
        .expect("a metrics JSON");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(metrics_file).expect("read")).expect("JSON");

    // The run waited for a scrape of its final figures before it ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    while last(prometheus_port, "lva_loadtest_phase{phase=\"ended\"}")
        .first()
        .map(|s| s.1)
        != Some(1.0)
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus holds no ended phase\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // ... and it was scraped while it ran, too.
    let running = query(
        prometheus_port,
        "max_over_time(lva_loadtest_phase{phase=\"running\"}[10m])",
    );
    assert_eq!(
        running.first().map(|s| s.1),
        Some(1.0),
        "never scraped while running"
    );

    let rows = metrics["measured"]["requests"]
        .as_array()
        .expect("requests");
    assert!(rows.len() >= 4, "too few requests to compare: {rows:?}");

    // Counts by outcome, per request template.
    let counts = last(prometheus_port, "lva_loadtest_requests_total");
    assert_eq!(
        counts.len(),
        rows.len() * 4,
        "one series per request and outcome"
    );
    let mut compared = 0;
    for (labels, value) in &counts {
        let row = row_of(rows, labels);
        let field = match label(labels, "outcome") {
            "success" => "successes",
            "failure" => "failures",
            "rate_limited" => "rate_limited",
            "expected_error" => "expected_errors",
            other => panic!("unknown outcome {other}"),
        };
        assert_eq!(
            *value,
            row[field].as_u64().expect("count") as f64,
            "{labels:?}"
        );
        assert_eq!(label(labels, "kind"), row["kind"].as_str().unwrap_or(""));
        compared += *value as u64;
    }
    let all: u64 = rows
        .iter()
        .map(|r| {
            ["successes", "failures", "rate_limited", "expected_errors"]
                .iter()
                .map(|f| r[f].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    assert!(all > 20, "the run made too few requests: {all}");
    assert_eq!(compared, all);

    // Latency buckets: exact at every bound, each bound a bucket edge of the ledger's; the
    // judged histogram is the one every latency figure of the JSON is read from, and the 429s
    // and expected errors have their own.
    let count_429 = metrics["verdict"]["rate_limited_counted_as_failures"] == true;
    let judged = |row: &Value| {
        let mut parts = vec![row["times"].clone()];
        if count_429 {
            parts.push(row["rate_limited_times"].clone());
        }
        parts
    };
    let mut apart_series = 0;
    for (family, histograms) in [
        ("request_duration", &judged as &dyn Fn(&Value) -> Vec<Value>),
        ("rate_limited_duration", &|row: &Value| {
            vec![row["rate_limited_times"].clone()]
        }),
        ("expected_error_duration", &|row: &Value| {
            vec![row["expected_error_times"].clone()]
        }),
    ] {
        let buckets = last(
            prometheus_port,
            &format!("lva_loadtest_{family}_seconds_bucket"),
        );
        if family == "request_duration" {
            assert!(!buckets.is_empty());
        } else {
            apart_series += buckets.len();
        }
        for (labels, value) in &buckets {
            let parts = histograms(row_of(rows, labels));
            let expected: u64 = match label(labels, "le") {
                "+Inf" => parts.iter().map(|h| h["count"].as_u64().unwrap_or(0)).sum(),
                le => {
                    let bound = (le.parse::<f64>().expect("le is a number") * 1e6).round() as u64;
                    assert_eq!(bucket_floor(bound), bound, "le {le} is no bucket edge");
                    parts
                        .iter()
                        .filter_map(|h| h["buckets"].as_object())
                        .flatten()
                        .filter(|(floor, _)| floor.parse::<u64>().expect("floor") < bound)
                        .map(|(_, n)| n.as_u64().unwrap_or(0))
                        .sum()
                }
            };
            assert_eq!(*value, expected as f64, "{family} {labels:?}");
        }
        for (labels, value) in last(
            prometheus_port,
            &format!("lva_loadtest_{family}_seconds_sum"),
        ) {
            let parts = histograms(row_of(rows, &labels));
            let sum = parts
                .iter()
                .map(|h| h["sum_us"].as_u64().unwrap_or(0))
                .sum::<u64>() as f64
                / 1e6;
            assert!(
                (value - sum).abs() <= sum * 1e-12,
                "{family} {labels:?}: {value} vs {sum}"
            );
        }
    }
    // A histogram apart for each request that had such answers, and for no other.
    let with_apart: usize = rows
        .iter()
        .map(|r| {
            ["rate_limited_times", "expected_error_times"]
                .iter()
                .filter(|h| r[**h]["count"].as_u64().unwrap_or(0) > 0)
                .count()
        })
        .sum();
    assert_eq!(
        apart_series,
        with_apart * (lva_loadtest::live_metrics::latency_bounds_us().count() + 1),
        "one bucket series per bound and +Inf for each request with 429s or expected errors"
    );

    // Users by class, the targets' states, the WebSocket counters.
    let starts = last(prometheus_port, "lva_loadtest_user_starts_total");
    for (class, figures) in metrics["measured"]["user_starts"]
        .as_object()
        .expect("starts")
    {
        for state in ["launched", "started"] {
            let series = starts
                .iter()
                .find(|(l, _)| label(l, "class") == class && label(l, "state") == state)
                .unwrap_or_else(|| panic!("no {state} series of {class}"));
            assert_eq!(series.1, figures[state].as_u64().expect("count") as f64);
        }
    }
    let mut states = last(prometheus_port, "lva_loadtest_target_state");
    states.retain(|(_, value)| *value == 1.0);
    let targets = metrics["targets"].as_object().expect("targets");
    assert_eq!(states.len(), targets.len());
    for (id, target) in targets {
        let expected = if target["skipped"] == true {
            "skipped"
        } else if target["passed"] == true {
            "passed"
        } else {
            "failed"
        };
        assert!(
            states
                .iter()
                .any(|(l, _)| label(l, "target") == id && label(l, "state") == expected),
            "target {id} is not {expected} in Prometheus: {states:?}"
        );
    }
    let opened = last(
        prometheus_port,
        "lva_loadtest_websocket_connections_opened_total",
    );
    assert_eq!(
        opened.first().map(|s| s.1),
        metrics["measured"]["websocket"]["connections_opened"]
            .as_u64()
            .map(|n| n as f64)
    );
    drop(prometheus);
}

#[test]
fn an_address_in_use_is_a_configuration_error_before_traffic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().display().to_string();
    let mut run = Proc::spawn(
        "lva-loadtest",
        &["--duration", "3s", "--metrics-bind", &address, "-o", &out],
        &[],
    );
    assert_eq!(run.wait(Duration::from_secs(60)), 2, "{}", run.output());
    assert!(
        run.stderr()
            .contains(&format!("--metrics-bind {address}: cannot listen there")),
        "{}",
        run.output()
    );
    let written = std::fs::read_dir(dir.path()).map_or(0, |d| d.count());
    assert_eq!(written, 0, "a refused run wrote files\n{}", run.output());
}

/// The series names, and each one's label names, in an exposition text.
fn exported(text: &str) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut series: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_string()).or_default();
        if let Some(inner) = line[name_end..]
            .strip_prefix('{')
            // The last brace: a template's `{id}` is inside a value.
            .and_then(|rest| rest.rsplit_once('}'))
        {
            for pair in inner.0.split("\",") {
                if let Some((key, _)) = pair.split_once('=') {
                    labels.insert(key.to_string());
                }
            }
        }
    }
    series
}

/// The figures of a run with one HTTP request and one WebSocket round trip, as the tool
/// exports them.
fn exposition_of_a_run() -> String {
    use lva_loadtest::measure::{ClassStarts, MeasuredRun, RequestKind, RequestStats};
    use lva_loadtest::verdict::{RunFacts, Targets, judge};
    let mut run = MeasuredRun {
        preset_name: "custom".into(),
        ..MeasuredRun::default()
    };
    for (kind, method, name, status) in [
        (RequestKind::Http, "GET", "/api/session/{id}/history", 200),
        (RequestKind::WebSocket, "WS", "end→summary", 0),
    ] {
        let mut stats = RequestStats {
            kind: Some(kind),
            method: method.into(),
            name: name.into(),
            successes: 1,
            ..RequestStats::default()
        };
        stats.times.record(1_500);
        stats.status_codes.insert(status, 1);
        run.requests.push(stats);
    }
    run.websocket.messages_sent = 1;
    run.user_starts
        .insert("AuthenticatedUser".into(), ClassStarts::default());
    let verdict = judge(&run, &Targets::default(), &RunFacts::default());
    lva_loadtest::live_metrics::exposition::render(
        &run,
        &verdict,
        lva_loadtest::live_metrics::Phase::Running,
    )
}

#[test]
fn the_grafana_dashboard_queries_series_the_tool_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/grafana/lva-loadtest-dashboard.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let series = exported(&exposition_of_a_run());
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            let mut all_labels = std::collections::BTreeSet::new();
            for (name, labels) in selectors(expr) {
                let known = series
                    .get(&name)
                    .unwrap_or_else(|| panic!("{expr}: {name} is not exported"));
                for label in labels {
                    assert!(
                        known.contains(&label),
                        "{expr}: {name} has no label {label} (it has {known:?})"
                    );
                }
                all_labels.extend(known.iter().cloned());
                checked += 1;
            }
            // What the query groups by is a label of the series it reads.
            for group in expr.split("by (").skip(1) {
                let names = group.split(')').next().unwrap_or("");
                for label in names.split(',').map(str::trim) {
                    assert!(all_labels.contains(label), "{expr}: no series has {label}");
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} series named");
}

/// Finds `lva_loadtest_*` names in a query, with the label names of their `{...}` matchers.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("lva_loadtest_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut labels = Vec::new();
        if let Some(inner) = tail[end..]
            .strip_prefix('{')
            .and_then(|m| m.split_once('}'))
        {
            for matcher in inner.0.split(',') {
                let key = matcher.split(['=', '!', '~']).next().unwrap_or("").trim();
                labels.push(key.to_string());
            }
        }
        found.push((name, labels));
        rest = &tail[end..];
    }
    found
}
