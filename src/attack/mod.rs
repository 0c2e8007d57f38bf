//! The attack: the user classes run by Goose along the plan's test plan, watched once a
//! second (progress, samples, the abort rule), and what the ledger measured.

mod abort;
mod progress;

use crate::exchange::context::RunContext;
use crate::measure::{Ledger, MeasuredRun, MemorySource};
use crate::plan::{ConfigError, Plan, goose_error_detail};
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::metrics::GooseMetrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

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
    let ctx = Arc::new(
        RunContext::new(host.clone(), plan.flow_options.clone(), ledger.clone())
            .map_err(|e| RunError::Goose(e.to_string()))?,
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

    let sampler = memory.map(|source| source.sample_into(ledger.clone()));
    let monitor = tokio::spawn(progress::monitor(
        ctx.clone(),
        plan.duration,
        plan.abort_on_fail.then(|| plan.targets.clone()),
        plan.web,
    ));
    let started = Instant::now();
    let outcome = goose.execute().await;
    ctx.begin_stopping();
    monitor.abort();
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    progress::finish_line();

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
