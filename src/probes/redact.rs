//! Redaction: the passwords and tokens the probes use never reach an output. Values under
//! secret keys are replaced where a request or answer is recorded, and every secret the
//! probes used is scrubbed from the whole report before it is shown.

use super::client::Kit;
use serde_json::Value;
use std::fmt;

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

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

pub(super) fn redacted_value<'a>(key: &str, value: &'a str) -> &'a str {
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

/// The passwords and tokens the probes used; kept to scrub them from every output. Never
/// printed: `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets(pub(super) Vec<String>);

impl Secrets {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when any secret occurs in `text`.
    pub fn appears_in(&self, text: &str) -> bool {
        self.0.iter().any(|s| text.contains(s.as_str()))
    }

    /// Replaces every secret in `text` by `[REDACTED]`.
    pub(super) fn scrub(&self, text: &mut String) {
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), REDACTED);
            }
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

impl Kit {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_in_bodies_and_queries() {
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
    }
}
