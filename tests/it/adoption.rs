//! What adopters rely on: the CI workflow (valid YAML, every command it runs exists with
//! those flags), the GitLab snippet beside it, the custom user example, the JUnit file and
//! the example targets file.

use crate::support::commands::{BIN, Invocation, ROOT};
use clap::Parser;
use lva_loadtest::cli::Cli;
use lva_loadtest::plan::Plan;
use lva_loadtest::user_classes::builtin_classes;
use lva_loadtest::verdict::TargetOptions;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKFLOW: &str = "ci/github-actions/load-test.yml";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn workflow() -> Yaml {
    serde_yaml_ng::from_str(&read(WORKFLOW)).expect("the workflow is valid YAML")
}

fn steps<'a>(workflow: &'a Yaml, job: &str) -> &'a Vec<Yaml> {
    workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap_or_else(|| panic!("job {job} has no steps"))
}

fn str_of(v: &Yaml) -> &str {
    v.as_str().unwrap_or("")
}

/// The project commands of a job's `run:` steps, checked one by one.
fn job_invocations(workflow: &Yaml, job: &str) -> Vec<Invocation> {
    steps(workflow, job)
        .iter()
        .filter_map(|step| step["run"].as_str())
        .flat_map(|script| crate::support::commands::invocations(script).expect("shell parses"))
        .map(|(inv, _)| inv)
        .collect()
}

/// The value of `--flag` (or its short form) among `args`.
fn option<'a>(args: &'a [String], long: &str, short: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == long || a == short)?;
    args.get(i + 1).map(String::as_str)
}

#[test]
fn the_workflow_is_scheduled_cached_and_keeps_its_results() {
    let wf = workflow();
    assert!(
        wf["on"]["schedule"][0]["cron"].as_str().is_some(),
        "no nightly schedule"
    );
    assert!(
        wf["on"].get("workflow_dispatch").is_some(),
        "no manual dispatch"
    );
    for job in ["load-test", "smoke"] {
        let uses: Vec<&str> = steps(&wf, job).iter().map(|s| str_of(&s["uses"])).collect();
        for action in [
            "actions/checkout@",
            "dtolnay/rust-toolchain@",
            "Swatinem/rust-cache@",
        ] {
            assert!(
                uses.iter().any(|u| u.starts_with(action)),
                "{job} does not use {action}: {uses:?}"
            );
        }
    }

    // The load job: the load preset against a host, its output uploaded even on failure.
    let load = job_invocations(&wf, "load-test");
    let script_args = load
        .iter()
        .find_map(|inv| match inv {
            Invocation::Script(args) => Some(args.clone()),
            _ => None,
        })
        .expect("the load job runs scripts/run_load_tests.sh");
    assert_eq!(option(&script_args, "--scenario", "-s"), Some("load"));
    assert_eq!(
        option(&script_args, "--host", "-h"),
        Some("http://localhost:8000")
    );
    let output = option(&script_args, "--output", "-o").expect("an --output directory");
    let upload = steps(&wf, "load-test")
        .iter()
        .find(|s| str_of(&s["uses"]).starts_with("actions/upload-artifact@"))
        .expect("an upload step");
    assert_eq!(str_of(&upload["if"]), "always()");
    assert_eq!(
        str_of(&upload["with"]["path"]).trim_end_matches('/'),
        output.trim_end_matches('/'),
        "the artifact is not the directory the run writes"
    );
    let junit = steps(&wf, "load-test")
        .iter()
        .find(|s| !str_of(&s["with"]["report_paths"]).is_empty())
        .expect("a JUnit report step");
    assert_eq!(
        str_of(&junit["with"]["report_paths"]),
        format!("{}/*_junit.xml", output.trim_end_matches('/'))
    );
    // The stand-in application listens where the load test points.
    assert!(load.iter().any(|inv| matches!(inv,
        Invocation::Target(args) if option(args, "--bind", "--bind") == Some("127.0.0.1:8000"))));

    // The smoke job: the built-in server (no --host).
    let smoke = job_invocations(&wf, "smoke");
    let Some(Invocation::Tool(args)) = smoke.first() else {
        panic!("the smoke job runs no cargo run: {smoke:?}");
    };
    assert_eq!(option(args, "--scenario", "-s"), Some("smoke"));
    assert_eq!(option(args, "--host", "-h"), None);
}

