//! The account steps every user class with an account shares: setting a user up,
//! register, login, refresh before expiry or on a 401, logout, cleanup.

use super::{Hook, TaskFn, TaskResult};
use crate::exchange::context::RunContext;
use crate::exchange::session::{Account, Tokens, UserSession, session, session_mut};
use crate::exchange::{Exchange, Reply};
use crate::measure::LeftAccount;
use goose::goose::{GooseUser, TransactionError};
use rand::Rng;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh the access token when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// How often an account step that got no answer at all (a reset, a timeout) is sent again
/// before the user gives up, and the pause before the first retry (doubled each time).
const NO_ANSWER_RETRIES: u32 = 3;
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);

pub type StepResult = Result<(), Box<TransactionError>>;

/// Sets up a user: its own client, a fresh session id and its forwarded-for address.
pub fn start_user(
    user: &mut GooseUser,
    ctx: &RunContext,
    class: &'static str,
) -> Result<(), Box<TransactionError>> {
    let index = ctx.next_user_index();
    let client = ctx.build_client(index);
    user.set_session_data(UserSession {
        index,
        class,
        client,
        session_id: uuid::Uuid::new_v4().to_string(),
        forwarded_for: ctx.forwarded_for(index),
        generation: 0,
        account: None,
        tokens: None,
        ready: false,
        stopped: false,
        export_id: None,
        created_accounts: 0,
        intended: None,
        first_arrival: None,
    });
    Ok(())
}

/// Sends the exchange `build` makes; when it gets no answer at all, sends it again after a
/// pause, a bounded number of times (not once the run is stopping).
async fn send_retrying(
    user: &mut GooseUser,
    ctx: &RunContext,
    build: impl Fn() -> Exchange,
) -> Result<Reply, Box<TransactionError>> {
    let mut pause = FIRST_RETRY_PAUSE;
    let mut reply = build().send(user, ctx).await?;
    for _ in 0..NO_ANSWER_RETRIES {
        if reply.status.is_some() || ctx.is_stopping() {
            break;
        }
        ctx.idle(pause).await;
        pause *= 2;
        reply = build().send(user, ctx).await?;
    }
    Ok(reply)
}

/// Why an account step failed, in words: `registration refused (429)`, `login refused (401:
/// Invalid email or password)`, `login got no answer (timeout)`.
fn step_failure(step: &str, reply: &Reply) -> String {
    if let Some(why) = reply.transport_failure() {
        return format!("{step} got no answer ({why})");
    }
    match (reply.status_u16(), reply.detail()) {
        (Some(429), _) => format!("{step} refused (429)"),
        (Some(code), Some(detail)) => format!("{step} refused ({code}: {detail})"),
        // No JSON at all (an HTML page, a proxy's text): the advice names it.
        (Some(code), None) if reply.json.is_none() => {
            format!("{step} refused ({code}: body is not JSON)")
        }
        (Some(code), None) => format!("{step} refused ({code})"),
        (None, _) => format!("{step} failed"),
    }
}

/// A password the API's policy accepts: upper, lower and digit, 8 to 128 characters.
fn new_password() -> String {
    const ALNUM: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
        .collect();
    format!("Lt7{tail}x")
}

/// A new account for this user: unique per run, user and generation, on a domain the API
/// accepts (`example.com` is reserved for documentation, never delivered to).
fn new_account(ctx: &RunContext, session: &mut UserSession) -> Account {
    session.generation += 1;
    Account {
        email: format!(
            "lt-{}-{}-{}@loadtest.example.com",
            ctx.run_id, session.index, session.generation
        ),
        password: new_password(),
        id: None,
        exists: false,
        deleted: false,
    }
}

/// Registers a new account and logs in. On failure the user stops and the reason counts.
pub async fn register_and_login(user: &mut GooseUser, ctx: &RunContext) -> StepResult {
    let Some(s) = session_mut(user) else {
        return Ok(());
    };
    let account = new_account(ctx, s);
    s.account = Some(account.clone());
    s.tokens = None;
    let body = json!({
        "email": account.email,
        "password": account.password,
        "full_name": "Load Test User",
    });
    let reply = send_retrying(user, ctx, || {
        Exchange::post("/api/auth/register", "/api/auth/register")
            .json(body.clone())
            .ok(&[200, 201])
            .check(has_id)
    })
    .await?;
    if reply.is_success() {
        ctx.ledger.auth(|a| a.registered += 1);
        ctx.ledger.cleanup(|c| c.accounts_created += 1);
        let id = reply.id();
        if let Some(s) = session_mut(user) {
            s.created_accounts += 1;
            if let Some(a) = s.account.as_mut() {
                a.exists = true;
                a.id = id;
            }
        }
    }
    // The suite logs in even when registration failed (the account may exist already,
    // for example when an earlier attempt registered it but its answer was lost).
    let login_reply = login(user, ctx).await?;
    if session(user).is_some_and(|s| s.tokens.is_none()) {
        // A registration that said "already registered" (400) is not the reason; the login is.
        let reason = match (
            &login_reply,
            reply.is_success() || reply.status_u16() == Some(400),
        ) {
            (_, false) => step_failure("registration", &reply),
            (Some(login), true) => step_failure("login", login),
            (None, true) => "login failed".to_string(),
        };
        stop_user(user, ctx, &reason);
    }
    Ok(())
}

