//! No error spikes: errors counted in fixed windows; a window whose error share exceeds
//! `spike_factor` × the error-rate target *and* holds at least `spike_min_errors` failures is
//! a spike. HTTP and WebSocket operations count together here: a burst is a burst.

use super::{Check, Rates, Targets, advice, fmt_secs, trim_num};
use crate::measure::{MeasuredRun, RequestKind, RequestStats, WindowStats};
use std::collections::BTreeMap;

/// The run's windows grouped into windows of about `secs`: consecutive windows whose start
/// falls in the same `secs` slot are merged. Windows shorter than the run's cannot be made,
/// so the run's own are returned then. Also returns the length used.
pub(crate) fn regroup(run: &MeasuredRun, secs: f64) -> (Vec<WindowStats>, f64) {
    if run.window_secs <= 0.0 || secs <= run.window_secs * 1.001 {
        return (run.windows.clone(), run.window_secs);
    }
    let mut groups: BTreeMap<u64, WindowStats> = BTreeMap::new();
    for w in &run.windows {
        // A small tolerance keeps 20.0 / 10.0 from landing in slot 1.999.
        let slot = ((w.start_secs + 1e-6) / secs).floor() as u64;
        let group = groups.entry(slot).or_insert_with(|| WindowStats {
            start_secs: slot as f64 * secs,
            requests: BTreeMap::new(),
        });
        for (key, stats) in &w.requests {
            group.requests.entry(key.clone()).or_default().merge(stats);
        }
    }
    (groups.into_values().collect(), secs)
}

/// HTTP and WebSocket operations of a window together.
pub fn everything(window: &WindowStats) -> RequestStats {
    let mut all = window.combined(RequestKind::Http);
    all.merge(&window.combined(RequestKind::WebSocket));
    all
}

/// The keys with the most failures in a window, most first.
pub(crate) fn top_failing(window: &WindowStats, count_429: bool, n: usize) -> Vec<(String, u64)> {
    let mut keys: Vec<(String, u64)> = window
        .requests
        .iter()
        .map(|(k, s)| {
            let failures = s.failures + if count_429 { s.rate_limited } else { 0 };
            (k.clone(), failures)
        })
        .filter(|(_, f)| *f > 0)
        .collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(n);
    keys
}

/// A window is a spike when its error share exceeds the threshold and it holds enough failures.
fn is_spike(rates: &Rates, t: &Targets) -> bool {
    rates.failures >= t.spike_min_errors && rates.error_rate > t.spike_factor * t.error_rate
}

/// The end of `w`, one of `windows` of `secs`: the last ends with the measured time (it may
/// hold a short tail, see [`MeasuredRun::window_end`]).
fn window_end(run: &MeasuredRun, windows: &[WindowStats], w: &WindowStats, secs: f64) -> f64 {
    match windows.last() {
        Some(last) if std::ptr::eq(last, w) => run.duration_secs.max(w.start_secs),
        _ => w.start_secs + secs,
    }
}

/// The windows the `error_spikes` check calls spikes, as (start, end) seconds into the run.
pub fn error_spike_windows(run: &MeasuredRun, t: &Targets) -> Vec<(f64, f64)> {
    let (windows, secs) = regroup(run, t.spike_window_secs);
    windows
        .iter()
        .filter(|w| is_spike(&Rates::of(&everything(w), t.count_429_as_failure), t))
        .map(|w| (w.start_secs, window_end(run, &windows, w, secs)))
        .collect()
}

