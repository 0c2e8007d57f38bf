//! What every probe shares: its own clients (each with its own source address and
//! forwarded-for address), probe accounts, the record of each request and answer,
//! redaction, and how an answer becomes a finding: judged, then confirmed on a fresh
//! connection before it is reported.

use super::{Finding, ProbeAnswer, ProbeOutcome, ProbeRequest, ProbeSettings, ProbeStatus};
use super::{Secrets, Severity};
use crate::exchange::context::{DOCUMENTATION_ADDRESSES, documentation_address};
use crate::transport::{http_client, loopback_source, root_cause, ws_url_of};
use rand::Rng;
use reqwest::{Client, Method};
use rustls::ClientConfig;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv6Addr};
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

const FORWARDED_FOR: &str = "X-Forwarded-For";

/// How much of a body around a piece of evidence a finding shows, on each side.
const EVIDENCE_CONTEXT: usize = 60;

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who a probe client is to the server: its source address and its `X-Forwarded-For`.
/// A fresh client of the same source keeps both, and so its rate-limit budget.
#[derive(Debug, Clone, Default)]
pub(super) struct Source {
    local: Option<IpAddr>,
    forwarded_for: Option<String>,
}

/// An HTTP client of a probe, with its source.
pub(super) struct ProbeClient {
    http: Client,
    source: Source,
}

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

    /// True when every client is a client of its own to the server (its own loopback
    /// source address, or its own forwarded-for address), so that it has its own
    /// rate-limit budget, apart from the simulated users'.
    pub fn own_sources(&self) -> bool {
        self.settings.source_base.is_some() || self.settings.forwarded_for_pool.is_some()
    }

    /// True when every client sends an `X-Forwarded-For` of its own (the users do too).
    pub fn sends_forwarded_for(&self) -> bool {
        self.settings.forwarded_for_pool.is_some()
    }

    /// A new client with a new source of its own (when the settings give the probes any).
    pub fn client(&self) -> Result<ProbeClient, String> {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed);
        let source = Source {
            local: self
                .settings
                .source_base
                .map(|base| loopback_source(base + n)),
            forwarded_for: self
                .settings
                .forwarded_for_pool
                .map(|_| self.probe_address(n)),
        };
        self.client_from(source)
    }

    /// A new client, so a new connection, of the same source as `client`.
    pub fn fresh(&self, client: &ProbeClient) -> Result<ProbeClient, String> {
        self.client_from(client.source.clone())
    }

    fn client_from(&self, source: Source) -> Result<ProbeClient, String> {
        let http = http_client(&self.tls, Some(self.settings.timeout), source.local)
            .map_err(|e| format!("could not build a probe client: {e}"))?;
        Ok(ProbeClient { http, source })
    }

    /// An address no user and no other probe client sends as `X-Forwarded-For`.
    pub fn spare_address(&self) -> String {
        self.probe_address(self.next_source.fetch_add(1, Ordering::Relaxed))
    }

    /// The probes' `n`-th forwarded-for address (from 1): documentation addresses counted
    /// from the end, past the ones the users' pool takes from the start; once those run
    /// out, IPv6 documentation addresses (RFC 3849), which no user sends.
    fn probe_address(&self, n: u64) -> String {
        let users = self
            .settings
            .forwarded_for_pool
            .map_or(0, |pool| u64::from(pool).min(DOCUMENTATION_ADDRESSES));
        if n <= DOCUMENTATION_ADDRESSES - users {
            documentation_address(DOCUMENTATION_ADDRESSES - n).to_string()
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 0x10ad, 0, 0, 0, (n >> 16) as u16, n as u16).to_string()
        }
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