/// Logs in with the user's account and keeps the tokens; returns the answer (`None` without
/// an account).
pub async fn login(
    user: &mut GooseUser,
    ctx: &RunContext,
) -> Result<Option<Reply>, Box<TransactionError>> {
    let Some(account) = session(user).and_then(|s| s.account.clone()) else {
        return Ok(None);
    };
    let body = json!({"email": account.email, "password": account.password});
    let reply = send_retrying(user, ctx, || {
        Exchange::post("/api/auth/login/json", "/api/auth/login/json")
            .json(body.clone())
            .check(has_tokens)
    })
    .await?;
    if let Some(tokens) = reply
        .json
        .as_ref()
        .and_then(tokens_from)
        .filter(|_| reply.is_success())
    {
        ctx.ledger.auth(|a| a.logged_in += 1);
        if let Some(s) = session_mut(user) {
            s.tokens = Some(tokens);
            if let Some(a) = s.account.as_mut() {
                a.exists = true;
            }
        }
    }
    Ok(Some(reply))
}

/// Refreshes the access token; returns whether it worked. A failure is counted.
pub async fn refresh(
    user: &mut GooseUser,
    ctx: &RunContext,
) -> Result<bool, Box<TransactionError>> {
    let Some(refresh_token) =
        session(user).and_then(|s| s.tokens.as_ref().map(|t| t.refresh.clone()))
    else {
        return Ok(false);
    };
    let reply = Exchange::post("/api/auth/refresh", "/api/auth/refresh")
        .json(json!({"refresh_token": refresh_token}))
        .check(has_access_token)
        .send(user, ctx)
        .await?;
    let fresh = reply.json.as_ref().and_then(|body| {
        let mut tokens = tokens_from(body)?;
        // Servers may keep the refresh token: keep whichever came back.
        if tokens.refresh.is_empty() {
            tokens.refresh = refresh_token.clone();
        }
        Some(tokens)
    });
    match fresh.filter(|_| reply.is_success()) {
        Some(tokens) => {
            ctx.ledger.auth(|a| a.refreshed += 1);
            if let Some(s) = session_mut(user) {
                s.tokens = Some(tokens);
            }
            Ok(true)
        }
        None => {
            ctx.ledger.auth(|a| a.refresh_failed += 1);
            Ok(false)
        }
    }
}

/// A usable access token: refreshed first when it is about to expire; when the refresh
/// fails, a new login; when that fails too, the user stops.
pub async fn access_token(
    user: &mut GooseUser,
    ctx: &RunContext,
) -> Result<Option<String>, Box<TransactionError>> {
    let expiring = session(user)
        .and_then(|s| s.tokens.as_ref())
        .map(|t| t.expires_at.saturating_duration_since(Instant::now()) < REFRESH_MARGIN);
    match expiring {
        None => return Ok(None),
        Some(true) => {
            renew(user, ctx).await?;
        }
        Some(false) => {}
    }
    Ok(session(user).and_then(|s| s.access_token().map(str::to_string)))
}

/// After a 401 or before expiry: refresh, else log in again, else stop the user.
pub async fn renew(user: &mut GooseUser, ctx: &RunContext) -> Result<bool, Box<TransactionError>> {
    if refresh(user, ctx).await? {
        return Ok(true);
    }
    if let Some(s) = session_mut(user) {
        s.tokens = None;
    }
    login(user, ctx).await?;
    let renewed = session(user).is_some_and(|s| s.tokens.is_some());
    if !renewed {
        stop_user(user, ctx, "token expired and could not be renewed");
    }
    Ok(renewed)
}

/// Marks the user stopped and counts why: refused at its start, or stopped later.
pub fn stop_user(user: &mut GooseUser, ctx: &RunContext, reason: &str) {
    if let Some(s) = session_mut(user).filter(|s| !s.stopped) {
        s.stopped = true;
        ctx.ledger.user_refused(s.class, reason, !s.ready);
        log::info!("user {} stops: {reason}", s.index);
    }
}

