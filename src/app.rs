//! The tool's commands, from parsed options to an [`Exit`]: a load test (here, or as the
//! manager or a worker of a distributed run), `validate`, and the built-in server.

use crate::attack::{self, RunError};
use crate::cli::{Cli, Command, DistributedArgs, RunArgs, ValidateArgs};
use crate::conclude::{self, RunEnd};
use crate::distributed;
use crate::exit::Exit;
use crate::host::Host;
use crate::plan::Plan;
use crate::presets;
use crate::probes;
use crate::report::{self, RunOutputs};
use crate::user_classes::{UserClass, builtin_classes};
use clap::Parser;
use std::path::{Path, PathBuf};

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
            distributed::worker::run(&cli.distributed, tls, classes).await
        }
        None => load_test(&cli.run, &cli.distributed, classes).await,
    }
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
    let outputs = match RunOutputs::prepare(&plan.output, &plan.preset_name, chrono::Local::now()) {
        Ok(outputs) => outputs,
        Err(e) => return Exit::config_error(format!("{e} (choose another --output)")),
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
        };
        distributed::manager::run(setup).await
    } else {
        test_host(&plan, &host, &outputs).await
    };
    host.release().await;
    exit
}

/// A run on this machine against a ready host.
async fn test_host(plan: &Plan, host: &Host, outputs: &RunOutputs) -> Exit {
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
    let result = match attack::attack(plan, &host.url, host.memory.clone(), &partial).await {
        Ok(result) => result,
        Err(RunError::Config(e)) => return Exit::config_error(e),
        Err(e) => {
            errln!("error: {e}");
            return Exit::Failed;
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
    conclude::conclude(plan, &host.url, host.builtin.is_some(), outputs, end)
}

/// `x.html` → `x.partial.html`: Goose picks a report's format by its extension, so the
/// name it writes to while the run goes keeps it; renamed once complete.
fn partial(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.partial.{ext}"))
}
