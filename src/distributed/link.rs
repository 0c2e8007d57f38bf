//! The ZeroMQ sockets of Locust's protocol: a worker's DEALER and a master's ROUTER, each
//! owned by a thread of its own (libzmq sockets are not to be shared between threads) and
//! reached from async code through channels.
//!
//! The thread polls its socket briefly and in between sends what the channel brought, so a
//! message waits at most 5 ms before it leaves. libzmq reconnects a dropped TCP
//! connection by itself; a worker can also rebuild its socket (Locust's `reconnect`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long a socket's thread waits for an incoming message before it looks at its outbox.
const POLL: Duration = Duration::from_millis(5);
/// How long a closing socket keeps trying to deliver what it still holds.
const LINGER: Duration = Duration::from_secs(3);

/// A socket that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot {what} {endpoint}: {source}")]
    Socket {
        what: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
    #[error("the socket's thread could not start: {0}")]
    Thread(std::io::Error),
}

/// Bytes through a socket, both ways (every frame's payload).
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
}

/// Waits for a socket's thread, which ends once its owner is dropped and its socket has
/// delivered what it held.
async fn join(thread: Option<JoinHandle<()>>) {
    if let Some(thread) = thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
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

fn socket_error(what: &'static str, endpoint: &str) -> impl FnOnce(zmq::Error) -> LinkError {
    let endpoint = endpoint.to_string();
    move |source| LinkError::Socket {
        what,
        endpoint,
        source,
    }
}

enum DealerCommand {
    Send(Vec<u8>),
    Reconnect,
}

/// A worker's connection to its master.
pub struct Dealer {
    commands: Sender<DealerCommand>,
    inbox: UnboundedReceiver<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    pub traffic: Arc<Traffic>,
}

fn dealer_socket(
    context: &zmq::Context,
    endpoint: &str,
    identity: &str,
) -> Result<zmq::Socket, LinkError> {
    let socket = context
        .socket(zmq::DEALER)
        .map_err(socket_error("open a socket for", endpoint))?;
    let setup = |socket: &zmq::Socket| -> Result<(), zmq::Error> {
        socket.set_identity(identity.as_bytes())?;
        socket.set_linger(LINGER.as_millis() as i32)?;
        socket.set_tcp_keepalive(1)?;
        socket.set_tcp_keepalive_idle(30)?;
        socket.set_ipv6(endpoint.contains('['))?;
        socket.connect(endpoint)
    };
    setup(&socket).map_err(socket_error("connect to", endpoint))?;
    Ok(socket)
}

impl Dealer {
    /// Connects to `endpoint` as `identity` (the worker's node id). libzmq connects in the
    /// background: messages sent before the master is up wait in the socket.
    pub fn connect(endpoint: &str, identity: &str) -> Result<Dealer, LinkError> {
        let context = zmq::Context::new();
        let socket = dealer_socket(&context, endpoint, identity)?;
        let (commands, outbox) = channel();
        let (incoming, inbox) = unbounded_channel();
        let traffic = Arc::new(Traffic::default());
        let counted = traffic.clone();
        let (endpoint, identity) = (endpoint.to_string(), identity.to_string());
        let thread = std::thread::Builder::new()
            .name("lva-dealer".into())
            .spawn(move || {
                let mut socket = socket;
                loop {
                    loop {
                        match outbox.try_recv() {
                            Ok(DealerCommand::Send(bytes)) => {
                                if socket.send(bytes.as_slice(), zmq::DONTWAIT).is_ok() {
                                    counted
                                        .sent
                                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                                }
                            }
                            Ok(DealerCommand::Reconnect) => {
                                // The old socket goes at once, with what it still held,
                                // as Locust's worker does it.
                                let _ = socket.set_linger(0);
                                if let Ok(fresh) = dealer_socket(&context, &endpoint, &identity) {
                                    socket = fresh;
                                }
                            }
                            Err(TryRecvError::Empty) => break,
                            // The owner is gone: the socket closes, lingering to deliver.
                            Err(TryRecvError::Disconnected) => return,
                        }
                    }
                    if !receive(&socket, &counted, |bytes| incoming.send(bytes).is_ok()) {
                        return;
                    }
                }
            })
            .map_err(LinkError::Thread)?;
        Ok(Dealer {
            commands,
            inbox,
            thread: Some(thread),
            traffic,
        })
    }

    /// Queues a message for the master.
    pub fn send(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(DealerCommand::Send(bytes));
    }

    /// A handle that sends through this socket from another task.
    pub fn sender(&self) -> DealerSender {
        DealerSender(self.commands.clone())
    }

    /// The next message from the master; `None` once the socket's thread has ended.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbox.recv().await
    }

    /// Rebuilds the socket with the same identity.
    pub fn reconnect(&self) {
        let _ = self.commands.send(DealerCommand::Reconnect);
    }

    /// Sends what is queued (for at most 3 s) and closes the socket.
    pub async fn close(mut self) {
        let thread = self.thread.take();
        drop(self);
        join(thread).await;
    }
}

