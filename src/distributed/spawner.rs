//! A worker's users, run by the worker itself rather than by Goose's scheduler: a master
//! orders an absolute number of users per class (`spawn`), up or down, many times in a run,
//! and Goose 0.19 can neither change the users of one class nor stop some users mid-run.
//!
//! Each user is a task of its own holding a `GooseUser` (so the classes' tasks run
//! unchanged): its class's on-start work, then a task picked at random by weight after
//! each wait, until it is told to stop; then its on-stop work. A user told to stop finishes
//! the task it is in. More users of a class start at once; fewer stop the newest first.

use crate::exchange::context::RunContext;
use crate::user_classes::{GooseUser, UserClass, begin_user, end_user, run_arrival, run_task};
use goose::config::GooseConfiguration;
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

struct RunningUser {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One class's users.
struct Class {
    class: Arc<UserClass>,
    /// Which task runs next, by weight.
    pick: Option<WeightedIndex<usize>>,
    users: Vec<RunningUser>,
}

/// The users of one worker's run.
pub struct Spawner {
    classes: Vec<Class>,
    ctx: Arc<RunContext>,
    base_url: Url,
    config: GooseConfiguration,
    client: reqwest::Client,
    /// Users told to stop that are still finishing their task or their on-stop work.
    leaving: Vec<RunningUser>,
}

impl Spawner {
    /// Ready to run `classes` (the plan's selection) in `ctx`.
    pub fn new(classes: &[UserClass], ctx: Arc<RunContext>) -> Spawner {
        let classes = classes
            .iter()
            .map(|c| Class {
                pick: WeightedIndex::new(c.tasks.iter().map(|t| t.weight)).ok(),
                class: Arc::new(c.clone()),
                users: Vec::new(),
            })
            .collect();
        // Goose's metrics stay off: these users report to the ledger only. Every user gets
        // its own client in its on-start work; this one is never used for a request.
        let mut config = GooseConfiguration::default();
        config.no_metrics = true;
        Spawner {
            classes,
            base_url: ctx.host.clone(),
            ctx,
            config,
            client: reqwest::Client::new(),
            leaving: Vec::new(),
        }
    }

    /// The users running now, by class (every class of the selection, 0 included).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.classes
            .iter()
            .map(|c| (c.class.name.to_string(), c.users.len() as u64))
            .collect()
    }

    pub fn user_count(&self) -> u64 {
        self.classes.iter().map(|c| c.users.len() as u64).sum()
    }

    /// Runs exactly `targets[class]` users of each class from now on (a class not named
    /// runs none). The caller has checked that every class named is one of ours.
    pub fn set(&mut self, targets: &BTreeMap<String, u64>) {
        self.leaving.retain(|u| !u.task.is_finished());
        for index in 0..self.classes.len() {
            let want = targets
                .get(self.classes[index].class.name)
                .copied()
                .unwrap_or(0) as usize;
            while self.classes[index].users.len() < want {
                let user = self.start(index);
                self.classes[index].users.push(user);
            }
            while self.classes[index].users.len() > want {
                if let Some(user) = self.classes[index].users.pop() {
                    let _ = user.stop.send(true);
                    self.leaving.push(user);
                }
            }
        }
    }

    fn start(&self, index: usize) -> RunningUser {
        let class = &self.classes[index];
        let (stop, stopped) = watch::channel(false);
        let user = GooseUser::new(
            index,
            Arc::from(class.class.name),
            self.base_url.clone(),
            &self.config,
            0,
            Some(self.client.clone()),
        );
        let task = tokio::spawn(live(
            class.class.clone(),
            class.pick.clone(),
            self.ctx.clone(),
            user,
            stopped,
        ));
        RunningUser { stop, task }
    }

    /// Stops every user: the run is ending, so on-stop work keeps to its short budget.
    /// Users still busy after `limit` are ended where they are.
    pub async fn stop_all(&mut self, limit: Duration) {
        self.ctx.begin_stopping();
        let mut all: Vec<RunningUser> = std::mem::take(&mut self.leaving);
        for class in &mut self.classes {
            all.append(&mut class.users);
        }
        for user in &all {
            let _ = user.stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + limit;
        for user in all {
            let abort = user.task.abort_handle();
            if tokio::time::timeout_at(deadline, user.task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// One user's life.
async fn live(
    class: Arc<UserClass>,
    pick: Option<WeightedIndex<usize>>,
    ctx: Arc<RunContext>,
    user: Result<GooseUser, goose::GooseError>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut user) = user else {
        return;
    };
    // A task's error means Goose could not record it; the ledger has it either way.
    let _ = begin_user(&class, &mut user, ctx.clone()).await;
    while !*stop.borrow() {
        let index = match &pick {
            Some(pick) => pick.sample(&mut rand::rng()),
            None => rand::rng().random_range(0..class.tasks.len().max(1)),
        };
        // An open-model run's users wait for their arrivals instead of a wait.
        let open = ctx.arrivals.is_some();
        if let Some(task) = class.tasks.get(index) {
            let _ = if open {
                run_arrival(task.run, &mut user, ctx.clone()).await
            } else {
                run_task(task.run, &mut user, ctx.clone()).await
            };
        }
        let (least, most) = if open {
            (Duration::ZERO, Duration::ZERO)
        } else {
            class.wait
        };
        let wait = if most > least {
            rand::rng().random_range(least..=most)
        } else {
            least
        };
        // Told to stop, or the spawner is gone.
        let told = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if told {
            break;
        }
        // Without a wait, let the other users run between two tasks.
        tokio::task::yield_now().await;
    }
    let _ = end_user(&class, &mut user, ctx.clone()).await;
}
