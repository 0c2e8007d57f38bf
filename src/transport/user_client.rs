//! A simulated user's own HTTP/1.1 client: one keep-alive connection, driven inside the
//! user's task, with small buffers.
//!
//! reqwest gives every connection a task of its own (each request then hops from the
//! user's task to the connection's and back), a pool with its own timer task per client,
//! and a read buffer of 8 KiB that grows to 16 KiB and stays there: 25 to 42 KiB per user
//! with the user's client, which is most of what 1000 users weigh. Here hyper's HTTP/1.1
//! protocol code (framing, chunked bodies, keep-alive) runs on a connection the user owns:
//! the user's own task drives it while it waits for an answer, the read buffer is a fixed
//! [`READ_BUFFER`] bytes (a large answer is read through it in as many turns as it needs),
//! and a connection the server closed is noticed before the next request and replaced.
//!
//! What the user's reqwest client did is kept: the run's TLS configuration
//! ([`tls_config`](super::tls_config)), the user's loopback source address, the request
//! timeout (from connecting to the end of the body), gzip answers decoded, no cookies, no
//! redirects followed, and the same user agent.

use super::tls_failure;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use url::Url;

/// The fixed size of a connection's read buffer: an answer's head (status line and
/// headers) must fit in it; bodies of any size are read through it.
pub const READ_BUFFER: usize = 4096;

/// The user agent every user sends.
pub const USER_AGENT: &str = concat!("lva-loadtest/", env!("CARGO_PKG_VERSION"));