/// Sends through a [`Dealer`] from another task.
#[derive(Clone)]
pub struct DealerSender(Sender<DealerCommand>);

impl DealerSender {
    pub fn send(&self, bytes: Vec<u8>) {
        let _ = self.0.send(DealerCommand::Send(bytes));
    }
}

/// Waits up to [`POLL`] for messages and hands each to `deliver`; `false` once nobody
/// takes them any more.
fn receive(
    socket: &zmq::Socket,
    traffic: &Traffic,
    mut deliver: impl FnMut(Vec<u8>) -> bool,
) -> bool {
    if !matches!(socket.poll(zmq::POLLIN, POLL.as_millis() as i64), Ok(n) if n > 0) {
        return true;
    }
    while let Ok(bytes) = socket.recv_bytes(zmq::DONTWAIT) {
        traffic
            .received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if !deliver(bytes) {
            return false;
        }
    }
    true
}

/// A message to or from one worker of a master: the worker's identity and the frame.
pub type Routed = (String, Vec<u8>);

/// A master's socket: every worker connects to it.
pub struct Router {
    outbox: Sender<Routed>,
    inbox: UnboundedReceiver<Routed>,
    thread: Option<JoinHandle<()>>,
    /// Where it listens, as libzmq reports it (`tcp://127.0.0.1:40123`).
    pub endpoint: String,
    pub traffic: Arc<Traffic>,
}

