//! Rate-limit bypass: one client sends cheap auth requests until it is rate limited (429),
//! then sends the same request with an `X-Forwarded-For` header naming an address nobody
//! used. Being let through means the limiter trusts a header any client can forge.
//!
//! When no 429 comes within [`MAX_ATTEMPTS`], the bypass cannot be tested; that there is no
//! limit on the auth endpoints is itself reported (medium: some staging servers raise their
//! limits on purpose for load tests). Answers that are not the API's (a missing endpoint,
//! not JSON), or a 429 at the first request, leave the probe not tested.

use super::call::Call;
use super::client::{Kit, ProbeClient};
use super::judge::Ruling;
use super::probe::Probe;
use super::reply::ProbeReply;
use super::{ProbeOutcome, Severity};
use serde_json::json;

pub const NAME: &str = "rate-limit-bypass";

/// Requests sent before concluding there is no limit (the contract's auth limit is 10 a
/// minute, or 5 on servers that count each request twice).
pub const MAX_ATTEMPTS: usize = 30;

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let mut p = Probe::new(kit, NAME);
    if !kit.own_sources() {
        p.not_tested(
            "the probe clients would share the simulated users' source address (the host is \
             not on this machine, or --no-loopback-sources without --forwarded-for-pool): \
             exhausting the auth limit would throttle the users",
        );
        return p.finish();
    }
    let Some(client) = p.client() else {
        return p.finish();
    };
    // A malformed refresh token: an auth request the server answers without hashing.
    let call = Call::post("/api/auth/refresh")
        .json(json!({"refresh_token": "not-a-token"}))
        .label("{\"refresh_token\": a malformed token}");
    let what = "POST /api/auth/refresh";
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = p.ask(&client, &call).await;
        if answer.status.is_none() {
            p.not_tested(&format!(
                "request {attempt} to {what}: {}",
                answer.describe()
            ));
            return p.finish();
        }
        if answer.is_rate_limited() {
            if attempt == 1 {
                p.not_tested(&format!(
                    "{what} was rate limited (429) at the first request: the probe's client \
                     shares its budget with others"
                ));
                return p.finish();
            }
            p.note(format!("rate limited (429) after {attempt} auth requests"));
            bypass(&mut p, &client, &call).await;
            return p.finish();
        }
        if let Some(why) = answer.not_the_api() {
            p.not_tested(&format!(
                "{what} {why}: the API this probe needs is not there"
            ));
            return p.finish();
        }
    }
    let judge = limited(
        "rate limited (429) at last",
        Severity::Medium,
        format!(
            "No rate limit on the auth endpoints: {MAX_ATTEMPTS} requests in a row from one client were all answered, so passwords can be guessed as fast as the server answers (the X-Forwarded-For bypass could not be tested)."
        ),
    );
    p.check(
        &client,
        &call,
        &format!("{what} after {MAX_ATTEMPTS} requests"),
        judge,
    )
    .await;
    p.finish()
}

/// The limited client again, with a forged `X-Forwarded-For` naming an address no user
/// and no probe sends.
async fn bypass(p: &mut Probe<'_>, client: &ProbeClient, call: &Call) {
    let address = p.kit.spare_address();
    let forged = call.clone().header("X-Forwarded-For", &address);
    let pool = if p.kit.sends_forwarded_for() {
        " (This run's --forwarded-for-pool relies on that trust.)"
    } else {
        ""
    };
    let judge = limited(
        "still limited (429)",
        Severity::High,
        format!(
            "The rate limiter trusts X-Forwarded-For: any client escapes its limit by sending a new address in that header.{pool}"
        ),
    );
    p.check(
        client,
        &forged,
        &format!("with X-Forwarded-For: {address}"),
        judge,
    )
    .await;
}

/// The judge of a request that must be rate limited: a 429 is sound (`note`), no answer
/// unchecked, any other answer a finding of `severity` meaning `meaning`.
fn limited(
    note: &'static str,
    severity: Severity,
    meaning: String,
) -> impl Fn(&ProbeReply) -> Ruling {
    move |answer: &ProbeReply| match answer.status {
        Some(429) => Ruling::sound(note),
        None => Ruling::unchecked(format!("not checked ({})", answer.describe())),
        Some(_) => Ruling::flaw(severity, meaning.clone()),
    }
}
