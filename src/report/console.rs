//! The end-of-run summary, in the shape of the guide's sample: test summary, response times,
//! status codes, endpoints, WebSocket, authentication and cleanup, then TARGET VALIDATION
//! with one `[PASS]`/`[FAIL]`/`[SKIP]` line per check and what to look at for each failure.

use super::{ApartTimes, Headline, TimeSummary};
use crate::exit::Exit;
use crate::measure::{ArrivalStats, MeasuredRun, RequestKind, RequestStats};
use crate::verdict::{Check, Verdict};
use std::io::{self, Write};

const RULE: &str = "==================================================";

fn line(out: &mut impl Write, label: &str, value: impl std::fmt::Display) -> io::Result<()> {
    writeln!(out, "{:<20}{value}", format!("{label}:"))
}

fn rate(judged: u64, value: f64) -> String {
    if judged == 0 {
        "n/a (no judged requests)".to_string()
    } else {
        format!("{value:.2}%")
    }
}

/// A check as one line: `[PASS] P95 Response Time: 145.0 ms (target: below 500 ms)`.
fn check_line(c: &Check) -> String {
    format!("[{}] {}", c.status(), check_result(c))
}

/// A check's result without its status: the measure, then the target apart, so that a
/// failing line cannot be read as a pass: `P95 Response Time: 2007 ms (target: below 500
/// ms)`. A skipped check gives its reason instead.
pub(crate) fn check_result(c: &Check) -> String {
    if c.skipped {
        format!("{}: {}", c.label, c.actual)
    } else {
        format!("{}: {} (target: {})", c.label, c.actual, c.target)
    }
}

/// A time column's cell: `-` where the row has no such answer.
fn ms_cell(t: Option<TimeSummary>, pick: impl Fn(&TimeSummary) -> f64) -> String {
    t.map_or_else(|| "-".to_string(), |t| format!("{:.2}", pick(&t)))
}

/// The endpoint table: Avg and P95 over each row's judged answers, then the P95 of its 429s
/// and of its expected errors apart.
fn endpoints(out: &mut impl Write, rows: &[&RequestStats], count_429: bool) -> io::Result<()> {
    let width = rows
        .iter()
        .map(|r| r.key().chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 60);
    writeln!(
        out,
        "{:<width$} {:>8} {:>7} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "Request", "Count", "Fail", "429", "Exp", "Avg ms", "P95 ms", "429 P95", "Exp P95"
    )?;
    for r in rows {
        let judged = r.judged_times(count_429);
        let judged = (judged.count > 0).then(|| TimeSummary::of(&judged));
        let apart = ApartTimes::of(r);
        writeln!(
            out,
            "{:<width$} {:>8} {:>7} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
            r.key(),
            r.total(),
            r.failures,
            r.rate_limited,
            r.expected_errors,
            ms_cell(judged, |t| t.average),
            ms_cell(judged, |t| t.p95),
            ms_cell(apart.rate_limited, |t| t.p95),
            ms_cell(apart.expected_errors, |t| t.p95),
        )?;
    }
    Ok(())
}

/// The times of the 429s and the expected errors on their own, one line each.
fn apart_times(out: &mut impl Write, apart: &ApartTimes, count_429: bool) -> io::Result<()> {
    let mut one = |label: &str, t: &Option<TimeSummary>, note: &str| match t {
        Some(t) => line(
            out,
            label,
            format!(
                "P50 {:.2}, P95 {:.2}, max {:.2} ({note})",
                t.p50, t.p95, t.max
            ),
        ),
        None => Ok(()),
    };
    let note_429 = if count_429 {
        "judged, in the figures above"
    } else {
        "not judged"
    };
    one("429s", &apart.rate_limited, note_429)?;
    one("Expected Errors", &apart.expected_errors, "not judged")
}

fn times(out: &mut impl Write, t: &TimeSummary) -> io::Result<()> {
    line(out, "Average", format!("{:.2}", t.average))?;
    line(out, "Minimum", format!("{:.2}", t.min))?;
    line(out, "Maximum", format!("{:.2}", t.max))?;
    line(out, "P50 (Median)", format!("{:.2}", t.p50))?;
    line(out, "P90", format!("{:.2}", t.p90))?;
    line(out, "P95", format!("{:.2}", t.p95))?;
    line(out, "P99", format!("{:.2}", t.p99))
}

