//! `--abort-on-fail`: a run stops early once a target is clearly missed. The figures are the
//! verdict's own ([`verdict::core_figures`]), so the rule and the verdict cannot disagree;
//! the rule's thresholds are the plan's [`AbortRule`].

use crate::measure::Ledger;
use crate::plan::AbortRule;
use crate::verdict::{self, Targets};

/// An error rate made of fewer failures than this never aborts a run.
const MIN_FAILURES: u64 = 5;

/// What the rule says at one moment of the run.
#[derive(Debug, PartialEq)]
pub(super) enum Rule {
    /// Not armed yet: too early, or too few judged requests (this many so far).
    Inactive { early: bool, judged: u64 },
    /// Armed, and no target clearly missed.
    Armed,
    /// Armed, and the run should stop now, for this reason.
    Stop(String),
}

/// Whether the rule is armed yet, and whether the run should stop now.
pub(super) fn watch(ledger: &Ledger, rule: &AbortRule, targets: &Targets) -> Rule {
    let early = ledger.elapsed() < rule.min_elapsed;
    let figures = verdict::core_figures(&ledger.snapshot("", false), targets);
    if early || figures.rates.judged < rule.min_requests {
        return Rule::Inactive {
            early,
            judged: figures.rates.judged,
        };
    }
    if let Some(p95) = figures.p95_ms
        && p95 > rule.factor * targets.p95_ms
    {
        return Rule::Stop(format!(
            "P95 {p95:.0} ms is more than {}x the {:.0} ms target",
            verdict::trim_num(rule.factor),
            targets.p95_ms
        ));
    }
    let rates = figures.rates;
    if rates.error_rate > rule.factor * targets.error_rate && rates.failures >= MIN_FAILURES {
        return Rule::Stop(format!(
            "error rate {:.2}% is more than {}x the {:.2}% target",
            rates.error_rate,
            verdict::trim_num(rule.factor),
            targets.error_rate
        ));
    }
    Rule::Armed
}

/// Why the run should stop now, if it should.
#[cfg(test)]
fn clearly_missed(ledger: &Ledger, rule: &AbortRule, targets: &Targets) -> Option<String> {
    match watch(ledger, rule, targets) {
        Rule::Stop(reason) => Some(reason),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Observation, Outcome, RequestKind};
    use std::time::{Duration, Instant};

    fn rule(min_requests: u64) -> AbortRule {
        AbortRule {
            factor: 2.0,
            min_requests,
            min_elapsed: Duration::ZERO,
        }
    }

    /// `n` health checks taking `ms`, every `fail_every`-th failing (0: none fails).
    fn ledger_with(n: u64, ms: u64, fail_every: u64) -> Ledger {
        let ledger = Ledger::new(Duration::from_secs(10));
        for i in 0..n {
            let outcome = if fail_every > 0 && i % fail_every == 0 {
                Outcome::Failure("HTTP 500".into())
            } else {
                Outcome::Success
            };
            ledger.record(&Observation {
                kind: RequestKind::Http,
                method: "GET",
                name: "/health",
                user_class: "AuthenticatedUser",
                started: Instant::now(),
                duration: Duration::from_millis(ms),
                service: None,
                status: Some(if outcome.is_failure() { 500 } else { 200 }),
                outcome: &outcome,
                bytes: 10,
            });
        }
        ledger
    }

    #[test]
    fn half_the_answers_failing_stops_the_run_with_its_error_rate() {
        let reason = clearly_missed(&ledger_with(40, 5, 2), &rule(20), &Targets::default());
        let reason = reason.expect("an error rate of 50% is clearly missed");
        assert!(
            reason.starts_with("error rate 50.00% is more than 2x"),
            "{reason}"
        );
    }

    #[test]
    fn a_slow_p95_stops_the_run_with_its_p95() {
        let reason = clearly_missed(&ledger_with(40, 1500, 0), &rule(20), &Targets::default());
        let reason = reason.expect("a P95 of 1500 ms is clearly missed");
        assert!(
            reason.starts_with("P95 1500 ms is more than 2x"),
            "{reason}"
        );
    }

    #[test]
    fn below_its_minimums_the_rule_is_inactive_and_counts_the_judged_requests() {
        let targets = Targets::default();
        assert_eq!(
            watch(&ledger_with(79, 5, 2), &rule(100), &targets),
            Rule::Inactive {
                early: false,
                judged: 79
            }
        );
        assert_eq!(
            watch(&ledger_with(40, 5, 0), &rule(20), &targets),
            Rule::Armed
        );
    }

    #[test]
    fn a_healthy_run_a_young_run_and_a_few_failures_are_never_stopped() {
        let targets = Targets::default();
        assert_eq!(
            clearly_missed(&ledger_with(40, 5, 0), &rule(20), &targets),
            None
        );
        // Too few judged requests yet.
        assert_eq!(
            clearly_missed(&ledger_with(10, 5, 2), &rule(20), &targets),
            None
        );
        // Too early.
        let young = AbortRule {
            min_elapsed: Duration::from_secs(3600),
            ..rule(1)
        };
        assert_eq!(
            clearly_missed(&ledger_with(40, 1500, 2), &young, &targets),
            None
        );
        // A high rate made of fewer than MIN_FAILURES failures.
        assert_eq!(
            clearly_missed(&ledger_with(8, 5, 2), &rule(1), &targets),
            None
        );
    }
}
