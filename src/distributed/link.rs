//! The ZeroMQ sockets of Locust's protocol: a worker's DEALER and a master's ROUTER, on the
//! pure-Rust `zeromq` crate (ZMTP 3, tokio). Each socket is driven by a task of its own on
//! the async runtime and reached through channels, so that sending stays a plain call from
//! any task and the socket wakes only when a frame goes out or comes in.
//!
//! libzmq did some things by itself that `zeromq` leaves to us, so the DEALER's task does
//! them: it keeps what it is given while it is not connected (messages sent before the
//! master listens are delivered once it does), it rebuilds its socket, with the same
//! identity, when the connection drops (the master restarted, or reset its socket), and on
//! close it keeps trying to deliver what it holds for at most 3 s.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zeromq::util::PeerIdentity;
use zeromq::{
    DealerRecvHalf, DealerSendHalf, DealerSocket, MultiPeerBackend, RouterRecvHalf, RouterSendHalf,
    RouterSocket, Socket, SocketEvent, SocketOptions, SocketRecv, SocketSend, ZmqError, ZmqMessage,
};

/// How long a closing socket keeps trying to deliver what it still holds.
const LINGER: Duration = Duration::from_secs(3);
/// How long one attempt to reach the master may take; `zeromq` retries a refused connection
/// within it, backing off, so a new attempt starts after it.
const ATTEMPT: Duration = Duration::from_secs(2);
/// The pause before the DEALER rebuilds a socket that failed or lost its connection.
const RETRY: Duration = Duration::from_millis(200);
/// At most this many messages wait for a connection (libzmq's default high-water mark);
/// the ones after are dropped, as libzmq drops them.
const HELD: usize = 1000;
/// How often a closing socket looks whether its connections have written their last frames.
const FLUSH_CHECK: Duration = Duration::from_millis(2);

/// A socket that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot {what} {endpoint}: {source}")]
    Socket {
        what: &'static str,
        endpoint: String,
        source: ZmqError,
    },
    #[error("cannot listen on {endpoint}: {source}")]
    Listen {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("the sockets need the async runtime: {0}")]
    Runtime(#[from] tokio::runtime::TryCurrentError),
}

/// Bytes through a socket, both ways (every frame's payload): counted when the socket takes
/// a frame to send, and when one arrives.
#[derive(Debug, Default)]
pub struct Traffic {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl Traffic {
    pub fn totals(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    fn add_sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn add_received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// `tcp://host:port`, with brackets around an IPv6 address.
pub fn endpoint(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    }
}

/// Waits until a closed socket's connections have written what they were given (each
/// connection's writer holds the socket's backend until it has), or until `deadline`.
async fn flushed(backend: Weak<dyn MultiPeerBackend>, deadline: Instant) {
    while backend.strong_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(FLUSH_CHECK).await;
    }
}

/// Waits for a socket's task, which ends once it is told to close and has delivered what it
/// held (for at most [`LINGER`]).
async fn join(task: Option<JoinHandle<()>>) {
    if let Some(task) = task {
        let _ = task.await;
    }
}

enum DealerCommand {
    Send(Bytes),
    Reconnect,
    Close,
}

/// A worker's connection to its master.
pub struct Dealer {
    commands: UnboundedSender<DealerCommand>,
    inbox: UnboundedReceiver<Vec<u8>>,
    task: Option<JoinHandle<()>>,
    pub traffic: Arc<Traffic>,
}

impl Dealer {
    /// Connects to `endpoint` as `identity` (the worker's node id), in the background:
    /// messages sent before the master is up wait until it is.
    pub fn connect(endpoint: &str, identity: &str) -> Result<Dealer, LinkError> {
        let error = |source| LinkError::Socket {
            what: "connect to",
            endpoint: endpoint.to_string(),
            source,
        };
        endpoint
            .parse::<zeromq::Endpoint>()
            .map_err(|e| error(e.into()))?;
        let identity = PeerIdentity::try_from(identity.as_bytes()).map_err(error)?;
        let runtime = tokio::runtime::Handle::try_current()?;
        let (commands, outbox) = unbounded_channel();
        let (incoming, inbox) = unbounded_channel();
        let traffic = Arc::new(Traffic::default());
        let task = DealerTask {
            endpoint: endpoint.to_string(),
            identity,
            outbox,
            incoming,
            traffic: traffic.clone(),
        };
        Ok(Dealer {
            commands,
            inbox,
            task: Some(runtime.spawn(task.run())),
            traffic,
        })
    }

