//! A resolved run: preset and flags combined and checked before any traffic.

pub mod limits;
pub mod open;

use crate::cli::{RunArgs, split_list};
use crate::duration::{HumanDuration, parse_duration};
use crate::exchange::context::{FlowOptions, WsOptions, new_source_offset};
use crate::presets::{self, PresetChecks};
use crate::transport::{TlsOptions, is_loopback_host};
use crate::user_classes::{Selection, TagFilter, UserClass};
use crate::verdict::{RunFacts, Targets};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A configuration error: the run does not start, and the tool exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// Goose options this tool sets itself: given after `--` they would fight the tool's own.
const OWNED_GOOSE_OPTIONS: &[(&str, &str)] = &[
    ("--host", "--host"),
    ("-H", "--host"),
    ("--users", "--users"),
    ("-u", "--users"),
    ("--increase-rate", "--spawn-rate"),
    ("-r", "--spawn-rate"),
    ("--run-time", "--duration"),
    ("-t", "--duration"),
    ("--test-plan", "--scenario and --duration"),
    ("--report-file", "--output"),
    ("--dashboard", "--web"),
    (
        "--no-reset-metrics",
        "(metrics are never reset with a test plan)",
    ),
];

/// Everything a run needs, resolved. It travels whole to the workers of a distributed
/// run (serialised), so a new option reaches them with no further edit; the user classes
/// do not travel: a worker selects its own with [`Plan::select`].
#[derive(Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The run's one id: in its account addresses (the users', the probes', a distributed
    /// run's workers' alike, since the plan travels to them) and in every output.
    pub run_id: String,
    #[serde(rename = "scenario")]
    pub preset_name: String,
    /// The checks the scenario's preset adds to every run's (none for `custom`).
    pub preset_checks: PresetChecks,
    pub users: usize,
    /// The spawn rate the run really has: the asked one, unless the duration cuts it short
    /// (see [`limits::effective_spawn_rate`]).
    pub spawn_rate: f64,
    /// The spawn rate that was asked, when the run has another one.
    #[serde(default)]
    pub asked_spawn_rate: Option<f64>,
    pub duration: Duration,
    pub filter: TagFilter,
    /// The classes this process runs (after the tag filter): not serialised.
    #[serde(skip)]
    pub selection: Selection,
    /// `--no-wait`: the classes run without waits between tasks.
    pub no_wait: bool,
    /// `None`: start the built-in reference server.
    pub host: Option<Url>,
    pub builtin_args: Vec<String>,
    /// The dashboard, with `--web`.
    pub web: Option<Web>,
    pub output: PathBuf,
    /// Write no report files (the verdict and summary still come).
    pub no_reports: bool,
    /// Also write Goose's own HTML and JSON reports.
    pub goose_report: bool,
    pub skip_preflight: bool,
    /// A distributed worker sends the tool's manager its figures so far with each report,
    /// for the manager's live metrics (`--metrics-bind` on the manager).
    #[serde(default)]
    pub send_snapshots: bool,
    /// `--abort-on-fail`'s rule, when it is on.
    pub abort: Option<AbortRule>,
    /// How long a stopping run may take to finish its requests and clean up.
    pub stop_timeout: Duration,
    /// What the user should know before the run starts (a spawn rate the duration cut short,
    /// users that will share one source address).
    pub warnings: Vec<String>,
    /// `--server-pid`: the local process whose memory is sampled.
    pub server_pid: Option<u32>,
    pub memory_url: Option<Url>,
    /// `--server-metrics-url`: the server's own metrics, scraped through the run (by the run
    /// on this machine: it does not travel to workers).
    #[serde(skip)]
    pub server_metrics: Option<crate::server_metrics::ServerMetricsPlan>,
    pub flow_options: FlowOptions,
    /// Run the security probes beside the attack.
    pub probes: bool,
    /// High-severity findings do not change the exit code.
    pub probes_report_only: bool,
    pub targets: Targets,
    pub goose_args: Vec<String>,
    /// The open model (`--rate`, `--rate-stages`): users take arrivals from a pool;
    /// `users` is then the pool's size.
    #[serde(default)]
    pub open: Option<open::OpenModel>,
}

