//! The capacity search driving one open-model run: it sets each level's rate, collects the
//! requests its steady window started, judges them, and ends the run when the search ends.

use super::{CapacityResult, Finding, Level, LevelFigures, Next, Purpose, Search, judge_level};
use crate::attack::{self, AttackResult, Controls, RunError};
use crate::measure::{ArrivalStats, Ledger, MemorySource, Observation, RequestStats};
use crate::plan::Plan;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// How long a level's end waits, at rate 0, for its last requests' answers; those still
/// unanswered then count as its failures.
const DRAIN: Duration = Duration::from_secs(5);

/// How often the driver looks at the level under way.
const LOOK: Duration = Duration::from_millis(250);

/// A steady window's requests, by their start: those that started in it, whenever they end.
#[derive(Default)]
struct Window {
    from: Option<Instant>,
    to: Option<Instant>,
    /// By (method, name): the ledger's own key, so that a request costs no allocation.
    requests: BTreeMap<(&'static str, &'static str), RequestStats>,
}

/// Collects, through the ledger's tap, the requests of the window under way.
#[derive(Default)]
struct Collector(Mutex<Window>);

impl Collector {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn see(&self, obs: &Observation<'_>) {
        let mut w = self.lock();
        let Some(from) = w.from else { return };
        if obs.started < from || w.to.is_some_and(|to| obs.started >= to) {
            return;
        }
        let stats = w
            .requests
            .entry((obs.method, obs.name))
            .or_insert_with(|| RequestStats {
                kind: Some(obs.kind),
                method: obs.method.to_string(),
                name: obs.name.to_string(),
                ..RequestStats::default()
            });
        stats.record(obs);
    }

    fn open(&self) {
        *self.lock() = Window {
            from: Some(Instant::now()),
            ..Window::default()
        };
    }

    fn close(&self) {
        self.lock().to = Some(Instant::now());
    }

    /// The window's requests by key (`METHOD name`); `keep` leaves them collecting.
    fn requests(&self, keep: bool) -> BTreeMap<String, RequestStats> {
        let mut w = self.lock();
        let rows = if keep {
            w.requests.clone()
        } else {
            w.from = None;
            std::mem::take(&mut w.requests)
        };
        rows.into_values().map(|r| (r.key(), r)).collect()
    }
}

/// The arrivals between two readings of the ledger's counts.
fn arrivals_between(before: &ArrivalStats, after: &ArrivalStats) -> ArrivalStats {
    ArrivalStats {
        schedule: after.schedule.clone(),
        planned: after.planned - before.planned.min(after.planned),
        taken: after.taken - before.taken.min(after.taken),
        on_demand: after.on_demand - before.on_demand.min(after.on_demand),
        dropped: after.dropped - before.dropped.min(after.dropped),
        late: after.late - before.late.min(after.late),
        lag: Default::default(),
        max_users: after.max_users,
        // A level's window is judged whole.
        completed: true,
    }
}

/// What the driven run produced: the search's result and the run's own measurements.
pub struct Searched {
    pub result: CapacityResult,
    pub attack: AttackResult,
}

/// Runs the search as one open-model run of `plan` against `host`.
pub async fn search(
    plan: &Plan,
    host: &Url,
    memory: Option<MemorySource>,
    mut search: Search,
) -> Result<Searched, RunError> {
    let ledger = Arc::new(Ledger::new(plan.targets.spike_window()));
    let collector = Arc::new(Collector::default());
    let tap = collector.clone();
    // A fresh ledger has no tap yet.
    let _ = ledger.set_tap(Box::new(move |obs| tap.see(obs)));
    let controls = Controls::default();
    let pre_started = plan.open.as_ref().map_or(1, |o| o.pre_started) as u64;
    let driver = tokio::spawn(drive(
        ledger.clone(),
        controls.clone(),
        collector,
        plan.targets.clone(),
        pre_started,
        plan.ramp() + crate::plan::open::READY_WAIT,
        {
            let (rate, purpose) = search.first();
            search.settings.start_rate = rate;
            (search, purpose)
        },
    ));
    let attack = attack::attack_controlled(
        plan,
        host,
        memory,
        &[],
        ledger.clone(),
        Some(controls.clone()),
    )
    .await;
    // The run may have ended first (a signal): the driver sees it stop and returns.
    let (search, finding) = match driver.await {
        Ok(done) => done,
        Err(e) => return Err(RunError::Goose(format!("the capacity search failed: {e}"))),
    };
    let attack = attack?;
    let interrupted = attack.measured.interrupted || finding.is_none();
    let finding = finding.unwrap_or(Finding::Unstable {
        last_tried: search.levels.last().map_or(0.0, |l| l.rate),
    });
    let mut result = CapacityResult::of(
        &search,
        finding,
        &plan.run_id,
        host.as_str(),
        &plan.preset_name,
        interrupted,
    );
    result.p95_target_ms = plan.targets.p95_ms;
    Ok(Searched { result, attack })
}

