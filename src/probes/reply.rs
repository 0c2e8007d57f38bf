//! What a server answered a probe (or why it did not), read for what the probes judge:
//! success, refusal, rate limiting, whether it is the API at all, what the body carries.

use super::ProbeAnswer;
use super::redact::redact_json;
use serde_json::Value;

/// How much of a body around a piece of evidence a finding shows, on each side.
const EVIDENCE_CONTEXT: usize = 60;

/// A server's reply to a probe's call, or why there was none; reports show it as a
/// `ProbeAnswer` ([`ProbeReply::record`]). Not the run's `exchange::Reply`.
#[derive(Debug, Clone, Default)]
pub(super) struct ProbeReply {
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

impl ProbeReply {
    pub fn of_body(status: u16, content_type: Option<String>, bytes: &[u8]) -> ProbeReply {
        let text = String::from_utf8_lossy(bytes).into_owned();
        ProbeReply {
            status: Some(status),
            content_type,
            json: serde_json::from_str(&text).ok(),
            text,
            ..ProbeReply::default()
        }
    }

    pub fn failed(error: String) -> ProbeReply {
        ProbeReply {
            error: Some(error),
            ..ProbeReply::default()
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
    pub fn connection_failed(&self) -> bool {
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
    pub fn record(&self) -> ProbeAnswer {
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

/// The access and refresh tokens of a login or refresh answer.
pub(super) fn tokens_of(answer: &ProbeReply) -> Option<(String, String)> {
    if !answer.is_success() {
        return None;
    }
    let access = answer.str_field("access_token")?;
    let refresh = answer.str_field("refresh_token").unwrap_or_default();
    Some((access, refresh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::redact::REDACTED;

    fn answer(status: u16, content_type: &str, body: &str) -> ProbeReply {
        ProbeReply::of_body(status, Some(content_type.into()), body.as_bytes())
    }

    #[test]
    fn answers_are_classified() {
        let a = answer(404, "application/json", "{\"detail\":\"Not Found\"}");
        assert!(a.is_refusal() && !a.is_success());
        assert!(answer(429, "application/json", "").is_rate_limited());
        assert!(!answer(429, "application/json", "").is_refusal());
        assert!(answer(204, "application/json", "").is_success());
        let none = ProbeReply::failed("connection dropped (reset)".into());
        assert_eq!(none.describe(), "no answer: connection dropped (reset)");
        assert!(none.connection_failed());
        let slow = ProbeReply {
            timed_out: true,
            ..ProbeReply::failed("no answer within 15 s".into())
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
}