/// The run's dashboard (`--web`): on a port checked free before any traffic, with a token
/// of its own for control.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Web {
    /// The port it listens on (a free one when `--web-port 0`).
    pub port: u16,
    /// The token the page sends with every control request (given in the printed address).
    pub token: String,
    /// How long the dashboard stays up after the run ends.
    pub linger: Duration,
    /// Where the dashboard's saved runs go: beside the run's other files.
    pub folder: PathBuf,
}

impl Web {
    /// The address to open, token included.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// Checks `port` is free on 127.0.0.1 (or picks a free one for 0).
    fn claim_port(port: u16) -> Result<u16, ConfigError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            ConfigError(format!(
                "--web-port {port}: the dashboard cannot listen on 127.0.0.1:{port} ({e}): \
                 choose another port, or 0 for a free one"
            ))
        })?;
        listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| ConfigError(format!("--web-port {port}: {e}")))
    }
}

/// When `--abort-on-fail` stops a run: a figure worse than `factor` times its target, once
/// `min_requests` requests were judged and `min_elapsed` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbortRule {
    pub factor: f64,
    pub min_requests: u64,
    pub min_elapsed: Duration,
}

impl Plan {
    /// Combines the preset with the flags; every mistake is a [`ConfigError`] naming the
    /// bad value and the valid ones.
    pub fn resolve(args: &RunArgs, classes: Vec<UserClass>) -> Result<Plan, ConfigError> {
        let preset_name = args.preset_name.trim().to_string();
        let preset = presets::find(&preset_name);
        if preset.is_none() && preset_name != presets::CUSTOM {
            return Err(ConfigError(format!(
                "unknown scenario '{preset_name}': valid scenarios are {} (see --list-scenarios)",
                presets::preset_names().join(", ")
            )));
        }
        let need = |what: &str| {
            ConfigError(format!(
                "the custom scenario needs {what}: for example --scenario custom --users 20 --spawn-rate 5 --duration 2m"
            ))
        };
        let open = open_model(args)?;
        if let (Some(_), Some(n)) = (&open, args.users) {
            return Err(ConfigError(format!(
                "--users {n} sets a closed model's users; an open model (--rate, --rate-stages) \
                 takes its users from a pool: give --max-users (and --pre-started-users) instead"
            )));
        }
        let users = match (args.users, preset, &open) {
            (_, _, Some(open)) => open.max_users,
            (Some(n), _, _) => n,
            (None, Some(p), _) => p.users,
            (None, None, _) => return Err(need("--users")),
        };
        if users == 0 {
            return Err(ConfigError::new("--users must be at least 1 (got 0)"));
        }
        let spawn_rate = match (args.spawn_rate, preset) {
            (Some(r), _) => r,
            // The pool is launched within a second or two; only the pre-started users
            // start working at once.
            (None, _) if open.is_some() => (users as f64 / 2.0).max(10.0),
            (None, Some(p)) => p.spawn_rate,
            (None, None) => users.min(10) as f64,
        };
        if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
            return Err(ConfigError(format!(
                "--spawn-rate must be a positive number of users per second (got {spawn_rate})"
            )));
        }
        let stages_duration = open
            .as_ref()
            .filter(|_| args.rate_stages.is_some())
            .map(|o| o.schedule.duration());
        if let (Some(_), Some(text)) = (stages_duration, &args.duration) {
            return Err(ConfigError(format!(
                "--duration {text} and --rate-stages both set the run's length: the stages' \
                 durations add up to it, so drop --duration"
            )));
        }
        let duration = match (stages_duration, &args.duration, preset) {
            (Some(stages), _, _) => stages,
            (None, Some(text), _) => parse_duration(text).map_err(ConfigError)?,
            (None, None, Some(p)) => p.duration,
            (None, None, None) => return Err(need("--duration")),
        };
        if duration < Duration::from_secs(1) {
            return Err(ConfigError::new(format!(
                "--duration must be at least 1s (got {})",
                HumanDuration(duration)
            )));
        }
        limits::check_duration(duration)?;
        // A constant rate lasts the run's duration.
        let open = open.map(|mut o| {
            if args.rate.is_some() {
                o.schedule = open::RateSchedule::constant(o.schedule.start_rate, duration);
            }
            o
        });
        let mut warnings = Vec::new();
        // The plan keeps the rate the run really has (every output records it), and the
        // asked one beside it; the note says why they differ. An open model launches its
        // pool before the arrivals begin: no duration cuts it short.
        let (effective_rate, note) = match open {
            Some(_) => (spawn_rate, None),
            None => limits::effective_spawn_rate(users, spawn_rate, duration),
        };
        warnings.extend(note);

