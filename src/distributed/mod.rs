//! Distributed runs: one manager and N workers, the same binary in two roles.
//!
//! The manager (`--manager`) holds the whole run's configuration: it resolves the plan
//! (starting the built-in server when there is no `--host`), waits for the workers, checks
//! that each runs the same build and task table ([`protocol::Fingerprint`]), splits users
//! and spawn rate between them ([`split`]), starts them together, shows their live totals,
//! and at the end merges their measurements exactly ([`crate::measure::merge`]) and judges and
//! reports the run as a single-machine run would. A worker (`--worker`) connects, takes its
//! share, runs it with the ordinary attack, reports progress every second and sends
//! everything it measured at the end. See `docs/DISTRIBUTED.md`.

pub mod manager;
pub mod protocol;
pub mod worker;

use crate::cli::DistributedArgs;
use crate::plan::{ConfigError, Plan};

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
    crate::duration::parse_duration(&options.worker_timeout)
        .map_err(|e| ConfigError(format!("--worker-timeout: {e}")))?;
    let workers = options.expect_workers as usize;
    if plan.users < workers {
        return Err(ConfigError(format!(
            "--users {} is fewer than --expect-workers {workers}: every worker needs at least one user",
            plan.users
        )));
    }
    if plan.web.is_some() {
        return Err(ConfigError::new(
            "--web is not available with --manager: Goose's dashboard shows one process; the manager's console shows the totals",
        ));
    }
    if plan.abort.is_some() {
        return Err(ConfigError::new(
            "--abort-on-fail is not available with --manager yet; Ctrl-C on the manager stops every worker",
        ));
    }
    if plan.goose_report {
        return Err(ConfigError::new(
            "--goose-report is not available with --manager: Goose's reports are per process; the manager writes the tool's own",
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
}
