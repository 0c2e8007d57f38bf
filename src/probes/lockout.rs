//! Lockout: wrong passwords in a row on a probe account must lead to 423 (or 429), and the
//! right password must be refused while the account is locked. The right password is tried
//! from a second client, so the first client's rate-limit budget does not decide the answer.

use super::kit::{Answer, Call, Kit, Probe};
use super::{ProbeOutcome, Severity};

pub const NAME: &str = "lockout";

/// The contract locks an account after 5 wrong passwords; one more shows the lock.
pub const WRONG_ATTEMPTS: usize = 6;

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, account) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };
    let Some(second) = p.client() else {
        p.remove(&client, &account).await;
        return p.finish();
    };
    let wrong = kit.password("Wr0ng-");

    let mut stopped_by: Option<(usize, u16)> = None;
    let mut last_wrong: Option<(Call, Answer)> = None;
    for attempt in 1..=WRONG_ATTEMPTS {
        let (call, answer) = p.login(&client, &account.email, &wrong).await;
        match answer.status {
            Some(code @ (423 | 429)) => {
                stopped_by = Some((attempt, code));
                break;
            }
            None => {
                p.not_tested(&format!(
                    "wrong-password login {attempt}: {}",
                    answer.describe()
                ));
                p.remove(&client, &account).await;
                return p.finish();
            }
            _ if answer.is_success() => {
                p.find(
                    Severity::High,
                    &call,
                    &answer,
                    "A login with a wrong password was accepted.",
                );
                p.remove(&client, &account).await;
                return p.finish();
            }
            _ => last_wrong = Some((call, answer)),
        }
    }

    let (call, answer) = p.login(&second, &account.email, &account.password).await;
    match (stopped_by, answer.is_success()) {
        (_, _) if answer.status.is_none() => p.not_tested(&format!(
            "the right password while locked: {}",
            answer.describe()
        )),
        (Some((attempt, 423)), true) => p.find(
            Severity::High,
            &call,
            &answer,
            &format!(
                "The account answered 423 (locked) after {attempt} wrong passwords but still accepts the right one, so the lock does not stop a guesser."
            ),
        ),
        (Some((attempt, code)), true) => p.not_tested(&format!(
            "rate limited ({code}) after {attempt} wrong passwords, before any lockout showed"
        )),
        (Some((attempt, code)), false) => p.note(format!(
            "locked ({code}) after {attempt} wrong passwords; the right password refused ({}) while locked",
            answer.describe()
        )),
        (None, true) => {
            let (call, answer) = last_wrong.unwrap_or((call, answer));
            p.find(
                Severity::Medium,
                &call,
                &answer,
                &format!(
                    "No lockout: {WRONG_ATTEMPTS} wrong passwords in a row were answered as usual and the right password then worked, so one account can be guessed at without limit."
                ),
            );
        }
        (None, false) => p.note(format!(
            "no 423 after {WRONG_ATTEMPTS} wrong passwords, but the right password was refused ({})",
            answer.describe()
        )),
    }
    // The tokens from before the lock still delete the account.
    p.remove(&client, &account).await;
    p.finish()
}
