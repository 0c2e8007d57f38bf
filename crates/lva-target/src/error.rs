//! Errors: `ServerError` for starting the server, `ApiError` for HTTP answers.

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// Why the reference server could not be configured, started or kept running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An option has a value outside its valid range; the message names the option.
    #[error("{0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite database could not be opened or migrated.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A background blocking task failed (panicked or was cancelled).
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Any other I/O failure (signals, stdout, the accept loop).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// One entry of a 422 answer, shaped like FastAPI's validation errors.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// An error about a field of the JSON body (`loc` = `["body", field]`).
    pub fn body(field: &str, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: vec![json!("body"), json!(field)],
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }

    /// An error about a query parameter (`loc` = `["query", name]`).
    pub fn query(name: &str, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: vec![json!("query"), json!(name)],
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }

    /// An error about the body as a whole (`loc` = `["body"]`).
    pub fn whole_body(msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: vec![json!("body")],
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// An answer other than success, rendered as the contract's JSON error body.
#[derive(Debug)]
pub enum ApiError {
    /// `{"detail": "<text>"}` with the given status.
    Detail(StatusCode, String),
    /// 401 with `WWW-Authenticate: Bearer`.
    Unauthorized(String),
    /// 422 with a list of field errors.
    Validation(Vec<FieldError>),
    /// Something broke on our side; the cause is logged, the client gets a generic 500.
    Internal(String),
    /// An error nothing handled, answered the way ASGI and WSGI servers do: 500
    /// `text/plain` `Internal Server Error` (the cause is logged).
    Unhandled(String),
}

/// Marks an answer whose body must stay as it is (not turned into the contract's JSON).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAnswer;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::Detail(status, detail.into())
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(detail.into())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn invalid(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("blocking task: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Detail(status, detail) => {
                (status, Json(json!({ "detail": detail }))).into_response()
            }
            Self::Unauthorized(detail) => {
                let mut res =
                    (StatusCode::UNAUTHORIZED, Json(json!({ "detail": detail }))).into_response();
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "detail": errors })),
            )
                .into_response(),
            Self::Internal(cause) => {
                errln!("lva-target: internal error: {cause}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "detail": "Internal server error" })),
                )
                    .into_response()
            }
            Self::Unhandled(cause) => {
                errln!("lva-target: unhandled error: {cause}");
                let mut res = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Internal Server Error",
                )
                    .into_response();
                res.extensions_mut().insert(RawAnswer);
                res
            }
        }
    }
}

/// Result type of request handlers.
pub type ApiResult<T> = Result<T, ApiError>;
