//! The user classes of the load test, their tasks with weights and tags, the tag filter,
//! and the Goose scenarios built from them.
//!
//! A [`UserClass`] is what Locust calls a user class (Goose builds a `Scenario` of it): a
//! weight (how many users of the kind are spawned), a wait between tasks, on-start and
//! on-stop work, and weighted [`Task`]s. Each task carries Locust-style tags; a
//! [`TagFilter`] keeps the tasks a run asks for, and a class left with no task is not
//! spawned. Each task also lists the request names it can make, so targets can be checked
//! against them before a run.
//!
//! A task is a plain `async fn(&mut GooseUser, Arc<RunContext>) -> TaskResult` and one
//! [`task!`](crate::task) line in its class's table. A user that has stopped (it could not
//! authenticate) runs no task: the check is made once, here, for every task of every class.

pub mod account;
pub mod authenticated;
pub mod gdpr;
pub mod rate_limit;
pub mod websocket;

use crate::exchange::context::RunContext;
use crate::exchange::session::{is_stopped, session, session_mut};
use goose::GooseError;
/// The simulated user a task runs as (Goose's), re-exported so that a program adding its
/// own classes needs no Goose dependency of its own.
pub use goose::goose::GooseUser;
use goose::goose::{Scenario, Transaction, TransactionFunction, TransactionResult};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What a task returns: `Ok(())`, or Goose's error when a request could not be recorded.
pub type TaskResult = TransactionResult;

/// The future a task returns; it borrows the user for its lifetime.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = TaskResult> + Send + 'a>>;

/// A task body: the user and the run's shared context. [`task_fn!`](crate::task_fn) makes
/// one of an `async fn`.
pub type TaskFn = for<'a> fn(&'a mut GooseUser, Arc<RunContext>) -> TaskFuture<'a>;

/// The [`TaskFn`] of an `async fn(&mut GooseUser, Arc<RunContext>) -> TaskResult`.
#[macro_export]
macro_rules! task_fn {
    ($body:path) => {{
        fn boxed(
            user: &mut $crate::user_classes::GooseUser,
            ctx: ::std::sync::Arc<$crate::exchange::context::RunContext>,
        ) -> $crate::user_classes::TaskFuture<'_> {
            ::std::boxed::Box::pin($body(user, ctx))
        }
        boxed as $crate::user_classes::TaskFn
    }};
}

/// One line of a class's task table: `task!(body, weight, [tags...], [requests...])`, where
/// `body` is the task's `async fn` and gives the task its name.
#[macro_export]
macro_rules! task {
    ($body:ident, $weight:expr, [$($tag:expr),* $(,)?], [$($request:expr),* $(,)?] $(,)?) => {
        $crate::user_classes::Task {
            name: stringify!($body),
            weight: $weight,
            tags: &[$($tag),*],
            requests: &[$($request),*],
            run: $crate::task_fn!($body),
        }
    };
}

/// How long a stopped user idles per turn: it wakes this often to let Goose stop it, and
/// never spins (a stopped user with no wait between tasks would otherwise starve the run).
const STOPPED_USER_IDLE: Duration = Duration::from_secs(1);

/// Once the run is stopping, how often a user that waits by itself gives Goose the turn to
/// end it (Goose's own wait looks for its stop command every 500 ms). It starts no new task
/// meanwhile.
const STOPPING_USER_PAUSE: Duration = Duration::from_millis(100);

/// One task of a user class.
#[derive(Clone)]
pub struct Task {
    /// The name Goose shows for it (Locust's method name).
    pub name: &'static str,
    /// How often it is picked against the class's other tasks.
    pub weight: usize,
    /// Locust-style tags, for `--tags` and `--exclude-tags`.
    pub tags: &'static [&'static str],
    /// The request keys (`"METHOD name"`) this task can make.
    pub requests: &'static [&'static str],
    /// The body.
    pub run: TaskFn,
}

/// Work done once per user, at its start or its end, whatever the tag filter.
#[derive(Clone)]
pub struct Hook {
    /// The name Goose shows for it.
    pub name: &'static str,
    /// The request keys (`"METHOD name"`) it can make.
    pub requests: &'static [&'static str],
    /// The body: an `on_start` hook sets the user up, typically with
    /// [`account::start_user`] or [`account::start_with_account`].
    pub run: TaskFn,
}

