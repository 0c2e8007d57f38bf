//! The open model: work that starts at a rate, whatever the server's speed.
//!
//! An *arrival* is one task iteration: a user of the pool takes it, runs one task of its
//! class (the next in its weighted order), and goes back to the pool. Users are reused, as
//! k6's arrival-rate executors reuse their VUs: a new account per arrival would make the
//! API's bcrypt registration and its rate-limited login the only thing measured. The rate
//! is constant (`--rate`) or ramps linearly through stages (`--rate-stages`), its starts
//! evenly spaced or a Poisson process (`--arrivals`).

use crate::duration::{HumanDuration, parse_duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an open-model run waits, after its users are launched, for the pre-started
/// ones to be ready before its first arrival.
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// How the starts are spaced (an option of the command line).
pub use crate::cli::Spacing;

/// One stage of a ramping rate: from the rate before it to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateStage {
    pub duration: Duration,
    /// Arrivals per second at the stage's end.
    pub target: f64,
}

/// The arrival rate over the run: piecewise linear from `start_rate` through its stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSchedule {
    pub start_rate: f64,
    pub stages: Vec<RateStage>,
}

/// An open-model run's arrivals and its pool of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenModel {
    pub schedule: RateSchedule,
    pub spacing: Spacing,
    /// Users started before the first arrival (their on-start work done).
    pub pre_started: usize,
    /// The pool's limit: users beyond the pre-started ones start when an arrival finds every
    /// started user busy; once all are busy, an arrival is dropped.
    pub max_users: usize,
    /// This process's part of a distributed run's arrivals (none: all of them).
    #[serde(default)]
    pub share: Option<Share>,
}

/// One worker's part of a distributed run's arrivals: the rate and the pool divided by
/// `of`, its even starts offset so that the workers' starts interleave into the whole
/// run's (Poisson starts need no offset: the sum of Poisson processes is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub index: usize,
    pub of: usize,
    /// The whole run's schedule, in words.
    pub whole: String,
}

impl OpenModel {
    /// Worker `index`'s part of `of` workers.
    pub fn share(&self, index: usize, of: usize) -> OpenModel {
        let of = of.max(1);
        let part = |n: usize| n.div_ceil(of).max(1);
        let divide = |rate: f64| rate / of as f64;
        OpenModel {
            schedule: RateSchedule {
                start_rate: divide(self.schedule.start_rate),
                stages: self
                    .schedule
                    .stages
                    .iter()
                    .map(|s| RateStage {
                        duration: s.duration,
                        target: divide(s.target),
                    })
                    .collect(),
            },
            spacing: self.spacing,
            pre_started: part(self.pre_started),
            max_users: part(self.max_users),
            share: Some(Share {
                index,
                of,
                whole: self.schedule.describe(),
            }),
        }
    }

    /// The schedule in words, the whole run's on a worker.
    pub fn describe(&self) -> String {
        match &self.share {
            Some(share) => format!("{} over {} workers", share.whole, share.of),
            None => self.schedule.describe(),
        }
    }

    /// The work (in arrivals) at which the first start falls; the next ones follow by
    /// [`next_work`]. Even starts sit mid-gap; a share's sit at its own fraction of the gap.
    pub fn first_work(&self) -> f64 {
        match (self.spacing, &self.share) {
            (Spacing::Even, Some(share)) => {
                (share.index % share.of) as f64 / share.of as f64 + 0.5 / share.of as f64
            }
            (spacing, _) => first_work(spacing),
        }
    }
}

