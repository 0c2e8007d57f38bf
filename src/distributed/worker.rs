//! A worker: connects to the manager, takes its share of the users, runs it with the
//! ordinary attack, reports progress every second and its measurements at the end.
//!
//! A worker that loses its manager (connection closed, or nothing heard for 5 s) stops its
//! users through Goose's killswitch, as Ctrl-C would, and exits with code 1: nobody would
//! receive what it measured.

use super::protocol::{
    Fingerprint, ManagerMessage, PROTOCOL_VERSION, Progress, WorkerMessage, WorkerRun, decode,
    encode, websocket_config,
};
use crate::attack::{self, RunError};
use crate::cli::DistributedArgs;
use crate::cli::RunArgs;
use crate::duration::{HumanDuration, parse_duration};
use crate::exit::Exit;
use crate::measure::{Ledger, MeasuredRun, RequestKind};
use crate::plan::{ConfigError, Plan};
use crate::user_classes::builtin_classes;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use url::Url;

/// The manager sends something every second; this much silence means it is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// The link to the manager: messages out through a writer task, messages in through a
/// reader task, and when the manager was last heard.
struct Link {
    outbox: mpsc::UnboundedSender<WorkerMessage>,
    inbox: mpsc::UnboundedReceiver<Result<ManagerMessage, String>>,
    last_heard: Instant,
    /// Why the manager is gone, once it is.
    lost: Option<String>,
}

impl Link {
    fn send(&self, message: WorkerMessage) {
        let _ = self.outbox.send(message);
    }

    /// The next message, or `None` with [`Link::lost`] set when the manager is gone.
    async fn next(&mut self, tick: &mut tokio::time::Interval) -> Option<ManagerMessage> {
        loop {
            if self.lost.is_some() {
                return None;
            }
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(Ok(message)) => {
                        self.last_heard = Instant::now();
                        return Some(message);
                    }
                    Some(Err(e)) => self.lost = Some(format!("lost the manager: {e}")),
                    None => self.lost = Some("lost the manager: the connection closed".into()),
                },
                _ = tick.tick() => {
                    self.send(WorkerMessage::Heartbeat);
                    self.check_silence();
                }
            }
        }
    }

    fn check_silence(&mut self) {
        if self.lost.is_none() && self.last_heard.elapsed() > SILENCE_LIMIT {
            self.lost = Some(format!(
                "lost the manager: nothing heard for {} s",
                SILENCE_LIMIT.as_secs()
            ));
        }
    }
}

