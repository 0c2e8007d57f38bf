//! A worker: joins a master (a stock Locust 2.x master, or this tool's `--manager`) over
//! Locust's protocol and runs the users it is told to, reporting as Locust's workers do;
//! at the end of each run it delivers everything it measured, exactly (`lva_run`).
//!
//! Its life: `client_ready` and `lva_hello` until the master's `ack`; heartbeats every
//! second from then on; for each `spawn`, the users of each class set to the master's
//! numbers ([`super::spawner`]), the first one resolving the plan (the manager's
//! `lva_plan`, or the Locust master's options) and checking the classes and the host
//! before any traffic; stats every 3 s; on `stop`, `lva_collect` or `quit` the users stop
//! and the exact run goes to the master. A worker that hears nothing from its master for
//! [`MASTER_SILENCE`] stops its users and exits with code 1 if what it measured was not
//! delivered.

use super::delivery::{self, Delivery};
use super::fingerprint::Fingerprint;
use super::link::{Dealer, DealerSender, endpoint};
use super::locust_stats::LocustStats;
use super::spawner::Spawner;
use super::wire::{
    self, Ack, Envelope, Exception, Heartbeat, Hello, Kind, NO_LOCUST_VERSION, PROTOCOL_VERSION,
    Reason, RunMessage, Spawn, SpawningComplete, Stats, WorkerState,
};
use crate::attack::arrivals::Pace;
use crate::cli::DistributedArgs;
use crate::duration::{HumanDuration, parse_duration};
use crate::exit::Exit;
use crate::live_metrics::{Listener, LiveMetrics};
use crate::measure::{Ledger, MeasuredRun, Observation, Outcome};
use crate::plan::{ConfigError, Plan};
use crate::transport::TlsOptions;
use crate::user_classes::UserClass;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

