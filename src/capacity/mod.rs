//! The capacity search: the highest arrival rate at which every chosen target holds.
//!
//! One open-model run whose rate is set level by level: each level has a warm-up (not
//! judged) and a steady window judged against the targets. The rate climbs by a factor
//! until a level fails (or the ceiling `--max-rate` is reached), is bisected between the
//! last level that held and the first that failed until they are within the tolerance,
//! and the level found is measured once more (the confirmation) before it is accepted; a
//! confirmation that fails steps down by the tolerance and confirms again. The search
//! driving the run is in [`drive`]; this module holds its rules, which need no server.

pub mod drive;

use crate::measure::{ArrivalStats, RequestKind, RequestStats};
use crate::verdict::{Rates, Targets};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The version of the capacity result's JSON (`docs/METRICS_JSON.md`, "Capacity").
pub const CAPACITY_SCHEMA_VERSION: u64 = 1;

/// Most confirmations that may fail before the search gives up on a stable level.
const MAX_STEP_DOWNS: usize = 3;

/// How the search goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    /// The first level's rate, in arrivals per second.
    pub start_rate: f64,
    /// The hard ceiling: no level goes above it.
    pub max_rate: f64,
    /// Each level of the climb is this many times the one before.
    pub step_factor: f64,
    /// The bisection stops when the failing rate is within this share above the holding one.
    pub tolerance: f64,
    /// Each level's warm-up, not judged.
    pub warmup: Duration,
    /// Each level's steady window, judged.
    pub level_duration: Duration,
    /// Which targets a level must meet.
    pub targets: Vec<LevelTarget>,
}

/// A target a level is judged on (an option of the command line).
pub use crate::cli::LevelTarget;

/// Why a level was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Climb,
    Bisect,
    Confirm,
}

impl Purpose {
    /// The step of the search, as the outputs name it.
    pub fn word(self) -> &'static str {
        match self {
            Purpose::Climb => "climb",
            Purpose::Bisect => "bisection",
            Purpose::Confirm => "confirmation",
        }
    }
}

/// What one level measured, and its judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub rate: f64,
    pub purpose: Purpose,
    /// Seconds into the run when its steady window began and ended.
    pub start_secs: f64,
    pub end_secs: f64,
    /// Ended before its window because a target was already clearly missed.
    pub stopped_early: bool,
    pub passed: bool,
    /// Why it failed, in words (`P95 812 ms of POST /api/auth/login/json above 500 ms`).
    pub failed_because: Option<String>,
    /// The request (`METHOD name`) that limited it, when one did.
    pub limited_by: Option<String>,
    pub p95_ms: Option<f64>,
    pub success_rate: f64,
    pub error_rate: f64,
    pub judged_requests: u64,
    /// Judged HTTP requests a second over the window.
    pub requests_per_second: f64,
    pub arrivals_planned: u64,
    pub arrivals_dropped: u64,
    pub arrivals_late: u64,
    /// The most users busy at once during the window.
    pub peak_busy_users: u64,
}

/// What a level's window measured, before it is judged.
#[derive(Debug, Clone, Default)]
pub struct LevelFigures {
    pub requests: BTreeMap<String, RequestStats>,
    pub arrivals: ArrivalStats,
    pub peak_busy_users: u64,
}

impl LevelFigures {
    fn http(&self) -> RequestStats {
        let mut all = RequestStats::default();
        for r in self
            .requests
            .values()
            .filter(|r| r.kind == Some(RequestKind::Http))
        {
            all.merge(r);
        }
        all
    }
}