/// A request a probe makes, kept to send it again and to show it in a finding.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub method: Method,
    pub path: String,
    pub bearer: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Shown instead of the body (for very long bodies).
    pub label: Option<String>,
    /// The route the path is of, when it holds an id (`/api/gdpr/export/{id}`): findings
    /// on different ids of one route are one finding.
    pub route: Option<String>,
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
            route: None,
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

    /// The route this call's path is of: its own, or the path without its query.
    pub fn route(mut self, template: &str) -> Call {
        self.route = Some(template.to_string());
        self
    }

    /// The method and route, as findings name their endpoint (`POST /api/search`).
    pub fn endpoint(&self) -> String {
        let route = match &self.route {
            Some(route) => route.as_str(),
            None => self
                .path
                .split_once('?')
                .map_or(self.path.as_str(), |(p, _)| p),
        };
        format!("{} {route}", self.method)
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The request as reports show it, secrets redacted (shortened and escaped later, with
    /// the rest of the report).
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
            (None, Body::Json(v)) => Some(redact_json(v).to_string()),
            (None, Body::Raw(kind, text)) => Some(format!("{kind} {text}")),
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
    pub content_type: Option<String>,
    pub json: Option<Value>,
    pub text: String,
    /// The connection failed, timed out or dropped before the whole answer came.
    pub error: Option<String>,
    /// The error is a timeout (the connection may still be sound).
    pub timed_out: bool,
}

impl Answer {
    fn of_body(status: u16, content_type: Option<String>, bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes).into_owned();
        Answer {
            status: Some(status),
            content_type,
            json: serde_json::from_str(&text).ok(),
            text,
            ..Answer::default()
        }
    }

    pub fn failed(error: String) -> Answer {
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

    /// The connection failed before the whole answer came (not a timeout): the next
    /// request on that connection may fail for it, through no fault of its own.
    fn connection_failed(&self) -> bool {
        self.error.is_some() && !self.timed_out
    }

    pub fn str_field(&self, key: &str) -> Option<String> {
        self.json.as_ref()?.get(key)?.as_str().map(str::to_string)
    }

    /// Why this answer is not one of the API's (the endpoint missing, or not JSON), for an
    /// answer that should be one of its JSON answers; `None` when it may be.
    pub fn not_the_api(&self) -> Option<String> {
        let kind = self.content_type.as_deref().unwrap_or("no content type");
        match self.status? {
            code @ (404 | 405 | 501) => Some(format!("answered {code} ({kind})")),
            code if self.json.is_none() => {
                Some(format!("answered {code} with {kind}, not the API's JSON"))
            }
            _ => None,
        }
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

    /// True when the body holds `needle`: as a JSON value (a string equal to it, ignoring
    /// case, or a number that reads as it), or, in a body that is not JSON, as text.
    pub fn carries(&self, needle: &str) -> bool {
        fn in_json(v: &Value, needle: &str) -> bool {
            match v {
                Value::String(s) => s.eq_ignore_ascii_case(needle),
                Value::Number(n) => n.to_string() == needle,
                Value::Array(items) => items.iter().any(|i| in_json(i, needle)),
                Value::Object(map) => map.values().any(|i| in_json(i, needle)),
                _ => false,
            }
        }
        !needle.is_empty()
            && match &self.json {
                Some(v) => in_json(v, needle),
                None => self.text.contains(needle),
            }
    }

    /// The part of the body around `needle`, to show as the evidence of a finding.
    pub fn around(&self, needle: &str) -> Option<String> {
        let at = self.text.find(needle)?;
        let before: String = self.text[..at]
            .chars()
            .rev()
            .take(EVIDENCE_CONTEXT)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let after: String = self.text[at + needle.len()..]
            .chars()
            .take(EVIDENCE_CONTEXT)
            .collect();
        let open = if before.len() < at { "…" } else { "" };
        let close = if at + needle.len() + after.len() < self.text.len() {
            "…"
        } else {
            ""
        };
        Some(format!("{open}{before}{needle}{after}{close}"))
    }

    /// The answer as reports show it, secrets under secret keys redacted.
    fn record(&self) -> ProbeAnswer {
        let mut body = match &self.json {
            Some(v) => redact_json(v).to_string(),
            None => self.text.trim().to_string(),
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

/// What one answer shows.
pub(super) enum Verdict {
    /// As it should be; the note (if any) says what was seen.
    Sound(Option<String>),
    /// It could not be judged (rate limited, no answer): noted, never a finding.
    Unchecked(Option<String>),
    /// It shows a flaw: reported once it shows again on a fresh connection.
    Flaw {
        severity: Severity,
        meaning: String,
        /// The part of the body that shows the flaw, when not its start.
        evidence: Option<String>,
    },
}

impl Verdict {
    pub fn flaw(severity: Severity, meaning: impl Into<String>) -> Verdict {
        Verdict::Flaw {
            severity,
            meaning: meaning.into(),
            evidence: None,
        }
    }

    pub fn sound(note: impl Into<String>) -> Verdict {
        Verdict::Sound(Some(note.into()))
    }

    pub fn unchecked(note: impl Into<String>) -> Verdict {
        Verdict::Unchecked(Some(note.into()))
    }
}

/// What became of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Sound,
    Unchecked,
    /// A flaw, seen twice: reported.
    Found,
    /// A flaw seen once, not again on a fresh connection: noted, not reported.
    Unconfirmed,
}

/// The usual judge of a request that must be refused (a 4xx): accepted is a finding of
/// `severity` meaning `meaning`; a server error a low finding; rate limited or unanswered,
/// not checked.
pub(super) fn refused(
    what: &str,
    severity: Severity,
    meaning: &str,
) -> impl Fn(&Answer) -> Verdict + use<> {
    let (what, meaning) = (what.to_string(), meaning.to_string());
    move |answer: &Answer| match answer.status {
        _ if answer.is_refusal() => Verdict::sound(format!("refused ({})", answer.describe())),
        Some(429) => Verdict::unchecked("rate limited (429), not checked"),
        Some(s) if s < 400 => Verdict::flaw(severity, meaning.clone()),
        Some(s) => Verdict::flaw(
            Severity::Low,
            format!("{what} got a server error ({s}) instead of a clean refusal."),
        ),
        None => Verdict::unchecked(format!("not checked, {}", answer.describe())),
    }
}

/// A probe account with its tokens.
#[derive(Debug, Clone)]
pub(super) struct ProbeAccount {
    /// The account's id, when the registration answer gave one.
    pub id: Option<String>,
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
    /// Requests sent again on a fresh connection after their connection failed.
    retried: u64,
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
            retried: 0,
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
    ) -> Result<(Probe<'k>, ProbeClient, ProbeAccount), ProbeOutcome> {
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
    pub fn client(&mut self) -> Option<ProbeClient> {
        match self.kit.client() {
            Ok(c) => Some(c),
            Err(e) => {
                self.not_tested(&e);
                None
            }
        }
    }

    /// Sends `call` once and reads the whole answer. Tokens in the answer become secrets.
    pub async fn send(&mut self, client: &ProbeClient, call: &Call) -> Answer {
        self.requests += 1;
        let mut request = client
            .http
            .request(call.method.clone(), self.kit.url(&call.path));
        if let Some(token) = &call.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(address) = &client.source.forwarded_for
            && !call.has_header(FORWARDED_FOR)
        {
            request = request.header(FORWARDED_FOR, address);
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
                let content_type = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match response.bytes().await {
                    Ok(bytes) => Answer::of_body(status, content_type, &bytes),
                    Err(e) => Answer {
                        status: Some(status),
                        content_type,
                        error: Some(format!("the body was cut short ({})", root_cause(&e))),
                        timed_out: e.is_timeout(),
                        ..Answer::default()
                    },
                }
            }
            Err(e) if e.is_timeout() => Answer {
                timed_out: true,
                ..Answer::failed(format!(
                    "no answer within {} s",
                    self.kit.settings.timeout.as_secs()
                ))
            },
            Err(e) => Answer::failed(format!("connection dropped ({})", root_cause(&e))),
        };
        for key in ["access_token", "refresh_token"] {
            if let Some(token) = answer.str_field(key) {
                self.kit.keep_secret(&token);
            }
        }
        answer
    }

    /// Sends `call` and returns the answer to judge it by. When the connection fails (a
    /// server may close it after an error answer to an earlier request), the request is
    /// sent again on a fresh connection and judged on that answer alone.
    pub async fn ask(&mut self, client: &ProbeClient, call: &Call) -> Answer {
        let answer = self.send(client, call).await;
        if !answer.connection_failed() {
            return answer;
        }
        match self.kit.fresh(client) {
            Ok(fresh) => {
                self.retried += 1;
                self.send(&fresh, call).await
            }
            Err(_) => answer,
        }
    }

    /// Asks `call` and judges the answer with `judge`; a flaw is reported only when a
    /// fresh connection shows it again (see [`Probe::settle`]).
    pub async fn check(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        judge: impl Fn(&Answer) -> Verdict,
    ) -> (Answer, Outcome) {
        let answer = self.ask(client, call).await;
        let outcome = self.settle(client, call, what, &answer, judge).await;
        (answer, outcome)
    }

    /// Judges `answer`, already had for `call`. A flaw is sent again on a fresh connection
    /// of the same source and reported (with that second answer) only when the second
    /// answer shows the same flaw; otherwise it is noted as not confirmed.
    pub async fn settle(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        answer: &Answer,
        judge: impl Fn(&Answer) -> Verdict,
    ) -> Outcome {
        match judge(answer) {
            Verdict::Flaw { severity, .. } => {
                let again = self.send_fresh(client, call).await;
                self.confirm(call, what, answer, &again, severity, judge)
            }
            verdict => self.record(what, verdict),
        }
    }

    /// Sends `call` on a fresh connection of the same source as `client`.
    pub async fn send_fresh(&mut self, client: &ProbeClient, call: &Call) -> Answer {
        match self.kit.fresh(client) {
            Ok(fresh) => self.send(&fresh, call).await,
            Err(e) => Answer::failed(e),
        }
    }

    /// Opens a WebSocket with `token` at the handshake and judges the answer (101 when
    /// accepted), confirming a flaw with a second handshake.
    pub async fn check_ws(
        &mut self,
        client: &ProbeClient,
        token: &str,
        in_query: bool,
        what: &str,
        judge: impl Fn(&Answer) -> Verdict,
    ) -> Outcome {
        let (call, answer, _socket) = self.ws_connect(client, token, in_query).await;
        match judge(&answer) {
            Verdict::Flaw { severity, .. } => {
                let (_, again, _socket) = self.ws_connect(client, token, in_query).await;
                self.confirm(&call, what, &answer, &again, severity, judge)
            }
            verdict => self.record(what, verdict),
        }
    }

    /// `call` must be refused: [`refused`] as the judge.
    pub async fn expect_refused(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        severity: Severity,
        meaning: &str,
    ) -> Outcome {
        let judge = refused(what, severity, meaning);
        self.check(client, call, what, judge).await.1
    }

    /// The WebSocket handshake with `token` must be refused: [`refused`] as the judge.
    pub async fn expect_refused_ws(
        &mut self,
        client: &ProbeClient,
        token: &str,
        in_query: bool,
        what: &str,
        severity: Severity,
        meaning: &str,
    ) -> Outcome {
        let judge = refused(what, severity, meaning);
        self.check_ws(client, token, in_query, what, judge).await
    }

    fn record(&mut self, what: &str, verdict: Verdict) -> Outcome {
        match verdict {
            Verdict::Sound(note) => {
                if let Some(note) = note {
                    self.note(format!("{what}: {note}"));
                }
                Outcome::Sound
            }
            Verdict::Unchecked(note) => {
                if let Some(note) = note {
                    self.note(format!("{what}: {note}"));
                }
                Outcome::Unchecked
            }
            Verdict::Flaw { .. } => Outcome::Found,
        }
    }

    /// Reports a flaw the probe has established (seen twice, the second time in `answer`
    /// on a fresh connection, or seen by its effect), shown by `input` (what the request
    /// sent, in words). Findings are by cause: a flaw of the same endpoint, severity and
    /// meaning as one already reported adds its input to that finding.
    pub fn report(
        &mut self,
        severity: Severity,
        call: &Call,
        answer: &Answer,
        meaning: &str,
        input: &str,
    ) {
        self.add_finding(severity, call, answer, meaning, input, None);
    }

    /// [`Probe::report`], showing `evidence` (when given) as the answer's body of a new
    /// finding.
    fn add_finding(
        &mut self,
        severity: Severity,
        call: &Call,
        answer: &Answer,
        meaning: &str,
        input: &str,
        evidence: Option<String>,
    ) {
        let endpoint = call.endpoint();
        // A `what` that ends naming the endpoint ("limit 0 on POST /api/search") is shown
        // as its input alone, under the finding's endpoint.
        let input = input
            .strip_suffix(endpoint.as_str())
            .and_then(|i| i.strip_suffix(" on "))
            .unwrap_or(input);
        let same = self
            .findings
            .iter_mut()
            .find(|f| f.severity == severity && f.endpoint == endpoint && f.meaning == meaning);
        if let Some(finding) = same {
            if !finding.inputs.iter().any(|i| i == input) {
                finding.inputs.push(input.to_string());
            }
            return;
        }
        let mut answer = answer.record();
        if let Some(evidence) = evidence {
            answer.body = evidence;
        }
        self.findings.push(Finding {
            probe: self.name.to_string(),
            severity,
            endpoint,
            inputs: vec![input.to_string()],
            request: call.record(),
            answer,
            meaning: meaning.to_string(),
        });
    }

    /// A flaw of `severity` was seen in `first`; `again` is the same request's answer on
    /// a fresh connection. Reported only when `again` shows the same flaw.
    fn confirm(
        &mut self,
        call: &Call,
        what: &str,
        first: &Answer,
        again: &Answer,
        severity: Severity,
        judge: impl Fn(&Answer) -> Verdict,
    ) -> Outcome {
        match judge(again) {
            Verdict::Flaw {
                severity: seen,
                meaning,
                evidence,
            } if seen == severity => {
                self.add_finding(severity, call, again, &meaning, what, evidence);
                Outcome::Found
            }
            _ => {
                self.note(format!(
                    "{what}: answered {} once, then {} on a fresh connection: not confirmed, not reported",
                    first.describe(),
                    again.describe()
                ));
                Outcome::Unconfirmed
            }
        }
    }

    /// Opens a WebSocket on a new session with `token` in the query or in an
    /// `Authorization` header, with the client's forwarded-for address. The socket is
    /// `Some` when the handshake was accepted.
    pub async fn ws_connect(
        &mut self,
        client: &ProbeClient,
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
        let mut call = Call::get(&path)
            .route("/ws/{session_id}")
            .header("Upgrade", "websocket");
        if !in_query {
            call = call.bearer(token);
        }
        let request = ws_url_of(&self.kit.base, &path)
            .into_client_request()
            .map(|mut request| {
                let headers = request.headers_mut();
                if let (false, Ok(value)) =
                    (in_query, HeaderValue::from_str(&format!("Bearer {token}")))
                {
                    headers.insert("authorization", value);
                }
                if let Some(Ok(value)) = client
                    .source
                    .forwarded_for
                    .as_deref()
                    .map(HeaderValue::from_str)
                {
                    headers.insert("x-forwarded-for", value);
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
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                response.body().as_deref().unwrap_or_default(),
            ),
            Ok(Err(e)) => Answer::failed(format!("handshake failed ({e})")),
            Err(_) => Answer {
                timed_out: true,
                ..Answer::failed(format!(
                    "handshake not answered within {} s",
                    self.kit.settings.timeout.as_secs()
                ))
            },
        };
        (call, answer, None)
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The probe could not establish what it checks.
    pub fn not_tested(&mut self, why: &str) {
        self.untested.push(why.to_string());
    }

    /// Why a setup step's answer leaves the probe nothing to test: rate limited before it
    /// started, or not the API it needs; `None` when the answer is the API's.
    pub fn setup_refused(step: &str, answer: &Answer) -> Option<String> {
        if answer.is_rate_limited() {
            return Some(format!(
                "{step} was rate limited (429) before the probe started"
            ));
        }
        if let Some(why) = answer.not_the_api() {
            return Some(format!(
                "{step} {why}: the API this probe needs is not there"
            ));
        }
        answer
            .status
            .is_none()
            .then(|| format!("{step}: {}", answer.describe()))
    }

    /// Registers a new probe account and logs in.
    pub async fn account(&mut self, client: &ProbeClient) -> Result<ProbeAccount, String> {
        let (email, password) = self.kit.new_credentials();
        let call = Call::post("/api/auth/register").json(json!({
            "email": email,
            "password": password,
            "full_name": "Security Probe",
        }));
        let answer = self.ask(client, &call).await;
        if let Some(why) = Probe::setup_refused("registering a probe account", &answer) {
            return Err(why);
        }
        if !answer.is_success() {
            return Err(format!(
                "registering a probe account was refused ({})",
                answer.describe()
            ));
        }
        let id = answer.json.as_ref().and_then(|v| match v.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let (_, answer) = self.login(client, &email, &password).await;
        match tokens_of(&answer) {
            Some((access, refresh)) => Ok(ProbeAccount {
                id,
                email,
                password,
                access,
                refresh,
                deleted: false,
            }),
            None => Err(
                Probe::setup_refused("logging in to a new probe account", &answer).unwrap_or_else(
                    || {
                        format!(
                            "logging in to a new probe account failed ({})",
                            answer.describe()
                        )
                    },
                ),
            ),
        }
    }

    /// A probe account, or `None` with the probe marked not tested.
    pub async fn account_or_untested(&mut self, client: &ProbeClient) -> Option<ProbeAccount> {
        match self.account(client).await {
            Ok(account) => Some(account),
            Err(why) => {
                self.not_tested(&why);
                None
            }
        }
    }

    pub fn login_call(email: &str, password: &str) -> Call {
        Call::post("/api/auth/login/json").json(json!({"email": email, "password": password}))
    }

    pub async fn login(
        &mut self,
        client: &ProbeClient,
        email: &str,
        password: &str,
    ) -> (Call, Answer) {
        let call = Probe::login_call(email, password);
        let answer = self.ask(client, &call).await;
        (call, answer)
    }

    /// Deletes the probe account (or only logs out with `keep_accounts`). A failure is
    /// noted, never a finding.
    pub async fn remove(&mut self, client: &ProbeClient, account: &ProbeAccount) {
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
        let answer = self.ask(client, &call).await;
        if !answer.is_success() {
            self.note(format!(
                "cleanup: {} {} for the probe account answered {}",
                call.method,
                call.path,
                answer.describe()
            ));
        }
    }

    pub fn finish(mut self) -> ProbeOutcome {
        if self.retried > 0 {
            self.notes.push(format!(
                "{} request{} sent again on a fresh connection after the connection failed \
                 (servers may close it after an error answer) and judged on that answer",
                self.retried,
                if self.retried == 1 { "" } else { "s" }
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::ProbeSettings;
    use url::Url;

    fn answer(status: u16, content_type: &str, body: &str) -> Answer {
        Answer::of_body(status, Some(content_type.into()), body.as_bytes())
    }

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
    fn answers_are_classified() {
        let a = answer(404, "application/json", "{\"detail\":\"Not Found\"}");
        assert!(a.is_refusal() && !a.is_success());
        assert!(answer(429, "application/json", "").is_rate_limited());
        assert!(!answer(429, "application/json", "").is_refusal());
        assert!(answer(204, "application/json", "").is_success());
        let none = Answer::failed("connection dropped (reset)".into());
        assert_eq!(none.describe(), "no answer: connection dropped (reset)");
        assert!(none.connection_failed());
        let slow = Answer {
            timed_out: true,
            ..Answer::failed("no answer within 15 s".into())
        };
        assert!(!slow.connection_failed());
        let tokens = answer(
            200,
            "application/json",
            "{\"access_token\":\"a\",\"refresh_token\":\"r\"}",
        );
        assert_eq!(tokens_of(&tokens), Some(("a".into(), "r".into())));
        assert!(tokens.record().body.contains(REDACTED));
    }

    #[test]
    fn answers_that_are_not_the_api_say_so() {
        let html = answer(501, "text/html", "<html>Unsupported method</html>");
        assert_eq!(
            html.not_the_api().as_deref(),
            Some("answered 501 (text/html)")
        );
        let page = answer(200, "text/html", "<html></html>");
        assert_eq!(
            page.not_the_api().as_deref(),
            Some("answered 200 with text/html, not the API's JSON")
        );
        assert_eq!(
            answer(401, "application/json", "{\"detail\":\"x\"}").not_the_api(),
            None
        );
        let why = Probe::setup_refused("registering", &answer(429, "application/json", "{}"));
        assert_eq!(
            why.as_deref(),
            Some("registering was rate limited (429) before the probe started")
        );
    }

    #[test]
    fn content_is_found_in_json_values_and_shown_with_its_surroundings() {
        let a = answer(
            200,
            "application/json",
            "{\"user\":{\"id\":\"u-42\",\"email\":\"Owner@Example.com\"},\"n\":7}",
        );
        assert!(a.carries("owner@example.com") && a.carries("u-42") && a.carries("7"));
        // A value, not a part of one.
        assert!(!a.carries("u-4") && !a.carries("example.com") && !a.carries(""));
        let csv = answer(200, "text/csv", "record,email\nuser,owner@example.com\n");
        assert!(csv.carries("owner@example.com"));
        let long = answer(
            200,
            "text/plain",
            &format!("{}KEY{}", "a".repeat(100), "b".repeat(100)),
        );
        let shown = long.around("KEY").expect("found");
        assert_eq!(shown, format!("…{}KEY{}…", "a".repeat(60), "b".repeat(60)));
        assert_eq!(
            answer(200, "text/plain", "xKEYy").around("KEY").as_deref(),
            Some("xKEYy")
        );
    }

    #[test]
    fn probe_addresses_stay_apart_from_the_users_pool() {
        let kit = |pool: Option<u32>| {
            let mut settings = ProbeSettings::new(Url::parse("http://127.0.0.1:1").expect("url"));
            settings.forwarded_for_pool = pool;
            let tls = crate::transport::tls_config(&crate::transport::TlsOptions::default())
                .expect("tls");
            Kit::new(settings, Arc::new(tls))
        };
        // From the end of the documentation addresses, where a pool of 10 never reaches.
        let k = kit(Some(10));
        assert_eq!(k.probe_address(1), "203.0.113.254");
        let users: Vec<String> = (0..10)
            .map(|n| documentation_address(n).to_string())
            .collect();
        for n in 1..=752 {
            assert!(!users.contains(&k.probe_address(n)), "{n}");
        }
        // Past what the pool leaves, and with a pool that takes them all: IPv6.
        assert_eq!(k.probe_address(753), "2001:db8:10ad::2f1");
        assert_eq!(kit(Some(5000)).probe_address(1), "2001:db8:10ad::1");
        assert!(kit(Some(10)).own_sources() && kit(None).own_sources());
        let client = k.client().expect("client");
        assert_eq!(
            client.source.forwarded_for.as_deref(),
            Some("203.0.113.254")
        );
        let fresh = k.fresh(&client).expect("fresh");
        assert_eq!(fresh.source.forwarded_for, client.source.forwarded_for);
        assert_eq!(fresh.source.local, client.source.local);
    }
}
