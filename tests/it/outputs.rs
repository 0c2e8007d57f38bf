//! Every run's outputs are its own and survive: one run id in every output and account,
//! names no other run can take, a report folder that vanished mid-run, and the plan as it
//! really ran. The real binary against its built-in reference server, on 127.0.0.1.

use crate::support::process::Proc;
use crate::support::{Args, BIN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Starts the tool with its outputs under `output`.
fn tool(args: &Args, output: &Path) -> Proc {
    let mut command = Command::new(BIN);
    command.arg("--output").arg(output).args(args.words());
    Proc::launch("lva-loadtest", command)
}

/// Runs the tool to its end (at most 90 s): its exit code and its process, ended.
fn finished(args: &Args, output: &Path) -> (i32, Proc) {
    let mut run = tool(args, output);
    (run.wait(Duration::from_secs(90)), run)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_in(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn ending(dir: &Path, suffix: &str) -> PathBuf {
    files(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} among {:?}", files(dir)))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).expect("JSON")
}

/// The word after `label` on the console line that starts with it.
fn console_value(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no '{label}' line in\n{stdout}"))
        .to_string()
}

/// The users' accounts, the probes' accounts and every output carry one run id: the
/// account addresses read from the server's own database, kept with `--keep-accounts`.
#[test]
fn one_run_id_names_every_account_and_every_output() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("server.sqlite");
    let out = dir.path().join("reports");
    let args = Args::custom(3, 3, "6s")
        .exclude_tags("rate-limit")
        .with(&["--probes", "--keep-accounts"])
        .builtin(&format!("--db {}", db.display()));
    let (code, run) = finished(&args, &out);
    assert_eq!(code, 0, "{}", run.output());
    let stdout = run.stdout();
    let id = console_value(&stdout, "Run id: ");
    assert_eq!(id.len(), 8, "{}", run.output());

    let metrics = json(&ending(&out, "_metrics.json"));
    assert_eq!(metrics["provenance"]["run_id"], id.as_str());
    let junit = read(&ending(&out, "_junit.xml"));
    assert!(
        junit.contains(&format!("<property name=\"run_id\" value=\"{id}\"/>")),
        "{junit}"
    );
    assert!(read(&ending(&out, ".html")).contains(&format!("<dd>{id}</dd>")));
    assert!(read(&ending(&out, "_findings.md")).contains(&format!("run id {id}")));

    let emails = lva_target::account_emails(&db, "lt-").expect("the server's database");
    let probes = emails.iter().filter(|e| e.contains("-probe-")).count();
    assert!(
        probes > 0 && emails.len() > probes,
        "users' and probes' accounts: {emails:?}"
    );
    for email in &emails {
        assert!(
            email.starts_with(&format!("lt-{id}-")),
            "{email} (run {id})"
        );
    }
}

/// A few seconds of two users doing health checks.
fn short_run() -> Args {
    Args::custom(2, 2, "3s")
        .tags("health")
        .with(&["--no-probes"])
}

/// The files a run lists under "Reports:" on its console.
fn listed_reports(stdout: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Reports:"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  "))
        .map(PathBuf::from)
        .collect()
}

/// `load_test_custom_20260304_050607_2_metrics.json` → `20260304_050607`.
fn second_of(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.trim_start_matches("load_test_custom_")
        .chars()
        .take(15)
        .collect()
}

/// Sleeps until just after the start of the next second, so that two runs started now
/// name their files in the same second.
fn sleep_to_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(
        1000 - u64::from(now.subsec_millis()) + 20,
    ));
}