        let filter = tag_filter(preset, args.tags.as_deref(), args.exclude_tags.as_deref());
        let selection = select(classes, &filter, args.no_wait)?;

        let host = args.host.as_deref().map(parse_host).transpose()?;
        let memory_url = args
            .memory_url
            .as_deref()
            .map(|u| {
                Url::parse(u).map_err(|e| {
                    ConfigError(format!(
                        "invalid --memory-url '{u}': {e} (use http://host:port/metrics)"
                    ))
                })
            })
            .transpose()?;
        let server_metrics = args
            .server_metrics_url
            .as_deref()
            .map(|url| {
                crate::server_metrics::ServerMetricsPlan::from_options(
                    url,
                    &args.server_metrics_interval,
                    &args.server_metric,
                    host.is_some(),
                )
                .map_err(ConfigError)
            })
            .transpose()?;
        if args.builtin_args.is_some() && host.is_some() {
            return Err(ConfigError::new(
                "--builtin-args configures the built-in server, which runs only without --host",
            ));
        }
        let builtin_args = args
            .builtin_args
            .as_deref()
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();

        let ws = WsOptions {
            token_in_query: !args.ws_token_in_header,
            hold: parse_duration(&args.ws_hold)
                .map_err(|e| ConfigError(format!("--ws-hold: {e}")))?,
            pace: Duration::from_millis(args.ws_pace_ms.max(1)),
            payload_bytes: args.ws_payload_bytes,
            reply_timeout: parse_duration(&args.ws_timeout)
                .map_err(|e| ConfigError(format!("--ws-timeout: {e}")))?,
            origin: args.ws_origin.clone(),
        };
        if ws.reply_timeout.is_zero() {
            return Err(ConfigError::new(
                "--ws-timeout must be more than 0s (for example 10s)",
            ));
        }
        let timeout = parse_duration(&args.request_timeout)
            .map_err(|e| ConfigError(format!("--request-timeout: {e}")))?;
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "--request-timeout must be more than 0s (for example 30s)",
            ));
        }
        let stop_timeout = parse_duration(&args.stop_timeout)
            .map_err(|e| ConfigError(format!("--stop-timeout: {e}")))?;
        let web_linger = args
            .web_linger
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| ConfigError(format!("--web-linger: {e}")))?
            .unwrap_or_default();
        let abort = if args.abort_on_fail {
            if !(args.abort_factor.is_finite() && args.abort_factor >= 1.0) {
                return Err(ConfigError(format!(
                    "--abort-factor must be 1 or more (got {})",
                    args.abort_factor
                )));
            }
            Some(AbortRule {
                factor: args.abort_factor,
                min_requests: args.abort_min_requests,
                min_elapsed: parse_duration(&args.abort_min_time)
                    .map_err(|e| ConfigError(format!("--abort-min-time: {e}")))?,
            })
        } else {
            None
        };
        let tls = TlsOptions {
            ca_cert: args.ca_cert.clone(),
            insecure: args.insecure,
        };
        if tls.ca_cert.is_some() && tls.insecure {
            return Err(ConfigError::new(
                "--ca-cert and --insecure contradict each other: give one",
            ));
        }
        // Per-user source addresses are IPv4 loopback addresses: only for a server reached
        // over IPv4 loopback.
        let loopback_sources = !args.no_loopback_sources
            && match &host {
                None => true,
                Some(url) => {
                    let ipv4 = reaches_over_ipv4_loopback(url);
                    if !ipv4 && is_loopback_host(url) {
                        warnings.push(format!(
                            "{url} is reached over IPv6 loopback, where users cannot each have \
                             their own source address: per-client rate limits will see all \
                             users as one client (--forwarded-for-pool N gives each its own \
                             X-Forwarded-For where the server trusts it)"
                        ));
                    }
                    ipv4
                }
            };
        limits::check_users(users, loopback_sources, None)?;
        let pool_max = crate::exchange::context::DOCUMENTATION_ADDRESSES;
        if let Some(pool) = args.forwarded_for_pool
            && u64::from(pool) > pool_max
        {
            return Err(ConfigError(format!(
                "--forwarded-for-pool {pool}: the pool holds 1 to {pool_max} addresses (the \
                 documentation ranges have no more)"
            )));
        }
        let flow_options = FlowOptions {
            keep_accounts: args.keep_accounts,
            forwarded_for_pool: args.forwarded_for_pool,
            loopback_sources,
            ws,
            timeout: Some(timeout),
            first_user_index: 0,
            source_offset: new_source_offset(),
            tls,
        };

        for word in &args.goose_args {
            let flag = word.split('=').next().unwrap_or(word);
            if let Some((_, ours)) = OWNED_GOOSE_OPTIONS.iter().find(|(g, _)| *g == flag) {
                return Err(ConfigError(format!(
                    "the Goose option '{flag}' after -- is set by this tool: use {ours} instead"
                )));
            }
        }
        goose::config::GooseConfiguration::parse_args_default(&args.goose_args).map_err(|e| {
            ConfigError(format!(
                "invalid Goose option after --: {}",
                goose_error_detail(&e)
            ))
        })?;

        let targets = args
            .targets
            .resolve()
            .map_err(|e| ConfigError(e.to_string()))?;
        targets
            .check_request_names(&selection.request_keys())
            .map_err(|e| ConfigError(e.to_string()))?;

        Ok(Plan {
            run_id: crate::exchange::context::new_run_id(),
            preset_checks: preset.map(|p| p.checks).unwrap_or_default(),
            preset_name,
            users,
            spawn_rate: effective_rate,
            asked_spawn_rate: (effective_rate != spawn_rate).then_some(spawn_rate),
            duration,
            filter,
            selection,
            no_wait: args.no_wait,
            host,
            builtin_args,
            web: if args.web {
                Some(Web {
                    port: Web::claim_port(args.web_port)?,
                    token: crate::exchange::context::new_run_id(),
                    linger: web_linger,
                    folder: args.output.join("dashboard"),
                })
            } else {
                None
            },
            output: args.output.clone(),
            no_reports: args.no_reports,
            goose_report: args.goose_report,
            send_snapshots: false,
            skip_preflight: args.skip_preflight,
            abort,
            stop_timeout,
            warnings,
            server_pid: args.server_pid,
            memory_url,
            server_metrics,
            flow_options,
            probes: !args.no_probes
                && (args.probes || args.probes_report_only || preset.is_some_and(|p| p.probes)),
            probes_report_only: args.probes_report_only,
            targets,
            goose_args: args.goose_args.clone(),
            open,
        })
    }

    /// Selects this process's own `classes` the way the plan's were (tag filter,
    /// `--no-wait`): what a worker does with the plan it received.
    pub fn select(&mut self, classes: Vec<UserClass>) -> Result<(), ConfigError> {
        self.selection = select(classes, &self.filter, self.no_wait)?;
        Ok(())
    }

    /// How long the users take to start at the spawn rate, within the run's duration.
    pub fn ramp(&self) -> Duration {
        let ramp = Duration::from_secs_f64(self.users as f64 / self.spawn_rate);
        match self.open {
            None => ramp.min(self.duration),
            Some(_) => ramp,
        }
    }

    /// The ramp Goose runs, in whole seconds: [`Plan::ramp`] rounded up, leaving at least
    /// one second of hold (0: every user at once).
    pub fn ramp_secs(&self) -> u64 {
        let total = self.goose_duration().as_secs().max(1);
        (self.ramp().as_secs_f64().ceil() as u64).min(total - 1)
    }

    /// The spawn rate as the outputs record it: `2.5/s`, and the asked one when the run has
    /// another (`2.5/s (asked 0.001/s)`).
    pub fn spawn_rate_text(&self) -> String {
        match self.asked_spawn_rate {
            Some(asked) => format!("{}/s (asked {asked}/s)", trim_rate(self.spawn_rate)),
            None => format!("{}/s", trim_rate(self.spawn_rate)),
        }
    }

    /// The context the run's users share against `host`, with an open model's pool of
    /// users when the plan has one.
    pub fn run_context(
        &self,
        host: &url::Url,
        ledger: Arc<crate::measure::Ledger>,
    ) -> Result<crate::exchange::context::RunContext, String> {
        let pool = self
            .open
            .as_ref()
            .map(|o| Arc::new(crate::exchange::arrivals::ArrivalPool::new(o.pre_started)));
        Ok(crate::exchange::context::RunContext::new(
            host.clone(),
            &self.run_id,
            self.flow_options.clone(),
            ledger,
        )?
        .with_arrivals(pool))
    }

    /// How long Goose's own plan lasts: the duration, or for an open-model run long enough
    /// for the launch, the pre-started users' start and every arrival (its dispatcher ends
    /// the run after the last one).
    pub fn goose_duration(&self) -> Duration {
        match &self.open {
            None => self.duration,
            Some(_) => self.ramp() + open::READY_WAIT + self.duration + Duration::from_secs(5),
        }
    }

    /// Goose's test plan: ramp at the spawn rate, hold until the duration, stop. Goose
    /// takes whole seconds and holds a zero-length step forever, so the ramp is rounded up
    /// and leaves at least one second of hold.
    pub fn test_plan(&self) -> String {
        let total = self.goose_duration().as_secs().max(1);
        let ramp = self.ramp_secs();
        format!(
            "{users},{ramp}s;{users},{hold}s;0,0s",
            users = self.users,
            hold = total - ramp
        )
    }

    /// What the run will do, as the console shows it before the traffic starts.
    pub fn describe(&self, host: &Url) -> String {
        let mut lines = Vec::new();
        let tags = if self.filter.include.is_empty() {
            "all".to_string()
        } else {
            self.filter.include.join(",")
        };
        lines.push(format!(
            "Scenario {}: {} users at {} for {} against {host} (tags: {tags}{})",
            self.preset_name,
            self.users,
            self.spawn_rate_text(),
            HumanDuration(self.duration),
            if self.filter.exclude.is_empty() {
                String::new()
            } else {
                format!(", excluding {}", self.filter.exclude.join(","))
            }
        ));
        lines.push(format!(
            "User classes: {}",
            self.selection.class_names().join(", ")
        ));
        lines.push(format!(
            "Run id: {} (in its account addresses and every output)",
            self.run_id
        ));
        if self.probes {
            lines.push(format!(
                "Security probes: on (their own accounts and clients, not in the figures); {}",
                if self.probes_report_only {
                    "report only: findings do not change the exit code"
                } else {
                    "a high-severity finding fails the run (exit 1) even when every target \
                     is met (--probes-report-only to report them only)"
                }
            ));
        }
        if !self.selection.skipped.is_empty() {
            lines.push(format!(
                "Not spawned (no task left after the tag filter): {}",
                self.selection.skipped.join(", ")
            ));
        }
        if self.flow_options.tls.insecure {
            lines.push(
                "TLS: --insecure: the server's certificate is NOT verified (any is accepted)"
                    .to_string(),
            );
        } else if let Some(ca) = &self.flow_options.tls.ca_cert {
            lines.push(format!(
                "TLS: trusting {} beside the system's CAs",
                ca.display()
            ));
        }
        for warning in &self.warnings {
            lines.push(format!("Note: {warning}"));
        }
        lines.join("\n")
    }

    /// What the validator needs to know about the run.
    pub fn facts(&self) -> RunFacts {
        use crate::user_classes::rate_limit;
        let names = self.selection.class_names();
        RunFacts {
            preset_name: self.preset_name.clone(),
            rate_limit_traffic: names.contains(&rate_limit::NAME),
            spike: self.preset_checks.recovery,
            endurance: self.preset_checks.degradation,
            limits_must_engage: self.preset_checks.limits_must_engage,
            ordinary_user_classes: names
                .iter()
                .filter(|n| **n != rate_limit::NAME)
                .map(|n| n.to_string())
                .collect(),
            rate_limit_user_classes: names
                .iter()
                .filter(|n| **n == rate_limit::NAME)
                .map(|n| n.to_string())
                .collect(),
            planned_secs: self.duration.as_secs_f64(),
            insecure_tls: self.flow_options.tls.insecure,
            injected_faults: injected_faults(&self.builtin_args),
        }
    }
}

