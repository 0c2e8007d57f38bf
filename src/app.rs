//! The tool's commands, from parsed options to an [`Exit`]: a load test (here, or as the
//! manager or a worker of a distributed run), `validate`, and the built-in server.

use crate::attack::{self, RunError};
use crate::cli::{CapacityArgs, Cli, Command, DistributedArgs, RunArgs, ValidateArgs};
use crate::conclude::{self, RunEnd};
use crate::distributed;
use crate::exit::Exit;
use crate::host::Host;
use crate::live_metrics::{Listener, LiveMetrics};
use crate::measure::Ledger;
use crate::plan::Plan;
use crate::presets;
use crate::probes;
use crate::report::{self, RunOutputs};
use crate::user_classes::{UserClass, builtin_classes};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Runs the command line `args` with `classes` (the built-in ones from [`builtin_classes`],
/// a program's own, or both) on a runtime of the tool's own, and returns its outcome: what a
/// program's plain `fn main` calls (see `examples/custom_user.rs`).
///
/// The whole run is polled from here, inside the library, so a program that calls this
/// compiles none of the run's async code itself (a binary that polled the run's future
/// would instantiate all of it again).
pub fn run(args: Vec<String>, classes: Vec<UserClass>) -> Exit {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(crate::attack::coalesce_timers)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return Exit::Config;
        }
    };
    // The command runs as a task on the runtime's workers, as the simulated users do: the
    // calling thread only waits for it, so nothing the run does wakes it (a future given to
    // `block_on` runs on the calling thread, and each of its wake-ups would cross threads).
    runtime.block_on(async {
        match tokio::spawn(main_with_classes(args, classes)).await {
            Ok(exit) => exit,
            // A panic stays a panic, as it was on the calling thread.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                errln!("error: the command's task was cancelled: {e}");
                Exit::Failed
            }
        }
    })
}

/// Parses the command line and runs the command with the built-in user classes, on the
/// caller's runtime.
pub async fn main_with_args(args: Vec<String>) -> Exit {
    main_with_classes(args, builtin_classes()).await
}

/// Like [`main_with_args`], with the user classes a program brings (the built-in ones from
/// [`builtin_classes`], its own, or both): the way to extend the load test without forking
/// it. The command line, presets, tag filter, targets and reports are the tool's own; see
/// `examples/custom_user.rs`.
pub async fn main_with_classes(args: Vec<String>, classes: Vec<UserClass>) -> Exit {
    let relay = crate::console::relay_stdout();
    let exit = run_command(args, classes).await;
    if let Some(relay) = relay {
        relay.finish();
    }
    exit
}

async fn run_command(args: Vec<String>, classes: Vec<UserClass>) -> Exit {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let exit = if e.use_stderr() {
                Exit::Config
            } else {
                Exit::Passed
            };
            let _ = e.print();
            return exit;
        }
    };
    match cli.command {
        Some(Command::Validate(args)) => validate_saved(&args),
        Some(Command::LocustClasses(args)) => {
            match distributed::declare::declare(&args, &classes) {
                Ok(json) => {
                    outln!("{json:#}");
                    Exit::Passed
                }
                Err(e) => Exit::config_error(e),
            }
        }
        Some(Command::Merge(args)) => distributed::collected::merge_folder(&args, classes),
        Some(Command::Capacity(args)) => capacity_search(&args, classes).await,
        None if cli.run.list_presets => {
            outln!("{}", presets::table().trim_end());
            Exit::Passed
        }
        None if cli.distributed.worker => {
            if !cli.run.goose_args.is_empty() {
                return Exit::config_error(format!(
                    "Goose options after -- ({}) do not apply to a worker: it runs its users \
                     itself, as its master orders (--request-log keeps every request)",
                    cli.run.goose_args.join(" ")
                ));
            }
            let tls = crate::transport::TlsOptions {
                ca_cert: cli.run.ca_cert.clone(),
                insecure: cli.run.insecure,
            };
            let metrics = match metrics_listener(&cli.run).await {
                Ok(metrics) => metrics,
                Err(e) => return Exit::config_error(e),
            };
            distributed::worker::run(&cli.distributed, tls, classes, metrics).await
        }
        None => load_test(&cli.run, &cli.distributed, classes).await,
    }
}

/// A share given as `10%` or `0.1`, in 0..1.
fn parse_share(option: &str, text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "{option} {text}: give a share between 0 and 1, as 10% or 0.1"
        )),
    }
}