/// Parallel CI jobs sharing a reports folder: two runs started in the same second both
/// keep their files, under names the console prints; nothing of the names' claims is left.
#[test]
fn two_runs_started_in_the_same_second_keep_both_their_files() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("shared");
        sleep_to_next_second();
        let mut first = tool(&short_run(), &out);
        let mut second = tool(&short_run(), &out);
        let codes = (
            first.wait(Duration::from_secs(60)),
            second.wait(Duration::from_secs(60)),
        );
        let outputs = format!("{}\n{}", first.output(), second.output());
        assert_eq!(codes, (0, 0), "{outputs}");
        let (a, b) = (
            listed_reports(&first.stdout()),
            listed_reports(&second.stdout()),
        );
        assert_eq!((a.len(), b.len()), (6, 6), "{outputs}");
        if second_of(&a[0]) != second_of(&b[0]) {
            // They straddled a second: try again.
            continue;
        }
        assert!(
            a.iter().all(|p| !b.contains(p)),
            "{a:?} and {b:?}\n{outputs}"
        );
        let mut listed: Vec<PathBuf> = a.iter().chain(&b).cloned().collect();
        listed.sort();
        assert_eq!(files(&out), listed, "{outputs}");
        for (run, reports) in [(&first, &a), (&second, &b)] {
            let metrics = reports
                .iter()
                .find(|p| p.to_string_lossy().ends_with("_metrics.json"))
                .expect("a metrics JSON");
            let id = console_value(&run.stdout(), "Run id: ");
            assert_eq!(json(metrics)["provenance"]["run_id"], id.as_str());
        }
        return;
    }
    panic!("three tries never started two runs in the same second");
}

/// A run of a few seconds more, so that its folder can be taken away while it goes.
fn longer_run() -> Args {
    Args::custom(2, 2, "6s")
        .tags("health")
        .with(&["--no-probes"])
}

/// A run going (`longer_run`), its outputs in `reports` of a folder of its own and its
/// `TMPDIR` another.
struct Going {
    dir: tempfile::TempDir,
    out: PathBuf,
    tmp: tempfile::TempDir,
    run: Proc,
}

/// Starts `longer_run` and waits until it runs.
fn going() -> Going {
    let dir = tempfile::tempdir().expect("dir");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("reports");
    let mut command = Command::new(BIN);
    command
        .arg("--output")
        .arg(&out)
        .args(longer_run().words())
        .env("TMPDIR", tmp.path());
    let run = Proc::launch("lva-loadtest", command);
    run.wait_for_line("Run id: ", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    Going { dir, out, tmp, run }
}

/// The report folder removed during the run: the tool creates it again and writes every
/// file there, says so, and the exit code is the verdict's.
#[test]
fn a_report_folder_removed_mid_run_is_created_again_with_every_file() {
    let mut g = going();
    std::fs::remove_dir_all(&g.out).expect("remove the folder");
    assert_eq!(g.run.wait(Duration::from_secs(60)), 0, "{}", g.run.output());
    assert!(
        g.run
            .stderr()
            .contains("vanished during the run: created it again"),
        "{}",
        g.run.output()
    );
    let mut listed = listed_reports(&g.run.stdout());
    listed.sort();
    assert_eq!(listed.len(), 6, "{}", g.run.output());
    assert_eq!(files(&g.out), listed, "{}", g.run.output());
    assert!(files(g.tmp.path()).is_empty(), "{:?}", files(g.tmp.path()));
}

/// The report folder replaced by a file during the run: nothing can be written there, so
/// the metrics JSON goes to the temporary folder under the run's id, the console names it
/// with the `validate` command that re-creates the reports, and the run fails (its
/// reports are not where CI looks). That command then gives the run's own verdict.
#[test]
fn a_report_folder_that_cannot_be_made_again_leaves_the_metrics_json_in_the_temp_folder() {
    let Going {
        dir,
        out,
        tmp,
        mut run,
    } = going();
    std::fs::remove_dir_all(&out).expect("remove the folder");
    std::fs::write(&out, "not a folder").expect("a file in its place");
    assert_eq!(run.wait(Duration::from_secs(60)), 1, "{}", run.output());
    let id = console_value(&run.stdout(), "Run id: ");
    let saved = files(tmp.path());
    assert_eq!(saved.len(), 1, "{saved:?}\n{}", run.output());
    let fallback = &saved[0];
    let name = fallback.file_name().unwrap_or_default().to_string_lossy();
    assert!(
        name.starts_with("load_test_custom_") && name.ends_with(&format!("_run-{id}_metrics.json")),
        "{name}"
    );
    let err = run.stderr();
    let command = format!("lva-loadtest validate {}", fallback.display());
    assert!(err.contains(&command), "{}", run.output());
    assert!(
        run.stdout()
            .contains("ALL TARGETS MET; 6 of 6 report files could not be written"),
        "{}",
        run.output()
    );
    assert_eq!(json(fallback)["provenance"]["run_id"], id.as_str());

    let again = dir.path().join("again");
    let validated = Command::new(BIN)
        .arg("validate")
        .arg(fallback)
        .arg("--output")
        .arg(&again)
        .output()
        .expect("validate");
    assert_eq!(validated.status.code(), Some(0), "{validated:?}");
    assert!(
        files(&again)
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".html"))
    );
}

