//! Distributed runs under the tool's own manager, end to end: a manager and worker
//! processes of the real binary on 127.0.0.1 speaking Locust's protocol, the manager
//! starting its built-in reference server, with short runs. (The same workers under a
//! stock Locust master: `tests/locust.rs`.)

use crate::support::process::{
    Proc, assert_study_run, example_bin, logged_requests, master_and_workers_end, reference_server,
    serial,
};
use crate::support::{Args, BIN};
use lva_loadtest::measure::{Histogram, MeasuredRun, RequestStats};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A manager on a free loopback port, and the directory its reports go to.
struct Run {
    dir: tempfile::TempDir,
    manager: Proc,
    port: String,
}

impl Run {
    fn manager(workers: u32, args: &Args) -> Run {
        Run::manager_of(Path::new(BIN), workers, args)
    }

    /// A manager of `program` (the tool, or a program with user classes of its own).
    fn manager_of(program: &Path, workers: u32, args: &Args) -> Run {
        Run::manager_at(program, workers, args, "127.0.0.1:0")
    }

    /// A manager listening on `bind`.
    fn manager_at(program: &Path, workers: u32, args: &Args, bind: &str) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("reports");
        let expect = workers.to_string();
        let mut all = vec![
            "--manager",
            "--expect-workers",
            &expect,
            "--manager-bind",
            bind,
            "--output",
            output.to_str().expect("utf-8 path"),
        ];
        all.extend(args.words().iter().map(String::as_str));
        let manager = Proc::spawn_program("manager", program, &all, &[]);
        let line = manager.wait_for_line("Manager listening on tcp://", Duration::from_secs(30));
        let port = line
            .split("tcp://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("port in the listening line")
            .to_string();
        Run { dir, manager, port }
    }

    /// A worker named `name`, logging every request next to the reports.
    fn worker(&self, name: &str, env: &[(&str, &str)]) -> Proc {
        self.worker_of(Path::new(BIN), name, env)
    }

    fn worker_of(&self, program: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
        worker_at(program, &self.port, name, &self.request_log(name), env, &[])
    }

    /// A worker of the tool given `extra` options.
    fn worker_with(&self, name: &str, extra: &[&str]) -> Proc {
        worker_at(
            Path::new(BIN),
            &self.port,
            name,
            &self.request_log(name),
            &[],
            extra,
        )
    }

    fn request_log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.requests.json"))
    }

    fn metrics_path(&self) -> Option<PathBuf> {
        crate::support::file_ending(&self.dir.path().join("reports"), "_metrics.json")
    }

    fn metrics(&self) -> Value {
        crate::support::metrics_in(&self.dir.path().join("reports"), &self.manager.output())
    }
}

fn measured(metrics: &Value) -> MeasuredRun {
    serde_json::from_value(metrics["measured"].clone()).expect("measured run")
}

fn all_requests(run: &MeasuredRun) -> u64 {
    run.requests.iter().map(|r| r.total()).sum()
}

/// The number after `word` in the line holding it: `measured 52 requests` → 52.
fn number_after(line: &str, word: &str) -> f64 {
    line.split(word)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|n| n.trim_end_matches("/s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{word}' in '{line}'"))
}

/// Fails with `proc`'s output unless `text` (one of its outputs) holds `needle`.
fn assert_has(text: &str, needle: &str, proc: &Proc) {
    assert!(
        text.contains(needle),
        "'{needle}' missing\n{}",
        proc.output()
    );
}

