//! Memory stability: the server's resident memory after a warm-up, fitted to a line by least
//! squares; growing faster than the limit (MiB per minute) fails.

use super::{Check, Targets, fmt_secs, slope, trim_num};
use crate::measure::MeasuredRun;
use serde::{Deserialize, Serialize};

/// A fit needs at least this many samples after the warm-up...
const MIN_SAMPLES: usize = 5;
/// ... spanning at least this long, so a short wobble is not read as a trend.
const MIN_SPAN_SECS: f64 = 10.0;

const MIB: f64 = 1024.0 * 1024.0;

/// The memory figures the check and the reports show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySummary {
    pub source: String,
    pub samples: usize,
    pub warmup_secs: f64,
    /// Samples after the warm-up, the ones fitted.
    pub fitted_samples: usize,
    pub first_mib: f64,
    /// The first sample after the warm-up.
    pub start_mib: f64,
    pub end_mib: f64,
    pub peak_mib: f64,
    /// From the first fitted sample to the last.
    pub fitted_span_secs: f64,
    /// `None` when too few samples remain after the warm-up.
    pub slope_mib_per_min: Option<f64>,
}

/// The run's memory, summarised; `None` without samples.
pub fn memory_summary(run: &MeasuredRun, t: &Targets) -> Option<MemorySummary> {
    let series = run.memory.as_ref()?;
    let mut samples = series.samples.clone();
    samples.sort_by(|a, b| a.t_secs.total_cmp(&b.t_secs));
    let first = samples.first()?;
    let last = samples.last()?;
    let run_secs = run.duration_secs.max(last.t_secs);
    let warmup_secs = t.memory_warmup_for(run_secs);
    let fitted: Vec<_> = samples.iter().filter(|s| s.t_secs >= warmup_secs).collect();
    let span = match (fitted.first(), fitted.last()) {
        (Some(a), Some(b)) => b.t_secs - a.t_secs,
        _ => 0.0,
    };
    let points: Vec<(f64, f64)> = fitted
        .iter()
        .map(|s| (s.t_secs / 60.0, s.rss_bytes as f64 / MIB))
        .collect();
    let slope_mib_per_min = if fitted.len() >= MIN_SAMPLES && span >= MIN_SPAN_SECS {
        slope(&points)
    } else {
        None
    };
    Some(MemorySummary {
        source: series.source.clone(),
        samples: samples.len(),
        warmup_secs,
        fitted_samples: fitted.len(),
        fitted_span_secs: span,
        first_mib: first.rss_bytes as f64 / MIB,
        start_mib: fitted.first().map_or(0.0, |s| s.rss_bytes as f64 / MIB),
        end_mib: last.rss_bytes as f64 / MIB,
        peak_mib: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0) as f64 / MIB,
        slope_mib_per_min,
    })
}

pub(super) fn check(run: &MeasuredRun, t: &Targets) -> Check {
    let target = format!(
        "at most {} MiB/min after warm-up",
        trim_num(t.memory_growth_limit_mib_per_min)
    );
    let label = "Memory Stability";
    let Some(m) = memory_summary(run, t) else {
        return Check::skipped(
            "memory",
            label,
            target,
            "no memory samples (sample the server with --server-pid PID or --memory-url URL)",
        );
    };
    let figures = format!(
        "{}: start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB; {} samples, {} fitted after a {} warm-up",
        m.source,
        m.start_mib,
        m.end_mib,
        m.peak_mib,
        m.samples,
        m.fitted_samples,
        fmt_secs(m.warmup_secs)
    );
    let Some(slope) = m.slope_mib_per_min else {
        return Check::skipped(
            "memory",
            label,
            target,
            format!(
                "too few samples after the {} warm-up ({} over {}; a fit needs {MIN_SAMPLES} over {}s)",
                fmt_secs(m.warmup_secs),
                m.fitted_samples,
                // Rounded down: a 9.96 s span shown as "10s" would read as enough.
                fmt_secs((m.fitted_span_secs * 10.0).floor() / 10.0),
                MIN_SPAN_SECS
            ),
        )
        .with_details(vec![figures]);
    };
    Check::judged(
        "memory",
        label,
        target,
        format!("{slope:+.2} MiB/min"),
        slope <= t.memory_growth_limit_mib_per_min,
    )
    .with_details(vec![figures])
    .advise(|| {
        "Memory keeps growing (possible leak): profile the application's memory.".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{MemorySample, MemorySeries};

    /// A 10-minute run sampled every 5 s at `base` MiB plus `mib_per_min` growth and a wobble.
    fn run_with_memory(mib_per_min: f64) -> MeasuredRun {
        let samples = (0..=120)
            .map(|i| {
                let t = i as f64 * 5.0;
                let wobble = if i % 2 == 0 { 1.5 } else { -1.5 };
                let mib = 80.0 + mib_per_min * t / 60.0 + wobble;
                MemorySample {
                    t_secs: t,
                    rss_bytes: (mib * MIB) as u64,
                }
            })
            .collect();
        MeasuredRun {
            duration_secs: 600.0,
            memory: Some(MemorySeries {
                source: "pid 42".into(),
                samples,
            }),
            ..MeasuredRun::default()
        }
    }

    #[test]
    fn a_leak_fails_and_a_flat_line_passes() {
        let t = Targets::default();
        let leak = check(&run_with_memory(25.0), &t);
        assert!(leak.failed(), "{leak:?}");
        let m = memory_summary(&run_with_memory(25.0), &t).expect("summary");
        let s = m.slope_mib_per_min.expect("slope");
        assert!((s - 25.0).abs() < 0.5, "{s}");
        assert_eq!(m.warmup_secs, 60.0);
        assert_eq!(m.fitted_samples, 109);
        assert!(m.peak_mib > 80.0 + 25.0 * 9.9);

        let flat = check(&run_with_memory(0.0), &t);
        assert!(flat.passed && !flat.skipped, "{flat:?}");
        assert!(flat.details[0].contains("pid 42"));
    }

    #[test]
    fn a_startup_rise_inside_the_warmup_is_ignored() {
        let mut run = run_with_memory(0.0);
        if let Some(m) = run.memory.as_mut() {
            for s in m.samples.iter_mut().filter(|s| s.t_secs < 30.0) {
                s.rss_bytes /= 4;
            }
        }
        assert!(check(&run, &Targets::default()).passed);
        let no_warmup = Targets {
            memory_warmup_secs: Some(0.0),
            ..Targets::default()
        };
        // Without the warm-up, the step at 30 s reads as growth.
        let c = check(&run, &no_warmup);
        assert!(c.actual.starts_with('+'), "{c:?}");
    }

    #[test]
    fn no_or_too_few_samples_are_skipped_with_the_reason() {
        let c = check(&MeasuredRun::default(), &Targets::default());
        assert!(c.skipped && c.actual.contains("no memory samples"));
        let mut run = run_with_memory(50.0);
        if let Some(m) = run.memory.as_mut() {
            m.samples.truncate(3);
        }
        let c = check(&run, &Targets::default());
        assert!(c.skipped && c.actual.contains("too few samples"), "{c:?}");
    }
}
