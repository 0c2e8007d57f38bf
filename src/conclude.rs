//! The end of every run, on one machine or many: the verdict, the probes' findings, the
//! console summary, the files, and the exit code. `validate` re-judges a saved run here too,
//! so a saved run gets the verdict it got when it ran.

use crate::exit::Exit;
use crate::measure::{MeasuredRun, RequestStats};
use crate::plan::Plan;
use crate::probes::ProbeReport;
use crate::report::saved::{SavedRun, SavedRunError, load_saved_run};
use crate::report::{self, Provenance, ReportError, RunOutputs, RunReport, Written};
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
        errln!("warning: Goose reported: {e}");
    }
    let facts = plan.facts();
    let mut verdict = verdict::judge(&end.measured, &plan.targets, &facts);
    verdict.checks.extend(end.extra_checks);
    verdict.passed = verdict.checks.iter().all(|c| !c.failed());
    let mut exit = print_outcome(
        &end.measured,
        &verdict,
        end.probes.as_ref(),
        plan.probes_report_only,
    );
    let mut words = outcome_words(&verdict, exit);
    if !plan.no_reports {
        let mut extra = serde_json::json!({
            "host": host.as_str(),
            "builtin_server": builtin_server,
            "users": plan.users,
            "spawn_rate": plan.spawn_rate,
            "asked_spawn_rate": plan.asked_spawn_rate,
            "ramp_seconds": plan.ramp_secs(),
            "duration_seconds": plan.duration.as_secs_f64(),
            "tags": plan.filter.include,
            "exclude_tags": plan.filter.exclude,
            "user_classes": plan.selection.class_names(),
            "skipped_user_classes": plan.selection.skipped,
            "goose_error": end.goose_error,
        });
        if let Some(map) = extra.as_object_mut() {
            map.extend(end.extra);
        }
        let provenance = Provenance::of_plan(plan, host, builtin_server, std::env::args());
        let report = RunReport {
            run: &end.measured,
            verdict: &verdict,
            targets: &plan.targets,
            facts: &facts,
            provenance: &provenance,
            probes: end.probes.as_ref(),
            probes_report_only: plan.probes_report_only,
            exit,
            extra: &extra,
        };
        let existing_goose_reports: Vec<PathBuf> = end
            .goose_reports
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        let written = outputs.write_all(&report);
        if let Some(lost) = tell_written(written, &outputs.dir, existing_goose_reports, true) {
            words.push_str(&lost);
            exit = exit.worst(Exit::Failed);
        }
    }
    let _ = report::print_result(&mut std::io::stdout(), &words, exit, verdict.rate_limited);
    exit
}

/// The result line's words: the verdict's, and what else changed the exit code.
fn outcome_words(verdict: &Verdict, exit: Exit) -> String {
    let mut words = report::outcome_words(verdict);
    if exit != verdict.exit() {
        words.push_str(", but a high-severity finding fails the run");
    }
    words
}

/// Prints the summary and the probes' section; returns the run's outcome.
fn print_outcome(
    run: &MeasuredRun,
    verdict: &Verdict,
    probes: Option<&ProbeReport>,
    report_only: bool,
) -> Exit {
    let mut out = std::io::stdout();
    let _ = report::print_summary(&mut out, run, verdict);
    if let Some(r) = probes {
        let _ = report::probes::print_report(&mut out, r, report_only);
    }
    with_probes(verdict.exit(), probes, report_only)
}

/// Prints what writing the files came to: the files written, a folder created again, the
/// files lost and where the metrics JSON went instead, with the command that re-creates the
/// reports from it (for a run's own files: `validate`'s come from a saved file that stays).
/// Returns the result line's words when files were lost (the run then fails: CI must not
/// pass a run whose reports it cannot find).
fn tell_written(
    written: Result<Written, ReportError>,
    dir: &Path,
    more: Vec<PathBuf>,
    own_run: bool,
) -> Option<String> {
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            errln!("error: writing the reports failed: {e}");
            return Some("; the reports could not be written".to_string());
        }
    };
    if written.recreated {
        errln!(
            "warning: the output folder {} vanished during the run: created it again",
            dir.display()
        );
    }
    if !written.files.is_empty() || !more.is_empty() {
        outln!("\nReports:");
        for file in written.files.iter().chain(&more) {
            outln!("  {}", file.display());
        }
    }
    if written.lost.is_empty() {
        return None;
    }
    for (path, e) in &written.lost {
        errln!("error: cannot write {}: {e}", path.display());
    }
    let missing = written
        .lost
        .iter()
        .filter(|(path, _)| path.parent() == Some(dir))
        .count();
    let mut words = format!(
        "; {missing} of {} report files could not be written",
        written.files.len() + missing
    );
    match (&written.fallback, written.metrics_json()) {
        _ if !own_run => {}
        (Some(fallback), _) => {
            errln!(
                "The metrics JSON is saved at {} instead. Re-create the HTML report and the \
                 history CSV from it with:\n  lva-loadtest validate {} --output {}\n(without \
                 --output they go beside the file)",
                fallback.display(),
                fallback.display(),
                dir.display()
            );
            words.push_str(&format!(" (the metrics JSON is at {})", fallback.display()));
        }
        // `validate` makes these two again; the others are lost with nothing to redo them.
        (None, Some(metrics))
            if written.lost.iter().any(|(path, _)| {
                let name = path.to_string_lossy();
                name.ends_with(".html") || name.ends_with("_stats_history.csv")
            }) =>
        {
            errln!(
                "Re-create the HTML report and the history CSV from the metrics JSON with:\n  \
                 lva-loadtest validate {}",
                metrics.display()
            )
        }
        (None, Some(_)) => {}
        (None, None) => {
            words.push_str(" (the metrics JSON is lost: only this console holds the figures)")
        }
    }
    Some(words)
}