/// Judges a level's figures against the chosen targets. `early`: judged while its window
/// is still open, where only a clear miss (twice the target, with enough requests) counts.
pub fn judge_level(
    figures: &LevelFigures,
    settings: &SearchSettings,
    targets: &Targets,
    early: bool,
) -> (bool, Option<String>, Option<String>, Rates, Option<f64>) {
    let http = figures.http();
    let count_429 = targets.count_429_as_failure;
    let rates = Rates::of(&http, count_429);
    let times = http.judged_times(count_429);
    let p95 = (times.count > 0).then(|| times.percentile_ms(95.0));
    let factor = if early { 2.0 } else { 1.0 };
    if early && rates.judged < 20 && figures.arrivals.dropped == 0 {
        return (true, None, None, rates, p95);
    }
    let wants = |t: LevelTarget| settings.targets.contains(&t);
    let a = &figures.arrivals;
    if wants(LevelTarget::Arrivals) {
        let dropped_limit = if early { a.planned / 20 } else { 0 };
        if a.dropped > dropped_limit {
            return (
                false,
                Some(format!(
                    "{} of {} arrivals dropped: all {} users of the pool were busy",
                    a.dropped, a.planned, a.max_users
                )),
                None,
                rates,
                p95,
            );
        }
        let late_pct = a.late as f64 * 100.0 / a.started().max(1) as f64;
        if !early && a.too_many_late() {
            return (
                false,
                Some(format!("{late_pct:.1}% of the starts came late")),
                None,
                rates,
                p95,
            );
        }
    }
    if rates.judged == 0 {
        let why = "no judged HTTP request in the window".to_string();
        return (early, (!early).then_some(why), None, rates, p95);
    }
    if wants(LevelTarget::P95)
        && let Some(p95) = p95
        && p95 >= targets.p95_ms * factor
    {
        let slowest = slowest(figures, count_429);
        let why = match &slowest {
            Some((key, ms)) => format!(
                "P95 {} above {} ms (slowest: {key}, P95 {})",
                crate::verdict::fmt_ms(p95),
                crate::verdict::trim_num(targets.p95_ms),
                crate::verdict::fmt_ms(*ms)
            ),
            None => format!(
                "P95 {} above {} ms",
                crate::verdict::fmt_ms(p95),
                targets.p95_ms
            ),
        };
        return (false, Some(why), slowest.map(|(k, _)| k), rates, Some(p95));
    }
    let error_limit = (targets.error_rate * factor).min(100.0);
    if wants(LevelTarget::Errors) && rates.error_rate > error_limit {
        let worst = most_failed(figures);
        return (
            false,
            Some(format!(
                "error rate {:.2}% above {}%{}",
                rates.error_rate,
                crate::verdict::trim_num(targets.error_rate),
                worst
                    .as_ref()
                    .map(|k| format!(" (most failures: {k})"))
                    .unwrap_or_default()
            )),
            worst,
            rates,
            p95,
        );
    }
    let success_floor = 100.0 - (100.0 - targets.success_rate) * factor;
    if wants(LevelTarget::Success) && rates.success_rate < success_floor {
        let worst = most_failed(figures);
        return (
            false,
            Some(format!(
                "success rate {:.2}% below {}%",
                rates.success_rate,
                crate::verdict::trim_num(targets.success_rate)
            )),
            worst,
            rates,
            p95,
        );
    }
    (true, None, None, rates, p95)
}

