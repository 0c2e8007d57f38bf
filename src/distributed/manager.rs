//! The tool's own master (`--manager`): a Locust master that also reads the exact runs.
//! It speaks Locust's protocol to the same workers a Locust master drives, and holds the
//! whole run's configuration: it resolves the plan (starting the built-in server when there
//! is no `--host`), waits for the workers, refuses one of another build (naming what
//! differs), sends each the plan and waits until each has checked it and the host, ramps
//! the users up over them ([`super::dispatch`]), shows their live totals, stops them at the
//! end and merges what they delivered exactly ([`super::roster`]).
//!
//! Every decision is taken by one loop over the socket's messages, the clock and the
//! signals, so there are no races between workers joining, reporting and leaving.

use super::delivery::{self, Delivery};
use super::dispatch;
use super::fingerprint::Fingerprint;
use super::link::Router;
use super::locust_stats::unix_now;
use super::roster::{Ending, Roster, WorkerOutcome, WorkerRecord, conclude_distributed};
use super::wire::{
    self, Ack, Envelope, Hello, Kind, PROTOCOL_VERSION, Reason, RunMessage, Spawn, Stats,
};
use crate::cli::DistributedArgs;
use crate::duration::{HumanDuration, parse_duration};
use crate::exit::Exit;
use crate::live_metrics::{LiveMetrics, Phase};
use crate::measure::{Ledger, MemorySeries, MemorySource};
use crate::plan::Plan;
use crate::report::RunOutputs;
use crate::user_classes::UserClass;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep_until};
use url::Url;

/// A worker that sends nothing for this long is lost (it sends a heartbeat every second).
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long a worker has to check the plan and reach the host.
const PREPARE_LIMIT: Duration = Duration::from_secs(30);
/// After the stop, how long the workers have to stop their users and deliver.
const FINISH_GRACE: Duration = Duration::from_secs(120);

/// What the manager's run needs from the single-run setup.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    /// Every class of this build (the fingerprint covers them all).
    pub classes: &'a [UserClass],
    pub host: &'a Url,
    pub builtin_pid: Option<u32>,
    pub memory: Option<MemorySource>,
    pub outputs: &'a RunOutputs,
    pub options: &'a DistributedArgs,
    /// The live metrics endpoint (`--metrics-bind`), serving the workers' figures merged,
    /// and how long the end waits for its last scrape.
    pub metrics: Option<(&'a LiveMetrics, Duration)>,
}

enum State {
    Joined,
    Ready,
    Running,
    Done(Box<Delivery>),
    Lost { reason: String, at_secs: f64 },
}

struct Worker {
    node_id: String,
    name: String,
    index: u64,
    last_heard: Instant,
    state: State,
    /// The live figures it reported (Locust's deltas added up).
    requests: u64,
    failures: u64,
    users: u64,
    /// Its share of an open-model run's arrivals is over.
    arrivals_over: bool,
}

impl Worker {
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

/// Ctrl-C and SIGTERM (what a cluster sends a pod it stops).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

struct Manager<'a> {
    setup: &'a Setup<'a>,
    router: Router,
    expected: usize,
    /// By node id, in the order they joined.
    workers: Vec<Worker>,
    fingerprint: Fingerprint,
    /// Set once the plan is out: later workers are refused.
    full: bool,
    started: Option<Instant>,
    signals: Signals,
    next_index: u64,
    /// Ctrl-C (or SIGTERM) stopped the run before its end.
    interrupted: bool,
}

/// The second Ctrl-C (or SIGTERM) ends the manager without waiting.
const SECOND_SIGNAL: &str = "stopped by a second Ctrl-C without waiting for the workers' results";

