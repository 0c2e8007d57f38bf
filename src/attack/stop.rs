//! How a run stops, and how long stopping may take.
//!
//! A run stops at its planned end, on a signal (Ctrl-C, SIGTERM, SIGHUP: what terminals, CI
//! cancellation, `timeout` and Kubernetes send), from the dashboard, or by the abort rule.
//! From then on, users finish their requests and delete their accounts within the stop
//! timeout; when it runs out, or on a second signal, the attack gives up waiting and the run
//! is judged and written with what was measured.

use crate::exchange::context::RunContext;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The run's stopping, shared by the attack, the monitor and the signal watcher.
pub(super) struct Stop {
    ctx: Arc<RunContext>,
    timeout: Duration,
    deadline: Mutex<Option<Instant>>,
    /// The planned time ran out (not an interruption).
    completed: AtomicBool,
    given_up: AtomicBool,
    give_up: Notify,
}

impl Stop {
    pub(super) fn new(ctx: Arc<RunContext>, timeout: Duration) -> Arc<Stop> {
        Arc::new(Stop {
            ctx,
            timeout,
            deadline: Mutex::new(None),
            completed: AtomicBool::new(false),
            given_up: AtomicBool::new(false),
            give_up: Notify::new(),
        })
    }

    fn begin(&self) {
        self.ctx.ledger.mark_stop();
        self.ctx.begin_stopping();
        let mut deadline = self
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        deadline.get_or_insert_with(|| Instant::now() + self.timeout);
    }

    /// The planned time is over: users stop and clean up, as Goose's test plan ends them.
    pub(super) fn planned_end(&self) {
        if !self.is_stopping() {
            self.completed.store(true, Ordering::Relaxed);
        }
        self.begin();
    }

    /// An open-model run's work is over (its last arrival, or its search ended): the
    /// planned end, reached before Goose's own plan, which is stopped now.
    pub(super) fn arrivals_over(&self) {
        self.planned_end();
        goose::trigger_killswitch("the run's arrivals are over");
    }

    /// Something stops the run before its planned end: `why` says what, in words.
    pub(super) fn interrupt(&self, why: &str) {
        if !self.completed.load(Ordering::Relaxed) {
            self.ctx.ledger.set_interruption(why);
        }
        self.begin();
        goose::trigger_killswitch(why);
    }

    /// `--abort-on-fail` stops the run: the ledger holds the reason.
    pub(super) fn abort(&self, reason: &str) {
        self.ctx.ledger.set_aborted(reason.to_string());
        self.begin();
        goose::trigger_killswitch(reason);
    }

    /// Ends a finished dashboard run, after its planned time (not an interruption).
    pub(super) fn shut_down_completed(&self) {
        goose::trigger_killswitch("the run is complete");
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.deadline().is_some()
    }

    /// The planned time ran out (rather than the run being interrupted).
    pub(super) fn completed(&self) -> bool {
        self.completed.load(Ordering::Relaxed)
    }

    /// When stopping must be over, once the run is stopping.
    pub(super) fn deadline(&self) -> Option<Instant> {
        *self
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops waiting for the users: what is measured so far is the run.
    pub(super) fn give_up(&self) {
        self.given_up.store(true, Ordering::Relaxed);
        self.give_up.notify_waiters();
    }

    pub(super) fn given_up(&self) -> bool {
        self.given_up.load(Ordering::Relaxed)
    }

    /// Resolves once [`Stop::give_up`] was called.
    pub(super) async fn wait_given_up(&self) {
        loop {
            let notified = self.give_up.notified();
            if self.given_up() {
                return;
            }
            notified.await;
        }
    }
}

/// Goose installs a Ctrl-C handler of its own that exits the process on a second Ctrl-C,
/// losing the run. A handler installed first keeps Goose's out; the signals are then
/// watched here. Once per process.
fn keep_gooses_handler_out() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::Relaxed) {
        // The handler does nothing: the watcher below acts on the signal.
        let _ = ctrlc::set_handler(|| {});
    }
}

/// Watches SIGINT, SIGTERM and SIGHUP for the run: the first stops it (the users clean up
/// within the stop timeout), the second gives up waiting; either way the run is judged and
/// written.
pub(super) fn watch_signals(stop: Arc<Stop>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    keep_gooses_handler_out();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        let mut received = 0u32;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "Ctrl-C",
                _ = terminate.recv() => "SIGTERM",
                _ = hangup.recv() => "SIGHUP",
            };
            received += 1;
            if received == 1 {
                crate::console::say(&format!(
                    "{name}: stopping the run; users finish their requests and delete their \
                     accounts, {} at most ({name} again skips that)",
                    crate::duration::HumanDuration(stop.timeout)
                ));
                stop.interrupt(name);
            } else {
                crate::console::say(&format!(
                    "{name} again: skipping the cleanup; writing what was measured"
                ));
                stop.give_up();
            }
        }
    }))
}