    /// Queues a message for the master.
    pub fn send(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(DealerCommand::Send(bytes.into()));
    }

    /// A handle that sends through this socket from another task.
    pub fn sender(&self) -> DealerSender {
        DealerSender(self.commands.clone())
    }

    /// The next message from the master; `None` once the socket's task has ended.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbox.recv().await
    }

    /// Rebuilds the socket with the same identity (what the old one held may be lost, as
    /// Locust's workers lose it).
    pub fn reconnect(&self) {
        let _ = self.commands.send(DealerCommand::Reconnect);
    }

    /// Sends what is queued (for at most 3 s) and closes the socket.
    pub async fn close(mut self) {
        let task = self.task.take();
        drop(self);
        join(task).await;
    }
}

impl Drop for Dealer {
    fn drop(&mut self) {
        // The task lingers on by itself; `close` also waits for it.
        let _ = self.commands.send(DealerCommand::Close);
    }
}

/// Sends through a [`Dealer`] from another task.
#[derive(Clone)]
pub struct DealerSender(UnboundedSender<DealerCommand>);

impl DealerSender {
    pub fn send(&self, bytes: Vec<u8>) {
        let _ = self.0.send(DealerCommand::Send(bytes.into()));
    }
}

type Events = Pin<Box<dyn Stream<Item = SocketEvent> + Send>>;
type Attempt = Pin<Box<dyn Future<Output = Result<Connection, ZmqError>> + Send>>;

/// A DEALER socket connected to the master.
struct Connection {
    send: DealerSendHalf,
    recv: DealerRecvHalf,
    /// The socket's own news: a dropped connection shows here (its `recv` just waits).
    events: Events,
    backend: Weak<dyn MultiPeerBackend>,
}

enum Heard {
    Frames(ZmqMessage),
    Gone,
    Nothing,
}

impl Connection {
    /// A new socket with `identity`, connected to `endpoint` after `pause`.
    fn attempt(endpoint: &str, identity: &PeerIdentity, pause: Duration) -> Attempt {
        let (endpoint, identity) = (endpoint.to_string(), identity.clone());
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            let mut options = SocketOptions::default();
            options.peer_identity(identity).connect_timeout(ATTEMPT);
            let mut socket = DealerSocket::with_options(options);
            // Watched from before the connection exists, so that no drop goes unseen.
            let events: Events = Box::pin(socket.monitor());
            let backend = Arc::downgrade(&socket.backend());
            socket.connect(&endpoint).await?;
            let (send, recv) = socket.split();
            Ok(Connection {
                send,
                recv,
                events,
                backend,
            })
        })
    }

    /// Hands over what is held, in order; `false` if the connection is gone (what it did
    /// not take stays held).
    async fn deliver(&mut self, held: &mut VecDeque<Bytes>, traffic: &Traffic) -> bool {
        while let Some(bytes) = held.front() {
            let len = bytes.len();
            if self
                .send
                .send(ZmqMessage::from(bytes.clone()))
                .await
                .is_err()
            {
                return false;
            }
            traffic.add_sent(len);
            held.pop_front();
        }
        true
    }

    async fn next(&mut self) -> Heard {
        tokio::select! {
            frames = self.recv.recv() => match frames {
                Ok(frames) => Heard::Frames(frames),
                Err(_) => Heard::Gone,
            },
            event = self.events.next() => match event {
                Some(SocketEvent::Disconnected(_)) | None => Heard::Gone,
                Some(_) => Heard::Nothing,
            },
        }
    }
}

/// What drives a [`Dealer`]'s socket.
struct DealerTask {
    endpoint: String,
    identity: PeerIdentity,
    outbox: UnboundedReceiver<DealerCommand>,
    incoming: UnboundedSender<Vec<u8>>,
    traffic: Arc<Traffic>,
}