/// The HTTP request with the highest P95 among those with at least 1% of the requests.
fn slowest(figures: &LevelFigures, count_429: bool) -> Option<(String, f64)> {
    let total: u64 = figures.requests.values().map(|r| r.times.count).sum();
    figures
        .requests
        .values()
        .filter(|r| r.kind == Some(RequestKind::Http))
        .filter(|r| r.times.count * 100 >= total.max(1))
        .map(|r| (r.key(), r.judged_times(count_429).percentile_ms(95.0)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn most_failed(figures: &LevelFigures) -> Option<String> {
    figures
        .requests
        .values()
        .filter(|r| r.failures > 0)
        .max_by_key(|r| r.failures)
        .map(|r| r.key())
}

/// What the search decides after a level.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Measure this rate next.
    Measure(f64, Purpose),
    /// The search is over.
    Done(Finding),
}

/// How the search ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Finding {
    /// The highest rate that held, confirmed; `failed_at` is the lowest that failed.
    Found { rate: f64, failed_at: Option<f64> },
    /// Even the ceiling held: the capacity is at least `--max-rate`.
    AtCeiling { rate: f64 },
    /// The first level already failed: the capacity is below `--start-rate`.
    BelowStart { rate: f64 },
    /// Confirmations kept failing: no level held twice.
    Unstable { last_tried: f64 },
}

/// The search's state: the levels so far, the highest rate that held and the lowest that
/// failed.
#[derive(Debug, Clone)]
pub struct Search {
    pub settings: SearchSettings,
    pub levels: Vec<Level>,
    held: Option<f64>,
    failed: Option<f64>,
    step_downs: usize,
    /// The level found by the climb or bisection, before its confirmation.
    found: Option<f64>,
}

impl Search {
    pub fn new(settings: SearchSettings) -> Self {
        Search {
            settings,
            levels: Vec::new(),
            held: None,
            failed: None,
            step_downs: 0,
            found: None,
        }
    }

    /// The first level to measure.
    pub fn first(&self) -> (f64, Purpose) {
        (
            self.settings.start_rate.min(self.settings.max_rate),
            Purpose::Climb,
        )
    }

    /// Takes a measured level and says what comes next.
    pub fn record(&mut self, level: Level) -> Next {
        let (rate, passed, purpose) = (level.rate, level.passed, level.purpose);
        self.levels.push(level);
        let s = &self.settings;
        match purpose {
            Purpose::Confirm => {
                if passed {
                    return Next::Done(if self.failed.is_none() && rate >= s.max_rate {
                        Finding::AtCeiling { rate }
                    } else {
                        Finding::Found {
                            rate,
                            failed_at: self.failed,
                        }
                    });
                }
                self.step_downs += 1;
                self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
                let lower = rate * (1.0 - s.tolerance);
                if self.step_downs > MAX_STEP_DOWNS || lower < s.start_rate * 0.5 {
                    return Next::Done(Finding::Unstable { last_tried: rate });
                }
                Next::Measure(lower, Purpose::Confirm)
            }
            Purpose::Climb | Purpose::Bisect => {
                if passed {
                    self.held = Some(rate);
                } else {
                    self.failed = Some(rate);
                }
                let Some(held) = self.held else {
                    return Next::Done(Finding::BelowStart { rate });
                };
                match self.failed {
                    None if held >= s.max_rate => self.confirm(held),
                    None => Next::Measure((held * s.step_factor).min(s.max_rate), Purpose::Climb),
                    Some(failed) if (failed - held) <= held * s.tolerance => self.confirm(held),
                    Some(failed) => Next::Measure((held + failed) / 2.0, Purpose::Bisect),
                }
            }
        }
    }

    fn confirm(&mut self, rate: f64) -> Next {
        self.found = Some(rate);
        Next::Measure(rate, Purpose::Confirm)
    }

    /// The level the climb or bisection found, before its confirmation.
    pub fn found_before_confirmation(&self) -> Option<f64> {
        self.found
    }
}

/// A search's result, as its JSON, JUnit and HTML show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    pub schema_version: u64,
    pub run_id: String,
    pub host: String,
    pub scenario: String,
    pub settings: SearchSettings,
    /// The P95 target the levels were judged on, in milliseconds.
    pub p95_target_ms: f64,
    pub finding: Finding,
    /// The capacity in arrivals (task iterations) a second; 0 when none held.
    pub capacity_rate: f64,
    /// The accepted level's figures (its confirmation).
    pub accepted: Option<Level>,
    /// The first measurement of the accepted rate, beside its confirmation.
    pub first_measurement: Option<Level>,
    /// How far the two measurements of the accepted rate differ in P95, as a share.
    pub p95_noise: Option<f64>,
    /// The search's resolution and the confirmation's disagreement together, as a share of
    /// the capacity: a drop within it cannot be told from noise.
    pub noise_share: f64,
    /// The lowest level that failed, and why.
    pub failed_level: Option<Level>,
    pub levels: Vec<Level>,
    /// The comparison with `--baseline`, when given.
    pub baseline: Option<BaselineComparison>,
    /// Interrupted before the search ended: its figures hold nothing.
    pub interrupted: bool,
    /// The one line the console prints.
    pub summary: String,
}

/// `--baseline` against a saved capacity result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    pub file: String,
    pub baseline_rate: f64,
    pub baseline_noise_share: f64,
    /// (baseline − now) / baseline; negative when capacity rose.
    pub drop_share: f64,
    pub max_drop_share: f64,
    pub passed: bool,
    pub explanation: String,
}

