//! Running the attack: the built-in server, the pre-flight check, live progress, memory
//! sampling, Goose itself, and what it measured.

use crate::flows::context::RunContext;
use crate::measure::{Ledger, MeasuredRun, RequestKind};
use crate::plan::{ConfigError, Plan, goose_error_detail};
use crate::presets::HumanDuration;
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::metrics::GooseMetrics;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// Why a run could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the built-in reference server did not start: {0}")]
    Builtin(String),
    #[error("the load test failed: {0}")]
    Goose(String),
}

/// The reference server running as a child process, so its CPU and memory are its own.
pub struct BuiltinServer {
    child: Child,
    pub url: Url,
    pub pid: u32,
    /// The server's database file, removed when it stops.
    db: PathBuf,
}

impl BuiltinServer {
    /// Starts `lva-loadtest serve-target` on an ephemeral loopback port and reads the
    /// address from its first line.
    pub async fn start(extra_args: &[String]) -> Result<BuiltinServer, RunError> {
        let exe = std::env::current_exe()
            .map_err(|e| RunError::Builtin(format!("cannot find this program's path: {e}")))?;
        // A database file rather than memory: data the run stores then lives on disk, so
        // the server's memory trend shows leaks, not the test's own data piling up.
        let db = std::env::temp_dir().join(format!("lva-target-{}.sqlite", std::process::id()));
        let mut command = Command::new(exe);
        command
            .arg("serve-target")
            .args(["--bind", "127.0.0.1:0", "--bcrypt-cost", "4"]);
        if !extra_args.iter().any(|a| a == "--db") {
            command.arg("--db").arg(&db);
        }
        let mut child = command
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RunError::Builtin(format!("could not start it: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| RunError::Builtin("no output from it".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                let hint = if status.and_then(|s| s.code()) == Some(2) {
                    " (check --builtin-args)"
                } else {
                    ""
                };
                return Err(RunError::Builtin(format!(
                    "it exited before listening{hint}"
                )));
            }
            Ok(Err(e)) => return Err(RunError::Builtin(format!("reading its output: {e}"))),
            Err(_) => return Err(RunError::Builtin("it did not listen within 15 s".into())),
        };
        let url = line
            .rsplit(' ')
            .next()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| RunError::Builtin(format!("unexpected first line '{line}'")))?;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(BuiltinServer {
            child,
            url,
            pid,
            db,
        })
    }

    /// Asks it to stop (SIGTERM), and kills it if it has not within a few seconds.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.db.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Calls `HOST/health`: unreachable is a configuration error; another status a warning.
