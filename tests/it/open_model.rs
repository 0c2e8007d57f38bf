//! The open model end to end: arrivals at a rate against the built-in reference server,
//! timed from their intended start, with the pool's limits and the stall a closed model
//! hides.

use crate::support::{Args, run};
use serde_json::Value;

fn p95(metrics: &Value) -> f64 {
    metrics["response_times"]["p95"].as_f64().expect("a P95")
}

#[test]
fn an_open_model_starts_every_planned_arrival_at_its_time() {
    let r = run(&Args::preset("custom")
        .tags("health")
        .with(&["--rate", "20", "--duration", "5s"]));
    assert_eq!(r.code, 0, "{}", r.output());
    assert!(
        r.stdout.contains("--- Open Model (arrivals) ---"),
        "{}",
        r.stdout
    );
    let m = r.metrics();
    // 20/s for 5 s plans 100 arrivals, one every 50 ms from 25 ms in.
    crate::support::assert_arrivals_started(&m, "20/s for 5s", 100);
    let open = &m["open_model"];
    assert_eq!(open["dropped_arrivals"], 0, "{open}");
    assert_eq!(open["schedule_completed"], true, "{open}");
    // Every arrival is one health check here.
    let health = r.request("GET /health").expect("health row");
    assert_eq!(health["successes"], 100, "{health}");
    // The service time is shown beside the time from the intended start, never above it.
    let service = open["service_times"]["p95"].as_f64().expect("service P95");
    assert!(service <= p95(&m) + 0.01, "{service} > {}", p95(&m));
}

#[test]
fn a_closed_model_hides_a_stall_that_the_open_model_reports() {
    // The server stops answering for 1 s of every 4.
    let stall = "--fault-stall-ms 1000 --fault-stall-period-ms 4000";
    // Closed: two users without waits. Each waits out a stall once, then goes on fast:
    // the stall is a handful of requests among thousands.
    let closed = run(&Args::custom(2, 2, "9s")
        .tags("health")
        .builtin(stall)
        .with(&["--no-wait"]));
    let closed_p95 = p95(&closed.metrics());
    assert!(
        closed_p95 < 100.0,
        "closed P95 {closed_p95}\n{}",
        closed.output()
    );
    // Open: 30 arrivals a second whatever the server does: a quarter of them meet a stall.
    let open = run(
        &Args::preset("custom").tags("health").builtin(stall).with(&[
            "--rate",
            "30",
            "--duration",
            "8s",
            "--max-users",
            "80",
            "--pre-started-users",
            "60",
        ]),
    );
    let m = open.metrics();
    let open_p95 = p95(&m);
    assert!(open_p95 > 500.0, "open P95 {open_p95}\n{}", open.output());
    assert_eq!(open.code, 1, "{}", open.output());
    assert_eq!(m["targets"]["p95"]["passed"], false);
    assert!(
        open.stdout
            .contains("timed from each arrival's intended start")
    );
}

#[test]
fn arrivals_that_find_the_pool_busy_are_dropped_and_fail_the_run() {
    // Every answer takes 300 ms; 20 arrivals a second need 6 users, the pool has 2.
    let r = run(&Args::preset("custom")
        .tags("health")
        .builtin("--fault-latency-ms 300")
        .with(&[
            "--rate",
            "20",
            "--duration",
            "4s",
            "--max-users",
            "2",
            "--pre-started-users",
            "2",
        ]));
    assert_eq!(r.code, 1, "{}", r.output());
    let m = r.metrics();
    let open = &m["open_model"];
    let dropped = open["dropped_arrivals"].as_u64().expect("dropped");
    let planned = open["planned_arrivals"].as_u64().expect("planned");
    assert!(dropped > planned / 2, "{open}");
    assert_eq!(
        open["started_arrivals"].as_u64().expect("started") + dropped,
        planned
    );
    assert_eq!(m["targets"]["arrivals"]["passed"], false);
    assert!(r.stdout.contains("raise --max-users"), "{}", r.stdout);
}

#[test]
fn a_ramping_rate_plans_the_area_under_its_stages() {
    // 0 → 20/s over 2 s (20 arrivals), then 20/s for 2 s (40).
    let r = run(&Args::preset("custom").tags("health").with(&[
        "--rate-stages",
        "2s:20,2s:20",
        "--arrivals",
        "poisson",
    ]));
    assert_eq!(r.code, 0, "{}", r.output());
    let open = &r.metrics()["open_model"];
    let planned = open["planned_arrivals"].as_u64().expect("planned");
    // A Poisson process of mean 60: six standard deviations either way.
    assert!((15..=110).contains(&planned), "{open}");
    assert_eq!(open["dropped_arrivals"], 0, "{open}");
}

#[test]
fn open_model_mistakes_are_refused_before_any_traffic() {
    for (words, says) in [
        (
            vec!["--rate", "0", "--duration", "5s"],
            "--rate must be above 0",
        ),
        (
            vec!["--rate", "5", "--users", "3", "--duration", "5s"],
            "--max-users",
        ),
        (
            vec!["--rate-stages", "10s:5", "--duration", "5s"],
            "drop --duration",
        ),
        (
            vec!["--max-users", "5", "--duration", "5s", "--users", "2"],
            "--rate",
        ),
        (
            vec!["--start-rate", "3", "--duration", "5s", "--users", "2"],
            "--rate-stages",
        ),
        (vec!["--rate-stages", "5s"], "DURATION:RATE"),
        (
            vec![
                "--rate",
                "5",
                "--duration",
                "5s",
                "--max-users",
                "2",
                "--pre-started-users",
                "3",
            ],
            "raise --max-users",
        ),
    ] {
        let r = run(&Args::preset("custom").tags("health").with(&words));
        assert_eq!(r.code, 2, "{words:?}: {}", r.output());
        assert!(r.stderr.contains(says), "{words:?}: {}", r.stderr);
        assert!(!r.stdout.contains("Open Model"), "{words:?} ran");
    }
}