/// A kind of simulated user.
#[derive(Clone)]
pub struct UserClass {
    /// The class name: reports and the rate-limit check group its users' requests under it.
    pub name: &'static str,
    /// Its share of the run's users against the other classes.
    pub weight: usize,
    /// Wait between two tasks, picked uniformly in this range.
    pub wait: (Duration, Duration),
    /// Run once when a user starts (see [`account::account_hooks`] for the usual pair).
    pub on_start: Option<Hook>,
    /// Run once when a user stops, also when the run is interrupted.
    pub on_stop: Option<Hook>,
    /// What the user does, in a weighted random order.
    pub tasks: Vec<Task>,
}

/// The built-in user classes, as the Locust suite defines them.
pub fn builtin_classes() -> Vec<UserClass> {
    vec![
        authenticated::class(),
        gdpr::class(),
        rate_limit::class(),
        websocket::class(),
    ]
}

/// Locust-style tag filter: keep tasks with any included tag, drop tasks with any
/// excluded tag. On-start and on-stop work is always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagFilter {
    /// `--tags`: when not empty, a task needs one of these.
    pub include: Vec<String>,
    /// `--exclude-tags`: a task with one of these is dropped.
    pub exclude: Vec<String>,
}

impl TagFilter {
    /// Whether a task with `tags` is kept.
    pub fn keeps(&self, tags: &[&str]) -> bool {
        let included =
            self.include.is_empty() || tags.iter().any(|t| self.include.iter().any(|i| i == t));
        let excluded = tags.iter().any(|t| self.exclude.iter().any(|e| e == t));
        included && !excluded
    }

    /// Every tag named must exist on some task; the error lists the ones that do.
    pub fn check_known(&self, classes: &[UserClass]) -> Result<(), String> {
        let known = known_tags(classes);
        for tag in self.include.iter().chain(&self.exclude) {
            if !known.contains(tag.as_str()) {
                return Err(format!(
                    "unknown tag '{tag}': valid tags are {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Every tag of every task of `classes`.
pub fn known_tags(classes: &[UserClass]) -> BTreeSet<&'static str> {
    classes
        .iter()
        .flat_map(|c| c.tasks.iter().flat_map(|t| t.tags.iter().copied()))
        .collect()
}

/// The classes a run spawns, each with the tasks the filter kept.
#[derive(Clone, Default)]
pub struct Selection {
    /// The classes spawned, each with only its kept tasks.
    pub classes: Vec<UserClass>,
    /// Classes left with no task, which are not spawned.
    pub skipped: Vec<&'static str>,
}

impl Selection {
    /// Applies `filter` to every class's tasks.
    pub fn new(classes: Vec<UserClass>, filter: &TagFilter) -> Selection {
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for mut class in classes {
            class.tasks.retain(|t| filter.keeps(t.tags));
            if class.tasks.is_empty() {
                skipped.push(class.name);
            } else {
                kept.push(class);
            }
        }
        Selection {
            classes: kept,
            skipped,
        }
    }

    /// The names of the spawned classes.
    pub fn class_names(&self) -> Vec<&'static str> {
        self.classes.iter().map(|c| c.name).collect()
    }

    /// Every request key the selected work can make, sorted.
    pub fn request_keys(&self) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for class in &self.classes {
            let hooks = class.on_start.iter().chain(&class.on_stop);
            for key in hooks
                .flat_map(|h| h.requests.iter())
                .chain(class.tasks.iter().flat_map(|t| t.requests.iter()))
            {
                keys.insert((*key).to_string());
            }
        }
        keys.into_iter().collect()
    }

    /// The selection as Goose scenarios (one per class), each task bound to the run's context.
    pub fn goose_scenarios(&self, ctx: &Arc<RunContext>) -> Result<Vec<Scenario>, GooseError> {
        let mut scenarios = Vec::new();
        for class in &self.classes {
            let mut scenario = Scenario::new(class.name).set_weight(class.weight)?;
            // Goose's wait is kept where its figures are (its transaction times must not
            // hold the wait); otherwise each task waits after itself, with one timer.
            // An open-model run paces its users by its arrivals, not by waits.
            let open = ctx.arrivals.is_some();
            let waits = !class.wait.1.is_zero() && !open;
            if waits && ctx.goose_metrics {
                scenario = scenario.set_wait_time(class.wait.0, class.wait.1)?;
            }
            let own_wait = (waits && !ctx.goose_metrics).then_some(class.wait);
            scenario = scenario.register_transaction(start_transaction(class, ctx).set_on_start());
            for task in &class.tasks {
                let transaction = if open {
                    arrival_transaction(task, ctx)
                } else {
                    task_transaction(task, ctx, own_wait)
                };
                scenario = scenario.register_transaction(transaction.set_weight(task.weight)?);
            }
            scenario = scenario.register_transaction(stop_transaction(class, ctx).set_on_stop());
            scenarios.push(scenario);
        }
        Ok(scenarios)
    }
}

/// A user's start, as every user of every class starts (under Goose, and on a distributed
/// worker): counted as launched, its class's on-start work, then counted as started unless
/// that work stopped it (a refusal, counted with its reason by the work itself).
pub fn begin_user<'a>(
    class: &'a UserClass,
    user: &'a mut GooseUser,
    ctx: Arc<RunContext>,
) -> TaskFuture<'a> {
    Box::pin(async move {
        // Open model: a user of the pool beyond the pre-started ones starts only for an
        // arrival that found every started user busy (and never, if none does).
        let mut first_arrival = None;
        if let Some(pool) = &ctx.arrivals
            && !pool.launch_pre_started()
        {
            match pool.first(|| ctx.is_stopping()).await {
                Some(ticket) => first_arrival = Some(ticket),
                None => return Ok(()),
            }
        }
        ctx.ledger.user_started(class.name);
        let result = match &class.on_start {
            Some(hook) => (hook.run)(user, ctx.clone()).await,
            None => Ok(()),
        };
        if !is_stopped(user) {
            if let Some(s) = session_mut(user) {
                s.ready = true;
                s.first_arrival = first_arrival;
            }
            ctx.ledger.user_ready(class.name);
        }
        result
    })
}

/// A user's end, as every user ends: its class's on-stop work (whatever its state), then
/// counted as done.
pub fn end_user<'a>(
    class: &'a UserClass,
    user: &'a mut GooseUser,
    ctx: Arc<RunContext>,
) -> TaskFuture<'a> {
    Box::pin(async move {
        if ctx.arrivals.is_some() && session(user).is_none() {
            // A user of the pool that was never started: nothing to end.
            return Ok(());
        }
        let result = match &class.on_stop {
            Some(hook) => (hook.run)(user, ctx.clone()).await,
            None => Ok(()),
        };
        ctx.ledger.user_done();
        result
    })
}

