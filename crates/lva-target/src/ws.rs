//! WebSocket `/ws/{session_id}`: token and Origin checked at the handshake
//! (refused with HTTP 403 before any upgrade), then `audio` and `end` messages.
//!
//! Close codes: 1000 after `end`; 1007 for a text frame that is not JSON;
//! 1003 for a binary frame; 1001 when the server shuts down.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Shared;
use super::auth::{authenticate_as, bearer};
use super::conversation::{decode_audio, record_exchange, reply_to_audio};
use super::error::ApiError;
use super::extract::query_pairs;
use super::faults;
use super::metrics::OpenSocket;

/// Largest accepted message (base64 audio included).
const MAX_MESSAGE_BYTES: usize = 4 << 20;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/ws/{session_id}", get(handshake))
}

fn origin_allowed(state: &Shared, headers: &HeaderMap) -> bool {
    let (Some(allowed), Some(origin)) =
        (&state.config.allowed_origins, headers.get(header::ORIGIN))
    else {
        // No list, or no Origin header (a non-browser client): allowed.
        return true;
    };
    let origin = origin.to_str().unwrap_or("").trim().trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

async fn handshake(
    State(state): State<Shared>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let mut res = ApiError::new(StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade required")
            .into_response();
        res.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return res;
    };
    if !origin_allowed(&state, &headers) {
        return ApiError::forbidden("Origin not allowed").into_response();
    }
    let from_query = query_pairs(query.as_deref())
        .into_iter()
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v);
    let Some(token) = from_query.or_else(|| bearer(&headers).map(str::to_owned)) else {
        return ApiError::forbidden("Not authenticated").into_response();
    };
    let deleted_ok = state.config.flaws.ws_deleted_accepted;
    let user_id = match authenticate_as(&state, &token, deleted_ok).await {
        Ok(auth) => auth.user.id,
        // Every refusal is a 403 at the handshake, with the reason in the body.
        Err(ApiError::Detail(_, detail) | ApiError::Unauthorized(detail)) => {
            return ApiError::forbidden(detail).into_response();
        }
        Err(e) => return e.into_response(),
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(state, socket, session_id, user_id))
}

async fn send_json(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Sends a close frame, then waits briefly for the peer's close so the
/// closing handshake completes cleanly.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn session(state: Shared, mut socket: WebSocket, session_id: String, user_id: String) {
    let _open = OpenSocket::new(&state.metrics);
    let mut shutdown = state.shutdown.clone();
    let mut exchanges = 0usize;
    loop {
        let msg = tokio::select! {
            msg = socket.recv() => Some(msg),
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(msg) = msg else {
            close(&mut socket, close_code::AWAY, "server shutting down").await;
            return;
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                close(
                    &mut socket,
                    close_code::UNSUPPORTED,
                    "binary frames are not supported",
                )
                .await;
                return;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            // Pings are answered by the library.
            Some(Ok(_)) => continue,
        };
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            close(&mut socket, close_code::INVALID, "malformed JSON").await;
            return;
        };
        match value.get("type").and_then(Value::as_str) {
            Some("audio") => {
                let Some(bytes) = value
                    .get("audio")
                    .and_then(Value::as_str)
                    .and_then(decode_audio)
                else {
                    let err = json!({ "type": "error", "detail": "Invalid or missing audio" });
                    if !send_json(&mut socket, err).await {
                        return;
                    }
                    continue;
                };
                let (user_text, reply) = reply_to_audio(bytes.len());
                let stored = record_exchange(
                    &state,
                    &session_id,
                    Some(user_id.clone()),
                    &user_text,
                    &reply,
                    "websocket",
                )
                .await;
                let answer = match stored {
                    Ok(_) => {
                        exchanges += 1;
                        json!({
                            "type": "response",
                            "user_text": user_text,
                            "agent_text": reply.agent_text,
                            "intent": reply.intent,
                        })
                    }
                    Err(_) => json!({ "type": "error", "detail": "Could not store the exchange" }),
                };
                faults::sleep_injected_latency(&state).await;
                if !send_json(&mut socket, answer).await {
                    return;
                }
            }
            Some("end") => {
                let summary = json!({
                    "type": "summary",
                    "text": format!(
                        "Session {session_id} ended after {exchanges} exchange(s)."
                    ),
                });
                faults::sleep_injected_latency(&state).await;
                if send_json(&mut socket, summary).await {
                    close(&mut socket, close_code::NORMAL, "session ended").await;
                }
                return;
            }
            // Unknown or missing types are ignored, as the contract says.
            _ => {}
        }
    }
}
