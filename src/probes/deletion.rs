//! Deletion: after a GDPR deletion, the account's access token (HTTP and WebSocket), a login
//! with its password and a refresh with its refresh token must all be refused. The
//! WebSocket check is the one that finds a handshake that forgets to look at the account.

use super::call::Call;
use super::client::Kit;
use super::probe::Probe;
use super::{ProbeOutcome, Severity};
use serde_json::json;

pub const NAME: &str = "deletion";

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, account) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };

    let call = Call::post("/api/gdpr/delete")
        .bearer(&account.access)
        .json(json!({"confirm": true, "reason": "security probe"}));
    let answer = p.ask(&client, &call).await;
    if !answer.is_success() {
        p.not_tested(&format!("the deletion answered {}", answer.describe()));
        p.remove(&client, &account).await;
        return p.finish();
    }

    p.expect_refused(
        &client,
        &Call::get("/api/user/me").bearer(&account.access),
        "access token after deletion on GET /api/user/me",
        Severity::High,
        "A deleted account's access token still reads its profile.",
    )
    .await;
    p.expect_refused_ws(
        &client,
        &account.access,
        true,
        "access token after deletion at the WebSocket handshake",
        Severity::High,
        "A deleted account's access token still opens a WebSocket session.",
    )
    .await;
    p.expect_refused(
        &client,
        &Probe::login_call(&account.email, &account.password),
        "login after deletion",
        Severity::High,
        "A deleted account can still log in.",
    )
    .await;
    if !account.refresh.is_empty() {
        p.expect_refused(
            &client,
            &Call::post("/api/auth/refresh").json(json!({"refresh_token": account.refresh})),
            "refresh after deletion",
            Severity::High,
            "A deleted account's refresh token still gets new access tokens.",
        )
        .await;
    }
    p.finish()
}