/// User numbers of worker `i` start at `i × this + 1`, so that the users of different
/// workers have different loopback sources and forwarded-for addresses.
pub const USERS_PER_WORKER: u64 = 10_000;
/// Locust's workers send `client_ready` again when no `ack` came in this time.
const CONNECT_RETRY: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the live figures go to the master (Locust's interval).
const REPORT: Duration = Duration::from_secs(3);
/// A master answers every heartbeat at once: this long without a word, it is gone.
pub const MASTER_SILENCE: Duration = Duration::from_secs(20);
/// How long stopping users may take (their task, then their on-stop work).
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// One run (from the first `spawn` to its end): its plan and what measures it.
struct Test {
    plan: Plan,
    ledger: Arc<Ledger>,
    stats: Arc<LocustStats>,
    spawner: Spawner,
    /// An open-model run's dispatcher (it ends when the run stops).
    dispatcher: Option<std::thread::JoinHandle<()>>,
    /// Set by the dispatcher when this worker's share of the arrivals is over.
    arrivals_over: Arc<AtomicBool>,
    /// The tool's manager is told so, once (it ends the run when all are); a Locust master
    /// ends it at its own run time.
    tell_arrivals_over: bool,
}

struct Worker {
    name: String,
    node_id: String,
    endpoint: String,
    classes: Vec<UserClass>,
    fingerprint: Fingerprint,
    link: Dealer,
    state: Arc<AtomicU8>,
    index: u64,
    /// The plan the tool's manager sent, waiting for the first `spawn`.
    plan: Option<Plan>,
    test: Option<Test>,
    last_spawn: f64,
    last_heard: Instant,
    /// A run's measurements reached the master.
    delivered: bool,
    /// How this worker trusts the host's certificate (its own `--ca-cert`, `--insecure`):
    /// a CA file is a path on this machine, not the master's.
    tls: TlsOptions,
    request_log: Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>,
    /// The worker's own live metrics: its address until the run starts, then the endpoint.
    listener: Option<Listener>,
    live: Option<LiveMetrics>,
    metrics_linger: Duration,
}

/// How the handling of a message ends.
enum Next {
    Continue,
    Exit(Exit),
}

fn state_code(state: WorkerState) -> u8 {
    state as u8
}

fn state_of(code: u8) -> WorkerState {
    match code {
        1 => WorkerState::Spawning,
        2 => WorkerState::Running,
        3 => WorkerState::Stopped,
        _ => WorkerState::Ready,
    }
}

/// Runs a worker with `classes` (the built-in ones, or a program's own); returns the exit
/// code.
/// `metrics` is the worker's own live metrics endpoint (`--metrics-bind`), served from its
/// run's start.
pub async fn run(
    options: &DistributedArgs,
    tls: TlsOptions,
    classes: Vec<UserClass>,
    metrics: Option<(Listener, Duration)>,
) -> Exit {
    let wait = match parse_duration(&options.worker_timeout) {
        Ok(wait) => wait,
        Err(e) => return Exit::config_error(format!("--worker-timeout: {e}")),
    };
    let request_log = match options.request_log.as_ref().map(open_log).transpose() {
        Ok(log) => log,
        Err(e) => return Exit::config_error(e),
    };
    let name = options.worker_name.clone().unwrap_or_else(default_name);
    let node_id = format!("{name}_{}", uuid::Uuid::new_v4().simple());
    let endpoint = endpoint(&options.manager_host, &options.manager_port.to_string());
    let link = match Dealer::connect(&endpoint, &node_id) {
        Ok(link) => link,
        Err(e) => {
            return Exit::config_error(format!("{e} (check --master-host and --master-port)"));
        }
    };
    let fingerprint = Fingerprint::of_this_build(&classes);
    let mut worker = Worker {
        name,
        node_id,
        endpoint,
        classes,
        fingerprint,
        link,
        state: Arc::new(AtomicU8::new(state_code(WorkerState::Ready))),
        index: 0,
        plan: None,
        test: None,
        last_spawn: 0.0,
        last_heard: Instant::now(),
        tls,
        delivered: false,
        request_log,
        metrics_linger: metrics.as_ref().map_or(Duration::ZERO, |(_, l)| *l),
        listener: metrics.map(|(listener, _)| listener),
        live: None,
    };
    let code = match worker.join(wait).await {
        Ok(()) => worker.serve().await,
        Err(code) => code,
    };
    if let Some(log) = &worker.request_log {
        let _ = lock(log).flush();
    }
    if let Some(live) = worker.live.take() {
        live.close(worker.metrics_linger).await;
    }
    let (sent, received) = worker.link.traffic.totals();
    outln!("Traffic with the master: {sent} bytes sent, {received} bytes received.");
    worker.link.close().await;
    code
}

fn open_log(path: &PathBuf) -> Result<Arc<Mutex<std::io::BufWriter<std::fs::File>>>, String> {
    std::fs::File::create(path)
        .map(|f| Arc::new(Mutex::new(std::io::BufWriter::new(f))))
        .map_err(|e| format!("--request-log {}: {e}", path.display()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    fn send<T: serde::Serialize + ?Sized>(&self, kind: Kind, data: &T) {
        self.link.send(wire::encode(kind, data, &self.node_id));
    }

    fn send_empty(&self, kind: Kind) {
        self.link.send(wire::encode_empty(kind, &self.node_id));
    }

    fn set_state(&self, state: WorkerState) {
        self.state.store(state_code(state), Ordering::Relaxed);
    }

    fn announce(&self) {
        self.send(Kind::ClientReady, &NO_LOCUST_VERSION);
        self.send(
            Kind::Hello,
            &Hello {
                protocol_version: PROTOCOL_VERSION,
                name: self.name.clone(),
                digest: self.fingerprint.digest(),
                fingerprint: self.fingerprint.clone(),
            },
        );
    }

    /// Says `client_ready` until the master acknowledges it (workers often start first).
    async fn join(&mut self, wait: Duration) -> Result<(), Exit> {
        let deadline = Instant::now() + wait;
        let mut said = false;
        loop {
            self.announce();
            let retry = (Instant::now() + CONNECT_RETRY).min(deadline);
            loop {
                let frame = tokio::select! {
                    frame = self.link.recv() => frame,
                    _ = tokio::time::sleep_until(retry) => break,
                };
                let Some(message) = frame.and_then(|bytes| wire::decode(&bytes).ok()) else {
                    continue;
                };
                match &message.kind {
                    Kind::Ack => {
                        self.index = message
                            .data::<Ack>()
                            .ok()
                            .and_then(|a| a.index)
                            .unwrap_or(0);
                        outln!(
                            "Joined the master at {} as {} (worker index {}); waiting for users.",
                            self.endpoint,
                            self.name,
                            self.index
                        );
                        self.last_heard = Instant::now();
                        return Ok(());
                    }
                    Kind::Refused => return Err(self.refused(&message)),
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(Exit::config_error(format!(
                    "no master answered at {} within {}; check --master-host, --master-port \
                     and that the master runs (--worker-timeout waits longer)",
                    self.endpoint,
                    HumanDuration(wait)
                )));
            }
            if !said {
                outln!("Waiting for the master at {} ...", self.endpoint);
                said = true;
            }
        }
    }

    fn refused(&self, message: &Envelope) -> Exit {
        let reason = message
            .data::<Reason>()
            .map_or_else(|e| e.to_string(), |r| r.reason);
        Exit::config_error(format!(
            "the master at {} refused this worker: {reason}",
            self.endpoint
        ))
    }

    /// From the `ack` to the end: the master's orders, heartbeats, reports.
    async fn serve(&mut self) -> Exit {
        let beats = tokio::spawn(heartbeats(
            self.link.sender(),
            self.node_id.clone(),
            self.state.clone(),
        ));
        let code = self.obey().await;
        beats.abort();
        let _ = beats.await;
        code
    }

    async fn obey(&mut self) -> Exit {
        let (mut interrupt, mut terminate) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                return Exit::config_error(format!("cannot watch for Ctrl-C: {e}"));
            }
        };
        let mut report = tokio::time::interval(REPORT);
        let mut second = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = tokio::select! {
                // The master's messages first: after a long stop, those that waited prove it
                // is still there before the silence is checked.
                biased;
                frame = self.link.recv() => match frame {
                    Some(bytes) => self.on_frame(&bytes).await,
                    None => self.master_lost("the connection ended").await,
                },
                _ = report.tick() => {
                    self.report();
                    Next::Continue
                }
                _ = second.tick() => {
                    if let Some(test) = &self.test {
                        test.ledger.sample_users(test.spawner.user_count());
                    }
                    self.tell_if_arrivals_over();
                    if self.last_heard.elapsed() > MASTER_SILENCE {
                        let why = format!("nothing heard for {} s", MASTER_SILENCE.as_secs());
                        self.master_lost(&why).await
                    } else {
                        Next::Continue
                    }
                }
                _ = interrupt.recv() => self.interrupted("Ctrl-C").await,
                _ = terminate.recv() => self.interrupted("SIGTERM").await,
            };
            if let Next::Exit(code) = next {
                return code;
            }
        }
    }

    async fn on_frame(&mut self, bytes: &[u8]) -> Next {
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(e) => {
                errln!("warning: ignored a frame from the master: {e}");
                return Next::Continue;
            }
        };
        self.last_heard = Instant::now();
        match &message.kind {
            Kind::Heartbeat | Kind::SpawningComplete => Next::Continue,
            Kind::Ack => {
                if let Ok(Ack { index: Some(index) }) = message.data() {
                    self.index = index;
                }
                Next::Continue
            }
            Kind::Spawn => self.on_spawn(&message).await,
            Kind::Plan => self.on_plan(&message).await,
            Kind::Stop => {
                self.finish("the master stopped the run").await;
                self.send_empty(Kind::ClientStopped);
                self.send(Kind::ClientReady, &NO_LOCUST_VERSION);
                self.set_state(WorkerState::Ready);
                Next::Continue
            }
            Kind::Collect => {
                self.finish("the master ended the run").await;
                self.set_state(WorkerState::Stopped);
                Next::Continue
            }
            Kind::Quit => {
                self.finish("the master quit").await;
                self.send_empty(Kind::Quit);
                outln!("The master said quit.");
                Next::Exit(Exit::Passed)
            }
            Kind::Reconnect => {
                errln!("warning: the master asked for a new connection");
                self.link.reconnect();
                self.announce();
                Next::Continue
            }
            Kind::Refused => {
                let code = self.refused(&message);
                self.finish("refused").await;
                Next::Exit(code)
            }
            _ => Next::Continue,
        }
    }

    /// The tool's manager sends its plan before the first `spawn`: taken, checked, and
    /// answered.
    async fn on_plan(&mut self, message: &Envelope) -> Next {
        let taken = match message.json_data::<Plan>() {
            Ok(mut plan) => match plan.select(self.classes.clone()) {
                Ok(()) => self.check_host(plan).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(ConfigError(format!("an unreadable plan: {e}"))),
        };
        match taken {
            Ok(plan) => {
                outln!(
                    "Plan: scenario {} against {}",
                    plan.preset_name,
                    plan.host.as_ref().map_or("?", |h| h.as_str())
                );
                self.plan = Some(plan);
                self.send_empty(Kind::Ready);
                Next::Continue
            }
            Err(e) => self.cannot(e.to_string()),
        }
    }

    /// Refuses what the master asked, before any traffic: said to the master (an
    /// `exception` shows in Locust's UI), and the worker leaves with code 2.
    fn cannot(&self, reason: String) -> Next {
        self.send(
            Kind::Failed,
            &Reason {
                reason: reason.clone(),
            },
        );
        self.send(
            Kind::Exception,
            &Exception {
                msg: format!("worker {} cannot run: {reason}", self.name),
                traceback: String::new(),
            },
        );
        self.send_empty(Kind::Quit);
        Next::Exit(Exit::config_error(format!(
            "this worker cannot run what the master asks: {reason}"
        )))
    }

    async fn check_host(&self, plan: Plan) -> Result<Plan, ConfigError> {
        let Some(host) = plan.host.clone() else {
            return Err(ConfigError::new("the plan names no host"));
        };
        if !plan.skip_preflight {
            crate::host::preflight(&host, &self.tls)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(plan)
    }

    /// Every class the master names must be one this worker has and runs.
    fn check_classes(&self, plan: &Plan, counts: &BTreeMap<String, u64>) -> Result<(), String> {
        let selected = plan.selection.class_names();
        for (class, n) in counts {
            if !self.classes.iter().any(|c| c.name == class) {
                let ours: Vec<&str> = self.classes.iter().map(|c| c.name).collect();
                return Err(format!(
                    "the master names user class {class}, which this worker does not have \
                     (it has {}): run a worker built with that class",
                    ours.join(", ")
                ));
            }
            if *n > 0 && !selected.contains(&class.as_str()) {
                return Err(format!(
                    "the master gives users to {class}, which has no task left after the tag \
                     filter on this worker"
                ));
            }
        }
        Ok(())
    }

    async fn on_spawn(&mut self, message: &Envelope) -> Next {
        self.send_empty(Kind::Spawning);
        let spawn: Spawn = match message.data() {
            Ok(spawn) => spawn,
            Err(e) => {
                errln!("warning: ignored a spawn: {e}");
                return Next::Continue;
            }
        };
        if spawn.timestamp <= self.last_spawn {
            return Next::Continue;
        }
        self.last_spawn = spawn.timestamp;
        if self.test.is_none() {
            let from_manager = self.plan.is_some();
            let plan = match self.plan.take() {
                Some(plan) => Ok(plan),
                None => {
                    let resolved = super::master_options::resolve(
                        &spawn.parsed_options,
                        spawn.host.as_deref(),
                        self.classes.clone(),
                    )
                    .and_then(|plan| {
                        super::master_options::share_arrivals(
                            plan,
                            &spawn.parsed_options,
                            self.index,
                        )
                    });
                    match resolved {
                        Ok(plan) => self.check_host(plan).await,
                        Err(e) => Err(e),
                    }
                }
            };
            let plan = match plan {
                Ok(plan) => plan,
                Err(e) => return self.cannot(e.to_string()),
            };
            if let Err(reason) = self.check_classes(&plan, &spawn.user_classes_count) {
                return self.cannot(reason);
            }
            match self.begin(plan, from_manager) {
                Ok(test) => {
                    if let Some(listener) = self.listener.take() {
                        self.live = Some(LiveMetrics::serve(
                            listener,
                            &test.plan,
                            test.ledger.clone(),
                        ));
                    }
                    self.test = Some(test);
                }
                Err(e) => return self.cannot(e),
            }
        } else if let Some(test) = &self.test
            && let Err(reason) = self.check_classes(&test.plan, &spawn.user_classes_count)
        {
            return self.cannot(reason);
        }
        self.set_state(WorkerState::Spawning);
        let Some(test) = self.test.as_mut() else {
            return Next::Continue;
        };
        test.spawner.set(&spawn.user_classes_count);
        let counts = test.spawner.counts();
        let user_count = test.spawner.user_count();
        test.ledger.sample_users(user_count);
        // The pool is the users this worker was given.
        test.ledger.pool_size(user_count);
        self.send(
            Kind::SpawningComplete,
            &SpawningComplete {
                user_classes_count: counts,
                user_count,
            },
        );
        self.set_state(WorkerState::Running);
        Next::Continue
    }

    /// A run starts: its ledger (from now on), the live figures and the users (and, in an
    /// open-model run, its pool and the dispatcher of its share of the arrivals).
    fn begin(&self, mut plan: Plan, from_manager: bool) -> Result<Test, String> {
        let host = plan.host.clone().ok_or("the plan names no host")?;
        plan.flow_options.tls = self.tls.clone();
        plan.flow_options.first_user_index = self.index * USERS_PER_WORKER;
        let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
        let stats = Arc::new(LocustStats::default());
        let (counted, log) = (stats.clone(), self.request_log.clone());
        let tap = Box::new(move |obs: &Observation<'_>| {
            counted.record(obs);
            if let Some(log) = &log {
                let _ = writeln!(lock(log), "{}", log_line(obs));
            }
        });
        if ledger.set_tap(tap).is_err() {
            return Err("the run's ledger has a tap already".into());
        }
        // The manager's run id: every worker's accounts carry the same one.
        let ctx = Arc::new(plan.run_context(&host, ledger.clone())?);
        let spawner = Spawner::new(&plan.selection.classes, ctx.clone());
        let arrivals_over = Arc::new(AtomicBool::new(false));
        let dispatcher = match (&plan.open, ctx.arrivals.clone()) {
            (Some(open), Some(pool)) => {
                ledger.count_arrivals(open.describe(), open.max_users as u64);
                let pace = Pace::Schedule(open.schedule.clone());
                // The master's ramp brings the pool; the first arrival waits for the
                // pre-started users as long as a single run waits.
                let wait = plan.ramp() + crate::plan::open::READY_WAIT;
                let over = Box::new({
                    let over = arrivals_over.clone();
                    move || over.store(true, Ordering::Relaxed)
                });
                Some(
                    crate::attack::arrivals::start(open, pace, pool, ctx, over, wait)
                        .map_err(|e| format!("cannot start the arrivals: {e}"))?,
                )
            }
            _ => None,
        };
        outln!(
            "Run started: scenario {}, classes {}, against {host}",
            plan.preset_name,
            plan.selection.class_names().join(", ")
        );
        Ok(Test {
            plan,
            ledger,
            stats,
            spawner,
            dispatcher,
            arrivals_over,
            tell_arrivals_over: from_manager,
        })
    }

    /// Tells the tool's manager, once, that this worker's share of the arrivals is over.
    fn tell_if_arrivals_over(&mut self) {
        let Some(test) = &mut self.test else {
            return;
        };
        if test.tell_arrivals_over && test.arrivals_over.load(Ordering::Relaxed) {
            test.tell_arrivals_over = false;
            self.send_empty(Kind::ArrivalsOver);
        }
    }

    /// Sends what the users did since the previous report.
    fn report(&self) {
        if let Some(test) = &self.test {
            self.report_of(test);
        }
    }

    fn report_of(&self, test: &Test) {
        if test.plan.send_snapshots {
            let run = test.ledger.snapshot(&test.plan.preset_name, false);
            self.send(
                Kind::Snapshot,
                &RunMessage {
                    name: self.name.clone(),
                    protocol_version: PROTOCOL_VERSION,
                    run: delivery::snapshot_bytes(&run),
                },
            );
        }
        let report = test.stats.take();
        self.send(
            Kind::Stats,
            &Stats {
                stats: report.entries,
                stats_total: report.total,
                errors: report.errors,
                user_classes_count: test.spawner.counts(),
                user_count: test.spawner.user_count(),
            },
        );
    }

    /// Ends the run, if one runs: the users stop, the last figures and the exact run go to
    /// the master.
    async fn finish(&mut self, why: &str) {
        let Some(mut test) = self.test.take() else {
            return;
        };
        outln!("Stopping the users: {why}.");
        test.spawner.stop_all(STOP_LIMIT).await;
        // The users are stopping, so the dispatcher ends within its look interval.
        if let Some(dispatcher) = test.dispatcher.take() {
            let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
        }
        test.ledger.sample_users(0);
        self.report_of(&test);
        let measured = test.ledger.snapshot(&test.plan.preset_name, false);
        print_totals(&self.name, &measured);
        if let Some(live) = &self.live {
            live.finish(&measured, self.metrics_linger);
        }
        let delivery = Delivery {
            name: self.name.clone(),
            node_id: self.node_id.clone(),
            fingerprint: self.fingerprint.clone(),
            plan: test.plan,
            measured,
        };
        self.send(
            Kind::Run,
            &RunMessage {
                name: self.name.clone(),
                protocol_version: PROTOCOL_VERSION,
                run: delivery.to_bytes(),
            },
        );
        self.delivered = true;
    }

    async fn master_lost(&mut self, why: &str) -> Next {
        errln!("\nerror: lost the master at {}: {why}", self.endpoint);
        let Some(mut test) = self.test.take() else {
            if self.delivered {
                outln!("This worker's measurements were delivered before.");
                return Next::Exit(Exit::Passed);
            }
            return Next::Exit(Exit::Failed);
        };
        errln!("error: stopping the users");
        test.spawner.stop_all(STOP_LIMIT).await;
        print_totals(
            &self.name,
            &test.ledger.snapshot(&test.plan.preset_name, true),
        );
        errln!("error: the master is gone: nobody received this worker's measurements");
        Next::Exit(Exit::Failed)
    }

    async fn interrupted(&mut self, what: &str) -> Next {
        errln!("\n{what}: stopping this worker's users and delivering what they measured");
        self.finish(what).await;
        self.send_empty(Kind::Quit);
        Next::Exit(Exit::Failed)
    }
}

/// One request of the `--request-log`: a JSON object a line.
fn log_line(obs: &Observation<'_>) -> String {
    let outcome = match obs.outcome {
        Outcome::Success => "success",
        Outcome::Failure(_) => "failure",
        Outcome::RateLimited => "rate_limited",
        Outcome::ExpectedError(_) => "expected_error",
    };
    serde_json::json!({
        "key": format!("{} {}", obs.method, obs.name),
        "us": obs.duration.as_micros() as u64,
        "status": obs.status,
        "outcome": outcome,
    })
    .to_string()
}

/// Heartbeats every second, with this process's CPU and memory: on a task of their own,
/// so that a worker busy stopping its users is not taken for lost.
async fn heartbeats(link: DealerSender, node_id: String, state: Arc<AtomicU8>) {
    let mut usage = Usage::now();
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let (cpu, memory) = usage.sample();
        link.send(wire::encode(
            Kind::Heartbeat,
            &Heartbeat {
                state: state_of(state.load(Ordering::Relaxed)),
                current_cpu_usage: cpu,
                current_memory_usage: memory,
            },
            &node_id,
        ));
    }
}

