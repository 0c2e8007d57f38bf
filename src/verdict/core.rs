//! The guide's core targets (P95, success rate, error rate) over HTTP, the WebSocket targets,
//! and the per-request rules.

use super::rules::{Rule, RuleMetric};
use super::{Check, Rates, Targets, advice, fmt_ms, is_round_trip, precise, trim_num};
use crate::measure::{MeasuredRun, RequestKind, RequestStats};

/// The figures the guide's headline targets are judged on, over HTTP: the verdict's checks
/// and the abort rule both read them here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreFigures {
    /// `None` without an HTTP request.
    pub p95_ms: Option<f64>,
    pub rates: Rates,
}

/// The headline figures of `run` under the targets' rules (429s judged or not): the P95
/// is over the judged answers only, the same set the rates count.
pub fn core_figures(run: &MeasuredRun, t: &Targets) -> CoreFigures {
    let http = run.combined(RequestKind::Http);
    let times = http.judged_times(t.count_429_as_failure);
    CoreFigures {
        p95_ms: (times.count > 0).then(|| times.percentile_ms(95.0)),
        rates: Rates::of(&http, t.count_429_as_failure),
    }
}

/// In an open-model run, what the P95 is timed from, and the service time's P95 beside it.
fn open_model_note(run: &MeasuredRun) -> Option<String> {
    run.arrivals.as_ref()?;
    let service = run.combined(RequestKind::Http).service_times;
    Some(format!(
        "timed from each arrival's intended start (open model); from the actual send, P95 {}",
        if service.count > 0 {
            fmt_ms(service.percentile_ms(95.0))
        } else {
            "n/a".to_string()
        }
    ))
}

/// P95, success rate and error rate over HTTP; P95 of the round trips and error rate over
/// WebSocket operations.
pub(super) fn checks(run: &MeasuredRun, t: &Targets) -> Vec<Check> {
    let figures = core_figures(run, t);
    let rates = figures.rates;
    let mut checks = Vec::new();

    let p95_target = format!("below {} ms", trim_num(t.p95_ms));
    checks.push(match figures.p95_ms {
        None => Check::skipped(
            "p95",
            "P95 Response Time",
            p95_target,
            "no judged HTTP requests",
        ),
        Some(p95) => Check::judged(
            "p95",
            "P95 Response Time",
            p95_target,
            time_text(p95, t.p95_ms),
            p95 < t.p95_ms,
        )
        .with_details(
            std::iter::once(format!(
                "over the {} judged HTTP requests{}",
                rates.judged,
                if t.count_429_as_failure {
                    " (429s included, counted as failures)"
                } else {
                    " (429s and expected errors not included)"
                }
            ))
            .chain(open_model_note(run))
            .collect(),
        )
        .advise(|| advice::latency(run, t.count_429_as_failure)),
    });

    let judged_note = judged_note(&rates, t.count_429_as_failure);
    let success_target = format!("at least {}%", trim_num(t.success_rate));
    let error_target = format!("at most {}%", trim_num(t.error_rate));
    if rates.judged == 0 {
        let reason = "no judged HTTP requests";
        checks.push(Check::skipped(
            "success_rate",
            "Success Rate",
            success_target,
            reason,
        ));
        checks.push(Check::skipped(
            "error_rate",
            "Error Rate",
            error_target,
            reason,
        ));
    } else {
        checks.push(
            Check::judged(
                "success_rate",
                "Success Rate",
                success_target,
                precise(rates.success_rate, t.success_rate, 2, "%"),
                rates.success_rate >= t.success_rate,
            )
            .with_details(vec![format!(
                "{} of {} judged HTTP requests succeeded ({} expected errors not judged)",
                rates.successes, rates.judged, rates.expected_errors
            )])
            .advise(|| advice::errors(run, RequestKind::Http, t.count_429_as_failure)),
        );
        checks.push(
            Check::judged(
                "error_rate",
                "Error Rate",
                error_target,
                precise(rates.error_rate, t.error_rate, 2, "%"),
                rates.error_rate <= t.error_rate,
            )
            .with_details(vec![judged_note])
            .advise(|| advice::errors(run, RequestKind::Http, t.count_429_as_failure)),
        );
    }

    let mut round_trips = RequestStats::default();
    for row in run.requests.iter().filter(|r| is_round_trip(r)) {
        round_trips.merge(row);
    }
    let ws_target = format!("below {} ms", trim_num(t.ws_p95_ms));
    let trip_times = round_trips.judged_times(t.count_429_as_failure);
    checks.push(if trip_times.count == 0 {
        Check::skipped(
            "ws_p95",
            "WebSocket Round Trip P95",
            ws_target,
            "no WebSocket message round trips",
        )
    } else {
        let p95 = trip_times.percentile_ms(95.0);
        Check::judged(
            "ws_p95",
            "WebSocket Round Trip P95",
            ws_target,
            time_text(p95, t.ws_p95_ms),
            p95 < t.ws_p95_ms,
        )
        .with_details(vec![format!(
            "{} round trips (a failed one counts its time to failure)",
            trip_times.count
        )])
        .advise(|| advice::ws_latency(run))
    });

    let ws = Rates::of(
        &run.combined(RequestKind::WebSocket),
        t.count_429_as_failure,
    );
    let ws_error_target = format!("at most {}%", trim_num(t.ws_error_rate));
    checks.push(if ws.judged == 0 {
        Check::skipped(
            "ws_error_rate",
            "WebSocket Error Rate",
            ws_error_target,
            "no WebSocket operations",
        )
    } else {
        Check::judged(
            "ws_error_rate",
            "WebSocket Error Rate",
            ws_error_target,
            precise(ws.error_rate, t.ws_error_rate, 2, "%"),
            ws.error_rate <= t.ws_error_rate,
        )
        .with_details(vec![format!(
            "{} failed of {} operations (connect, messages, close)",
            ws.failures, ws.judged
        )])
        .advise(|| advice::errors(run, RequestKind::WebSocket, t.count_429_as_failure))
    });
    checks
}

