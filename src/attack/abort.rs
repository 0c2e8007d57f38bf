//! `--abort-on-fail`: a run stops early once a target is clearly missed. The figures are the
//! verdict's own ([`verdict::core_figures`]), so the rule and the verdict cannot disagree.

use crate::measure::Ledger;
use crate::verdict::{self, Targets};
use std::time::Duration;

/// Before this, a run is never aborted: the first seconds are the ramp.
const MIN_ELAPSED: Duration = Duration::from_secs(10);
/// Nor before this many judged requests.
const MIN_JUDGED: u64 = 100;
/// Nor for an error rate made of fewer failures than this.
const MIN_FAILURES: u64 = 5;
/// A target is clearly missed when the figure is worse than this multiple of it.
const FACTOR: f64 = 2.0;

/// Why the run should stop now, if it should.
pub(super) fn clearly_missed(ledger: &Ledger, targets: &Targets) -> Option<String> {
    if ledger.elapsed() < MIN_ELAPSED {
        return None;
    }
    let figures = verdict::core_figures(&ledger.snapshot("", false), targets);
    if figures.rates.judged < MIN_JUDGED {
        return None;
    }
    if let Some(p95) = figures.p95_ms
        && p95 > FACTOR * targets.p95_ms
    {
        return Some(format!(
            "P95 {p95:.0} ms is more than twice the {:.0} ms target",
            targets.p95_ms
        ));
    }
    let rates = figures.rates;
    if rates.error_rate > FACTOR * targets.error_rate && rates.failures >= MIN_FAILURES {
        return Some(format!(
            "error rate {:.2}% is more than twice the {:.2}% target",
            rates.error_rate, targets.error_rate
        ));
    }
    None
}