/// The capacity search's settings, and the run options of the open-model run it drives.
pub fn capacity_plan(
    args: &CapacityArgs,
) -> Result<(crate::capacity::SearchSettings, RunArgs), String> {
    use crate::duration::parse_duration;
    use crate::plan::open::parse_rate;
    let run = &args.run;
    for (given, name) in [
        (run.rate.is_some(), "--rate"),
        (run.rate_stages.is_some(), "--rate-stages"),
        (run.duration.is_some(), "--duration"),
        (run.users.is_some(), "--users"),
        (run.web, "--web"),
        (run.abort_on_fail, "--abort-on-fail"),
        (run.probes || run.probes_report_only, "--probes"),
    ] {
        if given {
            return Err(format!(
                "{name} does not apply to the capacity search: it sets each level's rate and \
                 length itself (--start-rate, --max-rate, --level-duration, --warmup; the pool \
                 with --max-users)"
            ));
        }
    }
    let max_rate = parse_rate("--max-rate", &args.max_rate)?;
    let start_rate = match &run.start_rate {
        Some(text) => parse_rate("--start-rate", text)?,
        None => 5.0_f64.min(max_rate),
    };
    if !(max_rate > 0.0 && start_rate > 0.0 && start_rate <= max_rate) {
        return Err(format!(
            "--start-rate {} and --max-rate {}: both must be above 0, the start no higher \
             than the ceiling",
            crate::plan::open::trim(start_rate),
            crate::plan::open::trim(max_rate)
        ));
    }
    if !(args.step_factor.is_finite() && args.step_factor > 1.0) {
        return Err(format!(
            "--step-factor {}: each level must be more than the one before (give more than 1, \
             for example 2)",
            args.step_factor
        ));
    }
    let tolerance = parse_share("--tolerance", &args.tolerance)?;
    let level_duration =
        parse_duration(&args.level_duration).map_err(|e| format!("--level-duration: {e}"))?;
    let warmup = parse_duration(&args.warmup).map_err(|e| format!("--warmup: {e}"))?;
    if level_duration < Duration::from_secs(2) {
        return Err(format!(
            "--level-duration {}: a level needs at least 2s to be judged",
            args.level_duration
        ));
    }
    parse_share("--max-capacity-drop", &args.max_capacity_drop)?;
    let settings = crate::capacity::SearchSettings {
        start_rate,
        max_rate,
        step_factor: args.step_factor,
        tolerance,
        warmup,
        level_duration,
        targets: args.capacity_targets.clone(),
    };
    // Enough time for every level the search can take: the climb, the bisection, and the
    // confirmations; the search ends the run itself.
    let climb = (max_rate / start_rate).ln() / args.step_factor.ln();
    let bisect = (1.0 / tolerance).log2();
    let levels = climb.ceil() + bisect.ceil() + 6.0;
    let per_level = (warmup + level_duration).as_secs_f64() + 6.0;
    let mut run = run.clone();
    run.rate = Some(crate::plan::open::trim(start_rate));
    run.start_rate = None;
    run.duration = Some(format!("{}s", (levels * per_level).ceil() as u64));
    let max_users = *run
        .max_users
        .get_or_insert(((max_rate * 2.0).ceil() as usize).max(10));
    // A quarter of the pool starts before the first level: users started later for an
    // arrival start it late.
    run.pre_started_users
        .get_or_insert((max_users / 4).max(5).min(max_users));
    run.no_probes = true;
    Ok((settings, run))
}

