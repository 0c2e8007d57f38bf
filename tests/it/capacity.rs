//! The capacity search end to end, against reference servers whose capacity is known in
//! advance: `--fault-slots N --fault-slot-ms MS` serves at most N × 1000 / MS requests a
//! second of /api/*, and queues the rest.

use crate::support::{Args, Run, run};
use serde_json::Value;

fn search(builtin: &str, words: &[&str]) -> Run {
    let mut args = Args::default()
        .with(&["capacity", "--scenario", "custom", "--tags", "conversation"])
        .with(&["--warmup", "2s"])
        .with(words);
    if !words.contains(&"--level-duration") {
        args = args.with(&["--level-duration", "3s"]);
    }
    if !builtin.is_empty() {
        args = args.builtin(builtin);
    }
    run(&args)
}

fn result(r: &Run) -> Value {
    let path = r.file("_capacity.json");
    let text = std::fs::read_to_string(&path).expect("capacity JSON");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn the_search_finds_a_known_knee_within_its_tolerance_and_confirms_it() {
    // The knee is a latency: no other heavy test beside it.
    let _one = crate::support::process::serial();
    // Two slots of 50 ms: 40 conversation requests a second, no more.
    let r = search(
        "--fault-slots 2 --fault-slot-ms 50",
        &[
            "--start-rate",
            "10",
            "--max-rate",
            "80",
            "--tolerance",
            "10%",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.output());
    let c = result(&r);
    let found = c["capacity_rate"].as_f64().expect("a capacity");
    assert!(
        (36.0..=40.5).contains(&found),
        "capacity {found}\n{}",
        r.output()
    );
    assert_eq!(c["finding"]["kind"], "found");
    let levels = c["levels"].as_array().expect("levels");
    assert!(levels.iter().all(|l| l["rate"].as_f64() <= Some(80.0)));
    // The accepted level was measured again before it was accepted.
    let last = levels.last().expect("a level");
    assert_eq!(last["purpose"], "confirm");
    assert_eq!(last["rate"].as_f64(), Some(found));
    let failed = c["failed_level"]["rate"].as_f64().expect("a failed level");
    assert!(
        failed > found && failed <= found * 1.1 + 1e-9,
        "{failed} vs {found}"
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("capacity: ") && l.contains("arrivals/s ("))
        .unwrap_or_else(|| panic!("no result line in\n{}", r.stdout));
    assert!(
        line.contains("limited at") && line.contains("POST /api/conversation"),
        "{line}"
    );
    let html = std::fs::read_to_string(r.file(".html")).expect("HTML");
    assert!(
        html.contains("<svg class=\"knee\"") && html.contains("capacity "),
        "no chart"
    );
    let junit = std::fs::read_to_string(r.file("_junit.xml")).expect("JUnit");
    assert!(
        junit.contains("Capacity Found") && !junit.contains("<failure"),
        "{junit}"
    );
}

#[test]
fn a_first_level_that_fails_ends_the_search_at_once_and_early() {
    // One slot of 200 ms: 5 requests a second; the first level asks 20.
    let r = search(
        "--fault-slots 1 --fault-slot-ms 200",
        &[
            "--start-rate",
            "20",
            "--max-rate",
            "40",
            "--level-duration",
            "6s",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.output());
    let c = result(&r);
    assert_eq!(c["finding"]["kind"], "below_start", "{c}");
    assert_eq!(c["capacity_rate"], 0.0);
    let levels = c["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 1, "{levels:?}");
    assert_eq!(levels[0]["stopped_early"], true, "{}", levels[0]);
    let window = levels[0]["end_secs"].as_f64().unwrap_or(0.0)
        - levels[0]["start_secs"].as_f64().unwrap_or(0.0);
    assert!(window < 5.5, "the level ran its whole window: {window} s");
    assert!(r.stdout.contains("capacity: below 20/s"), "{}", r.stdout);
}

#[test]
fn the_ceiling_holds_and_a_baseline_that_had_more_fails_the_next_search() {
    let first = search("", &["--start-rate", "4", "--max-rate", "8"]);
    assert_eq!(first.code, 0, "{}", first.output());
    let c = result(&first);
    assert_eq!(c["finding"]["kind"], "at_ceiling", "{c}");
    assert_eq!(c["capacity_rate"], 8.0);
    let levels = c["levels"].as_array().expect("levels");
    assert!(
        levels.iter().all(|l| l["rate"].as_f64() <= Some(8.0)),
        "{levels:?}"
    );
    assert!(
        first.stdout.contains("capacity: at least 8 arrivals/s"),
        "{}",
        first.stdout
    );

    // The same build against a saved result that held 40/s: a drop of 80%.
    let mut base = c.clone();
    base["capacity_rate"] = 40.0.into();
    let base_file = first.dir.path().join("baseline_capacity.json");
    std::fs::write(&base_file, base.to_string()).expect("baseline written");
    let base_arg = base_file.to_string_lossy().into_owned();
    let second = search(
        "",
        &[
            "--start-rate",
            "4",
            "--max-rate",
            "8",
            "--baseline",
            &base_arg,
        ],
    );
    assert_eq!(second.code, 1, "{}", second.output());
    let b = &result(&second)["baseline"];
    assert_eq!(b["passed"], false, "{b}");
    assert!(
        (b["drop_share"].as_f64().unwrap_or(0.0) - 0.8).abs() < 1e-9,
        "{b}"
    );
    assert!(
        second.stdout.contains("against the baseline: FAILED"),
        "{}",
        second.stdout
    );
}

#[test]
fn capacity_mistakes_are_refused_before_any_traffic() {
    for (words, says) in [
        (vec!["--rate", "5"], "does not apply to the capacity search"),
        (vec!["--duration", "5s"], "does not apply"),
        (
            vec!["--start-rate", "50", "--max-rate", "10"],
            "no higher than the ceiling",
        ),
        (vec!["--step-factor", "1"], "--step-factor"),
        (vec!["--tolerance", "150%"], "--tolerance"),
        (vec!["--level-duration", "1s"], "at least 2s"),
        (
            vec!["--baseline", "/nonexistent/capacity.json"],
            "--baseline",
        ),
    ] {
        let r = search("", &words);
        assert_eq!(r.code, 2, "{words:?}: {}", r.output());
        assert!(r.stderr.contains(says), "{words:?}: {}", r.stderr);
    }
}
