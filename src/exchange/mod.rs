//! The client side of the simulated users: the run's shared [`context`], each user's
//! [`session`], and the request exchange with the honest classification of answers.
//!
//! Every HTTP request of the load test goes through [`Exchange::send`]: it is sent with the
//! simulated user's own client, timed to the end of the body (as Locust times it), classified
//! (success, failure, rate limited, expected error) before anything is recorded, and then
//! recorded once in Goose's metrics (so Goose's reports and dashboard show it under its
//! template name) and once in the run's [`Ledger`](crate::measure::Ledger).

pub mod arrivals;
pub mod context;
pub mod session;

use crate::measure::{Observation, Outcome, RequestKind};
use crate::transport::user_client::{HttpError, Outgoing};
use bytes::Bytes;
use context::RunContext;
use goose::goose::{GooseUser, TransactionError};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::Value;
use session::UserSession;
use std::time::{Duration, Instant};

/// A body check: `Err(reason)` turns a 2xx answer into a failure.
pub type BodyCheck = fn(&Value) -> Result<(), String>;

/// What came back for one request.
#[derive(Debug)]
pub struct Reply {
    /// `None` when the request never got an answer (connection refused, timeout, ...).
    pub status: Option<StatusCode>,
    /// The answer's headers (empty without an answer).
    pub headers: HeaderMap,
    /// The body as JSON, when it was JSON.
    pub json: Option<Value>,
    /// How the answer was classified and recorded.
    pub outcome: Outcome,
    /// From sending to the end of the body.
    pub duration: Duration,
}