/// The user's account stays on the server: counted, and listed (e-mail, id, why) for the
/// accounts file.
fn left_behind(user: &mut GooseUser, ctx: &RunContext, reason: &str) {
    let Some(account) = session(user).and_then(|s| s.account.as_ref()) else {
        return;
    };
    let left = LeftAccount {
        email: account.email.clone(),
        id: account.id.clone(),
        reason: reason.to_string(),
    };
    ctx.ledger.cleanup(|c| {
        c.failed += 1;
        c.left_behind.push(left);
    });
}

/// End of the user's run: log out, and delete the account unless `--keep-accounts`.
pub async fn clean_up(user: &mut GooseUser, ctx: &RunContext) -> StepResult {
    let Some(s) = session(user) else {
        return Ok(());
    };
    // Nothing to clean up for an account that was deleted, or never came to exist.
    if s.account.as_ref().is_none_or(|a| a.deleted || !a.exists) {
        return Ok(());
    }
    // The access token may have expired since the user's last task: renew it first.
    let access = if s.tokens.is_some() {
        access_token(user, ctx).await?
    } else {
        None
    };
    let refresh = session(user).and_then(|s| s.tokens.as_ref().map(|t| t.refresh.clone()));
    let (Some(access), Some(refresh)) = (access, refresh) else {
        left_behind(
            user,
            ctx,
            "no token to delete it with (its login or renewal failed)",
        );
        return Ok(());
    };
    if !ctx.options.keep_accounts {
        let reply = Exchange::post("/api/gdpr/delete", "/api/gdpr/delete")
            .bearer(Some(&access))
            .json(json!({"confirm": true, "reason": "load test cleanup"}))
            .send(user, ctx)
            .await?;
        if reply.is_success() {
            ctx.ledger.cleanup(|c| c.deleted += 1);
            if let Some(a) = session_mut(user).and_then(|s| s.account.as_mut()) {
                a.deleted = true;
            }
            return Ok(());
        }
        left_behind(user, ctx, &step_failure("delete", &reply));
    }
    let reply = Exchange::post("/api/auth/logout", "/api/auth/logout")
        .bearer(Some(&access))
        .json(json!({"refresh_token": refresh}))
        .ok(&[200, 204])
        .send(user, ctx)
        .await?;
    if reply.is_success() {
        ctx.ledger.cleanup(|c| c.logged_out += 1);
        if let Some(s) = session_mut(user) {
            s.tokens = None;
        }
    }
    Ok(())
}

fn tokens_from(body: &Value) -> Option<Tokens> {
    let access = body.get("access_token")?.as_str()?.to_string();
    let refresh = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let lifetime = body
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(900);
    Some(Tokens {
        access,
        refresh,
        expires_at: Instant::now() + Duration::from_secs(lifetime),
    })
}

fn has_id(body: &Value) -> Result<(), String> {
    body.get("id")
        .map(|_| ())
        .ok_or_else(|| "no id in the registered user".to_string())
}

fn has_access_token(body: &Value) -> Result<(), String> {
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err("no access_token in the answer".to_string()),
    }
}

fn has_tokens(body: &Value) -> Result<(), String> {
    has_access_token(body)?;
    match body.get("refresh_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err("no refresh_token in the answer".to_string()),
    }
}

/// The start and stop work of every user class that has an account: `on_start` sets the
/// user up under its class name (see [`start_with_account`]); at the end, [`clean_up`].
pub fn account_hooks(on_start: TaskFn) -> (Option<Hook>, Option<Hook>) {
    (
        Some(Hook {
            name: "on_start register and login",
            requests: &["POST /api/auth/register", "POST /api/auth/login/json"],
            run: on_start,
        }),
        Some(Hook {
            name: "on_stop logout and clean up",
            requests: &[
                "POST /api/auth/logout",
                "POST /api/gdpr/delete",
                "POST /api/auth/refresh",
                "POST /api/auth/login/json",
            ],
            run: crate::task_fn!(on_stop_clean_up),
        }),
    )
}

/// Sets the user up as one of `class`, then registers and logs in.
pub async fn start_with_account(
    user: &mut GooseUser,
    ctx: Arc<RunContext>,
    class: &'static str,
) -> TaskResult {
    start_user(user, &ctx, class)?;
    register_and_login(user, &ctx).await
}

async fn on_stop_clean_up(user: &mut GooseUser, ctx: Arc<RunContext>) -> TaskResult {
    clean_up(user, &ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_meet_the_policy() {
        for _ in 0..100 {
            let p = new_password();
            assert!((8..=128).contains(&p.len()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn token_answers_are_read() {
        let body = json!({"access_token": "a", "refresh_token": "r", "expires_in": 60});
        let t = tokens_from(&body).expect("tokens");
        assert_eq!((t.access.as_str(), t.refresh.as_str()), ("a", "r"));
        assert!(has_tokens(&body).is_ok());
        assert!(has_tokens(&json!({"access_token": "a"})).is_err());
    }
}
