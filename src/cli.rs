//! The command line: the run's options, the distributed roles, the `validate` command, and
//! Goose's own options after `--` for power users. Nothing here is resolved: the plan does
//! that, once.

use crate::verdict::TargetOptions;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The port masters listen on by default: Locust's, so that a worker reaches a Locust master
/// and the tool's manager alike without `--master-port`.
pub const DEFAULT_MANAGER_PORT: u16 = 5557;

#[derive(Parser, Debug)]
#[command(
    name = "lva-loadtest",
    version,
    about = "Load tests for the Learning Voice Agent API, on Goose",
    long_about = "Load tests for the Learning Voice Agent API, on Goose.\n\n\
        Without --host it starts its built-in reference server on 127.0.0.1 and tests that.\n\
        Exit codes: 0 every target met, 1 a target missed or the run interrupted, \
        2 configuration error.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub distributed: DistributedArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Judge a saved run (its _metrics.json, or Goose's JSON report) without traffic.
    Validate(ValidateArgs),
    /// Print the user classes as a Locust master declares them (JSON, read by
    /// scripts/locust_master.py).
    LocustClasses(LocustClassesArgs),
    /// Merge the exact runs a Locust master collected from the workers, then judge and
    /// report them as one run (the same verdict, reports and exit codes).
    Merge(MergeArgs),
    /// Find the highest arrival rate at which every chosen target holds: levels of an open
    /// model (a warm-up, then a judged window each) climbing by --step-factor from
    /// --start-rate, bisected to --tolerance, the level found confirmed once more; never
    /// above --max-rate. With --baseline (a saved `_capacity.json`), fails when capacity
    /// dropped by more than --max-capacity-drop beyond the two searches' noise.
    Capacity(Box<CapacityArgs>),
}

#[derive(Args, Debug, Clone)]
pub struct CapacityArgs {
    /// The hard ceiling, in arrivals a second: no level goes above it.
    #[arg(long, value_name = "PER_SECOND", default_value = "100")]
    pub max_rate: String,
    /// Each level of the climb is this many times the one before.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 2.0,
        allow_negative_numbers = true
    )]
    pub step_factor: f64,
    /// The search ends when the lowest failing rate is within this share above the highest
    /// holding one: 10% or 0.1.
    #[arg(long, value_name = "SHARE", default_value = "10%")]
    pub tolerance: String,
    /// Each level's judged window.
    #[arg(long, value_name = "DURATION", default_value = "20s")]
    pub level_duration: String,
    /// Each level's warm-up after its rate is set, not judged.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub warmup: String,
    /// The targets a level must meet (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "p95,success,errors,arrivals"
    )]
    pub capacity_targets: Vec<LevelTarget>,
    /// With --baseline FILE (a saved `_capacity.json`): the largest drop of capacity that
    /// passes, as a share: 10% or 0.1.
    #[arg(long, value_name = "SHARE", default_value = "10%")]
    pub max_capacity_drop: String,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The saved `_metrics.json` or Goose JSON report.
    pub file: PathBuf,
    /// Directory for the HTML report and history CSV of the saved run [default: the
    /// file's directory]; they are named after the file, plus `_validated`.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub targets: TargetOptions,
}