/// Prints the end-of-run summary and the verdict.
/// An open-model run's arrivals, and its latency from the send beside the judged one.
fn open_model(out: &mut impl Write, run: &MeasuredRun, a: &ArrivalStats) -> io::Result<()> {
    writeln!(out, "\n--- Open Model (arrivals) ---")?;
    line(out, "Schedule", &a.schedule)?;
    line(
        out,
        "Arrivals",
        format!(
            "{} planned, {} started ({} by users started for them), {} dropped",
            a.planned,
            a.started(),
            a.on_demand,
            a.dropped
        ),
    )?;
    line(
        out,
        "Late Starts",
        format!(
            "{} (more than {} ms after the intended time)",
            a.late,
            crate::measure::LATE_START.as_millis()
        ),
    )?;
    if a.lag.count > 0 {
        line(
            out,
            "Start Lag",
            format!(
                "P50 {:.3} ms, P99 {:.3} ms, max {:.3} ms (intended to actual start)",
                a.lag.percentile_ms(50.0),
                a.lag.percentile_ms(99.0),
                a.lag.max_us as f64 / 1000.0
            ),
        )?;
    }
    line(out, "Pool", format!("{} users at most", a.max_users))?;
    let service = run.combined(RequestKind::Http).service_times;
    if service.count > 0 {
        line(
            out,
            "Service Time",
            format!(
                "P50 {:.1} ms, P95 {:.1} ms, P99 {:.1} ms (from the actual send; the times \
                 above count from each arrival's intended start)",
                service.percentile_ms(50.0),
                service.percentile_ms(95.0),
                service.percentile_ms(99.0)
            ),
        )?;
    }
    Ok(())
}

