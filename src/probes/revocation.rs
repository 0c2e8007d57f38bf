//! Revocation: after a logout that names the refresh token, the old access token must be
//! refused on HTTP and at the WebSocket handshake, and the old refresh token at the refresh
//! endpoint.

use super::kit::{Call, Kit, Probe, tokens_of};
use super::{ProbeOutcome, Severity};
use serde_json::json;

pub const NAME: &str = "revocation";

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, mut account) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };

    let call = Call::post("/api/auth/logout")
        .bearer(&account.access)
        .json(json!({"refresh_token": account.refresh}));
    let answer = p.send(&client, &call).await;
    if answer.is_success() {
        let call = Call::get("/api/user/me").bearer(&account.access);
        let answer = p.send(&client, &call).await;
        p.expect_refused(
            "access token after logout on GET /api/user/me",
            &call,
            &answer,
            Severity::High,
            "Logging out does not end the session: the old access token still works.",
        );
        let (call, answer, _socket) = p.ws_connect(&account.access, true).await;
        p.expect_refused(
            "access token after logout at the WebSocket handshake",
            &call,
            &answer,
            Severity::High,
            "Logging out does not end the session: the old access token still opens a WebSocket.",
        );
        if !account.refresh.is_empty() {
            let call =
                Call::post("/api/auth/refresh").json(json!({"refresh_token": account.refresh}));
            let answer = p.send(&client, &call).await;
            p.expect_refused(
                "refresh token after logout on POST /api/auth/refresh",
                &call,
                &answer,
                Severity::High,
                "Logging out does not revoke the refresh token: whoever holds it keeps getting new access tokens.",
            );
        }
    } else {
        p.not_tested(&format!("the logout answered {}", answer.describe()));
    }

    // The old tokens are gone: a new login for the cleanup.
    let (_, answer) = p.login(&client, &account.email, &account.password).await;
    match tokens_of(&answer) {
        Some((access, refresh)) => {
            account.access = access;
            account.refresh = refresh;
            p.remove(&client, &account).await;
        }
        None => p.note(format!(
            "cleanup: the login to delete the probe account answered {}",
            answer.describe()
        )),
    }
    p.finish()
}
