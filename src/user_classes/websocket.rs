//! WebSocketUser: real sessions on `/ws/{session_id}`, timed per step and per message
//! (weight 2, waits of 2 to 5 s).
//!
//! Each step is recorded under its own name: the handshake (`WS connect /ws/{session_id}`),
//! the message round trips (`WS end→summary`, `WS audio→response`) and the server's close
//! (`WS close`). Failures say which step failed and how.

use super::account::{self, access_token};
use super::authenticated::has_agent_text;
use super::{TaskResult, UserClass};
use crate::exchange::context::RunContext;
use crate::exchange::session::session;
use crate::exchange::{self, Exchange};
use crate::measure::{Ledger, Observation, Outcome, RequestKind};
use crate::task;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use goose::goose::{GooseUser, TransactionError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub const NAME: &str = "WebSocketUser";
pub const CONNECT: &str = "connect /ws/{session_id}";
pub const END_ROUND_TRIP: &str = "end→summary";
pub const AUDIO_ROUND_TRIP: &str = "audio→response";
pub const CLOSE: &str = "close";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn class() -> UserClass {
    let (on_start, on_stop) = account::account_hooks(crate::task_fn!(on_start));
    UserClass {
        name: NAME,
        weight: 2,
        wait: (Duration::from_secs(2), Duration::from_secs(5)),
        on_start,
        on_stop,
        tasks: vec![
            task!(
                websocket_session,
                5,
                ["websocket", "upgrade"],
                ["WS connect /ws/{session_id}", "WS end→summary", "WS close"]
            ),
            task!(
                websocket_stream,
                2,
                ["websocket", "stream"],
                [
                    "WS connect /ws/{session_id}",
                    "WS audio→response",
                    "WS end→summary",
                    "WS close"
                ]
            ),
            task!(
                conversation_fallback,
                3,
                ["websocket", "fallback"],
                ["POST /api/conversation"]
            ),
        ],
    }
}

async fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    account::start_with_account(user, ctx, NAME).await
}

/// Open, `end` → `summary`, and the server's normal close.
async fn websocket_session(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(mut ws) = open(user, &ctx).await? else {
        return Ok(());
    };
    finish(user, &ctx, &mut ws).await
}

