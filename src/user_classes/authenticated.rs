//! AuthenticatedUser: the everyday user of the API (weight 10, waits of 1 to 3 s).

use super::account::{self, access_token, renew};
use super::{TaskResult, UserClass};
use crate::exchange::context::RunContext;
use crate::exchange::session::session;
use crate::exchange::{Exchange, Reply};
use crate::task;
use goose::goose::{GooseUser, TransactionError};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "AuthenticatedUser";

const MESSAGES: &[&str] = &[
    "I just learned about Rust ownership and borrowing today",
    "Can you explain how neural networks learn from data?",
    "Today's meeting notes: we agreed on the new API design",
    "I want to review what I learned about machine learning this week",
    "What are the best practices for writing Python tests?",
    "Summarise my learning progress on distributed systems",
    "I read a chapter on database indexing and query plans",
];

const QUERIES: &[&str] = &[
    "python",
    "machine learning",
    "meeting notes",
    "learning progress",
    "API design",
    "neural networks",
    "best practices",
];

pub fn class() -> UserClass {
    let (on_start, on_stop) = account::account_hooks(crate::task_fn!(on_start));
    UserClass {
        name: NAME,
        weight: 10,
        wait: (Duration::from_secs(1), Duration::from_secs(3)),
        on_start,
        on_stop,
        tasks: vec![
            task!(
                health_check,
                10,
                ["health", "unauthenticated"],
                ["GET /health"]
            ),
            task!(
                conversation_text,
                8,
                ["conversation", "authenticated"],
                ["POST /api/conversation", "POST /api/auth/refresh"]
            ),
            task!(
                search_captures,
                5,
                ["search", "authenticated"],
                ["POST /api/search"]
            ),
            task!(
                get_profile,
                3,
                ["profile", "authenticated"],
                ["GET /api/user/me", "POST /api/auth/refresh"]
            ),
            task!(
                update_profile,
                1,
                ["profile", "authenticated"],
                ["PATCH /api/user/me", "POST /api/auth/refresh"]
            ),
            task!(
                get_stats,
                3,
                ["stats", "unauthenticated"],
                ["GET /api/stats"]
            ),
            task!(
                session_history,
                2,
                ["history", "authenticated"],
                ["GET /api/session/{id}/history"]
            ),
            task!(
                refresh_access_token,
                1,
                ["refresh", "authenticated"],
                ["POST /api/auth/refresh"]
            ),
        ],
    }
}

async fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    account::start_with_account(user, ctx, NAME).await
}

async fn health_check(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    Exchange::get("/health", "/health")
        .check(healthy)
        .send(user, &ctx)
        .await?;
    Ok(())
}

/// Sends an authenticated request; on a 401 renews the token once and sends it again.
async fn with_token(
    user: &mut GooseUser,
    ctx: &RunContext,
    build: impl Fn() -> Exchange,
) -> Result<Option<Reply>, Box<TransactionError>> {
    let Some(token) = access_token(user, ctx).await? else {
        return Ok(None);
    };
    let reply = build().bearer(Some(&token)).send(user, ctx).await?;
    if reply.status_u16() != Some(401) || !renew(user, ctx).await? {
        return Ok(Some(reply));
    }
    let Some(token) = session(user).and_then(|s| s.access_token().map(str::to_string)) else {
        return Ok(Some(reply));
    };
    Ok(Some(build().bearer(Some(&token)).send(user, ctx).await?))
}

async fn conversation_text(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(s) = session(user) else {
        return Ok(());
    };
    let session_id = s.session_id.clone();
    let text = MESSAGES
        .choose(&mut rand::rng())
        .copied()
        .unwrap_or("hello");
    with_token(user, &ctx, || {
        Exchange::post("/api/conversation", "/api/conversation")
            .json(json!({"session_id": session_id, "text": text}))
            .check(has_agent_text)
    })
    .await?;
    Ok(())
}

async fn search_captures(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let (query, limit) = {
        let mut rng = rand::rng();
        (
            QUERIES.choose(&mut rng).copied().unwrap_or("python"),
            rng.random_range(5..=20),
        )
    };
    with_token(user, &ctx, || {
        Exchange::post("/api/search", "/api/search")
            .json(json!({"query": query, "limit": limit}))
            .check(has_results)
    })
    .await?;
    Ok(())
}

async fn get_profile(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    with_token(user, &ctx, || {
        Exchange::get("/api/user/me", "/api/user/me").check(has_email)
    })
    .await?;
    Ok(())
}

async fn update_profile(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(s) = session(user) else {
        return Ok(());
    };
    let full_name = format!("Load Test User {}", s.index);
    with_token(user, &ctx, || {
        Exchange::patch("/api/user/me", "/api/user/me")
            .json(json!({"full_name": full_name}))
            .check(has_email)
    })
    .await?;
    Ok(())
}

async fn get_stats(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    Exchange::get("/api/stats", "/api/stats")
        .check(has_database_stats)
        .send(user, &ctx)
        .await?;
    Ok(())
}

async fn session_history(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(s) = session(user) else {
        return Ok(());
    };
    let path = format!("/api/session/{}/history", s.session_id);
    let token = s.access_token().map(str::to_string);
    Exchange::get(path, "/api/session/{id}/history")
        .bearer(token.as_deref())
        .check(has_history)
        .send(user, &ctx)
        .await?;
    Ok(())
}

async fn refresh_access_token(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    account::refresh(user, &ctx).await?;
    Ok(())
}

pub fn healthy(body: &Value) -> Result<(), String> {
    match body.get("status").and_then(Value::as_str) {
        Some("healthy") => Ok(()),
        other => Err(format!("status is {other:?}, not \"healthy\"")),
    }
}

pub fn has_agent_text(body: &Value) -> Result<(), String> {
    match body.get("agent_text").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Ok(()),
        _ => Err("no agent_text in the answer".to_string()),
    }
}

fn has_results(body: &Value) -> Result<(), String> {
    match body.get("results") {
        Some(Value::Array(_)) => Ok(()),
        _ => Err("no results list in the answer".to_string()),
    }
}

fn has_email(body: &Value) -> Result<(), String> {
    match body.get("email").and_then(Value::as_str) {
        Some(email) if email.contains('@') => Ok(()),
        _ => Err("no email in the user object".to_string()),
    }
}

fn has_database_stats(body: &Value) -> Result<(), String> {
    match body.get("database") {
        Some(Value::Object(_)) => Ok(()),
        _ => Err("no database section in the stats".to_string()),
    }
}

fn has_history(body: &Value) -> Result<(), String> {
    match body.get("history") {
        Some(Value::Array(_)) => Ok(()),
        _ => Err("no history list in the answer".to_string()),
    }
}
