//! What the run shows and checks once a second while it goes: the progress line, the users
//! over time, the end of the planned time (a dashboard run's too), the stop timeout, and the
//! abort rule.
//!
//! On a terminal the progress line is redrawn in place, with the cursor left on the line
//! below it, so that a line something else prints lands on its own line; the tool's own
//! messages go through [`say`]. Elsewhere a line is printed every five seconds.

use super::abort;
use super::stop::Stop;
use crate::console::{draw, on_terminal, say};
use crate::duration::HumanDuration;
use crate::exchange::context::RunContext;
use crate::measure::{Ledger, MeasuredRun, RequestKind, per_second};
use crate::plan::AbortRule;
use crate::verdict::Targets;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Goose's own plan starts with the page's Start, a little before the first user: its users
/// may end this much before the planned end as measured here.
const STOP_GRACE: f64 = 2.0;

/// What the monitor follows: the planned time, the abort rule, and a dashboard run's wait.
pub(super) struct Watch {
    pub duration: Duration,
    /// The line shows the time left (an open-model run ends with its arrivals instead).
    pub shows_left: bool,
    pub abort: Option<(AbortRule, Targets)>,
    pub web: bool,
    /// With `--web`: how long the dashboard stays up after the run.
    pub linger: Duration,
}

/// Once a second: user samples, the planned end, the stop timeout, the abort rule, and the
/// progress line.
pub(super) async fn monitor(ctx: Arc<RunContext>, stop: Arc<Stop>, watch: Watch) {
    let ledger = ctx.ledger.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seconds = 0u64;
    // Where the measured time starts: at once, or when the dashboard's Start launched the
    // first user.
    let mut origin = (!watch.web).then_some(0.0);
    let mut shut_down_at: Option<f64> = None;
    let mut abort_watch = AbortWatch::default();
    loop {
        tick.tick().await;
        seconds += 1;
        let running = running_users(&ledger);
        ledger.sample_users(running);
        let elapsed = ledger.elapsed().as_secs_f64();
        if origin.is_none() {
            origin = ledger.first_user_secs();
        }
        if let Some(start) = origin {
            let planned_end = start + watch.duration.as_secs_f64();
            let launched = ledger.live.users.load(Ordering::Relaxed);
            if !stop.is_stopping() && elapsed >= planned_end {
                stop.planned_end();
                if watch.web {
                    shut_down_at = Some(elapsed + watch.linger.as_secs_f64());
                }
            } else if watch.web
                && !stop.is_stopping()
                && launched > 0
                && running == 0
                && elapsed + STOP_GRACE < planned_end
            {
                // Every user ended well before the planned end: the page's Stop.
                stop.interrupt("the dashboard's Stop");
            }
        }
        if let Some(at) = shut_down_at
            && elapsed >= at
        {
            stop.shut_down_completed();
            shut_down_at = None;
        }
        if let Some(deadline) = stop.deadline()
            && tokio::time::Instant::now() >= deadline
            && !stop.given_up()
            && shut_down_at.is_none()
        {
            say("the stop timeout ran out: ending the run with what was measured");
            stop.give_up();
        }

        let line = match (stop.deadline(), origin) {
            (Some(deadline), _) if shut_down_at.is_none() => stopping_line(&ledger, deadline),
            (Some(_), _) => format!(
                "[done] the dashboard stays up {} more (--web-linger)",
                HumanDuration(Duration::from_secs(
                    shut_down_at.map_or(0.0, |at| (at - elapsed).max(0.0)) as u64
                ))
            ),
            (None, None) => "[waiting] press Start in the dashboard".to_string(),
            (None, Some(start)) => running_line(
                &ledger,
                elapsed - start,
                watch.shows_left.then_some(watch.duration),
                running,
            ),
        };
        if on_terminal() || seconds.is_multiple_of(5) {
            draw(&line);
        }
        if let Some((rule, targets)) = &watch.abort
            && !stop.is_stopping()
            && origin.is_some()
        {
            abort_watch.tick(&ledger, &stop, rule, targets, seconds);
        }
    }
}

/// What the monitor remembers of the abort rule: whether it was armed, and when it last
/// said it was not.
#[derive(Default)]
struct AbortWatch {
    armed: bool,
    inactive_said_at: Option<u64>,
}

/// How often a rule that cannot act yet says so.
const INACTIVE_NOTE_EVERY: u64 = 10;