/// A long-lived socket: `audio` messages at a steady pace for the configured time, each
/// round trip timed, then `end` and the close.
async fn websocket_stream(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(mut ws) = open(user, &ctx).await? else {
        return Ok(());
    };
    let options = ctx.options.ws.clone();
    let payload =
        base64::engine::general_purpose::STANDARD.encode(vec![0x5a; options.payload_bytes]);
    let message = json!({"type": "audio", "audio": payload}).to_string();
    let until = Instant::now() + options.hold;
    while Instant::now() < until && !ctx.is_stopping() {
        if !round_trip(user, &ctx, &mut ws, &message, "response", AUDIO_ROUND_TRIP).await? {
            ws.abandon(&ctx);
            return Ok(());
        }
        tokio::time::sleep(
            options
                .pace
                .min(until.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    finish(user, &ctx, &mut ws).await
}

async fn conversation_fallback(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(s) = session(user) else {
        return Ok(());
    };
    let session_id = s.session_id.clone();
    let token = s.access_token().map(str::to_string);
    // The fallback's contract: a 500 means the AI service is down, which the
    // application reports rather than hides. Counted as an expected error, visibly.
    Exchange::post("/api/conversation", "/api/conversation")
        .bearer(token.as_deref())
        .json(json!({"session_id": session_id, "text": "Fallback: continue our conversation"}))
        .check(has_agent_text)
        .expected_errors(&[500])
        .send(user, &ctx)
        .await?;
    Ok(())
}

/// An open socket, counted as open in the ledger until it is closed, given up or dropped
/// (a user stopped mid-session still ends its count, and dropping the stream closes it).
struct OpenSocket {
    socket: Socket,
    counted_in: Option<Arc<Ledger>>,
}

impl OpenSocket {
    /// Ends the ledger's count: `code` is the close code, `None` for a connection given up
    /// without a close handshake.
    fn closed(&mut self, code: Option<u16>) {
        if let Some(ledger) = self.counted_in.take() {
            ledger.websocket_closed(code);
        }
    }

    fn abandon(&mut self, _ctx: &RunContext) {
        self.closed(None);
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.closed(None);
    }
}

async fn record_ws(
    user: &mut GooseUser,
    ctx: &RunContext,
    name: &'static str,
    started: Instant,
    status: Option<u16>,
    outcome: Outcome,
) -> Result<(), Box<TransactionError>> {
    exchange::record(
        user,
        ctx,
        &Observation {
            kind: RequestKind::WebSocket,
            method: "WS",
            name,
            user_class: NAME,
            started,
            duration: started.elapsed(),
            service: None,
            status,
            outcome: &outcome,
            bytes: 0,
        },
    )
    .await
}

/// Opens the user's socket, timing the handshake. `None` when it failed (recorded).
async fn open(
    user: &mut GooseUser,
    ctx: &RunContext,
) -> Result<Option<OpenSocket>, Box<TransactionError>> {
    let Some(token) = access_token(user, ctx).await? else {
        return Ok(None);
    };
    let Some(session_id) = session(user).map(|s| s.session_id.clone()) else {
        return Ok(None);
    };
    let path = format!("/ws/{session_id}");
    let url = if ctx.options.ws.token_in_query {
        ctx.ws_url(&format!("{path}?token={token}"))
    } else {
        ctx.ws_url(&path)
    };
    let started = Instant::now();
    let request = url.into_client_request().map(|mut request| {
        let header = HeaderValue::from_str(&format!("Bearer {token}"));
        if let (false, Ok(value)) = (ctx.options.ws.token_in_query, header) {
            request.headers_mut().insert("authorization", value);
        }
        if let Some(Ok(origin)) = ctx.options.ws.origin.as_deref().map(HeaderValue::from_str) {
            request.headers_mut().insert("origin", origin);
        }
        request
    });
    let result = match request {
        Ok(request) => {
            let connector = Some(Connector::Rustls(ctx.tls()));
            // Small buffers: a run holds many sockets that each carry little (the 128 KiB
            // defaults cost about 200 KiB per socket).
            let config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0);
            let connecting = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                false,
                connector,
            );
            match tokio::time::timeout(ctx.options.ws.reply_timeout, connecting).await {
                Ok(result) => result
                    .map(|(socket, _)| socket)
                    .map_err(|e| handshake_error(&e)),
                Err(_) => Err((
                    None,
                    format!(
                        "handshake timed out after {:?}",
                        ctx.options.ws.reply_timeout
                    ),
                )),
            }
        }
        Err(e) => Err((None, format!("bad WebSocket URL: {e}"))),
    };
    match result {
        Ok(socket) => {
            record_ws(user, ctx, CONNECT, started, Some(101), Outcome::Success).await?;
            ctx.ledger.websocket_opened();
            Ok(Some(OpenSocket {
                socket,
                counted_in: Some(ctx.ledger.clone()),
            }))
        }
        Err((status, reason)) => {
            record_ws(
                user,
                ctx,
                CONNECT,
                started,
                status,
                Outcome::Failure(reason),
            )
            .await?;
            Ok(None)
        }
    }
}

fn handshake_error(e: &WsError) -> (Option<u16>, String) {
    match e {
        WsError::Http(response) => {
            let code = response.status().as_u16();
            let reason = if matches!(code, 401 | 403) {
                format!("handshake refused ({code}): token or Origin not accepted")
            } else {
                format!("handshake refused ({code})")
            };
            (Some(code), reason)
        }
        WsError::Tls(tls) => match crate::transport::tls_failure(tls) {
            Some(rustls) => (
                None,
                format!(
                    "TLS handshake failed: {}",
                    crate::transport::explain_tls(rustls)
                ),
            ),
            None => (None, format!("TLS handshake failed: {tls}")),
        },
        WsError::Io(io) => match crate::transport::tls_failure(io) {
            Some(rustls) => (
                None,
                format!(
                    "TLS handshake failed: {}",
                    crate::transport::explain_tls(rustls)
                ),
            ),
            None => (None, format!("connection failed: {}", io.kind())),
        },
        other => (None, format!("handshake failed: {other}")),
    }
}

/// Sends `message` and waits for a reply of type `expect`, recording the round trip.
/// Returns false when the socket is no longer usable.
async fn round_trip(
    user: &mut GooseUser,
    ctx: &RunContext,
    ws: &mut OpenSocket,
    message: &str,
    expect: &str,
    name: &'static str,
) -> Result<bool, Box<TransactionError>> {
    let socket = &mut ws.socket;
    let started = Instant::now();
    if let Err(e) = socket.send(Message::text(message)).await {
        let reason = format!("send failed: {}", short(&e));
        record_ws(user, ctx, name, started, None, Outcome::Failure(reason)).await?;
        return Ok(false);
    }
    ctx.ledger.websocket_messages(1, 0);
    let timeout = ctx.options.ws.reply_timeout;
    let mut closed_with = None;
    let outcome = loop {
        match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), socket.next()).await {
            Err(_) => break Outcome::Failure(format!("no reply within {timeout:?}")),
            Ok(None) => break Outcome::Failure("connection dropped before the reply".into()),
            Ok(Some(Err(e))) => {
                break Outcome::Failure(format!("connection dropped: {}", short(&e)));
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                ctx.ledger.websocket_messages(0, 1);
                let kind = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
                break match kind.as_deref() {
                    Some(t) if t == expect => Outcome::Success,
                    Some(t) => Outcome::Failure(format!(
                        "unexpected message type '{t}', wanted '{expect}'"
                    )),
                    None => Outcome::Failure("reply is not a JSON message with a type".into()),
                };
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                closed_with = Some(code);
                break Outcome::Failure(format!("closed by the server ({code}) before the reply"));
            }
            // Pings, pongs and binary frames are not replies.
            Ok(Some(Ok(_))) => continue,
        }
    };
    let usable = matches!(outcome, Outcome::Success);
    // The server's close ends the socket with its code, as the failures file says it.
    if let Some(code) = closed_with {
        ws.closed(Some(code));
    }
    record_ws(user, ctx, name, started, closed_with, outcome).await?;
    Ok(usable)
}