impl CapacityResult {
    /// Builds the result of a finished (or interrupted) search.
    pub fn of(
        search: &Search,
        finding: Finding,
        run_id: &str,
        host: &str,
        scenario: &str,
        interrupted: bool,
    ) -> Self {
        let capacity_rate = match &finding {
            Finding::Found { rate, .. } | Finding::AtCeiling { rate } if !interrupted => *rate,
            _ => 0.0,
        };
        let at = |purpose: Option<Purpose>| {
            search
                .levels
                .iter()
                .rev()
                .find(|l| {
                    l.passed
                        && (l.rate - capacity_rate).abs() < 1e-9
                        && purpose.is_none_or(|p| l.purpose == p)
                })
                .cloned()
        };
        let accepted = (capacity_rate > 0.0)
            .then(|| at(Some(Purpose::Confirm)))
            .flatten();
        let first_measurement = (capacity_rate > 0.0)
            .then(|| {
                search
                    .levels
                    .iter()
                    .find(|l| l.passed && (l.rate - capacity_rate).abs() < 1e-9)
                    .filter(|l| l.purpose != Purpose::Confirm)
                    .cloned()
            })
            .flatten();
        let p95_noise = match (&accepted, &first_measurement) {
            (Some(a), Some(f)) => match (a.p95_ms, f.p95_ms) {
                (Some(x), Some(y)) if x.max(y) > 0.0 => Some((x - y).abs() / x.max(y)),
                _ => None,
            },
            _ => None,
        };
        // The resolution of the search, and how far its confirmations had to step down.
        let found = search.found_before_confirmation().unwrap_or(capacity_rate);
        let stepped = if found > 0.0 && capacity_rate > 0.0 {
            ((found - capacity_rate) / found).max(0.0)
        } else {
            0.0
        };
        let noise_share = search.settings.tolerance.max(stepped);
        let failed_level = search
            .levels
            .iter()
            .filter(|l| !l.passed)
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
            .cloned();
        let mut result = CapacityResult {
            schema_version: CAPACITY_SCHEMA_VERSION,
            run_id: run_id.to_string(),
            host: host.to_string(),
            scenario: scenario.to_string(),
            settings: search.settings.clone(),
            p95_target_ms: 0.0,
            finding,
            capacity_rate,
            accepted,
            first_measurement,
            p95_noise,
            noise_share,
            failed_level,
            levels: search.levels.clone(),
            baseline: None,
            interrupted,
            summary: String::new(),
        };
        result.summary = result.line();
        result
    }

    /// Whether the search found a capacity it can stand by (and the baseline held).
    pub fn passed(&self) -> bool {
        !self.interrupted
            && matches!(
                self.finding,
                Finding::Found { .. } | Finding::AtCeiling { .. }
            )
            && self.baseline.as_ref().is_none_or(|b| b.passed)
    }

    /// `capacity: 40 arrivals/s (52 req/s, 12 users) at P95 430 ms, errors 0.1%; limited by
    /// P95 of POST /api/auth/login/json at 44/s`.
    pub fn line(&self) -> String {
        let limit = self.failed_level.as_ref().map(|l| {
            format!(
                "limited at {}/s by {}",
                crate::plan::open::trim(l.rate),
                l.failed_because.as_deref().unwrap_or("a missed target")
            )
        });
        if self.interrupted {
            return "capacity: not found: the search was interrupted".to_string();
        }
        match (&self.finding, &self.accepted) {
            (Finding::Found { rate, .. } | Finding::AtCeiling { rate }, Some(l)) => {
                let ceiling = matches!(self.finding, Finding::AtCeiling { .. });
                format!(
                    "capacity: {}{} arrivals/s ({:.0} req/s, {} users) at P95 {}, errors {:.2}%; {}",
                    if ceiling { "at least " } else { "" },
                    crate::plan::open::trim(*rate),
                    l.requests_per_second,
                    l.peak_busy_users,
                    l.p95_ms.map_or("n/a".to_string(), crate::verdict::fmt_ms),
                    l.error_rate,
                    if ceiling {
                        format!(
                            "every level held up to the ceiling --max-rate {}",
                            crate::plan::open::trim(self.settings.max_rate)
                        )
                    } else {
                        limit.unwrap_or_default()
                    }
                )
            }
            (Finding::BelowStart { rate }, _) => format!(
                "capacity: below {}/s, the first level (--start-rate): {}",
                crate::plan::open::trim(*rate),
                self.failed_level
                    .as_ref()
                    .and_then(|l| l.failed_because.clone())
                    .unwrap_or_default()
            ),
            (Finding::Unstable { last_tried }, _) => format!(
                "capacity: not found: no level held twice (last tried {}/s); {}",
                crate::plan::open::trim(*last_tried),
                limit.unwrap_or_default()
            ),
            _ => "capacity: not found".to_string(),
        }
    }