/// Runs a worker; returns the exit code.
pub async fn run(args: &RunArgs, options: &DistributedArgs) -> Exit {
    let wait = match parse_duration(&options.worker_timeout) {
        Ok(wait) => wait,
        Err(e) => return Exit::config_error(format!("--worker-timeout: {e}")),
    };
    let name = options.worker_name.clone().unwrap_or_else(default_name);
    let url = manager_url(&options.manager_host, options.manager_port);
    let socket = match connect(&url, wait).await {
        Ok(socket) => socket,
        Err(e) => return Exit::config_error(e),
    };
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing) = mpsc::unbounded_channel::<WorkerMessage>();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(encode(&message)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let (incoming, inbox) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            match decode::<ManagerMessage>(stream.next().await) {
                Ok(Some((message, _))) => {
                    if incoming.send(Ok(message)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = incoming.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    let mut link = Link {
        outbox,
        inbox,
        last_heard: Instant::now(),
        lost: None,
    };
    link.send(WorkerMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        worker_name: name,
        fingerprint: Fingerprint::of_this_build(),
    });
    let code = session(&mut link, args, &url).await;
    // Closing the outbox lets the writer send what is queued (the result), then close.
    drop(link);
    let _ = timeout(Duration::from_secs(10), writer).await;
    reader.abort();
    code
}

/// The worker's life once connected: welcome, share, start, attack, result.
async fn session(link: &mut Link, args: &RunArgs, url: &str) -> Exit {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let lost = |link: &Link| {
        eprintln!(
            "error: {}",
            link.lost.as_deref().unwrap_or("lost the manager")
        );
        Exit::Failed
    };

    let name = match link.next(&mut tick).await {
        Some(ManagerMessage::Welcome { worker_name }) => worker_name,
        Some(ManagerMessage::Refused { reason }) => {
            return Exit::config_error(format!(
                "the manager at {url} refused this worker: {reason}"
            ));
        }
        Some(other) => {
            eprintln!("error: the manager at {url} answered {other:?} instead of welcome");
            return Exit::Failed;
        }
        None => return lost(link),
    };
    println!("Joined the manager at {url} as {name}; waiting for the run to start.");

    let run = loop {
        match link.next(&mut tick).await {
            Some(ManagerMessage::Prepare { run }) => break run,
            Some(ManagerMessage::Abort { reason }) => return aborted(&reason),
            Some(_) => {}
            None => return lost(link),
        }
    };
    let (plan, host) = match worker_plan(args, &run) {
        Ok(resolved) => resolved,
        Err(e) => return refuse_share(link, e.to_string()),
    };
    if !plan.skip_preflight
        && let Err(e) = crate::host::preflight(&host, &plan.flow_options.tls).await
    {
        return refuse_share(link, e.to_string());
    }
    link.send(WorkerMessage::Ready);
    println!(
        "Share: {} users at {}/s (users #{} to #{}) for {} against {host}",
        run.users,
        run.spawn_rate,
        run.first_user_index + 1,
        run.first_user_index + run.users as u64,
        HumanDuration(plan.duration)
    );

    let start_in = loop {
        match link.next(&mut tick).await {
            Some(ManagerMessage::Start { start_in_ms }) => {
                break Duration::from_millis(start_in_ms);
            }
            Some(ManagerMessage::Abort { reason }) => return aborted(&reason),
            Some(_) => {}
            None => return lost(link),
        }
    };
    tokio::time::sleep(start_in).await;

    let ledger = Arc::new(Ledger::new(Duration::from_millis(run.window_ms)));
    let (result, stop) = attack(link, &plan, &host, ledger).await;
    let result = match result {
        Ok(result) => result,
        Err(e) => {
            eprintln!("error: {e}");
            link.send(WorkerMessage::Failed {
                reason: e.to_string(),
            });
            return if matches!(e, RunError::Config(_)) {
                Exit::Config
            } else {
                Exit::Failed
            };
        }
    };
    print_totals(&name, &result.measured);
    if link.lost.is_some() {
        eprintln!("error: the manager is gone: nobody received this worker's measurements");
        return Exit::Failed;
    }
    if let Some(reason) = stop {
        println!("Stopped early by the manager: {reason}");
    }
    link.send(WorkerMessage::Result {
        measured: Box::new(result.measured),
        goose_error: result.goose_error,
    });
    loop {
        match link.next(&mut tick).await {
            Some(ManagerMessage::Received) => return Exit::Passed,
            Some(_) => {}
            None => {
                eprintln!("error: the manager did not confirm it received the measurements");
                return lost(link);
            }
        }
    }
}

/// Runs the attack while reporting progress, obeying `stop` and watching the manager.
/// Returns the attack's result and the manager's reason to stop early, if it gave one.
async fn attack(
    link: &mut Link,
    plan: &Plan,
    host: &Url,
    ledger: Arc<Ledger>,
) -> (Result<attack::AttackResult, RunError>, Option<String>) {
    let live = ledger.clone();
    let attack = attack::attack_with_ledger(plan, host, None, &[], ledger);
    tokio::pin!(attack);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stop: Option<String> = None;
    let mut announced = false;
    loop {
        tokio::select! {
            result = &mut attack => return (result, stop),
            _ = tick.tick() => {
                link.send(WorkerMessage::Progress(Progress {
                    elapsed_secs: live.elapsed().as_secs_f64(),
                    requests: live.live.requests.load(Ordering::Relaxed),
                    failures: live.live.failures.load(Ordering::Relaxed),
                    rate_limited: live.live.rate_limited.load(Ordering::Relaxed),
                    users: live.live.users.load(Ordering::Relaxed),
                }));
                link.check_silence();
                // Goose clears its killswitch when its attack begins: pull it again every
                // second until the attack ends, so a stop that came early is not lost.
                if let Some(reason) = stop.as_ref().or(link.lost.as_ref()) {
                    goose::trigger_killswitch(reason);
                }
            }
            message = link.inbox.recv(), if link.lost.is_none() => match message {
                Some(Ok(ManagerMessage::Stop { reason })) => {
                    link.last_heard = Instant::now();
                    goose::trigger_killswitch(&reason);
                    stop = Some(reason);
                }
                Some(Ok(_)) => link.last_heard = Instant::now(),
                Some(Err(e)) => link.lost = Some(format!("lost the manager: {e}")),
                None => link.lost = Some("lost the manager: the connection closed".into()),
            },
        }
        if let Some(reason) = &link.lost
            && !announced
        {
            eprintln!("\nerror: {reason}; stopping the users");
            goose::trigger_killswitch(reason);
            announced = true;
        }
    }
}

fn aborted(reason: &str) -> Exit {
    eprintln!("error: the manager called the run off: {reason}");
    Exit::Config
}

fn refuse_share(link: &Link, reason: String) -> Exit {
    link.send(WorkerMessage::Failed {
        reason: reason.clone(),
    });
    Exit::config_error(format!("cannot take the share the manager gave: {reason}"))
}

/// The worker's plan: its own command line (for Goose's options after `--`), with
/// everything about the run taken from the manager's share.
fn worker_plan(args: &RunArgs, run: &WorkerRun) -> Result<(Plan, Url), ConfigError> {
    let joined = |list: &[String]| (!list.is_empty()).then(|| list.join(","));
    let mut own = args.clone();
    own.scenario = run.scenario.clone();
    own.host = Some(run.host.clone());
    own.users = Some(run.users);
    own.spawn_rate = Some(run.spawn_rate);
    own.duration = Some(format!("{}s", run.duration_secs));
    own.tags = joined(&run.tags);
    own.exclude_tags = joined(&run.exclude_tags);
    own.web = false;
    own.builtin_args = None;
    own.server_pid = None;
    own.memory_url = None;
    own.abort_on_fail = false;
    own.skip_preflight = run.skip_preflight;
    own.keep_accounts = run.keep_accounts;
    own.forwarded_for_pool = run.forwarded_for_pool;
    own.no_loopback_sources = run.no_loopback_sources;
    own.request_timeout = run.request_timeout.clone();
    own.ws_token_in_header = run.ws_token_in_header;
    own.ws_hold = run.ws_hold.clone();
    own.ws_pace_ms = run.ws_pace_ms;
    own.ws_payload_bytes = run.ws_payload_bytes;
    own.ws_timeout = run.ws_timeout.clone();
    let mut plan = Plan::resolve(&own, builtin_classes())?;
    plan.flow_options.first_user_index = run.first_user_index;
    let host = plan
        .host
        .clone()
        .ok_or_else(|| ConfigError::new("the manager sent no host"))?;
    Ok((plan, host))
}

/// The worker's own totals, printed so that they can be checked against the manager's.
fn print_totals(name: &str, run: &MeasuredRun) {
    let all: u64 = run.requests.iter().map(|r| r.total()).sum();
    let failures: u64 = run.requests.iter().map(|r| r.failures).sum();
    let limited: u64 = run.requests.iter().map(|r| r.rate_limited).sum();
    println!(
        "Worker {name} measured {all} requests ({} HTTP, {} WebSocket): {failures} failures, {limited} rate limited.",
        run.combined(RequestKind::Http).total(),
        run.combined(RequestKind::WebSocket).total(),
    );
}

fn manager_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("ws://[{host}]:{port}/")
    } else {
        format!("ws://{host}:{port}/")
    }
}