/// This process's CPU time and resident memory.
struct Usage {
    cpu: Duration,
    at: std::time::Instant,
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

impl Usage {
    fn now() -> Usage {
        Usage {
            cpu: cpu_time(),
            at: std::time::Instant::now(),
        }
    }

    /// Percent of one core since the previous sample, and bytes resident now.
    fn sample(&mut self) -> (f64, u64) {
        let now = Usage::now();
        let wall = now.at.duration_since(self.at).as_secs_f64();
        let cpu = now.cpu.saturating_sub(self.cpu).as_secs_f64();
        *self = now;
        let percent = if wall > 0.0 { cpu * 100.0 / wall } else { 0.0 };
        let memory = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| crate::measure::memory::parse_vm_rss(&s))
            .unwrap_or(0);
        (percent, memory)
    }
}

/// The worker's own totals, printed so that they can be checked against the master's.
fn print_totals(name: &str, run: &MeasuredRun) {
    let failures: u64 = run.requests.iter().map(|r| r.failures).sum();
    let limited: u64 = run.requests.iter().map(|r| r.rate_limited).sum();
    outln!(
        "Worker {name} measured {}: {failures} failures, {limited} rate limited.",
        run.request_count()
    );
}

/// The host name and process id: unique on a machine, readable in the master's reports.
fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_travel_as_locust_names_them() {
        for state in [
            WorkerState::Ready,
            WorkerState::Spawning,
            WorkerState::Running,
            WorkerState::Stopped,
        ] {
            assert_eq!(state_of(state_code(state)), state);
        }
        let mut usage = Usage::now();
        let (cpu, memory) = usage.sample();
        assert!(cpu >= 0.0);
        assert!(memory > 0, "this process has resident memory");
    }
}
