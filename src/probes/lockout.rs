//! Lockout: wrong passwords in a row on a probe account must lead to 423 (or 429), and the
//! right password must be refused while the account is locked. The right password is tried
//! from a second client, so the first client's rate-limit budget does not decide the answer.

use super::kit::{Answer, Kit, Probe, Verdict};
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
    let wrong = Probe::login_call(&account.email, &kit.password("Wr0ng-"));
    let accepted_wrong = |answer: &Answer| {
        if answer.is_success() {
            Verdict::flaw(
                Severity::High,
                "A login with a wrong password was accepted.",
            )
        } else {
            Verdict::sound(format!("refused ({})", answer.describe()))
        }
    };

    // The wrong passwords, then (when none was stopped) one more on a fresh connection,
    // so that "no lockout" is seen twice before it is said.
    let mut stopped_by: Option<(usize, u16)> = None;
    let mut last_wrong = Answer::default();
    for attempt in 1..=WRONG_ATTEMPTS + 1 {
        let answer = if attempt <= WRONG_ATTEMPTS {
            p.ask(&client, &wrong).await
        } else {
            p.send_fresh(&client, &wrong).await
        };
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
                p.settle(&client, &wrong, "a wrong password", &answer, accepted_wrong)
                    .await;
                p.remove(&client, &account).await;
                return p.finish();
            }
            _ => last_wrong = answer,
        }
    }

    let right = Probe::login_call(&account.email, &account.password);
    let answer = p.ask(&second, &right).await;
    match (stopped_by, answer.is_success()) {
        (_, _) if answer.status.is_none() => p.not_tested(&format!(
            "the right password while locked: {}",
            answer.describe()
        )),
        (Some((attempt, 423)), true) => {
            let judge = |answer: &Answer| {
                if answer.is_success() {
                    Verdict::flaw(
                        Severity::High,
                        format!(
                            "The account answered 423 (locked) after {attempt} wrong passwords but still accepts the right one, so the lock does not stop a guesser."
                        ),
                    )
                } else {
                    Verdict::sound(format!("refused ({})", answer.describe()))
                }
            };
            p.settle(&second, &right, "the right password while locked", &answer, judge)
                .await;
        }
        (Some((attempt, code)), true) => p.not_tested(&format!(
            "rate limited ({code}) after {attempt} wrong passwords, before any lockout showed"
        )),
        (Some((attempt, code)), false) => p.note(format!(
            "locked ({code}) after {attempt} wrong passwords; the right password refused ({}) while locked",
            answer.describe()
        )),
        (None, true) => p.report(
            Severity::Medium,
            &wrong,
            &last_wrong,
            &format!(
                "No lockout: {} wrong passwords in a row (the last on a fresh connection) were answered as usual and the right password then worked, so one account can be guessed at without limit.",
                WRONG_ATTEMPTS + 1
            ),
            &format!("{} wrong passwords, then the right one", WRONG_ATTEMPTS + 1),
        ),
        (None, false) => p.note(format!(
            "no 423 after {} wrong passwords, but the right password was refused ({})",
            WRONG_ATTEMPTS + 1,
            answer.describe()
        )),
    }
    // The tokens from before the lock still delete the account.
    p.remove(&client, &account).await;
    p.finish()
}