/// The open model the options ask for (`--rate` or `--rate-stages`), with its pool; a
/// constant rate's duration is set once the run's is known.
fn open_model(args: &RunArgs) -> Result<Option<open::OpenModel>, ConfigError> {
    if args.start_rate.is_some() && args.rate_stages.is_none() {
        return Err(ConfigError::new(
            "--start-rate is where --rate-stages begin (or the capacity command's first \
             level): give --rate-stages too, or use --rate for a constant rate",
        ));
    }
    let schedule = match (&args.rate, &args.rate_stages) {
        (Some(rate), _) => {
            let rate = open::parse_rate("--rate", rate).map_err(ConfigError)?;
            if rate <= 0.0 {
                return Err(ConfigError::new(
                    "--rate must be above 0 arrivals a second (for example --rate 20)",
                ));
            }
            open::RateSchedule::constant(rate, Duration::ZERO)
        }
        (None, Some(stages)) => {
            let start = match &args.start_rate {
                Some(text) => open::parse_rate("--start-rate", text).map_err(ConfigError)?,
                None => 0.0,
            };
            open::RateSchedule::parse(start, stages).map_err(ConfigError)?
        }
        (None, None) => {
            for (given, name) in [
                (args.max_users.is_some(), "--max-users"),
                (args.pre_started_users.is_some(), "--pre-started-users"),
            ] {
                if given {
                    return Err(ConfigError(format!(
                        "{name} sizes an open model's pool: give --rate or --rate-stages too"
                    )));
                }
            }
            return Ok(None);
        }
    };
    let peak = schedule.peak();
    let max_users = args
        .max_users
        .unwrap_or_else(|| ((peak * 2.0).ceil() as usize).max(10));
    let pre_started = args
        .pre_started_users
        .unwrap_or_else(|| ((peak / 2.0).ceil() as usize).max(5))
        .min(max_users);
    if let Some(asked) = args.pre_started_users
        && asked > max_users
    {
        return Err(ConfigError(format!(
            "--pre-started-users {asked} is more than the pool's --max-users {max_users}: \
             raise --max-users or start fewer"
        )));
    }
    Ok(Some(open::OpenModel {
        schedule,
        spacing: args.arrivals,
        pre_started,
        max_users,
        share: None,
    }))
}