impl DealerTask {
    async fn run(mut self) {
        let mut held: VecDeque<Bytes> = VecDeque::new();
        let mut connection: Option<Connection> = None;
        let mut attempt = Some(Connection::attempt(
            &self.endpoint,
            &self.identity,
            Duration::ZERO,
        ));
        let mut closing: Option<Instant> = None;
        loop {
            if let Some(up) = connection.as_mut()
                && !up.deliver(&mut held, &self.traffic).await
            {
                connection = None;
            }
            if let Some(deadline) = closing
                && (held.is_empty() || Instant::now() >= deadline)
            {
                break;
            }
            if connection.is_none() && attempt.is_none() {
                attempt = Some(Connection::attempt(&self.endpoint, &self.identity, RETRY));
            }
            let deadline = closing.unwrap_or_else(Instant::now);
            tokio::select! {
                command = self.outbox.recv(), if closing.is_none() => match command {
                    Some(DealerCommand::Send(bytes)) => {
                        if held.len() < HELD {
                            held.push_back(bytes);
                        }
                    }
                    Some(DealerCommand::Reconnect) => {
                        connection = None;
                        attempt = Some(Connection::attempt(
                            &self.endpoint,
                            &self.identity,
                            Duration::ZERO,
                        ));
                    }
                    Some(DealerCommand::Close) | None => closing = Some(Instant::now() + LINGER),
                },
                made = async { attempt.as_mut().expect("enabled only with an attempt").await },
                    if attempt.is_some() =>
                {
                    attempt = None;
                    connection = made.ok();
                }
                heard = async { connection.as_mut().expect("enabled only when connected").next().await },
                    if connection.is_some() =>
                {
                    match heard {
                        Heard::Frames(frames) => {
                            for frame in frames.into_vec() {
                                self.traffic.add_received(frame.len());
                                let _ = self.incoming.send(frame.to_vec());
                            }
                        }
                        Heard::Gone => connection = None,
                        Heard::Nothing => {}
                    }
                }
                _ = tokio::time::sleep_until(deadline), if closing.is_some() => {}
            }
        }
        if let Some(Connection {
            send,
            recv,
            events,
            backend,
        }) = connection
        {
            // Dropping the socket's halves closes it: its connection writes what it holds.
            drop((send, recv, events));
            flushed(backend, closing.unwrap_or_else(Instant::now)).await;
        }
    }
}

/// A message to or from one worker of a master: the worker's identity and the frame.
pub type Routed = (String, Vec<u8>);

enum RouterCommand {
    Send(String, Vec<u8>),
    Close,
}

/// A master's socket: every worker connects to it.
pub struct Router {
    commands: UnboundedSender<RouterCommand>,
    inbox: UnboundedReceiver<Routed>,
    task: Option<JoinHandle<()>>,
    /// Where it listens (`tcp://127.0.0.1:40123`).
    pub endpoint: String,
    address: SocketAddr,
    pub traffic: Arc<Traffic>,
}

