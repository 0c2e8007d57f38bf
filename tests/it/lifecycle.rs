//! A run never loses what it measured: signals, a stop that takes too long, the built-in
//! server's life, limits checked before traffic, IPv6, TLS for staging servers, and the
//! dashboard's run. Real binaries, real signals, servers on loopback.

use crate::support::process::Proc;
use crate::support::{Args, BIN, file_ending};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts the tool with its outputs under `output`.
fn tool(args: &Args, output: &Path) -> Proc {
    let mut words: Vec<String> = vec!["--output".into(), output.display().to_string()];
    words.extend(args.words().iter().cloned());
    start(BIN, &words, None)
}

/// Starts a program, in `cwd` when given.
fn start(program: impl AsRef<Path>, words: &[String], cwd: Option<&Path>) -> Proc {
    let program = program.as_ref();
    let mut command = Command::new(program);
    command.args(words);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    Proc::launch(&program.to_string_lossy(), command)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_in(dir)
}

fn metrics(dir: &Path) -> Value {
    crate::support::metrics_in(dir, "")
}

/// The built-in server's pid, from the banner line.
fn builtin_pid(proc: &Proc) -> u32 {
    let line = proc.wait_for("built-in reference server at", Duration::from_secs(30));
    line.split("(pid ")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches(").").parse().ok())
        .unwrap_or_else(|| panic!("no pid in '{line}'"))
}

fn process_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for a parent that is gone too.
        if stat.is_empty()
            || stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The built-in server's temporary database, from its command line (`--db PATH`); it must