/// `end` → `summary`, then waits for the server's close and records how it closed.
async fn finish(
    user: &mut GooseUser,
    ctx: &RunContext,
    ws: &mut OpenSocket,
) -> Result<(), Box<TransactionError>> {
    let end = json!({"type": "end"}).to_string();
    if !round_trip(user, ctx, ws, &end, "summary", END_ROUND_TRIP).await? {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.socket.close(None)).await;
        ws.abandon(ctx);
        return Ok(());
    }
    let started = Instant::now();
    let timeout = ctx.options.ws.reply_timeout;
    let (code, outcome) = loop {
        match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), ws.socket.next())
            .await
        {
            Err(_) => {
                break (
                    None,
                    Outcome::Failure(format!("no close within {timeout:?}")),
                );
            }
            Ok(None) | Ok(Some(Err(_))) => {
                break (
                    None,
                    Outcome::Failure("connection dropped without a close".into()),
                );
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                let outcome = if CloseCode::from(code) == CloseCode::Normal {
                    Outcome::Success
                } else {
                    Outcome::Failure(format!("abnormal close ({code})"))
                };
                break (Some(code), outcome);
            }
            Ok(Some(Ok(_))) => continue,
        }
    };
    // Let the close handshake complete (tungstenite answers the server's close frame).
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.socket.close(None)).await;
    record_ws(user, ctx, CLOSE, started, code, outcome).await?;
    ws.closed(code);
    Ok(())
}

fn short(e: &WsError) -> String {
    match e {
        WsError::Io(io) => io.kind().to_string(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "already closed".to_string(),
        WsError::Protocol(p) => format!("protocol error: {p}"),
        other => other.to_string(),
    }
}