#[derive(Args, Debug, Clone)]
pub struct LocustClassesArgs {
    /// Scenario preset whose tags apply when no --tags is given.
    #[arg(
        id = "scenario",
        value_name = "SCENARIO",
        long = "scenario",
        default_value = "custom"
    )]
    pub preset_name: String,
    /// Keep only tasks with any of these tags (comma-separated).
    #[arg(long, value_name = "TAGS")]
    pub tags: Option<String>,
    /// Drop tasks with any of these tags (comma-separated).
    #[arg(long, value_name = "TAGS")]
    pub exclude_tags: Option<String>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The folder of one run's exact runs (`*.lvarun`, and the master's `workers.json`).
    pub folder: PathBuf,
    /// Directory for the reports [default: the run's own --output].
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Judge the run and print the summary, but write no report files.
    #[arg(long)]
    pub no_reports: bool,
    /// A run that lost a worker passes if every target is met (exit 0 instead of 1); the
    /// verdict still says it was degraded.
    #[arg(long)]
    pub accept_degraded: bool,
    #[command(flatten)]
    pub targets: TargetOptions,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scenario preset: smoke, load, stress, spike, endurance, auth-only, gdpr-only,
    /// rate-limit, or custom (see --list-scenarios).
    #[arg(
        id = "scenario",
        value_name = "SCENARIO",
        short = 's',
        long = "scenario",
        default_value = "smoke"
    )]
    pub preset_name: String,
    /// Base URL of the server under test. Without it, the built-in reference server.
    #[arg(long, value_name = "URL")]
    pub host: Option<String>,
    /// Number of simulated users (overrides the preset).
    #[arg(short = 'u', long, allow_negative_numbers = true, value_parser = whole::<usize>(1, None))]
    pub users: Option<usize>,
    /// Users started per second (overrides the preset).
    #[arg(
        short = 'r',
        long,
        value_name = "PER_SECOND",
        allow_negative_numbers = true
    )]
    pub spawn_rate: Option<f64>,
    /// How long the run lasts, ramp included: 30s, 5m, 1h, 1m30s (overrides the preset).
    #[arg(short = 'd', long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Keep only tasks with any of these tags (comma-separated).
    #[arg(short = 't', long, value_name = "TAGS")]
    pub tags: Option<String>,
    /// Drop tasks with any of these tags (comma-separated).
    #[arg(long, value_name = "TAGS")]
    pub exclude_tags: Option<String>,
    /// Run with Goose's web dashboard: start, watch, change users and stop in a browser.
    #[arg(short = 'w', long)]
    pub web: bool,
    /// Port of the web dashboard (0 picks a free one).
    #[arg(long, default_value_t = 5118, allow_negative_numbers = true,
          value_parser = whole::<u16>(0, Some(65535)))]
    pub web_port: u16,
    /// With --web: keep the dashboard up this long after the run ends (for a last look).
    #[arg(long, value_name = "DURATION", requires = "web")]
    pub web_linger: Option<String>,
    /// Directory for the reports.
    #[arg(short = 'o', long, default_value = "reports/load_tests")]
    pub output: PathBuf,
    /// Open model: start this many task iterations a second, whatever the server's speed,
    /// for --duration (users come from a pool; each request is timed from its iteration's
    /// intended start, and the verdict judges that time).
    #[arg(
        long,
        value_name = "PER_SECOND",
        conflicts_with = "rate_stages",
        help_heading = "Open model"
    )]
    pub rate: Option<String>,
    /// Open model with a ramping rate: DURATION:RATE stages, each reached linearly from the
    /// rate before it, e.g. 30s:10,1m:50,30s:0 (their sum is the run's duration).
    #[arg(long, value_name = "STAGES", help_heading = "Open model")]
    pub rate_stages: Option<String>,
    /// With --rate-stages: the rate the first stage starts from [default: 0]. With
    /// `capacity`: the first level's rate [default: 5].
    #[arg(long, value_name = "PER_SECOND", help_heading = "Open model")]
    pub start_rate: Option<String>,
    /// With an open model: starts evenly spaced, or a Poisson process of the same mean rate.
    #[arg(long, value_enum, default_value = "even", help_heading = "Open model")]
    pub arrivals: Spacing,
    /// With an open model: the most users the pool may start [default: twice the peak rate's
    /// arrivals in a second, at least 10]; an arrival that finds them all busy is dropped.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = whole::<usize>(1, None), help_heading = "Open model")]
    pub max_users: Option<usize>,
    /// With an open model: users started before the first arrival [default: half the peak
    /// rate, at least 5, at most --max-users]; the others start when arrivals need them.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = whole::<usize>(1, None), help_heading = "Open model")]
    pub pre_started_users: Option<usize>,
    /// Remove every wait between tasks (for benchmarking the generator itself).
    #[arg(long)]
    pub no_wait: bool,
    /// Judge the run and print the summary, but write no report files.
    #[arg(long, conflicts_with = "goose_report")]
    pub no_reports: bool,
    /// Also write Goose's own reports (`_goose.html`, `_goose.json`): Goose's view of the
    /// run, where every 429 is a failure; its HTML loads its chart library from the internet.
    #[arg(long)]
    pub goose_report: bool,
    /// Print the scenario presets and exit.
    #[arg(id = "list_scenarios", long = "list-scenarios")]
    pub list_presets: bool,
    /// Do not check HOST/health before the run.
    #[arg(long)]
    pub skip_preflight: bool,
    /// Leave the accounts the run created in place (default: delete them at the end).
    #[arg(long)]
    pub keep_accounts: bool,
    /// Run the security probes beside the load (on by default in the smoke and auth-only
    /// scenarios; see docs/PROBES.md).
    #[arg(long, conflicts_with = "no_probes")]
    pub probes: bool,
    /// Do not run the security probes.
    #[arg(long)]
    pub no_probes: bool,
    /// Run the security probes, but let no finding change the exit code.
    #[arg(long, conflicts_with = "no_probes")]
    pub probes_report_only: bool,
    /// Each user sends its own X-Forwarded-For from a pool of N documentation addresses
    /// (for staging servers behind a proxy that trusts the header).
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = whole::<u32>(1, None))]
    pub forwarded_for_pool: Option<u32>,
    /// Connect every user from 127.0.0.1 instead of its own loopback address (by default,
    /// against a server on this machine, each user has its own 127.x source address so
    /// per-client limits apply per user).
    #[arg(long)]
    pub no_loopback_sources: bool,
    /// Request timeout of the simulated users.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub request_timeout: String,
    /// How long a stopping run may take to finish its requests and delete its accounts,
    /// after its planned end or a stop signal; then it ends with what it measured.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub stop_timeout: String,
    /// Trust this CA certificate (PEM) too, beside the system's: for a staging server with
    /// a private CA.
    #[arg(long, value_name = "FILE.pem")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate (self-signed, expired, another name). Every output says so.
    #[arg(long)]
    pub insecure: bool,
    /// Options for the built-in reference server, e.g. "--fault-error-rate 0.05".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub builtin_args: Option<String>,
    /// Sample this local process's memory (RSS) through the run: the server under test.
    #[arg(long, value_name = "PID", alias = "target-pid", allow_negative_numbers = true,
          value_parser = whole::<u32>(1, None))]
    pub server_pid: Option<u32>,
    /// Sample `process_resident_memory_bytes` from this Prometheus endpoint.
    #[arg(long, value_name = "URL")]
    pub memory_url: Option<String>,
    /// Serve the run's figures to Prometheus at http://ADDR:PORT/metrics while it runs and
    /// until its final figures are in (port 0 picks a free port and prints it).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_bind: Option<String>,
    /// With --metrics-bind: how long the run's end waits for a scrape of its final figures
    /// (only when something scraped during the run).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15s",
        requires = "metrics_bind"
    )]
    pub metrics_linger: String,
    /// Scrape the server's own Prometheus endpoint through the run and chart its CPU,
    /// memory, requests in flight and DB pool beside the run's figures (`builtin`: the
    /// built-in server's /metrics). A server without one gets a note, not a failed run.
    #[arg(long, value_name = "URL")]
    pub server_metrics_url: Option<String>,
    /// With --server-metrics-url: how often it is scraped.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        requires = "server_metrics_url"
    )]
    pub server_metrics_interval: String,
    /// With --server-metrics-url: one more series to chart beside the defaults, by its exact
    /// name, optionally with label matchers: `NAME` or `NAME{label="value"}` (repeatable;
    /// the matching samples are added up, a counter is shown per second).
    #[arg(long, value_name = "NAME", requires = "server_metrics_url")]
    pub server_metric: Vec<String>,
    /// Stop the run as soon as a target is clearly missed: P95 or the error rate worse than
    /// --abort-factor times its target, once --abort-min-requests requests were judged and
    /// --abort-min-time has passed.
    #[arg(long)]
    pub abort_on_fail: bool,
    /// With --abort-on-fail: how many times worse than its target a figure must be.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 2.0,
        requires = "abort_on_fail",
        allow_negative_numbers = true
    )]
    pub abort_factor: f64,
    /// With --abort-on-fail: judged requests needed before the run may be aborted.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "abort_on_fail",
        allow_negative_numbers = true,
        value_parser = whole::<u64>(0, None)
    )]
    pub abort_min_requests: u64,
    /// With --abort-on-fail: time into the run before it may be aborted.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        requires = "abort_on_fail"
    )]
    pub abort_min_time: String,
    /// Send the WebSocket access token in an Authorization header instead of ?token=.
    #[arg(long)]
    pub ws_token_in_header: bool,
    /// Send this Origin header on the WebSocket handshake, as a browser page would.
    #[arg(long, value_name = "ORIGIN")]
    pub ws_origin: Option<String>,
    /// How long the long-lived WebSocket session stays open.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub ws_hold: String,
    /// Time between two audio messages of the long-lived session, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, allow_negative_numbers = true,
          value_parser = whole::<u64>(1, None))]
    pub ws_pace_ms: u64,
    /// Size of each audio payload, in bytes before base64.
    #[arg(long, value_name = "BYTES", default_value_t = 256, allow_negative_numbers = true,
          value_parser = whole::<usize>(0, None))]
    pub ws_payload_bytes: usize,
    /// How long to wait for a WebSocket reply or close.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub ws_timeout: String,
    #[command(flatten)]
    pub targets: TargetOptions,
    /// Goose's own options, after `--` (for example `-- --request-log requests.json`).
    #[arg(last = true, value_name = "GOOSE_OPTIONS")]
    pub goose_args: Vec<String>,
}