/// `lva-loadtest validate FILE`: the saved run re-judged ([`rejudge`]), printed, and its HTML
/// report and history CSV written into `output` (default: beside the file) under the file's
/// name plus `_validated`. The outcome counts the saved probes' findings as the run did.
pub fn review(path: &Path, output: Option<&Path>, verdict: &Verdict, saved: &SavedRun) -> Exit {
    if let Some(note) = saved.source.latency_note() {
        outln!("note: {note}");
    }
    let exit = print_outcome(
        &saved.run,
        verdict,
        saved.probes.as_ref(),
        saved.probes_report_only,
    );
    let dir = output
        .map(Path::to_path_buf)
        .or_else(|| path.parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let outputs = match RunOutputs::prepare_named(&dir, &format!("{}_validated", saved_stem(path)))
    {
        Ok(outputs) => outputs,
        Err(e) => return Exit::config_error(format!("{e} (choose another --output)")),
    };
    let provenance = saved.provenance.clone().unwrap_or_default();
    let targets = saved.targets.clone().unwrap_or_default();
    let report = RunReport {
        run: &saved.run,
        verdict,
        targets: &targets,
        facts: &saved.facts,
        provenance: &provenance,
        probes: saved.probes.as_ref(),
        probes_report_only: saved.probes_report_only,
        exit,
        extra: &serde_json::Value::Null,
    };
    let mut exit = exit;
    let mut words = outcome_words(verdict, exit);
    if let Some(lost) = tell_written(outputs.write_review(&report), &dir, Vec::new(), false) {
        words.push_str(&lost);
        exit = exit.worst(Exit::Failed);
    }
    let _ = report::print_result(&mut std::io::stdout(), &words, exit, verdict.rate_limited);
    exit
}

/// `x/load_test_smoke_20260101_120000_metrics.json` → `load_test_smoke_20260101_120000`.
fn saved_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ["_metrics.json", "_goose.json", ".json"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(&name)
        .to_string()
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
pub fn rejudge(path: &Path, options: &TargetOptions) -> Result<(Verdict, SavedRun), RejudgeError> {
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
    Ok((
        verdict,
        SavedRun {
            targets: Some(targets),
            ..saved
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Severity;
    use crate::probes::tests::report_with;
    use crate::report::json::tests::sample_run;
    use crate::verdict::testing::{row, run_of};
    use crate::verdict::{RunFacts, judge};

    /// A run's report with no probes and no provenance.
    fn report_of<'a>(
        run: &'a MeasuredRun,
        verdict: &'a Verdict,
        targets: &'a Targets,
        facts: &'a RunFacts,
    ) -> RunReport<'a> {
        static NO_PROVENANCE: std::sync::LazyLock<Provenance> =
            std::sync::LazyLock::new(Provenance::default);
        RunReport {
            run,
            verdict,
            targets,
            facts,
            provenance: &NO_PROVENANCE,
            probes: None,
            probes_report_only: false,
            exit: verdict.exit(),
            extra: &serde_json::Value::Null,
        }
    }

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
            preset_name: "load".into(),
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
        let written = out
            .write_all(&report_of(&run, &v, &t, &facts))
            .expect("write");
        assert_eq!((written.files.len(), written.lost.len()), (6, 0));
        let (again, saved) =
            rejudge(&out.metrics_json_path(), &TargetOptions::default()).expect("judge");
        assert_eq!(saved.run, run);
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
        out.write_all(&report_of(&fast, &judge(&fast, &t, &facts), &t, &facts))
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
