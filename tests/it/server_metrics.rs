//! The server's metrics beside the run (`--server-metrics-url`): the reference server's
//! /metrics scraped through a run, its series in the metrics JSON and charted in the HTML
//! report's Server section, its memory read by the memory check; a server without such an
//! endpoint gets a note and the run passes.

use crate::support::process::reference_server;
use crate::support::{Args, FileServer, free_port, run};
use serde_json::Value;

/// The Server section of a report: from its heading to the next.
fn server_section(html: &str) -> &str {
    let Some(start) = html.find(r#"<h2 id="server">"#) else {
        return "";
    };
    let rest = &html[start..];
    let end = rest[4..].find("<h2").map_or(rest.len(), |at| at + 4);
    &rest[..end]
}

fn series<'a>(metrics: &'a Value, selector: &str) -> &'a Value {
    metrics["measured"]["server_metrics"]["series"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["selector"] == selector))
        .unwrap_or_else(|| {
            panic!(
                "no series {selector} in {:#}",
                metrics["measured"]["server_metrics"]
            )
        })
}

#[test]
fn the_servers_series_are_scraped_charted_and_read_by_the_memory_check() {
    let (_server, url) = reference_server();
    let metrics_url = format!("{url}/metrics");
    let r = run(&Args::custom(4, 4, "14s").with(&[
        "--host",
        &url,
        "--server-metrics-url",
        &metrics_url,
        "--server-metrics-interval",
        "1s",
        "--server-metric",
        "lva_http_requests_total{status=\"200\"}",
        "--memory-warmup",
        "1s",
        // Judged, not failed, by a young server's growth: this test is about where the
        // samples come from.
        "--memory-growth-limit",
        "100000",
    ]));
    assert_eq!(r.code, 0, "{}", r.output());
    assert!(
        r.stdout
            .contains(&format!("Server metrics: scraping {metrics_url} every 1s")),
        "{}",
        r.stdout
    );
    let metrics = r.metrics();
    let server = &metrics["measured"]["server_metrics"];
    assert_eq!(server["url"], metrics_url.as_str());
    assert_eq!(server["failed_scrapes"], 0, "{server:#}");
    let scrapes = server["scrapes"].as_u64().expect("scrapes");
    assert!(scrapes >= 10, "{scrapes} scrapes in a 14 s run at 1 s");

    // Counters as rates (from the second scrape on), gauges as scraped.
    let cpu = series(&metrics, "process_cpu_seconds_total");
    assert_eq!(cpu["rate"], true);
    assert_eq!(cpu["found"].as_u64(), Some(scrapes));
    let cpu_points = cpu["points"].as_array().expect("points");
    assert_eq!(cpu_points.len() as u64, scrapes - 1);
    assert!(
        cpu_points.iter().any(|p| p["value"].as_f64() > Some(0.0)),
        "a busy server used no CPU: {cpu_points:?}"
    );
    let served = series(&metrics, "lva_http_requests_total{status=\"200\"}");
    assert_eq!(served["rate"], true);
    assert!(
        served["points"]
            .as_array()
            .expect("points")
            .iter()
            .any(|p| p["value"].as_f64() > Some(1.0)),
        "{served}"
    );
    for gauge in [
        "lva_http_requests_in_flight",
        "lva_db_pool_in_use",
        "lva_db_pool_waiting",
    ] {
        let s = series(&metrics, gauge);
        assert_eq!(s["rate"], false, "{gauge}");
        assert_eq!(s["found"].as_u64(), Some(scrapes), "{gauge}");
    }
    let memory = series(&metrics, "process_resident_memory_bytes");
    let rss: Vec<u64> = memory["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_f64().unwrap_or(0.0) as u64)
        .collect();
    assert!(rss.iter().all(|b| *b > 1 << 20), "{rss:?}");

    // The memory check read those samples, and says where they came from.
    let samples: Vec<u64> = metrics["measured"]["memory"]["samples"]
        .as_array()
        .expect("memory samples")
        .iter()
        .map(|s| s["rss_bytes"].as_u64().expect("bytes"))
        .collect();
    assert_eq!(samples, rss);
    let check = metrics["verdict"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "memory"))
        .expect("the memory check");
    assert_eq!(check["skipped"], false, "{check}");
    let details = check["details"].to_string();
    assert!(
        details.contains(&format!(
            "{metrics_url} (process_resident_memory_bytes, scraped every 1s by --server-metrics-url)"
        )),
        "{details}"
    );

    // Charted: one chart a series, each with marks, on the run's time axis.
    let html = std::fs::read_to_string(r.report()).expect("the report");
    let section = server_section(&html);
    assert!(section.contains(&metrics_url), "no Server section:\n{html}");
    assert_eq!(section.matches("<svg").count(), 6, "{section}");
    for title in [
        "CPU",
        "Memory (RSS)",
        "Requests in flight",
        "DB pool in use",
    ] {
        assert!(
            section.contains(&format!("<h3>{title} ")),
            "no {title} chart"
        );
    }
    for svg in section.split("<svg").skip(1) {
        assert!(
            svg.contains(r#"class="mark"#),
            "a chart without marks: {svg}"
        );
    }
}

#[test]
fn a_server_without_the_endpoint_gets_a_note_and_the_run_passes() {
    let files = FileServer::start();
    let refused = format!("http://127.0.0.1:{}/metrics", free_port());
    let cases = [
        (
            format!("{}/metrics", files.url),
            "it answered 404 Not Found",
        ),
        // A directory listing: a page, not Prometheus text.
        (
            format!("{}/", files.url),
            "its answer is not Prometheus text",
        ),
        (refused, "the connection was refused"),
    ];
    for (url, why) in cases {
        let r = run(&Args::custom(2, 2, "3s").tags("health").with(&[
            "--server-metrics-url",
            &url,
            "--server-metrics-interval",
            "1s",
        ]));
        assert_eq!(r.code, 0, "{url}: {}", r.output());
        let note = format!("Note: the server's metrics at {url} could not be read: {why}");
        assert!(r.stdout.contains(&note), "{note}\n{}", r.stdout);
        // Said once, however many scrapes failed.
        assert_eq!(
            r.stdout.matches("could not be read").count(),
            1,
            "{}",
            r.stdout
        );
        let metrics = r.metrics();
        let server = &metrics["measured"]["server_metrics"];
        assert_eq!(server["scrapes"], 0, "{server}");
        assert!(server["failed_scrapes"].as_u64() >= Some(2), "{server}");
        let html = std::fs::read_to_string(r.report()).expect("the report");
        let section = server_section(&html);
        assert!(
            section.contains(&format!("no scrape of {url} worked")) && section.contains(why),
            "{section}"
        );
        assert!(!section.contains("<svg"), "{section}");
    }
}

#[test]
fn builtin_scrapes_the_built_in_servers_metrics_and_bad_options_are_refused() {
    let r = run(&Args::custom(2, 2, "3s").tags("health").with(&[
        "--server-metrics-url",
        "builtin",
        "--server-metrics-interval",
        "1s",
    ]));
    assert_eq!(r.code, 0, "{}", r.output());
    let metrics = r.metrics();
    let server = &metrics["measured"]["server_metrics"];
    assert!(
        server["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/metrics")),
        "{server}"
    );
    assert!(server["scrapes"].as_u64() >= Some(2), "{server}");
    assert!(series(&metrics, "lva_db_pool_in_use")["found"].as_u64() >= Some(2));
    // The built-in server's memory is still read from /proc, more often.
    let source = metrics["measured"]["memory"]["source"]
        .as_str()
        .unwrap_or("");
    assert!(source.starts_with("pid "), "{source}");

    for (words, says) in [
        (
            vec![
                "--server-metrics-url",
                "builtin",
                "--host",
                "http://127.0.0.1:9",
            ],
            "--server-metrics-url builtin names the built-in server's /metrics",
        ),
        (
            vec!["--server-metrics-url", "not a url"],
            "--server-metrics-url \"not a url\"",
        ),
        (
            vec![
                "--server-metrics-url",
                "builtin",
                "--server-metric",
                "a{b=c}",
            ],
            "--server-metric \"a{b=c}\": give a series name",
        ),
    ] {
        let r = run(&Args::custom(1, 1, "2s").with(&words));
        assert_eq!(r.code, 2, "{words:?}: {}", r.output());
        assert!(r.stderr.contains(says), "{says}\n{}", r.stderr);
        assert!(r.files().is_empty(), "a refused run wrote {:?}", r.files());
    }
}