/// `capacity`: the search, its one line, its outputs, and its exit code.
async fn capacity_search(args: &CapacityArgs, classes: Vec<UserClass>) -> Exit {
    let (settings, run) = match capacity_plan(args) {
        Ok(both) => both,
        Err(e) => return Exit::config_error(e),
    };
    let plan = match Plan::resolve(&run, classes) {
        Ok(plan) => plan,
        Err(e) => return Exit::config_error(e),
    };
    let baseline = match &plan.targets.baseline_file {
        Some(path) => match report::capacity::read_capacity_json(path) {
            Ok(base) => Some((path.display().to_string(), base)),
            Err(e) => return Exit::config_error(e),
        },
        None => None,
    };
    let max_drop = parse_share("--max-capacity-drop", &args.max_capacity_drop).unwrap_or(0.1);
    let base = format!(
        "capacity_{}_{}",
        plan.preset_name,
        chrono::Local::now().format("%Y%m%d_%H%M%S")
    );
    let outputs = match RunOutputs::prepare_named(&plan.output, &base) {
        Ok(outputs) => outputs,
        Err(e) => return Exit::config_error(format!("{e} (choose another --output)")),
    };
    let host = match Host::prepare(&plan).await {
        Ok(host) => host,
        Err(e) => return Exit::config_error(e),
    };
    outln!(
        "Capacity search of scenario {} against {}: from {}/s, x{} a level, up to {}/s, \
         tolerance {:.0}%; each level {} of warm-up and {} judged (targets: {}); pool of {} \
         users ({} pre-started)",
        plan.preset_name,
        host.url,
        crate::plan::open::trim(settings.start_rate),
        crate::plan::open::trim(settings.step_factor),
        crate::plan::open::trim(settings.max_rate),
        settings.tolerance * 100.0,
        crate::duration::HumanDuration(settings.warmup),
        crate::duration::HumanDuration(settings.level_duration),
        settings
            .targets
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", "),
        plan.users,
        plan.open.as_ref().map_or(0, |o| o.pre_started),
    );
    outln!("Run id: {}", plan.run_id);
    let searched = crate::capacity::drive::search(
        &plan,
        &host.url,
        host.memory.clone(),
        crate::capacity::Search::new(settings),
    )
    .await;
    host.release().await;
    let mut result = match searched {
        Ok(searched) => searched.result,
        Err(RunError::Config(e)) => return Exit::config_error(e),
        Err(e) => {
            errln!("error: {e}");
            return Exit::Failed;
        }
    };
    if let Some((file, base)) = &baseline {
        result.compare(file, base, max_drop);
    }
    let (written, failed) = report::capacity::write_capacity(&outputs, &result);
    outln!();
    outln!("{}", result.summary);
    if let Some(b) = &result.baseline {
        outln!(
            "against the baseline: {} ({})",
            if b.passed { "held" } else { "FAILED" },
            b.explanation
        );
    }
    outln!("\nReports:");
    for path in &written {
        outln!("  {}", path.display());
    }
    for why in &failed {
        errln!("warning: not written: {why}");
    }
    let exit = if result.passed() {
        Exit::Passed
    } else {
        Exit::Failed
    };
    outln!(
        "Result: {} (exit code {})",
        if result.passed() {
            "CAPACITY FOUND"
        } else {
            "NO CAPACITY TO STAND BY"
        },
        exit.code()
    );
    exit
}

fn validate_saved(args: &ValidateArgs) -> Exit {
    match conclude::rejudge(&args.file, &args.targets) {
        Ok((verdict, saved)) => {
            conclude::review(&args.file, args.output.as_deref(), &verdict, &saved)
        }
        Err(e) => Exit::config_error(e),
    }
}

/// A load test: plan, the server under test, attack (here, or by the workers of a
/// distributed run), verdict, outputs.
async fn load_test(args: &RunArgs, distributed: &DistributedArgs, classes: Vec<UserClass>) -> Exit {
    let mut plan = match Plan::resolve(args, classes.clone()) {
        Ok(plan) => plan,
        Err(e) => return Exit::config_error(e),
    };
    if let Err(e) = report::saved::load_baseline(&mut plan.targets) {
        return Exit::config_error(e);
    }
    if distributed.manager
        && let Err(e) = distributed::check_plan(&plan, distributed)
    {
        return Exit::config_error(e);
    }
    if distributed.manager && plan.server_metrics.is_some() {
        return Exit::config_error(
            "--server-metrics-url is scraped by a run on this machine; a distributed run's \
             manager does not scrape yet (run without --manager, or chart the server beside the \
             run in Prometheus)",
        );
    }
    let outputs = match RunOutputs::prepare(&plan.output, &plan.preset_name, chrono::Local::now()) {
        Ok(outputs) => outputs,
        Err(e) => return Exit::config_error(format!("{e} (choose another --output)")),
    };
    // Opened before any traffic, so that an address in use is a configuration error.
    let live = match LiveRun::open(args, distributed, &plan).await {
        Ok(live) => live,
        Err(e) => return Exit::config_error(e),
    };
    let host = match Host::prepare(&plan).await {
        Ok(host) => host,
        Err(e) => return Exit::config_error(e),
    };
    let exit = if distributed.manager {
        let setup = distributed::manager::Setup {
            plan: &plan,
            classes: &classes,
            host: &host.url,
            builtin_pid: host.builtin_pid(),
            memory: host.memory.clone(),
            outputs: &outputs,
            options: distributed,
            metrics: live.metrics.as_ref().map(|(m, linger)| (m, *linger)),
        };
        let exit = distributed::manager::run(setup).await;
        if let Some((metrics, linger)) = live.metrics {
            metrics.close(linger).await;
        }
        exit
    } else {
        test_host(&plan, &host, &outputs, live).await
    };
    host.release().await;
    exit
}