/// exist while the server runs.
fn database_of(server: u32) -> PathBuf {
    let cmdline = std::fs::read(format!("/proc/{server}/cmdline")).expect("server's cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let db = args
        .iter()
        .position(|a| a == "--db")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no --db in {args:?}"));
    assert!(
        db.exists(),
        "{} missing while the server runs",
        db.display()
    );
    db
}

/// The database and its journal files still on disk.
fn left_behind(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

/// A stop signal mid-run: the users stop and delete their accounts, the run is judged
/// interrupted and every output is written, and nothing is left behind.
fn stopped_by(signal: i32, name: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(
        &Args::preset("smoke")
            .duration("20s")
            .exclude_tags("rate-limit")
            .with(&["--no-probes"]),
        dir.path(),
    );
    let server = builtin_pid(&run);
    let db = database_of(server);
    run.wait_for("users 10", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    run.signal(signal);
    assert_eq!(run.wait(Duration::from_secs(60)), 1, "{}", run.output());
    let out = run.stdout();
    assert!(
        out.contains("[FAIL] Run Completed: INTERRUPTED at "),
        "{}",
        run.output()
    );
    assert!(
        out.contains(&format!("of 20 s ({name})")),
        "{}",
        run.output()
    );
    assert!(out.contains("(exit code 1)"), "{}", run.output());
    let m = metrics(dir.path());
    assert_eq!(m["test_summary"]["interrupted"], true);
    assert_eq!(m["targets"]["run_completed"]["passed"], false);
    let cleanup = &m["measured"]["cleanup"];
    assert!(
        cleanup["accounts_created"].as_u64().unwrap_or(0) > 0,
        "{cleanup}"
    );
    assert_eq!(cleanup["deleted"], cleanup["accounts_created"], "{cleanup}");
    for suffix in ["_stats.csv", "_failures.csv", "_junit.xml"] {
        assert!(
            file_ending(dir.path(), suffix).is_some(),
            "{:?}",
            files(dir.path())
        );
    }
    let junit = std::fs::read_to_string(file_ending(dir.path(), "_junit.xml").expect("junit"))
        .expect("read");
    assert!(junit.contains("Run Completed"), "{junit}");
    assert!(
        !files(dir.path())
            .iter()
            .any(|p| p.to_string_lossy().contains(".partial")),
        "{:?}",
        files(dir.path())
    );
    // `validate` on the saved run gives the same verdict.
    let saved = file_ending(dir.path(), "_metrics.json").expect("metrics");
    let again = Command::new(BIN)
        .arg("validate")
        .arg(&saved)
        .output()
        .expect("validate");
    assert_eq!(again.status.code(), Some(1));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains(&format!("of 20 s ({name})")), "{text}");
    assert!(
        process_gone(server, Duration::from_secs(5)),
        "server {server} left running"
    );
    assert!(left_behind(&db).is_empty(), "{:?}", left_behind(&db));
}

#[test]
fn sigterm_mid_run_keeps_everything_and_leaves_nothing() {
    stopped_by(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sighup_mid_run_keeps_everything_and_leaves_nothing() {
    stopped_by(libc::SIGHUP, "SIGHUP");
}

#[test]
fn the_built_in_server_never_outlives_a_killed_tool() {
    let dir = tempfile::tempdir().expect("dir");
    let run = tool(
        &Args::custom(2, 2, "30s")
            .tags("health")
            .with(&["--no-probes"]),
        dir.path(),
    );
    let server = builtin_pid(&run);
    let db = database_of(server);
    run.wait_for("users 2", Duration::from_secs(30));
    run.signal(libc::SIGKILL);
    assert!(
        process_gone(server, Duration::from_secs(5)),
        "server {server} outlived the tool"
    );
    assert!(left_behind(&db).is_empty(), "{:?}", left_behind(&db));
}

/// Every user refused at its start (a one-request auth budget shared by all): the stopped
/// users idle instead of spinning, the run ends on time, and Ctrl-C is answered at once.
#[test]
fn stopped_users_do_not_spin_and_ctrl_c_is_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(
        &Args::custom(4, 4, "60s")
            .tags("health")
            .builtin("--rate-limit-auth 1")
            .with(&["--no-wait", "--no-loopback-sources", "--no-probes"]),
        dir.path(),
    );
    run.wait_for("users 4", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let before = run.cpu_secs();
    std::thread::sleep(Duration::from_secs(4));
    let used = run.cpu_secs() - before;
    // Four spinning users would use both cores: several CPU seconds in four.
    assert!(used < 1.0, "{used:.2} CPU s in 4 s with every user stopped");
    let asked = Instant::now();
    run.signal(libc::SIGINT);
    assert_eq!(run.wait(Duration::from_secs(40)), 1, "{}", run.output());
    assert!(asked.elapsed() < Duration::from_secs(35));
    let out = run.stdout();
    assert!(out.contains("(Ctrl-C)"), "{}", run.output());
    assert!(out.contains("[FAIL] Users Started: "), "{}", run.output());
}

/// Nobody reads the console any more (`| head`, or `| tee` stopped by the same Ctrl-C): the
/// run goes on, is judged and writes its files, without a panic.
#[test]
fn a_closed_stdout_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let mut words: Vec<String> = vec!["--output".into(), dir.path().display().to_string()];
    words.extend(
        Args::custom(3, 3, "20s")
            .tags("health")
            .with(&["--no-probes"])
            .words()
            .iter()
            .cloned(),
    );
    let mut command = Command::new(BIN);
    command
        .args(&words)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start the tool");
    // The reader leaves before the first line.
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Past the ramp-up (when Goose prints that its users are launched), then stopped.
    std::thread::sleep(Duration::from_secs(6));
    // SAFETY: signalling the child process this test started.
    unsafe {
        libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    let err = reader.join().expect("stderr");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(1), "{err}");
    let m = metrics(dir.path());
    assert_eq!(m["test_summary"]["interrupted"], true);
    assert!(
        m["test_summary"]["total_requests"].as_u64().unwrap_or(0) > 0,
        "{}",
        m["test_summary"]
    );
    for suffix in [".html", "_stats.csv", "_junit.xml"] {
        assert!(
            file_ending(dir.path(), suffix).is_some(),
            "{:?}",
            files(dir.path())
        );
    }
}

/// A host that accepts connections and never answers: the run ends at its plan plus its
/// stop timeout, saying what it waits for.
#[test]
fn a_host_that_never_answers_cannot_hold_the_run() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = format!("http://{}", silent.local_addr().expect("addr"));
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(16).flatten() {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let dir = tempfile::tempdir().expect("dir");
    let started = Instant::now();
    let mut run = tool(
        &Args::custom(3, 3, "4s").tags("health").with(&[
            "--host",
            &host,
            "--skip-preflight",
            "--stop-timeout",
            "3s",
        ]),
        dir.path(),
    );
    assert_eq!(run.wait(Duration::from_secs(40)), 1, "{}", run.output());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let err = run.stderr();
    assert!(err.contains("in flight"), "{}", run.output());
    assert!(err.contains("the stop timeout ran out"), "{}", run.output());
    assert!(
        run.stdout()
            .contains("[FAIL] Work Done: 0 judged HTTP requests"),
        "{}",
        run.output()
    );
    drop(keep);
}

fn refused(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(&Args::default().with(args), dir.path());
    assert_eq!(
        run.wait(Duration::from_secs(30)),
        2,
        "{args:?}\n{}",
        run.output()
    );
    let err = run.stderr();
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: no '{needle}' in {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(
        files(dir.path()).is_empty(),
        "{args:?} wrote {:?}",
        files(dir.path())
    );
}

#[test]
fn limits_are_checked_before_any_traffic() {
    refused(
        &["--users", "99999999999"],
        &["--users 99999999999", "available"],
    );
    refused(&["--duration", "99999999999h"], &["--duration"]);
    refused(&["--duration", "200h"], &["longer than the 168h"]);
    refused(
        &["--request-timeout", "0s"],
        &["--request-timeout must be more than 0s"],
    );
    refused(
        &[
            "--ca-cert",
            "/nonexistent.pem",
            "--scenario",
            "custom",
            "--users",
            "1",
            "--duration",
            "2s",
        ],
        &["--ca-cert /nonexistent.pem"],
    );
    // A rate the duration cuts short is raised, and the run says so.
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(
        &Args::preset("custom")
            .users(4)
            .duration("3s")
            .tags("health")
            .with(&["--spawn-rate", "0.001", "--no-probes"]),
        dir.path(),
    );
    assert_eq!(run.wait(Duration::from_secs(40)), 0, "{}", run.output());
    assert!(
        run.stdout().contains("--spawn-rate 0.001/s would take"),
        "{}",
        run.output()
    );
    assert!(
        run.stdout().contains("they start at 2.00/s instead"),
        "{}",
        run.output()
    );
}

/// Against a server on IPv6 loopback the users connect without per-user sources, and the
/// run says what that means for per-client limits.
#[test]
fn ipv6_hosts_work() {
    let mut server = start(
        crate::support::server_bin(),
        // The users share one client over IPv6: a limit for many clients' worth of logins.
        &[
            "--bind",
            "[::1]:0",
            "--bcrypt-cost",
            "4",
            "--rate-limit-auth",
            "1000",
        ]
        .map(String::from),
        None,
    );
    let line = server.wait_for("listening on", Duration::from_secs(30));
    let host = line.rsplit(' ').next().expect("url").to_string();
    assert!(host.starts_with("http://[::1]:"), "{host}");
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(
        &Args::custom(3, 3, "4s")
            .tags("health,stats,upgrade")
            .with(&["--host", &host, "--probes"]),
        dir.path(),
    );
    assert_eq!(run.wait(Duration::from_secs(60)), 0, "{}", run.output());
    assert!(run.stdout().contains("IPv6 loopback"), "{}", run.output());
    let m = metrics(dir.path());
    let judged = m["test_summary"]["successful_requests"]
        .as_u64()
        .unwrap_or(0);
    assert!(judged > 0, "{}", run.output());
    assert_eq!(m["test_summary"]["failed_requests"], 0, "{}", run.output());
    // The probes reach the server over IPv6 too: none fails to connect.
    let probes = m["extra"]["probes"].as_array().cloned().unwrap_or_default();
    assert_eq!(probes.len(), 7, "{}", run.output());
    let notes = serde_json::to_string(&probes).unwrap_or_default();
    assert!(
        !notes.contains("unreachable") && !notes.contains("could not start"),
        "{notes}"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(Duration::from_secs(10)), 0);
}

/// Certificates for 127.0.0.1: a self-signed one, and a private CA with a leaf it signed.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write a certificate file")
        };
        let own = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("self-signed certificate");
        write("self.pem", own.cert.pem());
        write("self.key", own.signing_key.serialize_pem());

        // Self-signed the usual way (`openssl req -x509` marks it CA:TRUE).
        let mut own_ca_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        own_ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        own_ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let own_ca_key = rcgen::KeyPair::generate().expect("key");
        let own_ca = own_ca_params
            .self_signed(&own_ca_key)
            .expect("CA:TRUE self-signed");
        write("self_ca.pem", own_ca.pem());
        write("self_ca.key", own_ca_key.serialize_pem());

        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "lva-loadtest test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        write("ca.pem", ca.pem());
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
        write("leaf.pem", leaf.pem());
        write("leaf.key", leaf_key.serialize_pem());
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn server(&self, cert: &str, key: &str) -> (Proc, String) {
        let words = [
            "--bind",
            "127.0.0.1:0",
            "--bcrypt-cost",
            "4",
            "--tls-cert",
            &self.path(cert),
            "--tls-key",
            &self.path(key),
        ]
        .map(String::from);
        let server = start(crate::support::server_bin(), &words, None);
        let line = server.wait_for("listening on", Duration::from_secs(30));
        let url = line.rsplit(' ').next().expect("url").to_string();
        assert!(url.starts_with("https://"), "{url}");
        (server, url)
    }
}

fn tls_run(host: &str, extra: &[&str]) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut run = tool(
        &Args::custom(2, 2, "4s")
            .tags("health,upgrade")
            .with(&["--host", host, "--no-probes"])
            .with(extra),
        dir.path(),
    );
    run.wait(Duration::from_secs(60));
    (run, dir)
}

#[test]
fn https_and_wss_with_a_self_signed_certificate() {
    let certs = Certs::new();
    let (_server, host) = certs.server("self.pem", "self.key");
    let (refused, _) = tls_run(&host, &[]);
    assert_eq!(refused.code(), Some(2), "{}", refused.output());
    let err = refused.stderr();
    assert!(err.contains("self-signed"), "{err}");
    assert!(
        err.contains("--ca-cert FILE") && err.contains("--insecure"),
        "{err}"
    );
    assert!(!err.contains("Is the server running"), "{err}");

    let (accepted, dir) = tls_run(&host, &["--insecure"]);
    assert_eq!(accepted.code(), Some(0), "{}", accepted.output());
    assert!(
        accepted.stdout().contains("NOT verified"),
        "{}",
        accepted.output()
    );
    let m = metrics(dir.path());
    assert_eq!(m["facts"]["insecure_tls"], true);
    assert_eq!(m["targets"]["tls"]["skipped"], true);
    let ws = crate::support::request_row(&m, "WS connect /ws/{session_id}").expect("wss row");
    assert!(ws["successes"].as_u64().unwrap_or(0) > 0, "{ws}");
    let junit = std::fs::read_to_string(file_ending(dir.path(), "_junit.xml").expect("junit"))
        .expect("read");
    assert!(junit.contains("NOT VERIFIED"), "{junit}");
}

#[test]
fn https_with_a_private_ca_is_trusted_with_ca_cert() {
    let certs = Certs::new();
    let (_server, host) = certs.server("leaf.pem", "leaf.key");
    let (refused, _) = tls_run(&host, &[]);
    assert_eq!(refused.code(), Some(2), "{}", refused.output());
    assert!(
        refused.stderr().contains("--ca-cert"),
        "{}",
        refused.output()
    );
    let ca = certs.path("ca.pem");
    let (accepted, dir) = tls_run(&host, &["--ca-cert", &ca]);
    assert_eq!(accepted.code(), Some(0), "{}", accepted.output());
    let m = metrics(dir.path());
    assert_eq!(m["test_summary"]["failed_requests"], 0);
    let ws = crate::support::request_row(&m, "WS connect /ws/{session_id}").expect("wss row");
    assert!(ws["successes"].as_u64().unwrap_or(0) > 0, "{ws}");
}

/// The dashboard's run: the address it really listens on (port 0), started from the page's
/// control API, ended by its planned duration, measured from its start, files under
/// `--output`.
#[test]
fn the_dashboard_run_ends_at_its_duration_with_its_files_under_output() {
    let dir = tempfile::tempdir().expect("dir");
    let cwd = tempfile::tempdir().expect("working folder");
    let mut words: Vec<String> = vec!["--output".into(), dir.path().display().to_string()];
    words.extend(
        Args::custom(2, 2, "5s")
            .tags("health")
            .with(&["--web", "--web-port", "0", "--no-probes"])
            .words()
            .iter()
            .cloned(),
    );
    let mut run = start(BIN, &words, Some(cwd.path()));
    let line = run.wait_for("Web dashboard: http://", Duration::from_secs(30));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_string();
    assert!(!url.contains(":0/"), "{url}");
    let token = url.split("token=").nth(1).expect("token").to_string();
    let base = url.split("/?").next().expect("base").to_string();
    // Idle for a while before Start: that time is not the run's.
    std::thread::sleep(Duration::from_secs(3));
    let answer = post(&base, "/api/v1/control/start", &token);
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert_eq!(run.wait(Duration::from_secs(60)), 0, "{}", run.output());
    assert!(
        !run.stderr().contains("--dashboard-no-auth"),
        "{}",
        run.output()
    );
    let m = metrics(dir.path());
    let seconds = m["test_summary"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        (4.0..7.0).contains(&seconds),
        "measured {seconds} s of a 5 s run"
    );
    assert!(
        files(cwd.path()).is_empty(),
        "the dashboard wrote into the working folder: {:?}",
        files(cwd.path())
    );
}

/// A bodyless POST with a bearer token; returns the answer's status line and headers.
fn post(base: &str, path: &str, token: &str) -> String {
    use std::io::Write;
    let authority = base.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match std::net::TcpStream::connect(authority) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `http://` to a port that speaks TLS: the pre-flight names `https://` as the way out
/// (hyper alone says "invalid HTTP version parsed").
#[test]
fn plain_http_to_a_tls_port_suggests_https() {
    let certs = Certs::new();
    let (_server, host) = certs.server("self.pem", "self.key");
    let plain = host.replacen("https://", "http://", 1);
    let (run, _dir) = tls_run(&plain, &[]);
    assert_eq!(run.code(), Some(2), "{}", run.output());
    assert!(
        run.stderr().contains(&format!("use --host {host}")),
        "{}",
        run.output()
    );
}

/// The refusal's way out works when followed: `--ca-cert` with the server's own self-signed
/// certificate is trusted, whether that certificate says CA:TRUE or not (as curl does).
#[test]
fn ca_cert_trusts_the_servers_own_self_signed_certificate() {
    let certs = Certs::new();
    for (cert, key) in [("self.pem", "self.key"), ("self_ca.pem", "self_ca.key")] {
        let (_server, host) = certs.server(cert, key);
        let (refused, _) = tls_run(&host, &[]);
        assert_eq!(refused.code(), Some(2), "{cert}: {}", refused.output());
        assert!(
            refused.stderr().contains("--ca-cert FILE"),
            "{}",
            refused.output()
        );
        let (trusted, _dir) = tls_run(&host, &["--ca-cert", &certs.path(cert)]);
        assert_eq!(trusted.code(), Some(0), "{cert}: {}", trusted.output());
        assert!(
            !trusted.stdout().contains("NOT verified"),
            "{}",
            trusted.output()
        );
    }
}