pub fn print_summary(out: &mut impl Write, run: &MeasuredRun, verdict: &Verdict) -> io::Result<()> {
    let head = Headline::of(run, verdict.rate_limited_counted_as_failures);
    let r = &head.rates;
    writeln!(out)?;
    writeln!(out, "{RULE}")?;
    writeln!(out, "LOAD TEST RESULTS: {}", verdict.preset_name)?;
    if let Some(when) = &verdict.stopped_early {
        writeln!(out, "{when}: judged on what was measured before the stop")?;
    } else if verdict.interrupted {
        writeln!(
            out,
            "INTERRUPTED: judged on what was measured before the stop"
        )?;
    }
    writeln!(out, "{RULE}")?;

    writeln!(out, "\n--- Test Summary ---")?;
    line(out, "Scenario", &verdict.preset_name)?;
    line(out, "Duration", format!("{:.2}s", run.duration_secs))?;
    line(out, "Peak Users", run.max_users)?;
    line(out, "Total Requests", format!("{} (HTTP)", r.total))?;
    line(
        out,
        "Requests/Second",
        format!("{:.2}", head.requests_per_second),
    )?;
    let count_429 = verdict.rate_limited_counted_as_failures;
    let judged_parts = if count_429 {
        "successful + failed, 429s among the failed"
    } else {
        "successful + failed"
    };
    line(out, "Judged", format!("{} ({judged_parts})", r.judged))?;
    line(out, "Successful", r.successes)?;
    let failed_note = if count_429 && r.rate_limited > 0 {
        format!(" ({} of them 429s)", r.rate_limited)
    } else {
        String::new()
    };
    line(out, "Failed", format!("{}{failed_note}", r.failures))?;
    let limited_note = if count_429 {
        " (counted as failures)"
    } else {
        " (not judged)"
    };
    line(
        out,
        "Rate Limited (429)",
        format!("{}{limited_note}", r.rate_limited),
    )?;
    line(
        out,
        "Expected Errors",
        format!("{} (not judged)", r.expected_errors),
    )?;
    line(out, "Success Rate", rate(r.judged, r.success_rate))?;
    line(out, "Error Rate", rate(r.judged, r.error_rate))?;

    writeln!(out, "\n--- Response Times (ms, judged answers) ---")?;
    times(out, &head.times)?;
    apart_times(out, &head.apart, count_429)?;

    if let Some(a) = &run.arrivals {
        open_model(out, run, a)?;
    }

    writeln!(out, "\n--- Status Codes ---")?;
    if head.status_codes.is_empty() {
        writeln!(out, "(none)")?;
    }
    for (code, n) in &head.status_codes {
        let label = if *code == 0 {
            "0 (no answer)".to_string()
        } else {
            code.to_string()
        };
        line(out, &label, n)?;
    }

    let http: Vec<&RequestStats> = run
        .requests
        .iter()
        .filter(|s| s.kind != Some(RequestKind::WebSocket))
        .collect();
    let ws: Vec<&RequestStats> = run
        .requests
        .iter()
        .filter(|s| s.kind == Some(RequestKind::WebSocket))
        .collect();
    writeln!(out, "\n--- Endpoints ---")?;
    endpoints(out, &http, count_429)?;

    let w = &run.websocket;
    if !ws.is_empty() || w.connections_opened > 0 {
        writeln!(out, "\n--- WebSocket ---")?;
        line(out, "Connections Opened", w.connections_opened)?;
        line(out, "Peak Concurrent", w.peak_concurrent)?;
        line(out, "Messages Sent", w.messages_sent)?;
        line(out, "Messages Received", w.messages_received)?;
        let closes = if w.closes_by_code.is_empty() {
            "none".to_string()
        } else {
            w.closes_by_code
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        line(out, "Closes by Code", closes)?;
        if !ws.is_empty() {
            endpoints(out, &ws, count_429)?;
        }
    }

    let a = &run.auth;
    writeln!(out, "\n--- Authentication ---")?;
    line(out, "Registered", a.registered)?;
    line(out, "Logged In", a.logged_in)?;
    line(out, "Refreshed", a.refreshed)?;
    line(out, "Refresh Failed", a.refresh_failed)?;
    if a.users_refused.is_empty() {
        line(out, "Users Refused", 0)?;
    } else {
        for (reason, n) in &a.users_refused {
            line(out, "Users Refused", format!("{n} ({reason})"))?;
        }
    }

    let c = &run.cleanup;
    if c.accounts_created > 0 || c.deleted > 0 || c.failed > 0 {
        writeln!(out, "\n--- Cleanup ---")?;
        line(out, "Accounts Created", c.accounts_created)?;
        line(out, "Logged Out", c.logged_out)?;
        line(out, "Deleted", c.deleted)?;
        line(out, "Cleanup Failed", c.failed)?;
        if !c.left_behind.is_empty() {
            let n = c.left_behind.len();
            line(
                out,
                "Left on the Server",
                format!(
                    "{n} account{}, listed with the run id in the run's _accounts_left.csv \
                     (e-mail and id; no password or token)",
                    if n == 1 { "" } else { "s" }
                ),
            )?;
            let shown: Vec<&str> = c
                .left_behind
                .iter()
                .take(3)
                .map(|a| a.email.as_str())
                .collect();
            let more = if n > 3 {
                format!(" and {} more", n - 3)
            } else {
                String::new()
            };
            writeln!(out, "{:<20}{}{more}", "", shown.join(", "))?;
            line(
                out,
                "How to Remove",
                "as the server's administrator, delete the users whose e-mail holds this run's \
                 id (lt-RUNID-...@loadtest.example.com; the run id is in the banner and every \
                 report); the tool does not keep their passwords",
            )?;
        }
    }

    writeln!(out, "\nTARGET VALIDATION")?;
    for check in &verdict.checks {
        writeln!(out, "{}", check_line(check))?;
        if !check.skipped || check.details.len() > 1 {
            for d in &check.details {
                writeln!(out, "       {d}")?;
            }
        }
    }
    // Checks failing for the same reason share one line of advice.
    let mut advice: Vec<(Vec<&str>, &str)> = Vec::new();
    for c in verdict.failed_checks() {
        let Some(text) = c.advice.as_deref() else {
            continue;
        };
        match advice.iter_mut().find(|(_, a)| *a == text) {
            Some((labels, _)) => labels.push(&c.label),
            None => advice.push((vec![&c.label], text)),
        }
    }
    if !advice.is_empty() {
        writeln!(out, "\nWhat to look at:")?;
        for (labels, text) in advice {
            writeln!(out, "- {}: {text}", labels.join(", "))?;
        }
    }
    Ok(())
}

/// The verdict in words, as the result line starts: `ALL TARGETS MET`, `TARGETS MISSED`, or
/// `INTERRUPTED at 7.0 s of 20 s (Ctrl-C)`.
pub fn outcome_words(verdict: &Verdict) -> String {
    match &verdict.stopped_early {
        Some(when) => when.clone(),
        None if verdict.passed => "ALL TARGETS MET".to_string(),
        None => "TARGETS MISSED".to_string(),
    }
}

/// The last line of a run's output: how it ended and the exit code the process returns.
pub fn print_result(
    out: &mut impl Write,
    words: &str,
    exit: Exit,
    rate_limited: u64,
) -> io::Result<()> {
    writeln!(
        out,
        "\nResult: {words} (exit code {}); {rate_limited} rate-limited answers (429)",
        exit.code()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::testing::{row, run_of};
    use crate::verdict::{RunFacts, Targets, judge};

    fn printed(run: &MeasuredRun, verdict: &Verdict) -> String {
        let mut out = Vec::new();
        print_summary(&mut out, run, verdict).expect("print");
        print_result(
            &mut out,
            &outcome_words(verdict),
            verdict.exit(),
            verdict.rate_limited,
        )
        .expect("print");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn the_guides_shape_with_pass_lines() {
        let mut run = run_of(
            10.0,
            vec![vec![
                row("GET", "/health", 100, 95, 0, 3),
                row("WS", "message /ws/{session_id}", 20, 5, 0, 0),
            ]],
        );
        run.websocket.connections_opened = 2;
        run.websocket.closes_by_code.insert("1000".into(), 2);
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        let text = printed(&run, &v);
        for needle in [
            "--- Test Summary ---",
            "--- Response Times (ms, judged answers) ---",
            "--- Status Codes ---",
            "--- Endpoints ---",
            "--- WebSocket ---",
            "--- Authentication ---",
            "TARGET VALIDATION",
            "Rate Limited (429): 3 (not judged)",
            "Judged:             95 (successful + failed)",
            "429s:               P50 100.00, P95 100.00, max 100.00 (not judged)",
            "Success Rate:       100.00%",
            "P95:                100.00",
            "[PASS] P95 Response Time: 100.0 ms (target: below 500 ms)",
            "[PASS] Success Rate: 100.00% (target: at least 99.5%)",
            "[PASS] Error Rate: 0.00% (target: at most 0.5%)",
            "[SKIP] Memory Stability: no memory samples",
            "Closes by Code:     1000: 2",
            "WS message /ws/{session_id}",
            "Result: ALL TARGETS MET (exit code 0)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("What to look at"));
    }

    #[test]
    fn failures_come_with_what_to_look_at_and_the_run_state() {
        let mut run = run_of(
            10.0,
            vec![vec![row("POST", "/api/conversation", 900, 90, 10, 0)]],
        );
        run.interrupted = true;
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        let text = printed(&run, &v);
        assert!(text.contains("INTERRUPTED"), "{text}");
        assert!(
            text.contains("[FAIL] P95 Response Time: 900.0 ms (target: below 500 ms)"),
            "{text}"
        );
        assert!(text.contains("[FAIL] Run Completed: INTERRUPTED"), "{text}");
        assert!(text.contains("What to look at:"), "{text}");
        assert!(text.contains("- P95 Response Time: "), "{text}");
        assert!(text.contains("- Success Rate, Error Rate: "), "{text}");
        assert!(
            text.contains("POST /api/conversation (P95 900.0 ms)"),
            "{text}"
        );
        assert!(text.contains("check the server logs"), "{text}");
        assert!(text.contains("exit code 1"), "{text}");
    }
}