pub(super) fn check(run: &MeasuredRun, t: &Targets) -> Check {
    let threshold = t.spike_factor * t.error_rate;
    let target = format!(
        "no {}s window over {}% errors with at least {} failures",
        trim_num(t.spike_window_secs),
        trim_num(threshold),
        t.spike_min_errors
    );
    let label = "No Error Spikes";
    if run.windows.is_empty() {
        return Check::skipped(
            "error_spikes",
            label,
            target,
            "no timeline of windows in this run",
        );
    }
    let (windows, secs) = regroup(run, t.spike_window_secs);
    // A burst stands out from the windows around it: with one window of traffic there is
    // nothing to stand out from (the error rate judges the run).
    let busy = windows
        .iter()
        .filter(|w| Rates::of(&everything(w), t.count_429_as_failure).judged > 0)
        .count();
    if busy < 2 {
        return Check::skipped(
            "error_spikes",
            label,
            target,
            format!(
                "{busy} window of {} with requests: a burst needs more than one (the error \
                 rate judges this run)",
                fmt_secs(secs)
            ),
        );
    }
    let mut details = Vec::new();
    if (secs - t.spike_window_secs).abs() > 1e-6 {
        details.push(format!(
            "judged on the run's {} windows (it was measured in them, they cannot be split)",
            fmt_secs(secs)
        ));
    }
    let mut spikes = Vec::new();
    let mut worst: Option<(f64, &WindowStats, Rates)> = None;
    for w in &windows {
        let rates = Rates::of(&everything(w), t.count_429_as_failure);
        if rates.judged == 0 {
            continue;
        }
        if worst
            .as_ref()
            .is_none_or(|(share, _, _)| rates.error_rate > *share)
        {
            worst = Some((rates.error_rate, w, rates));
        }
        if is_spike(&rates, t) {
            spikes.push((w, rates));
        }
    }
    let span = |w: &WindowStats| {
        let end = window_end(run, &windows, w, secs);
        format!("{}-{}", fmt_secs(w.start_secs), fmt_secs(end))
    };
    let describe = |w: &WindowStats, r: &Rates| {
        let top = top_failing(w, t.count_429_as_failure, 3)
            .into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{}: {} of {} requests failed ({:.2}%): {top}",
            span(w),
            r.failures,
            r.judged,
            r.error_rate
        )
    };
    let actual = if spikes.is_empty() {
        match &worst {
            Some((_, w, r)) if r.failures > 0 => format!(
                "no spikes (worst window {}: {} failures, {:.2}%)",
                span(w),
                r.failures,
                r.error_rate
            ),
            _ => "no spikes (no failures in any window)".to_string(),
        }
    } else {
        let (w, r) = &spikes[0];
        let more = if spikes.len() > 1 {
            format!(" and {} more", spikes.len() - 1)
        } else {
            String::new()
        };
        format!(
            "spike at {}: {} failures ({:.2}%){more}",
            span(w),
            r.failures,
            r.error_rate
        )
    };
    let mut all: Vec<String> = spikes.iter().map(|(w, r)| describe(w, r)).collect();
    all.append(&mut details);
    Check::judged("error_spikes", label, target, actual, spikes.is_empty())
        .with_details(all)
        .advise(|| {
            let errors = advice::errors(run, RequestKind::Http, t.count_429_as_failure);
            if spikes.len() < busy {
                format!(
                    "Errors came in a burst, not spread out: look at what happened in that \
                     window (restarts, pool exhaustion, pauses). {errors}"
                )
            } else {
                format!("Every window with requests failed this much: not a burst. {errors}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{row, run_of};
    use super::*;

    /// 12 windows of 100 requests; `failures[i]` of window i fail.
    fn run_with_failures(failures: &[u64]) -> MeasuredRun {
        run_of(
            10.0,
            failures
                .iter()
                .map(|&f| {
                    vec![
                        row("GET", "/health", 10, 60, 0, 0),
                        row("POST", "/api/conversation", 50, 40 - f, f, 0),
                    ]
                })
                .collect(),
        )
    }

    #[test]
    fn one_window_of_traffic_is_no_burst() {
        let c = check(&run_with_failures(&[30]), &Targets::default());
        assert!(c.skipped && !c.failed(), "{c:?}");
        assert!(
            c.actual.contains("a burst needs more than one"),
            "{}",
            c.actual
        );
        let every = check(&run_with_failures(&[30, 30]), &Targets::default());
        let advice = every.advice.as_deref().unwrap_or_default();
        assert!(
            every.failed() && advice.starts_with("Every window"),
            "{advice}"
        );
    }

    #[test]
    fn a_burst_in_one_window_fails_and_is_named() {
        let mut f = vec![0; 12];
        f[5] = 12;
        let c = check(&run_with_failures(&f), &Targets::default());
        assert!(c.failed(), "{c:?}");
        assert!(c.actual.contains("50s-60s"), "{}", c.actual);
        assert!(
            c.details[0].contains("POST /api/conversation 12"),
            "{:?}",
            c.details
        );
    }

    #[test]
    fn the_same_number_spread_out_passes() {
        let f = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        let c = check(&run_with_failures(&f), &Targets::default());
        assert!(c.passed, "{c:?}");
    }

    #[test]
    fn a_few_errors_in_a_quiet_window_are_no_spike() {
        // 4 failures in a window of 100: 4% > 2.5%, but under the minimum of 5.
        let mut f = vec![0; 12];
        f[3] = 4;
        assert!(check(&run_with_failures(&f), &Targets::default()).passed);
        let strict = Targets {
            spike_min_errors: 4,
            ..Targets::default()
        };
        assert!(check(&run_with_failures(&f), &strict).failed());
    }

    #[test]
    fn wider_windows_merge_the_run_windows() {
        // 3 failures in each of two neighbouring windows: a 20s window holds 6.
        let mut f = vec![0; 12];
        f[4] = 3;
        f[5] = 3;
        assert!(check(&run_with_failures(&f), &Targets::default()).passed);
        let wide = Targets {
            spike_window_secs: 20.0,
            ..Targets::default()
        };
        let c = check(&run_with_failures(&f), &wide);
        assert!(c.failed(), "{c:?}");
        assert!(c.actual.contains("40s-60s"), "{}", c.actual);
        assert_eq!(
            error_spike_windows(&run_with_failures(&f), &wide),
            [(40.0, 60.0)]
        );
        assert!(error_spike_windows(&run_with_failures(&f), &Targets::default()).is_empty());
        let (windows, secs) = regroup(&run_with_failures(&f), 20.0);
        assert_eq!((windows.len(), secs), (6, 20.0));
        let total: u64 = windows.iter().map(|w| everything(w).total()).sum();
        assert_eq!(total, 1200);
    }

    #[test]
    fn skipped_without_windows() {
        let run = MeasuredRun::default();
        assert!(check(&run, &Targets::default()).skipped);
    }
}
