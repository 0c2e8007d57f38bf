//! Headless Chromium (Debian's package) driven over the Chrome DevTools Protocol: the
//! dashboard and report tests open pages in it, run scripts there and watch its network.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Kills the process when the test ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium with one page open at `url`; gone when dropped.
pub struct Browser {
    pub page: Page,
    _process: Reaped,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(url: &str) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "this test needs Debian's Chromium: apt-get install chromium (.ci/run installs it)"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let process = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Chromium");
        let process = Reaped(process);
        let page = Page::open(profile.path()).await;
        Browser {
            page,
            _process: process,
            _profile: profile,
        }
    }
}

/// A DevTools session on one page. Events that arrive while a command is answered are kept
/// in `events`.
pub struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    pub events: Vec<Value>,
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
        Page {
            socket,
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// Sends a DevTools command and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .expect("send to DevTools");
        while let Some(Ok(message)) = self.socket.next().await {
            if let Message::Text(text) = message {
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if answer["id"] == id {
                    return answer["result"].clone();
                }
                if answer.get("method").is_some() {
                    self.events.push(answer);
                }
            }
        }
        panic!("DevTools closed");
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is true.
    pub async fn wait_for(&mut self, what: &str, expression: &str) {
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
