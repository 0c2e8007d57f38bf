//! The tool's commands, from parsed options to an exit code: a load test, `validate`, and
//! the built-in server.

use crate::cli::{Cli, Command, RunArgs, ValidateArgs};
use crate::flows::{UserClass, builtin_classes};
use crate::plan::Plan;
use crate::presets::{self, HumanDuration};
use crate::probes;
use crate::report::{self, RunOutputs};
use crate::run::{self, BuiltinServer, MemorySource, RunError};
use crate::validate;
use clap::Parser;
use std::path::Path;

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
        None => load_test(&cli.run, classes).await,
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

fn config_error(e: impl std::fmt::Display) -> i32 {
    eprintln!("error: {e}");
    EXIT_CONFIG
}

/// A load test: plan, built-in server or pre-flight, attack, verdict, outputs.
async fn load_test(args: &RunArgs, classes: Vec<UserClass>) -> i32 {
    let plan = match Plan::resolve(args, classes) {
        Ok(plan) => plan,
        Err(e) => return config_error(e),
    };
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
    let code = test_host(&plan, &host, builtin.as_ref().map(|b| b.pid), &outputs).await;
    if let Some(server) = builtin {
        server.stop().await;
    }
    code
}

async fn test_host(
    plan: &Plan,
    host: &url::Url,
    builtin_pid: Option<u32>,
    outputs: &RunOutputs,
) -> i32 {
    if !plan.skip_preflight
        && let Err(e) = run::preflight(host).await
    {
        return config_error(e);
    }
    let memory = match (plan.target_pid, &plan.memory_url, builtin_pid) {
        (Some(pid), _, _) => Some(MemorySource::Pid(pid)),
        (None, Some(url), _) => Some(MemorySource::Metrics(url.clone())),
        (None, None, Some(pid)) => Some(MemorySource::Pid(pid)),
        (None, None, None) => None,
    };
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
    // The probes go beside the attack, on their own accounts and clients.
    let probe_task = plan.probes.then(|| {
        let settings = probes::ProbeSettings::for_run(host.clone(), &plan.flow_options);
        tokio::spawn(probes::run(settings))
    });
    let result = match run::attack(plan, host, memory, goose_reports).await {
        Ok(result) => result,
        Err(RunError::Config(e)) => return config_error(e),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    if let Some(e) = &result.goose_error {
        eprintln!("warning: Goose reported: {e}");
    }
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

    let probe_report = match probe_task {
        Some(task) => task
            .await
            .inspect_err(|e| eprintln!("warning: the security probes failed: {e}"))
            .ok(),
        None => None,
    };

    let facts = plan.facts();
    let verdict = validate::judge(&result.measured, &plan.targets, &facts);
    let mut out = std::io::stdout();
    let _ = report::print_summary(&mut out, &result.measured, &verdict);
    if let Some(r) = &probe_report {
        let _ = probes::print_report(&mut out, r, plan.probes_report_only);
    }
    let mut extra = serde_json::json!({
        "host": host.as_str(),
        "builtin_server": builtin_pid.is_some(),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "duration_seconds": plan.duration.as_secs_f64(),
        "tags": plan.filter.include,
        "exclude_tags": plan.filter.exclude,
        "user_classes": plan.selection.class_names(),
        "skipped_user_classes": plan.selection.skipped,
        "goose_error": result.goose_error,
    });
    let exit_code = probes::exit_code(
        verdict.exit_code(),
        probe_report.as_ref(),
        plan.probes_report_only,
    );
    if plan.no_reports {
        return exit_code;
    }
    if let Some(r) = &probe_report {
        (extra["probes"], extra["findings"]) = r.json_parts();
    }
    match outputs.write_all(&result.measured, &verdict, &plan.targets, &facts, &extra) {
        Ok(mut files) => {
            if let Some(r) = &probe_report {
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
                .chain([&html, &goose_json].into_iter().filter(|p| p.exists()))
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

fn print_plan(plan: &Plan, host: &url::Url) {
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
