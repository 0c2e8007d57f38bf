//! The tool's commands, from parsed options to an exit code: a load test, `validate`, and
//! the built-in server.

use crate::cli::{Cli, Command, RunArgs, ValidateArgs};
use crate::distributed::{self, DistributedArgs};
use crate::flows::{UserClass, builtin_classes};
use crate::measure::MeasuredRun;
use crate::plan::Plan;
use crate::presets::{self, HumanDuration};
use crate::probes;
use crate::report::{self, RunOutputs};
use crate::run::{self, BuiltinServer, MemorySource, RunError};
use crate::validate::{self, Check};
use clap::Parser;
use std::path::{Path, PathBuf};

/// Exit code when every target was met.
pub const EXIT_PASSED: i32 = 0;
/// Exit code when a target was missed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for a configuration error (bad options or targets, unreachable host).
pub const EXIT_CONFIG: i32 = 2;

/// Parses the command line and runs the command with the built-in user classes; returns
/// the process exit code.
pub async fn main_with_args(args: Vec<String>) -> i32 {
    main_with_classes(args, builtin_classes()).await
}

/// Like [`main_with_args`], with the user classes a program brings (the built-in ones from
/// [`builtin_classes`], its own, or both): the way to extend the load test without forking
/// it. The command line, presets, tag filter, targets and reports are the tool's own; see
/// `examples/custom_user.rs`.
///
/// The program must call this with its own command line, since the built-in reference
/// server is started by running the program itself with `serve-target`.
pub async fn main_with_classes(args: Vec<String>, classes: Vec<UserClass>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CONFIG
            } else {
                EXIT_PASSED
            };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Some(Command::ServeTarget(args)) => serve_target(args).await,
        Some(Command::Validate(args)) => validate_saved(&args),
        None if cli.run.list_scenarios => {
            print!("{}", presets::table());
            EXIT_PASSED
        }
        None if cli.distributed.worker => {
            distributed::worker::run(&cli.run, &cli.distributed).await
        }
        None => load_test(&cli.run, &cli.distributed, classes).await,
    }
}

async fn serve_target(args: crate::target::TargetArgs) -> i32 {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lva-target: {e}");
            return EXIT_CONFIG;
        }
    };
    match crate::target::serve_until_signal(config).await {
        Ok(()) => EXIT_PASSED,
        Err(e) => {
            eprintln!("lva-target: {e}");
            EXIT_CONFIG
        }
    }
}

fn validate_saved(args: &ValidateArgs) -> i32 {
    let result = validate::validate_saved(&args.file, &args.targets);
    match result {
        Ok((verdict, measured)) => {
            let mut out = std::io::stdout();
            let _ = report::print_summary(&mut out, &measured, &verdict);
            verdict.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_CONFIG
        }
    }
}

pub(crate) fn config_error(e: impl std::fmt::Display) -> i32 {
    eprintln!("error: {e}");
    EXIT_CONFIG
}

