//! The end of every run, on one machine or many: the verdict, the probes' findings, the
//! console summary, the files, and the exit code. `validate` re-judges a saved run here too,
//! so a saved run gets the verdict it got when it ran.

use crate::exit::Exit;
use crate::measure::{MeasuredRun, RequestStats};
use crate::plan::Plan;
use crate::probes::ProbeReport;
use crate::report::saved::{SavedRunError, load_saved_run};
use crate::report::{self, RunOutputs};
use crate::verdict::{self, Check, TargetError, TargetOptions, Targets, Verdict};
use std::path::{Path, PathBuf};

/// What a run measured, and what its kind of run adds to the verdict and the reports.
pub struct RunEnd {
    pub measured: MeasuredRun,
    pub goose_error: Option<String>,
    /// Goose's own reports, listed with the others when they were written.
    pub goose_reports: Vec<PathBuf>,
    /// Checks added to the verdict (a distributed run's workers).
    pub extra_checks: Vec<Check>,
    /// Keys added to the metrics JSON's `extra`.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The security probes' report, when they ran.
    pub probes: Option<ProbeReport>,
}

/// The run's outcome once the probes are in: a high-severity finding turns a pass into a
/// failure unless the findings are reported only.
pub fn with_probes(verdict: Exit, report: Option<&ProbeReport>, report_only: bool) -> Exit {
    if report.is_some_and(ProbeReport::has_high) && !report_only {
        verdict.worst(Exit::Failed)
    } else {
        verdict
    }
}

/// Judges, prints and writes a run; returns how it ended. The last line printed names the
/// exit code returned, whatever happened on the way (a finding, a file that could not be
/// written).
pub fn conclude(
    plan: &Plan,
    host: &url::Url,
    builtin_server: bool,
    outputs: &RunOutputs,
    end: RunEnd,
) -> Exit {
    if let Some(e) = &end.goose_error {
        eprintln!("warning: Goose reported: {e}");
    }
    let facts = plan.facts();
    let mut verdict = verdict::judge(&end.measured, &plan.targets, &facts);
    verdict.checks.extend(end.extra_checks.iter().cloned());
    verdict.passed = verdict.checks.iter().all(|c| !c.failed());
    let mut out = std::io::stdout();
    let _ = report::print_summary(&mut out, &end.measured, &verdict);
    if let Some(r) = &end.probes {
        let _ = report::probes::print_report(&mut out, r, plan.probes_report_only);
    }
    let mut exit = with_probes(verdict.exit(), end.probes.as_ref(), plan.probes_report_only);
    let mut words = report::outcome_words(&verdict);
    if exit != verdict.exit() {
        words.push_str(", but a high-severity finding fails the run");
    }
    if !plan.no_reports {
        let written = write_outputs(plan, host, builtin_server, outputs, &end, &verdict);
        if let Err(e) = written {
            eprintln!("error: {e}");
            words.push_str("; the reports could not all be written");
            exit = exit.worst(Exit::Failed);
        }
    }
    let _ = report::print_result(&mut out, &words, exit, verdict.rate_limited);
    exit
}

/// Writes every output file of the run and lists them; the first failure names its file.
fn write_outputs(
    plan: &Plan,
    host: &url::Url,
    builtin_server: bool,
    outputs: &RunOutputs,
    end: &RunEnd,
    verdict: &Verdict,
) -> Result<(), report::ReportError> {
    let facts = plan.facts();
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
    if let Some(map) = extra.as_object_mut() {
        map.extend(end.extra.clone());
    }
    if let Some(r) = &end.probes {
        (extra["probes"], extra["findings"]) = r.json_parts();
    }
    let probe_suites = end
        .probes
        .iter()
        .map(|r| report::probes::junit_suite(r, plan.probes_report_only))
        .collect();
    let mut files = outputs.write_all(
        &end.measured,
        verdict,
        &plan.targets,
        &facts,
        &extra,
        probe_suites,
    )?;
    if let Some(r) = &end.probes {
        let path = outputs.findings_md_path();
        let heading = format!(
            "Scenario {} against {host} ({})",
            plan.scenario, outputs.stem
        );
        let text = report::probes::findings_markdown(r, &heading, plan.probes_report_only);
        report::write_atomic(&path, text.as_bytes()).map_err(|source| {
            report::ReportError::Write {
                path: path.clone(),
                source,
            }
        })?;
        files.push(path);
    }
    println!("\nReports:");
    for file in files
        .iter()
        .chain(end.goose_reports.iter().filter(|p| p.exists()))
    {
        println!("  {}", file.display());
    }
    Ok(())
}

