//! Behaviour over time: no degradation through an endurance run, and recovery after a spike.
//!
//! Degradation (endurance runs only): the HTTP P95 of each window after ramp-up (the first
//! moment the run reached its peak user count), for windows with at least
//! [`MIN_WINDOW_REQUESTS`] requests, fitted to a line by least squares; a slope above
//! `degradation_limit` percent of the P95 target per minute fails.
//!
//! Recovery (spike runs only): over the last third of the run (windows whose middle falls in
//! it, merged), the HTTP P95 meets the P95 target and the error rate meets the error-rate
//! target; and the last window with traffic has no failure at all ("errors have stopped").

use super::{Check, Rates, Targets, advice, fmt_ms, fmt_secs, slope, trim_num};
use crate::measure::{Histogram, MeasuredRun, RequestKind, RequestStats, WindowStats};

/// A window with fewer HTTP requests than this has too noisy a P95 to fit.
pub const MIN_WINDOW_REQUESTS: u64 = 10;
/// The fit needs at least this many windows.
const MIN_WINDOWS: usize = 3;

/// When the run first reached its peak user count; 0 when users were not sampled.
fn ramp_end_secs(run: &MeasuredRun) -> f64 {
    let peak = run
        .users_over_time
        .iter()
        .map(|s| s.users)
        .max()
        .unwrap_or(0);
    run.users_over_time
        .iter()
        .find(|s| peak > 0 && s.users >= peak)
        .map_or(0.0, |s| s.t_secs)
}

pub(super) fn degradation(run: &MeasuredRun, t: &Targets, facts: &super::RunFacts) -> Check {
    let limit_ms_per_min = t.degradation_limit_percent_per_min * t.p95_ms / 100.0;
    let target = format!(
        "P95 rising at most {} ms/min ({}% of the P95 target per minute)",
        trim_num(limit_ms_per_min),
        trim_num(t.degradation_limit_percent_per_min)
    );
    let label = "No Degradation Over Time";
    if !facts.endurance {
        return Check::skipped("degradation", label, target, "applies to endurance runs");
    }
    let ramp_end = ramp_end_secs(run);
    let windows: Vec<(&WindowStats, Histogram)> = run
        .windows
        .iter()
        .filter(|w| w.start_secs + 1e-6 >= ramp_end)
        .map(|w| {
            let http = w.combined(RequestKind::Http);
            (w, http.judged_times(t.count_429_as_failure).into_owned())
        })
        .filter(|(_, times)| times.count >= MIN_WINDOW_REQUESTS)
        .collect();
    if windows.len() < MIN_WINDOWS {
        return Check::skipped(
            "degradation",
            label,
            target,
            format!(
                "too few windows after ramp-up ({}; need {MIN_WINDOWS} with >= {MIN_WINDOW_REQUESTS} requests)",
                windows.len()
            ),
        );
    }
    let half = run.window_secs / 2.0;
    let points: Vec<(f64, f64)> = windows
        .iter()
        .map(|(w, times)| ((w.start_secs + half) / 60.0, times.percentile_ms(95.0)))
        .collect();
    let Some(rise) = slope(&points) else {
        return Check::skipped("degradation", label, target, "windows too close to fit");
    };
    let window_text = |(w, times): &(&WindowStats, Histogram)| {
        let end = run
            .windows
            .iter()
            .position(|x| std::ptr::eq(x, *w))
            .map_or(w.start_secs + run.window_secs, |i| run.window_end(i));
        format!(
            "{}-{} P95 {}",
            fmt_secs(w.start_secs),
            fmt_secs(end),
            fmt_ms(times.percentile_ms(95.0))
        )
    };
    let (first, last) = (&windows[0], &windows[windows.len() - 1]);
    Check::judged(
        "degradation",
        label,
        target,
        format!("{rise:+.1} ms/min"),
        rise <= limit_ms_per_min,
    )
    .with_details(vec![
        format!("first window {}", window_text(first)),
        format!("last window {}", window_text(last)),
        format!(
            "{} windows fitted from {} (after ramp-up)",
            windows.len(),
            fmt_secs(ramp_end)
        ),
    ])
    .advise(|| {
        "Latency rises over time (often a memory leak or a growing table or queue): profile \
         the application's memory and the slowest queries."
            .to_string()
    })
}