/// Why a request got no (whole) answer. [`HttpError::kind`] says it in a few stable words.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request, or its answer, took longer than the run's timeout (this long).
    #[error("timeout after {0:?}")]
    Timeout(std::time::Duration),
    /// No connection: the address, the TCP connect or the TLS handshake failed.
    #[error("connection failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The host URL has no host name or no port this client can reach.
    #[error("the URL {0} has no host to connect to")]
    NoHost(String),
    /// The request was not sent, or no answer's head came back.
    #[error("the request failed: {0}")]
    Send(#[source] hyper::Error),
    /// The answer's head came, its body did not (the connection dropped, or a chunk was bad).
    #[error("the answer's body was cut: {0}")]
    Body(#[source] hyper::Error),
    /// A gzip body that does not decode.
    #[error("the answer's gzip body does not decode: {0}")]
    Decode(#[source] std::io::Error),
    /// The request itself could not be built (a header value that is not valid).
    #[error("the request could not be built: {0}")]
    Build(#[source] http::Error),
}

impl HttpError {
    /// What went wrong, in a few stable words (no URL, no address), so that errors group
    /// well in the reports; a failed TLS handshake is explained with its way out.
    pub fn kind(&self) -> String {
        if let Some(tls) = tls_failure(self) {
            return format!("TLS handshake failed: {}", super::explain_tls(tls));
        }
        match self {
            // The limit is named: a reader must see that the tool's timeout ended the
            // request, not the server.
            HttpError::Timeout(limit) => format!(
                "timeout: no answer within --request-timeout {}",
                crate::duration::HumanDuration(*limit)
            ),
            HttpError::Connect(_) | HttpError::NoHost(_) => "connection refused or failed".into(),
            HttpError::Send(e) if e.is_parse_too_large() => {
                format!("the answer's head is larger than {READ_BUFFER} bytes")
            }
            HttpError::Send(_) | HttpError::Build(_) => "request could not be sent".into(),
            HttpError::Body(_) | HttpError::Decode(_) => {
                "connection dropped while reading the body".into()
            }
        }
    }
}

/// An answer's head, and its body when it was read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Result<Bytes, HttpError>,
}

/// What every user of a run shares: where the server is and how to reach it.
pub struct HttpSettings {
    tls: tokio_rustls::TlsConnector,
    /// `Some(name)` for https: the name the certificate must be for.
    tls_name: Option<ServerName<'static>>,
    /// Host name (or address) and port to connect to.
    host: String,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    timeout: Option<Duration>,
}

impl HttpSettings {
    /// The settings for `base` (the host URL), with the run's TLS configuration and
    /// request timeout.
    pub fn new(
        base: &Url,
        tls: Arc<ClientConfig>,
        timeout: Option<Duration>,
    ) -> Result<HttpSettings, HttpError> {
        let no_host = || HttpError::NoHost(base.to_string());
        let host = match base.host() {
            Some(url::Host::Domain(name)) => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(no_host()),
        };
        let port = base.port_or_known_default().ok_or_else(no_host)?;
        let authority = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_string(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|_| no_host())?;
        let tls_name = match base.scheme() {
            "https" => Some(ServerName::try_from(host.clone()).map_err(|_| no_host())?),
            _ => None,
        };
        Ok(HttpSettings {
            tls: tokio_rustls::TlsConnector::from(tls),
            tls_name,
            host,
            port,
            authority,
            timeout,
        })
    }
}

/// What a connection reads from and writes to: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;

/// One open connection: hyper's sending half and the connection the user drives.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    connection: Connection<Io, Full<Bytes>>,
}

/// A simulated user's client. Clones share the one connection.
#[derive(Clone)]
pub struct UserClient {
    settings: Arc<HttpSettings>,
    source: Option<IpAddr>,
    /// The open connection between requests; taken out while a request uses it, so a
    /// request cut short (its task cancelled) leaves no half-used connection behind.
    idle: Arc<Mutex<Option<Conn>>>,
}

impl std::fmt::Debug for UserClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserClient")
            .field("host", &self.settings.host)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A request, as the client sends it.
pub struct Outgoing<'a> {
    pub method: Method,
    pub url: &'a Url,
    /// Headers beyond `Host`, `User-Agent`, `Accept` and `Accept-Encoding`.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UserClient {
    /// A client that connects when it first sends, from `source` when given.
    pub fn new(settings: Arc<HttpSettings>, source: Option<IpAddr>) -> UserClient {
        UserClient {
            settings,
            source,
            idle: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends `request` on the user's connection (opened or replaced as needed) and reads
    /// the whole answer, within the run's timeout.
    pub async fn send(&self, request: Outgoing<'_>) -> Result<Answer, HttpError> {
        let exchange = self.exchange(&request);
        match self.settings.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(HttpError::Timeout(limit))),
            None => exchange.await,
        }
    }

    async fn exchange(&self, request: &Outgoing<'_>) -> Result<Answer, HttpError> {
        let reused = self.take_idle().await;
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut outcome = conn.exchange(self.build(request)?).await;
        // A kept connection the server closed just as the request went out: the request
        // was not sent, so it goes once more on a new connection.
        if was_reused && matches!(&outcome, Err(Unsent(_))) {
            conn = self.connect().await?;
            outcome = conn.exchange(self.build(request)?).await;
        }
        let (answer, reusable) = match outcome {
            Ok(done) => done,
            Err(Unsent(e)) => return Err(HttpError::Send(e)),
        };
        if reusable {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.get_or_insert(conn);
        }
        answer
    }

    /// The kept connection, if the server has not closed it meanwhile.
    async fn take_idle(&self) -> Option<Conn> {
        let mut conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        // One look at the connection: it reads what came since the last answer (an end
        // of stream, when the server closed it) without waiting.
        let closed = futures_util::poll!(&mut conn.connection).is_ready();
        (!closed && !conn.sender.is_closed()).then_some(conn)
    }

    async fn connect(&self) -> Result<Conn, HttpError> {
        let settings = &self.settings;
        let addresses = tokio::net::lookup_host((settings.host.as_str(), settings.port))
            .await
            .map_err(HttpError::Connect)?;
        let mut last = None;
        let mut stream = None;
        for address in addresses {
            if self
                .source
                .is_some_and(|source| source.is_ipv4() != address.is_ipv4())
            {
                continue;
            }
            match self.connect_tcp(address).await {
                Ok(tcp) => {
                    stream = Some(tcp);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (stream, last) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(HttpError::Connect(e)),
            (None, None) => return Err(HttpError::NoHost(settings.host.clone())),
        };
        let io: Box<dyn Stream> = match &settings.tls_name {
            Some(name) => Box::new(
                settings
                    .tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(HttpError::Connect)?,
            ),
            None => Box::new(tcp),
        };
        let (sender, connection) = http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUFFER))
            .handshake(TokioIo::new(io))
            .await
            .map_err(HttpError::Send)?;
        Ok(Conn { sender, connection })
    }

    async fn connect_tcp(&self, address: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(source) = self.source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let tcp = socket.connect(address).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    fn build(&self, request: &Outgoing<'_>) -> Result<Request<Full<Bytes>>, HttpError> {
        let url = request.url;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let mut built = Request::builder()
            .method(request.method.clone())
            .uri(target)
            .body(Full::new(request.body.clone()))
            .map_err(HttpError::Build)?;
        let headers = built.headers_mut();
        headers.insert(header::HOST, self.settings.authority.clone());
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        for (name, value) in &request.headers {
            headers.insert(name, value.clone());
        }
        let may_carry_a_body = matches!(request.method, Method::POST | Method::PUT | Method::PATCH);
        if !request.body.is_empty() || may_carry_a_body {
            headers.insert(header::CONTENT_LENGTH, request.body.len().into());
        }
        Ok(built)
    }
}

/// The request never left: the connection was already closed.
struct Unsent(hyper::Error);

impl Conn {
    /// Sends one request and reads its answer, driving the connection meanwhile. Says
    /// whether the connection can carry the next request.
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(Result<Answer, HttpError>, bool), Unsent> {
        let Conn { sender, connection } = self;
        let work = async move {
            sender.ready().await.map_err(Step::Unsent)?;
            let response = sender.send_request(request).await.map_err(|e| {
                if e.is_canceled() {
                    Step::Unsent(e)
                } else {
                    Step::Failed(HttpError::Send(e))
                }
            })?;
            let (head, body) = response.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes());
            Ok((head, body))
        };
        tokio::pin!(work);
        let mut open = true;
        let outcome = loop {
            if !open {
                break work.await;
            }
            tokio::select! {
                biased;
                outcome = &mut work => break outcome,
                // The connection ended (closed after this answer, or broken): the request's
                // own future then says what it got.
                _ = &mut *connection => open = false,
            }
        };
        let (mut head, body) = match outcome {
            Ok(done) => done,
            Err(Step::Unsent(e)) => return Err(Unsent(e)),
            Err(Step::Failed(e)) => return Ok((Err(e), false)),
        };
        let reusable = open && body.is_ok();
        let body = body.map_err(HttpError::Body).and_then(|bytes| {
            if head.headers.get(header::CONTENT_ENCODING) == Some(&HeaderValue::from_static("gzip"))
            {
                head.headers.remove(header::CONTENT_ENCODING);
                head.headers.remove(header::CONTENT_LENGTH);
                gunzip(&bytes)
            } else {
                Ok(bytes)
            }
        });
        Ok((
            Ok(Answer {
                status: head.status,
                headers: head.headers,
                body,
            }),
            reusable,
        ))
    }
}