fn start_transaction(class: &UserClass, ctx: &Arc<RunContext>) -> Transaction {
    let (ctx, class) = (ctx.clone(), Arc::new(class.clone()));
    let label = class.on_start.as_ref().map_or("on_start", |h| h.name);
    let function: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
        let (ctx, class) = (ctx.clone(), class.clone());
        Box::pin(async move { begin_user(&class, user, ctx).await })
    });
    Transaction::new(function).set_name(label)
}

fn stop_transaction(class: &UserClass, ctx: &Arc<RunContext>) -> Transaction {
    let (ctx, class) = (ctx.clone(), Arc::new(class.clone()));
    let label = class.on_stop.as_ref().map_or("on_stop", |h| h.name);
    let function: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
        let (ctx, class) = (ctx.clone(), class.clone());
        Box::pin(async move { end_user(&class, user, ctx).await })
    });
    Transaction::new(function).set_name(label)
}

/// Runs a task's body as every class runs it: only for a user that has not stopped; a
/// stopped user idles instead. Goose's transactions and a distributed worker's users both
/// run their tasks through this.
pub fn run_task(run: TaskFn, user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move {
        if is_stopped(user) {
            ctx.idle(STOPPED_USER_IDLE).await;
            return Ok(());
        }
        run(user, ctx).await
    })
}

/// A task as Goose runs it: [`run_task`], then, with `wait` (min, max), the wait Goose
/// would have made between two tasks, with one timer. While the run stops, a waiting
/// class's user pauses instead of starting a task.
fn task_transaction(
    task: &Task,
    ctx: &Arc<RunContext>,
    wait: Option<(Duration, Duration)>,
) -> Transaction {
    let (ctx, run) = (ctx.clone(), task.run);
    let function: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
        let ctx = ctx.clone();
        Box::pin(async move {
            if wait.is_some() && ctx.is_stopping() {
                tokio::time::sleep(STOPPING_USER_PAUSE).await;
                return Ok(());
            }
            // A stopped user idles in run_task; it has nothing to wait between.
            let stopped = is_stopped(user);
            let result = run_task(run, user, ctx.clone()).await;
            if let (Some((min, max)), false) = (wait, stopped) {
                ctx.wait_between_tasks(min, max).await;
            }
            result
        })
    });
    Transaction::new(function).set_name(task.name)
}