impl Reply {
    /// Classified as a success (the expected status, and the body check held).
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, Outcome::Success)
    }

    /// The status as a number.
    pub fn status_u16(&self) -> Option<u16> {
        self.status.map(|s| s.as_u16())
    }

    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }

    /// The body's `id`, a string or a number, as text.
    pub fn id(&self) -> Option<String> {
        match self.json.as_ref()?.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// What the server said in an error body: `detail`, or the first message of a 422's
    /// list, shortened.
    pub fn detail(&self) -> Option<String> {
        let detail = self.json.as_ref()?.get("detail")?;
        let text = match detail {
            Value::String(text) => text.clone(),
            Value::Array(items) => items.first()?.get("msg")?.as_str()?.to_string(),
            _ => return None,
        };
        Some(shorten(&text, 80))
    }

    /// Why the request got no answer (a reset, a timeout), when it got none.
    pub fn transport_failure(&self) -> Option<&str> {
        match (&self.status, &self.outcome) {
            (None, Outcome::Failure(text)) => Some(text.trim_start_matches("0: ")),
            _ => None,
        }
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Body of a request.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// A JSON body ([`Exchange::json`]).
    Json(Value),
    /// A form body ([`Exchange::form`]).
    Form(Vec<(String, String)>),
}

/// One request, described before it is sent.
pub struct Exchange {
    method: Method,
    /// Path with real ids, e.g. `/api/session/3f2a.../history`.
    path: String,
    /// Template name the reports group by, e.g. `/api/session/{id}/history`.
    name: &'static str,
    body: Body,
    bearer: Option<String>,
    /// Statuses that count as success (2xx when empty).
    ok: &'static [u16],
    /// Statuses the task's contract expects as errors: counted, shown, not failures.
    expected_errors: &'static [u16],
    check: Option<BodyCheck>,
}

impl Exchange {
    /// A request to `path` (with real ids), reported under `name` (the template, e.g.
    /// `/api/session/{id}/history`, or a name of one's own to keep requests apart). By
    /// default any 2xx is a success.
    pub fn new(method: Method, path: impl Into<String>, name: &'static str) -> Self {
        Exchange {
            method,
            path: path.into(),
            name,
            body: Body::None,
            bearer: None,
            ok: &[],
            expected_errors: &[],
            check: None,
        }
    }

    /// A GET; see [`Exchange::new`].
    pub fn get(path: impl Into<String>, name: &'static str) -> Self {
        Self::new(Method::GET, path, name)
    }

    /// A POST; see [`Exchange::new`].
    pub fn post(path: impl Into<String>, name: &'static str) -> Self {
        Self::new(Method::POST, path, name)
    }

    /// A PATCH; see [`Exchange::new`].
    pub fn patch(path: impl Into<String>, name: &'static str) -> Self {
        Self::new(Method::PATCH, path, name)
    }

    /// Sends `body` as JSON.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// Sends `fields` as a form.
    pub fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    /// Sends `Authorization: Bearer TOKEN` when there is a token.
    pub fn bearer(mut self, token: Option<&str>) -> Self {
        self.bearer = token.map(str::to_string);
        self
    }

    /// The statuses that count as success, instead of any 2xx.
    pub fn ok(mut self, statuses: &'static [u16]) -> Self {
        self.ok = statuses;
        self
    }

    /// Statuses the task expects as errors: counted and shown apart, not failures (e.g.
    /// 401 for a login to an account that does not exist).
    pub fn expected_errors(mut self, statuses: &'static [u16]) -> Self {
        self.expected_errors = statuses;
        self
    }

    /// Checks the JSON body of a successful answer: `Err(reason)` makes it a failure with
    /// that reason.
    pub fn check(mut self, check: BodyCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// Sends the request with the user's client, classifies the answer and records it.
    /// Only a failure to record (Goose's metrics channel closed at shutdown) is an `Err`.
    pub async fn send(
        self,
        user: &mut GooseUser,
        ctx: &RunContext,
    ) -> Result<Reply, Box<TransactionError>> {
        let (client, class, forwarded_for) = match user.get_session_data::<UserSession>() {
            Some(s) => (s.client.clone(), s.class, s.forwarded_for.clone()),
            None => (ctx.anonymous_client(), "anonymous", None),
        };
        let url = ctx.url(&self.path);
        let request = self.outgoing(&url, forwarded_for);
        // Open model: the iteration's first request counts from its arrival's intended start.
        let intended = match ctx.arrivals {
            Some(_) => session::session_mut(user).and_then(|s| s.intended.take()),
            None => None,
        };

        let started = Instant::now();
        let in_flight = InFlight::new(&ctx.ledger.live.in_flight);
        let answer = match request {
            Ok(request) => client.send(request).await,
            Err(e) => Err(e),
        };
        let (status, headers, body) = match answer {
            Ok(answer) => (Some(answer.status), answer.headers, answer.body),
            Err(e) => (None, HeaderMap::new(), Err(e)),
        };
        let duration = started.elapsed();
        drop(in_flight);
        let (judged, service) = match (ctx.arrivals.is_some(), intended) {
            (false, _) => (duration, None),
            (true, None) => (duration, Some(duration)),
            (true, Some(at)) => (
                started.saturating_duration_since(at) + duration,
                Some(duration),
            ),
        };

        let (outcome, json, bytes) = match body {
            Ok(bytes) => {
                let json = serde_json::from_slice::<Value>(&bytes).ok();
                let status = status.unwrap_or(StatusCode::OK);
                (
                    self.classify(status, json.as_ref()),
                    json,
                    bytes.len() as u64,
                )
            }
            Err(e) => (Outcome::Failure(transport_error(&e)), None, 0),
        };
        if matches!(outcome, Outcome::RateLimited) {
            ctx.ledger.record_rate_limit_headers(
                headers.contains_key("retry-after"),
                headers.contains_key("x-ratelimit-limit")
                    && headers.contains_key("x-ratelimit-remaining"),
            );
        }
        let method = method_label(&self.method);
        record(
            user,
            ctx,
            &Observation {
                kind: RequestKind::Http,
                method,
                name: self.name,
                user_class: class,
                started,
                duration: judged,
                service,
                status: status.map(|s| s.as_u16()),
                outcome: &outcome,
                bytes,
            },
        )
        .await?;
        Ok(Reply {
            status,
            headers,
            json,
            outcome,
            duration,
        })
    }

    /// The request as the user's client sends it: its headers and its body's bytes.
    fn outgoing<'a>(
        &self,
        url: &'a url::Url,
        forwarded_for: Option<String>,
    ) -> Result<Outgoing<'a>, HttpError> {
        let mut headers = HeaderMap::new();
        let value = |text: &str| {
            HeaderValue::from_str(text).map_err(|e| HttpError::Build(http::Error::from(e)))
        };
        if let Some(token) = &self.bearer {
            headers.insert(AUTHORIZATION, value(&format!("Bearer {token}"))?);
        }
        if let Some(address) = forwarded_for {
            headers.insert("x-forwarded-for", value(&address)?);
        }
        let body = match &self.body {
            Body::None => Bytes::new(),
            Body::Json(json) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(json.to_string())
            }
            Body::Form(fields) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                Bytes::from(form)
            }
        };
        Ok(Outgoing {
            method: self.method.clone(),
            url,
            headers,
            body,
        })
    }

    fn classify(&self, status: StatusCode, json: Option<&Value>) -> Outcome {
        let code = status.as_u16();
        let ok = if self.ok.is_empty() {
            status.is_success()
        } else {
            self.ok.contains(&code)
        };
        if ok {
            if let Some(check) = self.check {
                let Some(json) = json else {
                    return Outcome::Failure(format!("{code}: body is not JSON"));
                };
                if let Err(reason) = check(json) {
                    return Outcome::Failure(format!("{code}: {reason}"));
                }
            }
            return Outcome::Success;
        }
        if code == 429 {
            return Outcome::RateLimited;
        }
        let detail = json
            .and_then(|v| v.get("detail"))
            .and_then(Value::as_str)
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        let text = format!("{code}{detail}");
        if self.expected_errors.contains(&code) {
            Outcome::ExpectedError(text)
        } else {
            Outcome::Failure(text)
        }
    }
}

