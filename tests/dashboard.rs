//! The `--web` dashboard in a real browser: headless Chromium (Debian's package) opens it,
//! starts the run from the page, sees live figures, stops it and quits, driven over the
//! Chrome DevTools Protocol by this test.

mod common;

use common::{Args, BIN};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the process when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DevTools session on one page.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn open(user_data: &Path) -> Page {
        // Chromium writes the port it chose to this file.
        let port_file = user_data.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("DevTools target list")
            .json()
            .await
            .expect("target list JSON");
        let ws_url = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("DevTools socket");
        Page { socket, next_id: 0 }
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true, "awaitPromise": true},
        });
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .expect("send to DevTools");
        while let Some(Ok(message)) = self.socket.next().await {
            if let Message::Text(text) = message {
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if answer["id"] == id {
                    return answer["result"]["result"]["value"].clone();
                }
            }
        }
        panic!("DevTools closed");
    }

    /// Polls `expression` until it is true.
    async fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval(expression).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let page = self
                    .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await;
                panic!("timed out waiting for {what}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// True when the element exists, is shown, and is not disabled.
fn usable(id: &str) -> String {
    format!(
        "(() => {{ const b = document.getElementById('{id}'); return !!b && !b.hidden && !b.disabled \
         && b.getAttribute('aria-disabled') !== 'true'; }})()"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_starts_shows_and_stops_a_run() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "this test needs Debian's Chromium: apt-get install chromium (.ci/run installs it)"
    );
    let port = free_port();
    let out = tempfile::tempdir().expect("dir");
    // Goose's dashboard keeps the runs it reports in ./goose-runs: keep that out of the tree.
    let tool = Command::new(BIN)
        .current_dir(out.path())
        .args(
            Args::custom(3, 3, "2m")
                .tags("health")
                .with(&["--web", "--web-port", &port.to_string()])
                .words(),
        )
        .arg("--output")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lva-loadtest --web");
    let mut tool = Reaped(tool);
    // The address the tool prints, with the dashboard's control token.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let pipe = tool.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stdout = String::new();
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the dashboard's address");
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(url) = line
            .strip_prefix("Web dashboard: ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            break url.to_string();
        }
    };
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/?token=")),
        "{url}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the dashboard did not come up at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let profile = tempfile::tempdir().expect("profile dir");
    let browser = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Chromium");
    let _browser = Reaped(browser);
    let mut page = Page::open(profile.path()).await;

    // The page takes commands once its event stream is live.
    page.wait_for(
        "the page's live connection",
        "document.getElementById('connection').classList.contains('live')",
    )
    .await;
    page.wait_for("the Start button", &usable("ctrl-start"))
        .await;
    page.eval("document.getElementById('ctrl-start').click()")
        .await;
    page.wait_for(
        "the run to start",
        "document.getElementById('phase-badge').innerText.trim().toLowerCase() !== 'idle'",
    )
    .await;
    page.wait_for(
        "live users and requests per second",
        "(() => { const u = parseFloat(document.getElementById('kpi-users').innerText); \
         const r = parseFloat(document.getElementById('kpi-rps').innerText); return u >= 3 && r > 0; })()",
    )
    .await;
    // Stop from the page ends the run before its planned 2 minutes: interrupted.
    page.wait_for("the Stop button", &usable("ctrl-stop")).await;
    page.eval("document.getElementById('ctrl-stop').click()")
        .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = tool.0.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the tool did not end after Stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("of 120 s (the dashboard's Stop)"),
        "{stdout}"
    );
    let metrics = std::fs::read_dir(out.path())
        .expect("output dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_metrics.json"))
        .expect("the run's metrics JSON");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(metrics).expect("read")).expect("JSON");
    let health = metrics["measured"]["requests"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "/health").cloned())
        .expect("health requests were measured");
    assert!(health["successes"].as_u64().unwrap_or(0) > 0, "{health}");
}
