//! Revocation: after a logout that names the refresh token, the old access token must be
//! refused on HTTP and at the WebSocket handshake, and the old refresh token at the refresh
//! endpoint.

use super::call::Call;
use super::client::Kit;
use super::probe::Probe;
use super::reply::tokens_of;
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
    let answer = p.ask(&client, &call).await;
    if answer.is_success() {
        p.expect_refused(
            &client,
            &Call::get("/api/user/me").bearer(&account.access),
            "access token after logout on GET /api/user/me",
            Severity::High,
            "Logging out does not end the session: the old access token still works.",
        )
        .await;
        p.expect_refused_ws(
            &client,
            &account.access,
            true,
            "access token after logout at the WebSocket handshake",
            Severity::High,
            "Logging out does not end the session: the old access token still opens a WebSocket.",
        )
        .await;
        if !account.refresh.is_empty() {
            p.expect_refused(
                &client,
                &Call::post("/api/auth/refresh").json(json!({"refresh_token": account.refresh})),
                "refresh token after logout on POST /api/auth/refresh",
                Severity::High,
                "Logging out does not revoke the refresh token: whoever holds it keeps getting new access tokens.",
            )
            .await;
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
