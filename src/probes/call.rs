//! The requests probes make (`Call`): kept whole so that a flaw can be sent again on a fresh
//! connection and shown, redacted, in its finding. Not the run's `Exchange`, which records
//! into the ledger and is never sent twice.

use super::ProbeRequest;
use super::redact::{REDACTED, redact_json, redact_query, redacted_value};
use reqwest::Method;
use serde_json::Value;

/// The body of a call (the run's `exchange::Body` has no raw bodies).
#[derive(Debug, Clone)]
pub(super) enum CallBody {
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
    pub body: CallBody,
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
            body: CallBody::None,
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
        self.body = CallBody::Json(body);
        self
    }

    pub fn raw(mut self, content_type: &'static str, text: impl Into<String>) -> Call {
        self.body = CallBody::Raw(content_type, text.into());
        self
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Call {
        self.body = CallBody::Form(
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

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The request as reports show it, secrets redacted (shortened and escaped later, with
    /// the rest of the report).
    pub fn record(&self) -> ProbeRequest {
        let mut parts = Vec::new();
        if self.bearer.is_some() {
            parts.push(format!("Authorization: Bearer {REDACTED}"));
        }
        for (name, value) in &self.headers {
            parts.push(format!("{name}: {value}"));
        }
        let body = match (&self.label, &self.body) {
            (Some(label), _) => Some(label.clone()),
            (None, CallBody::None) => None,
            (None, CallBody::Json(v)) => Some(redact_json(v).to_string()),
            (None, CallBody::Raw(kind, text)) => Some(format!("{kind} {text}")),
            (None, CallBody::Form(pairs)) => Some(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_a_recorded_request() {
        let call = Call::post("/api/auth/login")
            .form(&[("username", "u@x.co"), ("password", "Secret1x")])
            .bearer("eyJhbGciOi.secret");
        let rec = call.record();
        assert!(!rec.summary.contains("Secret1x"), "{}", rec.summary);
        assert!(!rec.summary.contains("eyJ"), "{}", rec.summary);
        assert!(rec.summary.contains("Bearer [REDACTED]"), "{}", rec.summary);
    }
}
