//! lva-loadtest: load tests for the Learning Voice Agent API, on Goose.
//!
//! The run flows one way: options → plan → attack → measurements → verdict → outputs.
//! [`cli`] reads the options, [`plan::Plan::resolve`] checks them against the presets, the
//! user classes and the targets before any traffic, [`run::attack`] runs Goose, the
//! [`measure`] ledger collects what every request did, [`validate::judge`] turns that into a
//! [`validate::Verdict`], and [`report`] writes the summary and the files. [`app`] ties them
//! into the tool's commands; [`target`] is the reference server the tool tests without
//! `--host`.
//!
//! # User classes, tasks and tags
//!
//! A [`flows::UserClass`] is one kind of simulated user (a Locust user class; a Goose
//! scenario):
//! - its `weight` sets its share of the run's users against the other classes
//!   (AuthenticatedUser 10, WebSocketUser 2, GDPRTestUser and RateLimitTestUser 1);
//! - its `wait` is the pause between two of its tasks, picked uniformly in the range;
//! - its `on_start` and `on_stop` [`flows::Hook`]s run once per user, whatever the tag
//!   filter: setting the user up (its own client, an account, a login), and cleaning up;
//! - its [`flows::Task`]s are what the user does, one after another, each picked at random in
//!   proportion to its `weight`. A task carries Locust-style `tags` and lists the
//!   `requests` (`"METHOD name"`) it can make.
//!
//! `--tags` and `--exclude-tags` make a [`flows::TagFilter`]: a task is kept when it has any
//! included tag and no excluded one, and a class left with no task is not spawned. The
//! request names let a target name one request (`--target "p95<800ms for POST
//! /api/search"`), and a target naming a request no selected task makes is refused before
//! the run.
//!
//! A task is a function of the user and the run's [`flows::context::RunContext`]. It sends
//! each request with [`api::Exchange`], which times it to the end of the body, classifies
//! the answer (the expected statuses, and a body check that turns a wrong 200 into a
//! failure) and records it for Goose's reports and for the verdict. [`flows::session`] has
//! the per-user state and the account steps the built-in classes share.
//!
//! A program adds its own classes and keeps the whole tool (presets, flags, targets,
//! reports, exit codes) with [`app::main_with_classes`]; `examples/custom_user.rs` is a
//! complete one. In short:
//!
//! ```no_run
//! use lva_loadtest::api::Exchange;
//! use lva_loadtest::flows::context::RunContext;
//! use lva_loadtest::flows::{GooseUser, Hook, Task, TaskFuture, UserClass, session};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! fn health_watcher() -> UserClass {
//!     UserClass {
//!         name: "HealthWatcher",
//!         weight: 1,
//!         wait: (Duration::from_secs(5), Duration::from_secs(10)),
//!         // Gives each user its own client and session, under the class's name.
//!         on_start: Some(Hook { name: "on_start", requests: &[], run: start }),
//!         on_stop: None,
//!         tasks: vec![Task {
//!             name: "watch_health",
//!             weight: 1,
//!             tags: &["health", "watch"],
//!             requests: &["GET /health"],
//!             run: watch_health,
//!         }],
//!     }
//! }
//!
//! fn start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
//!     Box::pin(async move { session::start_user(user, &ctx, "HealthWatcher") })
//! }
//!
//! fn watch_health(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
//!     Box::pin(async move {
//!         Exchange::get("/health", "/health")
//!             .check(|body| match body["status"].as_str() {
//!                 Some("healthy") => Ok(()),
//!                 other => Err(format!("status {other:?}, not \"healthy\"")),
//!             })
//!             .send(user, &ctx)
//!             .await?;
//!         Ok(())
//!     })
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let mut classes = lva_loadtest::flows::builtin_classes();
//!     classes.push(health_watcher());
//!     let args = std::env::args().collect();
//!     std::process::exit(lva_loadtest::app::main_with_classes(args, classes).await);
//! }
//! ```

pub mod api;
pub mod app;
pub mod cli;
pub mod distributed;
pub mod flows;
pub mod measure;
pub mod plan;
pub mod presets;
pub mod probes;
pub mod report;
pub mod run;
pub mod target;
pub mod validate;