enum Step {
    Unsent(hyper::Error),
    Failed(HttpError),
}

fn gunzip(bytes: &[u8]) -> Result<Bytes, HttpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(HttpError::Decode)?;
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server for the tests that speaks just enough HTTP/1.1: it answers each request
    /// with `answer(path)` and, when `close` says so, closes the connection after it. It
    /// counts connections and keeps the peers' addresses.
    struct TestServer {
        url: Url,
        connections: Arc<AtomicUsize>,
        peers: Arc<Mutex<Vec<IpAddr>>>,
    }

    async fn test_server(answer: fn(&str) -> (Vec<u8>, bool)) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url =
            Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
        let connections = Arc::new(AtomicUsize::new(0));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), peers.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, peer)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                seen.lock().expect("peers").push(peer.ip());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                        buffer.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        let (bytes, close) = answer(&path);
                        if tcp.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        TestServer {
            url,
            connections,
            peers,
        }
    }

    fn client(url: &Url, timeout: Option<Duration>, source: Option<IpAddr>) -> UserClient {
        let tls = Arc::new(super::super::tls_config(&Default::default()).expect("tls"));
        let settings = HttpSettings::new(url, tls, timeout).expect("settings");
        UserClient::new(Arc::new(settings), source)
    }

    async fn get(client: &UserClient, url: &Url, path: &str) -> Result<Answer, HttpError> {
        let url = url.join(path).expect("url");
        client
            .send(Outgoing {
                method: Method::GET,
                url: &url,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            })
            .await
    }

    fn big(n: usize) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    fn ok(body: &[u8], extra: &str) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn answers(path: &str) -> (Vec<u8>, bool) {
        match path {
            "/big" => (ok(&big(1 << 20), ""), false),
            "/chunked" => {
                let body = big(300_000);
                let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for part in body.chunks(7000) {
                    out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                (out, false)
            }
            "/gzip" => {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&big(100_000)).expect("gzip");
                let body = gz.finish().expect("gzip");
                (ok(&body, "content-encoding: gzip\r\n"), false)
            }
            "/close" => (ok(b"bye", "connection: close\r\n"), true),
            "/drop" => (ok(b"dropped", ""), true),
            "/huge-head" => (
                ok(b"x", &format!("x-filler: {}\r\n", "y".repeat(READ_BUFFER))),
                false,
            ),
            "/silent" => (Vec::new(), false),
            _ => (ok(b"{\"status\":\"healthy\"}", ""), false),
        }
    }

    #[tokio::test]
    async fn large_answers_are_read_whole_through_the_small_buffer() {
        let server = test_server(answers).await;
        let c = client(&server.url, None, None);
        for (path, want) in [
            ("/big", big(1 << 20)),
            ("/chunked", big(300_000)),
            ("/gzip", big(100_000)),
            ("/health", b"{\"status\":\"healthy\"}".to_vec()),
        ] {
            let answer = get(&c, &server.url, path).await.expect("answer");
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            let body = answer.body.expect("body");
            assert_eq!(body.len(), want.len(), "{path}");
            assert!(body == want, "{path}: the body differs");
        }
        assert!(
            get(&c, &server.url, "/gzip")
                .await
                .expect("gzip")
                .headers
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
        assert_eq!(
            server.connections.load(Ordering::SeqCst),
            1,
            "one keep-alive connection"
        );
    }

    #[tokio::test]
    async fn one_connection_from_the_users_own_source_address() {
        let server = test_server(answers).await;
        let source: IpAddr = "127.0.9.7".parse().expect("ip");
        let c = client(&server.url, None, Some(source));
        for _ in 0..20 {
            let answer = get(&c, &server.url, "/health").await.expect("answer");
            assert_eq!(answer.status, StatusCode::OK);
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert_eq!(*server.peers.lock().expect("peers"), vec![source]);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let server = test_server(answers).await;
        let c = client(&server.url, None, None);
        for path in ["/close", "/health", "/drop", "/health", "/drop"] {
            let answer = get(&c, &server.url, path).await.expect(path);
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            assert!(answer.body.is_ok(), "{path}");
            // Give the server's close time to arrive, as a real user's wait would.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 3);
        let refused = client(&Url::parse("http://127.0.0.1:1/").expect("url"), None, None);
        let e = get(&refused, &server.url, "/health")
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), "connection refused or failed");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_huge_head_is_named() {
        let server = test_server(answers).await;
        let c = client(&server.url, Some(Duration::from_millis(300)), None);
        let e = get(&c, &server.url, "/silent").await.expect_err("silent");
        assert_eq!(
            e.kind(),
            "timeout: no answer within --request-timeout 300ms"
        );
        let e = get(&c, &server.url, "/huge-head")
            .await
            .expect_err("huge head");
        assert!(e.kind().contains("head is larger than"), "{}", e.kind());
        // The user carries on with a new connection.
        let answer = get(&c, &server.url, "/health").await.expect("after");
        assert_eq!(answer.status, StatusCode::OK);
    }

    #[test]
    fn errors_are_described_in_stable_words() {
        let refused =
            HttpError::Connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.kind(), "connection refused or failed");
        assert_eq!(
            HttpError::Timeout(Duration::from_secs(1)).kind(),
            "timeout: no answer within --request-timeout 1s"
        );
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let kind = HttpError::Connect(tls).kind();
        assert!(kind.starts_with("TLS handshake failed:"), "{kind}");
        assert!(kind.contains("--ca-cert FILE"), "{kind}");
    }

    #[test]
    fn the_host_header_keeps_a_port_that_is_not_the_default() {
        let tls = Arc::new(super::super::tls_config(&Default::default()).expect("tls"));
        for (url, authority, port) in [
            ("http://127.0.0.1:8000/x", "127.0.0.1:8000", 8000),
            ("https://example.test/", "example.test", 443),
            ("http://[::1]:9/", "[::1]:9", 9),
        ] {
            let s = HttpSettings::new(&Url::parse(url).expect("url"), tls.clone(), None)
                .expect("settings");
            assert_eq!(s.authority, authority, "{url}");
            assert_eq!(s.port, port, "{url}");
        }
    }
}
