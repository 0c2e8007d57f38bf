//! One probe while it runs (`Probe`): it sends its calls (a call whose connection failed is
//! sent again on a fresh one), keeps its notes and findings, and ends in its `ProbeOutcome`.
//! How answers are judged is in `judge`, WebSocket handshakes in `ws`, accounts in `accounts`.

use super::call::{Call, CallBody};
use super::client::{Kit, ProbeClient};
use super::reply::ProbeReply;
use super::{Finding, ProbeOutcome, ProbeStatus};
use crate::transport::root_cause;

const FORWARDED_FOR: &str = "X-Forwarded-For";

/// One probe while it runs: its requests, findings and notes.
pub(super) struct Probe<'k> {
    pub kit: &'k Kit,
    pub(super) name: &'static str,
    pub(super) requests: u64,
    /// Requests sent again on a fresh connection after their connection failed.
    retried: u64,
    pub(super) findings: Vec<Finding>,
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
    pub async fn send(&mut self, client: &ProbeClient, call: &Call) -> ProbeReply {
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
            CallBody::None => request,
            CallBody::Json(v) => request.json(v),
            CallBody::Raw(kind, text) => request
                .header(reqwest::header::CONTENT_TYPE, *kind)
                .body(text.clone()),
            CallBody::Form(pairs) => request.form(pairs),
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
                    Ok(bytes) => ProbeReply::of_body(status, content_type, &bytes),
                    Err(e) => ProbeReply {
                        status: Some(status),
                        content_type,
                        error: Some(format!("the body was cut short ({})", root_cause(&e))),
                        timed_out: e.is_timeout(),
                        ..ProbeReply::default()
                    },
                }
            }
            Err(e) if e.is_timeout() => ProbeReply {
                timed_out: true,
                ..ProbeReply::failed(format!(
                    "no answer within {} s",
                    self.kit.settings.timeout.as_secs()
                ))
            },
            Err(e) => ProbeReply::failed(format!("connection dropped ({})", root_cause(&e))),
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
    pub async fn ask(&mut self, client: &ProbeClient, call: &Call) -> ProbeReply {
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

    /// Sends `call` on a fresh connection of the same source as `client`.
    pub async fn send_fresh(&mut self, client: &ProbeClient, call: &Call) -> ProbeReply {
        match self.kit.fresh(client) {
            Ok(fresh) => self.send(&fresh, call).await,
            Err(e) => ProbeReply::failed(e),
        }
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
    pub fn setup_refused(step: &str, answer: &ProbeReply) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_setup_step_says_so() {
        let limited = ProbeReply::of_body(429, Some("application/json".into()), b"{}");
        assert_eq!(
            Probe::setup_refused("registering", &limited).as_deref(),
            Some("registering was rate limited (429) before the probe started")
        );
    }
}
