//! The manager: waits for the workers, hands out the shares, starts them together, watches
//! them, merges what they measured and concludes the run like a single-machine run.
//!
//! One task accepts connections; each connection gets a task that reads the worker's
//! `hello` and then carries messages both ways. Every decision (who joins, who is lost,
//! when the run is over) is taken by the single loop of `Manager`, fed by one channel of
//! `Event`s, so there are no races between workers joining, leaving and reporting.

use super::protocol::{
    Fingerprint, ManagerMessage, PROTOCOL_VERSION, Progress, WorkerMessage, WorkerRun, decode,
    decode_hello, encode, websocket_config,
};
use super::{Share, split};
use crate::cli::DistributedArgs;
use crate::cli::RunArgs;
use crate::conclude::{RunEnd, conclude};
use crate::duration::{HumanDuration, parse_duration};
use crate::exit::Exit;
use crate::measure::MemorySource;
use crate::measure::merge;
use crate::measure::{Ledger, MeasuredRun};
use crate::plan::Plan;
use crate::report::RunOutputs;
use crate::verdict::Check;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use url::Url;

/// A worker that sends nothing for this long is lost (it sends something every second).
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long a worker has to resolve its share and reach the host.
const PREPARE_LIMIT: Duration = Duration::from_secs(30);
/// Between `start` and the first request: time for every worker to get the message.
const START_DELAY: Duration = Duration::from_secs(1);
/// After the planned end, how long the workers have to stop their users and report.
const FINISH_GRACE: Duration = Duration::from_secs(300);

/// What the manager's run needs from the command line and the single-run setup.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    pub args: &'a RunArgs,
    pub host: &'a Url,
    pub builtin_pid: Option<u32>,
    pub memory: Option<MemorySource>,
    pub outputs: &'a RunOutputs,
    pub options: &'a DistributedArgs,
}

/// Bytes of messages between the manager and its workers (the JSON text of each frame).
#[derive(Default)]
struct Traffic {
    from_workers: AtomicU64,
    to_workers: AtomicU64,
}

enum Event {
    /// A worker said hello; the reply says whether it joins (its id and name) or why not.
    Join {
        name: String,
        fingerprint: Box<Fingerprint>,
        outbox: mpsc::UnboundedSender<ManagerMessage>,
        reply: oneshot::Sender<Result<(usize, String), String>>,
    },
    Message {
        id: usize,
        message: Box<WorkerMessage>,
    },
    Closed {
        id: usize,
        reason: String,
    },
    /// A connection that never became a worker.
    TurnedAway {
        peer: SocketAddr,
        reason: String,
    },
}

#[derive(Debug)]
enum State {
    Joined,
    Ready,
    Running,
    Done {
        measured: Box<MeasuredRun>,
        goose_error: Option<String>,
    },
    Lost {
        reason: String,
        at_secs: f64,
    },
}

struct Worker {
    name: String,
    outbox: mpsc::UnboundedSender<ManagerMessage>,
    share: Option<Share>,
    last_heard: Instant,
    progress: Option<Progress>,
    state: State,
}

impl Worker {
    fn send(&self, message: ManagerMessage) {
        // A closed outbox means the connection is gone; its task reports that as an event.
        let _ = self.outbox.send(message);
    }

    fn is_running(&self) -> bool {
        matches!(self.state, State::Running)
    }
}

/// Why the run stopped before it could be judged.
enum Halt {
    /// Before any traffic: the workers are told, the exit code is 2.
    Config(String),
    /// During the run, without results to judge: exit code 1.
    Failed(String),
}

struct Manager {
    expected: usize,
    workers: BTreeMap<usize, Worker>,
    next_id: usize,
    events: mpsc::UnboundedReceiver<Event>,
    fingerprint: Fingerprint,
    /// Set once the shares are handed out: later workers are refused.
    full: bool,
    started: Option<Instant>,
    signals: Signals,
}

/// Ctrl-C and SIGTERM (what a cluster sends a pod it stops).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