impl RateSchedule {
    /// A constant rate for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        RateSchedule {
            start_rate: rate,
            stages: vec![RateStage {
                duration,
                target: rate,
            }],
        }
    }

    /// `30s:10,1m:50,30s:0`: each stage `DURATION:RATE`, reached linearly from the rate
    /// before it (the first from `start_rate`).
    pub fn parse(start_rate: f64, text: &str) -> Result<Self, String> {
        let mut stages = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (duration, rate) = part.split_once(':').ok_or_else(|| {
                format!(
                    "--rate-stages: '{part}' is not DURATION:RATE (for example \
                     '30s:10,1m:50,30s:0': 10/s reached in 30 s, then 50/s in a minute, then 0)"
                )
            })?;
            let duration =
                parse_duration(duration.trim()).map_err(|e| format!("--rate-stages: {e}"))?;
            let target = parse_rate("--rate-stages", rate.trim())?;
            if duration.is_zero() {
                return Err(format!(
                    "--rate-stages: the stage '{part}' lasts no time (give it a duration)"
                ));
            }
            stages.push(RateStage { duration, target });
        }
        if stages.is_empty() {
            return Err("--rate-stages needs at least one DURATION:RATE stage".into());
        }
        let schedule = RateSchedule { start_rate, stages };
        if schedule.planned_arrivals() < 1.0 {
            return Err(format!(
                "--rate-stages '{text}' plans no arrival at all: give a stage a rate above 0"
            ));
        }
        Ok(schedule)
    }

    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest rate the schedule reaches.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start_rate, f64::max)
    }

    /// How many arrivals the schedule plans in all (the area under its rate).
    pub fn planned_arrivals(&self) -> f64 {
        let mut from = self.start_rate;
        let mut total = 0.0;
        for stage in &self.stages {
            total += (from + stage.target) / 2.0 * stage.duration.as_secs_f64();
            from = stage.target;
        }
        total
    }

    /// When the planned arrivals reach `work` (seconds from the start), or `None` past the
    /// schedule's end: the inverse of the rate's integral, solved on each linear stage.
    pub fn time_at(&self, work: f64) -> Option<f64> {
        let mut from = self.start_rate;
        let mut left = work;
        let mut elapsed = 0.0;
        for stage in &self.stages {
            let d = stage.duration.as_secs_f64();
            let area = (from + stage.target) / 2.0 * d;
            if left <= area && area > 0.0 {
                // rate(s) = a + 2k·s on this stage; a·s + k·s² = left, solved in the form
                // that holds for a = 0 and for a falling rate alike.
                let a = from;
                let k = (stage.target - from) / (2.0 * d);
                let root = (a * a + 4.0 * k * left).max(0.0).sqrt();
                let s = if a + root > 0.0 {
                    2.0 * left / (a + root)
                } else {
                    0.0
                };
                return Some(elapsed + s.min(d));
            }
            left -= area;
            elapsed += d;
            from = stage.target;
        }
        None
    }

    /// The stages as the outputs show them: `10/s for 1m` or `0/s → 10/s in 30s, → 50/s in 1m`.
    pub fn describe(&self) -> String {
        if self.stages.len() == 1 && self.stages[0].target == self.start_rate {
            return format!(
                "{}/s for {}",
                trim(self.start_rate),
                HumanDuration(self.stages[0].duration)
            );
        }
        let steps: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("→ {}/s in {}", trim(s.target), HumanDuration(s.duration)))
            .collect();
        format!("{}/s {}", trim(self.start_rate), steps.join(", "))
    }
}

/// A rate as the outputs show it: `10`, `2.5`.
pub fn trim(rate: f64) -> String {
    let text = format!("{rate:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A rate given on the command line: a finite number of arrivals per second, 0 or more.
pub fn parse_rate(option: &str, text: &str) -> Result<f64, String> {
    let text = text.trim().trim_end_matches("/s");
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "{option}: '{text}' is not a rate: give arrivals per second, a number of 0 or more \
             (for example 25 or 2.5)"
        )),
    }
}

/// The next arrival's place in the rate's integral after `work`: one further when evenly
/// spaced, an exponential draw of mean one for a Poisson process.
pub fn next_work(work: f64, spacing: Spacing) -> f64 {
    match spacing {
        Spacing::Even => work + 1.0,
        Spacing::Poisson => {
            use rand::Rng;
            let u: f64 = rand::rng().random_range(0.0..1.0);
            work - (1.0 - u).ln()
        }
    }
}

