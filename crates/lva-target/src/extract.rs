//! Request extractors whose failures are contract-shaped JSON (422 and friends)
//! instead of axum's plain-text rejections.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult, FieldError, RawAnswer};

/// A JSON object body.
pub(crate) struct JsonBody(pub Map<String, Value>);

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_json_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))
}

/// Parses a body that must be a JSON object.
pub(crate) fn parse_object(bytes: &[u8], content_type_ok: bool) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(FieldError::whole_body(
            "Field required",
            "missing",
        )));
    }
    if !content_type_ok {
        return Err(ApiError::invalid(FieldError::whole_body(
            "Expected a JSON body (Content-Type: application/json)",
            "content_type",
        )));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(FieldError::whole_body(
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        ))),
        Err(e) => Err(ApiError::Validation(vec![FieldError {
            loc: vec![json!("body"), json!(e.column())],
            msg: format!("JSON decode error: {e}"),
            kind: "json_invalid".into(),
        }])),
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ok = is_json_type(&content_type(req.headers()));
        let bytes = read_body(req, state).await?;
        parse_object(&bytes, ok).map(JsonBody)
    }
}

/// A body that may be empty; when present it must be a JSON object.
pub(crate) struct OptionalJsonBody(pub Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ok = is_json_type(&content_type(req.headers()));
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        parse_object(&bytes, ok).map(|m| Self(Some(m)))
    }
}

/// An `application/x-www-form-urlencoded` body, as ordered pairs.
pub(crate) struct FormBody(pub Vec<(String, String)>);

impl FormBody {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(req.headers());
        let is_form =
            ct.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded";
        let bytes = read_body(req, state).await?;
        if !is_form {
            return Err(ApiError::invalid(FieldError::whole_body(
                "Expected a form body (Content-Type: application/x-www-form-urlencoded)",
                "content_type",
            )));
        }
        let pairs = url::form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Self(pairs))
    }
}

/// Query-string pairs, parsed leniently (bad percent-encoding is decoded lossily).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Reads typed fields out of a JSON object, collecting every problem before failing.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    fn string_type(&mut self, name: &str) {
        self.errors.push(FieldError::body(
            name,
            "Input should be a valid string",
            "string_type",
        ));
    }

    /// A required string.
    pub fn required_str(&mut self, name: &str) -> Option<&'a str> {
        match self.map.get(name) {
            None | Some(Value::Null) => {
                self.errors
                    .push(FieldError::body(name, "Field required", "missing"));
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.string_type(name);
                None
            }
        }
    }

    /// An optional string (absent or null gives `None`).
    pub fn optional_str(&mut self, name: &str) -> Option<&'a str> {
        self.nullable_str(name).flatten()
    }

    /// For updates: absent → `None`, null → `Some(None)`, a string → `Some(Some(s))`.
    pub fn nullable_str(&mut self, name: &str) -> Option<Option<&'a str>> {
        match self.map.get(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.as_str())),
            Some(_) => {
                self.string_type(name);
                None
            }
        }
    }

    /// An optional boolean with a default.
    pub fn bool_or(&mut self, name: &str, default: bool) -> bool {
        match self.map.get(name) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.errors.push(FieldError::body(
                    name,
                    "Input should be a valid boolean",
                    "bool_type",
                ));
                default
            }
        }
    }

    /// An optional integer with a default (a float with no fraction is accepted).
    pub fn int_or(&mut self, name: &str, default: i64) -> i64 {
        match self.map.get(name) {
            None | Some(Value::Null) => default,
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    return i;
                }
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
                    _ => {
                        self.errors.push(FieldError::body(
                            name,
                            "Input should be a valid integer",
                            "int_type",
                        ));
                        default
                    }
                }
            }
            Some(_) => {
                self.errors.push(FieldError::body(
                    name,
                    "Input should be a valid integer",
                    "int_type",
                ));
                default
            }
        }
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `Ok` when every field was fine, else the 422 with all problems.
    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Backstop: an error answer that is not JSON (axum's own 405, 413, a rejection
/// we did not wrap) gets the contract's `{"detail": ...}` body; headers such as
/// `Allow` are kept.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400
        || is_json_type(&content_type(res.headers()))
        || res.extensions().get::<RawAnswer>().is_some()
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_owned(),
        _ => default_reason(status),
    };
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        "Method Not Allowed".to_owned()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = Body::from(json!({ "detail": detail }).to_string());
    Response::from_parts(parts, body).into_response()
}

fn default_reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_owned()
}