impl AbortWatch {
    /// One second of the rule: a note while it cannot act past its minimum time (a safety
    /// option that silently does nothing would be trusted), a note when it is armed, and
    /// the stop when a target is clearly missed.
    fn tick(
        &mut self,
        ledger: &Ledger,
        stop: &Stop,
        rule: &AbortRule,
        targets: &Targets,
        now: u64,
    ) {
        match abort::watch(ledger, rule, targets) {
            abort::Rule::Inactive { early: true, .. } => {}
            abort::Rule::Inactive { judged, .. } => {
                if self
                    .inactive_said_at
                    .is_none_or(|at| now >= at + INACTIVE_NOTE_EVERY)
                {
                    self.inactive_said_at = Some(now);
                    say(&format!(
                        "--abort-on-fail: abort rule inactive until {} judged requests; {judged} so far (--abort-min-requests)",
                        rule.min_requests
                    ));
                }
            }
            state => {
                if !self.armed {
                    self.armed = true;
                    ledger.abort_armed();
                    say(&format!(
                        "--abort-on-fail: abort rule armed ({} judged requests and {} reached)",
                        rule.min_requests,
                        HumanDuration(rule.min_elapsed)
                    ));
                }
                if let abort::Rule::Stop(reason) = state {
                    say(&format!("--abort-on-fail: {reason}; stopping the run"));
                    stop.abort(&reason);
                }
            }
        }
    }
}

/// Users launched and not yet done.
fn running_users(ledger: &Ledger) -> u64 {
    let launched = ledger.live.users.load(Ordering::Relaxed);
    launched.saturating_sub(ledger.live.users_done.load(Ordering::Relaxed))
}

fn running_line(ledger: &Ledger, elapsed: f64, duration: Option<Duration>, running: u64) -> String {
    // The window now running and the one before it: rate and P95 move with the count.
    let (recent, covered_secs) = ledger.recent(RequestKind::Http);
    let rps = per_second(recent.total(), covered_secs);
    let judged = recent.successes + recent.failures;
    let error_share = if judged == 0 {
        0.0
    } else {
        recent.failures as f64 * 100.0 / judged as f64
    };
    let live = &ledger.live;
    let at = HumanDuration(Duration::from_secs(elapsed.max(0.0) as u64));
    // A closed run counts down its duration; an open-model run (whose end its arrivals
    // decide) shows its pool: the users started so far of its size, and the busy ones.
    let (when, users) = match duration {
        Some(d) => (
            format!(
                "{at} / {} left",
                HumanDuration(Duration::from_secs(
                    (d.as_secs_f64() - elapsed).max(0.0) as u64
                ))
            ),
            running.to_string(),
        ),
        None => (
            at.to_string(),
            format!(
                "{running} of a pool of {}, {} busy",
                ledger.arrivals().map_or(0, |a| a.max_users),
                live.busy.load(Ordering::Relaxed)
            ),
        ),
    };
    format!(
        "[{when}] users {users} | {rps:.1} req/s | P95 {:.0} ms | errors {error_share:.2}% | 429s {} | requests {} | ws ops {}",
        recent.times.percentile_ms(95.0),
        live.rate_limited.load(Ordering::Relaxed),
        live.requests.load(Ordering::Relaxed),
        live.ws_operations.load(Ordering::Relaxed),
    )
}

fn stopping_line(ledger: &Ledger, deadline: tokio::time::Instant) -> String {
    let live = &ledger.live;
    let in_flight = live.in_flight.load(Ordering::Relaxed);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    format!(
        "[stopping] waiting for {in_flight} request{} in flight and {} user{} to clean up, {} at most",
        if in_flight == 1 { "" } else { "s" },
        running_users(ledger),
        if running_users(ledger) == 1 { "" } else { "s" },
        HumanDuration(Duration::from_secs(left.as_secs())),
    )
}

/// The last progress line, from the run as measured: its request count is the summary's.
pub(super) fn final_line(run: &MeasuredRun) {
    let http = run.combined(RequestKind::Http);
    let ws = run.combined(RequestKind::WebSocket);
    draw(&format!(
        "[done {}] users {} at most | requests {} | ws ops {} | failed {} | 429s {}",
        HumanDuration(Duration::from_secs(run.duration_secs as u64)),
        run.max_users,
        http.total(),
        ws.total(),
        http.failures + ws.failures,
        http.rate_limited + ws.rate_limited,
    ));
    crate::console::leave_line();
}
