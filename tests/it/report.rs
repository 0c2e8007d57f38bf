//! The run's HTML report and history CSV from real runs against the built-in reference
//! server: opened from a file in headless Chromium, which must load nothing from anywhere
//! else, draw every chart, and show the verdict and the figures the metrics JSON holds;
//! `validate` writes the same report for a saved run; Goose's own reports only on request.

use crate::support::browser::Browser;
use crate::support::{Args, BIN, run};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Locust's `--csv-full-history` columns, as `locust/stats.py` (2.x) writes them.
const LOCUST_HISTORY_COLUMNS: [&str; 24] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Opens our report at `path` in the page and waits for it to be loaded.
async fn open(browser: &mut Browser, path: &Path) {
    let page = &mut browser.page;
    page.call("Network.enable", json!({})).await;
    page.call("Page.navigate", json!({"url": file_url(path)}))
        .await;
    page.wait_for(
        "the report",
        "document.readyState === 'complete' && !!document.getElementById('facts')",
    )
    .await;
}

/// Every URL the page asked for since the network was watched.
fn requested_urls(browser: &Browser) -> Vec<String> {
    browser
        .page
        .events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_string))
        .collect()
}

/// The checks' statuses as the page shows them: check id → PASS, FAIL or SKIP.
async fn shown_checks(browser: &mut Browser) -> Value {
    browser
        .page
        .eval(
            "Object.fromEntries(Array.from(document.querySelectorAll('tr.check')).map(r => \
             [r.dataset.check, r.querySelector('.status').textContent.trim()]))",
        )
        .await
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).expect("CSV opens");
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader.records().map(|r| r.expect("CSV row")).collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_of_real_runs_shows_the_verdict_charts_and_figures_offline() {
    // Two real runs at once: a smoke run, and one against a server failing 30% of its
    // API requests.
    let smoke = std::thread::spawn(|| run(&Args::preset("smoke").duration("14s")));
    let failing = std::thread::spawn(|| {
        run(&Args::custom(4, 4, "6s")
            .tags("stats")
            .builtin("--fault-error-rate 0.3 --jwt-secret not-for-the-reports-1234"))
    });
    let smoke = smoke.join().expect("smoke run");
    let failing = failing.join().expect("failing run");
    assert_eq!(smoke.code, 0, "{}", smoke.stdout);
    assert_eq!(failing.code, 1, "{}", failing.stdout);

    let report = smoke.report();
    let mut browser = Browser::open("about:blank").await;
    open(&mut browser, &report).await;
    // Give late loads (fonts, images, scripts) the time to start, then look at the network.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = browser.page.eval("1").await;
    let urls = requested_urls(&browser);
    assert!(!urls.is_empty(), "the report's own load was not seen");
    let elsewhere: Vec<&String> = urls.iter().filter(|u| !u.starts_with("file://")).collect();
    assert!(
        elsewhere.is_empty(),
        "requests to other hosts: {elsewhere:?}"
    );

    // Every chart drew marks with a real size.
    let charts = browser
        .page
        .eval(
            "Array.from(document.querySelectorAll('svg.chart')).map(svg => \
             Array.from(svg.querySelectorAll('path.mark')).filter(p => { \
               const b = p.getBBox(); return (p.getAttribute('d') || '').length > 0 \
               && b.width + b.height > 0; }).length)",
        )
        .await;
    let charts = charts.as_array().expect("chart list");
    let metrics = smoke.metrics();
    let requests = metrics["endpoint_metrics"].as_object().expect("endpoints");
    // Six charts over time (the smoke run has WebSocket sessions and the built-in server's
    // memory), and one latency distribution per request name with judged answers (one
    // whose answers were all 429s or expected errors has no judged latency to draw).
    let judged = requests
        .values()
        .filter(|e| e["successes"].as_u64().unwrap_or(0) + e["failures"].as_u64().unwrap_or(0) > 0)
        .count();
    assert_eq!(charts.len(), 6 + judged, "{charts:?}");
    assert!(
        charts.iter().all(|n| n.as_u64().unwrap_or(0) > 0),
        "a chart without marks: {charts:?}"
    );

    // The verdict and every check, as the metrics JSON has them.
    let word = browser
        .page
        .eval("document.querySelector('.verdict .word').textContent")
        .await;
    assert_eq!(word, "PASS");
    assert_eq!(metrics["verdict"]["passed"], true);
    let shown = shown_checks(&mut browser).await;
    let checks = metrics["verdict"]["checks"].as_array().expect("checks");
    assert_eq!(shown.as_object().map(|m| m.len()), Some(checks.len()));
    for c in checks {
        let status = if c["skipped"] == true {
            "SKIP"
        } else if c["passed"] == true {
            "PASS"
        } else {
            "FAIL"
        };
        assert_eq!(shown[c["id"].as_str().unwrap_or("")], status, "{c}");
    }

    // The endpoint table: every request with the metrics JSON's counts and P95.
    let table = browser
        .page
        .eval(
            "(() => { const cols = Array.from(document.querySelectorAll('table.endpoints thead th')) \
             .map(th => th.dataset.column); \
             return Array.from(document.querySelectorAll('table.endpoints tbody tr')).map(tr => \
             [tr.dataset.key, Object.fromEntries(Array.from(tr.cells).map((td, i) => [cols[i], td.textContent]))]); })()",
        )
        .await;
    let table = table.as_array().expect("rows");
    assert_eq!(table.len(), requests.len());
    for entry in table {
        let key = entry[0].as_str().expect("key");
        let cells = &entry[1];
        let m = &requests[key];
        let number = |col: &str| cells[col].as_str().and_then(|t| t.parse::<f64>().ok());
        assert_eq!(number("Request Count"), m["count"].as_f64(), "{key}");
        assert_eq!(number("Failure Count"), m["failures"].as_f64(), "{key}");
        assert_eq!(
            number("Rate Limited Count"),
            m["rate_limited"].as_f64(),
            "{key}"
        );
        assert_eq!(
            number("Expected Error Count"),
            m["expected_errors"].as_f64(),
            "{key}"
        );
        let p95 = number("95%").expect("P95");
        assert!(
            (p95 - m["p95_ms"].as_f64().unwrap_or(-1.0)).abs() < 0.006,
            "{key}: {p95} vs {}",
            m["p95_ms"]
        );
    }
    // Sorting by a column orders the rows by it.
    browser
        .page
        .eval("document.querySelector('th[data-column=\"Request Count\"]').click()")
        .await;
    let counts = browser
        .page
        .eval(
            "Array.from(document.querySelectorAll('table.endpoints tbody tr')).map(tr => \
             parseFloat(tr.cells[2].textContent))",
        )
        .await;
    let counts: Vec<f64> = counts
        .as_array()
        .expect("counts")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(counts.len(), requests.len());
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");

    // The history CSV: Locust's columns, and its last totals are the stats CSV's.
    let (header, history) = csv_rows(&smoke.file("_stats_history.csv"));
    assert_eq!(
        &header[..LOCUST_HISTORY_COLUMNS.len()],
        LOCUST_HISTORY_COLUMNS
    );
    let (stats_header, stats) = csv_rows(&smoke.file("_stats.csv"));
    let col = |h: &[String], name: &str| h.iter().position(|c| c == name).expect(name);
    // The last group of rows (the stop phase's when the run had one: it may share its second
    // with the last window) holds the run's totals.
    let phase = col(&header, "Phase");
    let final_row = &history[history.len() - 1];
    let (last_stamp, last_phase) = (&final_row[0], &final_row[phase]);
    let last: Vec<&csv::StringRecord> = history
        .iter()
        .filter(|r| &r[0] == last_stamp && &r[phase] == last_phase)
        .collect();
    assert_eq!(last.len(), stats.len(), "one row per stats CSV row");
    for (h, s) in last.iter().zip(&stats) {
        assert_eq!((&h[2], &h[3]), (&s[0], &s[1]));
        for (history_col, stats_col) in [
            ("Total Request Count", "Request Count"),
            ("Total Failure Count", "Failure Count"),
            ("Total Median Response Time", "Median Response Time"),
            ("Total Average Response Time", "Average Response Time"),
            ("Total Max Response Time", "Max Response Time"),
        ] {
            assert_eq!(
                &h[col(&header, history_col)],
                &s[col(&stats_header, stats_col)],
                "{} {history_col}",
                &s[1]
            );
        }
    }
    let windows = metrics["measured"]["windows"]
        .as_array()
        .map_or(0, Vec::len);
    let stop_phase = usize::from(metrics["measured"]["stop_phase"].is_object());
    let aggregates = history.iter().filter(|r| &r[3] == "Aggregated").count();
    assert_eq!(
        aggregates,
        windows + stop_phase,
        "one Aggregated row per window, and one for the stop phase"
    );

    // A failing run's report: FAIL first, the failed check and its advice.
    open(&mut browser, &failing.report()).await;
    let word = browser
        .page
        .eval("document.querySelector('.verdict .word').textContent")
        .await;
    assert_eq!(word, "FAIL");
    let metrics = failing.metrics();
    let failed: Vec<&Value> = metrics["verdict"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] == false)
        .collect();
    assert!(!failed.is_empty());
    let page_text = browser.page.eval("document.body.innerText").await;
    let page_text = page_text.as_str().expect("text");
    for c in failed {
        let advice = c["advice"].as_str().expect("a failed check has advice");
        let shown = browser
            .page
            .eval(&format!(
                "(() => {{ const r = document.querySelector('tr.check.failed[data-check=\"{}\"]'); \
                 return r ? r.querySelector('.advice').textContent : null; }})()",
                c["id"].as_str().unwrap_or("")
            ))
            .await;
        assert_eq!(
            shown
                .as_str()
                .map(|t| t.trim_start_matches("What to look at: ")),
            Some(advice),
            "{c}"
        );
    }
    // The command line is shown, its secret is not.
    assert!(page_text.contains("--fault-error-rate 0.3"), "{page_text}");
    assert!(
        !page_text.contains("not-for-the-reports"),
        "the JWT secret leaked"
    );
    assert!(page_text.contains("--jwt-secret [REDACTED]"));

    // validate writes the same report for the saved run, beside it by default.
    let saved = smoke.file("_metrics.json");
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&saved)
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let validated = smoke.file("_validated.html");
    assert!(smoke.file("_validated_stats_history.csv").exists());
    let original = std::fs::read_to_string(&report).expect("report");
    let again = std::fs::read_to_string(&validated).expect("validated report");
    let between = |html: &str, from: &str, to: &str| {
        let start = html.find(from).expect(from);
        html[start..start + html[start..].find(to).expect(to)].to_string()
    };
    for (from, to) in [
        (r#"id="verdict""#, r#"id="figures""#),
        (r#"id="timeline""#, r#"id="facts""#),
    ] {
        assert_eq!(between(&again, from, to), between(&original, from, to));
    }
    let (_, history_again) = csv_rows(&smoke.file("_validated_stats_history.csv"));
    assert_eq!(history_again, history);
}

#[tokio::test(flavor = "multi_thread")]
async fn goose_reports_only_on_request_and_validate_reads_goose_json() {
    let r = run(&Args::custom(2, 2, "3s")
        .tags("health")
        .with(&["--goose-report"]));
    assert_eq!(r.code, 0, "{}", r.stdout);
    let goose_html = r.file("_goose.html");
    let goose_json = r.file("_goose.json");
    assert!(
        r.stdout.contains(&goose_html.display().to_string()),
        "{}",
        r.stdout
    );
    // Ours is written too; Goose's is labelled as Goose's and loads its charts from elsewhere.
    let ours = std::fs::read_to_string(r.report()).expect("our report");
    assert!(ours.contains(r#"id="verdict""#));
    let theirs = std::fs::read_to_string(&goose_html).expect("Goose's report");
    assert!(theirs.contains("Goose") && !theirs.contains(r#"id="verdict""#));
    // Why it is not a default output: opened, it asks another host for its chart library
    // (the watch on the network sees the request, whether or not it could succeed).
    let mut browser = Browser::open("about:blank").await;
    browser.page.call("Network.enable", json!({})).await;
    browser
        .page
        .call("Page.navigate", json!({"url": file_url(&goose_html)}))
        .await;
    browser
        .page
        .wait_for("Goose's report", "document.readyState === 'complete'")
        .await;
    let urls = requested_urls(&browser);
    assert!(
        urls.iter().any(|u| u.starts_with("http")),
        "Goose's report loaded nothing from elsewhere: {urls:?}"
    );
    let out_dir = tempfile::tempdir().expect("dir");
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&goose_json)
        .arg("--output")
        .arg(out_dir.path())
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let written: Vec<String> = std::fs::read_dir(out_dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        written.iter().any(|n| n.ends_with("_validated.html")),
        "{written:?}"
    );
    let html = std::fs::read_to_string(
        out_dir.path().join(
            written
                .iter()
                .find(|n| n.ends_with("_validated.html"))
                .expect("html"),
        ),
    )
    .expect("read");
    assert!(
        html.contains("no timeline of windows"),
        "Goose keeps no windows"
    );
}

#[test]
fn bad_report_options_are_refused_before_any_traffic() {
    let out = Command::new(BIN)
        .args(["--goose-report", "--no-reports", "--duration", "2s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--no-reports") && err.contains("--goose-report"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").expect("write");
    let saved = dir.path().join("load_test_x_metrics.json");
    let measured = lva_loadtest::measure::MeasuredRun::default();
    let doc = json!({"schema_version": 1, "measured": measured});
    std::fs::write(&saved, doc.to_string()).expect("write");
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&saved)
        .arg("--output")
        .arg(not_a_dir.join("sub"))
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("choose another --output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
