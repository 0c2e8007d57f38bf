//! GDPRTestUser: exports its data, follows the export to the download, and now and then
//! deletes its account and starts over (weight 1, waits of 5 to 15 s).

use super::account::{self, access_token};
use super::{TaskResult, UserClass};
use crate::exchange::Exchange;
use crate::exchange::context::RunContext;
use crate::exchange::session::{session, session_mut};
use crate::task;
use goose::goose::GooseUser;
use rand::Rng;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "GDPRTestUser";

pub fn class() -> UserClass {
    let (on_start, on_stop) = account::account_hooks(crate::task_fn!(on_start));
    UserClass {
        name: NAME,
        weight: 1,
        wait: (Duration::from_secs(5), Duration::from_secs(15)),
        on_start,
        on_stop,
        tasks: vec![
            task!(
                request_data_export,
                5,
                ["gdpr", "export"],
                ["POST /api/gdpr/export"]
            ),
            task!(
                check_export_status,
                3,
                ["gdpr", "export-status"],
                [
                    "GET /api/gdpr/export/{id}",
                    "GET /api/gdpr/export/{id}/download"
                ]
            ),
            task!(
                request_account_deletion,
                1,
                ["gdpr", "delete"],
                [
                    "POST /api/gdpr/delete",
                    "POST /api/auth/register",
                    "POST /api/auth/login/json"
                ]
            ),
        ],
    }
}

async fn on_start(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    account::start_with_account(user, ctx, NAME).await
}

async fn request_data_export(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(token) = access_token(user, &ctx).await? else {
        return Ok(());
    };
    let format = if rand::rng().random_bool(0.5) {
        "json"
    } else {
        "csv"
    };
    let reply = Exchange::post("/api/gdpr/export", "/api/gdpr/export")
        .bearer(Some(&token))
        .json(json!({"format": format, "include_metadata": true}))
        .ok(&[200, 202])
        .check(has_export_id)
        .send(user, &ctx)
        .await?;
    if let (true, Some(id)) = (reply.is_success(), reply.field("export_id")) {
        let id = id.to_string();
        if let Some(s) = session_mut(user) {
            s.export_id = Some(id);
        }
    }
    Ok(())
}

/// Polls the user's export; once it has completed, fetches the download and forgets it.
async fn check_export_status(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    let Some(export_id) = session(user).and_then(|s| s.export_id.clone()) else {
        return Ok(());
    };
    let Some(token) = access_token(user, &ctx).await? else {
        return Ok(());
    };
    let reply = Exchange::get(
        format!("/api/gdpr/export/{export_id}"),
        "/api/gdpr/export/{id}",
    )
    .bearer(Some(&token))
    .check(has_known_status)
    .send(user, &ctx)
    .await?;
    if !reply.is_success() {
        return Ok(());
    }
    match reply.field("status") {
        Some("completed") => {
            let path = reply
                .field("download_url")
                .map(str::to_string)
                .unwrap_or_else(|| format!("/api/gdpr/export/{export_id}/download"));
            Exchange::get(path, "/api/gdpr/export/{id}/download")
                .bearer(Some(&token))
                .send(user, &ctx)
                .await?;
            forget_export(user);
        }
        Some("failed") => forget_export(user),
        _ => {}
    }
    Ok(())
}

fn forget_export(user: &mut GooseUser) {
    if let Some(s) = session_mut(user) {
        s.export_id = None;
    }
}

/// One time in ten: deletes the account, then starts over with a new one.
async fn request_account_deletion(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    if !rand::rng().random_bool(0.1) {
        return Ok(());
    }
    let Some(token) = access_token(user, &ctx).await? else {
        return Ok(());
    };
    let reply = Exchange::post("/api/gdpr/delete", "/api/gdpr/delete")
        .bearer(Some(&token))
        .json(json!({"confirm": true, "reason": "load test: GDPR deletion flow"}))
        .check(is_scheduled)
        .send(user, &ctx)
        .await?;
    if reply.is_success() {
        ctx.ledger.cleanup(|c| c.deleted += 1);
        if let Some(s) = session_mut(user) {
            if let Some(account) = s.account.as_mut() {
                account.deleted = true;
            }
            s.tokens = None;
            s.export_id = None;
        }
        account::register_and_login(user, &ctx).await?;
    }
    Ok(())
}

fn has_export_id(body: &Value) -> Result<(), String> {
    match body.get("export_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(()),
        _ => Err("no export_id in the answer".to_string()),
    }
}

fn has_known_status(body: &Value) -> Result<(), String> {
    match body.get("status").and_then(Value::as_str) {
        Some("processing" | "completed" | "failed") => Ok(()),
        other => Err(format!("unexpected export status {other:?}")),
    }
}

fn is_scheduled(body: &Value) -> Result<(), String> {
    match body.get("status").and_then(Value::as_str) {
        Some("scheduled") => Ok(()),
        other => Err(format!("deletion status is {other:?}, not \"scheduled\"")),
    }
}
