//! The load tester end to end: the real binary against its built-in reference server on
//! 127.0.0.1, with short runs (seconds).

use crate::support::{Args, BIN, Run, run};
use lva_loadtest::user_classes::{Selection, TagFilter, builtin_classes};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn count(row: &Option<Value>, field: &str) -> u64 {
    row.as_ref().and_then(|r| r[field].as_u64()).unwrap_or(0)
}

// Its note on stderr is captured by the test harness and shown when the test fails.
#[allow(clippy::disallowed_macros)]
#[test]
fn smoke_runs_every_user_class_writes_the_reports_and_passes() {
    let r = run(&Args::preset("smoke").duration("20s"));
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("built-in reference server"),
        "{}",
        r.stdout
    );
    // Each check reads measure first, target apart; the last progress line counts the
    // summary's requests.
    for line in [
        "[PASS] Run Completed: ran to its end (target: runs its planned 20 s)",
        "[PASS] Users Started: 10 of 10 users started (target: every user starts)",
        "(target: below 500 ms)",
        "(target: at least 99.5%)",
    ] {
        assert!(r.stdout.contains(line), "no {line:?} in\n{}", r.stdout);
    }
    let total = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Total Requests:"))
        // The count, without the "(HTTP)" that follows it.
        .and_then(|n| n.split_whitespace().next().map(str::to_string))
        .expect("total requests");
    let done = r
        .stderr
        .lines()
        .find(|l| l.starts_with("[done "))
        .unwrap_or_else(|| panic!("no final progress line in\n{}", r.stderr));
    assert!(
        done.contains(&format!("| requests {total} |")),
        "{done} vs {total}"
    );
    for key in [
        "GET /health",
        "POST /api/auth/register",
        "POST /api/auth/login/json",
        "POST /api/conversation",
        "GET /api/stats",
        "POST /api/gdpr/export",
        "POST /api/auth/login/json [rate-limit-test]",
        "WS connect /ws/{session_id}",
        "WS end→summary",
        "WS close",
    ] {
        assert!(
            r.keys().contains(&key.to_string()),
            "{key} missing from {:?}",
            r.keys()
        );
    }
    // Every request the run measured is declared by some task or hook of the classes (so
    // targets can name it); the declared ones this run did not make are listed.
    let declared = Selection::new(builtin_classes(), &TagFilter::default()).request_keys();
    let measured_keys = r.keys();
    let undeclared: Vec<&String> = measured_keys
        .iter()
        .filter(|k| !declared.contains(k))
        .collect();
    assert!(
        undeclared.is_empty(),
        "measured but declared by no task: {undeclared:?}"
    );
    let unmeasured: Vec<&String> = declared
        .iter()
        .filter(|k| !measured_keys.contains(k))
        .collect();
    eprintln!("declared requests this smoke run did not make: {unmeasured:?}");
    for suffix in [
        ".html",
        "_stats.csv",
        "_stats_history.csv",
        "_failures.csv",
        "_metrics.json",
        "_junit.xml",
    ] {
        assert!(
            r.file_ending(suffix).is_some(),
            "no {suffix} among {:?}",
            r.files()
        );
    }
    // Goose's own reports only with --goose-report (tests/report.rs).
    assert!(
        !r.files().iter().any(|p| {
            let name = p.to_string_lossy();
            name.contains(".partial.") || name.contains("_goose.")
        }),
        "{:?}",
        r.files()
    );
    let measured = &r.metrics()["measured"];
    let created = measured["cleanup"]["accounts_created"]
        .as_u64()
        .unwrap_or(0);
    assert!(created >= 9, "accounts created: {created}");
    assert_eq!(
        measured["cleanup"]["deleted"].as_u64(),
        Some(created),
        "{measured}"
    );
    assert_eq!(measured["cleanup"]["failed"].as_u64(), Some(0));
    // The rate-limit user's logins to unknown accounts: 401 expected, never a failure.
    let rl = r.request("POST /api/auth/login/json [rate-limit-test]");
    assert_eq!(count(&rl, "failures"), 0, "{rl:?}");
}