/// How the starts are spaced.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly: at 10/s, one start every 100 ms.
    Even,
    /// A Poisson process: independent starts at the same mean rate, as many real clients make.
    Poisson,
}

/// A target a level is judged on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LevelTarget {
    /// P95 of the judged HTTP requests, from each arrival's intended start, below `--p95-ms`.
    P95,
    /// Success rate at least `--success-rate`.
    Success,
    /// Error rate at most `--error-rate`.
    Errors,
    /// No arrival dropped, at most 1% late (one late start always allowed).
    Arrivals,
}

/// The distributed-run options of the command line.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Distributed runs")]
pub struct DistributedArgs {
    /// Run as the manager of a distributed run (a master of Locust's protocol): wait for
    /// the workers, ramp the users up over them, merge their measurements, judge and report
    /// the run.
    #[arg(long, alias = "master", conflicts_with = "worker")]
    pub manager: bool,
    /// How many workers the manager waits for before the run starts.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "manager",
          allow_negative_numbers = true, value_parser = whole::<u32>(1, None))]
    pub expect_workers: u32,
    /// Where the manager listens for workers; port 0 picks a free one. Off loopback, anyone
    /// who can reach it can join the run: keep it on a private network.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5557",
        alias = "master-bind",
        requires = "manager"
    )]
    pub manager_bind: SocketAddr,
    /// Run as a worker of a Locust master or of the manager: run the users it orders. The
    /// run's options come from the master.
    #[arg(long, conflicts_with_all = WORKER_REFUSES)]
    pub worker: bool,
    /// The master's host name or address, for a worker.
    #[arg(
        long,
        value_name = "HOST",
        default_value = "127.0.0.1",
        alias = "master-host",
        requires = "worker"
    )]
    pub manager_host: String,
    /// The master's port, for a worker (Locust's masters and the manager listen on 5557).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_MANAGER_PORT, alias = "master-port",
          requires = "worker", allow_negative_numbers = true,
          value_parser = whole::<u16>(1, Some(65535)))]
    pub manager_port: u16,
    /// Manager: how long to wait for the expected workers before giving up (exit code 2).
    /// Worker: how long to keep trying to reach the master.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub worker_timeout: String,
    /// A run that lost a worker passes if every target is met (exit 0 instead of 1); the
    /// verdict still says it was degraded.
    #[arg(long, requires = "manager")]
    pub accept_degraded: bool,
    /// The worker's name in the master's reports [default: host name and process id].
    #[arg(long, value_name = "NAME", requires = "worker")]
    pub worker_name: Option<String>,
    /// A worker writes every request it makes to FILE, one JSON object a line (request key,
    /// microseconds, status, outcome): to check what it delivered.
    #[arg(long, value_name = "FILE", requires = "worker")]
    pub request_log: Option<PathBuf>,
}

