//! `--abort-on-fail`: a run stops early once a target is clearly missed. The figures are the
//! verdict's own ([`verdict::core_figures`]), so the rule and the verdict cannot disagree;
//! the rule's thresholds are the plan's [`AbortRule`].

use crate::measure::Ledger;
use crate::plan::AbortRule;
use crate::verdict::{self, Targets};

/// An error rate made of fewer failures than this never aborts a run.
const MIN_FAILURES: u64 = 5;

/// Why the run should stop now, if it should.
pub(super) fn clearly_missed(
    ledger: &Ledger,
    rule: &AbortRule,
    targets: &Targets,
) -> Option<String> {
    if ledger.elapsed() < rule.min_elapsed {
        return None;
    }
    let figures = verdict::core_figures(&ledger.snapshot("", false), targets);
    if figures.rates.judged < rule.min_requests {
        return None;
    }
    if let Some(p95) = figures.p95_ms
        && p95 > rule.factor * targets.p95_ms
    {
        return Some(format!(
            "P95 {p95:.0} ms is more than {}x the {:.0} ms target",
            verdict::trim_num(rule.factor),
            targets.p95_ms
        ));
    }
    let rates = figures.rates;
    if rates.error_rate > rule.factor * targets.error_rate && rates.failures >= MIN_FAILURES {
        return Some(format!(
            "error rate {:.2}% is more than {}x the {:.2}% target",
            rates.error_rate,
            verdict::trim_num(rule.factor),
            targets.error_rate
        ));
    }
    None
}