#[test]
fn every_command_the_ci_files_run_exists_with_those_flags() {
    let wf = workflow();
    let mut checked = 0;
    for job in wf["jobs"].as_mapping().expect("jobs").keys() {
        for inv in job_invocations(&wf, str_of(job)) {
            crate::support::commands::check(&inv, &[])
                .unwrap_or_else(|e| panic!("{WORKFLOW}: {inv:?}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} commands found in {WORKFLOW}");

    // The GitLab CI snippet in ci/README.md.
    let readme = read("ci/README.md");
    let snippet = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block in ci/README.md");
    let gitlab: Yaml = serde_yaml_ng::from_str(snippet).expect("the GitLab snippet is YAML");
    let mut gitlab_checked = 0;
    for (name, job) in gitlab.as_mapping().expect("jobs") {
        for line in job["script"].as_sequence().into_iter().flatten() {
            for (inv, _) in
                crate::support::commands::invocations(str_of(line)).expect("shell parses")
            {
                crate::support::commands::check(&inv, &[])
                    .unwrap_or_else(|e| panic!("ci/README.md job {name:?}: {inv:?}: {e}"));
                gitlab_checked += 1;
            }
        }
    }
    assert!(gitlab_checked >= 4, "only {gitlab_checked} GitLab commands");
}

#[test]
fn the_command_check_refuses_what_the_tool_refuses() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for bad in [
        Invocation::Script(args(&["--scenaro", "load"])),
        Invocation::Script(args(&["--scenario", "lod"])),
        Invocation::Tool(args(&["--scenario", "load", "--outptu", "x"])),
        Invocation::Tool(args(&["--host", "localhost:8000"])),
        Invocation::Target(args(&["--bcrypt-cost", "99"])),
        Invocation::Example {
            name: "nope".into(),
            args: vec![],
        },
    ] {
        assert!(
            crate::support::commands::check(&bad, &[]).is_err(),
            "{bad:?} passed"
        );
    }
    // The script's own short options reach the tool as its long ones.
    assert_eq!(
        crate::support::commands::script_translation(&args(&[
            "-s", "load", "-h", "http://x", "-o", "out"
        ]))
        .expect("translated"),
        args(&[
            "--scenario",
            "load",
            "--host",
            "http://x",
            "--output",
            "out"
        ])
    );
}

#[test]
fn the_example_class_sits_beside_the_builtin_ones_under_the_tag_filter() {
    let mut classes = builtin_classes();
    classes.push(crate::custom_user::study_user());
    let plan_for = |tags: &str| {
        let cli = Cli::try_parse_from(["custom_user", "--tags", tags]).expect("options");
        Plan::resolve(&cli.run, classes.clone()).expect("plan")
    };
    assert_eq!(plan_for("study").selection.class_names(), ["StudyUser"]);
    assert_eq!(
        plan_for("search").selection.class_names(),
        ["AuthenticatedUser", "StudyUser"]
    );
    // A target on the example's own request is accepted, and refused without the class.
    let rule = "p95<800ms for POST /api/search [study]";
    let cli = Cli::try_parse_from(["custom_user", "--target", rule]).expect("options");
    assert!(Plan::resolve(&cli.run, classes.clone()).is_ok());
    assert!(Plan::resolve(&cli.run, builtin_classes()).is_err());
}

/// Runs `command` with a fresh `--output` directory, checks its exit code, and returns the
/// metrics JSON and the JUnit XML it wrote.
fn run_expecting(mut command: Command, code: i32) -> (Json, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = command
        .arg("--output")
        .arg(dir.path())
        .current_dir(ROOT)
        .output()
        .expect("run it");
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    outputs(dir.path())
}

/// The run's metrics JSON and the JUnit XML it wrote in `dir`.
fn outputs(dir: &Path) -> (Json, String) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let find = |suffix: &str| {
        files
            .iter()
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix} among {files:?}"))
    };
    let metrics = serde_json::from_str(
        &std::fs::read_to_string(find("_metrics.json")).expect("read metrics"),
    )
    .expect("metrics JSON");
    let junit = std::fs::read_to_string(find("_junit.xml")).expect("read junit");
    (metrics, junit)
}

