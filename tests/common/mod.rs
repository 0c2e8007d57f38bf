//! Helpers for the integration tests: a reference server per test, a small JSON client,
//! reading a run's metrics JSON, the tool's command lines, and a headless browser.

#![allow(dead_code)]

pub mod browser;

use std::time::Duration;

use lva_loadtest::reference_server::{self, ServerConfig, ServerHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "Passw0rd-Test";

/// Fast settings: bcrypt cost 4, short export delay, no rate limiting.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig {
        bcrypt_cost: 4,
        export_delay: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    c.rate_limit.enabled = false;
    c
}

pub async fn server(config: ServerConfig) -> (ServerHandle, Api) {
    let handle = reference_server::start(config)
        .await
        .expect("server starts");
    let api = Api::new(&handle.base_url());
    (handle, api)
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A JSON answer: status, selected headers and body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            base: base.to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("request answered");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.req(Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(self.req(Method::POST, path, token).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(self.req(Method::PATCH, path, token).json(&body))
            .await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &'static str) -> Answer {
        self.send(
            self.req(Method::POST, path, None)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn register(&self, email: &str) -> Answer {
        self.post(
            "/api/auth/register",
            None,
            json!({ "email": email, "password": PASSWORD, "full_name": "Test User" }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/api/auth/login/json",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers a fresh user and logs in: `(email, access, refresh)`.
    pub async fn new_user(&self) -> (String, String, String) {
        let email = unique_email();
        let r = self.register(&email).await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.text);
        let t = self.login(&email, PASSWORD).await;
        assert_eq!(t.status, StatusCode::OK, "login: {}", t.text);
        let access = t.body["access_token"].as_str().expect("access").to_owned();
        let refresh = t.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        (email, access, refresh)
    }

    /// Reads one sample of the Prometheus text (`name` or `name{labels}`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics", None).await.text;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
    }
}

/// Asserts a 422 with the contract's list shape; returns the `loc`s.
pub fn assert_validation(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let list = a.body["detail"].as_array().expect("detail is a list");
    assert!(!list.is_empty());
    for item in list {
        assert!(item["loc"].is_array(), "{item}");
        assert!(item["msg"].is_string(), "{item}");
        assert!(item["type"].is_string(), "{item}");
    }
    list.iter().map(|i| i["loc"].clone()).collect()
}

/// Decodes a JWT payload without checking it.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

/// The measured row of request `key` ("METHOD name", e.g. `WS end→summary`) in a run's
/// metrics JSON.
pub fn request_row(metrics: &Value, key: &str) -> Option<Value> {
    metrics["measured"]["requests"]
        .as_array()?
        .iter()
        .find(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            ) == key
        })
        .cloned()
}

/// The entries of `dir`, sorted (none when it cannot be read).
pub fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The tool's binary, as the integration tests run it.
pub const BIN: &str = env!("CARGO_BIN_EXE_lva-loadtest");

/// A command line of the tool, built from its parts so the tests read as what they run:
/// `Args::custom(4, 4, "6s").tags("health")` is a 6-second custom run of 4 users started
/// at 4 a second doing health checks.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<String>);

impl Args {
    /// A run of a preset, with its own users, spawn rate and duration.
    pub fn preset(name: &str) -> Args {
        Args::default().with(&["--scenario", name])
    }

    /// A custom run: `users` users started at `spawn_rate` a second, for `duration`.
    pub fn custom(users: u32, spawn_rate: u32, duration: &str) -> Args {
        Args::preset("custom")
            .users(users)
            .spawn_rate(spawn_rate)
            .duration(duration)
    }

    pub fn users(self, users: u32) -> Args {
        self.with(&["--users", &users.to_string()])
    }

    pub fn spawn_rate(self, per_second: u32) -> Args {
        self.with(&["--spawn-rate", &per_second.to_string()])
    }

    pub fn duration(self, duration: &str) -> Args {
        self.with(&["--duration", duration])
    }

    pub fn tags(self, tags: &str) -> Args {
        self.with(&["--tags", tags])
    }

    pub fn exclude_tags(self, tags: &str) -> Args {
        self.with(&["--exclude-tags", tags])
    }

    /// Options for the built-in reference server (`--builtin-args`).
    pub fn builtin(self, options: &str) -> Args {
        self.with(&["--builtin-args", options])
    }

    /// Any other words, as they are.
    pub fn with(mut self, words: &[&str]) -> Args {
        self.0.extend(words.iter().map(|w| w.to_string()));
        self
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

pub mod process;

/// A plain HTTP file server (Python's `http.server`) on an ephemeral port of 127.0.0.1,
/// serving an empty folder: HTML pages, 404 for every API path, 501 for POST. Stopped
/// when dropped.
pub struct FileServer {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl FileServer {
    pub fn start() -> FileServer {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        let stdout = child.stdout.take().expect("stdout");
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let line = std::io::BufReader::new(stdout)
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("no port in the file server's first line: {line:?}");
        };
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
