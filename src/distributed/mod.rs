//! Distributed runs on Locust's master/worker protocol (ZeroMQ, msgpack): the same
//! lva-loadtest workers join a stock Locust 2.x master (with `scripts/locust_master.py`) or
//! the tool's own manager, with the same flags.
//!
//! - [`worker`]: a worker, its users run by [`spawner`] as the master orders, its live
//!   figures in Locust's shape ([`locust_stats`]), its exact run delivered at the end
//!   ([`delivery`]);
//! - [`manager`]: the tool's master, which also merges the exact runs and concludes the
//!   run; [`dispatch`] spreads and ramps its users;
//! - for a Locust master: [`declare`] (`locust-classes`, the classes its locustfile
//!   declares), [`master_options`] (its options as the worker's plan) and [`collected`]
//!   (`merge`, the exact verdict of what it collected);
//! - shared: [`wire`] (the messages), [`link`] (the sockets), [`fingerprint`] (what a build
//!   would run) and [`roster`] (the end of a distributed run).
//!
//! See `docs/DISTRIBUTED.md`.

pub mod collected;
pub mod declare;
pub mod delivery;
pub mod dispatch;
pub mod fingerprint;
pub mod link;
pub mod locust_stats;
pub mod manager;
pub mod master_options;
pub mod roster;
pub mod spawner;
pub mod wire;
pub mod worker;

use crate::cli::DistributedArgs;
use crate::plan::{ConfigError, Plan};

/// What a distributed run cannot do, refused before anything starts.
pub fn check_plan(plan: &Plan, options: &DistributedArgs) -> Result<(), ConfigError> {
    crate::duration::parse_duration(&options.worker_timeout)
        .map_err(|e| ConfigError(format!("--worker-timeout: {e}")))?;
    let workers = options.expect_workers as usize;
    if plan.users < workers {
        let flag = if plan.open.is_some() {
            "--max-users"
        } else {
            "--users"
        };
        return Err(ConfigError(format!(
            "{flag} {} is fewer than --expect-workers {workers}: every worker needs at least one user",
            plan.users
        )));
    }
    if plan.web.is_some() {
        return Err(ConfigError::new(
            "--web is not available with --manager: the manager's console shows the totals; for a web UI, run the same workers under a Locust master (scripts/locust_master.py, see docs/DISTRIBUTED.md)",
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
        errln!(
            "warning: the manager listens on {} (off loopback): whoever reaches it can join the run \
             and receive its orders; the channel carries no secrets but it controls load. Keep it \
             on a private network.",
            options.manager_bind
        );
    }
    Ok(())
}