/// The JUnit XML holds one test case per check of the verdict, failed and skipped alike.
fn assert_junit_matches_verdict(junit: &str, metrics: &Json) {
    let doc = roxmltree::Document::parse(junit).expect("the JUnit file is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suite = root
        .children()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    let preset_name = str_json(&metrics["test_summary"]["scenario"]);
    assert_eq!(
        suite.attribute("name").map(str::to_string),
        Some(format!("lva-loadtest {preset_name}"))
    );
    let checks = metrics["verdict"]["checks"].as_array().expect("checks");
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), checks.len(), "one test case per check");
    let count = |v: bool| v.to_string();
    let mut failures = 0;
    for (case, check) in cases.iter().zip(checks) {
        assert_eq!(case.attribute("name"), check["label"].as_str());
        let skipped = check["skipped"].as_bool() == Some(true);
        let failed = !skipped && check["passed"].as_bool() == Some(false);
        failures += usize::from(failed);
        let has = |tag: &str| case.children().any(|n| n.has_tag_name(tag));
        assert_eq!(count(has("failure")), count(failed), "{check}");
        assert_eq!(count(has("skipped")), count(skipped), "{check}");
    }
    assert_eq!(
        suite.attribute("failures"),
        Some(failures.to_string().as_str())
    );
}

#[test]
fn the_custom_user_example_runs_as_documented() {
    let bin =
        crate::support::commands::example_bin("custom_user").unwrap_or_else(|e| panic!("{e}"));
    // The command of examples/custom_user.rs's docs, shortened; no --host: the built-in
    // server, the `lva-target` program the example finds in its folder's parent.
    let mut command = Command::new(bin);
    command.args(["--tags", "study", "--duration", "4s"]);
    let (metrics, junit) = run_expecting(command, 0);
    assert_eq!(
        metrics["extra"]["user_classes"],
        serde_json::json!(["StudyUser"])
    );
    let rows = metrics["measured"]["requests"].as_array().expect("rows");
    let count_of = |key: &str| {
        rows.iter()
            .filter(|r| format!("{} {}", str_json(&r["method"]), str_json(&r["name"])) == key)
            .map(|r| r["successes"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    for key in ["POST /api/conversation [study]", "POST /api/search [study]"] {
        assert!(
            count_of(key) > 0,
            "no successful {key} in {:?}",
            rows.iter().map(|r| &r["name"]).collect::<Vec<_>>()
        );
    }
    assert_junit_matches_verdict(&junit, &metrics);
}

fn str_json(v: &Json) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn a_missed_target_is_a_junit_failure() {
    let mut command = Command::new(BIN);
    command.args([
        "--scenario",
        "custom",
        "--users",
        "3",
        "--spawn-rate",
        "3",
        "--duration",
        "4s",
        "--tags",
        "health,stats",
        "--builtin-args",
        "--fault-error-rate 0.5",
    ]);
    let (metrics, junit) = run_expecting(command, 1);
    assert_junit_matches_verdict(&junit, &metrics);
    assert!(junit.contains("<failure message=\"Error Rate: "), "{junit}");
}

#[test]
fn the_example_targets_file_loads_and_names_requests_that_exist() {
    let options = TargetOptions {
        targets_file: Some(Path::new(ROOT).join("docs/targets.example.toml")),
        ..TargetOptions::default()
    };
    let targets = options
        .resolve()
        .unwrap_or_else(|e| panic!("docs/targets.example.toml: {e}"));
    assert!(
        !targets.rules.is_empty(),
        "the example shows no per-request rule"
    );
    let cli = Cli::try_parse_from(["lva-loadtest"]).expect("options");
    let plan = Plan::resolve(&cli.run, builtin_classes()).expect("plan");
    targets
        .check_request_names(&plan.selection.request_keys())
        .unwrap_or_else(|e| panic!("docs/targets.example.toml: {e}"));
}
