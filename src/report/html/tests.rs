//! The report's builders on synthetic runs: escaping, the verdict's headline, every check,
//! the charts' marks, the endpoint table's figures.

use super::*;
use crate::measure::{MemorySample, MemorySeries, UserSample};
use crate::probes::Severity;
use crate::probes::tests::report_with;
use crate::report::Provenance;
use crate::report::csv::stats_csv;
use crate::verdict::testing::{row, run_of};
use crate::verdict::{BaselineSummary, RunFacts, Targets, Verdict, judge};

fn run() -> MeasuredRun {
    let mut run = run_of(
        10.0,
        (0..6)
            .map(|i| {
                vec![
                    row("GET", "/health", 5 + i, 100, 0, 2),
                    row(
                        "POST",
                        "/api/<odd> & \"quoted\"",
                        80,
                        40,
                        u64::from(i == 3) * 9,
                        0,
                    ),
                    row("WS", "audio→response", 3, 20, 0, 0),
                ]
            })
            .collect(),
    );
    run.first_user_secs = Some(0.0);
    run.last_user_secs = Some(5.0);
    run.users_over_time = (0..60)
        .map(|t| UserSample {
            t_secs: t as f64,
            users: (t as u64 * 2).min(10),
        })
        .collect();
    run.max_users = 10;
    run.memory = Some(MemorySeries {
        source: "pid 1".into(),
        samples: (0..6)
            .map(|t| MemorySample {
                t_secs: t as f64 * 10.0,
                rss_bytes: 50 << 20,
            })
            .collect(),
    });
    run
}

struct Parts {
    run: MeasuredRun,
    verdict: Verdict,
    targets: Targets,
    facts: RunFacts,
    provenance: Provenance,
}

fn parts(run: MeasuredRun, targets: Targets) -> Parts {
    let facts = RunFacts::default();
    Parts {
        verdict: judge(&run, &targets, &facts),
        run,
        targets,
        facts,
        provenance: Provenance {
            command_line: vec![
                "lva-loadtest".into(),
                "--jwt-secret".into(),
                "[REDACTED]".into(),
            ],
            host: "http://127.0.0.1:1/".into(),
            planned_secs: Some(50.0),
            ..Provenance::default()
        },
    }
}

fn render(p: &Parts, probes: Option<&ProbeReport>, exit: Exit) -> String {
    html_report(&RunReport {
        run: &p.run,
        verdict: &p.verdict,
        targets: &p.targets,
        facts: &p.facts,
        provenance: &p.provenance,
        probes,
        probes_report_only: false,
        exit,
        extra: &serde_json::Value::Null,
    })
}