/// A task as an open-model run's users run it under Goose ([`run_arrival`]).
fn arrival_transaction(task: &Task, ctx: &Arc<RunContext>) -> Transaction {
    let (ctx, run) = (ctx.clone(), task.run);
    let function: TransactionFunction =
        Arc::new(move |user: &mut GooseUser| run_arrival(run, user, ctx.clone()));
    Transaction::new(function).set_name(task.name)
}

/// One open-model iteration, as every pool user runs it (under Goose, and on a distributed
/// worker): wait in the pool for an arrival, then run the task ([`run_task`]) timed from the
/// arrival's intended start. A user of the pool not started yet, or stopped, idles.
pub fn run_arrival(run: TaskFn, user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move {
        let Some(pool) = ctx.arrivals.clone() else {
            return run_task(run, user, ctx).await;
        };
        if session(user).is_none() || is_stopped(user) {
            ctx.idle(STOPPED_USER_IDLE).await;
            return Ok(());
        }
        let first = session_mut(user).and_then(|s| s.first_arrival.take());
        let ticket = match first {
            Some(ticket) => ticket,
            None => match pool.next(|| ctx.is_stopping()).await {
                Some(ticket) => ticket,
                None => {
                    tokio::time::sleep(STOPPING_USER_PAUSE).await;
                    return Ok(());
                }
            },
        };
        let lag = std::time::Instant::now().saturating_duration_since(ticket.intended);
        ctx.ledger.arrival_started(lag);
        if let Some(s) = session_mut(user) {
            s.intended = Some(ticket.intended);
        }
        let busy = &ctx.ledger.live.busy;
        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = run_task(run, user, ctx.clone()).await;
        busy.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // A task that sent no HTTP request leaves its start unused.
        if let Some(s) = session_mut(user) {
            s.intended = None;
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TagFilter {
        TagFilter {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tag_filter_follows_locust() {
        let f = filter(&["gdpr"], &["delete"]);
        assert!(f.keeps(&["gdpr", "export"]));
        assert!(!f.keeps(&["gdpr", "delete"]));
        assert!(!f.keeps(&["health"]));
        assert!(filter(&[], &[]).keeps(&["anything"]));
        assert!(!filter(&[], &["health"]).keeps(&["health", "unauthenticated"]));
    }

    #[test]
    fn classes_mirror_the_suite() {
        let classes = builtin_classes();
        let weights: Vec<_> = classes.iter().map(|c| (c.name, c.weight)).collect();
        assert_eq!(
            weights,
            [
                ("AuthenticatedUser", 10),
                ("GDPRTestUser", 1),
                ("RateLimitTestUser", 1),
                ("WebSocketUser", 2)
            ]
        );
        for class in &classes {
            assert!(class.on_start.is_some(), "{} has no on_start", class.name);
            assert!(class.wait.0 <= class.wait.1);
        }
    }

    #[test]
    fn a_class_left_without_tasks_is_skipped() {
        let selection = Selection::new(builtin_classes(), &filter(&["gdpr"], &[]));
        assert_eq!(selection.class_names(), ["GDPRTestUser"]);
        assert_eq!(
            selection.skipped,
            ["AuthenticatedUser", "RateLimitTestUser", "WebSocketUser"]
        );
        let keys = selection.request_keys();
        assert!(keys.contains(&"POST /api/gdpr/export".to_string()));
        // on_start work is kept whatever the filter.
        assert!(keys.contains(&"POST /api/auth/register".to_string()));
        assert!(!keys.contains(&"GET /health".to_string()));
    }

    #[test]
    fn unknown_tags_are_named_with_the_valid_ones() {
        let err = filter(&["nope"], &[])
            .check_known(&builtin_classes())
            .expect_err("unknown tag");
        assert!(err.contains("'nope'") && err.contains("gdpr") && err.contains("rate-limit"));
        assert!(
            filter(&["authenticated"], &["refresh"])
                .check_known(&builtin_classes())
                .is_ok()
        );
    }
}
