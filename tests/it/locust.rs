//! lva-loadtest workers under a stock Locust master (the pinned Locust of
//! `scripts/test-requirements.txt`, in the virtual environment `scripts/test_venv.sh`
//! makes), with the shipped `scripts/locust_master.py`, against the reference server, all
//! on 127.0.0.1. And the bytes of every message a worker sends, read and written again by
//! Python's msgpack.

use crate::support::free_port;
use crate::support::process::{
    Proc, assert_study_run, example_bin, logged_requests, master_and_workers_end, python_tools,
    reference_server, serial,
};
use lva_loadtest::distributed::delivery::Delivery;
use lva_loadtest::distributed::fingerprint::Fingerprint;
use lva_loadtest::distributed::locust_stats::{LocustStats, round_ms};
use lva_loadtest::measure::{
    Histogram, MeasuredRun, Observation, Outcome, RequestKind, RequestStats,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOOL: &str = env!("CARGO_BIN_EXE_lva-loadtest");

/// A Locust master with the shipped master file, its CSV files and the exact runs in a
/// temporary folder; `tool` is the program it declares the classes of.
struct Master {
    proc: Proc,
    dir: tempfile::TempDir,
    port: String,
}

impl Master {
    fn start(tool: &Path, host: &str, args: &[String]) -> Master {
        Master::start_with(tool, host, args, "")
    }

    /// A master whose `--lva-args` add `lva_args` to the reports' folder.
    fn start_with(tool: &Path, host: &str, args: &[String], lva_args: &str) -> Master {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port().to_string();
        let path = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
        let (results, csv, reports) = (path("results"), path("locust"), path("reports"));
        let output = format!("--output {reports} {lva_args}");
        let mut all = vec![
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/locust_master.py"),
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            &port,
            "--host",
            host,
            "--csv",
            &csv,
            "--lva-results",
            &results,
            "--lva-args",
            &output,
        ];
        all.extend(args.iter().map(String::as_str));
        let tool = tool.to_string_lossy().into_owned();
        let proc = Proc::spawn_program(
            "locust master",
            &python_tools().join("bin/locust"),
            &all,
            &[("LVA_LOADTEST", tool.as_str()), ("PYTHONUNBUFFERED", "1")],
        );
        // Locust says so once the locustfile (and the tool it asks) have answered.
        proc.wait_for_log("Starting Locust", Duration::from_secs(60));
        Master { proc, dir, port }
    }

    fn worker(&self, program: &Path, name: &str, env: &[(&str, &str)]) -> Proc {
        let log = self.request_log(name);
        Proc::spawn_program(
            name,
            program,
            &[
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                &self.port,
                "--worker-name",
                name,
                "--worker-timeout",
                "60s",
                "--request-log",
                log.to_str().expect("utf-8 path"),
            ],
            env,
        )
    }

    fn request_log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.requests.json"))
    }

    /// The folder of the (last) test's exact runs.
    fn results(&self) -> PathBuf {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("results"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        runs.sort();
        runs.pop()
            .unwrap_or_else(|| panic!("no results folder\n{}", self.proc.output()))
    }

    fn deliveries(&self) -> Vec<Delivery> {
        let mut found: Vec<Delivery> = std::fs::read_dir(self.results())
            .expect("results")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "lvarun"))
            .map(|p| Delivery::from_bytes(&std::fs::read(p).expect("read")).expect("delivery"))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    fn metrics(&self) -> Value {
        crate::support::metrics_in(&self.dir.path().join("reports"), &self.proc.output())
    }

    /// Locust's CSV of one kind (`stats`, `stats_history`) as rows of named columns.
    fn csv(&self, which: &str) -> Vec<BTreeMap<String, String>> {
        let path = self.dir.path().join(format!("locust_{which}.csv"));
        let mut reader = csv::Reader::from_path(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.proc.output()));
        let headers = reader.headers().expect("headers").clone();
        reader
            .records()
            .map(|r| {
                let r = r.expect("row");
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }
}

/// A headless Locust run: `users` at `rate` a second for `time`, once `workers` have
/// joined, doing the tasks of `tags`.
fn headless(users: u32, rate: u32, time: &str, workers: u32, tags: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = [
        "--headless",
        "-u",
        &users.to_string(),
        "-r",
        &rate.to_string(),
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    words.extend([
        "-t".into(),
        time.into(),
        "--expect-workers".into(),
        workers.to_string(),
    ]);
    words.push("-T".into());
    words.extend(tags.iter().map(|t| t.to_string()));
    words
}

fn measured(metrics: &Value) -> MeasuredRun {
    serde_json::from_value(metrics["measured"].clone()).expect("measured run")
}

/// Per request key, what the workers' own ledgers counted (their deliveries).
fn ledgers(deliveries: &[Delivery]) -> BTreeMap<String, RequestStats> {
    let mut all: BTreeMap<String, RequestStats> = BTreeMap::new();
    for d in deliveries {
        for row in &d.measured.requests {
            all.entry(row.key()).or_default().merge(row);
        }
    }
    all
}

fn assert_has(text: &str, needle: &str, proc: &Proc) {
    assert!(
        text.contains(needle),
        "'{needle}' missing\n{}",
        proc.output()
    );
}

#[test]
fn a_locust_master_drives_the_workers_and_the_merged_verdict_is_exact() {
    let _one = serial();
    let (_server, url) = reference_server();
    let tool = Path::new(TOOL);
    let mut master = Master::start(tool, &url, &headless(9, 3, "12s", 3, &["health", "stats"]));
    let names = ["w1", "w2", "w3"];
    let mut workers: Vec<Proc> = names.iter().map(|n| master.worker(tool, n, &[])).collect();
    let code = master.proc.wait(Duration::from_secs(120));
    for w in &mut workers {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
        assert_has(&w.stdout(), "The master said quit", w);
    }
    let metrics = master.metrics();
    // The headless master's exit code is the exact verdict's.
    assert_eq!(code, 0, "{}", master.proc.output());
    assert_eq!(metrics["verdict"]["exit_code"], 0);
    assert_has(
        &master.proc.stdout(),
        "[PASS] Workers Reporting: 3 of 3 delivered",
        &master.proc,
    );

    // Locust's CSV counts what the workers' own ledgers counted, request name by name.
    let deliveries = master.deliveries();
    assert_eq!(deliveries.len(), 3);
    let ledgers = ledgers(&deliveries);
    let csv: BTreeMap<String, (u64, u64)> = master
        .csv("stats")
        .into_iter()
        .filter(|row| row["Name"] != "Aggregated")
        .map(|row| {
            let number = |c: &str| row[c].parse::<u64>().expect("a count");
            (
                format!("{} {}", row["Type"], row["Name"]),
                (number("Request Count"), number("Failure Count")),
            )
        })
        .collect();
    let ours: BTreeMap<String, (u64, u64)> = ledgers
        .iter()
        .map(|(k, r)| (k.clone(), (r.total(), r.failures + r.rate_limited)))
        .collect();
    assert_eq!(csv, ours, "{}", master.proc.output());
    assert!(ours["GET /health"].0 > 0 && ours["GET /api/stats"].0 > 0);

    // The merged verdict's histograms are the workers' request logs rebuilt.
    let merged = measured(&metrics);
    let logs: Vec<PathBuf> = names.iter().map(|n| master.request_log(n)).collect();
    let rebuilt = logged_requests(&logs);
    let merged_rows: BTreeMap<String, Histogram> = merged
        .requests
        .iter()
        .map(|r| (r.key(), r.times.clone()))
        .collect();
    assert_eq!(merged_rows, rebuilt);
    assert_eq!(
        metrics["response_times"]["p95"].as_f64(),
        Some(merged.combined(RequestKind::Http).times.percentile_ms(95.0))
    );

    // The master's ramp (3 users a second up to 9) is followed: the users over time pass
    // through the steps, and each worker ran its third.
    assert_eq!(merged.max_users, 9);
    let ramp: Vec<u64> = merged
        .users_over_time
        .iter()
        .map(|s| s.users)
        .take_while(|u| *u < 9)
        .filter(|u| *u > 0)
        .collect();
    assert!(
        !ramp.is_empty(),
        "no step below 9: {:?}",
        merged.users_over_time
    );
    assert!(ramp.windows(2).all(|w| w[0] <= w[1]), "{ramp:?}");
    for d in &deliveries {
        assert_eq!(d.measured.max_users, 3, "{}", d.name);
    }
    let users: Vec<u64> = master
        .csv("stats_history")
        .iter()
        .filter_map(|row| row["User Count"].parse().ok())
        .collect();
    assert!(users.contains(&9), "{users:?}");
    assert!(
        users.iter().any(|u| *u > 0 && *u < 9),
        "the master's history shows no step of the ramp: {users:?}"
    );
    let distributed = &metrics["extra"]["distributed"];
    assert_eq!(distributed["degraded"], false);
    assert_eq!(distributed["master"]["locust_version"], "2.47.0");
}

#[test]
fn an_open_model_under_a_locust_master_splits_its_rate_over_the_expected_workers() {
    let _one = serial();
    let (_server, url) = reference_server();
    let tool = Path::new(TOOL);
    // -u is the pool; the arrivals last their own 5 s inside the master's 15 s.
    let args = headless(8, 8, "15s", 2, &["health"]);
    let mut master = Master::start_with(tool, &url, &args, "--rate 20 --duration 5s");
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|n| master.worker(tool, n, &[]))
        .collect();
    let code = master.proc.wait(Duration::from_secs(120));
    for w in &mut workers {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
    }
    let metrics = master.metrics();
    assert_eq!(code, 0, "{}", master.proc.output());
    crate::support::assert_arrivals_started(&metrics, "20/s for 5s over 2 workers", 100);
    let deliveries = master.deliveries();
    assert_eq!(deliveries.len(), 2);
    for d in &deliveries {
        let a = d.measured.arrivals.as_ref().expect("arrivals");
        assert_eq!((a.planned, a.max_users), (50, 4), "{}", d.name);
    }
    assert_eq!(ledgers(&deliveries)["GET /health"].successes, 100);
}

#[test]
fn a_worker_killed_mid_run_is_missing_for_the_master_and_the_verdict_is_degraded() {
    let _one = serial();
    let (_server, url) = reference_server();
    let tool = Path::new(TOOL);
    let mut master = Master::start(tool, &url, &headless(6, 6, "14s", 3, &["health"]));
    let mut w1 = master.worker(tool, "w1", &[]);
    let w2 = master.worker(tool, "w2", &[]);
    let mut w3 = master.worker(tool, "w3", &[]);
    master
        .proc
        .wait_for_log("All users spawned", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    w2.signal(libc::SIGKILL);
    let code = master.proc.wait(Duration::from_secs(120));
    drop(w2);
    for w in [&mut w1, &mut w3] {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
    }
    let missing = master
        .proc
        .wait_for_log("setting state to missing", Duration::ZERO);
    assert!(missing.contains("w2_"), "{missing}");
    assert_eq!(code, 1, "{}", master.proc.output());
    let metrics = master.metrics();
    let distributed = &metrics["extra"]["distributed"];
    assert_eq!(distributed["degraded"], true, "{distributed}");
    assert_eq!(distributed["lost_workers"], serde_json::json!(["w2"]));
    let check = &metrics["targets"]["workers"];
    assert_eq!(check["passed"], false, "{check}");
    assert!(
        check["actual"]
            .as_str()
            .unwrap_or("")
            .contains("2 of 3 delivered; DEGRADED, lost: w2"),
        "{check}"
    );
    // The figures are the survivors' exactly.
    let survivors = ledgers(&master.deliveries());
    let merged = measured(&metrics);
    assert_eq!(
        merged.requests.iter().map(|r| r.total()).sum::<u64>(),
        survivors.values().map(RequestStats::total).sum::<u64>()
    );
}

/// A small blocking HTTP client for Locust's web API.
fn web(runtime: &tokio::runtime::Runtime, request: reqwest::RequestBuilder) -> Value {
    runtime.block_on(async {
        let answer = request.send().await.expect("the master's web UI answers");
        answer.json().await.unwrap_or(Value::Null)
    })
}

#[test]
fn a_stop_from_the_masters_web_api_stops_the_workers() {
    let _one = serial();
    let (_server, url) = reference_server();
    let tool = Path::new(TOOL);
    let web_port = free_port().to_string();
    let options = [
        "--web-host",
        "127.0.0.1",
        "--web-port",
        &web_port,
        "-T",
        "health",
    ];
    let mut master = Master::start(tool, &url, &options.map(String::from));
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|n| master.worker(tool, n, &[]))
        .collect();
    master
        .proc
        .wait_for_log("2 workers connected", Duration::from_secs(60));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{web_port}");
    // Locust's web UI may come up after its workers are connected: wait until it listens.
    let listening = Instant::now() + Duration::from_secs(30);
    while runtime
        .block_on(client.get(format!("{base}/stats/requests")).send())
        .is_err()
    {
        assert!(
            Instant::now() < listening,
            "the web UI never listened\n{}",
            master.proc.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    web(
        &runtime,
        client.post(format!("{base}/swarm")).form(&[
            ("user_count", "4"),
            ("spawn_rate", "4"),
            ("host", url.as_str()),
        ]),
    );
    let stats = |wanted: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = web(&runtime, client.get(format!("{base}/stats/requests")));
            if wanted(&now) {
                return now;
            }
            assert!(Instant::now() < deadline, "{now}\n{}", master.proc.output());
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    stats(&|s| s["user_count"] == 4 && s["total_rps"].as_f64().unwrap_or(0.0) > 0.0);
    web(&runtime, client.post(format!("{base}/stop")));
    let stopped = stats(&|s| s["state"] == "stopped" && s["user_count"] == 0);
    for w in &workers {
        w.wait_for_line("the master stopped the run", Duration::from_secs(30));
        w.wait_for_line(" measured ", Duration::from_secs(30));
    }
    // Nothing more is sent once they stopped.
    let before = stopped["stats"].as_array().map(|rows| {
        rows.iter()
            .filter_map(|r| r["num_requests"].as_u64())
            .sum::<u64>()
    });
    std::thread::sleep(Duration::from_secs(4));
    let after = web(&runtime, client.get(format!("{base}/stats/requests")));
    let after = after["stats"].as_array().map(|rows| {
        rows.iter()
            .filter_map(|r| r["num_requests"].as_u64())
            .sum::<u64>()
    });
    assert_eq!(before, after);
    // The exact runs of the stopped test are in; quitting the master judges them.
    let deliveries = master.deliveries();
    assert_eq!(deliveries.len(), 2);
    master.proc.signal(libc::SIGTERM);
    let code = master.proc.wait(Duration::from_secs(60));
    let metrics = master.metrics();
    assert_eq!(
        code,
        metrics["verdict"]["exit_code"].as_i64().unwrap_or(-1) as i32,
        "{}",
        master.proc.output()
    );
    for w in &mut workers {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
    }
}

#[test]
fn custom_user_classes_run_under_a_locust_master_and_a_worker_without_them_is_refused() {
    let _one = serial();
    let (_server, url) = reference_server();
    let example = example_bin("custom_user");
    let mut master = Master::start(&example, &url, &headless(4, 4, "8s", 2, &["study"]));
    // A plain lva-loadtest worker lacks StudyUser: the master refuses it (another build).
    let mut plain = master.worker(Path::new(TOOL), "plain", &[]);
    assert_eq!(plain.wait(Duration::from_secs(60)), 2, "{}", plain.output());
    assert_has(
        &plain.stderr(),
        "another build or other user classes",
        &plain,
    );
    // Once Locust has marked it missing, it is not given users.
    master
        .proc
        .wait_for_log("setting state to missing", Duration::from_secs(30));
    let mut workers: Vec<Proc> = ["s1", "s2"]
        .iter()
        .map(|n| master.worker(&example, n, &[]))
        .collect();
    let code = master_and_workers_end(&mut master.proc, &mut workers);
    assert_eq!(code, 0, "{}", master.proc.output());
    assert_study_run(&master.metrics());
    let csv_names: Vec<String> = master
        .csv("stats")
        .into_iter()
        .map(|r| r["Name"].clone())
        .collect();
    assert!(
        csv_names.iter().any(|n| n.ends_with("[study]")),
        "{csv_names:?}"
    );
}

#[test]
fn a_worker_lacking_a_class_the_master_names_is_refused_before_traffic() {
    let _one = serial();
    let (_server, url) = reference_server();
    // A locustfile of one's own, naming a class the plain build does not have.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("locustfile.py");
    std::fs::write(
        &file,
        "from locust import User, task\n\nclass StudyUser(User):\n    @task\n    def study(self):\n        pass\n",
    )
    .expect("write");
    let port = free_port().to_string();
    let mut master = Proc::spawn_program(
        "locust master",
        &python_tools().join("bin/locust"),
        &[
            "-f",
            file.to_str().expect("path"),
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            &port,
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "6s",
            "--host",
            &url,
        ],
        &[],
    );
    let log = dir.path().join("w.requests.json");
    let mut worker = Proc::spawn(
        "w",
        &[
            "--worker",
            "--master-port",
            &port,
            "--worker-timeout",
            "60s",
            "--request-log",
            log.to_str().expect("path"),
        ],
        &[],
    );
    assert_eq!(
        worker.wait(Duration::from_secs(60)),
        2,
        "{}",
        worker.output()
    );
    assert_has(
        &worker.stderr(),
        "the master names user class StudyUser, which this worker does not have",
        &worker,
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "");
    // The worker's exception counts as an error of the run for Locust.
    assert_eq!(
        master.wait(Duration::from_secs(60)),
        1,
        "{}",
        master.output()
    );
}

/// What Python's msgpack writes for the value it reads from `bytes`: equal bytes mean this
/// tool writes each value exactly as Locust itself would.
fn python_rewrites(frames: &[(String, Vec<u8>)]) -> Vec<String> {
    let input: String = frames
        .iter()
        .map(|(name, bytes)| {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("{name} {hex}\n")
        })
        .collect();
    let script = "import sys, msgpack\n\
        for line in sys.stdin:\n\
        \x20   name, hexed = line.split()\n\
        \x20   value = msgpack.unpackb(bytes.fromhex(hexed), raw=False, strict_map_key=False)\n\
        \x20   assert isinstance(value, list) and len(value) == 3 and value[0] == name, value\n\
        \x20   print(msgpack.packb(value).hex())\n";
    let mut child = Command::new(python_tools().join("bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_message_a_worker_sends_is_the_bytes_pythons_msgpack_writes() {
    use lva_loadtest::distributed::wire::*;
    let node = "w1_0123456789abcdef0123456789abcdef";
    let stats = LocustStats::default();
    for (ms, outcome) in [
        (5, Outcome::Success),
        (150, Outcome::RateLimited),
        (1234, Outcome::Failure("500 boom".into())),
        (70_000, Outcome::ExpectedError("401".into())),
    ] {
        stats.record(&Observation {
            kind: RequestKind::Http,
            method: "POST",
            name: "/api/conversation",
            user_class: "AuthenticatedUser",
            started: std::time::Instant::now(),
            duration: Duration::from_millis(ms),
            service: None,
            status: Some(200),
            outcome: &outcome,
            bytes: 1 << 20,
        });
    }
    let report = stats.take();
    let counts: BTreeMap<String, u64> = [("AuthenticatedUser".to_string(), 3u64)].into();
    let fingerprint = Fingerprint::of("0.1.0", &lva_loadtest::user_classes::builtin_classes());
    let frames: Vec<(String, Vec<u8>)> = vec![
        (
            Kind::ClientReady.as_str().into(),
            encode(Kind::ClientReady, &NO_LOCUST_VERSION, node),
        ),
        (
            Kind::Heartbeat.as_str().into(),
            encode(
                Kind::Heartbeat,
                &Heartbeat {
                    state: WorkerState::Running,
                    current_cpu_usage: 12.5,
                    current_memory_usage: 40 << 20,
                },
                node,
            ),
        ),
        (
            Kind::Spawning.as_str().into(),
            encode_empty(Kind::Spawning, node),
        ),
        (
            Kind::SpawningComplete.as_str().into(),
            encode(
                Kind::SpawningComplete,
                &SpawningComplete {
                    user_classes_count: counts.clone(),
                    user_count: 3,
                },
                node,
            ),
        ),
        (
            Kind::Stats.as_str().into(),
            encode(
                Kind::Stats,
                &Stats {
                    stats: report.entries,
                    stats_total: report.total,
                    errors: report.errors,
                    user_classes_count: counts,
                    user_count: 3,
                },
                node,
            ),
        ),
        (
            Kind::ClientStopped.as_str().into(),
            encode_empty(Kind::ClientStopped, node),
        ),
        (Kind::Quit.as_str().into(), encode_empty(Kind::Quit, node)),
        (
            Kind::Exception.as_str().into(),
            encode(
                Kind::Exception,
                &Exception {
                    msg: "worker w1 cannot run: é".into(),
                    traceback: String::new(),
                },
                node,
            ),
        ),
        (
            Kind::Hello.as_str().into(),
            encode(
                Kind::Hello,
                &Hello {
                    protocol_version: PROTOCOL_VERSION,
                    name: "w1".into(),
                    digest: fingerprint.digest(),
                    fingerprint,
                },
                node,
            ),
        ),
        (Kind::Ready.as_str().into(), encode_empty(Kind::Ready, node)),
        (
            Kind::Failed.as_str().into(),
            encode(
                Kind::Failed,
                &Reason {
                    reason: "x".repeat(300),
                },
                node,
            ),
        ),
        (
            Kind::Run.as_str().into(),
            encode(
                Kind::Run,
                &RunMessage {
                    name: "w1".into(),
                    protocol_version: PROTOCOL_VERSION,
                    run: (0..=255).collect(),
                },
                node,
            ),
        ),
    ];
    let rewritten = python_rewrites(&frames);
    assert_eq!(rewritten.len(), frames.len());
    for ((name, ours), theirs) in frames.iter().zip(&rewritten) {
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&hex, theirs, "{name}");
    }
    // The response-time rounding is Locust's own.
    let times: Vec<u64> = vec![
        0, 499, 500, 1500, 2500, 12_345, 99_499, 99_500, 99_999, 145_000, 155_000, 999_999,
        1_050_000, 9_950_000, 10_500_000, 11_500_000, 58_760_000,
    ];
    let script = format!(
        "from locust.stats import bucket_response_time\nprint(' '.join(str(bucket_response_time(us / 1000)) for us in {times:?}))"
    );
    let out = Command::new(python_tools().join("bin/python"))
        .args(["-c", &script])
        .output()
        .expect("python");
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ours: Vec<String> = times.iter().map(|us| round_ms(*us).to_string()).collect();
    assert_eq!(ours.join(" "), theirs);
}
