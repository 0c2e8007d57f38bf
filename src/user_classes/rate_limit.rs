//! RateLimitTestUser: hammers the login and an API endpoint to show that the per-client
//! limits engage (weight 1, waits of 0.1 to 0.5 s). Its requests carry a
//! `[rate-limit-test]` suffix so they never mix with ordinary traffic in the reports.

use super::account::start_user;
use super::{Hook, TaskResult, UserClass};
use crate::exchange::Exchange;
use crate::exchange::context::RunContext;
use crate::exchange::session::session;
use crate::{task, task_fn};
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
            run: task_fn!(on_start),
        }),
        on_stop: Some(Hook {
            name: "on_stop report hits",
            requests: &[],
            run: task_fn!(on_stop),
        }),
        tasks: vec![
            task!(
                rapid_auth_attempts,
                10,
                ["rate-limit", "auth"],
                ["POST /api/auth/login/json [rate-limit-test]"]
            ),
            task!(
                rapid_api_requests,
                5,
                ["rate-limit", "api"],
                ["GET /api/stats [rate-limit-test]"]
            ),
        ],
    }
}

async fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    start_user(user, &ctx, NAME)
}

async fn on_stop(user: &mut GooseUser, _ctx: Arc<RunContext>) -> TaskResult {
    if let Some(s) = session(user) {
        log::info!("rate-limit user {} done", s.index);
    }
    Ok(())
}

/// Logs in as one of a hundred accounts that do not exist: 401 is the expected answer,
/// 429 shows the limiter at work.
async fn rapid_auth_attempts(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
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
}

async fn rapid_api_requests(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    Exchange::get("/api/stats", STATS).send(user, &ctx).await?;
    Ok(())
}