pub(super) fn recovery(run: &MeasuredRun, t: &Targets, facts: &super::RunFacts) -> Check {
    let target = format!(
        "last third: P95 below {} ms, error rate at most {}%, no failure in the last window",
        trim_num(t.p95_ms),
        trim_num(t.error_rate)
    );
    let label = "Recovery After Spike";
    if !facts.spike {
        return Check::skipped("recovery", label, target, "applies to spike runs");
    }
    let boundary = run.duration_secs * 2.0 / 3.0;
    let half = run.window_secs / 2.0;
    let last_third: Vec<&WindowStats> = run
        .windows
        .iter()
        .filter(|w| w.start_secs + half >= boundary)
        .collect();
    let mut merged = RequestStats::default();
    for w in &last_third {
        merged.merge(&w.combined(RequestKind::Http));
    }
    let times = merged.judged_times(t.count_429_as_failure);
    if times.count == 0 {
        return Check::skipped(
            "recovery",
            label,
            target,
            "no HTTP requests in the last third of the run",
        );
    }
    let rates = Rates::of(&merged, t.count_429_as_failure);
    let p95 = times.percentile_ms(95.0);
    let last_window = last_third
        .iter()
        .rev()
        .map(|w| {
            (
                w,
                Rates::of(&w.combined(RequestKind::Http), t.count_429_as_failure),
            )
        })
        .find(|(_, r)| r.total > 0);
    let last_failures = last_window.as_ref().map_or(0, |(_, r)| r.failures);
    let passed = p95 < t.p95_ms && rates.error_rate <= t.error_rate && last_failures == 0;
    let from = last_third.first().map_or(boundary, |w| w.start_secs);
    let mut details = vec![format!(
        "last third {}-{}: {} requests, {} failures ({:.2}%)",
        fmt_secs(from),
        fmt_secs(run.duration_secs),
        rates.total,
        rates.failures,
        rates.error_rate
    )];
    if let Some((w, r)) = &last_window {
        details.push(format!(
            "last window {}: {} failures of {} requests",
            fmt_secs(w.start_secs),
            r.failures,
            r.total
        ));
    }
    Check::judged(
        "recovery",
        label,
        target,
        format!(
            "P95 {}, {} failures in the last third, {last_failures} in the last window",
            fmt_ms(p95),
            rates.failures
        ),
        passed,
    )
    .with_details(details)
    .advise(|| {
        if rates.failures > 0 {
            format!(
                "The system kept failing after the surge. {}",
                advice::errors(run, RequestKind::Http, t.count_429_as_failure)
            )
        } else {
            advice::latency(run, t.count_429_as_failure)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::RunFacts;
    use super::super::testing::{row, run_of};
    use super::*;
    use crate::measure::{Histogram, UserSample};

    fn endurance() -> RunFacts {
        RunFacts {
            endurance: true,
            ..RunFacts::default()
        }
    }

    fn spike() -> RunFacts {
        RunFacts {
            spike: true,
            ..RunFacts::default()
        }
    }

    /// 30 windows of 10 s, window i answering at `ms(i)`, with `fail(i)` failures.
    fn timeline(ms: impl Fn(usize) -> u64, fail: impl Fn(usize) -> u64) -> MeasuredRun {
        run_of(
            10.0,
            (0..30)
                .map(|i| vec![row("GET", "/api/stats", ms(i), 50 - fail(i), fail(i), 0)])
                .collect(),
        )
    }

    #[test]
    fn rising_latency_fails_and_flat_passes() {
        // +10ms per 10s window = +60ms/min, over the 25ms/min limit.
        let rising = timeline(|i| 100 + 10 * i as u64, |_| 0);
        let c = degradation(&rising, &Targets::default(), &endurance());
        assert!(c.failed(), "{c:?}");
        assert!(
            c.details[0].contains("first window 0s-10s P95 100.0 ms"),
            "{:?}",
            c.details
        );
        assert!(
            c.details[1].contains("last window 290s-300s"),
            "{:?}",
            c.details
        );
        let flat = timeline(|i| if i % 2 == 0 { 100 } else { 120 }, |_| 0);
        assert!(degradation(&flat, &Targets::default(), &endurance()).passed);
        assert!(degradation(&rising, &Targets::default(), &RunFacts::default()).skipped);
    }

    #[test]
    fn the_ramp_up_is_left_out_of_the_trend() {
        // Slow while users ramp up to 200 over the first minute, flat after.
        let mut run = timeline(|i| if i < 6 { 20 + 60 * i as u64 } else { 100 }, |_| 0);
        run.users_over_time = (0..=30)
            .map(|i| UserSample {
                t_secs: i as f64 * 10.0,
                users: (i * 40).min(200),
            })
            .collect();
        let c = degradation(&run, &Targets::default(), &endurance());
        assert!(c.passed, "{c:?}");
        assert!(c.details[2].contains("from 50s"), "{:?}", c.details);
    }

    #[test]
    fn recovery_after_a_surge_passes_and_a_lasting_one_fails() {
        let recovered = timeline(
            |i| if i < 10 { 2000 } else { 100 },
            |i| u64::from(i < 10) * 10,
        );
        assert!(recovery(&recovered, &Targets::default(), &spike()).passed);
        let lasting = timeline(|i| if i < 25 { 2000 } else { 100 }, |_| 0);
        let c = recovery(&lasting, &Targets::default(), &spike());
        assert!(c.failed(), "{c:?}");
        let late_errors = timeline(|_| 100, |i| u64::from(i == 29));
        let c = recovery(&late_errors, &Targets::default(), &spike());
        assert!(c.failed(), "{c:?}");
        assert!(c.actual.contains("1 in the last window"), "{}", c.actual);
        assert!(recovery(&recovered, &Targets::default(), &RunFacts::default()).skipped);
    }

    #[test]
    fn percentiles_from_merged_windows_equal_the_runs() {
        let run = timeline(|i| 10 + (i as u64 * 37) % 400, |i| (i % 3) as u64);
        let mut merged = Histogram::default();
        for w in &run.windows {
            merged.merge(&w.combined(RequestKind::Http).times);
        }
        let whole = run.combined(RequestKind::Http).times;
        assert_eq!(merged, whole);
        for p in [50.0, 90.0, 95.0, 99.0] {
            assert_eq!(merged.percentile_us(p), whole.percentile_us(p));
        }
    }
}