pub async fn preflight(host: &Url) -> Result<(), ConfigError> {
    let url = format!("{}/health", host.as_str().trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ConfigError(format!("cannot build the pre-flight client: {e}")))?;
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(r) => {
            eprintln!(
                "warning: pre-flight GET {url} answered {} (expected 200); the run goes on",
                r.status()
            );
            Ok(())
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out after 10 s".to_string()
            } else if e.is_connect() {
                format!("could not connect ({})", root_cause(&e))
            } else {
                root_cause(&e)
            };
            Err(ConfigError(format!(
                "pre-flight check failed: GET {url}: {why}. Is the server running at that address? \
                 (--skip-preflight runs anyway)"
            )))
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Where the server's memory is read during the run.
#[derive(Debug, Clone)]
pub enum MemorySource {
    Pid(u32),
    Metrics(Url),
}

impl MemorySource {
    pub fn describe(&self) -> String {
        match self {
            MemorySource::Pid(pid) => format!("pid {pid} (VmRSS of /proc/{pid}/status)"),
            MemorySource::Metrics(url) => format!("{url} (process_resident_memory_bytes)"),
        }
    }

    async fn read(&self, client: &reqwest::Client) -> Option<u64> {
        match self {
            MemorySource::Pid(pid) => {
                let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
                    .await
                    .ok()?;
                parse_vm_rss(&status)
            }
            MemorySource::Metrics(url) => {
                let text = client
                    .get(url.as_str())
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                parse_prometheus_rss(&text)
            }
        }
    }
}

pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn parse_prometheus_rss(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(|c: char| c.is_whitespace() || c == '{')
                .next()
                .is_some_and(|name| name == "process_resident_memory_bytes")
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// What the attack produced.
pub struct AttackResult {
    pub measured: MeasuredRun,
    pub goose: Option<GooseMetrics>,
    pub goose_error: Option<String>,
}

/// Runs the attack against `host` and returns everything it measured, even when it was
/// interrupted or Goose failed part way.
pub async fn attack(
    plan: &Plan,
    host: &Url,
    memory: Option<MemorySource>,
    report_files: &[PathBuf],
) -> Result<AttackResult, RunError> {
    let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
    let ctx = Arc::new(
        RunContext::new(host.clone(), plan.flow_options.clone(), ledger.clone())
            .map_err(|e| RunError::Goose(e.to_string()))?,
    );
    let scenarios = plan
        .selection
        .scenarios(&ctx)
        .map_err(|e| RunError::Goose(e.to_string()))?;

    let mut config = GooseConfiguration::parse_args_default(&plan.goose_args).map_err(|e| {
        ConfigError(format!(
            "invalid Goose option after --: {}",
            goose_error_detail(&e)
        ))
    })?;
    config.host = Some(host.as_str().trim_end_matches('/').to_string());
    config.no_telnet = true;
    config.no_print_metrics = true;
    // Goose's own start-up lines would bury the tool's; `-v` after `--` brings them back.
    if config.verbose == 0 {
        config.quiet = 1;
    }
    config.report_file = report_files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if plan.web {
        config.dashboard = true;
        config.dashboard_port = Some(plan.web_port);
        config.dashboard_host = Some("127.0.0.1".into());
        config.dashboard_control = true;
        config.dashboard_no_auth = true;
        config.no_autostart = true;
    }

    let mut goose = GooseAttack::initialize_with_config(config)
        .map_err(|e| RunError::Goose(e.to_string()))?
        // Users bring their own clients (see RunContext::build_client): one shared Goose
        // client spares building one per user that would never be used.
        .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies())
        .and_then(|g| g.set_default(GooseDefault::TestPlan, plan.test_plan().as_str()))
        .map(|g| *g)
        .map_err(|e| RunError::Goose(e.to_string()))?;
    for scenario in scenarios {
        goose = goose.register_scenario(scenario);
    }

    let monitor = tokio::spawn(monitor(
        ctx.clone(),
        plan.duration,
        memory,
        plan.abort_on_fail.then(|| plan.targets.clone()),
        plan.web,
    ));
    let started = Instant::now();
    let outcome = goose.execute().await;
    ctx.begin_stopping();
    monitor.abort();
    finish_progress_line();

    let elapsed = started.elapsed();
    let (goose_metrics, goose_error) = match outcome {
        Ok(metrics) => (Some(metrics), None),
        Err(e) => (None, Some(format!("{e:?}"))),
    };
    // Stopped by Ctrl-C (Goose's kill switch) or ended early, and not by --abort-on-fail.
    let aborted = ctx.ledger.snapshot(&plan.scenario, false).aborted.is_some();
    let ended_early = !plan.web && elapsed + Duration::from_secs(1) < plan.duration;
    let interrupted = !aborted && (goose::is_killswitch_triggered() || ended_early);
    let measured = ctx.ledger.snapshot(&plan.scenario, interrupted);
    Ok(AttackResult {
        measured,
        goose: goose_metrics,
        goose_error,
    })
}

/// How long past its duration a run may go on (on-stop work) before it is stopped.
const OVERRUN_LIMIT: Duration = Duration::from_secs(60);

/// Live progress, user and memory samples, and `--abort-on-fail`, once a second.
async fn monitor(
    ctx: Arc<RunContext>,
    duration: Duration,
    memory: Option<MemorySource>,
    abort_targets: Option<crate::validate::Targets>,
    web: bool,
) {
    let ledger = ctx.ledger.clone();
    let client = reqwest::Client::new();
    if let Some(source) = &memory {
        ledger.set_memory_source(source.describe());
    }
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_requests = 0u64;
    let mut last_at = Instant::now();
    let mut seconds = 0u64;
    loop {
        tick.tick().await;
        seconds += 1;
        let users = ledger.live.users.load(Ordering::Relaxed);
        ledger.sample_users(users);
        if let Some(source) = memory.as_ref().filter(|_| seconds % 2 == 1)
            && let Some(rss) = source.read(&client).await
        {
            ledger.sample_memory(rss);
        }
        if !web && ledger.elapsed() >= duration {
            ctx.begin_stopping();
        }
        // A run always stops by itself: past its end by more than a minute (stuck on-stop
        // work, a server that never answers), Goose is told to stop.
        if !web && ledger.elapsed() >= duration + OVERRUN_LIMIT && !goose::is_killswitch_triggered()
        {
            eprintln!("\nthe run is {OVERRUN_LIMIT:?} past its duration: stopping it");
            goose::trigger_killswitch("run exceeded its duration");
        }
        let requests = ledger.live.requests.load(Ordering::Relaxed);
        let rps = (requests - last_requests) as f64 / last_at.elapsed().as_secs_f64().max(0.001);
        last_requests = requests;
        last_at = Instant::now();
        let recent = ledger.recent(RequestKind::Http);
        let judged = recent.total() - recent.rate_limited;
        let error_share = if judged == 0 {
            0.0
        } else {
            recent.failures as f64 * 100.0 / judged as f64
        };
        let elapsed = ledger.elapsed();
        let line = format!(
            "[{} / {}] users {users}  {rps:.1} req/s  p95 {:.0} ms  errors {error_share:.2}%  429s {}  requests {requests}",
            HumanDuration(Duration::from_secs(elapsed.as_secs())),
            if web {
                "web".to_string()
            } else {
                format!(
                    "{} left",
                    HumanDuration(Duration::from_secs(
                        duration.saturating_sub(elapsed).as_secs()
                    ))
                )
            },
            recent.times.percentile_ms(95.0),
            ledger.live.rate_limited.load(Ordering::Relaxed),
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if seconds.is_multiple_of(5) {
            eprintln!("{line}");
        }
        if let Some(targets) = &abort_targets
            && let Some(reason) = clearly_missed(&ledger, targets)
        {
            ledger.set_aborted(reason.clone());
            eprintln!("\n--abort-on-fail: {reason}; stopping the run");
            // Goose stops gracefully, keeping everything measured so far.
            goose::trigger_killswitch(&reason);
            return;
        }
    }
}

/// A target missed by a factor of two over at least 100 judged requests and 10 s.
fn clearly_missed(ledger: &Ledger, targets: &crate::validate::Targets) -> Option<String> {
    if ledger.elapsed() < Duration::from_secs(10) {
        return None;
    }
    let run = ledger.snapshot("", false);
    let http = run.combined(RequestKind::Http);
    let judged = http.total() - http.rate_limited;
    if judged < 100 {
        return None;
    }
    let p95 = http.times.percentile_ms(95.0);
    if p95 > 2.0 * targets.p95_ms {
        return Some(format!(
            "P95 {p95:.0} ms is more than twice the {:.0} ms target",
            targets.p95_ms
        ));
    }
    let error_rate = http.failures as f64 * 100.0 / judged as f64;
    if error_rate > 2.0 * targets.error_rate && http.failures >= 5 {
        return Some(format!(
            "error rate {error_rate:.2}% is more than twice the {:.2}% target",
            targets.error_rate
        ));
    }
    None
}

fn finish_progress_line() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_readings_parse() {
        let status = "Name:\tx\nVmRSS:\t  12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        let metrics = "# HELP x\nprocess_resident_memory_bytes 2.5e+07\nother 1\n";
        assert_eq!(parse_prometheus_rss(metrics), Some(25_000_000));
        assert_eq!(
            parse_prometheus_rss("process_resident_memory_bytes_total 5\n"),
            None
        );
    }
}
