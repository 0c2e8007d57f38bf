//! The attack: the user classes run by Goose along the plan's test plan, watched once a
//! second (progress, samples, the abort rule), and what the ledger measured.

mod abort;
pub mod arrivals;
mod progress;
mod stop;

use crate::measure::{Ledger, MeasuredRun, MemorySource};
use crate::plan::{ConfigError, Plan, goose_error_detail};
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::metrics::GooseMetrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stop::Stop;
use url::Url;

/// How late the kernel may wake a thread of the run for a timer: users whose waits end
/// within this of each other wake together, one wake-up for all of them (Linux's default
/// is 50 µs, which wakes each user on its own). A wait of 1-3 s then lasts at most this
/// much longer; answers are not timers, and are read as soon as they come.
pub const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(5);

/// Lets the calling thread's timers wake it up to [`TIMER_SLACK`] late, so that the
/// kernel wakes it once for timers that end close together. Called on each thread of the
/// runtime as it starts.
pub fn coalesce_timers() {
    let nanos = TIMER_SLACK.as_nanos() as libc::c_ulong;
    // SAFETY: PR_SET_TIMERSLACK only sets a number of the calling thread; no memory is
    // passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, nanos, 0, 0, 0);
    }
}

/// Why a run could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the load test failed: {0}")]
    Goose(String),
}

/// What the attack produced.
pub struct AttackResult {
    pub measured: MeasuredRun,
    pub goose: Option<GooseMetrics>,
    pub goose_error: Option<String>,
    /// The users were not waited for (the stop timeout ran out, or a second signal): Goose
    /// wrote no report of its own.
    pub abandoned: bool,
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
    attack_with_ledger(plan, host, memory, report_files, ledger).await
}

/// [`attack`] recording into a ledger the caller holds too (a distributed worker reads its
/// live counters while the attack runs).
pub async fn attack_with_ledger(
    plan: &Plan,
    host: &Url,
    memory: Option<MemorySource>,
    report_files: &[PathBuf],
    ledger: Arc<Ledger>,
) -> Result<AttackResult, RunError> {
    attack_controlled(plan, host, memory, report_files, ledger, None).await
}

/// How something beside the attack steers an open-model run (the capacity search): the
/// arrival rate, set as the run goes, and the run's end, when `done` is notified (a planned
/// end, not an interruption).
#[derive(Clone, Default)]
pub struct Controls {
    pub rate: Arc<arrivals::LiveRate>,
    pub done: Arc<tokio::sync::Notify>,
}