/// A load test: plan, built-in server or pre-flight, attack (here, or by the workers of a
/// distributed run), verdict, outputs.
async fn load_test(args: &RunArgs, distributed: &DistributedArgs, classes: Vec<UserClass>) -> i32 {
    let plan = match Plan::resolve(args, classes) {
        Ok(plan) => plan,
        Err(e) => return config_error(e),
    };
    if distributed.manager
        && let Err(e) = distributed::check_plan(&plan, distributed)
    {
        return config_error(e);
    }
    let outputs = match RunOutputs::prepare(&plan.output, &plan.scenario, chrono::Local::now()) {
        Ok(outputs) => outputs,
        Err(e) => return config_error(format!("{e} (choose another --output)")),
    };

    let builtin = match &plan.host {
        Some(_) => None,
        None => match BuiltinServer::start(&plan.builtin_args).await {
            Ok(server) => {
                println!(
                    "No --host given: testing the built-in reference server at {} (pid {}).",
                    server.url, server.pid
                );
                Some(server)
            }
            Err(e) => return config_error(e),
        },
    };
    let host = match (&plan.host, &builtin) {
        (Some(host), _) => host.clone(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => return config_error("no host to test"),
    };
    let builtin_pid = builtin.as_ref().map(|b| b.pid);
    let code = match prepare_host(&plan, &host, builtin_pid).await {
        Err(code) => code,
        Ok(memory) if distributed.manager => {
            let setup = distributed::manager::Setup {
                plan: &plan,
                args,
                host: &host,
                builtin_pid,
                memory,
                outputs: &outputs,
                options: distributed,
            };
            distributed::manager::run(setup).await
        }
        Ok(memory) => test_host(&plan, &host, builtin_pid, memory, &outputs).await,
    };
    if let Some(server) = builtin {
        server.stop().await;
    }
    code
}

/// The pre-flight check, and where the server's memory is read; `Err` is the exit code.
async fn prepare_host(
    plan: &Plan,
    host: &url::Url,
    builtin_pid: Option<u32>,
) -> Result<Option<MemorySource>, i32> {
    if !plan.skip_preflight
        && let Err(e) = run::preflight(host).await
    {
        return Err(config_error(e));
    }
    Ok(match (plan.target_pid, &plan.memory_url, builtin_pid) {
        (Some(pid), _, _) => Some(MemorySource::Pid(pid)),
        (None, Some(url), _) => Some(MemorySource::Metrics(url.clone())),
        (None, None, Some(pid)) => Some(MemorySource::Pid(pid)),
        (None, None, None) => None,
    })
}

async fn test_host(
    plan: &Plan,
    host: &url::Url,
    builtin_pid: Option<u32>,
    memory: Option<MemorySource>,
    outputs: &RunOutputs,
) -> i32 {
    print_plan(plan, host);
    if plan.web {
        println!(
            "Web dashboard: http://127.0.0.1:{}/ (start, watch, change users and stop the run there)",
            plan.web_port
        );
    }

    let html = outputs.html_path();
    let goose_json = outputs.goose_json_path();
    let partial = [partial(&html), partial(&goose_json)];
    let goose_reports: &[std::path::PathBuf] = if plan.no_reports { &[] } else { &partial };
    let probe_run = probes::BesideRun::start(plan.probes, host, &plan.flow_options);
    let result = match run::attack(plan, host, memory, goose_reports).await {
        Ok(result) => result,
        Err(RunError::Config(e)) => return config_error(e),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    for (from, to) in partial.iter().zip([&html, &goose_json]) {
        if from.exists()
            && let Err(e) = std::fs::rename(from, to)
        {
            eprintln!(
                "warning: could not move {} to {}: {e}",
                from.display(),
                to.display()
            );
        }
    }

    let probes = probe_run.report().await;
    let end = RunEnd {
        measured: result.measured,
        goose_error: result.goose_error,
        goose_reports: vec![html, goose_json],
        extra_checks: Vec::new(),
        extra: serde_json::Map::new(),
        probes,
    };
    conclude(plan, host, builtin_pid.is_some(), outputs, end)
}

/// What a run measured, and what its kind of run adds to the verdict and the reports.
pub(crate) struct RunEnd {
    pub measured: MeasuredRun,
    pub goose_error: Option<String>,
    /// Goose's own reports, listed with the others when they were written.
    pub goose_reports: Vec<PathBuf>,
    /// Checks added to the verdict (a distributed run's workers).
    pub extra_checks: Vec<Check>,
    /// Keys added to the metrics JSON's `extra`.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The security probes' report, when they ran.
    pub probes: Option<probes::ProbeReport>,
}

/// The end of every run, here or distributed: verdict, summary, reports, exit code.
pub(crate) fn conclude(
    plan: &Plan,
    host: &url::Url,
    builtin_server: bool,
    outputs: &RunOutputs,
    end: RunEnd,
) -> i32 {
    if let Some(e) = &end.goose_error {
        eprintln!("warning: Goose reported: {e}");
    }
    let facts = plan.facts();
    let mut verdict = validate::judge(&end.measured, &plan.targets, &facts);
    verdict.checks.extend(end.extra_checks);
    verdict.passed = verdict.checks.iter().all(|c| !c.failed());
    let mut out = std::io::stdout();
    let _ = report::print_summary(&mut out, &end.measured, &verdict);
    if let Some(r) = &end.probes {
        let _ = probes::print_report(&mut out, r, plan.probes_report_only);
    }
    let mut extra = serde_json::json!({
        "host": host.as_str(),
        "builtin_server": builtin_server,
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "duration_seconds": plan.duration.as_secs_f64(),
        "tags": plan.filter.include,
        "exclude_tags": plan.filter.exclude,
        "user_classes": plan.selection.class_names(),
        "skipped_user_classes": plan.selection.skipped,
        "goose_error": end.goose_error,
    });
    let exit_code = probes::exit_code(
        verdict.exit_code(),
        end.probes.as_ref(),
        plan.probes_report_only,
    );
    if plan.no_reports {
        return exit_code;
    }
    if let Some(map) = extra.as_object_mut() {
        map.extend(end.extra);
    }
    if let Some(r) = &end.probes {
        (extra["probes"], extra["findings"]) = r.json_parts();
    }
    let probe_suites = end
        .probes
        .iter()
        .map(|r| probes::junit_suite(r, plan.probes_report_only))
        .collect();
    match outputs.write_all(
        &end.measured,
        &verdict,
        &plan.targets,
        &facts,
        &extra,
        probe_suites,
    ) {
        Ok(mut files) => {
            if let Some(r) = &end.probes {
                let path = outputs.findings_md_path();
                let heading = format!(
                    "Scenario {} against {host} ({})",
                    plan.scenario, outputs.stem
                );
                if let Err(e) = probes::write_findings(r, &path, &heading, plan.probes_report_only)
                {
                    eprintln!("error: writing {} failed: {e}", path.display());
                    return EXIT_FAILED;
                }
                files.push(path);
            }
            println!("\nReports:");
            for file in files
                .iter()
                .chain(end.goose_reports.iter().filter(|p| p.exists()))
            {
                println!("  {}", file.display());
            }
        }
        Err(e) => {
            eprintln!("error: writing the reports failed: {e}");
            return EXIT_FAILED;
        }
    }
    exit_code
}

pub(crate) fn print_plan(plan: &Plan, host: &url::Url) {
    let tags = if plan.filter.include.is_empty() {
        "all".to_string()
    } else {
        plan.filter.include.join(",")
    };
    println!(
        "Scenario {}: {} users at {}/s for {} against {host} (tags: {tags}{})",
        plan.scenario,
        plan.users,
        plan.spawn_rate,
        HumanDuration(plan.duration),
        if plan.filter.exclude.is_empty() {
            String::new()
        } else {
            format!(", excluding {}", plan.filter.exclude.join(","))
        }
    );
    println!("User classes: {}", plan.selection.class_names().join(", "));
    if plan.probes {
        println!(
            "Security probes: on{} (their own accounts and clients, not in the figures)",
            if plan.probes_report_only {
                ", report only"
            } else {
                ""
            }
        );
    }
    if !plan.selection.skipped.is_empty() {
        println!(
            "Not spawned (no task left after the tag filter): {}",
            plan.selection.skipped.join(", ")
        );
    }
}

/// `x.html` → `x.partial.html`: Goose picks a report's format by its extension, so the
/// name it writes to while the run goes keeps it; renamed once complete.
fn partial(path: &Path) -> std::path::PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.partial.{ext}"))
}
