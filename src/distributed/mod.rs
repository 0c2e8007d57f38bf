//! Distributed runs: one manager and N workers, the same binary in two roles.
//!
//! The manager (`--manager`) holds the whole run's configuration: it resolves the plan
//! (starting the built-in server when there is no `--host`), waits for the workers, checks
//! that each runs the same build and task table ([`protocol::Fingerprint`]), splits users
//! and spawn rate between them ([`split`]), starts them together, shows their live totals,
//! and at the end merges their measurements exactly ([`merge::merge`]) and judges and
//! reports the run as a single-machine run would. A worker (`--worker`) connects, takes its
//! share, runs it with the ordinary attack, reports progress every second and sends
//! everything it measured at the end. See `docs/DISTRIBUTED.md`.

pub mod manager;
pub mod merge;
pub mod protocol;
pub mod worker;

use crate::plan::{ConfigError, Plan};
use clap::Args;
use std::net::SocketAddr;

/// The port the manager listens on by default (Goose's telnet and web ports are 5116 and
/// 5118; this one stays clear of both).
pub const DEFAULT_PORT: u16 = 5115;

/// The distributed-run options of the command line.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Distributed runs")]
pub struct DistributedArgs {
    /// Run as the manager of a distributed run: wait for the workers, give each its share
    /// of the users, merge their measurements, judge and report the run.
    #[arg(long, alias = "master", conflicts_with = "worker")]
    pub manager: bool,
    /// How many workers the manager waits for before the run starts.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "manager",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub expect_workers: u32,
    /// Where the manager listens for workers; port 0 picks a free one. Off loopback, anyone
    /// who can reach it can join the run: keep it on a private network.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5115",
        alias = "master-bind",
        requires = "manager"
    )]
    pub manager_bind: SocketAddr,
    /// Run as a worker: connect to the manager and run the share of users it gives.
    /// The run's options come from the manager.
    #[arg(long, conflicts_with_all = WORKER_REFUSES)]
    pub worker: bool,
    /// The manager's host name or address, for a worker.
    #[arg(
        long,
        value_name = "HOST",
        default_value = "127.0.0.1",
        alias = "master-host",
        requires = "worker"
    )]
    pub manager_host: String,
    /// The manager's port, for a worker.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT, alias = "master-port",
          requires = "worker")]
    pub manager_port: u16,
    /// Manager: how long to wait for the expected workers before giving up (exit code 2).
    /// Worker: how long to keep trying to reach the manager.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub worker_timeout: String,
    /// A run that lost a worker passes if every target is met (exit 0 instead of 1); the
    /// verdict still says it was degraded.
    #[arg(long, requires = "manager")]
    pub accept_degraded: bool,
    /// The worker's name in the manager's reports [default: host name and process id].
    #[arg(long, value_name = "NAME", requires = "worker")]
    pub worker_name: Option<String>,
}

/// The run's options, which a worker takes from the manager and refuses on its own command
/// line (the targets and `--output` are the manager's business and ignored by a worker).
const WORKER_REFUSES: [&str; 22] = [
    "scenario",
    "host",
    "users",
    "spawn_rate",
    "duration",
    "tags",
    "exclude_tags",
    "web",
    "builtin_args",
    "target_pid",
    "memory_url",
    "abort_on_fail",
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

/// One worker's part of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub users: usize,
    pub spawn_rate: f64,
    /// Its users are numbered from this + 1.
    pub first_user_index: u64,
}

/// Splits users and spawn rate between `workers`: the users differ by at most one between
/// workers and add up to `users`; each worker's rate is proportional to its users, so every
/// worker ramps up in the same time as the whole run would, and the rates add up to
/// `spawn_rate` (to floating-point rounding).
pub fn split(users: usize, spawn_rate: f64, workers: usize) -> Vec<Share> {
    let workers = workers.max(1);
    let mut shares = Vec::with_capacity(workers);
    let mut first = 0u64;
    for i in 0..workers {
        let n = users / workers + usize::from(i < users % workers);
        shares.push(Share {
            users: n,
            spawn_rate: spawn_rate * n as f64 / users.max(1) as f64,
            first_user_index: first,
        });
        first += n as u64;
    }
    shares
}

/// What a distributed run cannot do, refused before anything starts.
pub fn check_plan(plan: &Plan, options: &DistributedArgs) -> Result<(), ConfigError> {
    crate::presets::parse_duration(&options.worker_timeout)
        .map_err(|e| ConfigError(format!("--worker-timeout: {e}")))?;
    let workers = options.expect_workers as usize;
    if plan.users < workers {
        return Err(ConfigError(format!(
            "--users {} is fewer than --expect-workers {workers}: every worker needs at least one user",
            plan.users
        )));
    }
    if plan.web {
        return Err(ConfigError::new(
            "--web is not available with --manager: Goose's dashboard shows one process; the manager's console shows the totals",
        ));
    }
    if plan.abort_on_fail {
        return Err(ConfigError::new(
            "--abort-on-fail is not available with --manager yet; Ctrl-C on the manager stops every worker",
        ));
    }
    if !plan.goose_args.is_empty() {
        return Err(ConfigError(format!(
            "Goose options after -- ({}) apply to one process: give them on each worker's command line",
            plan.goose_args.join(" ")
        )));
    }
    if !options.manager_bind.ip().is_loopback() {
        eprintln!(
            "warning: the manager listens on {} (off loopback): whoever reaches it can join the run \
             and receive its orders; the channel carries no secrets but it controls load. Keep it \
             on a private network.",
            options.manager_bind
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use clap::error::ErrorKind;

    #[test]
    fn users_and_rates_add_up_exactly() {
        for (users, rate, workers) in [(10, 5.0, 3), (1000, 50.0, 3), (7, 0.7, 7), (5, 3.3, 2)] {
            let shares = split(users, rate, workers);
            assert_eq!(shares.len(), workers);
            assert_eq!(shares.iter().map(|s| s.users).sum::<usize>(), users);
            let most = shares.iter().map(|s| s.users).max().unwrap_or(0);
            let least = shares.iter().map(|s| s.users).min().unwrap_or(0);
            assert!(most - least <= 1, "{shares:?}");
            let total: f64 = shares.iter().map(|s| s.spawn_rate).sum();
            assert!((total - rate).abs() < 1e-9, "{total} vs {rate}");
            for s in &shares {
                // Every worker ramps in the same time as the whole run would.
                let ramp = s.users as f64 / s.spawn_rate;
                assert!((ramp - users as f64 / rate).abs() < 1e-6, "{shares:?}");
            }
            let firsts: Vec<u64> = shares.iter().map(|s| s.first_user_index).collect();
            let mut expected = 0;
            for (s, first) in shares.iter().zip(firsts) {
                assert_eq!(first, expected);
                expected += s.users as u64;
            }
        }
        let shares = split(10, 5.0, 3);
        assert_eq!(
            shares.iter().map(|s| s.users).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!(shares[0].spawn_rate, 2.0);
    }

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
