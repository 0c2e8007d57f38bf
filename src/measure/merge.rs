//! The exact merge of several workers' measurements into one run.
//!
//! Everything a [`MeasuredRun`] holds is a count, a histogram of Goose-scheme buckets, or a
//! series, so the merge adds and loses nothing: the merged percentiles are the ones one
//! process would compute over every request of every worker. What is not a plain sum:
//! - windows are aligned by index: the workers start together and measure in windows of
//!   the same length, so window `i` of each covers the same seconds of the run;
//! - the duration is from the common start to the end of the last worker's measurements,
//!   so requests per second is over the window every request fell in;
//! - users over time are summed second by second (a worker counts its last sample until its
//!   next, and nothing outside its own samples);
//! - the stop phases (each worker's requests once its run began to stop) add up into one,
//!   starting when the first worker's began;
//! - the peak of concurrent WebSocket connections is the sum of the workers' peaks: an
//!   upper bound, since the workers' peaks need not have been at the same moment.

use super::{ErrorCount, MeasuredRun, RequestStats, UserSample, WindowStats, sort_errors};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("no worker delivered measurements")]
    Empty,
    #[error(
        "the workers measured in windows of different lengths ({0} s and {1} s), so their timelines cannot be aligned"
    )]
    WindowMismatch(f64, f64),
}

/// Merges the runs of every worker that delivered one.
pub fn merge(runs: &[MeasuredRun]) -> Result<MeasuredRun, MergeError> {
    let first = runs.first().ok_or(MergeError::Empty)?;
    let window_secs = first.window_secs;
    if let Some(other) = runs.iter().find(|r| r.window_secs != window_secs) {
        return Err(MergeError::WindowMismatch(window_secs, other.window_secs));
    }

    let mut totals: BTreeMap<String, RequestStats> = BTreeMap::new();
    let mut windows: Vec<WindowStats> = Vec::new();
    let mut errors: BTreeMap<(String, String, String, bool), u64> = BTreeMap::new();
    let mut merged = MeasuredRun {
        preset_name: first.preset_name.clone(),
        started_at: runs.iter().filter_map(|r| r.started_at).min(),
        ended_at: runs.iter().filter_map(|r| r.ended_at).max(),
        duration_secs: runs.iter().map(|r| r.duration_secs).fold(0.0, f64::max),
        window_secs,
        interrupted: runs.iter().any(|r| r.interrupted),
        aborted: runs.iter().find_map(|r| r.aborted.clone()),
        interruption: runs.iter().find_map(|r| r.interruption.clone()),
        abort_rule: runs.iter().find_map(|r| r.abort_rule.clone()),
        ..MeasuredRun::default()
    };

    for run in runs {
        for stats in &run.requests {
            totals.entry(stats.key()).or_default().merge(stats);
        }
        if windows.len() < run.windows.len() {
            windows.resize_with(run.windows.len(), WindowStats::default);
        }
        for (window, theirs) in windows.iter_mut().zip(&run.windows) {
            window.merge(theirs);
        }
        if let Some(theirs) = &run.stop_phase {
            let phase = merged.stop_phase.get_or_insert_with(|| WindowStats {
                start_secs: theirs.start_secs,
                ..WindowStats::default()
            });
            phase.start_secs = phase.start_secs.min(theirs.start_secs);
            phase.merge(theirs);
        }
        for e in &run.errors {
            *errors
                .entry((
                    e.method.clone(),
                    e.name.clone(),
                    e.error.clone(),
                    e.expected,
                ))
                .or_insert(0) += e.occurrences;
        }

        merged.auth.merge(&run.auth);
        merged.rate_limit.merge(&run.rate_limit);
        merged.websocket.merge(&run.websocket);
        merged.cleanup.merge(&run.cleanup);
        for (class, starts) in &run.user_starts {
            merged
                .user_starts
                .entry(class.clone())
                .or_default()
                .merge(starts);
        }
        if let Some(theirs) = &run.arrivals {
            match merged.arrivals.as_mut() {
                Some(ours) => ours.merge(theirs),
                None => merged.arrivals = Some(theirs.clone()),
            }
        }
    }

    for (i, window) in windows.iter_mut().enumerate() {
        window.start_secs = i as f64 * window_secs;
    }
    merged.requests = totals.into_values().collect();
    merged.windows = windows;
    merged.errors = errors
        .into_iter()
        .map(
            |((method, name, error, expected), occurrences)| ErrorCount {
                method,
                name,
                error,
                occurrences,
                expected,
            },
        )
        .collect();
    sort_errors(&mut merged.errors);
    merged.users_over_time = users_per_second(runs);
    merged.max_users = merged
        .users_over_time
        .iter()
        .map(|s| s.users)
        .max()
        .unwrap_or(0);
    // The workers start together, so their own clocks line up to within the start signal.
    merged.first_user_secs = runs
        .iter()
        .filter_map(|r| r.first_user_secs)
        .reduce(f64::min);
    merged.last_user_secs = runs
        .iter()
        .filter_map(|r| r.last_user_secs)
        .reduce(f64::max);
    Ok(merged)
}

