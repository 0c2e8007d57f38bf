//! The probes' WebSocket handshakes: a token in the query or in an `Authorization` header,
//! judged like any answer (101 when accepted), a flaw confirmed by a second handshake.

use super::Severity;
use super::call::Call;
use super::client::ProbeClient;
use super::judge::{Ruling, Settled, refused};
use super::probe::Probe;
use super::reply::ProbeReply;
use crate::transport::ws_url_of;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Probe<'_> {
    /// Opens a WebSocket with `token` at the handshake and judges the answer (101 when
    /// accepted), confirming a flaw with a second handshake.
    pub async fn check_ws(
        &mut self,
        client: &ProbeClient,
        token: &str,
        in_query: bool,
        what: &str,
        judge: impl Fn(&ProbeReply) -> Ruling,
    ) -> Settled {
        let (call, answer, _socket) = self.ws_connect(client, token, in_query).await;
        match judge(&answer) {
            Ruling::Flaw { severity, .. } => {
                let (_, again, _socket) = self.ws_connect(client, token, in_query).await;
                self.confirm(&call, what, &answer, &again, severity, judge)
            }
            ruling => self.record(what, ruling),
        }
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
    ) -> Settled {
        let judge = refused(what, severity, meaning);
        self.check_ws(client, token, in_query, what, judge).await
    }

    /// Opens a WebSocket on a new session with `token` in the query or in an
    /// `Authorization` header, with the client's forwarded-for address. The socket is
    /// `Some` when the handshake was accepted.
    pub async fn ws_connect(
        &mut self,
        client: &ProbeClient,
        token: &str,
        in_query: bool,
    ) -> (Call, ProbeReply, Option<Socket>) {
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
                    ProbeReply::failed(format!("bad WebSocket URL: {e}")),
                    None,
                );
            }
        };
        let connector = Some(Connector::Rustls(self.kit.tls.clone()));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let answer = match tokio::time::timeout(self.kit.settings.timeout, connecting).await {
            Ok(Ok((socket, _))) => {
                let answer = ProbeReply {
                    status: Some(101),
                    ..ProbeReply::default()
                };
                return (call, answer, Some(socket));
            }
            Ok(Err(WsError::Http(response))) => ProbeReply::of_body(
                response.status().as_u16(),
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                response.body().as_deref().unwrap_or_default(),
            ),
            Ok(Err(e)) => ProbeReply::failed(format!("handshake failed ({e})")),
            Err(_) => ProbeReply {
                timed_out: true,
                ..ProbeReply::failed(format!(
                    "handshake not answered within {} s",
                    self.kit.settings.timeout.as_secs()
                ))
            },
        };
        (call, answer, None)
    }
}