fn judged_note(rates: &Rates, count_429: bool) -> String {
    if count_429 {
        format!(
            "{} failed of {} judged HTTP requests ({} rate limited counted as failures)",
            rates.failures, rates.judged, rates.rate_limited
        )
    } else {
        format!(
            "{} failed of {} judged HTTP requests ({} rate limited, not judged)",
            rates.failures, rates.judged, rates.rate_limited
        )
    }
}

fn time_text(actual: f64, target: f64) -> String {
    let text = fmt_ms(actual);
    // Keep a miss from printing like the target (499.96ms is not "500.0ms").
    if text == format!("{} ms", trim_num(target)) || text == fmt_ms(target) {
        precise(actual, target, 2, " ms")
    } else {
        text
    }
}

/// One check per rule.
pub(super) fn rule_checks(run: &MeasuredRun, t: &Targets) -> Vec<Check> {
    t.rules
        .iter()
        .map(|rule| rule_check(run, t, rule))
        .collect()
}

fn rule_check(run: &MeasuredRun, t: &Targets, rule: &Rule) -> Check {
    let (stats, subject) = match &rule.request {
        Some(key) => match run.request(key) {
            Some(stats) => (stats.clone(), key.clone()),
            None => {
                return Check::skipped(
                    rule.id(),
                    label(rule, key),
                    rule.target_text(),
                    format!("no {key} requests in this run"),
                );
            }
        },
        None => (run.combined(RequestKind::Http), "all HTTP".to_string()),
    };
    let rates = Rates::of(&stats, t.count_429_as_failure);
    let times = stats.judged_times(t.count_429_as_failure);
    let actual = match rule.metric {
        RuleMetric::Percentile(p) => times.percentile_ms(p),
        RuleMetric::Avg => times.mean_us() / 1000.0,
        RuleMetric::Max => times.max_us as f64 / 1000.0,
        RuleMetric::ErrorRate => rates.error_rate,
        RuleMetric::SuccessRate => rates.success_rate,
    };
    let empty = if rule.metric.is_time() {
        times.count == 0
    } else {
        rates.judged == 0
    };
    if empty {
        return Check::skipped(
            rule.id(),
            label(rule, &subject),
            rule.target_text(),
            format!("no judged {subject} requests"),
        );
    }
    let text = if rule.metric.is_time() {
        time_text(actual, rule.value)
    } else {
        precise(actual, rule.value, 2, "%")
    };
    Check::judged(
        rule.id(),
        label(rule, &subject),
        rule.target_text(),
        text,
        rule.op.holds(actual, rule.value),
    )
    .with_details(vec![format!(
        "rule '{}' over {} judged requests",
        rule.text, rates.judged
    )])
    .advise(|| {
        if rule.metric.is_time() {
            advice::latency(run, t.count_429_as_failure)
        } else {
            advice::errors(run, RequestKind::Http, t.count_429_as_failure)
        }
    })
}

