//! Ownership: a user asks for another user's GDPR export status and download. Anything but
//! 403 or 404 is a finding; an answer with the data is high severity.

use super::ProbeOutcome;
use super::Severity;
use super::kit::{Answer, Call, Kit, Probe};
use serde_json::json;
use std::time::{Duration, Instant};

pub const NAME: &str = "ownership";

/// How long to wait for the owner's export to complete, so that the download is tested on
/// real data.
const EXPORT_WAIT: Duration = Duration::from_secs(8);

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, owner) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };
    let other = p.account_or_untested(&client).await;
    if let Some(other) = &other {
        check(&mut p, &client, &owner.access, &other.access).await;
    }
    p.remove(&client, &owner).await;
    if let Some(other) = &other {
        p.remove(&client, other).await;
    }
    p.finish()
}

async fn check(p: &mut Probe<'_>, client: &reqwest::Client, owner: &str, other: &str) {
    let call = Call::post("/api/gdpr/export")
        .bearer(owner)
        .json(json!({"format": "json"}));
    let answer = p.send(client, &call).await;
    let Some(id) = answer
        .str_field("export_id")
        .filter(|_| answer.is_success())
    else {
        p.not_tested(&format!(
            "the owner's export request answered {}",
            answer.describe()
        ));
        return;
    };
    let status_path = format!("/api/gdpr/export/{id}");
    let deadline = Instant::now() + EXPORT_WAIT;
    loop {
        let answer = p.send(client, &Call::get(&status_path).bearer(owner)).await;
        let state = answer.str_field("status");
        if state.as_deref() != Some("processing") || Instant::now() >= deadline {
            if state.as_deref() != Some("completed") {
                p.note(format!(
                    "the owner's export was not completed ({}); the other user's download is tried anyway",
                    state.unwrap_or_else(|| answer.describe())
                ));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let call = Call::get(&status_path).bearer(other);
    let answer = p.send(client, &call).await;
    judge(
        p,
        "another user's export status",
        &call,
        &answer,
        "Any signed-in user can read the state of another user's GDPR export by its id.",
    );
    let call = Call::get(&format!("{status_path}/download")).bearer(other);
    let answer = p.send(client, &call).await;
    judge(
        p,
        "another user's export download",
        &call,
        &answer,
        "Any signed-in user can download another user's personal data by the export's id.",
    );
}

/// 403 or 404: kept apart. 2xx: high. Anything else tells the export exists: medium.
fn judge(p: &mut Probe<'_>, what: &str, call: &Call, answer: &Answer, meaning: &str) {
    match answer.status {
        Some(403 | 404) => p.note(format!("{what}: refused ({})", answer.describe())),
        Some(429) | None => p.note(format!("{what}: not checked ({})", answer.describe())),
        _ if answer.is_success() => p.find(Severity::High, call, answer, meaning),
        Some(code) => p.find(
            Severity::Medium,
            call,
            answer,
            &format!(
                "{what} answers {code} instead of 403 or 404, which tells another user's export exists."
            ),
        ),
    }
}
