//! What every probe shares: its own clients, probe accounts, the record of each request and
//! answer, redaction, and the checks most probes make ("this must be refused").

use super::{Finding, ProbeAnswer, ProbeOutcome, ProbeRequest, ProbeSettings, ProbeStatus};
use super::{Secrets, Severity};
use crate::transport::{http_client, loopback_source, root_cause, ws_url_of};
use rand::Rng;
use reqwest::{Client, Method};
use rustls::ClientConfig;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(super) const REDACTED: &str = "[REDACTED]";

/// JSON keys and query parameters whose values are never shown.
const SECRET_KEYS: &[&str] = &[
    "password",
    "new_password",
    "current_password",
    "access_token",
    "refresh_token",
    "token",
];

/// How much of a body a report shows.
const BODY_CHARS: usize = 200;

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Shared by the probes of one run.
pub(super) struct Kit {
    settings: ProbeSettings,
    base: String,
    tls: Arc<ClientConfig>,
    next_source: AtomicU64,
    next_account: AtomicU64,
    secrets: Mutex<Vec<String>>,
}

impl Kit {
    pub fn new(settings: ProbeSettings, tls: Arc<ClientConfig>) -> Kit {
        let base = settings.host.as_str().trim_end_matches('/').to_string();
        Kit {
            settings,
            base,
            tls,
            next_source: AtomicU64::new(1),
            next_account: AtomicU64::new(1),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// True when every client has its own source address (and so its own rate-limit
    /// budget, apart from the simulated users').
    pub fn own_sources(&self) -> bool {
        self.settings.source_base.is_some()
    }

    /// A new client: with its own loopback source address when the settings allow.
    pub fn client(&self) -> Result<Client, String> {
        let source = self
            .settings
            .source_base
            .map(|base| loopback_source(base + self.next_source.fetch_add(1, Ordering::Relaxed)));
        http_client(&self.tls, Some(self.settings.timeout), source)
            .map_err(|e| format!("could not build a probe client: {e}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Remembers a password or token so that no output ever shows it.
    pub fn keep_secret(&self, secret: &str) {
        if secret.len() >= 6 {
            let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
            if !secrets.iter().any(|s| s == secret) {
                secrets.push(secret.to_string());
            }
        }
    }

    pub fn secrets(&self) -> Secrets {
        Secrets(
            self.secrets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// A probe account's address and a password the API's policy accepts.
    fn new_credentials(&self) -> (String, String) {
        let n = self.next_account.fetch_add(1, Ordering::Relaxed);
        let email = format!("lt-{}-probe-{n}@loadtest.example.com", self.settings.run_id);
        let password = self.password("Pr0be-");
        (email, password)
    }

    /// A random password with `prefix`, remembered as a secret.
    pub fn password(&self, prefix: &str) -> String {
        const ALNUM: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        let tail: String = (0..16)
            .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
            .collect();
        let password = format!("{prefix}{tail}");
        self.keep_secret(&password);
        password
    }

    /// An address no account of this run has.
    pub fn unknown_email(&self) -> String {
        format!(
            "lt-{}-probe-nobody@loadtest.example.com",
            self.settings.run_id
        )
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub(super) enum Body {
    None,
    Json(Value),
    /// Bytes sent as they are, with this content type (malformed JSON, for one).
    Raw(&'static str, String),
    Form(Vec<(String, String)>),
}

/// A request a probe makes, kept to show it in a finding.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub method: Method,
    pub path: String,
    pub bearer: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Shown instead of the body (for very long bodies).
    pub label: Option<String>,
}

impl Call {
    pub fn new(method: Method, path: &str) -> Call {
        Call {
            method,
            path: path.to_string(),
            bearer: None,
            headers: Vec::new(),
            body: Body::None,
            label: None,
        }
    }

    pub fn get(path: &str) -> Call {
        Call::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Call {
        Call::new(Method::POST, path)
    }

    pub fn json(mut self, body: Value) -> Call {
        self.body = Body::Json(body);
        self
    }

    pub fn raw(mut self, content_type: &'static str, text: impl Into<String>) -> Call {
        self.body = Body::Raw(content_type, text.into());
        self
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Call {
        self.body = Body::Form(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    pub fn bearer(mut self, token: &str) -> Call {
        self.bearer = Some(token.to_string());
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Call {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn label(mut self, text: impl Into<String>) -> Call {
        self.label = Some(text.into());
        self
    }

    /// The request as reports show it.
    fn record(&self) -> ProbeRequest {
        let mut parts = Vec::new();
        if self.bearer.is_some() {
            parts.push(format!("Authorization: Bearer {REDACTED}"));
        }
        for (name, value) in &self.headers {
            parts.push(format!("{name}: {value}"));
        }
        let body = match (&self.label, &self.body) {
            (Some(label), _) => Some(label.clone()),
            (None, Body::None) => None,
            (None, Body::Json(v)) => Some(short(&redact_json(v).to_string(), BODY_CHARS)),
            (None, Body::Raw(kind, text)) => Some(format!("{kind} {}", short(text, BODY_CHARS))),
            (None, Body::Form(pairs)) => Some(format!(
                "form {}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", redacted_value(k, v)))
                    .collect::<Vec<_>>()
                    .join("&")
            )),
        };
        parts.extend(body);
        ProbeRequest {
            method: self.method.to_string(),
            path: redact_query(&self.path),
            summary: if parts.is_empty() {
                "no body".to_string()
            } else {
                parts.join("; ")
            },
        }
    }
}

/// An answer, or why there was none.
#[derive(Debug, Clone, Default)]
pub(super) struct Answer {
    /// HTTP status; 101 for an accepted WebSocket handshake.
    pub status: Option<u16>,
    pub json: Option<Value>,
    pub text: String,
    /// The connection failed, timed out or dropped before the whole answer came.
    pub error: Option<String>,
}

impl Answer {
    fn of_body(status: u16, bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes).into_owned();
        Answer {
            status: Some(status),
            json: serde_json::from_str(&text).ok(),
            text,
            error: None,
        }
    }

    fn failed(error: String) -> Answer {
        Answer {
            error: Some(error),
            ..Answer::default()
        }
    }

    /// 2xx, or an accepted WebSocket handshake.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(101 | 200..=299))
    }

    pub fn is_rate_limited(&self) -> bool {
        self.status == Some(429)
    }

    /// A 4xx other than 429.
    pub fn is_refusal(&self) -> bool {
        matches!(self.status, Some(400..=499)) && !self.is_rate_limited()
    }

    pub fn str_field(&self, key: &str) -> Option<String> {
        self.json.as_ref()?.get(key)?.as_str().map(str::to_string)
    }

    /// The status, or why there was none.
    pub fn describe(&self) -> String {
        match (self.status, &self.error) {
            (Some(s), None) => s.to_string(),
            (Some(s), Some(e)) => format!("{s}, then {e}"),
            (None, Some(e)) => format!("no answer: {e}"),
            (None, None) => "no answer".to_string(),
        }
    }

    /// The answer as reports show it.
    fn record(&self) -> ProbeAnswer {
        let mut body = match &self.json {
            Some(v) => short(&redact_json(v).to_string(), BODY_CHARS),
            None => short(self.text.trim(), BODY_CHARS),
        };
        if let Some(e) = &self.error {
            body = if body.is_empty() {
                e.clone()
            } else {
                format!("{body} ({e})")
            };
        }
        ProbeAnswer {
            status: self.status,
            body,
        }
    }
}

/// A probe account with its tokens.
#[derive(Debug, Clone)]
pub(super) struct ProbeAccount {
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
    /// Deleted already (nothing to clean up).
    pub deleted: bool,
}

/// One probe while it runs: its requests, findings and notes.
pub(super) struct Probe<'k> {
    pub kit: &'k Kit,
    name: &'static str,
    requests: u64,
    findings: Vec<Finding>,
    notes: Vec<String>,
    untested: Vec<String>,
}

impl<'k> Probe<'k> {
    pub fn new(kit: &'k Kit, name: &'static str) -> Probe<'k> {
        Probe {
            kit,
            name,
            requests: 0,
            findings: Vec::new(),
            notes: Vec::new(),
            untested: Vec::new(),
        }
    }

    /// The usual start of a probe: a client and a fresh probe account. `Err` is the
    /// outcome to return at once (not tested) when either cannot be had.
    pub async fn with_account(
        kit: &'k Kit,
        name: &'static str,
    ) -> Result<(Probe<'k>, Client, ProbeAccount), ProbeOutcome> {
        let mut p = Probe::new(kit, name);
        let Some(client) = p.client() else {
            return Err(p.finish());
        };
        match p.account_or_untested(&client).await {
            Some(account) => Ok((p, client, account)),
            None => Err(p.finish()),
        }
    }

    /// A new client, or `None` (and the probe is not tested) when none can be built.
    pub fn client(&mut self) -> Option<Client> {
        match self.kit.client() {
            Ok(c) => Some(c),
            Err(e) => {
                self.not_tested(&e);
                None
            }
        }
    }

    /// Sends `call` and reads the whole answer. Tokens in the answer become secrets.
    pub async fn send(&mut self, client: &Client, call: &Call) -> Answer {
        self.requests += 1;
        let mut request = client.request(call.method.clone(), self.kit.url(&call.path));
        if let Some(token) = &call.bearer {
            request = request.bearer_auth(token);
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        request = match &call.body {
            Body::None => request,
            Body::Json(v) => request.json(v),
            Body::Raw(kind, text) => request
                .header(reqwest::header::CONTENT_TYPE, *kind)
                .body(text.clone()),
            Body::Form(pairs) => request.form(pairs),
        };
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => Answer::of_body(status, &bytes),
                    Err(e) => Answer {
                        status: Some(status),
                        error: Some(format!("the body was cut short ({})", root_cause(&e))),
                        ..Answer::default()
                    },
                }
            }
            Err(e) if e.is_timeout() => Answer::failed(format!(
                "no answer within {} s",
                self.kit.settings.timeout.as_secs()
            )),
            Err(e) => Answer::failed(format!("connection dropped ({})", root_cause(&e))),
        };
        for key in ["access_token", "refresh_token"] {
            if let Some(token) = answer.str_field(key) {
                self.kit.keep_secret(&token);
            }
        }
        answer
    }

    /// Opens a WebSocket on a new session with `token` in the query or in an
    /// `Authorization` header. The socket is `Some` when the handshake was accepted.
    pub async fn ws_connect(
        &mut self,
        token: &str,
        in_query: bool,
    ) -> (Call, Answer, Option<Socket>) {
        self.requests += 1;
        let session = uuid::Uuid::new_v4();
        let path = if in_query {
            format!("/ws/{session}?token={token}")
        } else {
            format!("/ws/{session}")
        };
        let mut call = Call::get(&path).header("Upgrade", "websocket");
        if !in_query {
            call = call.bearer(token);
        }
        let request = ws_url_of(&self.kit.base, &path)
            .into_client_request()
            .map(|mut request| {
                if let (false, Ok(value)) =
                    (in_query, HeaderValue::from_str(&format!("Bearer {token}")))
                {
                    request.headers_mut().insert("authorization", value);
                }
                request
            });
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return (
                    call,
                    Answer::failed(format!("bad WebSocket URL: {e}")),
                    None,
                );
            }
        };
        let connector = Some(Connector::Rustls(self.kit.tls.clone()));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let answer = match tokio::time::timeout(self.kit.settings.timeout, connecting).await {
            Ok(Ok((socket, _))) => {
                let answer = Answer {
                    status: Some(101),
                    ..Answer::default()
                };
                return (call, answer, Some(socket));
            }
            Ok(Err(WsError::Http(response))) => Answer::of_body(
                response.status().as_u16(),
                response.body().as_deref().unwrap_or_default(),
            ),
            Ok(Err(e)) => Answer::failed(format!("handshake failed ({e})")),
            Err(_) => Answer::failed(format!(
                "handshake not answered within {} s",
                self.kit.settings.timeout.as_secs()
            )),
        };
        (call, answer, None)
    }

    /// Records a finding.
    pub fn find(&mut self, severity: Severity, call: &Call, answer: &Answer, meaning: &str) {
        self.findings.push(Finding {
            probe: self.name.to_string(),
            severity,
            request: call.record(),
            answer: answer.record(),
            meaning: meaning.to_string(),
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The probe could not establish what it checks.
    pub fn not_tested(&mut self, why: &str) {
        self.untested.push(why.to_string());
    }

    /// `call` must be refused (a 4xx). Accepted: a finding of `severity` meaning `meaning`.
    /// A server error: a low finding. Rate limited or unanswered: noted as not checked.
    /// Returns true when the refusal was seen.
    pub fn expect_refused(
        &mut self,
        what: &str,
        call: &Call,
        answer: &Answer,
        severity: Severity,
        meaning: &str,
    ) -> bool {
        match answer.status {
            _ if answer.is_refusal() => {
                self.note(format!("{what}: refused ({})", answer.describe()));
                return true;
            }
            Some(429) => self.note(format!("{what}: rate limited (429), not checked")),
            Some(s) if s < 400 => self.find(severity, call, answer, meaning),
            Some(s) => self.find(
                Severity::Low,
                call,
                answer,
                &format!("{what} got a server error ({s}) instead of a clean refusal."),
            ),
            None => self.note(format!("{what}: not checked, {}", answer.describe())),
        }
        false
    }

    /// Registers a new probe account and logs in.
    pub async fn account(&mut self, client: &Client) -> Result<ProbeAccount, String> {
        let (email, password) = self.kit.new_credentials();
        let call = Call::post("/api/auth/register").json(json!({
            "email": email,
            "password": password,
            "full_name": "Security Probe",
        }));
        let answer = self.send(client, &call).await;
        if !answer.is_success() {
            return Err(format!(
                "registering a probe account was refused ({})",
                answer.describe()
            ));
        }
        let (_, answer) = self.login(client, &email, &password).await;
        match tokens_of(&answer) {
            Some((access, refresh)) => Ok(ProbeAccount {
                email,
                password,
                access,
                refresh,
                deleted: false,
            }),
            None => Err(format!(
                "logging in to a new probe account failed ({})",
                answer.describe()
            )),
        }
    }

    /// A probe account, or `None` with the probe marked not tested.
    pub async fn account_or_untested(&mut self, client: &Client) -> Option<ProbeAccount> {
        match self.account(client).await {
            Ok(account) => Some(account),
            Err(why) => {
                self.not_tested(&why);
                None
            }
        }
    }

    pub async fn login(&mut self, client: &Client, email: &str, password: &str) -> (Call, Answer) {
        let call =
            Call::post("/api/auth/login/json").json(json!({"email": email, "password": password}));
        let answer = self.send(client, &call).await;
        (call, answer)
    }

    /// Deletes the probe account (or only logs out with `keep_accounts`). A failure is
    /// noted, never a finding.
    pub async fn remove(&mut self, client: &Client, account: &ProbeAccount) {
        if account.deleted {
            return;
        }
        let call = if self.kit.settings.keep_accounts {
            Call::post("/api/auth/logout").json(json!({"refresh_token": account.refresh}))
        } else {
            Call::post("/api/gdpr/delete")
                .json(json!({"confirm": true, "reason": "security probe cleanup"}))
        }
        .bearer(&account.access);
        let answer = self.send(client, &call).await;
        if !answer.is_success() {
            self.note(format!(
                "cleanup: {} {} for the probe account answered {}",
                call.method,
                call.path,
                answer.describe()
            ));
        }
    }

    pub fn finish(self) -> ProbeOutcome {
        let status = if !self.findings.is_empty() {
            ProbeStatus::Findings
        } else if !self.untested.is_empty() {
            ProbeStatus::NotTested
        } else {
            ProbeStatus::Passed
        };
        let mut notes = self.notes;
        notes.extend(self.untested.iter().map(|why| format!("not tested: {why}")));
        ProbeOutcome {
            name: self.name.to_string(),
            status,
            passed: status == ProbeStatus::Passed,
            requests: self.requests,
            notes,
            findings: self.findings,
        }
    }
}

/// The access and refresh tokens of a login or refresh answer.
pub(super) fn tokens_of(answer: &Answer) -> Option<(String, String)> {
    if !answer.is_success() {
        return None;
    }
    let access = answer.str_field("access_token")?;
    let refresh = answer.str_field("refresh_token").unwrap_or_default();
    Some((access, refresh))
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

fn redacted_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) { REDACTED } else { value }
}

/// A copy of `value` with the values of secret keys replaced, at any depth.
pub(super) fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        redact_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
}

/// `path` with the values of secret query parameters replaced.
pub(super) fn redact_query(path: &str) -> String {
    let Some((route, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => format!("{k}={}", redacted_value(k, v)),
            None => pair.to_string(),
        })
        .collect();
    format!("{route}?{}", pairs.join("&"))
}

/// At most `max` characters of `text`, saying how long it was when cut.
pub(super) fn short(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({count} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_bodies_queries_and_headers() {
        let body =
            json!({"email": "a@b.co", "password": "Secret1x", "nested": [{"refresh_token": "r"}]});
        let shown = redact_json(&body).to_string();
        assert!(
            !shown.contains("Secret1x") && !shown.contains("\"r\""),
            "{shown}"
        );
        assert!(shown.contains("a@b.co"), "{shown}");
        assert_eq!(
            redact_query("/ws/x?token=abc.def&mode=1"),
            "/ws/x?token=[REDACTED]&mode=1"
        );
        let call = Call::post("/api/auth/login")
            .form(&[("username", "u@x.co"), ("password", "Secret1x")])
            .bearer("eyJhbGciOi.secret");
        let rec = call.record();
        assert!(!rec.summary.contains("Secret1x"), "{}", rec.summary);
        assert!(!rec.summary.contains("eyJ"), "{}", rec.summary);
        assert!(rec.summary.contains("Bearer [REDACTED]"), "{}", rec.summary);
    }

    #[test]
    fn long_texts_are_cut_with_their_length() {
        assert_eq!(short("abc", 5), "abc");
        assert_eq!(short("abcdef", 3), "abc… (6 characters)");
        assert_eq!(short("ééé", 2), "éé… (3 characters)");
    }

    #[test]
    fn answers_are_classified() {
        let a = Answer::of_body(404, b"{\"detail\":\"Not Found\"}");
        assert!(a.is_refusal() && !a.is_success());
        assert!(Answer::of_body(429, b"").is_rate_limited());
        assert!(!Answer::of_body(429, b"").is_refusal());
        assert!(Answer::of_body(204, b"").is_success());
        let none = Answer::failed("connection dropped (reset)".into());
        assert_eq!(none.describe(), "no answer: connection dropped (reset)");
        let tokens = Answer::of_body(200, b"{\"access_token\":\"a\",\"refresh_token\":\"r\"}");
        assert_eq!(tokens_of(&tokens), Some(("a".into(), "r".into())));
        assert!(tokens.record().body.contains(REDACTED));
    }
}