/// One file that cannot be written (a folder stands where the JUnit XML goes) loses no
/// other: the five others are written and listed, the lost one is named, and the run fails
/// (CI would miss its JUnit) with the reason on its result line.
#[test]
fn a_file_that_cannot_be_written_loses_no_other() {
    let mut g = going();
    // The run's name, from the claim it holds while it goes.
    let claim = files(&g.out)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".claim"))
        .unwrap_or_else(|| panic!("no claim in {:?}", files(&g.out)));
    let name = claim.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.trim_start_matches('.').trim_end_matches(".claim");
    let junit = g.out.join(format!("{stem}_junit.xml"));
    std::fs::create_dir(&junit).expect("a folder where the JUnit goes");
    std::fs::write(junit.join("inside"), "x").expect("keep it non-empty");
    assert_eq!(g.run.wait(Duration::from_secs(60)), 1, "{}", g.run.output());
    let listed = listed_reports(&g.run.stdout());
    assert_eq!(listed.len(), 5, "{}", g.run.output());
    assert!(listed.iter().all(|p| p.is_file()), "{listed:?}");
    assert!(!listed.contains(&junit), "{listed:?}");
    assert!(
        g.run
            .stderr()
            .contains(&format!("error: cannot write {}", junit.display())),
        "{}",
        g.run.output()
    );
    assert!(
        g.run
            .stdout()
            .contains("ALL TARGETS MET; 1 of 6 report files could not be written (exit code 1)"),
        "{}",
        g.run.output()
    );
    // Nothing `validate` could make again was lost: it is not offered.
    assert!(!g.run.stderr().contains("validate"), "{}", g.run.output());
    assert!(files(g.tmp.path()).is_empty(), "{:?}", files(g.tmp.path()));
}

/// The check of `id` in a metrics JSON's verdict.
fn check_of(metrics: &Value, id: &str) -> Value {
    metrics["verdict"]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no check {id} in {}", metrics["verdict"]))
}