/// The run's options, which a worker takes from the manager and refuses on its own command
/// line (the targets and `--output` are the manager's business and ignored by a worker).
const WORKER_REFUSES: [&str; 35] = [
    "scenario",
    "rate",
    "rate_stages",
    "start_rate",
    "max_users",
    "pre_started_users",
    "host",
    "users",
    "spawn_rate",
    "duration",
    "tags",
    "exclude_tags",
    "web",
    "builtin_args",
    "server_pid",
    "memory_url",
    "server_metrics_url",
    "server_metrics_interval",
    "server_metric",
    "abort_on_fail",
    "abort_factor",
    "abort_min_requests",
    "abort_min_time",
    "stop_timeout",
    "web_linger",
    "keep_accounts",
    "skip_preflight",
    "forwarded_for_pool",
    "no_loopback_sources",
    "request_timeout",
    "ws_token_in_header",
    "ws_hold",
    "ws_pace_ms",
    "ws_payload_bytes",
    "ws_timeout",
];

/// A whole number from `min` (to `max`, else as large as the option's type holds): anything
/// else is refused naming the range. Numeric options take negative numbers as values
/// (`allow_negative_numbers`) so that `--users -5` meets this message, not clap's tip to
/// write `-- -5`, which leads to another error.
fn whole<T>(
    min: u64,
    max: Option<u64>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |text: &str| {
        let range = match max {
            Some(max) => format!("a whole number from {min} to {max}"),
            None => format!("a whole number, {min} or more"),
        };
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min && max.is_none_or(|max| *n <= max))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("expected {range}"))
    }
}

