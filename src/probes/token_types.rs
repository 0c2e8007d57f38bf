//! Token types: a refresh token used as a Bearer access token (on a protected endpoint and
//! at the WebSocket handshake, in the query and in a header) must be refused, and so must an
//! access token sent to the refresh endpoint.

use super::call::Call;
use super::client::Kit;
use super::probe::Probe;
use super::{ProbeOutcome, Severity};
use serde_json::json;

pub const NAME: &str = "token-types";

const REFRESH_AS_ACCESS: &str = "A refresh token, which lives for days and is not meant to leave the client's token store, is accepted as an access token.";

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, account) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };

    // The access token works: otherwise a refusal below would prove nothing.
    let control = p
        .ask(&client, &Call::get("/api/user/me").bearer(&account.access))
        .await;
    if !control.is_success() {
        p.not_tested(&format!(
            "GET /api/user/me with the access token answered {}",
            control.describe()
        ));
    }

    if account.refresh.is_empty() {
        p.note("the login answer had no refresh token: refresh-as-access not checked");
    } else {
        p.expect_refused(
            &client,
            &Call::get("/api/user/me").bearer(&account.refresh),
            "refresh token as Bearer on GET /api/user/me",
            Severity::High,
            REFRESH_AS_ACCESS,
        )
        .await;
        for (in_query, how) in [(true, "?token="), (false, "an Authorization header")] {
            p.expect_refused_ws(
                &client,
                &account.refresh,
                in_query,
                &format!("refresh token at the WebSocket handshake in {how}"),
                Severity::High,
                &format!(
                    "A refresh token sent in {how} opens a WebSocket session as if it were an access token."
                ),
            )
            .await;
        }
    }

    p.expect_refused(
        &client,
        &Call::post("/api/auth/refresh").json(json!({"refresh_token": account.access})),
        "access token at POST /api/auth/refresh",
        Severity::High,
        "An access token can be exchanged for new tokens, so a short-lived stolen token can be renewed for ever.",
    )
    .await;

    p.remove(&client, &account).await;
    p.finish()
}