#[test]
fn escaping_covers_markup_quotes_and_invisible_characters() {
    assert_eq!(
        escape("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
    assert_eq!(escape("abc\u{202E}def\u{7}"), "abc\\u{202E}def\\u{0007}");
    assert_eq!(escape("line\nnext é"), "line\nnext é");
}

#[test]
fn a_failing_run_says_fail_first_with_every_check_and_the_advice() {
    let p = parts(run(), Targets::default());
    assert!(!p.verdict.passed, "the burst of 9 failures is a spike");
    let html = render(&p, None, p.verdict.exit());
    let verdict_at = html.find(r#"id="verdict""#).expect("verdict");
    assert!(verdict_at < html.find(r#"id="timeline""#).expect("charts"));
    assert!(html.contains(r#"<div class="word">FAIL</div>"#));
    assert!(html.contains("Exit code 1"));
    for c in &p.verdict.checks {
        assert!(
            html.contains(&format!(r#"data-check="{}""#, escape(&c.id))),
            "{} missing",
            c.id
        );
        assert!(html.contains(&escape(&c.actual)), "{}", c.actual);
    }
    let spikes = p.verdict.check("error_spikes").expect("spike check");
    assert!(spikes.failed());
    let advice = spikes.advice.as_deref().expect("advice");
    assert!(html.contains(&escape(advice)));
    // The spike window is marked on the charts, as the check found it.
    assert!(html.contains("error spike 30s-40s"), "spike band");
    // No raw markup from request names.
    assert!(!html.contains("<odd>") && html.contains("&lt;odd&gt; &amp; &quot;quoted&quot;"));
}

#[test]
fn a_passing_run_and_an_interrupted_one() {
    let mut quiet = run();
    for w in &mut quiet.windows {
        for s in w.requests.values_mut() {
            s.successes += s.failures;
            s.failures = 0;
        }
    }
    for s in &mut quiet.requests {
        s.successes += s.failures;
        s.failures = 0;
    }
    let p = parts(quiet.clone(), Targets::default());
    assert!(p.verdict.passed, "{:#?}", p.verdict.checks);
    let html = render(&p, None, Exit::Passed);
    assert!(html.contains(r#"<div class="word">PASS</div>"#));
    // A high finding fails a run whose targets were all met, and the report says why.
    let failed = render(&p, Some(&report_with(Severity::High)), Exit::Failed);
    assert!(failed.contains(r#"<div class="word">FAIL</div>"#));
    assert!(failed.contains("high-severity security finding fails the run"));
    assert!(
        failed.contains(r#"id="probes""#)
            && failed.contains(r#"<span class="status HIGH">HIGH</span>"#)
    );
    quiet.interrupted = true;
    let p = parts(quiet, Targets::default());
    let html = render(&p, None, p.verdict.exit());
    assert!(html.contains(r#"<div class="word">INTERRUPTED</div>"#));
}

#[test]
fn every_chart_draws_marks_and_the_phases_are_shaded() {
    let p = parts(run(), Targets::default());
    let charts = time_charts(&RunReport {
        run: &p.run,
        verdict: &p.verdict,
        targets: &p.targets,
        facts: &p.facts,
        provenance: &p.provenance,
        probes: None,
        probes_report_only: false,
        exit: Exit::Failed,
        extra: &serde_json::Value::Null,
    });
    let titles: Vec<&str> = charts.iter().map(|(c, _)| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Throughput",
            "HTTP response times",
            "Errors and 429s per window",
            "Users",
            "Server memory (RSS)",
            "WebSocket round trips"
        ]
    );
    for (chart, _) in &charts {
        let svg = chart.svg();
        assert!(
            svg.contains(r#"class="mark "#),
            "{} has no mark",
            chart.title
        );
        for phase in ["ramp 0s-5s", "hold 5s-50s", "stop 50s-1m"] {
            assert!(svg.contains(phase), "{phase} in {}", chart.title);
        }
    }
    let html = render(&p, None, Exit::Failed);
    // One distribution per request name.
    assert_eq!(html.matches(r#"class="chart dist""#).count(), 3);
}

#[test]
fn the_endpoint_table_has_the_stats_csvs_figures() {
    let p = parts(run(), Targets::default());
    let html = render(&p, None, Exit::Failed);
    let csv = stats_csv(&p.run, false).expect("csv");
    let mut reader = ::csv::Reader::from_reader(csv.as_slice());
    for record in reader.records() {
        let record = record.expect("row");
        let key = if &record[1] == "Aggregated" {
            "Aggregated".to_string()
        } else {
            format!("{} {}", &record[0], &record[1])
        };
        let start = html
            .find(&format!(r#"<tr data-key="{}">"#, escape(&key)))
            .unwrap_or_else(|| panic!("row {key}"));
        let row_html = &html[start..start + html[start..].find("</tr>").expect("end")];
        let cells: Vec<&str> = row_html
            .split("<td")
            .skip(1)
            .map(|c| {
                let from = c.find('>').expect(">") + 1;
                &c[from..c.find("</td>").expect("</td>")]
            })
            .collect();
        for (i, (name, _)) in TABLE_COLUMNS.iter().enumerate().skip(2) {
            let col = STATS_HEADER.iter().position(|h| h == name).expect("column");
            assert_eq!(cells[i], &record[col], "{key}: {name}");
        }
    }
    assert!(html.contains(r#"<table class="sortable endpoints">"#));
    assert!(html.contains("document.querySelectorAll(\"table.sortable\")"));
}

#[test]
fn the_baseline_stands_beside_the_run_and_nothing_is_fetched() {
    let targets = Targets {
        baseline: Some(BaselineSummary {
            source: "old_metrics.json".into(),
            preset_name: "load".into(),
            total_requests: 500,
            p95_ms: Some(40.0),
            success_rate: 100.0,
            error_rate: 0.0,
            requests_per_second: 20.0,
        }),
        ..Targets::default()
    };
    let p = parts(run(), targets);
    let html = render(&p, None, Exit::Failed);
    assert!(html.contains(r#"id="baseline""#));
    assert!(html.contains("old_metrics.json"));
    assert!(html.contains("baseline P95 40 ms"));
    for remote in ["http://", "https://", "//cdn", "@import", "url("] {
        let outside: Vec<_> = html
            .match_indices(remote)
            .filter(|(i, _)| {
                !html[..*i].ends_with("against ") && !html[*i..].starts_with("http://127.0.0.1:1/")
            })
            .collect();
        assert!(outside.is_empty(), "{remote} in the report");
    }
    assert!(html.contains("--jwt-secret [REDACTED]"));
}