/// Splits a comma-separated list, dropping empty items.
pub fn split_list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lva-loadtest").chain(words.iter().copied()))
    }

    #[test]
    fn locust_words_are_accepted() {
        let cli = parse(&[
            "--master",
            "--expect-workers",
            "3",
            "--master-bind",
            "0.0.0.0:5557",
        ])
        .expect("manager");
        assert!(cli.distributed.manager);
        assert_eq!(cli.distributed.expect_workers, 3);
        assert_eq!(cli.distributed.manager_bind.port(), 5557);
        let cli = parse(&[
            "--worker",
            "--master-host",
            "10.0.0.5",
            "--master-port",
            "5557",
        ])
        .expect("worker");
        assert!(cli.distributed.worker);
        assert_eq!(cli.distributed.manager_host, "10.0.0.5");
        assert_eq!(cli.distributed.manager_port, 5557);
    }

    #[test]
    fn role_options_are_checked() {
        for bad in [
            &["--manager", "--worker"][..],
            &["--worker", "--users", "5"],
            &["--worker", "--scenario", "load"],
            &["--expect-workers", "2"],
            &["--manager", "--expect-workers", "0"],
            &["--manager-host", "x"],
            &["--manager", "--manager-bind", "localhost"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse(&[
                "--worker",
                "--worker-name",
                "w1",
                "--",
                "--request-log",
                "x"
            ])
            .is_ok()
        );
        assert!(parse(&["--manager", "--users", "9", "--accept-degraded"]).is_ok());
        // Each refused name is a real option: clap ignores unknown names in release builds.
        for id in WORKER_REFUSES {
            let flag = format!("--{}", id.replace('_', "-"));
            let conflict = |words: &[&str]| {
                parse(words).err().map(|e| e.kind()) == Some(ErrorKind::ArgumentConflict)
            };
            assert!(
                conflict(&["--worker", &flag, "1"]) || conflict(&["--worker", &flag]),
                "{flag} is not refused with --worker"
            );
        }
    }
}