/// The host name and process id: unique on a machine, readable in the manager's reports.
fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the manager, trying again every second for `wait` (workers often start
/// before their manager).
async fn connect(url: &str, wait: Duration) -> Result<Socket, String> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let attempt = timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async_with_config(url, Some(websocket_config()), false),
        )
        .await;
        let why = match attempt {
            Ok(Ok((socket, _))) => return Ok(socket),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 5 s".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "could not reach the manager at {url} within {} ({why}); check --manager-host, \
                 --manager-port and that the manager runs (--worker-timeout waits longer)",
                HumanDuration(wait)
            ));
        }
        if !said {
            println!("Waiting for the manager at {url} ({why}) ...");
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_share_becomes_the_workers_plan() {
        let cli = crate::cli::Cli::try_parse_from(["lva-loadtest", "--worker"]).expect("cli");
        let run = WorkerRun {
            scenario: "custom".into(),
            host: "http://127.0.0.1:9/".into(),
            users: 3,
            spawn_rate: 1.5,
            duration_secs: 8,
            tags: vec!["health".into(), "stats".into()],
            exclude_tags: vec![],
            skip_preflight: true,
            keep_accounts: false,
            forwarded_for_pool: None,
            no_loopback_sources: false,
            request_timeout: "30s".into(),
            ws_token_in_header: false,
            ws_hold: "10s".into(),
            ws_pace_ms: 1000,
            ws_payload_bytes: 256,
            ws_timeout: "10s".into(),
            window_ms: 10_000,
            first_user_index: 4,
        };
        let (plan, host) = worker_plan(&cli.run, &run).expect("plan");
        assert_eq!(host.as_str(), "http://127.0.0.1:9/");
        assert_eq!((plan.users, plan.spawn_rate), (3, 1.5));
        assert_eq!(plan.duration, Duration::from_secs(8));
        assert_eq!(plan.filter.include, ["health", "stats"]);
        assert_eq!(plan.flow_options.first_user_index, 4);
        assert!(plan.flow_options.loopback_sources);
        assert_eq!(plan.test_plan(), "3,2s;3,6s;0,0s");
        assert_eq!(manager_url("::1", 5115), "ws://[::1]:5115/");
        assert_eq!(manager_url("manager", 5115), "ws://manager:5115/");
    }
}