/// Where the first arrival sits in the integral: half a gap in, so that a constant rate's
/// starts sit in the middle of their slots and `rate × duration` of them fit.
pub fn first_work(spacing: Spacing) -> f64 {
    match spacing {
        Spacing::Even => 0.5,
        Spacing::Poisson => next_work(0.0, spacing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(schedule: &RateSchedule, spacing: Spacing) -> Vec<f64> {
        let mut times = Vec::new();
        let mut work = first_work(spacing);
        while let Some(t) = schedule.time_at(work) {
            times.push(t);
            work = next_work(work, spacing);
        }
        times
    }

    #[test]
    fn shares_of_even_starts_interleave_into_the_whole_runs() {
        let whole = OpenModel {
            schedule: RateSchedule::parse(0.0, "2s:30,1s:30").expect("stages"),
            spacing: Spacing::Even,
            pre_started: 5,
            max_users: 11,
            share: None,
        };
        let times = |open: &OpenModel| {
            let mut times = Vec::new();
            let mut work = open.first_work();
            while let Some(t) = open.schedule.time_at(work) {
                times.push(t);
                work = next_work(work, open.spacing);
            }
            times
        };
        let mut merged: Vec<f64> = (0..3).flat_map(|k| times(&whole.share(k, 3))).collect();
        merged.sort_by(f64::total_cmp);
        let alone = times(&whole);
        assert_eq!(merged.len(), alone.len());
        for (a, b) in merged.iter().zip(&alone) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let part = whole.share(1, 3);
        assert_eq!((part.pre_started, part.max_users), (2, 4));
        assert_eq!(part.schedule.peak(), 10.0);
        assert_eq!(
            part.describe(),
            format!("{} over 3 workers", whole.describe())
        );
    }

    #[test]
    fn a_constant_rate_starts_evenly_and_fits_rate_times_duration() {
        let schedule = RateSchedule::constant(10.0, Duration::from_secs(2));
        let times = arrivals(&schedule, Spacing::Even);
        assert_eq!(times.len(), 20);
        assert!((times[0] - 0.05).abs() < 1e-9, "{}", times[0]);
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.1).abs() < 1e-9);
        }
    }

    #[test]
    fn a_ramp_from_zero_follows_the_integral_of_its_rate() {
        // 0 → 20/s over 10 s: 100 arrivals; the k-th at sqrt(k) (Λ(t) = t²).
        let schedule = RateSchedule::parse(0.0, "10s:20").expect("valid");
        assert_eq!(schedule.planned_arrivals(), 100.0);
        let times = arrivals(&schedule, Spacing::Even);
        assert_eq!(times.len(), 100);
        for (k, t) in times.iter().enumerate() {
            let expected = (k as f64 + 0.5).sqrt();
            assert!(
                (t - expected).abs() < 1e-9,
                "arrival {k} at {t}, not {expected}"
            );
        }
    }

    #[test]
    fn a_falling_rate_and_a_pause_are_followed_too() {
        // 10/s → 0 over 2 s (10 arrivals), a pause at 0 for 1 s, then 10/s for 1 s.
        let schedule = RateSchedule::parse(10.0, "2s:0,1s:0,1s:10,1s:10").expect("valid");
        assert_eq!(schedule.duration(), Duration::from_secs(5));
        let times = arrivals(&schedule, Spacing::Even);
        assert_eq!(times.len(), 10 + 5 + 10);
        assert!(times.iter().all(|t| !(2.0..3.0).contains(t)), "{times:?}");
        assert!(times.windows(2).all(|p| p[1] > p[0]));
    }

    #[test]
    fn poisson_arrivals_keep_the_mean_rate() {
        let schedule = RateSchedule::constant(200.0, Duration::from_secs(20));
        let n = arrivals(&schedule, Spacing::Poisson).len() as f64;
        // 4000 expected, standard deviation about 63: six of them either way.
        assert!((n - 4000.0).abs() < 400.0, "{n} arrivals");
    }

    #[test]
    fn bad_stages_are_named_with_the_way_out() {
        for (text, says) in [
            ("30s", "DURATION:RATE"),
            ("30s:-1", "not a rate"),
            ("0s:10", "lasts no time"),
            ("10s:0", "plans no arrival"),
            ("x:10", "--rate-stages"),
        ] {
            let err = RateSchedule::parse(0.0, text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
        assert_eq!(
            RateSchedule::parse(0.0, "30s:10,1m:50").map(|s| s.describe()),
            Ok("0/s → 10/s in 30s, → 50/s in 1m".to_string())
        );
        assert_eq!(
            RateSchedule::constant(2.5, Duration::from_secs(60)).describe(),
            "2.5/s for 1m"
        );
    }
}
