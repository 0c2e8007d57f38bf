//! Deletion: after a GDPR deletion, the account's access token (HTTP and WebSocket), a login
//! with its password and a refresh with its refresh token must all be refused.

use super::kit::{Call, Kit, Probe};
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
    let answer = p.send(&client, &call).await;
    if !answer.is_success() {
        p.not_tested(&format!("the deletion answered {}", answer.describe()));
        p.remove(&client, &account).await;
        return p.finish();
    }

    let call = Call::get("/api/user/me").bearer(&account.access);
    let answer = p.send(&client, &call).await;
    p.expect_refused(
        "access token after deletion on GET /api/user/me",
        &call,
        &answer,
        Severity::High,
        "A deleted account's access token still reads its profile.",
    );
    let (call, answer, _socket) = p.ws_connect(&account.access, true).await;
    p.expect_refused(
        "access token after deletion at the WebSocket handshake",
        &call,
        &answer,
        Severity::High,
        "A deleted account's access token still opens a WebSocket session.",
    );
    let (call, answer) = p.login(&client, &account.email, &account.password).await;
    p.expect_refused(
        "login after deletion",
        &call,
        &answer,
        Severity::High,
        "A deleted account can still log in.",
    );
    if !account.refresh.is_empty() {
        let call = Call::post("/api/auth/refresh").json(json!({"refresh_token": account.refresh}));
        let answer = p.send(&client, &call).await;
        p.expect_refused(
            "refresh after deletion",
            &call,
            &answer,
            Severity::High,
            "A deleted account's refresh token still gets new access tokens.",
        );
    }
    p.finish()
}