/// A spawn rate the duration cuts short: every output records the rate and ramp the run
/// really had, and the asked rate beside them (a later `--baseline` must not compare
/// against a plan that never ran).
#[test]
fn the_saved_plan_records_the_spawn_rate_and_ramp_that_ran() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("reports");
    // 4 users in 3 s: they start within 2 s (a second of hold stays), at 2/s.
    let args = Args::preset("custom")
        .users(4)
        .duration("3s")
        .tags("health")
        .with(&["--spawn-rate", "0.001", "--no-probes"]);
    let (code, run) = finished(&args, &out);
    assert_eq!(code, 0, "{}", run.output());
    let ran = "2/s (asked 0.001/s)";
    assert!(
        run.stdout().contains(&format!("4 users at {ran} for 3s")),
        "{}",
        run.output()
    );
    let metrics = json(&ending(&out, "_metrics.json"));
    let plan = metrics["provenance"]["plan"].as_array().expect("plan");
    let line = |label: &str| {
        plan.iter()
            .find(|l| l[0] == label)
            .and_then(|l| l[1].as_str())
            .unwrap_or_else(|| panic!("no {label} in {plan:?}"))
            .to_string()
    };
    assert_eq!(line("Spawn rate"), ran);
    assert_eq!(line("Ramp"), "2s");
    assert_eq!(metrics["extra"]["spawn_rate"], 2.0);
    assert_eq!(metrics["extra"]["asked_spawn_rate"], 0.001);
    assert_eq!(metrics["extra"]["ramp_seconds"], 2);
    assert!(read(&ending(&out, ".html")).contains(ran));
    let junit = read(&ending(&out, "_junit.xml"));
    assert!(
        junit.contains(&format!("<property name=\"spawn_rate\" value=\"{ran}\"/>"))
            && junit.contains("<property name=\"ramp\" value=\"2s\"/>"),
        "{junit}"
    );
}

/// `--abort-on-fail` below its minimum says so while the run goes, and the verdict says
/// whether the rule was ever armed.
#[test]
fn an_abort_rule_says_while_the_run_goes_and_in_the_verdict_whether_it_was_armed() {
    let dir = tempfile::tempdir().expect("dir");
    let rule = |min_requests: &str| {
        Args::custom(2, 2, "6s").tags("health").with(&[
            "--no-probes",
            "--abort-on-fail",
            "--abort-min-time",
            "1s",
            "--abort-min-requests",
            min_requests,
        ])
    };
    let out = dir.path().join("never");
    let (_, run) = finished(&rule("1000000"), &out);
    assert!(
        run.stderr()
            .contains("abort rule inactive until 1000000 judged requests; "),
        "{}",
        run.output()
    );
    let check = check_of(&json(&ending(&out, "_metrics.json")), "abort_rule");
    assert_eq!(check["skipped"], true, "{check}");
    let actual = check["actual"].as_str().unwrap_or_default();
    assert!(
        actual.starts_with("NEVER ARMED: ") && actual.contains("--abort-min-requests 1000000"),
        "{check}"
    );
    assert!(
        run.stdout().contains("Abort Rule: NEVER ARMED"),
        "{}",
        run.stdout()
    );

    let out = dir.path().join("armed");
    let (code, run) = finished(&rule("1"), &out);
    assert_eq!(code, 0, "{}", run.output());
    assert!(
        run.stderr().contains("abort rule armed"),
        "{}",
        run.output()
    );
    let check = check_of(&json(&ending(&out, "_metrics.json")), "abort_rule");
    assert_eq!(check["passed"], true, "{check}");
    assert!(
        check["actual"]
            .as_str()
            .is_some_and(|a| a.starts_with("armed at ")),
        "{check}"
    );
}

/// A dashboard run stopped before its Start measured no time: its verdict says so, not
/// the time it waited as if it were part of the planned run.
#[test]
fn a_dashboard_run_stopped_before_start_says_no_user_started() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("reports");
    let mut run = tool(&short_run().with(&["--web", "--web-port", "0"]), &out);
    run.wait_for_line("Web dashboard: ", Duration::from_secs(60));
    // Longer than the planned 3 s.
    std::thread::sleep(Duration::from_secs(5));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(Duration::from_secs(60)), 1, "{}", run.output());
    let stdout = run.stdout();
    assert!(
        stdout.contains("INTERRUPTED before any user started (SIGTERM)"),
        "{stdout}"
    );
    assert!(!stdout.contains("INTERRUPTED at"), "{stdout}");
    let metrics = json(&ending(&out, "_metrics.json"));
    assert_eq!(
        metrics["measured"]["duration_secs"], 0.0,
        "{}",
        metrics["measured"]
    );
}