/// A worker of `program` for the manager on `port`, logging every request to `log`, with
/// `extra` options.
fn worker_at(
    program: &Path,
    port: &str,
    name: &str,
    log: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Proc {
    let mut args = vec![
        "--worker",
        "--manager-port",
        port,
        "--worker-name",
        name,
        "--worker-timeout",
        "20s",
        "--request-log",
        log.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    Proc::spawn_program(name, program, &args, env)
}

/// A loopback port nothing listens on (it was free a moment ago).
fn unused_port() -> u16 {
    crate::support::free_port()
}

/// A custom run of `users` users doing health checks only, all started in the first second.
fn health_only(users: u32, duration: &str) -> Args {
    Args::custom(users, users, duration).tags("health")
}

/// Ten users of every class for 8 s.
fn quick() -> Args {
    Args::custom(10, 5, "8s")
}

#[test]
fn three_workers_split_the_users_and_merge_exactly() {
    let _one = serial();
    let mut run = Run::manager(3, &quick());
    let mut workers: Vec<Proc> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| run.worker(name, &[]))
        .collect();
    let code = master_and_workers_end(&mut run.manager, &mut workers);
    let metrics = run.metrics();
    assert_eq!(code, 0, "{}", run.manager.output());
    assert_eq!(metrics["verdict"]["exit_code"], 0);

    // Totals: the merged run counts exactly what the workers counted themselves.
    let merged = measured(&metrics);
    let own: f64 = workers
        .iter()
        .map(|w| number_after(&w.wait_for_line(" measured ", Duration::ZERO), "measured"))
        .sum();
    assert_eq!(
        all_requests(&merged) as f64,
        own,
        "{}",
        run.manager.output()
    );
    let windowed: u64 = merged
        .windows
        .iter()
        .flat_map(|w| w.requests.values())
        .map(|r| r.total())
        .sum();
    assert_eq!(windowed, all_requests(&merged));
    assert_eq!(merged.max_users, 10);

    // Percentiles: the merged histograms equal histograms of every request in the
    // workers' own request logs, so every percentile equals the one computed over all.
    let logs: Vec<PathBuf> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| run.request_log(n))
        .collect();
    let from_logs = logged_requests(&logs);
    // The logs hold every answer: the judged ones and, kept apart in the run, the 429s and
    // the expected errors.
    let every_answer = |r: &RequestStats| {
        let mut all = r.times.clone();
        all.merge(&r.rate_limited_times);
        all.merge(&r.expected_error_times);
        all
    };
    let merged_rows: BTreeMap<String, Histogram> = merged
        .requests
        .iter()
        .map(|r| (r.key(), every_answer(r)))
        .collect();
    assert_eq!(
        merged_rows.keys().collect::<Vec<_>>(),
        from_logs.keys().collect::<Vec<_>>()
    );
    let mut everything = Histogram::default();
    for (key, logged) in &from_logs {
        assert_eq!(&merged_rows[key], logged, "{key}");
        everything.merge(logged);
    }
    let http = merged.combined(lva_loadtest::measure::RequestKind::Http);
    let mut all_merged = every_answer(&http);
    all_merged.merge(&every_answer(
        &merged.combined(lva_loadtest::measure::RequestKind::WebSocket),
    ));
    for p in [50.0, 90.0, 95.0, 99.0] {
        assert_eq!(
            all_merged.percentile_us(p),
            everything.percentile_us(p),
            "p{p}"
        );
    }
    let p95 = metrics["response_times"]["p95"].as_f64().unwrap_or(-1.0);
    assert_eq!(p95, http.times.percentile_ms(95.0));

    let distributed = &metrics["extra"]["distributed"];
    assert_eq!(distributed["degraded"], false);
    assert_eq!(distributed["expected_workers"], 3);
    let statuses: Vec<&str> = distributed["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["delivered"; 3]);
    assert_eq!(metrics["targets"]["workers"]["passed"], true);
}

#[test]
fn an_open_models_rate_is_split_over_the_workers_and_its_arrivals_merge_exactly() {
    let _one = serial();
    let args = Args::preset("custom")
        .tags("health")
        .with(&["--rate", "20", "--duration", "5s"]);
    let mut run = Run::manager(2, &args);
    let mut workers: Vec<Proc> = ["w1", "w2"].iter().map(|n| run.worker(n, &[])).collect();
    let code = master_and_workers_end(&mut run.manager, &mut workers);
    let metrics = run.metrics();
    assert_eq!(code, 0, "{}", run.manager.output());
    // 20/s for 5 s is 100 arrivals, 50 on each worker, each one health check.
    crate::support::assert_arrivals_started(&metrics, "20/s for 5s over 2 workers", 100);
    let open = &metrics["open_model"];
    assert_eq!(open["dropped_arrivals"], 0, "{open}");
    assert_eq!(open["schedule_completed"], true, "{open}");
    let logs: Vec<PathBuf> = ["w1", "w2"].iter().map(|n| run.request_log(n)).collect();
    for log in &logs {
        let rows = logged_requests(std::slice::from_ref(log));
        assert_eq!(rows["GET /health"].count, 50, "{}", log.display());
    }
    let health = crate::support::request_row(&metrics, "GET /health").expect("health row");
    assert_eq!(health["successes"], 100, "{health}");
    let merged = measured(&metrics);
    // The start lags merge as the workers measured them: one per arrival.
    let arrivals = merged.arrivals.expect("arrivals");
    assert_eq!(arrivals.lag.count, 100);
    // The default pool (2 x the peak rate, 40 users) is split, 20 each.
    assert_eq!(arrivals.max_users, 40);
    // The manager ends the run once both workers' arrivals are over, not at a single
    // run's upper bound (ramp, ready wait, 5 s, 5 s more).
    assert_has(
        &run.manager.stdout(),
        "Every worker's arrivals are over",
        &run.manager,
    );
}

/// Scrapes `port`'s `/metrics` every 200 ms until `done`; every body it got.
fn scrape_until(port: u16, done: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<String> {
    let mut bodies = Vec::new();
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some((200, body)) = crate::support::http_get(port, "/metrics") {
            bodies.push(body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bodies
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches = (rest.is_empty() || rest.starts_with('{'))
            && labels.iter().all(|label| rest.contains(label));
        matches.then(|| value.parse().ok()).flatten()
    })
}

fn in_phase(body: &str, phase: &str) -> bool {
    sample(body, "lva_loadtest_phase", &[&format!("phase=\"{phase}\"")]) == Some(1.0)
}

#[test]
fn the_manager_serves_its_workers_figures_merged_and_a_worker_its_own() {
    let _one = serial();
    let (manager_port, worker_port) = (crate::support::free_port(), crate::support::free_port());
    let bind = |port: u16| format!("127.0.0.1:{port}");
    let args = health_only(4, "6s").with(&[
        "--metrics-bind",
        &bind(manager_port),
        "--metrics-linger",
        "10s",
    ]);
    let mut run = Run::manager(2, &args);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scrapers: Vec<_> = [manager_port, worker_port]
        .into_iter()
        .map(|port| {
            let done = done.clone();
            std::thread::spawn(move || scrape_until(port, done))
        })
        .collect();
    let own = [
        "--metrics-bind",
        &bind(worker_port),
        "--metrics-linger",
        "10s",
    ];
    let mut workers = vec![run.worker_with("w1", &own), run.worker("w2", &[])];
    let code = master_and_workers_end(&mut run.manager, &mut workers);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut scraped = scrapers.into_iter().map(|s| s.join().expect("scraper"));
    let (manager, worker) = (
        scraped.next().expect("manager"),
        scraped.next().expect("w1"),
    );
    assert_eq!(code, 0, "{}", run.manager.output());
    let metrics = run.metrics();
    let successes = |body: &str| {
        let labels = ["request=\"/health\"", "outcome=\"success\""];
        sample(body, "lva_loadtest_requests_total", &labels)
    };
    let health = crate::support::request_row(&metrics, "GET /health").expect("health row");
    let json_successes = health["successes"].as_f64().expect("successes");

    // During the run the manager served its workers' figures merged, growing.
    let running: Vec<f64> = manager
        .iter()
        .filter(|b| in_phase(b, "running"))
        .filter_map(|b| successes(b))
        .collect();
    assert!(
        running.iter().any(|n| *n > 0.0 && *n < json_successes),
        "no live figure below the final {json_successes}: {running:?}"
    );
    // Its last scrape is the final figures: the metrics JSON's, both workers' together.
    let last = manager.last().expect("a final scrape");
    assert!(in_phase(last, "ended"), "{last}");
    assert_eq!(successes(last), Some(json_successes));
    // The worker with its own endpoint served its own share of them.
    let own_last = worker.last().expect("the worker's final scrape");
    assert!(in_phase(own_last, "ended"), "{own_last}");
    let w1 = logged_requests(&[run.request_log("w1")]);
    assert_eq!(successes(own_last), Some(w1["GET /health"].count as f64));
    assert!(
        w1["GET /health"].count as f64 > 0.0 && (w1["GET /health"].count as f64) < json_successes
    );
}

/// Runs 6 users on three workers for 12 s, does `to_w2` to worker w2 once the run is
/// going, and returns the run, its exit code and the other two workers.
fn run_losing_w2(extra: &[&str], to_w2: i32) -> (Run, i32, Vec<Proc>) {
    let mut run = Run::manager(3, &health_only(6, "12s").with(extra));
    let mut w1 = run.worker("w1", &[]);
    let w2 = run.worker("w2", &[]);
    let mut w3 = run.worker("w3", &[]);
    run.manager
        .wait_for_line("Started 3 workers", Duration::from_secs(60));
    // Some progress reached the manager before the worker goes.
    std::thread::sleep(Duration::from_secs(3));
    w2.signal(to_w2);
    let code = run.manager.wait(Duration::from_secs(120));
    drop(w2);
    for w in [&mut w1, &mut w3] {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
    }
    (run, code, vec![w1, w3])
}

fn assert_degraded(run: &Run, survivors: &[Proc], accepted: bool) {
    let metrics = run.metrics();
    let distributed = &metrics["extra"]["distributed"];
    assert_eq!(distributed["degraded"], true, "{distributed}");
    assert_eq!(distributed["accept_degraded"], accepted);
    assert_eq!(distributed["lost_workers"], serde_json::json!(["w2"]));
    let w2 = distributed["workers"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["name"] == "w2"))
        .expect("w2 listed");
    assert_eq!(w2["status"], "lost");
    assert!(w2["reported_requests"].as_u64().is_some(), "{w2}");
    let check = &metrics["targets"]["workers"];
    assert_eq!(check["passed"], accepted, "{check}");
    assert!(
        check["actual"].as_str().unwrap_or("").contains("lost: w2"),
        "{check}"
    );
    // The figures are the survivors', exactly.
    let own: f64 = survivors
        .iter()
        .map(|w| number_after(&w.wait_for_line(" measured ", Duration::ZERO), "measured"))
        .sum();
    assert_eq!(all_requests(&measured(&metrics)) as f64, own);
}

#[test]
fn a_worker_killed_mid_run_is_reported_and_the_run_completes_degraded() {
    let _one = serial();
    let (run, code, survivors) = run_losing_w2(&[], libc::SIGKILL);
    assert_eq!(code, 1, "{}", run.manager.output());
    assert_has(&run.manager.stderr(), "lost worker w2", &run.manager);
    assert_has(
        &run.manager.stdout(),
        "[FAIL] Workers Reporting",
        &run.manager,
    );
    assert_degraded(&run, &survivors, false);
}

#[test]
fn a_silent_worker_is_noticed_and_accept_degraded_passes_the_run() {
    let _one = serial();
    // SIGSTOP: the connection stays open but the worker says nothing any more.
    let (run, code, survivors) = run_losing_w2(&["--accept-degraded"], libc::SIGSTOP);
    assert_eq!(code, 0, "{}", run.manager.output());
    assert_has(&run.manager.stderr(), "no message for 5 s", &run.manager);
    assert_degraded(&run, &survivors, true);
}

#[test]
fn a_fingerprint_mismatch_is_refused_before_any_traffic() {
    let _one = serial();
    let mut run = Run::manager(2, &quick());
    let mut w1 = run.worker("w1", &[]);
    run.manager
        .wait_for_line("Worker w1 joined", Duration::from_secs(30));
    let mut other = run.worker("w2", &[("LVA_LOADTEST_FINGERPRINT_SALT", "other")]);
    assert_eq!(run.manager.wait(Duration::from_secs(60)), 2);
    assert_eq!(other.wait(Duration::from_secs(30)), 2);
    assert_eq!(w1.wait(Duration::from_secs(30)), 2);
    let differs = format!(
        "tool version: master {v}, worker {v}+other",
        v = env!("CARGO_PKG_VERSION")
    );
    assert_has(&run.manager.stderr(), &differs, &run.manager);
    assert_has(&run.manager.stderr(), "worker w2", &run.manager);
    assert_has(&other.stderr(), &differs, &other);
    assert_has(&w1.stderr(), "the run is called off", &w1);
    assert!(run.metrics_path().is_none(), "no run, no reports");
    assert!(logged_requests(&[run.request_log("w1")]).is_empty());
}

#[test]
fn a_missing_worker_is_a_configuration_error() {
    let _one = serial();
    let mut run = Run::manager(2, &quick().with(&["--worker-timeout", "3s"]));
    let mut w1 = run.worker("w1", &[]);
    assert_eq!(run.manager.wait(Duration::from_secs(60)), 2);
    assert_has(
        &run.manager.stderr(),
        "only 1 of 2 workers joined within 3s",
        &run.manager,
    );
    assert_eq!(w1.wait(Duration::from_secs(30)), 2, "{}", w1.output());
    assert!(run.metrics_path().is_none());
}

#[test]
fn ctrl_c_on_the_manager_stops_every_worker_and_late_workers_are_refused() {
    let _one = serial();
    let mut run = Run::manager(3, &health_only(6, "2m"));
    let mut workers: Vec<Proc> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| run.worker(name, &[]))
        .collect();
    run.manager
        .wait_for_line("Started 3 workers", Duration::from_secs(60));
    let mut late = run.worker("late", &[]);
    assert_eq!(late.wait(Duration::from_secs(30)), 2, "{}", late.output());
    assert_has(&late.stderr(), "already started", &late);

    std::thread::sleep(Duration::from_secs(3));
    run.manager.signal(libc::SIGINT);
    for w in &mut workers {
        assert_eq!(w.wait(Duration::from_secs(60)), 0, "{}", w.output());
        assert_has(&w.stdout(), "the master stopped the run", w);
    }
    let code = run.manager.wait(Duration::from_secs(60));
    let metrics = run.metrics();
    assert_eq!(
        code,
        metrics["verdict"]["exit_code"].as_i64().unwrap_or(-1) as i32
    );
    assert_eq!(metrics["test_summary"]["interrupted"], true);
    let seconds = metrics["test_summary"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(seconds < 60.0, "ran {seconds} s of 120");
    assert_eq!(metrics["extra"]["distributed"]["degraded"], false);
}

#[test]
fn workers_that_lose_their_manager_stop_their_users_and_exit_non_zero() {
    let _one = serial();
    // A server of its own, so that nothing is left behind when the manager is killed.
    let (server, host) = reference_server();
    let run = Run::manager(2, &health_only(4, "2m").with(&["--host", &host]));
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|name| run.worker(name, &[]))
        .collect();
    run.manager
        .wait_for_line("Started 2 workers", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    // Frozen: its connections stay open, but it says nothing any more.
    run.manager.signal(libc::SIGSTOP);
    for w in &mut workers {
        assert_eq!(w.wait(Duration::from_secs(60)), 1, "{}", w.output());
        assert_has(&w.stderr(), "lost the master", w);
        assert_has(&w.stderr(), "stopping the users", w);
    }
    drop(run);
    drop(server);
}

#[test]
fn custom_user_classes_run_on_the_managers_workers_and_a_worker_without_them_is_refused() {
    let _one = serial();
    let example = example_bin("custom_user");
    let study = Args::custom(4, 4, "8s").tags("study");

    // The plain tool lacks StudyUser: refused before any traffic, the class named.
    let mut run = Run::manager_of(&example, 2, &study);
    let mut plain = run.worker("plain", &[]);
    assert_eq!(plain.wait(Duration::from_secs(60)), 2, "{}", plain.output());
    assert_has(
        &plain.stderr(),
        "user class StudyUser: only on the master",
        &plain,
    );
    assert_eq!(run.manager.wait(Duration::from_secs(60)), 2);
    assert!(run.metrics_path().is_none(), "no run, no reports");

    // Workers of the same program run its class, and its requests are merged.
    let mut run = Run::manager_of(&example, 2, &study);
    let mut workers: Vec<Proc> = ["s1", "s2"]
        .iter()
        .map(|n| run.worker_of(&example, n, &[]))
        .collect();
    let code = master_and_workers_end(&mut run.manager, &mut workers);
    assert_eq!(code, 0, "{}", run.manager.output());
    assert_study_run(&run.metrics());
}

#[test]
fn a_worker_started_before_its_manager_joins_once_the_manager_listens() {
    let _one = serial();
    let port = unused_port().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    // The worker first: nothing listens yet, so it keeps trying (and says so).
    let mut worker = worker_at(
        Path::new(BIN),
        &port,
        "early",
        &dir.path().join("early.requests.json"),
        &[],
        &[],
    );
    worker.wait_for_line("Waiting for the master", Duration::from_secs(30));
    let bind = format!("127.0.0.1:{port}");
    let mut run = Run::manager_at(Path::new(BIN), 1, &health_only(2, "3s"), &bind);
    assert_eq!(run.port, port);
    let code = master_and_workers_end(&mut run.manager, std::slice::from_mut(&mut worker));
    assert_eq!(code, 0, "{}", run.manager.output());
    assert_has(&worker.stdout(), "Joined the master", &worker);
    let metrics = run.metrics();
    assert_eq!(
        metrics["extra"]["distributed"]["workers"][0]["status"],
        "delivered"
    );
}

#[test]
fn a_manager_address_in_use_is_a_configuration_error_that_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address");
    let bind = address.to_string();
    let mut manager = Proc::spawn_program(
        "manager",
        Path::new(BIN),
        &[
            "--manager",
            "--manager-bind",
            &bind,
            "--host",
            "http://127.0.0.1:9",
            "--skip-preflight",
        ],
        &[],
    );
    assert_eq!(
        manager.wait(Duration::from_secs(60)),
        2,
        "{}",
        manager.output()
    );
    assert_has(
        &manager.stderr(),
        &format!("cannot listen on tcp://{bind}: "),
        &manager,
    );
    assert_has(&manager.stderr(), "choose another --manager-bind", &manager);
}
