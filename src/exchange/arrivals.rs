//! The open model's pool of users, as the users see it: a user with nothing to do waits
//! here for its next arrival, which the run's dispatcher (`attack::arrivals`) hands to it at
//! the arrival's intended time.
//!
//! Users are *started* (their on-start work done: an account, a login) or *not started*
//! yet. An arrival goes to a started user that waits, else to a user not started yet (which
//! starts first, so that start is late), else it is dropped: the pool was exhausted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One arrival: a task iteration to start at `intended`.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub intended: Instant,
}

/// Who took an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A started user that was waiting.
    Waiting,
    /// A user not started yet, which starts now.
    OnDemand,
    /// Nobody: every user of the pool was busy.
    Dropped,
}

/// How often a waiting user looks whether the run is stopping.
const STOP_LOOK: Duration = Duration::from_millis(200);

/// The pool: users waiting for an arrival, and users not started yet.
#[derive(Default)]
pub struct ArrivalPool {
    waiting: Mutex<VecDeque<oneshot::Sender<Ticket>>>,
    not_started: Mutex<VecDeque<oneshot::Sender<Ticket>>>,
    /// Users launched so far: the first `pre_started` start at once.
    launched: AtomicU64,
    pre_started: u64,
}

impl ArrivalPool {
    pub fn new(pre_started: usize) -> Self {
        ArrivalPool {
            pre_started: pre_started as u64,
            ..ArrivalPool::default()
        }
    }

    /// A user was launched: whether it is one of the pre-started (it starts at once) or
    /// waits to be started by an arrival.
    pub fn launch_pre_started(&self) -> bool {
        self.launched.fetch_add(1, Ordering::Relaxed) < self.pre_started
    }

    /// Hands `ticket` to a waiting started user, else to a user not started yet.
    pub fn hand_out(&self, ticket: Ticket) -> Taken {
        if give(&self.waiting, ticket) {
            Taken::Waiting
        } else if give(&self.not_started, ticket) {
            Taken::OnDemand
        } else {
            Taken::Dropped
        }
    }

    /// A started user's wait for its next arrival; `None` once `stopping()` says the run ends.
    pub async fn next(&self, stopping: impl Fn() -> bool) -> Option<Ticket> {
        wait_in(&self.waiting, stopping).await
    }

    /// A user not started yet waits for the arrival that starts it.
    pub async fn first(&self, stopping: impl Fn() -> bool) -> Option<Ticket> {
        wait_in(&self.not_started, stopping).await
    }

    /// How many started users wait for an arrival now (the run counts its busy users
    /// instead: `LiveCounters::busy`).
    #[cfg(test)]
    fn idle(&self) -> usize {
        lock(&self.waiting).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives `ticket` to the longest-waiting user of `queue` that still waits.
fn give(queue: &Mutex<VecDeque<oneshot::Sender<Ticket>>>, ticket: Ticket) -> bool {
    let mut queue = lock(queue);
    while let Some(user) = queue.pop_front() {
        if user.send(ticket).is_ok() {
            return true;
        }
    }
    false
}

async fn wait_in(
    queue: &Mutex<VecDeque<oneshot::Sender<Ticket>>>,
    stopping: impl Fn() -> bool,
) -> Option<Ticket> {
    let (tx, mut rx) = oneshot::channel();
    lock(queue).push_back(tx);
    loop {
        if stopping() {
            // Dropping the receiver takes this user out: a ticket sent meanwhile fails
            // and goes to the next user.
            return rx.try_recv().ok();
        }
        match tokio::time::timeout(STOP_LOOK, &mut rx).await {
            Ok(Ok(ticket)) => return Some(ticket),
            Ok(Err(_)) => return None,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn arrivals_go_to_waiting_users_then_to_new_ones_then_are_dropped() {
        let pool = Arc::new(ArrivalPool::new(1));
        assert!(pool.launch_pre_started());
        assert!(!pool.launch_pre_started());
        let ticket = Ticket {
            intended: Instant::now(),
        };
        assert_eq!(pool.hand_out(ticket), Taken::Dropped);

        let started = tokio::spawn({
            let pool = pool.clone();
            async move { pool.next(|| false).await }
        });
        let fresh = tokio::spawn({
            let pool = pool.clone();
            async move { pool.first(|| false).await }
        });
        while pool.idle() == 0 || lock(&pool.not_started).is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.hand_out(ticket), Taken::Waiting);
        assert_eq!(pool.hand_out(ticket), Taken::OnDemand);
        assert_eq!(pool.hand_out(ticket), Taken::Dropped);
        assert!(started.await.expect("joined").is_some());
        assert!(fresh.await.expect("joined").is_some());
    }

    #[tokio::test]
    async fn a_user_that_left_is_skipped() {
        let pool = Arc::new(ArrivalPool::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let leaving = tokio::spawn({
            let (pool, stop) = (pool.clone(), stop.clone());
            async move { pool.next(|| stop.load(Ordering::Relaxed)).await }
        });
        while pool.idle() == 0 {
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Relaxed);
        assert!(leaving.await.expect("joined").is_none());
        let ticket = Ticket {
            intended: Instant::now(),
        };
        assert_eq!(pool.hand_out(ticket), Taken::Dropped);
    }
}
