//! The open model's dispatcher: it hands each arrival to the pool at its intended time,
//! on a thread of its own.
//!
//! The runtime's threads let their timers wake up to [`super::TIMER_SLACK`] late, and
//! tokio's timers count whole milliseconds: either would make every start late by the
//! generator's own doing. The dispatcher sleeps on its own thread with a timer slack of
//! microseconds instead, and a user it hands an arrival to is woken at once (a wake-up is
//! no timer).

use crate::exchange::arrivals::{ArrivalPool, Taken, Ticket};
use crate::exchange::context::RunContext;
use crate::plan::open::{OpenModel, RateSchedule, next_work};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The dispatcher looks this often whether the run is stopping, while it sleeps.
const LOOK: Duration = Duration::from_millis(50);

/// A rate set while the run goes (the capacity search's levels), in arrivals per second.
#[derive(Debug, Default)]
pub struct LiveRate(AtomicU64);

impl LiveRate {
    pub fn set(&self, rate: f64) {
        self.0.store(rate.max(0.0).to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// What paces the arrivals: the plan's schedule, or a rate someone sets as the run goes.
pub enum Pace {
    Schedule(RateSchedule),
    Live(Arc<LiveRate>),
}

/// Starts the dispatcher: it waits (at most `ready_wait`) for the pre-started users to be
/// ready, then hands out arrivals until the schedule ends (then `over` runs: a single run
/// ends there) or the run stops. The ledger is told when the schedule ran to its end.
pub fn start(
    open: &OpenModel,
    pace: Pace,
    pool: Arc<ArrivalPool>,
    ctx: Arc<RunContext>,
    over: Box<dyn FnOnce() + Send>,
    ready_wait: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (spacing, pre_started) = (open.spacing, open.pre_started as u64);
    let first = open.first_work();
    std::thread::Builder::new()
        .name("lva-arrivals".into())
        .spawn(move || {
            precise_timers();
            let ledger = &ctx.ledger;
            let deadline = Instant::now() + ready_wait;
            while ledger.users_settled() < pre_started
                && Instant::now() < deadline
                && !ctx.is_stopping()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let start = Instant::now();
            let hand = |at: Instant| {
                let taken = pool.hand_out(Ticket { intended: at });
                ledger.arrival(taken != Taken::Dropped, taken == Taken::OnDemand);
            };
            match pace {
                Pace::Schedule(schedule) => {
                    let mut work = first;
                    while let Some(t) = schedule.time_at(work) {
                        let at = start + Duration::from_secs_f64(t);
                        if !sleep_until(at, &ctx) {
                            return;
                        }
                        hand(at);
                        work = next_work(work, spacing);
                    }
                    ledger.arrivals_completed();
                    over();
                }
                Pace::Live(rate) => {
                    let mut at = start;
                    loop {
                        let r = rate.get();
                        if r <= 0.0 {
                            if !sleep_until(Instant::now() + LOOK, &ctx) {
                                // The rate's setter stopped the run: its work is done
                                // (an interruption is the ledger's to say).
                                ledger.arrivals_completed();
                                return;
                            }
                            at = Instant::now();
                            continue;
                        }
                        let gap = next_work(0.0, spacing) / r;
                        // A start already far behind (the rate just rose from a pause) is
                        // not owed: the new rate counts from now.
                        at = (at + Duration::from_secs_f64(gap)).max(Instant::now() - LOOK);
                        if !sleep_until(at, &ctx) {
                            ledger.arrivals_completed();
                            return;
                        }
                        hand(at);
                    }
                }
            }
        })
}

/// Sleeps until `at`, looking every [`LOOK`] whether the run stops; `false` if it does.
fn sleep_until(at: Instant, ctx: &RunContext) -> bool {
    loop {
        if ctx.is_stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(LOOK));
    }
}

/// Lets this thread's timers be late by microseconds only (threads inherit the slack of
/// the runtime thread that made them).
fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK only sets a number of the calling thread; no memory is
    // passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 10_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_rate_reads_back_what_was_set_and_never_below_zero() {
        let rate = LiveRate::default();
        assert_eq!(rate.get(), 0.0);
        rate.set(42.5);
        assert_eq!(rate.get(), 42.5);
        rate.set(-3.0);
        assert_eq!(rate.get(), 0.0);
    }
}