fn label(rule: &Rule, subject: &str) -> String {
    let what = match rule.metric {
        RuleMetric::Percentile(p) => format!("P{} Response Time", trim_num(p)),
        RuleMetric::Avg => "Average Response Time".to_string(),
        RuleMetric::Max => "Max Response Time".to_string(),
        RuleMetric::ErrorRate => "Error Rate".to_string(),
        RuleMetric::SuccessRate => "Success Rate".to_string(),
    };
    format!("{what} ({subject})")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{row, run_of};
    use super::super::{RunFacts, TargetOptions, judge};
    use super::*;

    fn targets(rules: &[&str]) -> Targets {
        TargetOptions {
            target: rules.iter().map(|r| r.to_string()).collect(),
            ..TargetOptions::default()
        }
        .resolve()
        .expect("targets")
    }

    #[test]
    fn injected_500s_fail_success_and_error_rates() {
        let run = run_of(10.0, vec![vec![row("GET", "/api/stats", 10, 980, 20, 0)]]);
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        assert_eq!(v.check("success_rate").expect("s").actual, "98.00%");
        assert!(v.check("success_rate").expect("s").failed());
        assert_eq!(v.check("error_rate").expect("e").actual, "2.00%");
        assert!(v.check("error_rate").expect("e").failed());
        assert!(
            v.check("error_rate")
                .and_then(|c| c.advice.clone())
                .expect("advice")
                .contains("5xx")
        );
    }

    #[test]
    fn rate_limited_answers_are_neither_success_nor_error_by_default() {
        // 990 ok, 5 failed, 300 rate limited: 0.5% errors over the 995 judged.
        let run = run_of(10.0, vec![vec![row("GET", "/api/stats", 10, 995, 5, 300)]]);
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        assert_eq!(v.rate_limited, 300);
        let e = v.check("error_rate").expect("e");
        assert!(e.passed, "{e:?}");
        assert_eq!(e.actual, "0.50%");
        let counted = Targets {
            count_429_as_failure: true,
            ..Targets::default()
        };
        let v = judge(&run, &counted, &RunFacts::default());
        assert!(v.check("error_rate").expect("e").failed());
        assert!(v.rate_limited_counted_as_failures);
    }

    #[test]
    fn p95_is_strictly_below_and_over_http_only() {
        // 100 requests: 95 at 10ms, 5 at 600ms; P95 is the 95th: 10ms.
        let mut w = vec![
            row("GET", "/a", 10, 95, 0, 0),
            row("GET", "/b", 600, 5, 0, 0),
        ];
        // A slow WebSocket round trip must not move the HTTP P95.
        w.push(row("WS", "/ws/{session_id} message", 5000, 100, 0, 0));
        let run = run_of(10.0, vec![w]);
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        let p95 = v.check("p95").expect("p95");
        assert!(p95.passed, "{p95:?}");
        assert_eq!(p95.actual, "10.0 ms");
        let ws = v.check("ws_p95").expect("ws");
        assert!(ws.failed(), "{ws:?}");
        // At exactly the target, "<" fails.
        let at = Targets {
            p95_ms: run.combined(RequestKind::Http).times.percentile_ms(95.0),
            ..Targets::default()
        };
        assert!(
            judge(&run, &at, &RunFacts::default())
                .check("p95")
                .expect("p95")
                .failed()
        );
    }

    #[test]
    fn fast_429s_do_not_pull_the_p95_under_the_target() {
        // 20 slow logins beside 300 fast 429s: over every answer the P95 would be 1 ms.
        let run = run_of(
            10.0,
            vec![vec![
                row("POST", "/api/auth/login/json", 1700, 20, 0, 0),
                row("GET", "/api/stats", 1, 0, 0, 300),
            ]],
        );
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        let p95 = v.check("p95").expect("p95");
        assert!(p95.failed(), "{p95:?}");
        assert_eq!(p95.actual, "1700 ms");
        // Counted as failures, the 429s are judged, their times too: one figure, one set.
        let counted = Targets {
            count_429_as_failure: true,
            ..Targets::default()
        };
        let figures = core_figures(&run, &counted);
        assert_eq!(figures.rates.judged, 320);
        assert!(figures.p95_ms.expect("p95") >= 1000.0);
    }

    #[test]
    fn connect_and_close_rows_are_not_round_trips() {
        let run = run_of(
            10.0,
            vec![vec![
                row("GET", "/health", 10, 10, 0, 0),
                row("WS", "connect /ws/{session_id}", 900, 10, 0, 0),
                row("WS", "close /ws/{session_id}", 900, 10, 0, 0),
                row("WS", "message /ws/{session_id}", 40, 10, 0, 0),
            ]],
        );
        let v = judge(&run, &Targets::default(), &RunFacts::default());
        let ws = v.check("ws_p95").expect("ws");
        assert!(ws.passed, "{ws:?}");
        assert_eq!(ws.actual, "40.0 ms");
    }

    #[test]
    fn per_request_rules_judge_their_own_rows() {
        let run = run_of(
            10.0,
            vec![vec![
                row("GET", "/health", 10, 1000, 0, 0),
                row("POST", "/api/conversation", 1500, 100, 0, 0),
                row("GET", "/api/stats", 10, 98, 2, 0),
            ]],
        );
        let t = targets(&[
            "p95<2000ms for POST /api/conversation",
            "avg<1000ms for POST /api/conversation",
            "error-rate<=1% for GET /api/stats",
            "success-rate>=99 for GET /health",
            "max<20ms for GET /missing",
        ]);
        let v = judge(&run, &t, &RunFacts::default());
        assert!(v.check("p95 POST /api/conversation").expect("p95").passed);
        assert!(v.check("avg POST /api/conversation").expect("avg").failed());
        let e = v.check("error-rate GET /api/stats").expect("err");
        assert!(e.failed());
        assert_eq!(e.actual, "2.00%");
        assert!(v.check("success-rate GET /health").expect("ok").passed);
        assert!(v.check("max GET /missing").expect("missing").skipped);
    }
}