/// Runs the manager's side of a distributed run; returns the exit code.
pub async fn run(setup: Setup<'_>) -> Exit {
    let options = setup.options;
    let wait = match parse_duration(&options.worker_timeout) {
        Ok(wait) => wait,
        Err(e) => return Exit::config_error(format!("--worker-timeout: {e}")),
    };
    let router = match Router::bind(options.manager_bind).await {
        Ok(router) => router,
        Err(e) => {
            return Exit::config_error(format!("{e} (choose another --manager-bind)"));
        }
    };
    let signals = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => Signals {
            interrupt,
            terminate,
        },
        (Err(e), _) | (_, Err(e)) => {
            return Exit::config_error(format!("cannot watch for Ctrl-C: {e}"));
        }
    };
    outln!("{}", setup.plan.describe(setup.host));
    outln!(
        "Manager listening on {} (Locust's worker protocol); waiting up to {} for {} worker{}",
        router.endpoint,
        HumanDuration(wait),
        options.expect_workers,
        if options.expect_workers == 1 { "" } else { "s" }
    );
    let mut manager = Manager {
        setup: &setup,
        router,
        expected: options.expect_workers as usize,
        workers: Vec::new(),
        fingerprint: Fingerprint::of_this_build(setup.classes),
        full: false,
        started: None,
        signals,
        next_index: 0,
        interrupted: false,
    };
    // The security probes run once per run, from the manager, on their own accounts.
    let probe_run = crate::probes::BesideRun::start(
        setup.plan.probes,
        setup.host,
        &setup.plan.run_id,
        &setup.plan.flow_options,
    );
    let outcome = manager.drive(wait).await;
    let probes = probe_run.report().await;
    let code = match outcome {
        Ok(memory) => manager.conclude(memory, probes),
        Err(Halt::Config(reason)) => {
            manager.refuse_all(&format!("the run is called off: {reason}"));
            errln!("error: {reason}");
            Exit::Config
        }
        Err(Halt::Failed(reason)) => {
            errln!("error: {reason}");
            Exit::Failed
        }
    };
    // The last messages (quit, refusals) leave before the socket closes.
    manager.router.close().await;
    code
}

