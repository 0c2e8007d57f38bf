//! Ownership: a user asks for another user's GDPR export status and download. Judged by
//! content: an answer is a finding only when it holds the owner's data (its e-mail, its
//! account id, or, for the status, the owner's export); an answer with the caller's own
//! data means the server ignores the id, which is no leak.

use super::accounts::ProbeAccount;
use super::call::Call;
use super::client::{Kit, ProbeClient};
use super::judge::Ruling;
use super::probe::Probe;
use super::reply::ProbeReply;
use super::{ProbeOutcome, Severity};
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
        check(&mut p, &client, &owner, other).await;
    }
    p.remove(&client, &owner).await;
    if let Some(other) = &other {
        p.remove(&client, other).await;
    }
    p.finish()
}

/// The values that say whose data an answer holds: e-mail and account id.
fn marks(account: &ProbeAccount) -> Vec<String> {
    std::iter::once(account.email.clone())
        .chain(account.id.clone())
        .collect()
}

async fn check(
    p: &mut Probe<'_>,
    client: &ProbeClient,
    owner: &ProbeAccount,
    other: &ProbeAccount,
) {
    let call = Call::post("/api/gdpr/export")
        .bearer(&owner.access)
        .json(json!({"format": "json"}));
    let answer = p.ask(client, &call).await;
    if let Some(why) = Probe::setup_refused("the owner's export request", &answer) {
        p.not_tested(&why);
        return;
    }
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
        let answer = p
            .ask(client, &Call::get(&status_path).bearer(&owner.access))
            .await;
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

    let caller = marks(other);
    let mut owners = marks(owner);
    let unknown = uuid::Uuid::new_v4();
    for (what, path, control, meaning) in [
        (
            "another user's export status",
            status_path.clone(),
            format!("/api/gdpr/export/{unknown}"),
            "Any signed-in user can read the state of another user's GDPR export by its id.",
        ),
        (
            "another user's export download",
            format!("{status_path}/download"),
            format!("/api/gdpr/export/{unknown}/download"),
            "Any signed-in user can download another user's personal data by the export's id.",
        ),
    ] {
        // What an id that exists nowhere gets, to tell whether another answer says more.
        let control = p
            .ask(client, &Call::get(&control).bearer(&other.access))
            .await;
        // The status of the owner's export is the owner's, whoever's name it carries.
        if path == status_path {
            owners.push(id.clone());
        } else {
            owners.retain(|m| *m != id);
        }
        let judge = judge_read(
            what,
            owners.clone(),
            caller.clone(),
            control.status,
            meaning,
        );
        let call = Call::get(&path).bearer(&other.access);
        p.check(client, &call, what, judge).await;
    }
}

/// 403 or 404: kept apart. 2xx: a finding (high) when it holds the owner's data; the
/// caller's own data passes (the id is ignored). Another status is a finding (medium) only
/// when an unknown id gets a different one, since it then tells the export exists.
fn judge_read(
    what: &str,
    owner: Vec<String>,
    caller: Vec<String>,
    unknown_id: Option<u16>,
    meaning: &str,
) -> impl Fn(&ProbeReply) -> Ruling + use<> {
    let (what, meaning) = (what.to_string(), meaning.to_string());
    move |answer: &ProbeReply| match answer.status {
        Some(403 | 404) => Ruling::sound(format!("refused ({})", answer.describe())),
        Some(429) | None => Ruling::unchecked(format!("not checked ({})", answer.describe())),
        Some(code) if answer.is_success() => {
            let leaked = owner
                .iter()
                .find(|mark| answer.carries(mark) && !caller.contains(mark));
            if let Some(mark) = leaked {
                Ruling::Flaw {
                    severity: Severity::High,
                    meaning: format!("{meaning} The answer holds the owner's data."),
                    evidence: answer.around(mark),
                }
            } else if caller.iter().any(|mark| answer.carries(mark)) {
                Ruling::sound(format!(
                    "answered {code} with the caller's own data: the id is ignored; the caller gets its own data"
                ))
            } else {
                Ruling::sound(format!(
                    "answered {code} without the owner's data (nor the caller's): nothing leaked"
                ))
            }
        }
        Some(code) if Some(code) == unknown_id => Ruling::sound(format!(
            "answered {code}, as for an id that does not exist: it tells nothing"
        )),
        Some(code) => Ruling::flaw(
            Severity::Medium,
            format!(
                "{what} answers {code} where an unknown id gets {}, which tells another user's export exists.",
                unknown_id.map_or_else(|| "no answer".to_string(), |s| s.to_string())
            ),
        ),
    }
}