/// The `--fault-...` options of the built-in server's arguments, each with its value:
/// `--fault-error-rate 0.5`.
fn injected_faults(builtin_args: &[String]) -> Vec<String> {
    let mut faults = Vec::new();
    let mut words = builtin_args.iter().peekable();
    while let Some(word) = words.next() {
        if !word.starts_with("--fault-") {
            continue;
        }
        match words.peek() {
            Some(value) if !word.contains('=') && !value.starts_with("--") => {
                faults.push(format!("{word} {value}"));
                words.next();
            }
            _ => faults.push(word.clone()),
        }
    }
    faults
}

/// A rate for people: two decimals at most (2.5, 3.33); a rate below 0.01/s as it is.
fn trim_rate(rate: f64) -> String {
    if rate >= 0.01 {
        crate::verdict::trim_num((rate * 100.0).round() / 100.0)
    } else {
        rate.to_string()
    }
}

/// True when every address `url` names is an IPv4 loopback address: an IPv4 literal, or a
/// name (such as `localhost`) that resolves to IPv4 loopback addresses.
fn reaches_over_ipv4_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(_)) | None => false,
        Some(url::Host::Domain(name)) => {
            use std::net::ToSocketAddrs;
            let port = url.port_or_known_default().unwrap_or(80);
            let Ok(addresses) = (name, port).to_socket_addrs() else {
                return false;
            };
            let addresses: Vec<_> = addresses.collect();
            !addresses.is_empty()
                && addresses
                    .iter()
                    .any(|a| a.is_ipv4() && a.ip().is_loopback())
                && addresses.iter().all(|a| a.ip().is_loopback())
        }
    }
}