    /// Compares with a saved result: fails when the capacity dropped by more than
    /// `max_drop` and by more than both results' noise together.
    pub fn compare(&mut self, file: &str, base: &CapacityResult, max_drop: f64) {
        let baseline_rate = base.capacity_rate;
        let drop_share = if baseline_rate > 0.0 {
            (baseline_rate - self.capacity_rate) / baseline_rate
        } else {
            0.0
        };
        let noise = self.noise_share + base.noise_share;
        let beyond_noise = drop_share > noise;
        let passed = !(drop_share > max_drop && beyond_noise);
        let explanation = if drop_share <= 0.0 {
            format!(
                "capacity {}/s against the baseline's {}/s: no drop",
                crate::plan::open::trim(self.capacity_rate),
                crate::plan::open::trim(baseline_rate)
            )
        } else if passed && drop_share > max_drop {
            format!(
                "dropped {:.0}% (more than {:.0}%), but within the two searches' noise ({:.0}%): \
                 search again with a smaller --tolerance to tell",
                drop_share * 100.0,
                max_drop * 100.0,
                noise * 100.0
            )
        } else {
            format!(
                "dropped {:.0}% from {}/s (at most {:.0}% allowed; noise {:.0}%)",
                drop_share * 100.0,
                crate::plan::open::trim(baseline_rate),
                max_drop * 100.0,
                noise * 100.0
            )
        };
        self.baseline = Some(BaselineComparison {
            file: file.to_string(),
            baseline_rate,
            baseline_noise_share: base.noise_share,
            drop_share,
            max_drop_share: max_drop,
            passed,
            explanation,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SearchSettings {
        SearchSettings {
            start_rate: 5.0,
            max_rate: 100.0,
            step_factor: 2.0,
            tolerance: 0.1,
            warmup: Duration::from_secs(1),
            level_duration: Duration::from_secs(2),
            targets: vec![LevelTarget::P95],
        }
    }

    fn level(rate: f64, purpose: Purpose, passed: bool) -> Level {
        Level {
            rate,
            purpose,
            start_secs: 0.0,
            end_secs: 1.0,
            stopped_early: false,
            passed,
            failed_because: (!passed).then(|| "P95 900 ms above 500 ms".into()),
            limited_by: None,
            p95_ms: Some(if passed { 100.0 } else { 900.0 }),
            success_rate: 100.0,
            error_rate: 0.0,
            judged_requests: 100,
            requests_per_second: rate,
            arrivals_planned: 100,
            arrivals_dropped: 0,
            arrivals_late: 0,
            peak_busy_users: 3,
        }
    }

    /// Runs a search against a server that holds every rate up to `knee`.
    fn search_with_knee(knee: f64, s: SearchSettings) -> (Finding, Vec<(f64, Purpose)>) {
        let mut search = Search::new(s);
        let (mut rate, mut purpose) = search.first();
        let mut tried = Vec::new();
        loop {
            tried.push((rate, purpose));
            match search.record(level(rate, purpose, rate <= knee)) {
                Next::Measure(r, p) => (rate, purpose) = (r, p),
                Next::Done(finding) => return (finding, tried),
            }
            assert!(tried.len() < 40, "the search does not end: {tried:?}");
        }
    }

    #[test]
    fn the_search_climbs_bisects_to_the_tolerance_and_confirms() {
        let (finding, tried) = search_with_knee(40.0, settings());
        let Finding::Found { rate, failed_at } = finding else {
            panic!("{finding:?}");
        };
        assert!((40.0 * 0.9..=40.0).contains(&rate), "found {rate}");
        let failed_at = failed_at.expect("a failing level");
        assert!((failed_at - rate) <= rate * 0.1 + 1e-9);
        assert_eq!(
            &tried[..4],
            &[
                (5.0, Purpose::Climb),
                (10.0, Purpose::Climb),
                (20.0, Purpose::Climb),
                (40.0, Purpose::Climb)
            ]
        );
        assert_eq!(tried[4], (80.0, Purpose::Climb));
        assert_eq!(tried.last().map(|t| t.1), Some(Purpose::Confirm));
    }

    #[test]
    fn the_ceiling_is_never_passed_and_is_said() {
        let (finding, tried) = search_with_knee(1000.0, settings());
        assert_eq!(finding, Finding::AtCeiling { rate: 100.0 });
        assert!(tried.iter().all(|(r, _)| *r <= 100.0), "{tried:?}");
    }

    #[test]
    fn a_failing_first_level_stops_the_search_at_once() {
        let (finding, tried) = search_with_knee(1.0, settings());
        assert_eq!(finding, Finding::BelowStart { rate: 5.0 });
        assert_eq!(tried.len(), 1);
    }

    #[test]
    fn a_failed_confirmation_steps_down_and_confirms_again() {
        let mut search = Search::new(settings());
        assert_eq!(
            search.record(level(5.0, Purpose::Climb, true)),
            Next::Measure(10.0, Purpose::Climb)
        );
        assert_eq!(
            search.record(level(10.0, Purpose::Climb, false)),
            Next::Measure(7.5, Purpose::Bisect)
        );
        let mut next = search.record(level(7.5, Purpose::Bisect, true));
        // 7.5 → 8.75 (fails) → 8.125 (holds) → within 10%: confirm 8.125.
        next = match next {
            Next::Measure(r, p) => search.record(level(r, p, r < 8.5)),
            other => other,
        };
        next = match next {
            Next::Measure(r, p) => search.record(level(r, p, r < 8.5)),
            other => other,
        };
        let Next::Measure(rate, Purpose::Confirm) = next else {
            panic!("{next:?}");
        };
        // The confirmation fails (noise): one step of the tolerance down, confirmed.
        let Next::Measure(lower, Purpose::Confirm) =
            search.record(level(rate, Purpose::Confirm, false))
        else {
            panic!("no step down");
        };
        assert!((lower - rate * 0.9).abs() < 1e-9);
        let Next::Done(Finding::Found { rate: found, .. }) =
            search.record(level(lower, Purpose::Confirm, true))
        else {
            panic!("not found");
        };
        assert_eq!(found, lower);
        let result = CapacityResult::of(
            &search,
            Finding::Found {
                rate: found,
                failed_at: Some(rate),
            },
            "run",
            "http://127.0.0.1:1",
            "custom",
            false,
        );
        // The confirmation stepped down 10%: the noise is the tolerance, at least.
        assert!((result.noise_share - 0.1).abs() < 1e-9);
        assert!(result.passed());
    }

    #[test]
    fn a_drop_beyond_the_allowed_share_and_the_noise_fails_the_baseline() {
        let mut search = Search::new(settings());
        search.record(level(40.0, Purpose::Confirm, true));
        let found = Finding::Found {
            rate: 40.0,
            failed_at: Some(44.0),
        };
        let base = CapacityResult::of(&search, found.clone(), "a", "h", "s", false);
        let mut now_search = Search::new(SearchSettings {
            tolerance: 0.02,
            ..settings()
        });
        now_search.record(level(30.0, Purpose::Confirm, true));
        let mut now = CapacityResult::of(
            &now_search,
            Finding::Found {
                rate: 30.0,
                failed_at: Some(31.0),
            },
            "b",
            "h",
            "s",
            false,
        );
        now.compare("base.json", &base, 0.1);
        let b = now.baseline.clone().expect("compared");
        assert!((b.drop_share - 0.25).abs() < 1e-9);
        assert!(!b.passed && !now.passed(), "{}", b.explanation);

        // A drop of 12% with 10% + 2% noise is within the noise: passes, and says so.
        let mut close = CapacityResult::of(
            &now_search,
            Finding::Found {
                rate: 35.4,
                failed_at: None,
            },
            "c",
            "h",
            "s",
            false,
        );
        close.compare("base.json", &base, 0.1);
        let b = close.baseline.expect("compared");
        assert!(
            b.passed && b.explanation.contains("noise"),
            "{}",
            b.explanation
        );
    }
}