impl Router {
    /// Binds `address` (port 0 picks a free one).
    pub async fn bind(address: SocketAddr) -> Result<Router, LinkError> {
        let wanted = endpoint(&address.ip().to_string(), &address.port().to_string());
        let runtime = tokio::runtime::Handle::try_current()?;
        let listen_error = |source| LinkError::Listen {
            endpoint: wanted.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(address).map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        let mut socket = RouterSocket::new();
        socket
            .bind_listener(listener)
            .await
            .map_err(|source| LinkError::Socket {
                what: "listen on",
                endpoint: wanted.clone(),
                source,
            })?;
        let backend = Arc::downgrade(&socket.backend());
        let (send, recv) = socket.split();
        let (commands, outbox) = unbounded_channel();
        let (incoming, inbox) = unbounded_channel();
        let traffic = Arc::new(Traffic::default());
        let task = RouterTask {
            send,
            recv,
            backend,
            outbox,
            incoming,
            traffic: traffic.clone(),
        };
        Ok(Router {
            commands,
            inbox,
            task: Some(runtime.spawn(task.run())),
            endpoint: endpoint(&address.ip().to_string(), &address.port().to_string()),
            address,
            traffic,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Queues a message for the worker `identity` (dropped if it is not connected).
    pub fn send(&self, identity: &str, bytes: Vec<u8>) {
        let _ = self
            .commands
            .send(RouterCommand::Send(identity.to_string(), bytes));
    }

    /// The next message from any worker; `None` once the socket's task has ended.
    pub async fn recv(&mut self) -> Option<Routed> {
        self.inbox.recv().await
    }

    /// Sends what is queued (for at most 3 s) and closes the socket.
    pub async fn close(mut self) {
        let task = self.task.take();
        drop(self);
        join(task).await;
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.commands.send(RouterCommand::Close);
    }
}

/// What drives a [`Router`]'s socket.
struct RouterTask {
    send: RouterSendHalf,
    recv: RouterRecvHalf,
    backend: Weak<dyn MultiPeerBackend>,
    outbox: UnboundedReceiver<RouterCommand>,
    incoming: UnboundedSender<Routed>,
    traffic: Arc<Traffic>,
}

impl RouterTask {
    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.outbox.recv() => match command {
                    Some(RouterCommand::Send(identity, bytes)) => {
                        let len = bytes.len();
                        let mut message = ZmqMessage::from(bytes);
                        message.push_front(identity.into_bytes().into());
                        // An identity that is not connected is dropped, as libzmq drops it.
                        if self.send.send(message).await.is_ok() {
                            self.traffic.add_sent(len);
                        }
                    }
                    Some(RouterCommand::Close) | None => break,
                },
                frames = self.recv.recv() => {
                    let Ok(frames) = frames else { break };
                    // A worker's frame: its identity, then the message.
                    let Ok([identity, bytes]) = <[Bytes; 2]>::try_from(frames.into_vec()) else {
                        continue;
                    };
                    self.traffic.add_received(bytes.len());
                    let identity = String::from_utf8_lossy(&identity).into_owned();
                    let _ = self.incoming.send((identity, bytes.to_vec()));
                }
            }
        }
        let deadline = Instant::now() + LINGER;
        let RouterTask {
            send,
            recv,
            backend,
            ..
        } = self;
        // Dropping both halves closes the socket: its connections write what they hold.
        drop((send, recv));
        flushed(backend, deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    async fn next_routed(router: &mut Router) -> Routed {
        tokio::time::timeout(WAIT, router.recv())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
    }

    async fn next_frame(dealer: &mut Dealer) -> Vec<u8> {
        tokio::time::timeout(WAIT, dealer.recv())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
    }

    async fn loopback_router() -> Router {
        Router::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind")
    }

    fn local(port: u16) -> String {
        endpoint("127.0.0.1", &port.to_string())
    }

    /// A port nothing listens on (it was free a moment ago).
    fn unused_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    #[tokio::test]
    async fn a_dealer_and_a_router_exchange_frames_both_ways() {
        let mut router = loopback_router().await;
        assert_eq!(router.endpoint, local(router.port()));
        let mut dealer = Dealer::connect(&local(router.port()), "w1_abc").expect("dealer");
        dealer.send(b"hello".to_vec());
        let (who, bytes) = next_routed(&mut router).await;
        assert_eq!((who.as_str(), bytes.as_slice()), ("w1_abc", &b"hello"[..]));
        router.send(&who, b"ack".to_vec());
        assert_eq!(next_frame(&mut dealer).await, b"ack");
        // A frame for a worker that is not connected is dropped, and not counted.
        router.send("nobody", b"lost".to_vec());
        router.send(&who, b"ok".to_vec());
        assert_eq!(next_frame(&mut dealer).await, b"ok");
        assert_eq!(dealer.traffic.totals(), (5, 5));
        assert_eq!(router.traffic.totals(), (5, 5));
        // A rebuilt socket keeps the identity.
        dealer.reconnect();
        dealer.send(b"again".to_vec());
        let (who, bytes) = next_routed(&mut router).await;
        assert_eq!((who.as_str(), bytes.as_slice()), ("w1_abc", &b"again"[..]));
        router.send(&who, b"back".to_vec());
        assert_eq!(next_frame(&mut dealer).await, b"back");
        dealer.close().await;
        router.close().await;
        assert_eq!(endpoint("::1", "5557"), "tcp://[::1]:5557");
    }

    #[tokio::test]
    async fn messages_sent_before_the_master_listens_are_delivered_once_it_does() {
        let port = unused_port();
        let mut dealer = Dealer::connect(&local(port), "early_1").expect("dealer");
        for n in 0..5u8 {
            dealer.send(vec![n]);
        }
        // Its first attempts are refused.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut router = Router::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind");
        for n in 0..5u8 {
            assert_eq!(next_routed(&mut router).await, ("early_1".into(), vec![n]));
        }
        router.send("early_1", b"ack".to_vec());
        assert_eq!(next_frame(&mut dealer).await, b"ack");
        assert_eq!(dealer.traffic.totals(), (5, 3));
        dealer.close().await;
        router.close().await;
    }

    #[tokio::test]
    async fn a_dealer_comes_back_to_a_master_that_restarted() {
        let mut router = loopback_router().await;
        let address = SocketAddr::from(([127, 0, 0, 1], router.port()));
        let mut dealer = Dealer::connect(&local(address.port()), "w2_def").expect("dealer");
        dealer.send(b"one".to_vec());
        assert_eq!(next_routed(&mut router).await.1, b"one");
        router.close().await;

        // A new master on the same port: the worker's socket is rebuilt and found again,
        // without the worker sending anything first (its heartbeats are what would tell).
        let mut router = Router::bind(address).await.expect("bind again");
        let deadline = Instant::now() + WAIT;
        loop {
            router.send("w2_def", b"welcome".to_vec());
            match tokio::time::timeout(Duration::from_millis(100), dealer.recv()).await {
                Ok(frame) => {
                    assert_eq!(frame.as_deref(), Some(&b"welcome"[..]));
                    break;
                }
                Err(_) => assert!(Instant::now() < deadline, "the worker never came back"),
            }
        }
        dealer.send(b"two".to_vec());
        assert_eq!(
            next_routed(&mut router).await,
            ("w2_def".into(), b"two".to_vec())
        );
        dealer.close().await;
        router.close().await;
    }

    #[tokio::test]
    async fn a_closing_dealer_delivers_what_it_holds_before_its_runtime_ends() {
        let mut router = loopback_router().await;
        let target = local(router.port());
        // Larger than the connection's buffers: its writer cannot be done at once.
        let big = vec![7u8; 48 << 20];
        let sent = big.clone();
        // The worker's process: its runtime ends (and its tasks with it) as soon as `close`
        // returns, as a worker's does when it exits.
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let dealer = Dealer::connect(&target, "w3_ghi").expect("dealer");
                dealer.send(b"first".to_vec());
                dealer.send(sent);
                let start = Instant::now();
                dealer.close().await;
                start.elapsed()
            })
        });
        assert_eq!(next_routed(&mut router).await.1, b"first");
        let (_, bytes) = next_routed(&mut router).await;
        assert!(bytes == big, "{} of {} bytes", bytes.len(), big.len());
        // Done once its frames are written, not at the end of its linger.
        let took = worker.join().expect("the worker's thread");
        assert!(took < LINGER, "{took:?}");
        router.close().await;
    }

    #[tokio::test]
    async fn a_dealer_without_a_master_gives_up_on_close_after_its_linger() {
        let dealer = Dealer::connect(&local(unused_port()), "w4_jkl").expect("dealer");
        dealer.send(b"nobody hears this".to_vec());
        let start = Instant::now();
        dealer.close().await;
        let took = start.elapsed();
        // Generous: the machine is shared.
        assert!(took >= LINGER && took < LINGER * 4, "{took:?}");
    }

    #[tokio::test]
    async fn ipv6_endpoints_work() {
        let mut router = Router::bind("[::1]:0".parse().expect("address"))
            .await
            .expect("bind");
        assert_eq!(router.endpoint, format!("tcp://[::1]:{}", router.port()));
        let mut dealer = Dealer::connect(&endpoint("::1", &router.port().to_string()), "w5_mno")
            .expect("dealer");
        dealer.send(b"over six".to_vec());
        assert_eq!(
            next_routed(&mut router).await,
            ("w5_mno".into(), b"over six".to_vec())
        );
        router.send("w5_mno", b"ok".to_vec());
        assert_eq!(next_frame(&mut dealer).await, b"ok");
        dealer.close().await;
        router.close().await;
    }

    #[tokio::test]
    async fn errors_name_the_endpoint() {
        let router = loopback_router().await;
        let taken = SocketAddr::from(([127, 0, 0, 1], router.port()));
        let Err(e) = Router::bind(taken).await else {
            panic!("bound a port in use");
        };
        assert!(matches!(e, LinkError::Listen { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot listen on {}: ", router.endpoint))
        );
        let long = "w".repeat(300);
        let Err(e) = Dealer::connect(&router.endpoint, &long) else {
            panic!("took a 300-byte identity");
        };
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to {}: ", router.endpoint))
        );
        let Err(e) = Dealer::connect("tcp://nowhere", "w6") else {
            panic!("took an endpoint without a port");
        };
        assert!(
            e.to_string()
                .starts_with("cannot connect to tcp://nowhere: "),
            "{e}"
        );
        router.close().await;
    }
}
