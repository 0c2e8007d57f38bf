//! lva-loadtest: load tests for the Learning Voice Agent API, on Goose.
//!
//! The run flows one way: options → plan → attack → measurements → verdict → outputs.
//! [`cli`] reads the options, [`plan::Plan::resolve`] checks them against the presets, the
//! user classes and the targets before any traffic, [`host`] readies the server under test,
//! [`attack::attack`] runs Goose, the [`measure`] ledger collects what every request did,
//! [`verdict::judge`] turns that into a [`verdict::Verdict`], and [`report`] writes the
//! summary and the files; [`conclude`] is that end of every run. [`app`] ties them into the
//! tool's commands, and `main` turns the command's [`exit::Exit`] into the process's code.
//! Without `--host` the tool starts the reference server, the `lva-target` program of the
//! workspace's `crates/lva-target`, beside it (see [`host`]). The map is
//! `docs/ARCHITECTURE.md`.
//!
//! # User classes, tasks and tags
//!
//! A [`user_classes::UserClass`] is one kind of simulated user (a Locust user class):
//! - its `weight` sets its share of the run's users against the other classes
//!   (AuthenticatedUser 10, WebSocketUser 2, GDPRTestUser and RateLimitTestUser 1);
//! - its `wait` is the pause between two of its tasks, picked uniformly in the range;
//! - its `on_start` and `on_stop` [`user_classes::Hook`]s run once per user, whatever the tag
//!   filter: setting the user up (its own client, an account, a login), and cleaning up;
//! - its [`user_classes::Task`]s are what the user does, one after another, each picked at
//!   random in proportion to its `weight`. A task carries Locust-style `tags` and lists the
//!   `requests` (`"METHOD name"`) it can make.
//!
//! `--tags` and `--exclude-tags` make a [`user_classes::TagFilter`]: a task is kept when it has any
//! included tag and no excluded one, and a class left with no task is not spawned. The
//! request names let a target name one request (`--target "p95<800ms for POST
//! /api/search"`), and a target naming a request no selected task makes is refused before
//! the run.
//!
//! A task is an `async fn` of the user and the run's [`exchange::context::RunContext`],
//! listed in its class's table with [`task!`]. It sends each request with
//! [`exchange::Exchange`], which times it to the end of the body, classifies the answer (the
//! expected statuses, and a body check that turns a wrong 200 into a failure) and records it
//! for Goose's reports and for the verdict. [`exchange::session`] has the per-user state and
//! [`user_classes::account`] the account steps the built-in classes share. A user that could
//! not authenticate has stopped: its tasks are not run (the check is made once, for every
//! task).
//!
//! A program adds its own classes and keeps the whole tool (presets, flags, targets,
//! reports, exit codes) with [`app::run`]; `examples/custom_user.rs` is a
//! complete one. In short:
//!
//! ```no_run
//! use lva_loadtest::exchange::Exchange;
//! use lva_loadtest::exchange::context::RunContext;
//! use lva_loadtest::user_classes::{GooseUser, Hook, TaskResult, UserClass, account};
//! use lva_loadtest::{task, task_fn};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! fn health_watcher() -> UserClass {
//!     UserClass {
//!         name: "HealthWatcher",
//!         weight: 1,
//!         wait: (Duration::from_secs(5), Duration::from_secs(10)),
//!         // Gives each user its own client and session, under the class's name.
//!         on_start: Some(Hook { name: "on_start", requests: &[], run: task_fn!(start) }),
//!         on_stop: None,
//!         tasks: vec![task!(watch_health, 1, ["health", "watch"], ["GET /health"])],
//!     }
//! }
//!
//! async fn start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
//!     account::start_user(user, &ctx, "HealthWatcher")
//! }
//!
//! async fn watch_health(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
//!     Exchange::get("/health", "/health")
//!         .check(|body| match body["status"].as_str() {
//!             Some("healthy") => Ok(()),
//!             other => Err(format!("status {other:?}, not \"healthy\"")),
//!         })
//!         .send(user, &ctx)
//!         .await?;
//!     Ok(())
//! }
//!
//! fn main() {
//!     let mut classes = lva_loadtest::user_classes::builtin_classes();
//!     classes.push(health_watcher());
//!     let args = std::env::args().collect();
//!     let exit = lva_loadtest::app::run(args, classes);
//!     std::process::exit(exit.code());
//! }
//! ```

// First, so that its macros are in scope in every module below.
#[macro_use]
mod console;

pub mod app;
pub mod attack;
pub mod capacity;
pub mod cli;
pub mod conclude;
pub mod distributed;
pub mod duration;
pub mod exchange;
pub mod exit;
pub mod host;
pub mod live_metrics;
pub mod measure;
pub mod plan;
pub mod presets;
pub mod probes;
pub mod report;
pub mod server_metrics;
pub mod transport;
pub mod user_classes;
pub mod verdict;