/// Counts a request in flight until it is dropped (answered, failed, or its task cancelled).
struct InFlight<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> InFlight<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Records one operation in the run's ledger, and in Goose's metrics when Goose's own
/// figures are kept (they cost a message to Goose's metrics task per batch, and with the
/// suite's waits a batch holds one request).
pub async fn record(
    user: &mut GooseUser,
    ctx: &RunContext,
    obs: &Observation<'_>,
) -> Result<(), Box<TransactionError>> {
    ctx.ledger.record(obs);
    if !ctx.goose_metrics {
        return Ok(());
    }
    let (success, error) = match obs.outcome {
        Outcome::Success | Outcome::ExpectedError(_) => (true, None),
        Outcome::Failure(text) => (false, Some(text.as_str())),
        Outcome::RateLimited => (false, Some("429 rate limited")),
    };
    let label = match obs.kind {
        RequestKind::Http => obs.method,
        RequestKind::WebSocket => "WS",
    };
    user.record_custom_request_duration(label, obs.name, obs.duration, success, obs.status, error)
        .await
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// A short, stable description of a transport error (no URLs, so errors group well).
pub fn transport_error(e: &HttpError) -> String {
    format!("0: {}", e.kind())
}

/// `Retry-After` in seconds, if the answer had one.
pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn healthy(v: &Value) -> Result<(), String> {
        match v.get("status").and_then(Value::as_str) {
            Some("healthy") => Ok(()),
            other => Err(format!("status is {other:?}, not healthy")),
        }
    }

    #[test]
    fn classification_is_honest() {
        let x = Exchange::get("/health", "/health").check(healthy);
        let good = json!({"status": "healthy"});
        assert_eq!(x.classify(StatusCode::OK, Some(&good)), Outcome::Success);
        let bad = json!({"status": "degraded"});
        assert!(x.classify(StatusCode::OK, Some(&bad)).is_failure());
        assert!(x.classify(StatusCode::OK, None).is_failure());
        assert_eq!(
            x.classify(StatusCode::TOO_MANY_REQUESTS, None),
            Outcome::RateLimited
        );
        let err = json!({"detail": "boom"});
        assert_eq!(
            x.classify(StatusCode::INTERNAL_SERVER_ERROR, Some(&err)),
            Outcome::Failure("500 boom".into())
        );
    }

    #[test]
    fn expected_errors_are_not_failures() {
        let x =
            Exchange::post("/api/auth/login/json", "/api/auth/login/json").expected_errors(&[401]);
        assert_eq!(
            x.classify(StatusCode::UNAUTHORIZED, None),
            Outcome::ExpectedError("401".into())
        );
        assert!(x.classify(StatusCode::FORBIDDEN, None).is_failure());
    }

    #[test]
    fn explicit_ok_statuses_replace_2xx() {
        let x = Exchange::post("/api/auth/register", "/api/auth/register").ok(&[201]);
        assert_eq!(x.classify(StatusCode::CREATED, None), Outcome::Success);
        assert!(x.classify(StatusCode::OK, None).is_failure());
    }
}