/// Waits for Ctrl-C or SIGTERM, whichever comes first.
async fn signalled(signals: &mut Signals) {
    tokio::select! {
        _ = signals.interrupt.recv() => {}
        _ = signals.terminate.recv() => {}
    }
}

/// Runs the manager's side of a distributed run; returns the exit code.
pub async fn run(setup: Setup<'_>) -> Exit {
    let options = setup.options;
    let wait = match parse_duration(&options.worker_timeout) {
        Ok(wait) => wait,
        Err(e) => return Exit::config_error(format!("--worker-timeout: {e}")),
    };
    let listener = match TcpListener::bind(options.manager_bind).await {
        Ok(listener) => listener,
        Err(e) => {
            return Exit::config_error(format!(
                "the manager cannot listen on {}: {e} (choose another --manager-bind)",
                options.manager_bind
            ));
        }
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| options.manager_bind.to_string(), |a| a.to_string());
    let (interrupt, terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            return Exit::config_error(format!("cannot watch for Ctrl-C: {e}"));
        }
    };
    println!("{}", setup.plan.describe(setup.host));
    println!(
        "Manager listening on ws://{address}/ (protocol {PROTOCOL_VERSION}); waiting up to {} for {} worker{}",
        HumanDuration(wait),
        options.expect_workers,
        if options.expect_workers == 1 { "" } else { "s" }
    );

    let traffic = Arc::new(Traffic::default());
    let (events_tx, events) = mpsc::unbounded_channel();
    let acceptor = tokio::spawn(accept_loop(listener, events_tx, traffic.clone()));
    let fingerprint = Fingerprint::of_this_build();
    let mut manager = Manager {
        expected: options.expect_workers as usize,
        workers: BTreeMap::new(),
        next_id: 1,
        events,
        fingerprint,
        full: false,
        started: None,
        signals: Signals {
            interrupt,
            terminate,
        },
    };
    // The security probes run once per run, from the manager, on their own accounts.
    let probe_run =
        crate::probes::BesideRun::start(setup.plan.probes, setup.host, &setup.plan.flow_options);
    let outcome = manager.drive(&setup, wait).await;
    let probes = probe_run.report().await;
    let code = match outcome {
        Ok(memory) => manager.conclude(&setup, memory, &traffic, &address, probes),
        Err(Halt::Config(reason)) => {
            for worker in manager.workers.values() {
                worker.send(ManagerMessage::Abort {
                    reason: reason.clone(),
                });
            }
            eprintln!("error: {reason}");
            Exit::Config
        }
        Err(Halt::Failed(reason)) => {
            eprintln!("error: {reason}");
            Exit::Failed
        }
    };
    // Let the last messages (abort, received) reach the workers before the sockets close.
    manager.workers.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    acceptor.abort();
    code
}

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    traffic: Arc<Traffic>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer, events.clone(), traffic.clone()));
            }
            Err(e) => {
                eprintln!("warning: accepting a worker's connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One worker's connection: its hello, the manager's answer, then messages both ways
/// until either side ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    traffic: Arc<Traffic>,
) {
    let turned_away = |reason: String| {
        let _ = events.send(Event::TurnedAway { peer, reason });
    };
    let socket =
        match tokio_tungstenite::accept_async_with_config(stream, Some(websocket_config())).await {
            Ok(socket) => socket,
            Err(e) => return turned_away(format!("not a WebSocket handshake: {e}")),
        };
    let (mut sink, mut stream) = socket.split();
    let mut send = async |message: &ManagerMessage| {
        let frame = encode(message);
        traffic
            .to_workers
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        sink.send(frame).await
    };
    let text = match timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => text,
        _ => return turned_away("no hello within 10 s".into()),
    };
    traffic
        .from_workers
        .fetch_add(text.len() as u64, Ordering::Relaxed);
    let (name, fingerprint) = match decode_hello(text.as_str()) {
        Ok(hello) => hello,
        Err(e) => {
            let reason = e.to_string();
            let _ = send(&ManagerMessage::Refused {
                reason: reason.clone(),
            })
            .await;
            return turned_away(reason);
        }
    };
    let (outbox, mut outgoing) = mpsc::unbounded_channel();
    let (reply, answer) = oneshot::channel();
    let join = Event::Join {
        name,
        fingerprint: Box::new(fingerprint),
        outbox,
        reply,
    };
    if events.send(join).is_err() {
        return;
    }
    let id = match answer.await {
        Ok(Ok((id, worker_name))) => {
            if send(&ManagerMessage::Welcome { worker_name })
                .await
                .is_err()
            {
                return;
            }
            id
        }
        Ok(Err(reason)) => {
            let _ = send(&ManagerMessage::Refused { reason }).await;
            return;
        }
        Err(_) => return,
    };
    loop {
        tokio::select! {
            message = outgoing.recv() => match message {
                Some(message) => {
                    if let Err(e) = send(&message).await {
                        let _ = events.send(Event::Closed { id, reason: e.to_string() });
                        return;
                    }
                }
                // The manager is done with this worker.
                None => return,
            },
            frame = stream.next() => match decode::<WorkerMessage>(frame) {
                Ok(Some((message, bytes))) => {
                    traffic.from_workers.fetch_add(bytes as u64, Ordering::Relaxed);
                    let message = Box::new(message);
                    if events.send(Event::Message { id, message }).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = events.send(Event::Closed { id, reason: e.to_string() });
                    return;
                }
            },
        }
    }
}