/// Why a saved run could not be re-judged. Configuration errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RejudgeError {
    #[error(transparent)]
    Saved(#[from] SavedRunError),
    #[error(transparent)]
    Targets(#[from] TargetError),
}

/// `lva-loadtest validate FILE`: re-judges a saved run. The targets it was judged with (in
/// our metrics JSON) are the base, under the targets file and the command line; so with no
/// options the verdict is the run's own.
pub fn rejudge(
    path: &Path,
    options: &TargetOptions,
) -> Result<(Verdict, MeasuredRun), RejudgeError> {
    let saved = load_saved_run(path)?;
    let base = saved.targets.clone().unwrap_or_default();
    let mut targets = options.resolve_over(&base)?;
    report::saved::load_baseline(&mut targets)?;
    // Only rules given now must name requests of the run: the saved ones were checked
    // against the scenario at start-up, and one that saw no traffic is a skipped check.
    let fresh = Targets {
        rules: targets
            .rules
            .iter()
            .filter(|r| !base.rules.contains(r))
            .cloned()
            .collect(),
        ..Targets::default()
    };
    let known: Vec<String> = saved.run.requests.iter().map(RequestStats::key).collect();
    fresh.check_request_names(&known)?;
    let verdict = verdict::judge(&saved.run, &targets, &saved.facts);
    Ok((verdict, saved.run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Severity;
    use crate::probes::tests::report_with;
    use crate::report::json::tests::sample_run;
    use crate::verdict::testing::{row, run_of};
    use crate::verdict::{RunFacts, judge};

    #[test]
    fn only_high_findings_fail_a_passing_run_and_report_only_keeps_the_verdict() {
        let high = report_with(Severity::High);
        let medium = report_with(Severity::Medium);
        assert_eq!(with_probes(Exit::Passed, Some(&high), false), Exit::Failed);
        assert_eq!(with_probes(Exit::Passed, Some(&high), true), Exit::Passed);
        assert_eq!(
            with_probes(Exit::Passed, Some(&medium), false),
            Exit::Passed
        );
        assert_eq!(with_probes(Exit::Failed, Some(&medium), true), Exit::Failed);
        assert_eq!(with_probes(Exit::Passed, None, false), Exit::Passed);
    }
    #[test]
    fn a_saved_metrics_json_gives_the_same_verdict() {
        let run = sample_run();
        let options = TargetOptions {
            target: vec!["p95<100ms for POST /api/conversation".into()],
            count_429_as_failure: true,
            ..TargetOptions::default()
        };
        let t = options.resolve().expect("targets");
        let facts = RunFacts {
            scenario: "load".into(),
            endurance: true,
            ..RunFacts::default()
        };
        let v = judge(&run, &t, &facts);
        assert!(
            !v.passed,
            "the rule and the spike should fail: {:#?}",
            v.checks
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = RunOutputs::prepare(dir.path(), "load", chrono::Local::now()).expect("prepare");
        let files = out
            .write_all(&run, &v, &t, &facts, &serde_json::Value::Null, Vec::new())
            .expect("write");
        assert_eq!(files.len(), 4);
        let (again, measured) =
            rejudge(&out.metrics_json_path(), &TargetOptions::default()).expect("judge");
        assert_eq!(measured, run);
        assert_eq!(again, v);
        assert_eq!(again.exit_code(), 1);
        // Options given to validate still apply on top of the saved targets.
        let looser = TargetOptions {
            target: vec!["p95<1000ms for POST /api/conversation".into()],
            spike_min_errors: Some(100),
            ..TargetOptions::default()
        };
        let (relaxed, _) = rejudge(&out.metrics_json_path(), &looser).expect("judge");
        let unknown = TargetOptions {
            target: vec!["p95<1000ms for GET /nowhere".into()],
            ..TargetOptions::default()
        };
        assert!(matches!(
            rejudge(&out.metrics_json_path(), &unknown),
            Err(RejudgeError::Targets(TargetError::UnknownRequest { .. }))
        ));
        assert!(
            relaxed
                .check("p95 POST /api/conversation")
                .expect("rule")
                .passed
        );
        assert!(relaxed.rate_limited_counted_as_failures);
    }

    #[test]
    fn a_baseline_file_flags_a_regression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fast = run_of(
            10.0,
            vec![vec![row("GET", "/api/stats", 100, 100, 0, 0)]; 6],
        );
        let t = Targets::default();
        let facts = RunFacts::default();
        let out = RunOutputs::prepare(dir.path(), "load", chrono::Local::now()).expect("prepare");
        out.write_all(
            &fast,
            &judge(&fast, &t, &facts),
            &t,
            &facts,
            &serde_json::Value::Null,
            Vec::new(),
        )
        .expect("write");
        let mut with_baseline = TargetOptions {
            baseline: Some(out.metrics_json_path()),
            ..TargetOptions::default()
        }
        .resolve()
        .expect("targets");
        report::saved::load_baseline(&mut with_baseline).expect("baseline loads");
        let base = with_baseline.baseline.as_ref().expect("baseline summary");
        assert_eq!(base.total_requests, 600);
        let slow = run_of(
            10.0,
            vec![vec![row("GET", "/api/stats", 150, 100, 0, 0)]; 6],
        );
        let v = judge(&slow, &with_baseline, &facts);
        let c = v.check("regression p95").expect("regression check");
        assert!(c.failed(), "{c:?}");
        assert!(c.advice.is_some());
        assert!(judge(&fast, &with_baseline, &facts).passed);
        let missing = TargetOptions {
            baseline: Some(dir.path().join("nope.json")),
            ..TargetOptions::default()
        };
        let mut missing = missing.resolve().expect("targets");
        assert!(matches!(
            report::saved::load_baseline(&mut missing),
            Err(SavedRunError::Baseline(_))
        ));
    }
}