/// The run's ledger, and the live metrics endpoint serving it when `--metrics-bind` asks.
struct LiveRun {
    ledger: Arc<Ledger>,
    metrics: Option<(LiveMetrics, Duration)>,
}

impl LiveRun {
    async fn open(
        args: &RunArgs,
        distributed: &DistributedArgs,
        plan: &Plan,
    ) -> Result<LiveRun, String> {
        let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
        let Some((listener, linger)) = metrics_listener(args).await? else {
            return Ok(LiveRun {
                ledger,
                metrics: None,
            });
        };
        // A manager serves its workers' figures, merged; a single run its own ledger's.
        let metrics = if distributed.manager {
            LiveMetrics::serve_parts(listener, plan)
        } else {
            LiveMetrics::serve(listener, plan, ledger.clone())
        };
        Ok(LiveRun {
            ledger,
            metrics: Some((metrics, linger)),
        })
    }
}

/// The live metrics endpoint's address, taken before any traffic (`--metrics-bind`), and
/// how long the run's end waits for its last scrape (`--metrics-linger`).
async fn metrics_listener(args: &RunArgs) -> Result<Option<(Listener, Duration)>, String> {
    let Some(text) = &args.metrics_bind else {
        return Ok(None);
    };
    let address: std::net::SocketAddr = text.parse().map_err(|e| {
        format!("--metrics-bind {text}: {e}; give ADDR:PORT, for example 127.0.0.1:9464")
    })?;
    let linger = crate::duration::parse_duration(&args.metrics_linger)
        .map_err(|e| format!("--metrics-linger: {e}"))?;
    let listener = Listener::bind(address).await.map_err(|e| e.to_string())?;
    outln!(
        "Live metrics: {} (Prometheus text, until the final figures are scraped)",
        listener.url()
    );
    Ok(Some((listener, linger)))
}

/// A run on this machine against a ready host.
async fn test_host(plan: &Plan, host: &Host, outputs: &RunOutputs, live: LiveRun) -> Exit {
    outln!("{}", plan.describe(&host.url));
    if let Some(web) = &plan.web {
        outln!(
            "Web dashboard: {} (press Start there; the run ends after its {}, or with Stop)",
            web.address(),
            crate::duration::HumanDuration(plan.duration)
        );
    }

    // Goose's own reports, when asked for: written under a temporary name while the run
    // goes, renamed once complete.
    let goose_reports: Vec<PathBuf> = if plan.goose_report {
        vec![outputs.goose_html_path(), outputs.goose_json_path()]
    } else {
        Vec::new()
    };
    let partial: Vec<PathBuf> = goose_reports.iter().map(|p| partial(p)).collect();
    let probe_run =
        probes::BesideRun::start(plan.probes, &host.url, &plan.run_id, &plan.flow_options);
    let attacked = attack::attack_with_ledger(
        plan,
        &host.url,
        host.memory.clone(),
        &partial,
        live.ledger.clone(),
    )
    .await;
    let result = match attacked {
        Ok(result) => result,
        Err(e) => {
            if let Some((metrics, _)) = live.metrics {
                metrics.close(Duration::ZERO).await;
            }
            return match e {
                RunError::Config(e) => Exit::config_error(e),
                e => {
                    errln!("error: {e}");
                    Exit::Failed
                }
            };
        }
    };
    for (from, to) in partial.iter().zip(&goose_reports) {
        // Goose writes its reports only when it ends by itself: an abandoned run's are
        // incomplete, and no `.partial` file outlives the run.
        let moved = !result.abandoned && from.exists() && std::fs::rename(from, to).is_ok();
        if !moved && from.exists() {
            let _ = std::fs::remove_file(from);
        }
    }

    let probes = probe_run.report().await;
    let end = RunEnd {
        measured: result.measured,
        goose_error: result.goose_error,
        goose_reports,
        extra_checks: Vec::new(),
        extra: serde_json::Map::new(),
        probes,
    };
    if let Some((metrics, linger)) = &live.metrics {
        metrics.finish(&end.measured, *linger);
    }
    let exit = conclude::conclude(plan, &host.url, host.builtin.is_some(), outputs, end);
    if let Some((metrics, linger)) = live.metrics {
        metrics.close(linger).await;
    }
    exit
}

/// `x.html` → `x.partial.html`: Goose picks a report's format by its extension, so the
/// name it writes to while the run goes keeps it; renamed once complete.
fn partial(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.partial.{ext}"))
}