/// The tag filter of `--tags` and `--exclude-tags` (comma-separated): without `--tags`, the
/// preset's tags.
pub fn tag_filter(
    preset: Option<&presets::Preset>,
    tags: Option<&str>,
    exclude_tags: Option<&str>,
) -> TagFilter {
    let mut include = split_list(tags);
    if let (true, Some(p)) = (include.is_empty(), preset) {
        include = p.tags.iter().map(|t| t.to_string()).collect();
    }
    TagFilter {
        include,
        exclude: split_list(exclude_tags),
    }
}

/// The classes a run spawns: the tag filter applied, waits removed for `--no-wait`.
fn select(
    mut classes: Vec<UserClass>,
    filter: &TagFilter,
    no_wait: bool,
) -> Result<Selection, ConfigError> {
    filter.check_known(&classes).map_err(ConfigError)?;
    if no_wait {
        for class in &mut classes {
            class.wait = (Duration::ZERO, Duration::ZERO);
        }
    }
    let selection = Selection::new(classes, filter);
    if selection.classes.is_empty() {
        return Err(ConfigError::new(
            "the tag filter leaves no task to run: loosen --tags or --exclude-tags",
        ));
    }
    Ok(selection)
}

/// Goose's errors say "invalid option" at the top and what was wrong inside.
pub fn goose_error_detail(e: &goose::GooseError) -> String {
    match e {
        goose::GooseError::InvalidOption {
            option,
            value,
            detail,
        } => {
            format!("{option} = '{value}': {detail}")
        }
        other => other.to_string(),
    }
}