/// [`attack_with_ledger`], steered by `controls` when given (see [`Controls`]).
pub async fn attack_controlled(
    plan: &Plan,
    host: &Url,
    memory: Option<MemorySource>,
    report_files: &[PathBuf],
    ledger: Arc<Ledger>,
    controls: Option<Controls>,
) -> Result<AttackResult, RunError> {
    // Goose's own figures are kept only where something shows them: its dashboard, its
    // reports, or Goose options given after `--` (thresholds, logs, report files).
    let goose_metrics =
        plan.web.is_some() || !report_files.is_empty() || !plan.goose_args.is_empty();
    let ctx = Arc::new(
        plan.run_context(host, ledger.clone())
            .map_err(RunError::Goose)?
            .with_goose_metrics(goose_metrics),
    );
    let scenarios = plan
        .selection
        .goose_scenarios(&ctx)
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
    config.no_metrics = !goose_metrics;
    // Goose's own start-up lines would bury the tool's; `-v` after `--` brings them back.
    if config.verbose == 0 {
        config.quiet = 1;
    }
    config.report_file = report_files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(web) = &plan.web {
        config.dashboard = true;
        config.dashboard_port = Some(web.port);
        config.dashboard_host = Some("127.0.0.1".into());
        config.dashboard_control = true;
        config.dashboard_auth_token = Some(web.token.clone());
        config.no_autostart = true;
        // The dashboard's saved runs go with the run's other files.
        config.output_dir = Some(web.folder.to_string_lossy().into_owned());
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

    if plan.web.is_some() {
        ledger.measure_from_first_user();
    }
    if let Some(rule) = &plan.abort {
        ledger.watch_abort(rule.min_requests, rule.min_elapsed);
    }
    let stop = Stop::new(ctx.clone(), plan.stop_timeout);
    let signals = stop::watch_signals(stop.clone())
        .map_err(|e| RunError::Goose(format!("cannot watch for stop signals: {e}")))?;
    let scraped_memory = matches!(memory, Some(MemorySource::Scraped));
    let sampler = memory.and_then(|source| source.sample_into(ledger.clone()));
    let scraper = plan
        .server_metrics
        .as_ref()
        .map(|s| s.start(host, ledger.clone(), scraped_memory));
    // An open-model run ends when its dispatcher has handed out its last arrival (or when
    // its controls say so); Goose's own plan only has to outlast that.
    let dispatcher = match (&plan.open, &ctx.arrivals) {
        (Some(open), Some(pool)) => {
            ledger.count_arrivals(
                match &controls {
                    Some(_) => "set by the capacity search".to_string(),
                    None => open.describe(),
                },
                open.max_users as u64,
            );
            let pace = match &controls {
                Some(c) => arrivals::Pace::Live(c.rate.clone()),
                None => arrivals::Pace::Schedule(open.schedule.clone()),
            };
            let wait = plan.ramp() + crate::plan::open::READY_WAIT;
            let over = Box::new({
                let stop = stop.clone();
                move || stop.arrivals_over()
            });
            Some(
                arrivals::start(open, pace, pool.clone(), ctx.clone(), over, wait)
                    .map_err(|e| RunError::Goose(format!("cannot start the arrivals: {e}")))?,
            )
        }
        _ => None,
    };
    let finisher = controls.map(|c| {
        let stop = stop.clone();
        tokio::spawn(async move {
            c.done.notified().await;
            stop.arrivals_over();
        })
    });
    let monitor = tokio::spawn(progress::monitor(
        ctx.clone(),
        stop.clone(),
        progress::Watch {
            duration: plan.goose_duration(),
            shows_left: plan.open.is_none(),
            abort: plan.abort.map(|rule| (rule, plan.targets.clone())),
            web: plan.web.is_some(),
            linger: plan.web.as_ref().map_or(Duration::ZERO, |w| w.linger),
        },
    ));
    let started = Instant::now();
    // Goose runs until its plan is over and its users have stopped; a run that cannot stop
    // within its stop timeout (or gets a second signal) is not waited for.
    let outcome = tokio::select! {
        outcome = goose.execute() => Some(outcome),
        _ = stop.wait_given_up() => None,
    };
    ctx.begin_stopping();
    ctx.ledger.mark_stop();
    monitor.abort();
    signals.abort();
    if let Some(finisher) = finisher {
        finisher.abort();
    }
    if let Some(dispatcher) = dispatcher {
        // It looks for the stop every 50 ms.
        let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }

    let (goose_metrics, goose_error) = match outcome {
        Some(Ok(metrics)) => (Some(metrics), None),
        Some(Err(e)) => (None, Some(format!("{e:?}"))),
        None => (None, None),
    };
    if !stop.completed() && ctx.ledger.interruption().is_none() {
        let why = match (&plan.web, ctx.ledger.first_user_secs()) {
            (Some(_), None) => "the dashboard's Quit, before Start",
            (Some(_), Some(_)) => "the dashboard's Quit",
            (None, _) if started.elapsed() + Duration::from_secs(1) < plan.duration => {
                "the run ended before its planned time"
            }
            (None, _) => "",
        };
        if !why.is_empty() {
            ctx.ledger.set_interruption(why);
        }
    }
    let interrupted = ctx.ledger.interruption().is_some();
    let measured = ctx.ledger.snapshot(&plan.preset_name, interrupted);
    progress::final_line(&measured);
    Ok(AttackResult {
        measured,
        goose: goose_metrics,
        goose_error,
        abandoned: stop.given_up(),
    })
}
