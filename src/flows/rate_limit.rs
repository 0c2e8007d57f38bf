//! RateLimitTestUser: hammers the login and an API endpoint to show that the per-client
//! limits engage (weight 1, waits of 0.1 to 0.5 s). Its requests carry a
//! `[rate-limit-test]` suffix so they never mix with ordinary traffic in the reports.

use super::session::{self, is_stopped};
use super::{Hook, Task, TaskFuture, UserClass};
use crate::api::Exchange;
use crate::flows::context::RunContext;
use goose::goose::GooseUser;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "RateLimitTestUser";

/// The login name: its own, so that rate-limit traffic is reported apart.
pub const LOGIN: &str = "/api/auth/login/json [rate-limit-test]";
pub const STATS: &str = "/api/stats [rate-limit-test]";

pub fn class() -> UserClass {
    UserClass {
        name: NAME,
        weight: 1,
        wait: (Duration::from_millis(100), Duration::from_millis(500)),
        on_start: Some(Hook {
            name: "on_start prepare",
            requests: &[],
            run: on_start,
        }),
        on_stop: Some(Hook {
            name: "on_stop report hits",
            requests: &[],
            run: on_stop,
        }),
        tasks: vec![
            Task {
                name: "rapid_auth_attempts",
                weight: 10,
                tags: &["rate-limit", "auth"],
                requests: &["POST /api/auth/login/json [rate-limit-test]"],
                run: rapid_auth_attempts,
            },
            Task {
                name: "rapid_api_requests",
                weight: 5,
                tags: &["rate-limit", "api"],
                requests: &["GET /api/stats [rate-limit-test]"],
                run: rapid_api_requests,
            },
        ],
    }
}

fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move { session::start_user(user, &ctx, NAME) })
}

fn on_stop(user: &mut GooseUser, _ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move {
        if let Some(s) = session::session(user) {
            log::info!("rate-limit user {} done", s.index);
        }
        Ok(())
    })
}

/// Logs in as one of a hundred accounts that do not exist: 401 is the expected answer,
/// 429 shows the limiter at work.
fn rapid_auth_attempts(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move {
        if is_stopped(user) {
            return Ok(());
        }
        let n = rand::rng().random_range(0..100);
        Exchange::post("/api/auth/login/json", LOGIN)
            .json(json!({
                "email": format!("ratelimit-{n}@loadtest.example.com"),
                "password": "NotTheRight1Password",
            }))
            .expected_errors(&[401, 423])
            .send(user, &ctx)
            .await?;
        Ok(())
    })
}

fn rapid_api_requests(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskFuture<'_> {
    Box::pin(async move {
        if is_stopped(user) {
            return Ok(());
        }
        Exchange::get("/api/stats", STATS).send(user, &ctx).await?;
        Ok(())
    })
}