fn parse_host(text: &str) -> Result<Url, ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "invalid --host '{text}': {why} (use a base URL such as http://localhost:8000 or https://staging.example.com)"
        ))
    };
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn plan(args: &[&str]) -> Plan {
        let cli = Cli::try_parse_from(std::iter::once("lva-loadtest").chain(args.iter().copied()))
            .expect("options parse");
        Plan::resolve(&cli.run, crate::user_classes::builtin_classes()).expect("plan")
    }

    #[test]
    fn the_test_plan_always_holds_at_least_a_second() {
        // smoke: 10 users at 2/s ramp for 5s.
        assert_eq!(
            plan(&["--duration", "20s"]).test_plan(),
            "10,5s;10,15s;0,0s"
        );
        assert_eq!(plan(&["--duration", "5s"]).test_plan(), "10,4s;10,1s;0,0s");
        assert_eq!(plan(&["--duration", "3s"]).test_plan(), "10,2s;10,1s;0,0s");
    }

    #[test]
    fn the_plan_keeps_the_spawn_rate_it_runs_and_the_asked_one_beside_it() {
        let slow = plan(&["--spawn-rate", "0.001", "--duration", "5s"]);
        assert_eq!((slow.spawn_rate, slow.asked_spawn_rate), (2.5, Some(0.001)));
        assert_eq!(slow.spawn_rate_text(), "2.5/s (asked 0.001/s)");
        assert_eq!(slow.ramp_secs(), 4);
        let short = plan(&["--spawn-rate", "1", "--duration", "1s"]);
        assert_eq!((short.asked_spawn_rate, short.ramp_secs()), (Some(1.0), 0));
        let asked = plan(&["--duration", "20s"]);
        assert_eq!(
            (asked.spawn_rate_text(), asked.ramp_secs()),
            ("2/s".into(), 5)
        );
    }

    #[test]
    fn hosts_are_checked() {
        assert!(parse_host("http://127.0.0.1:8000").is_ok());
        for bad in ["localhost:8000", "ftp://x", "not a url", "http://"] {
            let err = parse_host(bad).expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn presets_and_flags_decide_whether_the_probes_run() {
        assert!(plan(&["--scenario", "smoke"]).probes);
        assert!(plan(&["--scenario", "auth-only"]).probes);
        assert!(!plan(&["--scenario", "load"]).probes);
        assert!(plan(&["--scenario", "load", "--probes"]).probes);
        assert!(!plan(&["--scenario", "smoke", "--no-probes"]).probes);
        let report_only = plan(&["--scenario", "stress", "--probes-report-only"]);
        assert!(report_only.probes && report_only.probes_report_only);
        assert!(!plan(&["--scenario", "smoke"]).probes_report_only);
        for clash in [
            ["--probes", "--no-probes"],
            ["--probes-report-only", "--no-probes"],
        ] {
            let words = std::iter::once("lva-loadtest").chain(clash);
            assert!(Cli::try_parse_from(words).is_err(), "{clash:?}");
        }
    }
}