/// The search's loop; `None` as the finding when the run stopped before it ended.
async fn drive(
    ledger: Arc<Ledger>,
    controls: Controls,
    collector: Arc<Collector>,
    targets: crate::verdict::Targets,
    pre_started: u64,
    ready_wait: Duration,
    (mut search, first_purpose): (Search, Purpose),
) -> (Search, Option<Finding>) {
    let stopped = || ledger.stopping();
    let started = Instant::now();
    while ledger.users_settled() < pre_started && started.elapsed() < ready_wait {
        if stopped() {
            return (search, None);
        }
        tokio::time::sleep(LOOK).await;
    }
    let settings = search.settings.clone();
    let mut next = (settings.start_rate, first_purpose);
    let finding = loop {
        let (rate, purpose) = next;
        crate::console::say(&format!(
            "capacity: level {} at {}/s ({})",
            search.levels.len() + 1,
            crate::plan::open::trim(rate),
            match purpose {
                Purpose::Climb => "climbing",
                Purpose::Bisect => "bisecting",
                Purpose::Confirm => "confirming",
            }
        ));
        controls.rate.set(rate);
        if !wait(settings.warmup, &stopped).await {
            break None;
        }
        let before = ledger.arrivals().unwrap_or_default();
        let from_secs = ledger.elapsed().as_secs_f64();
        collector.open();
        let window_start = Instant::now();
        let mut peak_busy = 0u64;
        let mut stopped_early = false;
        let mut early_judged = window_start;
        while window_start.elapsed() < settings.level_duration {
            if stopped() {
                break;
            }
            tokio::time::sleep(LOOK).await;
            peak_busy = peak_busy.max(ledger.live.busy.load(Ordering::Relaxed));
            // Once a third of the window has gone, a clear miss ends the level early.
            if window_start.elapsed() * 3 >= settings.level_duration
                && early_judged.elapsed() >= Duration::from_secs(1)
            {
                early_judged = Instant::now();
                let figures = LevelFigures {
                    requests: collector.requests(true),
                    arrivals: arrivals_between(&before, &ledger.arrivals().unwrap_or_default()),
                    peak_busy_users: peak_busy,
                };
                if !judge_level(&figures, &settings, &targets, true).0 {
                    stopped_early = true;
                    break;
                }
            }
        }
        collector.close();
        let secs = window_start.elapsed().as_secs_f64();
        let end_secs = ledger.elapsed().as_secs_f64();
        let after = ledger.arrivals().unwrap_or_default();
        if stopped() {
            break None;
        }
        // The server idles while the level's last answers come in.
        controls.rate.set(0.0);
        let drained = Instant::now();
        while ledger.live.in_flight.load(Ordering::Relaxed) > 0 && drained.elapsed() < DRAIN {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let unanswered = ledger.live.in_flight.load(Ordering::Relaxed);
        let mut requests = collector.requests(false);
        if unanswered > 0 {
            // Still unanswered after the drain: failures of this level, never left out.
            let stats = requests
                .entry("UNANSWERED (level end)".to_string())
                .or_insert_with(|| RequestStats {
                    kind: Some(crate::measure::RequestKind::Http),
                    method: "UNANSWERED".into(),
                    name: "(level end)".into(),
                    ..RequestStats::default()
                });
            stats.failures += unanswered;
            stats
                .times
                .record(u64::try_from(DRAIN.as_micros()).unwrap_or(u64::MAX));
        }
        let figures = LevelFigures {
            requests,
            arrivals: arrivals_between(&before, &after),
            peak_busy_users: peak_busy,
        };
        let (passed, failed_because, limited_by, rates, p95) =
            judge_level(&figures, &settings, &targets, false);
        let passed = passed && !stopped_early;
        let level = Level {
            rate,
            purpose,
            start_secs: from_secs,
            end_secs,
            stopped_early,
            passed,
            failed_because: if passed {
                None
            } else {
                failed_because.or_else(|| Some("a target clearly missed early".into()))
            },
            limited_by,
            p95_ms: p95,
            success_rate: rates.success_rate,
            error_rate: rates.error_rate,
            judged_requests: rates.judged,
            requests_per_second: crate::measure::per_second(rates.judged, secs),
            arrivals_planned: figures.arrivals.planned,
            arrivals_dropped: figures.arrivals.dropped,
            arrivals_late: figures.arrivals.late,
            peak_busy_users: peak_busy,
        };
        crate::console::say(&format!(
            "capacity: {}/s {}{}",
            crate::plan::open::trim(rate),
            if passed { "held" } else { "failed" },
            level
                .failed_because
                .as_ref()
                .map(|w| format!(": {w}"))
                .unwrap_or_else(|| format!(
                    " (P95 {}, errors {:.2}%)",
                    p95.map_or("n/a".into(), crate::verdict::fmt_ms),
                    rates.error_rate
                ))
        ));
        match search.record(level) {
            Next::Measure(r, p) => next = (r, p),
            Next::Done(finding) => break Some(finding),
        }
    };
    controls.rate.set(0.0);
    controls.done.notify_one();
    (search, finding)
}

/// Waits `time`, looking whether the run stops; `false` if it did.
async fn wait(time: Duration, stopped: &impl Fn() -> bool) -> bool {
    let until = Instant::now() + time;
    while Instant::now() < until {
        if stopped() {
            return false;
        }
        tokio::time::sleep(LOOK.min(until - Instant::now())).await;
    }
    !stopped()
}
