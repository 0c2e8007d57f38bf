//! Real WebSocket sessions, checked from both sides: the load tester's rows and counters,
//! and the reference server's own count of open sockets.

use crate::support::{Args, BIN};
use lva_target::{ServerConfig, ServerHandle};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

async fn server(configure: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig {
        bcrypt_cost: 4,
        ..ServerConfig::default()
    };
    configure(&mut config);
    lva_target::start(config)
        .await
        .expect("start the reference server")
}

fn spawn(host: &str, out: &std::path::Path, args: &Args) -> Child {
    Command::new(BIN)
        .args(["--host", host, "--output"])
        .arg(out)
        .args(args.words())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lva-loadtest")
}

/// Waits for the child, sampling `sample` every 100 ms meanwhile; returns the exit code,
/// its output and the largest sample.
async fn wait(mut child: Child, sample: impl Fn() -> usize) -> (i32, String, usize) {
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        peak = peak.max(sample());
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "lva-loadtest did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = child.wait_with_output().expect("output");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status.code().unwrap_or(-1), text, peak)
}

fn metrics(dir: &std::path::Path) -> Value {
    crate::support::metrics_in(dir, "")
}

fn row(metrics: &Value, key: &str) -> Value {
    crate::support::request_row(metrics, key).unwrap_or(Value::Null)
}

fn n(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_record_connect_round_trip_and_close() {
    let server = server(|_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    let child = spawn(
        &server.base_url(),
        dir.path(),
        &Args::custom(3, 3, "8s").tags("upgrade"),
    );
    let (code, out, _) = wait(child, || server.open_websockets()).await;
    assert_eq!(code, 0, "{out}");
    let m = metrics(dir.path());
    let connect = row(&m, "WS connect /ws/{session_id}");
    let end = row(&m, "WS end→summary");
    let close = row(&m, "WS close");
    assert!(n(&connect, "successes") >= 3, "{connect}");
    assert_eq!(n(&end, "successes"), n(&connect, "successes"), "{end}");
    assert_eq!(n(&close, "successes"), n(&connect, "successes"), "{close}");
    let ws = &m["measured"]["websocket"];
    assert_eq!(
        n(ws, "connections_opened"),
        n(&connect, "successes"),
        "{ws}"
    );
    assert_eq!(
        ws["closes_by_code"]["1000"].as_u64(),
        Some(n(&connect, "successes")),
        "{ws}"
    );
    assert_eq!(n(ws, "messages_sent"), n(ws, "messages_received"), "{ws}");
    // Only WebSocket work and the account hooks ran.
    assert!(row(&m, "GET /health").is_null());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_handshake_is_a_failure_with_its_status() {
    let server = server(|c| c.allowed_origins = Some(vec!["https://app.example.com".into()])).await;
    let dir = tempfile::tempdir().expect("dir");
    let child = spawn(
        &server.base_url(),
        dir.path(),
        &Args::custom(2, 2, "5s")
            .tags("upgrade")
            .with(&["--ws-origin", "https://elsewhere.example.com"]),
    );
    let (code, out, _) = wait(child, || server.open_websockets()).await;
    assert_eq!(code, 1, "{out}");
    let m = metrics(dir.path());
    let connect = row(&m, "WS connect /ws/{session_id}");
    assert!(n(&connect, "failures") >= 2, "{connect}");
    assert_eq!(n(&connect, "successes"), 0, "{connect}");
    assert!(
        connect["status_codes"]["403"].as_u64().unwrap_or(0) >= 2,
        "{connect}"
    );
    let errors = m["measured"]["errors"].to_string();
    assert!(errors.contains("handshake refused (403)"), "{errors}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_latency_shows_in_round_trips() {
    let server = server(|c| c.faults.latency = Duration::from_millis(120)).await;
    let dir = tempfile::tempdir().expect("dir");
    let child = spawn(
        &server.base_url(),
        dir.path(),
        &Args::custom(2, 2, "6s").tags("upgrade"),
    );
    let (_, out, _) = wait(child, || server.open_websockets()).await;
    let m = metrics(dir.path());
    let end = row(&m, "WS end→summary");
    let min_us = end["times"]["min_us"].as_u64().unwrap_or(0);
    assert!(min_us >= 120_000, "fastest end→summary {min_us} µs\n{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_lived_sessions_hold_the_configured_sockets_and_ctrl_c_closes_them() {
    let server = server(|_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    let child = spawn(
        &server.base_url(),
        dir.path(),
        &Args::custom(6, 6, "40s").tags("stream").with(&[
            "--ws-hold",
            "40s",
            "--ws-pace-ms",
            "200",
        ]),
    );
    let pid = child.id();
    // Wait until every user holds its socket, on the server's side.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.open_websockets() < 6 {
        assert!(
            Instant::now() < deadline,
            "only {} sockets open",
            server.open_websockets()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.open_websockets(), 6, "one socket per user");
    // SAFETY: signalling the child process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let (code, out, _) = wait(child, || server.open_websockets()).await;
    assert!(code == 0 || code == 1, "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_websockets() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} sockets left open\n{out}",
            server.open_websockets()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metrics(dir.path());
    assert_eq!(m["measured"]["interrupted"], Value::Bool(true), "{out}");
    let ws = &m["measured"]["websocket"];
    assert_eq!(n(ws, "peak_concurrent"), 6, "{ws}");
    let audio = row(&m, "WS audio→response");
    assert!(n(&audio, "successes") >= 6, "{audio}");
    server.shutdown().await;
}