impl Router {
    /// Binds `address` (port 0 picks a free one).
    pub fn bind(address: std::net::SocketAddr) -> Result<Router, LinkError> {
        let port = if address.port() == 0 {
            "*".to_string()
        } else {
            address.port().to_string()
        };
        let wanted = endpoint(&address.ip().to_string(), &port);
        let context = zmq::Context::new();
        let socket = context
            .socket(zmq::ROUTER)
            .map_err(socket_error("open a socket for", &wanted))?;
        let setup = |socket: &zmq::Socket| -> Result<String, zmq::Error> {
            socket.set_linger(LINGER.as_millis() as i32)?;
            // A worker that rebuilt its socket (Locust's `reconnect`) comes back with its
            // identity: its new connection takes over at once, rather than being refused
            // until the old one is noticed gone.
            socket.set_router_handover(true)?;
            socket.set_tcp_keepalive(1)?;
            socket.set_tcp_keepalive_idle(30)?;
            socket.set_ipv6(address.is_ipv6())?;
            socket.bind(&wanted)?;
            Ok(socket
                .get_last_endpoint()?
                .unwrap_or_else(|_| wanted.clone()))
        };
        let endpoint = setup(&socket).map_err(socket_error("listen on", &wanted))?;
        let (outbox, outgoing) = channel::<Routed>();
        let (incoming, inbox) = unbounded_channel();
        let traffic = Arc::new(Traffic::default());
        let counted = traffic.clone();
        let thread = std::thread::Builder::new()
            .name("lva-router".into())
            .spawn(move || router_loop(&socket, &outgoing, &incoming, &counted))
            .map_err(LinkError::Thread)?;
        Ok(Router {
            outbox,
            inbox,
            thread: Some(thread),
            endpoint,
            traffic,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> Option<u16> {
        self.endpoint.rsplit(':').next()?.parse().ok()
    }

    /// Queues a message for the worker `identity` (dropped if it is not connected).
    pub fn send(&self, identity: &str, bytes: Vec<u8>) {
        let _ = self.outbox.send((identity.to_string(), bytes));
    }

    /// The next message from any worker.
    pub async fn recv(&mut self) -> Option<Routed> {
        self.inbox.recv().await
    }

    /// A handle that sends through this socket from anywhere.
    pub fn sender(&self) -> RouterSender {
        RouterSender(self.outbox.clone())
    }

    /// Sends what is queued (for at most 3 s) and closes the socket.
    pub async fn close(mut self) {
        let thread = self.thread.take();
        drop(self);
        join(thread).await;
    }
}

/// Sends through a [`Router`] from another task.
#[derive(Clone)]
pub struct RouterSender(Sender<Routed>);

impl RouterSender {
    pub fn send(&self, identity: &str, bytes: Vec<u8>) {
        let _ = self.0.send((identity.to_string(), bytes));
    }
}

fn router_loop(
    socket: &zmq::Socket,
    outgoing: &Receiver<Routed>,
    incoming: &UnboundedSender<Routed>,
    traffic: &Traffic,
) {
    loop {
        loop {
            match outgoing.try_recv() {
                Ok((identity, bytes)) => {
                    let frames = [identity.as_bytes(), bytes.as_slice()];
                    if socket.send_multipart(frames, zmq::DONTWAIT).is_ok() {
                        traffic
                            .sent
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if !matches!(socket.poll(zmq::POLLIN, POLL.as_millis() as i64), Ok(n) if n > 0) {
            continue;
        }
        while let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) {
            // A worker's frame: its identity, then the message.
            let [identity, bytes]: [Vec<u8>; 2] = match frames.try_into() {
                Ok(pair) => pair,
                Err(_) => continue,
            };
            traffic
                .received
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let identity = String::from_utf8_lossy(&identity).into_owned();
            if incoming.send((identity, bytes)).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dealer_and_a_router_exchange_frames_both_ways() {
        let mut router = Router::bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let port = router.port().expect("port").to_string();
        let mut dealer = Dealer::connect(&endpoint("127.0.0.1", &port), "w1_abc").expect("dealer");
        dealer.send(b"hello".to_vec());
        let (who, bytes) = tokio::time::timeout(Duration::from_secs(5), router.recv())
            .await
            .expect("in time")
            .expect("a frame");
        assert_eq!((who.as_str(), bytes.as_slice()), ("w1_abc", &b"hello"[..]));
        router.send(&who, b"ack".to_vec());
        let back = tokio::time::timeout(Duration::from_secs(5), dealer.recv())
            .await
            .expect("in time");
        assert_eq!(back.as_deref(), Some(&b"ack"[..]));
        // Each side counts a frame once its socket took it, which may be just after the
        // other side read it.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while (dealer.traffic.totals(), router.traffic.totals()) != ((5, 3), (3, 5)) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?} {:?}",
                dealer.traffic.totals(),
                router.traffic.totals()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A rebuilt socket keeps the identity.
        dealer.reconnect();
        dealer.send(b"again".to_vec());
        let (who, _) = tokio::time::timeout(Duration::from_secs(5), router.recv())
            .await
            .expect("in time")
            .expect("a frame");
        assert_eq!(who, "w1_abc");
        dealer.close().await;
        router.close().await;
        assert_eq!(endpoint("::1", "5557"), "tcp://[::1]:5557");
    }
}
