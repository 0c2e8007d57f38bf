//! Comparison with an earlier run (`--baseline FILE`): the change of each headline figure, and
//! a `regression p95` check: P95 no more than `regression_limit` percent worse.

use super::{Check, Rates, Targets, advice, fmt_ms, trim_num};
use crate::measure::{MeasuredRun, RequestKind, per_second};
use serde::{Deserialize, Serialize};

/// The figures of the baseline run the comparison needs (kept small: it goes into the
/// metrics JSON with the targets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSummary {
    pub source: String,
    #[serde(rename = "scenario")]
    pub preset_name: String,
    pub total_requests: u64,
    /// HTTP P95 in ms; `None` when the baseline had no HTTP request.
    pub p95_ms: Option<f64>,
    pub success_rate: f64,
    pub error_rate: f64,
    pub requests_per_second: f64,
}

impl BaselineSummary {
    pub fn of(run: &MeasuredRun, source: &str, count_429_as_failure: bool) -> BaselineSummary {
        let http = run.combined(RequestKind::Http);
        let rates = Rates::of(&http, count_429_as_failure);
        BaselineSummary {
            source: source.to_string(),
            preset_name: run.preset_name.clone(),
            total_requests: rates.total,
            p95_ms: {
                let times = http.judged_times(count_429_as_failure);
                (times.count > 0).then(|| times.percentile_ms(95.0))
            },
            success_rate: rates.success_rate,
            error_rate: rates.error_rate,
            requests_per_second: per_second(rates.total, run.duration_secs),
        }
    }
}

fn change(now: f64, before: f64) -> String {
    if before == 0.0 {
        "n/a".to_string()
    } else {
        format!("{:+.1}%", (now - before) * 100.0 / before)
    }
}

pub(super) fn check(run: &MeasuredRun, t: &Targets, base: &BaselineSummary) -> Check {
    let now = BaselineSummary::of(run, "this run", t.count_429_as_failure);
    let label = "P95 vs Baseline";
    let mut details = vec![format!("baseline: {} ({})", base.source, base.preset_name)];
    if let (Some(b), Some(n)) = (base.p95_ms, now.p95_ms) {
        details.push(format!(
            "P95: {} -> {} ({})",
            fmt_ms(b),
            fmt_ms(n),
            change(n, b)
        ));
    }
    details.push(format!(
        "error rate: {:.2}% -> {:.2}% ({:+.2} pt)",
        base.error_rate,
        now.error_rate,
        now.error_rate - base.error_rate
    ));
    details.push(format!(
        "success rate: {:.2}% -> {:.2}% ({:+.2} pt)",
        base.success_rate,
        now.success_rate,
        now.success_rate - base.success_rate
    ));
    details.push(format!(
        "requests/s: {:.2} -> {:.2} ({})",
        base.requests_per_second,
        now.requests_per_second,
        change(now.requests_per_second, base.requests_per_second)
    ));
    let target = format!("at most {}% worse", trim_num(t.regression_limit));
    let (Some(b), Some(n)) = (base.p95_ms, now.p95_ms) else {
        return Check::skipped(
            "regression p95",
            label,
            target,
            "no HTTP requests in the baseline or in this run",
        )
        .with_details(details);
    };
    let allowed = b * (1.0 + t.regression_limit / 100.0);
    Check::judged(
        "regression p95",
        label,
        format!("{target} (P95 at most {})", fmt_ms(allowed)),
        format!("{} ({} vs {})", change(n, b), fmt_ms(n), fmt_ms(b)),
        n <= allowed,
    )
    .with_details(details)
    .advise(|| {
        format!(
            "Slower than the baseline: look at what changed since, starting with the slowest \
             endpoints: {}.",
            advice::slowest_http(run, t.count_429_as_failure, 3)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{row, run_of};
    use super::*;

    fn run_at(ms: u64) -> MeasuredRun {
        run_of(10.0, vec![vec![row("GET", "/api/stats", ms, 100, 0, 0)]; 6])
    }

    #[test]
    fn a_regression_beyond_the_limit_fails() {
        let base = BaselineSummary::of(&run_at(100), "old.json", false);
        assert_eq!(base.p95_ms, Some(100.0));
        assert!((base.requests_per_second - 10.0).abs() < 1e-9);
        let t = Targets::default();
        let c = check(&run_at(130), &t, &base);
        assert!(c.failed(), "{c:?}");
        assert!(c.actual.starts_with("+30.0%"), "{}", c.actual);
        assert!(
            c.details
                .iter()
                .any(|d| d.starts_with("P95: 100.0 ms -> 130.0 ms"))
        );
        assert!(check(&run_at(115), &t, &base).passed);
        assert!(check(&run_at(80), &t, &base).passed);
    }
}
