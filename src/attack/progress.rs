//! What the run shows and checks once a second while it goes: the progress line, the
//! users over time, the end of the planned time, and the abort rule.

use super::abort;
use crate::duration::HumanDuration;
use crate::exchange::context::RunContext;
use crate::measure::RequestKind;
use crate::verdict::Targets;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long past its duration a run may go on (on-stop work) before it is stopped.
const OVERRUN_LIMIT: Duration = Duration::from_secs(60);

/// Live progress, user samples, the end of the planned time and `--abort-on-fail`, once a
/// second.
pub(super) async fn monitor(
    ctx: Arc<RunContext>,
    duration: Duration,
    abort_targets: Option<Targets>,
    web: bool,
) {
    let ledger = ctx.ledger.clone();
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_requests = 0u64;
    let mut last_at = Instant::now();
    let mut seconds = 0u64;
    loop {
        tick.tick().await;
        seconds += 1;
        let users = ledger.live.users.load(Ordering::Relaxed);
        ledger.sample_users(users);
        if !web && ledger.elapsed() >= duration {
            ctx.begin_stopping();
        }
        // A run always stops by itself: past its end by more than a minute (stuck on-stop
        // work, a server that never answers), Goose is told to stop.
        if !web && ledger.elapsed() >= duration + OVERRUN_LIMIT && !goose::is_killswitch_triggered()
        {
            eprintln!("\nthe run is {OVERRUN_LIMIT:?} past its duration: stopping it");
            goose::trigger_killswitch("run exceeded its duration");
        }
        let requests = ledger.live.requests.load(Ordering::Relaxed);
        let rps = (requests - last_requests) as f64 / last_at.elapsed().as_secs_f64().max(0.001);
        last_requests = requests;
        last_at = Instant::now();
        let recent = ledger.recent(RequestKind::Http);
        let judged = recent.total() - recent.rate_limited;
        let error_share = if judged == 0 {
            0.0
        } else {
            recent.failures as f64 * 100.0 / judged as f64
        };
        let elapsed = ledger.elapsed();
        let line = format!(
            "[{} / {}] users {users}  {rps:.1} req/s  p95 {:.0} ms  errors {error_share:.2}%  429s {}  requests {requests}",
            HumanDuration(Duration::from_secs(elapsed.as_secs())),
            if web {
                "web".to_string()
            } else {
                format!(
                    "{} left",
                    HumanDuration(Duration::from_secs(
                        duration.saturating_sub(elapsed).as_secs()
                    ))
                )
            },
            recent.times.percentile_ms(95.0),
            ledger.live.rate_limited.load(Ordering::Relaxed),
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if seconds.is_multiple_of(5) {
            eprintln!("{line}");
        }
        if let Some(targets) = &abort_targets
            && let Some(reason) = abort::clearly_missed(&ledger, targets)
        {
            ledger.set_aborted(reason.clone());
            eprintln!("\n--abort-on-fail: {reason}; stopping the run");
            // Goose stops gracefully, keeping everything measured so far.
            goose::trigger_killswitch(&reason);
            return;
        }
    }
}

/// Ends the progress line on a terminal, so that what follows starts on its own line.
pub(super) fn finish_line() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