/// Each worker's users by whole second of the run (its last sample in that second), summed.
fn users_per_second(runs: &[MeasuredRun]) -> Vec<UserSample> {
    let per_worker: Vec<BTreeMap<u64, u64>> = runs
        .iter()
        .map(|r| {
            r.users_over_time
                .iter()
                .map(|s| (s.t_secs.max(0.0).round() as u64, s.users))
                .collect()
        })
        .collect();
    let Some(last) = per_worker
        .iter()
        .filter_map(|m| m.keys().next_back().copied())
        .max()
    else {
        return Vec::new();
    };
    let first = per_worker
        .iter()
        .filter_map(|m| m.keys().next().copied())
        .min()
        .unwrap_or(0);
    (first..=last)
        .map(|second| {
            let users = per_worker
                .iter()
                .map(|samples| {
                    let in_range = samples.keys().next_back().is_some_and(|end| second <= *end);
                    match samples.range(..=second).next_back() {
                        Some((_, users)) if in_range => *users,
                        _ => 0,
                    }
                })
                .sum();
            UserSample {
                t_secs: second as f64,
                users,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Ledger, Observation, Outcome, RequestKind};
    use std::time::{Duration, Instant};

    fn observe(ledger: &Ledger, name: &'static str, us: u64, outcome: &Outcome, at: Instant) {
        ledger.record(&Observation {
            kind: RequestKind::Http,
            method: "GET",
            name,
            user_class: "AuthenticatedUser",
            started: at,
            duration: Duration::from_micros(us),
            service: None,
            status: Some(match outcome {
                Outcome::RateLimited => 429,
                Outcome::Failure(_) => 500,
                _ => 200,
            }),
            outcome,
            bytes: 10,
        });
    }

    /// The same requests recorded by three ledgers (one per worker) or one ledger.
    #[test]
    fn merging_workers_equals_one_process_measuring_everything() {
        let now = Instant::now();
        let workers: Vec<Ledger> = (0..3)
            .map(|_| Ledger::new(Duration::from_secs(10)))
            .collect();
        let all = Ledger::new(Duration::from_secs(10));
        for i in 0..3000u64 {
            let us = (i * 7919) % 400_000 + 50;
            let name = if i % 4 == 0 { "/api/stats" } else { "/health" };
            let outcome = match i % 97 {
                0 => Outcome::Failure(format!("500 boom {}", i % 2)),
                1..=9 => Outcome::RateLimited,
                10 => Outcome::ExpectedError("401 unknown account".into()),
                _ => Outcome::Success,
            };
            observe(&workers[(i % 3) as usize], name, us, &outcome, now);
            observe(&all, name, us, &outcome, now);
        }
        // The cleanup after the stop: its own phase, merged too.
        for ledger in workers.iter().chain([&all]) {
            ledger.mark_stop();
        }
        let later = Instant::now();
        for i in 0..30u64 {
            let outcome = if i % 5 == 0 {
                Outcome::RateLimited
            } else {
                Outcome::Success
            };
            observe(
                &workers[(i % 3) as usize],
                "/logout",
                i * 100,
                &outcome,
                later,
            );
            observe(&all, "/logout", i * 100, &outcome, later);
        }
        workers[0].auth(|a| a.registered += 2);
        workers[2].auth(|a| a.registered += 3);
        workers[1].user_refused("AuthenticatedUser", "login failed", true);
        workers[2].user_refused("AuthenticatedUser", "login failed", true);
        workers[0].websocket_opened();
        workers[1].websocket_opened();
        workers[1].websocket_closed(Some(1000));

        let runs: Vec<MeasuredRun> = workers.iter().map(|l| l.snapshot("load", false)).collect();
        let merged = merge(&runs).expect("merge");
        let one = all.snapshot("load", false);
        assert_eq!(merged.requests, one.requests);
        assert_eq!(merged.windows, one.windows);
        let phase = |run: &MeasuredRun| run.stop_phase.clone().expect("stop phase").requests;
        assert_eq!(phase(&merged), phase(&one));
        assert_eq!(phase(&merged)["GET /logout"].rate_limited_times.count, 6);
        // Every outcome's histogram merges exactly, not only the judged one.
        let (m, o) = (
            merged.combined(RequestKind::Http),
            one.combined(RequestKind::Http),
        );
        assert!(m.rate_limited_times.count > 0 && m.expected_error_times.count > 0);
        assert_eq!(m.rate_limited_times, o.rate_limited_times);
        assert_eq!(m.expected_error_times, o.expected_error_times);
        assert_eq!(m.judged_times(true), o.judged_times(true));
        assert_eq!(merged.errors, one.errors);
        assert_eq!(merged.rate_limit, one.rate_limit);
        for p in [50.0, 90.0, 95.0, 99.0, 99.9] {
            assert_eq!(
                merged.combined(RequestKind::Http).times.percentile_us(p),
                one.combined(RequestKind::Http).times.percentile_us(p)
            );
        }
        assert_eq!(merged.auth.registered, 5);
        assert_eq!(merged.auth.users_refused["login failed"], 2);
        assert_eq!(
            merged.user_starts["AuthenticatedUser"].refused["login failed"],
            2
        );
        assert_eq!(merged.websocket.connections_opened, 2);
        assert_eq!(
            merged.websocket.peak_concurrent, 2,
            "upper bound: sum of peaks"
        );
        assert_eq!(merged.websocket.closes_by_code["1000"], 1);
    }

    #[test]
    fn windows_align_by_index_and_duration_is_the_longest() {
        let mut a = MeasuredRun {
            window_secs: 10.0,
            duration_secs: 30.0,
            ..MeasuredRun::default()
        };
        let mut stats = RequestStats {
            kind: Some(RequestKind::Http),
            method: "GET".into(),
            name: "/health".into(),
            successes: 1,
            ..RequestStats::default()
        };
        stats.times.record(1000);
        for _ in 0..3 {
            let mut w = WindowStats::default();
            w.requests.insert(stats.key(), stats.clone());
            a.windows.push(w);
        }
        let mut b = a.clone();
        b.windows.truncate(1);
        b.duration_secs = 12.5;
        let merged = merge(&[a, b]).expect("merge");
        assert_eq!(merged.duration_secs, 30.0);
        let counts: Vec<u64> = merged
            .windows
            .iter()
            .map(|w| w.combined(RequestKind::Http).total())
            .collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(merged.windows[2].start_secs, 20.0);

        let c = MeasuredRun {
            window_secs: 5.0,
            ..MeasuredRun::default()
        };
        assert_eq!(
            merge(&[merged, c]),
            Err(MergeError::WindowMismatch(10.0, 5.0))
        );
        assert_eq!(merge(&[]), Err(MergeError::Empty));
    }

    #[test]
    fn users_are_summed_second_by_second() {
        let samples = |points: &[(f64, u64)]| MeasuredRun {
            window_secs: 10.0,
            users_over_time: points
                .iter()
                .map(|&(t_secs, users)| UserSample { t_secs, users })
                .collect(),
            ..MeasuredRun::default()
        };
        let a = samples(&[(0.0, 0), (1.01, 2), (2.0, 4), (3.02, 4)]);
        // b has no sample in second 2: its previous one holds.
        let b = samples(&[(0.01, 1), (0.99, 3), (2.6, 3)]);
        // c ended after second 1: it counts for nothing after.
        let c = samples(&[(0.0, 1), (1.0, 1)]);
        let merged = merge(&[a, b, c]).expect("merge");
        let got: Vec<(f64, u64)> = merged
            .users_over_time
            .iter()
            .map(|s| (s.t_secs, s.users))
            .collect();
        assert_eq!(got, [(0.0, 2), (1.0, 6), (2.0, 7), (3.0, 7)]);
        assert_eq!(merged.max_users, 7);
    }
}
