//! A user class of one's own beside the built-in ones, with the tool's whole command line.
//!
//! `StudyUser` is a learner revising a topic: it asks the agent about it, then searches its
//! notes. It is spawned three times as often as a user class of weight 1, waits 1 to 2 s
//! between tasks, and has an account of its own like the built-in classes (registered and
//! logged in at its start, deleted at its end).
//!
//! ```text
//! cargo run --release --example custom_user -- --tags study --duration 30s
//! cargo run --release --example custom_user -- --host http://localhost:8000 --scenario load
//! ```
//!
//! Without `--host` the built-in reference server is tested. Every option of `lva-loadtest`
//! works: `--tags study` runs only this class (the built-in ones have no `study` task),
//! `--tags search` runs its `review_notes` beside AuthenticatedUser's search, and targets can
//! name its requests, e.g. `--target "p95<800ms for POST /api/search [study]"`.

use lva_loadtest::exchange::Exchange;
use lva_loadtest::exchange::context::RunContext;
use lva_loadtest::exchange::session::session;
use lva_loadtest::user_classes::account::{self, access_token};
use lva_loadtest::user_classes::{GooseUser, TaskResult, UserClass, builtin_classes};
use lva_loadtest::{task, task_fn};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The class name: reports and the rate-limit check group its requests under it.
const NAME: &str = "StudyUser";

const TOPICS: &[&str] = &[
    "ownership in Rust",
    "database indexes",
    "TCP congestion control",
];

/// The class, as the tool takes it: public so that the project's tests can check it.
pub fn study_user() -> UserClass {
    // Register and log in at the start, delete the account at the end (as the built-in
    // classes do); `on_start` only names the class.
    let (on_start, on_stop) = account::account_hooks(task_fn!(on_start));
    UserClass {
        name: NAME,
        weight: 3,
        wait: (Duration::from_secs(1), Duration::from_secs(2)),
        on_start,
        on_stop,
        // One line a task: its `async fn`, its weight, its tags, and every request key it
        // can make (so targets naming them are accepted).
        tasks: vec![
            task!(
                ask_about_topic,
                2,
                ["study", "conversation"],
                ["POST /api/conversation [study]", "POST /api/auth/refresh"]
            ),
            task!(
                review_notes,
                1,
                ["study", "search"],
                ["POST /api/search [study]", "POST /api/auth/refresh"]
            ),
        ],
    }
}

async fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    account::start_with_account(user, ctx, NAME).await
}

/// A topic picked by the user's index, so each user sticks to one.
fn topic(user: &GooseUser) -> &'static str {
    let index = session(user).map_or(0, |s| s.index as usize);
    TOPICS[index % TOPICS.len()]
}

/// A task is an `async fn`; the tool runs it only for a user that has not stopped (one whose
/// login failed stops, and its tasks are skipped).
async fn ask_about_topic(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(session_id) = session(user).map(|s| s.session_id.clone()) else {
        return Ok(());
    };
    // Refreshed first when it is about to expire; `None` once the user has stopped.
    let Some(token) = access_token(user, &ctx).await? else {
        return Ok(());
    };
    let text = format!("Explain {} in two sentences", topic(user));
    // The name after the path is what reports group by: " [study]" keeps these
    // requests apart from AuthenticatedUser's.
    Exchange::post("/api/conversation", "/api/conversation [study]")
        .bearer(Some(&token))
        .json(json!({"session_id": session_id, "text": text}))
        .send(user, &ctx)
        .await?;
    Ok(())
}

async fn review_notes(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(token) = access_token(user, &ctx).await? else {
        return Ok(());
    };
    let query = topic(user).split(' ').next().unwrap_or("notes");
    Exchange::post("/api/search", "/api/search [study]")
        .bearer(Some(&token))
        .json(json!({"query": query, "limit": 10}))
        // A 200 whose body does not hold up counts as a failure, with this reason.
        .check(results_match_count)
        .send(user, &ctx)
        .await?;
    Ok(())
}

/// The answer lists its results and says how many there are: the two must agree.
fn results_match_count(body: &Value) -> Result<(), String> {
    let results = body
        .get("results")
        .and_then(Value::as_array)
        .ok_or("no results list in the answer")?;
    match body.get("count").and_then(Value::as_u64) {
        Some(count) if count == results.len() as u64 => Ok(()),
        Some(count) => Err(format!("count {count} but {} results", results.len())),
        None => Err("no count in the answer".to_string()),
    }
}

fn main() {
    let mut classes = builtin_classes();
    classes.push(study_user());
    let exit = lva_loadtest::app::run(std::env::args().collect(), classes);
    // Goose's threads may still linger; the verdict is final.
    std::process::exit(exit.code());
}
