//! The connections the server accepts, and `--close-after-5xx`: like many ASGI and WSGI
//! servers, the connection is closed after a 5xx answer without any `Connection: close`,
//! so a client that keeps it for its next request sees that request fail at the transport
//! level (reset, or closed before the answer).
//!
//! A real server closes at once, and whether the client's next request meets the closed
//! connection is a race. Here the close waits for that next request (or a short grace),
//! so a client that reuses the connection always sees the failure: the case the load
//! tester must never blame on the next request.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How long a connection whose 5xx answer was written waits for the client's next request
/// before it is closed anyway.
const GRACE: Duration = Duration::from_secs(1);

/// A connection's state: serving as usual, a 5xx answer on its way, or that answer written.
const SERVING: u8 = 0;
const ERROR_ANSWERED: u8 = 1;
const ERROR_WRITTEN: u8 = 2;

/// The open connections of a server with `--close-after-5xx`, by the client's address
/// (unique among the open connections of one listening socket).
#[derive(Default)]
pub(crate) struct OpenConnections(Mutex<HashMap<SocketAddr, Arc<AtomicU8>>>);

impl OpenConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<AtomicU8>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_error(&self, peer: SocketAddr) {
        if let Some(state) = self.lock().get(&peer) {
            state.store(ERROR_ANSWERED, Ordering::Release);
        }
    }
}

/// The listening socket; with `closing` set, every connection is watched for 5xx answers.
pub(crate) struct Accepting {
    listener: TcpListener,
    closing: Option<Arc<OpenConnections>>,
}

impl Accepting {
    pub fn new(listener: TcpListener, closing: Option<Arc<OpenConnections>>) -> Accepting {
        Accepting { listener, closing }
    }
}

impl Listener for Accepting {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        // axum's own accept loop: it retries and logs accept errors.
        let (stream, peer) = Listener::accept(&mut self.listener).await;
        let watch = self.closing.as_ref().map(|open| {
            let state = Arc::new(AtomicU8::new(SERVING));
            open.lock().insert(peer, Arc::clone(&state));
            Watch {
                peer,
                state,
                open: Arc::clone(open),
                grace: None,
            }
        });
        (Connection { stream, watch }, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

struct Watch {
    peer: SocketAddr,
    state: Arc<AtomicU8>,
    open: Arc<OpenConnections>,
    grace: Option<Pin<Box<Sleep>>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.open.lock().remove(&self.peer);
    }
}

/// An accepted connection: the TCP stream, watched when `--close-after-5xx` is on.
pub(crate) struct Connection {
    stream: TcpStream,
    watch: Option<Watch>,
}

impl Connection {
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.stream.set_nodelay(on)
    }

    /// Bytes written while a 5xx answer is on its way are that answer's.
    fn note_write(&self) {
        if let Some(w) = &self.watch {
            let _ = w.state.compare_exchange(
                ERROR_ANSWERED,
                ERROR_WRITTEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(w) = &mut this.watch
            && w.state.load(Ordering::Acquire) == ERROR_WRITTEN
        {
            // Once the client's next request has arrived (or the grace is over), the
            // server reads an end of stream and closes; the request left unread makes
            // the close a reset, as with a real server.
            let arrived = this.stream.poll_read_ready(cx).is_ready();
            let grace = w
                .grace
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(GRACE)));
            if arrived || grace.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            return Poll::Pending;
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.note_write();
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.note_write();
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Middleware (with `--close-after-5xx`): a 5xx answer marks its connection for closing.
pub(crate) async fn close_after_5xx(
    State(open): State<Arc<OpenConnections>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    if res.status().is_server_error() {
        open.mark_error(peer);
    }
    res
}