impl Manager<'_> {
    fn send<T: serde::Serialize + ?Sized>(&self, node_id: &str, kind: Kind, data: &T) {
        self.router.send(node_id, wire::encode(kind, data, ""));
    }

    fn send_json<T: serde::Serialize>(&self, node_id: &str, kind: Kind, data: &T) {
        self.router.send(node_id, wire::encode_json(kind, data, ""));
    }

    fn send_empty(&self, node_id: &str, kind: Kind) {
        self.router.send(node_id, wire::encode_empty(kind, ""));
    }

    fn refuse(&self, node_id: &str, reason: &str) {
        self.send(
            node_id,
            Kind::Refused,
            &Reason {
                reason: reason.to_string(),
            },
        );
    }

    fn refuse_all(&self, reason: &str) {
        for worker in &self.workers {
            self.refuse(&worker.node_id, reason);
        }
    }

    fn elapsed_secs(&self) -> f64 {
        self.started.map_or(0.0, |s| {
            Instant::now().saturating_duration_since(s).as_secs_f64()
        })
    }

    fn worker_mut(&mut self, node_id: &str) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.node_id == node_id)
    }

    /// Gathers the workers, prepares and starts them, and watches the run to its end;
    /// returns the manager's memory samples of the server under test, if it took any.
    async fn drive(&mut self, wait: Duration) -> Result<Option<MemorySeries>, Halt> {
        self.gather(wait).await?;
        self.prepare().await?;
        self.watch().await
    }

    /// One message from a worker, whatever the stage: joining, heartbeats and reports are
    /// handled here; what the stage decides on comes back.
    fn on_message(&mut self, node_id: &str, bytes: &[u8]) -> Result<Option<Envelope>, Halt> {
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(e) => {
                crate::console::leave_line();
                errln!("warning: ignored a frame from {node_id}: {e}");
                return Ok(None);
            }
        };
        if let Some(worker) = self.worker_mut(node_id) {
            worker.last_heard = Instant::now();
        }
        match &message.kind {
            Kind::Hello => {
                self.on_hello(node_id, &message)?;
                Ok(None)
            }
            Kind::Heartbeat => {
                if self.worker_mut(node_id).is_some() {
                    self.send_empty(node_id, Kind::Heartbeat);
                }
                Ok(None)
            }
            Kind::Stats => {
                if let (Ok(stats), Some(worker)) =
                    (message.data::<Stats>(), self.worker_mut(node_id))
                {
                    worker.requests += stats.stats_total.num_requests;
                    worker.failures += stats.stats_total.num_failures;
                    worker.users = stats.user_count;
                }
                Ok(None)
            }
            // Locust's bookkeeping, and a worker's first words (its hello follows).
            Kind::ClientReady
            | Kind::Spawning
            | Kind::SpawningComplete
            | Kind::ClientStopped
            | Kind::Exception => Ok(None),
            _ => Ok(Some(message)),
        }
    }

    /// A worker's hello: it joins if there is room and it runs the same build.
    fn on_hello(&mut self, node_id: &str, message: &Envelope) -> Result<(), Halt> {
        if let Some(known) = self.workers.iter().find(|w| w.node_id == node_id) {
            // Said again while it waited for its ack.
            let index = known.index;
            self.send(node_id, Kind::Ack, &Ack { index: Some(index) });
            return Ok(());
        }
        let hello: Hello = match message.data() {
            Ok(hello) => hello,
            Err(e) => {
                self.refuse(node_id, &format!("an unreadable hello: {e}"));
                return Ok(());
            }
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            let reason = format!(
                "the worker speaks version {} of this tool's messages; the manager speaks {PROTOCOL_VERSION}",
                hello.protocol_version
            );
            return self.turn_away(node_id, &hello.name, reason);
        }
        let differences = self.fingerprint.differences(&hello.fingerprint);
        if !differences.is_empty() {
            let what = differences.join("; ");
            let reason = format!("this worker's build differs from the manager's: {what}");
            if !self.full {
                self.refuse(node_id, &reason);
                return Err(Halt::Config(format!(
                    "worker {} runs a different build or task table than the manager ({what}); \
                     run the same version of lva-loadtest everywhere",
                    hello.name
                )));
            }
            return self.turn_away(node_id, &hello.name, reason);
        }
        if self.full || self.workers.len() >= self.expected {
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
            return self.turn_away(node_id, &hello.name, why);
        }
        let mut name = hello.name.clone();
        let mut n = 1;
        while self.workers.iter().any(|w| w.name == name) {
            n += 1;
            name = format!("{}#{n}", hello.name);
        }
        let index = self.next_index;
        self.next_index += 1;
        self.send(node_id, Kind::Ack, &Ack { index: Some(index) });
        self.workers.push(Worker {
            node_id: node_id.to_string(),
            name: name.clone(),
            index,
            last_heard: Instant::now(),
            state: State::Joined,
            requests: 0,
            failures: 0,
            users: 0,
            arrivals_over: false,
        });
        outln!(
            "Worker {name} joined ({} of {})",
            self.workers.len(),
            self.expected
        );
        Ok(())
    }

    fn turn_away(&self, node_id: &str, name: &str, reason: String) -> Result<(), Halt> {
        crate::console::leave_line();
        errln!("warning: refused worker {name}: {reason}");
        self.refuse(node_id, &reason);
        Ok(())
    }

    /// Waits until the expected workers have joined.
    async fn gather(&mut self, wait: Duration) -> Result<(), Halt> {
        let deadline = Instant::now() + wait;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self.workers.len() < self.expected {
            tokio::select! {
                _ = sleep_until(deadline) => {
                    let names: Vec<&str> = self.workers.iter().map(|w| w.name.as_str()).collect();
                    return Err(Halt::Config(format!(
                        "only {} of {} workers joined within {} (--worker-timeout){}",
                        self.workers.len(),
                        self.expected,
                        HumanDuration(wait),
                        if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) }
                    )));
                }
                _ = tick.tick() => {
                    let silent: Vec<usize> = (0..self.workers.len())
                        .filter(|i| self.workers[*i].last_heard.elapsed() > SILENCE_LIMIT)
                        .collect();
                    for i in silent.into_iter().rev() {
                        let worker = self.workers.remove(i);
                        outln!(
                            "Worker {} left before the run (no message for {} s); {} of {} joined",
                            worker.name, SILENCE_LIMIT.as_secs(), self.workers.len(), self.expected
                        );
                    }
                }
                _ = self.signals.next() => {
                    return Err(Halt::Config("interrupted before the run started".into()));
                }
                frame = self.router.recv() => {
                    let Some((node_id, bytes)) = frame else {
                        return Err(Halt::Failed("the manager's socket closed".into()));
                    };
                    if let Some(message) = self.on_message(&node_id, &bytes)? {
                        self.early(&node_id, &message)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A message before the run: `lva_failed` calls it off, `quit` frees the place.
    fn early(&mut self, node_id: &str, message: &Envelope) -> Result<(), Halt> {
        let name = self
            .workers
            .iter()
            .find(|w| w.node_id == node_id)
            .map_or_else(|| node_id.to_string(), |w| w.name.clone());
        match &message.kind {
            Kind::Failed => {
                let reason = message
                    .data::<Reason>()
                    .map_or_else(|e| e.to_string(), |r| r.reason);
                Err(Halt::Config(format!(
                    "worker {name} cannot take the plan: {reason}"
                )))
            }
            Kind::Quit => {
                if self.full {
                    return Err(Halt::Config(format!(
                        "worker {name} left before the run started"
                    )));
                }
                self.workers.retain(|w| w.node_id != node_id);
                outln!("Worker {name} left before the run");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends the plan and waits until every worker has checked it and the host.
    async fn prepare(&mut self) -> Result<(), Halt> {
        self.full = true;
        let mut plan = self.setup.plan.clone();
        plan.host = Some(self.setup.host.clone());
        plan.send_snapshots = self.setup.metrics.is_some();
        // An open model's arrivals are split: each worker its share of the rate and pool.
        let whole = plan.open.clone();
        for (k, worker) in self.workers.iter().enumerate() {
            plan.open = whole.as_ref().map(|o| o.share(k, self.workers.len()));
            self.send_json(&worker.node_id, Kind::Plan, &plan);
        }
        let deadline = Instant::now() + PREPARE_LIMIT;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self
            .workers
            .iter()
            .any(|w| !matches!(w.state, State::Ready))
        {
            tokio::select! {
                _ = sleep_until(deadline) => {
                    let late: Vec<&str> = self
                        .workers
                        .iter()
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
                    if let Some(w) = self.workers.iter().find(|w| w.last_heard.elapsed() > SILENCE_LIMIT) {
                        return Err(Halt::Config(format!(
                            "worker {} stopped answering before the run started", w.name
                        )));
                    }
                }
                _ = self.signals.next() => {
                    return Err(Halt::Config("interrupted before the run started".into()));
                }
                frame = self.router.recv() => {
                    let Some((node_id, bytes)) = frame else {
                        return Err(Halt::Failed("the manager's socket closed".into()));
                    };
                    let Some(message) = self.on_message(&node_id, &bytes)? else { continue };
                    if message.kind == Kind::Ready {
                        if let Some(w) = self.worker_mut(&node_id) {
                            w.state = State::Ready;
                        }
                    } else {
                        self.early(&node_id, &message)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends every worker its users for `started` users of the run.
    fn spawn(&self, started: usize) {
        let plan = self.setup.plan;
        let classes: Vec<(&str, usize)> = plan
            .selection
            .classes
            .iter()
            .map(|c| (c.name, c.weight))
            .collect();
        let running: Vec<&Worker> = self.workers.iter().filter(|w| w.is_running()).collect();
        let counts = dispatch::counts(&classes, running.len(), started);
        for (worker, counts) in running.into_iter().zip(counts) {
            let spawn = Spawn {
                timestamp: unix_now(),
                user_classes_count: counts,
                host: Some(self.setup.host.to_string()),
                stop_timeout: None,
                parsed_options: BTreeMap::new(),
            };
            self.send(&worker.node_id, Kind::Spawn, &spawn);
        }
    }

    /// Ramps the users up, holds, stops the workers at the end and waits for what they
    /// measured.
    async fn watch(&mut self) -> Result<Option<MemorySeries>, Halt> {
        let plan = self.setup.plan;
        for worker in &mut self.workers {
            worker.state = State::Running;
            worker.last_heard = Instant::now();
        }
        let start = Instant::now();
        self.started = Some(start);
        // The server's memory is read here, as a single run reads it.
        let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
        let sampler = self
            .setup
            .memory
            .clone()
            .and_then(|source| source.sample_into(ledger.clone()));
        // An open model's pool is launched at once (users beyond the pre-started ones start
        // only for an arrival); a closed model's users ramp at the spawn rate.
        let open = plan.open.is_some();
        let mut started = match open {
            true => plan.users,
            false => dispatch::started_after(plan.users, plan.spawn_rate, 0),
        };
        self.spawn(started);
        outln!("Started {} workers.", self.expected);
        self.set_phase(Phase::Running);

        // An open-model run ends when every worker's arrivals are over, at the latest when
        // a single run would.
        let end = start + plan.goose_duration();
        let mut deadline = end + FINISH_GRACE;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut live = LiveLine::default();
        let mut stopping = false;
        while self.workers.iter().any(Worker::is_running) {
            tokio::select! {
                _ = tick.tick() => {
                    let now = Instant::now();
                    let seconds = now.saturating_duration_since(start).as_secs();
                    let want = dispatch::started_after(plan.users, plan.spawn_rate, seconds);
                    if !stopping && !open && now < end && want != started {
                        started = want;
                        self.spawn(started);
                    }
                    let arrivals_over = open
                        && self
                            .workers
                            .iter()
                            .filter(|w| w.is_running())
                            .all(|w| w.arrivals_over);
                    if !stopping && (now >= end || arrivals_over) {
                        stopping = true;
                        if arrivals_over {
                            crate::console::leave_line();
                            outln!("Every worker's arrivals are over: stopping the workers.");
                        }
                        self.stop_all();
                    }
                    self.notice_silence(now >= deadline);
                    live.show(self, plan.goose_duration());
                }
                _ = self.signals.next() => {
                    if stopping {
                        return Err(Halt::Failed(SECOND_SIGNAL.into()));
                    }
                    stopping = true;
                    self.interrupted = true;
                    deadline = Instant::now() + FINISH_GRACE;
                    crate::console::leave_line();
                    outln!("Interrupted: stopping every worker (again to quit without their results).");
                    self.stop_all();
                }
                frame = self.router.recv() => {
                    let Some((node_id, bytes)) = frame else {
                        return Err(Halt::Failed("the manager's socket closed".into()));
                    };
                    if let Some(message) = self.on_message(&node_id, &bytes)? {
                        self.during(&node_id, &message);
                    }
                }
            }
        }
        crate::console::leave_line();
        for worker in &self.workers {
            self.send_empty(&worker.node_id, Kind::Quit);
        }
        if let Some(sampler) = sampler {
            sampler.abort();
        }
        Ok(ledger.snapshot(&plan.preset_name, false).memory)
    }

    fn stop_all(&self) {
        self.set_phase(Phase::Stopping);
        for worker in self.workers.iter().filter(|w| w.is_running()) {
            self.send_empty(&worker.node_id, Kind::Stop);
        }
    }

    fn set_phase(&self, phase: Phase) {
        if let Some((metrics, _)) = self.setup.metrics {
            metrics.set_phase(phase);
        }
    }

    /// A worker's message during the run: its exact run, its failure, the end of its
    /// arrivals, or its figures so far.
    fn during(&mut self, node_id: &str, message: &Envelope) {
        let at_secs = self.elapsed_secs();
        let metrics = self.setup.metrics;
        let Some(worker) = self.worker_mut(node_id) else {
            return;
        };
        if !worker.is_running() {
            return;
        }
        match &message.kind {
            Kind::Run => {
                let delivery = message
                    .data::<RunMessage>()
                    .map_err(|e| e.to_string())
                    .and_then(|m| Delivery::from_bytes(&m.run).map_err(|e| e.to_string()));
                match delivery {
                    Ok(delivery) => {
                        crate::console::leave_line();
                        outln!(
                            "Worker {} finished: {}.",
                            worker.name,
                            delivery.measured.request_count()
                        );
                        worker.state = State::Done(Box::new(delivery));
                    }
                    Err(e) => lose(worker, format!("an unreadable exact run: {e}"), at_secs),
                }
            }
            Kind::Failed => {
                let reason = message
                    .data::<Reason>()
                    .map_or_else(|e| e.to_string(), |r| r.reason);
                lose(worker, format!("failed: {reason}"), at_secs);
            }
            Kind::Quit => lose(worker, "it quit".into(), at_secs),
            Kind::ArrivalsOver => worker.arrivals_over = true,
            Kind::Snapshot => {
                let snapshot = message
                    .data::<RunMessage>()
                    .ok()
                    .and_then(|m| delivery::snapshot_from_bytes(&m.run).ok());
                if let (Some((metrics, _)), Some(run)) = (metrics, snapshot) {
                    metrics.update_part(&worker.name, run);
                }
            }
            _ => {}
        }
    }

    /// Workers that have been silent too long (or all still running, past the deadline)
    /// are lost.
    fn notice_silence(&mut self, past_deadline: bool) {
        let at_secs = self.elapsed_secs();
        for worker in self.workers.iter_mut().filter(|w| w.is_running()) {
            let reason = if worker.last_heard.elapsed() > SILENCE_LIMIT {
                format!("no message for {} s", SILENCE_LIMIT.as_secs())
            } else if past_deadline {
                format!("no result {} s after the stop", FINISH_GRACE.as_secs())
            } else {
                continue;
            };
            lose(worker, reason, at_secs);
        }
    }

    /// Merges, judges and reports.
    fn conclude(
        &mut self,
        memory: Option<MemorySeries>,
        probes: Option<crate::probes::ProbeReport>,
    ) -> Exit {
        let setup = self.setup;
        let workers = std::mem::take(&mut self.workers);
        let lost_at: BTreeMap<String, f64> = workers
            .iter()
            .filter_map(|w| match &w.state {
                State::Lost { at_secs, .. } => Some((w.name.clone(), *at_secs)),
                _ => None,
            })
            .collect();
        let roster = Roster {
            workers: workers
                .into_iter()
                .map(|w| WorkerRecord {
                    outcome: match w.state {
                        State::Done(delivery) => WorkerOutcome::Delivered(delivery),
                        State::Lost { reason, at_secs } => {
                            WorkerOutcome::Lost(format!("{reason}, at {at_secs:.1}s"))
                        }
                        State::Joined | State::Ready | State::Running => {
                            WorkerOutcome::Lost("it never finished".into())
                        }
                    },
                    name: w.name,
                    reported_requests: Some(w.requests),
                })
                .collect(),
            accept_degraded: setup.options.accept_degraded,
        };
        let seconds = self.elapsed_secs().max(0.001);
        let (sent, received) = self.router.traffic.totals();
        let per_worker = (sent + received) as f64 / roster.workers.len().max(1) as f64 / seconds;
        outln!(
            "\nTraffic with the workers: {received} bytes received, {sent} bytes sent over \
             {seconds:.1} s ({per_worker:.0} bytes/s per worker)"
        );
        let master = json!({
            "kind": "lva-loadtest manager",
            "address": self.router.endpoint,
            "lost_at_secs": lost_at,
            "traffic": {
                "bytes_from_workers": received,
                "bytes_to_workers": sent,
                "seconds": seconds,
                "bytes_per_second_per_worker": per_worker,
            },
        });
        let distributed = roster.json(master);
        conclude_distributed(
            &roster,
            Ending {
                plan: setup.plan,
                host: setup.host,
                builtin_server: setup.builtin_pid.is_some(),
                outputs: setup.outputs,
                memory,
                probes,
                distributed,
                interrupted: self.interrupted,
                metrics: setup.metrics,
            },
        )
    }
}

fn lose(worker: &mut Worker, reason: String, at_secs: f64) {
    crate::console::leave_line();
    errln!(
        "warning: lost worker {} at {at_secs:.1}s ({reason}); the run goes on with the others",
        worker.name
    );
    worker.state = State::Lost { reason, at_secs };
}

/// The manager's live totals: the sum of what the workers reported.
#[derive(Default)]
struct LiveLine {
    /// The totals of the last few seconds: the rate is over the workers' report interval.
    recent: std::collections::VecDeque<u64>,
    seconds: u64,
}

impl LiveLine {
    fn show(&mut self, manager: &Manager<'_>, duration: Duration) {
        self.seconds += 1;
        let requests: u64 = manager.workers.iter().map(|w| w.requests).sum();
        let failures: u64 = manager.workers.iter().map(|w| w.failures).sum();
        let users: u64 = manager
            .workers
            .iter()
            .filter(|w| w.is_running())
            .map(|w| w.users)
            .sum();
        let running = manager.workers.iter().filter(|w| w.is_running()).count();
        self.recent.push_back(requests);
        if self.recent.len() > 4 {
            self.recent.pop_front();
        }
        let over = (self.recent.len() - 1).max(1) as u64;
        let rps = requests.saturating_sub(self.recent.front().copied().unwrap_or(0)) / over;
        let elapsed = Duration::from_secs_f64(manager.elapsed_secs());
        let errors = if requests == 0 {
            0.0
        } else {
            failures as f64 * 100.0 / requests as f64
        };
        let line = format!(
            "[{} / {} left] workers {running}/{}  users {users}  {rps} req/s  failures {errors:.2}%  requests {requests}",
            HumanDuration(Duration::from_secs(elapsed.as_secs())),
            HumanDuration(Duration::from_secs(
                duration.saturating_sub(elapsed).as_secs()
            )),
            manager.expected,
        );
        if crate::console::on_terminal() || self.seconds.is_multiple_of(5) {
            crate::console::draw(&line);
        }
    }
}