#[test]
fn configuration_errors_exit_2_and_name_the_problem() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--scenario", "nope"],
            &["'nope'", "smoke", "rate-limit", "custom"],
        ),
        (&["--tags", "nope"], &["'nope'", "gdpr", "health"]),
        (&["--duration", "5x"], &["'5x'", "1m30s"]),
        (
            &["--host", "localhost:8000"],
            &["localhost:8000", "http://"],
        ),
        (&["--users", "0"], &["--users", "0"]),
        (&["--scenario", "custom"], &["custom", "--users"]),
        (
            &["--host", "http://127.0.0.1:1"],
            &["pre-flight", "127.0.0.1:1/health"],
        ),
        (&["--", "--users", "5"], &["--users"]),
        // Meaningless numbers: the valid range, never clap's tip to write `-- -5`.
        (&["--users", "-5"], &["--users", "'-5'", "1 or more"]),
        (
            &["--forwarded-for-pool", "0"],
            &["--forwarded-for-pool", "'0'", "1 or more"],
        ),
        (
            &["--forwarded-for-pool", "5000"],
            &["--forwarded-for-pool 5000", "1 to 762"],
        ),
        (&["--web-port", "-1"], &["--web-port", "0 to 65535"]),
        (&["--spawn-rate", "-2"], &["--spawn-rate", "positive", "-2"]),
        (&["--ws-pace-ms", "0"], &["--ws-pace-ms", "1 or more"]),
    ];
    for (args, needles) in cases {
        let r = run(&Args::default().with(args));
        assert_eq!(r.code, 2, "{args:?} exited {}: {}", r.code, r.stderr);
        assert!(!r.stderr.contains("tip:"), "{args:?}: {}", r.stderr);
        for needle in *needles {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: '{needle}' not in: {}",
                r.stderr
            );
        }
        assert!(
            r.file_ending("_metrics.json").is_none(),
            "{args:?} wrote a report"
        );
    }
}

#[test]
fn list_scenarios_prints_the_presets() {
    let r = run(&Args::default().with(&["--list-scenarios"]));
    assert_eq!(r.code, 0);
    for name in [
        "smoke",
        "load",
        "stress",
        "spike",
        "endurance",
        "auth-only",
        "gdpr-only",
        "rate-limit",
        "custom",
    ] {
        assert!(r.stdout.contains(name), "{name} missing:\n{}", r.stdout);
    }
}