/// The second Ctrl-C (or SIGTERM) ends the manager without waiting.
const SECOND_SIGNAL: &str = "stopped by a second Ctrl-C without waiting for the workers' results";

impl Manager {
    /// Gathers the workers, prepares and starts them, and watches the run to its end;
    /// returns the manager's memory samples of the server under test, if it took any.
    async fn drive(&mut self, setup: &Setup<'_>, wait: Duration) -> Result<MeasuredRun, Halt> {
        self.gather(wait).await?;
        self.prepare(setup).await?;
        self.watch(setup).await
    }

    fn joined(&self) -> usize {
        self.workers.len()
    }

    fn elapsed_secs(&self) -> f64 {
        self.started.map_or(0.0, |s| {
            Instant::now().saturating_duration_since(s).as_secs_f64()
        })
    }

    fn heartbeat(&self) {
        for worker in self.workers.values() {
            worker.send(ManagerMessage::Heartbeat);
        }
    }

    /// Answers a hello: the worker joins if there is room and it runs the same build.
    fn on_join(
        &mut self,
        name: String,
        fingerprint: &Fingerprint,
        outbox: mpsc::UnboundedSender<ManagerMessage>,
        reply: oneshot::Sender<Result<(usize, String), String>>,
    ) -> Result<(), Halt> {
        let differences = self.fingerprint.differences(fingerprint);
        if !differences.is_empty() {
            let what = differences.join("; ");
            let _ = reply.send(Err(format!(
                "this worker's build differs from the manager's: {what}"
            )));
            if self.full {
                close_live_line();
                eprintln!("warning: refused worker {name}, a different build: {what}");
                return Ok(());
            }
            return Err(Halt::Config(format!(
                "worker {name} runs a different build or task table than the manager ({what}); \
                 run the same version of lva-loadtest everywhere"
            )));
        }
        if self.full || self.joined() >= self.expected {
            let why = if self.started.is_some() {
                format!(
                    "the run has already started with its {} workers; late workers are refused",
                    self.expected
                )
            } else {
                format!(
                    "the run already has its {} workers (--expect-workers); extra workers are refused",
                    self.expected
                )
            };
            close_live_line();
            eprintln!("warning: refused worker {name}: {why}");
            let _ = reply.send(Err(why));
            return Ok(());
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut unique = name.clone();
        let mut n = 1;
        while self.workers.values().any(|w| w.name == unique) {
            n += 1;
            unique = format!("{name}#{n}");
        }
        if reply.send(Ok((id, unique.clone()))).is_err() {
            return Ok(());
        }
        self.workers.insert(
            id,
            Worker {
                name: unique.clone(),
                outbox,
                share: None,
                last_heard: Instant::now(),
                progress: None,
                state: State::Joined,
            },
        );
        println!(
            "Worker {unique} joined ({} of {})",
            self.joined(),
            self.expected
        );
        Ok(())
    }

    /// Handles what any stage handles alike; returns the worker messages and closures left
    /// for the stage.
    fn on_event(&mut self, event: Option<Event>) -> Result<Option<(usize, Update)>, Halt> {
        match event {
            None => Err(Halt::Failed("the manager's connections ended".into())),
            Some(Event::Join {
                name,
                fingerprint,
                outbox,
                reply,
            }) => self
                .on_join(name, &fingerprint, outbox, reply)
                .map(|()| None),
            Some(Event::TurnedAway { peer, reason }) => {
                close_live_line();
                eprintln!("warning: turned away a connection from {peer}: {reason}");
                Ok(None)
            }
            Some(Event::Message { id, message }) => {
                let Some(worker) = self.workers.get_mut(&id) else {
                    return Ok(None);
                };
                worker.last_heard = Instant::now();
                Ok(Some((id, Update::Message(message))))
            }
            Some(Event::Closed { id, reason }) => Ok(Some((id, Update::Closed(reason)))),
        }
    }

    /// Waits until the expected workers have joined.
    async fn gather(&mut self, wait: Duration) -> Result<(), Halt> {
        let deadline = Instant::now() + wait;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self.joined() < self.expected {
            tokio::select! {
                _ = sleep_until(deadline) => {
                    let names: Vec<&str> = self.workers.values().map(|w| w.name.as_str()).collect();
                    return Err(Halt::Config(format!(
                        "only {} of {} workers joined within {} (--worker-timeout){}",
                        self.joined(),
                        self.expected,
                        HumanDuration(wait),
                        if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) }
                    )));
                }
                _ = tick.tick() => {
                    self.heartbeat();
                    let silent: Vec<usize> = self
                        .workers
                        .iter()
                        .filter(|(_, w)| w.last_heard.elapsed() > SILENCE_LIMIT)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in silent {
                        self.leave(id, "no message for 5 s");
                    }
                }
                _ = signalled(&mut self.signals) => {
                    return Err(Halt::Config("interrupted before the run started".into()));
                }
                event = self.events.recv() => {
                    if let Some((id, update)) = self.on_event(event)? {
                        match update {
                            Update::Closed(reason) => self.leave(id, &reason),
                            Update::Message(message) => self.unexpected(id, &message, "before the run")?,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A worker left before the run: its place is free again.
    fn leave(&mut self, id: usize, reason: &str) {
        if let Some(worker) = self.workers.remove(&id) {
            println!(
                "Worker {} left before the run ({reason}); {} of {} joined",
                worker.name,
                self.joined(),
                self.expected
            );
        }
    }

    /// Heartbeats are expected anywhere; `failed` is a refusal before traffic.
    fn unexpected(&self, id: usize, message: &WorkerMessage, when: &str) -> Result<(), Halt> {
        let name = self.workers.get(&id).map_or("?", |w| w.name.as_str());
        match message {
            WorkerMessage::Heartbeat | WorkerMessage::Progress(_) => Ok(()),
            WorkerMessage::Failed { reason } => Err(Halt::Config(format!(
                "worker {name} cannot take its share: {reason}"
            ))),
            other => {
                eprintln!("warning: worker {name} sent {other:?} {when}; ignored");
                Ok(())
            }
        }
    }

    /// Hands out the shares and waits until every worker is ready.
    async fn prepare(&mut self, setup: &Setup<'_>) -> Result<(), Halt> {
        let plan = setup.plan;
        self.full = true;
        let shares = split(plan.users, plan.spawn_rate, self.expected);
        let window_ms = plan.targets.spike_window().as_millis() as u64;
        println!("Shares:");
        for (worker, share) in self.workers.values_mut().zip(shares) {
            println!(
                "  {}: {} users at {}/s (users #{} to #{})",
                worker.name,
                share.users,
                share.spawn_rate,
                share.first_user_index + 1,
                share.first_user_index + share.users as u64
            );
            worker.share = Some(share);
            let run = worker_run(setup, share, window_ms);
            worker.send(ManagerMessage::Prepare { run: Box::new(run) });
        }
        let deadline = Instant::now() + PREPARE_LIMIT;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self
            .workers
            .values()
            .any(|w| !matches!(w.state, State::Ready))
        {
            tokio::select! {
                _ = sleep_until(deadline) => {
                    let late: Vec<&str> = self
                        .workers
                        .values()
                        .filter(|w| !matches!(w.state, State::Ready))
                        .map(|w| w.name.as_str())
                        .collect();
                    return Err(Halt::Config(format!(
                        "not ready within {}s: {}",
                        PREPARE_LIMIT.as_secs(),
                        late.join(", ")
                    )));
                }
                _ = tick.tick() => {
                    self.heartbeat();
                    if let Some(w) = self.workers.values().find(|w| w.last_heard.elapsed() > SILENCE_LIMIT) {
                        return Err(Halt::Config(format!(
                            "worker {} stopped answering before the run started", w.name
                        )));
                    }
                }
                _ = signalled(&mut self.signals) => {
                    return Err(Halt::Config("interrupted before the run started".into()));
                }
                event = self.events.recv() => {
                    let Some((id, update)) = self.on_event(event)? else { continue };
                    let name = self.workers.get(&id).map_or_else(String::new, |w| w.name.clone());
                    match update {
                        Update::Closed(reason) => {
                            return Err(Halt::Config(format!(
                                "worker {name} left before the run started ({reason})"
                            )));
                        }
                        Update::Message(message) => match *message {
                            WorkerMessage::Ready => {
                                if let Some(w) = self.workers.get_mut(&id) {
                                    w.state = State::Ready;
                                }
                            }
                            other => self.unexpected(id, &other, "before the run")?,
                        },
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts every worker and watches them until each has delivered or is lost.
    async fn watch(&mut self, setup: &Setup<'_>) -> Result<MeasuredRun, Halt> {
        let plan = setup.plan;
        for worker in self.workers.values_mut() {
            worker.send(ManagerMessage::Start {
                start_in_ms: START_DELAY.as_millis() as u64,
            });
            worker.state = State::Running;
        }
        let start = Instant::now() + START_DELAY;
        sleep_until(start).await;
        self.started = Some(start);
        for worker in self.workers.values_mut() {
            worker.last_heard = Instant::now();
        }
        // The server's memory is read here, as a single run reads it.
        let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
        let sampler = setup
            .memory
            .clone()
            .map(|source| source.sample_into(ledger.clone()));
        println!("Started {} workers.", self.expected);

        let deadline = start + plan.duration + FINISH_GRACE;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut live = LiveLine::default();
        let mut stopping = false;
        while self.workers.values().any(Worker::is_running) {
            tokio::select! {
                _ = tick.tick() => {
                    self.heartbeat();
                    self.notice_silence(Instant::now() >= deadline);
                    live.show(self, plan.duration);
                }
                _ = signalled(&mut self.signals) => {
                    if stopping {
                        return Err(Halt::Failed(SECOND_SIGNAL.into()));
                    }
                    stopping = true;
                    close_live_line();
                    println!("Interrupted: stopping every worker (again to quit without their results).");
                    for worker in self.workers.values().filter(|w| w.is_running()) {
                        worker.send(ManagerMessage::Stop { reason: "Ctrl-C on the manager".into() });
                    }
                }
                event = self.events.recv() => {
                    if let Some((id, update)) = self.on_event(event)? {
                        self.on_running_update(id, update);
                    }
                }
            }
        }
        close_live_line();
        if let Some(sampler) = sampler {
            sampler.abort();
        }
        Ok(ledger.snapshot(&plan.scenario, false))
    }

    /// Workers that have been silent too long (or all still running, past the deadline)
    /// are lost.
    fn notice_silence(&mut self, past_deadline: bool) {
        let at_secs = self.elapsed_secs();
        for worker in self.workers.values_mut().filter(|w| w.is_running()) {
            let reason = if worker.last_heard.elapsed() > SILENCE_LIMIT {
                format!("no message for {} s", SILENCE_LIMIT.as_secs())
            } else if past_deadline {
                format!(
                    "no result {} s after the planned end",
                    FINISH_GRACE.as_secs()
                )
            } else {
                continue;
            };
            lose(worker, reason, at_secs);
        }
    }

    fn on_running_update(&mut self, id: usize, update: Update) {
        let at_secs = self.elapsed_secs();
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        match update {
            Update::Closed(reason) => {
                if worker.is_running() {
                    lose(worker, format!("connection lost: {reason}"), at_secs);
                }
            }
            Update::Message(message) => match *message {
                WorkerMessage::Progress(progress) => worker.progress = Some(progress),
                WorkerMessage::Result {
                    measured,
                    goose_error,
                } if worker.is_running() => {
                    worker.send(ManagerMessage::Received);
                    close_live_line();
                    println!(
                        "Worker {} finished: {} requests.",
                        worker.name,
                        measured.requests.iter().map(|r| r.total()).sum::<u64>()
                    );
                    worker.state = State::Done {
                        measured,
                        goose_error,
                    };
                }
                WorkerMessage::Failed { reason } if worker.is_running() => {
                    lose(worker, format!("failed: {reason}"), at_secs);
                }
                _ => {}
            },
        }
    }

    /// Merges, judges and reports.
    fn conclude(
        &self,
        setup: &Setup<'_>,
        memory: MeasuredRun,
        traffic: &Traffic,
        address: &str,
        probes: Option<crate::probes::ProbeReport>,
    ) -> Exit {
        let done: Vec<&MeasuredRun> = self
            .workers
            .values()
            .filter_map(|w| match &w.state {
                State::Done { measured, .. } => Some(measured.as_ref()),
                _ => None,
            })
            .collect();
        let runs: Vec<MeasuredRun> = done.into_iter().cloned().collect();
        let mut merged = match merge(&runs) {
            Ok(merged) => merged,
            Err(e) => {
                eprintln!("error: {e}; nothing to judge");
                for check in self.workers_check(setup.options.accept_degraded).details {
                    eprintln!("  {check}");
                }
                return Exit::Failed;
            }
        };
        merged.scenario = setup.plan.scenario.clone();
        merged.memory = memory.memory;
        let goose_errors: Vec<String> = self
            .workers
            .values()
            .filter_map(|w| match &w.state {
                State::Done {
                    goose_error: Some(e),
                    ..
                } => Some(format!("{}: {e}", w.name)),
                _ => None,
            })
            .collect();

        let seconds = merged.duration_secs.max(0.001);
        let from = traffic.from_workers.load(Ordering::Relaxed);
        let to = traffic.to_workers.load(Ordering::Relaxed);
        println!(
            "\nTraffic with the workers: {from} bytes received, {to} bytes sent over {seconds:.1} s ({:.0} bytes/s)",
            (from + to) as f64 / seconds
        );
        let lost: Vec<&str> = self
            .workers
            .values()
            .filter(|w| matches!(w.state, State::Lost { .. }))
            .map(|w| w.name.as_str())
            .collect();
        let mut extra = serde_json::Map::new();
        extra.insert(
            "distributed".into(),
            json!({
                "protocol_version": PROTOCOL_VERSION,
                "manager_address": address,
                "fingerprint": self.fingerprint.digest(),
                "expected_workers": self.expected,
                "degraded": !lost.is_empty(),
                "accept_degraded": setup.options.accept_degraded,
                "lost_workers": lost,
                "workers": self.workers.values().map(worker_json).collect::<Vec<_>>(),
                "goose_reports": "not written: Goose's reports are per process (see docs/DISTRIBUTED.md)",
                "traffic": {
                    "bytes_from_workers": from,
                    "bytes_to_workers": to,
                    "seconds": seconds,
                    "bytes_per_second": (from + to) as f64 / seconds,
                },
            }),
        );
        let end = RunEnd {
            measured: merged,
            goose_error: (!goose_errors.is_empty()).then(|| goose_errors.join("; ")),
            goose_reports: Vec::new(),
            extra_checks: vec![self.workers_check(setup.options.accept_degraded)],
            extra,
            probes,
        };
        conclude(
            setup.plan,
            setup.host,
            setup.builtin_pid.is_some(),
            setup.outputs,
            end,
        )
    }

    /// The verdict's word on the workers: all delivered, or which were lost.
    fn workers_check(&self, accept_degraded: bool) -> Check {
        let delivered = self
            .workers
            .values()
            .filter(|w| matches!(w.state, State::Done { .. }))
            .count();
        let lost: Vec<&Worker> = self
            .workers
            .values()
            .filter(|w| matches!(w.state, State::Lost { .. }))
            .collect();
        let mut actual = format!("{delivered} of {} delivered", self.expected);
        if !lost.is_empty() {
            let names: Vec<&str> = lost.iter().map(|w| w.name.as_str()).collect();
            actual.push_str(&format!(
                "; DEGRADED, lost: {}{}",
                names.join(", "),
                if accept_degraded {
                    " (accepted by --accept-degraded)"
                } else {
                    ""
                }
            ));
        }
        let mut check = Check::judged(
            "workers",
            "Workers Reporting",
            format!("all {} workers deliver their measurements", self.expected),
            actual,
            lost.is_empty() || accept_degraded,
        )
        .with_details(self.workers.values().map(worker_line).collect());
        if check.failed() {
            check.advice = Some(
                "A worker stopped reporting: look at its log and its machine (killed, out of \
                 memory, network). The figures cover the workers that delivered; a lost \
                 worker's last progress is listed but not merged. --accept-degraded accepts \
                 such a run."
                    .into(),
            );
        }
        check
    }
}

/// What the stage decides about a worker's event.
enum Update {
    Message(Box<WorkerMessage>),
    Closed(String),
}

fn lose(worker: &mut Worker, reason: String, at_secs: f64) {
    close_live_line();
    eprintln!(
        "warning: lost worker {} at {at_secs:.1}s ({reason}); the run goes on with the others",
        worker.name
    );
    worker.send(ManagerMessage::Stop {
        reason: format!("the manager gave up on this worker: {reason}"),
    });
    worker.state = State::Lost { reason, at_secs };
}

fn progress_text(p: &Progress) -> String {
    format!(
        "{} requests, {} failures, {} rate limited, {} users at {:.1}s",
        p.requests, p.failures, p.rate_limited, p.users, p.elapsed_secs
    )
}

fn share_text(share: Option<&Share>) -> String {
    share.map_or_else(String::new, |s| {
        format!("{} users at {}/s", s.users, s.spawn_rate)
    })
}

fn worker_line(w: &Worker) -> String {
    let share = share_text(w.share.as_ref());
    match &w.state {
        State::Done { measured, .. } => format!(
            "{}: {share}, delivered {} requests",
            w.name,
            measured.requests.iter().map(|r| r.total()).sum::<u64>()
        ),
        State::Lost { reason, at_secs } => format!(
            "{}: {share}, LOST at {at_secs:.1}s ({reason}); last progress: {}; not in the merged figures",
            w.name,
            w.progress
                .as_ref()
                .map_or_else(|| "none".to_string(), progress_text)
        ),
        other => format!("{}: {share}, {other:?}", w.name),
    }
}

fn worker_json(w: &Worker) -> Value {
    let (status, reason, lost_at, requests) = match &w.state {
        State::Done { measured, .. } => (
            "delivered",
            None,
            None,
            Some(measured.requests.iter().map(|r| r.total()).sum::<u64>()),
        ),
        State::Lost { reason, at_secs } => ("lost", Some(reason.clone()), Some(*at_secs), None),
        _ => ("unfinished", None, None, None),
    };
    json!({
        "name": w.name,
        "users": w.share.map(|s| s.users),
        "spawn_rate": w.share.map(|s| s.spawn_rate),
        "first_user_index": w.share.map(|s| s.first_user_index),
        "status": status,
        "lost_reason": reason,
        "lost_at_secs": lost_at,
        "requests": requests,
        "last_progress": w.progress,
        "last_progress_incomplete": status == "lost",
    })
}

/// The options a worker needs, from the manager's command line and its share.
fn worker_run(setup: &Setup<'_>, share: Share, window_ms: u64) -> WorkerRun {
    let (plan, args) = (setup.plan, setup.args);
    WorkerRun {
        scenario: plan.scenario.clone(),
        host: setup.host.to_string(),
        users: share.users,
        spawn_rate: share.spawn_rate,
        duration_secs: plan.duration.as_secs(),
        tags: plan.filter.include.clone(),
        exclude_tags: plan.filter.exclude.clone(),
        skip_preflight: plan.skip_preflight,
        keep_accounts: args.keep_accounts,
        forwarded_for_pool: args.forwarded_for_pool,
        no_loopback_sources: args.no_loopback_sources,
        request_timeout: args.request_timeout.clone(),
        ws_token_in_header: args.ws_token_in_header,
        ws_hold: args.ws_hold.clone(),
        ws_pace_ms: args.ws_pace_ms,
        ws_payload_bytes: args.ws_payload_bytes,
        ws_timeout: args.ws_timeout.clone(),
        window_ms,
        first_user_index: share.first_user_index,
    }
}

/// The manager's live totals: the sum of the workers' last progress.
#[derive(Default)]
struct LiveLine {
    last_requests: u64,
    seconds: u64,
}

/// Whether the live line is on the terminal without its newline yet.
static LIVE_LINE_OPEN: AtomicBool = AtomicBool::new(false);

/// Ends the live line, so that a message does not overwrite it.
fn close_live_line() {
    if LIVE_LINE_OPEN.swap(false, Ordering::Relaxed) {
        eprintln!();
    }
}

impl LiveLine {
    fn show(&mut self, manager: &Manager, duration: Duration) {
        self.seconds += 1;
        let mut total = Progress::default();
        for worker in manager.workers.values() {
            let Some(p) = &worker.progress else { continue };
            total.requests += p.requests;
            total.failures += p.failures;
            total.rate_limited += p.rate_limited;
            // A lost worker's requests were made; its users are gone.
            if worker.is_running() {
                total.users += p.users;
            }
        }
        let running = manager.workers.values().filter(|w| w.is_running()).count();
        let rps = total.requests.saturating_sub(self.last_requests);
        self.last_requests = total.requests;
        let elapsed = Duration::from_secs_f64(manager.elapsed_secs());
        let judged = total.requests - total.rate_limited;
        let errors = if judged == 0 {
            0.0
        } else {
            total.failures as f64 * 100.0 / judged as f64
        };
        let line = format!(
            "[{} / {} left] workers {running}/{}  users {}  {rps} req/s  errors {errors:.2}%  429s {}  requests {}",
            HumanDuration(Duration::from_secs(elapsed.as_secs())),
            HumanDuration(Duration::from_secs(
                duration.saturating_sub(elapsed).as_secs()
            )),
            manager.expected,
            total.users,
            total.rate_limited,
            total.requests,
        );
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
            LIVE_LINE_OPEN.store(true, Ordering::Relaxed);
        } else if self.seconds.is_multiple_of(5) {
            eprintln!("{line}");
        }
    }
}