#[test]
fn tags_narrow_the_run_and_classes_without_tasks_are_not_spawned() {
    let r = run(&Args::custom(4, 4, "6s").tags("health,stats"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Not spawned"), "{}", r.stdout);
    let keys = r.keys();
    let allowed = [
        "GET /health",
        "GET /api/stats",
        "POST /api/auth/register",
        "POST /api/auth/login/json",
        "POST /api/gdpr/delete",
        "POST /api/auth/logout",
    ];
    assert!(
        keys.iter().all(|k| allowed.contains(&k.as_str())),
        "{keys:?}"
    );
    assert!(keys.contains(&"GET /health".to_string()));

    let r = run(&Args::preset("gdpr-only")
        .users(2)
        .duration("4s")
        .exclude_tags("delete"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.keys()
            .iter()
            .all(|k| !k.contains("health") && !k.contains("conversation")),
        "{:?}",
        r.keys()
    );
}

#[test]
fn injected_server_errors_fail_the_run() {
    let r = run(&Args::preset("smoke")
        .duration("10s")
        .builtin("--fault-error-rate 0.3"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let failures: u64 = r.metrics()["measured"]["requests"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| row["failures"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    assert!(failures > 0);
    assert!(r.stdout.contains("[FAIL]"), "{}", r.stdout);
}

#[test]
fn rate_limit_preset_sees_429s_counted_apart() {
    let r = run(&Args::preset("rate-limit").users(4).duration("8s"));
    let login = r.request("POST /api/auth/login/json [rate-limit-test]");
    assert!(count(&login, "rate_limited") > 0, "{login:?}\n{}", r.stdout);
    assert_eq!(count(&login, "failures"), 0, "{login:?}");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let evidence = &r.metrics()["measured"]["rate_limit"];
    assert_eq!(
        evidence["responses_429"], evidence["with_retry_after"],
        "{evidence}"
    );
}

#[test]
fn short_token_lifetimes_are_refreshed_not_failed() {
    let r = run(&Args::preset("auth-only")
        .users(3)
        .spawn_rate(3)
        .duration("10s")
        .builtin("--access-token-ttl 3"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let auth = &r.metrics()["measured"]["auth"];
    assert!(auth["refreshed"].as_u64().unwrap_or(0) > 0, "{auth}");
    assert_eq!(auth["users_refused"], serde_json::json!({}), "{auth}");
}

#[test]
fn spike_starts_every_user_at_once() {
    let r = run(&Args::preset("spike")
        .users(40)
        .duration("6s")
        .tags("health"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let samples = r.metrics()["measured"]["users_over_time"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let first_full = samples
        .iter()
        .find(|s| s["users"].as_u64() == Some(40))
        .and_then(|s| s["t_secs"].as_f64());
    assert!(first_full.is_some_and(|t| t <= 3.0), "{samples:?}");
}

#[test]
fn the_runner_script_maps_its_flags_to_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run_load_tests.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args([
            "-s", "custom", "-u", "2", "-r", "2", "-d", "3s", "-t", "health", "-o",
        ])
        .arg(dir.path())
        .env("LVA_LOADTEST_BIN", BIN)
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Scenario custom: 2 users at 2/s for 3s"),
        "{stdout}"
    );
    assert!(stdout.contains("tags: health"), "{stdout}");
    let written = std::fs::read_dir(dir.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(written >= 4, "{written} files");

    let bad = Command::new("bash")
        .arg(&script)
        .arg("--bogus")
        .env("LVA_LOADTEST_BIN", BIN)
        .output()
        .expect("script");
    assert_eq!(bad.status.code(), Some(2));
    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .env("LVA_LOADTEST_BIN", BIN)
        .output()
        .expect("script");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--spawn-rate"));
}

#[test]
fn injected_latency_fails_p95_and_names_it() {
    let r = run(&Args::custom(3, 3, "5s")
        .tags("stats")
        .builtin("--fault-latency-ms 150")
        .with(&["--p95-ms", "100"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[FAIL] P95"), "{}", r.stdout);
    let p95 = r.metrics()["response_times"]["p95"].as_f64().unwrap_or(0.0);
    assert!(p95 >= 150.0, "p95 {p95}");
}

#[test]
fn a_per_request_target_is_judged_on_its_own() {
    let r = run(&Args::custom(2, 2, "4s")
        .tags("health,stats")
        .with(&["--target", "p95<0.001ms for GET /api/stats"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("GET /api/stats"), "{}", r.stdout);
    assert!(
        r.stdout.contains("[PASS] P95 Response Time"),
        "{}",
        r.stdout
    );
    let unknown = run(&Args::default().with(&["--target", "p95<10ms for GET /nowhere"]));
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("GET /health"), "{}", unknown.stderr);
}

#[test]
fn rate_limit_preset_fails_when_the_server_does_not_limit() {
    let r = run(&Args::preset("rate-limit")
        .users(4)
        .duration("5s")
        .builtin("--no-rate-limit"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[FAIL] Rate Limiting"), "{}", r.stdout);
}

#[test]
fn a_leaking_server_fails_memory_stability() {
    let r = run(&Args::custom(5, 5, "16s")
        .tags("stats")
        .builtin("--fault-leak-bytes 1000000")
        .with(&["--memory-warmup", "2s"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[FAIL] Memory Stability"), "{}", r.stdout);
}

#[test]
fn validate_gives_a_saved_run_the_same_verdict() {
    let r = run(&Args::custom(2, 2, "3s").tags("health"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let saved = r.file_ending("_metrics.json").expect("metrics");
    let again = Command::new(BIN)
        .arg("validate")
        .arg(&saved)
        .output()
        .expect("validate");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let stricter = Command::new(BIN)
        .arg("validate")
        .arg(&saved)
        .args(["--p95-ms", "0.001"])
        .output()
        .expect("validate");
    assert_eq!(stricter.status.code(), Some(1));
    let missing = Command::new(BIN)
        .args(["validate", "/nonexistent/metrics.json"])
        .output()
        .expect("validate");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn websocket_sessions_work_with_the_token_in_a_header() {
    let r = run(&Args::custom(2, 2, "6s")
        .tags("upgrade")
        .with(&["--ws-token-in-header"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let connect = r.request("WS connect /ws/{session_id}");
    assert!(
        count(&connect, "successes") > 0,
        "{connect:?}\n{}",
        r.stdout
    );
    let summary = r.request("WS end→summary");
    assert_eq!(
        count(&summary, "successes"),
        count(&connect, "successes"),
        "{summary:?}"
    );
    let closes = &r.metrics()["measured"]["websocket"]["closes_by_code"];
    assert!(closes["1000"].as_u64().unwrap_or(0) > 0, "{closes}");
}

#[test]
fn the_request_mix_follows_the_task_weights() {
    // Without waits each user runs its weighted task list over and over: health 10, stats 3.
    let r = run(&Args::custom(2, 2, "3s")
        .tags("health,stats")
        .with(&["--no-wait"]));
    let total = |key: &str| {
        let row = r.request(key);
        ["successes", "failures", "rate_limited", "expected_errors"]
            .iter()
            .map(|f| count(&row, f))
            .sum::<u64>()
    };
    let (health, stats) = (total("GET /health"), total("GET /api/stats"));
    assert!(
        stats > 30,
        "too few requests to compare: {stats}\n{}",
        r.stderr
    );
    let ratio = health as f64 / stats as f64;
    assert!(
        (ratio - 10.0 / 3.0).abs() < 0.35,
        "health {health} / stats {stats} = {ratio:.2}, want 3.33"
    );
}

#[test]
fn every_preset_applies_its_settings() {
    for (name, users, rate, tags) in [
        ("smoke", 10, "2", "all"),
        ("load", 100, "10", "all"),
        ("stress", 1000, "50", "all"),
        ("spike", 500, "500", "all"),
        ("endurance", 200, "10", "all"),
        ("auth-only", 50, "10", "authenticated"),
        ("gdpr-only", 20, "5", "gdpr"),
        ("rate-limit", 100, "100", "rate-limit"),
    ] {
        let r = run(&Args::preset(name).duration("2s").with(&["--no-reports"]));
        // A rate too slow to start every user in 2 s runs faster, the asked one beside it.
        let line = format!("Scenario {name}: {users} users at ");
        assert!(
            r.stdout.contains(&line)
                && (r.stdout.contains(&format!("{line}{rate}/s for 2s"))
                    || r.stdout.contains(&format!("(asked {rate}/s) for 2s"))),
            "{name}: no '{line}' in\n{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(
            r.stdout.contains(&format!("(tags: {tags})")),
            "{name}: {}",
            r.stdout
        );
        assert_ne!(r.code, 2, "{name}: {}", r.stderr);
    }
}

#[test]
fn goose_options_pass_through_after_the_double_dash() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("requests.json");
    let log_arg = log.to_string_lossy().into_owned();
    let r = run(&Args::custom(1, 1, "3s").tags("health").with(&[
        "--",
        "--request-log",
        &log_arg,
        "--request-format",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&log).expect("Goose wrote the request log");
    assert!(text.contains("/health"), "{text}");
}

// ------------------------------------------------------------------ security probes

fn context(r: &Run) -> String {
    format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr)
}

fn findings_md(r: &Run) -> String {
    let path = r
        .file_ending("_findings.md")
        .unwrap_or_else(|| panic!("no findings file\n{}", context(r)));
    std::fs::read_to_string(path).expect("read the findings")
}

/// The probes' suite in the run's JUnit file: (failures attribute, {probe: failed}).
fn probe_suite(r: &Run) -> (String, std::collections::BTreeMap<String, bool>) {
    let path = r
        .file_ending("_junit.xml")
        .unwrap_or_else(|| panic!("no JUnit file\n{}", context(r)));
    let xml = std::fs::read_to_string(path).expect("read the JUnit file");
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file is well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("security probes"))
        .unwrap_or_else(|| panic!("no probes suite in\n{xml}"));
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let failed = c.children().any(|f| f.has_tag_name("failure"));
            (c.attribute("name").unwrap_or_default().to_string(), failed)
        })
        .collect();
    (
        suite.attribute("failures").unwrap_or_default().to_string(),
        cases,
    )
}

/// Passwords and tokens of the probes (and of the users) never reach a file.
fn assert_no_secret_in(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        for needle in ["eyJ", "Pr0be-", "Wr0ng-"] {
            assert!(
                !text.contains(needle),
                "{needle} found in {}",
                path.display()
            );
        }
    }
}

/// A short smoke run with the probes: 6 s, since its ramp (10 users at 2 a second) takes
/// 5 s and a run no longer than its ramp leaves Goose a zero-second hold step, on which it
/// does not stop; without the rate-limit user, which needs longer to see its 429s.
fn short_smoke() -> Args {
    Args::preset("smoke")
        .duration("6s")
        .exclude_tags("rate-limit")
}

/// Every flaw of the built-in server is reported, and high findings fail the run; the
/// same run with `--probes-report-only` keeps the verdict's exit code.
#[test]
fn a_smoke_run_with_every_flaw_reports_each_and_exits_1() {
    let args = short_smoke().builtin("--flaws-all");
    let r = run(&args);
    assert_eq!(r.code, 1, "{}", context(&r));
    assert!(r.stdout.contains("ALL TARGETS MET"), "{}", context(&r));
    assert!(r.stdout.contains("SECURITY PROBES"), "{}", context(&r));
    assert!(
        r.stdout.contains("a high-severity finding fails the run"),
        "{}",
        context(&r)
    );
    let findings = r.metrics()["extra"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let probes: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f["probe"].as_str())
        .collect();
    // Readable exports, refresh as access, a WebSocket open to deleted accounts, and no
    // rate limit (which hides the trusted X-Forwarded-For: with no limit there is nothing
    // to walk around).
    for probe in ["ownership", "token-types", "deletion", "rate-limit-bypass"] {
        assert!(probes.contains(probe), "{probe} missing: {}", context(&r));
    }
    let md = findings_md(&r);
    for needle in [
        "[HIGH] ownership",
        "[HIGH] token-types",
        "[HIGH] deletion",
        "[MEDIUM] rate-limit-bypass",
    ] {
        assert!(md.contains(needle), "{needle} missing from\n{md}");
    }
    assert_no_secret_in(r.dir.path());
    // In the JUnit file the high findings fail their probes' cases; the medium one does
    // not fail the run, so its case passes (with the finding as its output).
    let (failures, cases) = probe_suite(&r);
    assert_eq!(failures, "3", "{cases:?}");
    assert_eq!(cases.get("ownership"), Some(&true), "{cases:?}");
    assert_eq!(cases.get("token-types"), Some(&true), "{cases:?}");
    assert_eq!(cases.get("deletion"), Some(&true), "{cases:?}");
    assert_eq!(cases.get("rate-limit-bypass"), Some(&false), "{cases:?}");

    let r = run(&args.with(&["--probes-report-only"]));
    assert_eq!(r.code, 0, "{}", context(&r));
    assert!(r.stdout.contains("reported only"), "{}", context(&r));
    assert_eq!(probe_suite(&r).0, "0", "report-only findings fail no case");
}

#[test]
fn a_clean_smoke_run_reports_no_findings() {
    let args = short_smoke();
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", context(&r));
    assert!(r.stdout.contains("Probes: 0 findings"), "{}", context(&r));
    assert!(!r.stdout.contains("NOT TESTED"), "{}", context(&r));
    let extra = &r.metrics()["extra"];
    assert_eq!(extra["findings"], serde_json::json!([]), "{}", context(&r));
    assert_eq!(extra["probes"].as_array().map(Vec::len), Some(7));
    assert!(findings_md(&r).contains("No findings."));
    assert_no_secret_in(r.dir.path());
    let (failures, cases) = probe_suite(&r);
    assert_eq!((failures.as_str(), cases.len()), ("0", 7), "{cases:?}");

    let r = run(&args.with(&["--no-probes"]));
    assert_eq!(r.code, 0, "{}", context(&r));
    assert!(!r.stdout.contains("SECURITY PROBES"), "{}", context(&r));
    assert!(r.file_ending("_findings.md").is_none());
}

// ------------------------------------------------------------------ a verdict that never lies

/// The JUnit file's failures count, and whether a case of that name failed.
fn junit_failed(r: &Run, case: &str) -> (u64, bool) {
    let path = r.file_ending("_junit.xml").expect("JUnit file");
    let xml = std::fs::read_to_string(path).expect("read");
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("suite");
    let failures = suite
        .attribute("failures")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let failed = doc.descendants().any(|n| {
        n.has_tag_name("testcase")
            && n.attribute("name").is_some_and(|name| name.contains(case))
            && n.children().any(|c| c.has_tag_name("failure"))
    });
    (failures, failed)
}

/// Users the server's rate limiter refused at registration fail the run, with the reason and
/// what to do.
#[test]
fn users_refused_at_their_start_fail_the_run() {
    let r = run(&Args::preset("gdpr-only")
        .users(5)
        .spawn_rate(5)
        .duration("5s")
        .builtin("--rate-limit-auth 2")
        .with(&["--no-loopback-sources"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("[FAIL] Users Started: "))
        .unwrap_or_else(|| panic!("no failing Users Started in\n{}", r.stdout));
    assert!(line.contains("GDPRTestUser users started"), "{line}");
    assert!(line.contains("registration refused (429) ×"), "{line}");
    assert!(r.stdout.contains("--forwarded-for-pool"), "{}", r.stdout);
    assert!(r.stdout.contains("(exit code 1)"), "{}", r.stdout);
    let (failures, failed) = junit_failed(&r, "Users Started");
    assert!(failures > 0 && failed);
}

/// Ordinary users throttled by the server fail the run, rate-limit traffic or not.
#[test]
fn throttled_ordinary_users_fail_every_run() {
    let r = run(&Args::custom(3, 3, "5s")
        .tags("health")
        .builtin("--rate-limit-health 30")
        .with(&["--no-loopback-sources", "--no-wait"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("[FAIL] Throttled Users: "),
        "{}",
        r.stdout
    );
}

/// Back-to-back runs against a server with a tight auth limit both start every user: each
/// run's users come from addresses of their own.
#[test]
fn back_to_back_runs_do_not_inherit_the_rate_limit_budget() {
    let mut server = std::process::Command::new(crate::support::server_bin())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--bcrypt-cost",
            "4",
            "--rate-limit-auth",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start lva-target");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("listening line");
    let host = first.trim().rsplit(' ').next().expect("url").to_string();
    for round in 1..=2 {
        let r = run(&Args::preset("gdpr-only")
            .users(3)
            .spawn_rate(3)
            .duration("4s")
            .with(&["--host", &host]));
        assert_eq!(r.code, 0, "run {round}:\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("[PASS] Users Started: 3 of 3 users started"),
            "run {round}:\n{}",
            r.stdout
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// The dashboard: a port already taken is a configuration error before any traffic; Quit
/// before Start fails the run for want of work.
#[test]
fn the_dashboard_never_passes_a_run_that_did_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let r = run(&Args::custom(2, 2, "5s").with(&["--web", "--web-port", &port]));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("--web-port {port}")),
        "{}",
        r.stderr
    );
    drop(taken);

    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(BIN)
        .arg("--output")
        .arg(dir.path())
        .args(
            Args::custom(2, 2, "5s")
                .with(&["--web", "--web-port", "0", "--no-probes"])
                .words(),
        )
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    // Killed if the test fails before it ends: a dashboard run waits for Start.
    let mut child = crate::support::browser::Reaped(child);
    let mut url = String::new();
    while !url.contains("Web dashboard: ") {
        url.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut url).expect("read");
        assert!(n > 0, "no dashboard address");
    }
    let address = url
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address");
    let (base, token) = address.split_once("/?token=").expect("token");
    let authority = base.trim_start_matches("http://");
    // The address is printed before the dashboard is up: try for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut stream = loop {
        match std::net::TcpStream::connect(authority) {
            Ok(stream) => break stream,
            Err(e) if std::time::Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    std::io::Write::write_all(
        &mut stream,
        format!(
            "POST /api/v1/control/quit HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer \
             {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("quit");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    let status = child.0.wait().expect("exit");
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.contains("[FAIL] Work Done: 0 judged HTTP requests"),
        "{rest}"
    );
    assert!(rest.contains("before Start"), "{rest}");
}

/// The user's `--builtin-args` override the tool's own settings of the built-in server
/// (it takes each option once: both given, it would refuse to start).
#[test]
fn the_users_builtin_args_override_the_tools_defaults() {
    let r = run(&Args::custom(2, 2, "3s")
        .tags("health")
        .builtin("--bcrypt-cost 5 --bind=127.0.0.1:0")
        .with(&["--no-probes"]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("multiple times"), "{}", r.stderr);
}

/// `--abort-on-fail` with every answer slower than twice the P95 target stops a 20 s run
/// early, and the run says why; its rule is the one given. (A latency fault, not an error
/// rate: injected 500s also refuse users at registration, and a run whose every user was
/// refused has nothing to abort on. The error-rate rule has unit tests in `attack::abort`.)
#[test]
fn abort_on_fail_stops_a_failing_run_early() {
    let r = run(&Args::custom(8, 8, "20s")
        .tags("health,stats")
        .builtin("--fault-latency-ms 1100")
        .with(&[
            "--abort-on-fail",
            "--abort-min-time",
            "3s",
            "--abort-min-requests",
            "20",
            "--no-wait",
        ]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // The run's own clock, not the test's: a busy machine may start the run slowly, but
    // it must stop well before its 20 s.
    let stopped_at: f64 = r
        .stdout
        .split("[FAIL] Run Completed: INTERRUPTED at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("not interrupted:\n{}", r.stdout));
    assert!(
        stopped_at < 15.0,
        "stopped at {stopped_at} s:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("(--abort-on-fail: P95 "), "{}", r.stdout);
    assert!(r.metrics()["verdict"]["aborted"].is_string());
}

/// The findings of a run's metrics JSON.
fn findings(r: &Run) -> Vec<Value> {
    r.metrics()["extra"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every file the run wrote, and its console, as text.
fn every_output(r: &Run) -> Vec<(String, String)> {
    let mut outputs = vec![("console".to_string(), r.stdout.clone())];
    for path in r.files() {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        outputs.push((path.display().to_string(), text));
    }
    outputs
}

/// The reference server behaving like a real ASGI deployment: it closes the connection
/// after each 5xx, crashes on search syntax (500 `text/plain`), and answers a download
/// with the caller's own data whatever the id.
const LIKE_A_REAL_DEPLOYMENT: &str = "--close-after-5xx --search-syntax-errors --download-own-data";

#[test]
fn a_real_deployment_gets_only_its_search_syntax_findings() {
    let r = run(&short_smoke().builtin(LIKE_A_REAL_DEPLOYMENT));
    // Medium findings only: the exit code is the verdict's.
    assert_eq!(r.code, 0, "{}", context(&r));
    let found = findings(&r);
    // One cause, one finding: the search's server error, with the queries that showed it.
    assert_eq!(found.len(), 1, "{}", context(&r));
    assert!(
        found[0]["inputs"].as_array().is_some_and(|i| i.len() >= 5),
        "{}",
        context(&r)
    );
    for f in &found {
        // Each names its query and the 500 it got: never a dropped connection, never
        // another probe (no ownership finding for a download of one's own data).
        assert_eq!(f["probe"], "hostile-input", "{f}");
        assert_eq!(f["severity"], "medium", "{f}");
        assert_eq!(f["request"]["path"], "/api/search", "{f}");
        assert!(
            f["request"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("\"query\"")),
            "{f}"
        );
        assert_eq!(f["answer"]["status"], 500, "{f}");
    }
    let probes = r.metrics()["extra"]["probes"].clone();
    let ownership = probes
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == "ownership"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ownership["status"], "passed", "{ownership}");
    assert!(
        ownership["notes"].to_string().contains("the id is ignored"),
        "{ownership}"
    );
    // The right-to-left override of one query is shown escaped, in every output.
    assert!(r.stdout.contains("\\u{202E}txt.exe"), "{}", context(&r));
    assert!(findings_md(&r).contains("\\u{202E}txt.exe"));
    assert!(
        found
            .iter()
            .any(|f| f["inputs"].to_string().contains("\\\\u{202E}txt.exe")),
        "{found:?}"
    );
    for (name, text) in every_output(&r) {
        assert!(!text.contains('\u{202E}'), "a raw U+202E in {name}");
    }
    assert_no_secret_in(r.dir.path());
}

#[test]
fn every_flaw_is_still_found_by_its_own_probe_on_a_real_deployment() {
    let r = run(&short_smoke().builtin(&format!("--flaws-all {LIKE_A_REAL_DEPLOYMENT}")));
    assert_eq!(r.code, 1, "{}", context(&r));
    let found = findings(&r);
    let by_probe =
        |probe: &str| -> Vec<&Value> { found.iter().filter(|f| f["probe"] == probe).collect() };
    // Each flaw by the probe that checks it, with what shows it.
    for (probe, severity, shows) in [
        ("ownership", "high", "another user's GDPR export"),
        ("token-types", "high", "refresh token"),
        (
            "deletion",
            "high",
            "deleted account's access token still opens a WebSocket",
        ),
        ("rate-limit-bypass", "medium", "No rate limit"),
        (
            "hostile-input",
            "medium",
            "POST /api/search causes a server error",
        ),
    ] {
        let mine = by_probe(probe);
        assert!(
            mine.iter()
                .any(|f| f["severity"] == severity && f["meaning"].to_string().contains(shows)),
            "{probe}: {mine:?}\n{}",
            context(&r)
        );
    }
    for probe in ["revocation", "lockout"] {
        assert!(by_probe(probe).is_empty(), "{probe}: {found:?}");
    }
    // No finding blames a dropped connection.
    assert!(
        found.iter().all(|f| !f["answer"]["status"].is_null()),
        "{found:?}"
    );
}

#[test]
fn a_plain_file_server_gets_no_finding_and_its_probes_say_why_they_did_not_test() {
    let files = crate::support::FileServer::start();
    let r = run(&short_smoke().with(&["--host", &files.url]));
    // The users fail against it (exit 1); the probes find nothing.
    assert_eq!(r.code, 1, "{}", context(&r));
    assert_eq!(findings(&r), Vec::<Value>::new(), "{}", context(&r));
    assert!(r.stdout.contains("Probes: 0 findings"), "{}", context(&r));
    let not_tested: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("[NOT TESTED]"))
        .collect();
    assert_eq!(not_tested.len(), 7, "{}", context(&r));
    for line in not_tested {
        assert!(
            line.contains("answered 501") && line.contains("not there"),
            "{line}"
        );
    }
    let (failures, cases) = probe_suite(&r);
    assert_eq!((failures.as_str(), cases.len()), ("0", 7), "{cases:?}");
}

/// Users without their own loopback addresses but with a forwarded-for pool, against a
/// server that trusts the header: the probes send addresses of their own and run.
#[test]
fn probes_run_on_forwarded_for_addresses_of_their_own() {
    let r = run(&short_smoke().builtin("--trust-forwarded-for").with(&[
        "--no-loopback-sources",
        "--forwarded-for-pool",
        "50",
        "--probes-report-only",
    ]));
    assert_eq!(r.code, 0, "{}", context(&r));
    assert!(!r.stdout.contains("NOT TESTED"), "{}", context(&r));
    // What it runs on is what it finds: a limiter that trusts the header.
    let found = findings(&r);
    assert!(!found.is_empty(), "{}", context(&r));
    for f in &found {
        assert_eq!(
            (&f["probe"], &f["severity"]),
            (&"rate-limit-bypass".into(), &"high".into())
        );
        assert!(
            f["meaning"].to_string().contains("--forwarded-for-pool"),
            "{f}"
        );
    }
}

/// Every check's advice in a run's metrics JSON, one a line.
fn all_advice(r: &Run) -> String {
    r.metrics()["verdict"]["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter_map(|c| c["advice"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Requests the tool gave up on at `--request-timeout`: the advice names the timeout and
/// what the server did, never a database or scaling out; the latency was injected, and
/// the advice says so.
#[test]
fn timeouts_are_advised_as_timeouts_and_injected_faults_as_injected() {
    let r = run(&Args::custom(2, 2, "4s")
        .tags("health")
        .builtin("--fault-latency-ms 1500")
        .with(&["--request-timeout", "1s", "--no-probes"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let advice = all_advice(&r);
    assert!(
        advice.contains("no answer within --request-timeout 1s"),
        "{advice}"
    );
    assert!(
        !advice.contains("database bottleneck") && !advice.contains("scale horizontally"),
        "{advice}"
    );
    assert!(
        advice.contains("injected faults on purpose (--builtin-args --fault-latency-ms 1500)"),
        "{advice}"
    );
}

/// Users refused by server errors are told of server errors, not of account rules; a run
/// whose requests all fell in one window is not said to have had a burst.
#[test]
fn refusals_by_server_errors_name_them_and_one_window_is_no_burst() {
    let r = run(&Args::custom(2, 2, "4s")
        .tags("health")
        .builtin("--fault-error-rate 1")
        .with(&["--no-probes"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let advice = all_advice(&r);
    assert!(
        advice.contains("server errors, not a rule of the account"),
        "{advice}"
    );
    assert!(!advice.contains("account rules"), "{advice}");
    assert!(!advice.contains("burst"), "{advice}");
    let spikes = r.metrics()["verdict"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "error_spikes").cloned())
        .expect("error_spikes");
    assert_eq!(spikes["skipped"], true, "{spikes}");
}

/// Users refused by a server that is not the API (HTML pages) are told so.
#[test]
fn refusals_by_a_page_that_is_not_the_api_say_so() {
    let files = crate::support::FileServer::start();
    let r =
        run(&Args::custom(2, 2, "3s")
            .tags("health")
            .with(&["--host", &files.url, "--no-probes"]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let advice = all_advice(&r);
    assert!(advice.contains("not the API's JSON"), "{advice}");
    assert!(!advice.contains("account rules"), "{advice}");
}

/// A server that answers 429 at once while its handlers stall (the limiter runs before the
/// injected latency): the fast 429s must not make the P95 pass. The P95 is over the judged
/// answers only, and the 429s' own times are reported apart.
#[test]
fn fast_429s_do_not_hide_slow_answers() {
    let r = run(&Args::custom(3, 3, "5s")
        .tags("health")
        .builtin("--fault-latency-ms 400 --rate-limit-health 20")
        .with(&["--no-loopback-sources", "--no-wait", "--p95-ms", "300"]));
    let m = r.metrics();
    let limited = m["test_summary"]["rate_limited_requests"]
        .as_u64()
        .unwrap_or(0);
    let judged = m["test_summary"]["judged_requests"].as_u64().unwrap_or(0);
    assert!(
        limited > judged * 5,
        "429s {limited}, judged {judged}\n{}",
        r.stdout
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("P95 Response Time:"))
        .unwrap_or_else(|| panic!("no P95 line in\n{}", r.stdout));
    assert!(line.starts_with("[FAIL] P95 Response Time"), "{line}");
    let p95 = m["response_times"]["p95"].as_f64().unwrap_or(0.0);
    assert!(p95 >= 400.0, "judged P95 {p95}");
    let apart = m["response_times_not_judged"]["rate_limited"]["p95"]
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(apart < 300.0, "the 429s' own P95 {apart}");
    // The rates add up in front of the reader, over the same judged count.
    let ok = m["test_summary"]["successful_requests"]
        .as_u64()
        .unwrap_or(0);
    let failed = m["test_summary"]["failed_requests"].as_u64().unwrap_or(0);
    assert_eq!(ok + failed, judged);
    assert!(!r.stdout.contains("[FAIL] Work Done"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("Work Done: {judged} judged HTTP request")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("429s:") && r.stdout.contains("(not judged)"),
        "{}",
        r.stdout
    );
}

/// The users' cleanup after the planned end is the stop phase: labelled in the history CSV
/// and the metrics JSON's timeline, with no rate, and no window of the load holds it.
#[test]
fn the_cleanup_is_a_labelled_stop_phase() {
    let r = run(&Args::custom(2, 2, "4s").tags("health"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let path = r.file_ending("_stats_history.csv").expect("a history CSV");
    let text = std::fs::read_to_string(path).expect("read history");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let phase = header
        .iter()
        .position(|h| *h == "Phase")
        .expect("Phase column");
    let rate = header
        .iter()
        .position(|h| *h == "Requests/s")
        .expect("rate");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let stop: Vec<&Vec<&str>> = rows.iter().filter(|r| r[phase] == "stop").collect();
    assert!(!stop.is_empty(), "no stop rows in\n{text}");
    assert!(stop.iter().all(|r| r[rate] == "N/A"), "{text}");
    assert!(
        rows.iter()
            .all(|r| r[phase] == "load" || r[phase] == "stop")
    );
    // The stop rows come last: the load windows end before them.
    let first_stop = rows.iter().position(|r| r[phase] == "stop").unwrap_or(0);
    assert!(
        rows[first_stop..].iter().all(|r| r[phase] == "stop"),
        "{text}"
    );
    let m = r.metrics();
    let timeline = m["error_timeline"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        timeline.last().map(|w| w["phase"].clone()),
        Some(serde_json::json!("stop")),
        "{timeline:?}"
    );
    assert!(m["measured"]["stop_phase"].is_object());
}

/// Accounts registered and then refused at login (a three-request auth budget) stay on the
/// server: each is written with the run id to the accounts file (e-mail and id, no password),
/// and the console names the file and how to remove them.
#[test]
fn accounts_left_behind_are_listed_with_the_run_id() {
    let r = run(&Args::custom(3, 3, "4s")
        .tags("health")
        .builtin("--rate-limit-auth 3")
        .with(&["--no-loopback-sources", "--no-probes"]));
    let m = r.metrics();
    let run_id = m["provenance"]["run_id"].as_str().unwrap_or("").to_string();
    assert!(!run_id.is_empty(), "{}", r.stdout);
    let left = m["cleanup"]["left_behind"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!left.is_empty(), "{}", r.stdout);
    let path = r
        .file_ending("_accounts_left.csv")
        .unwrap_or_else(|| panic!("no accounts file among {:?}", r.files()));
    let text = std::fs::read_to_string(path).expect("read accounts");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Run Id,Email,Account Id,Why It Was Left")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), left.len(), "{text}");
    for row in &rows {
        assert!(row.starts_with(&format!("{run_id},lt-{run_id}-")), "{row}");
        assert!(!row.to_ascii_lowercase().contains("password"), "{row}");
    }
    assert!(r.stdout.contains("Left on the Server:"), "{}", r.stdout);
    assert!(r.stdout.contains("_accounts_left.csv"), "{}", r.stdout);
    assert!(r.stdout.contains("How to Remove:"), "{}", r.stdout);
}
