//! Rate-limit bypass: one client sends cheap auth requests until it is rate limited (429),
//! then sends the same request with an `X-Forwarded-For` header naming a new address. Being
//! let through means the limiter trusts a header any client can forge.
//!
//! When no 429 comes within [`MAX_ATTEMPTS`], the bypass cannot be tested; that there is no
//! limit on the auth endpoints is itself reported (medium: some staging servers raise their
//! limits on purpose for load tests).

use super::kit::{Call, Kit, Probe};
use super::{ProbeOutcome, Severity};
use rand::Rng;
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
             not on this machine, or --no-loopback-sources): exhausting the auth limit would \
             throttle the users",
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
    let mut last = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = p.send(&client, &call).await;
        if answer.status.is_none() {
            p.not_tested(&format!(
                "request {attempt} to POST /api/auth/refresh: {}",
                answer.describe()
            ));
            return p.finish();
        }
        if answer.is_rate_limited() {
            p.note(format!("rate limited (429) after {attempt} auth requests"));
            bypass(&mut p, &client, &call).await;
            return p.finish();
        }
        last = Some(answer);
    }
    if let Some(answer) = last {
        p.find(
            Severity::Medium,
            &call,
            &answer,
            &format!(
                "No rate limit on the auth endpoints: {MAX_ATTEMPTS} requests in a row from one client were all answered, so passwords can be guessed as fast as the server answers (the X-Forwarded-For bypass could not be tested)."
            ),
        );
    }
    p.finish()
}

/// The limited client again, with a forged `X-Forwarded-For` (a documentation address).
async fn bypass(p: &mut Probe<'_>, client: &reqwest::Client, call: &Call) {
    let address = format!("203.0.113.{}", rand::rng().random_range(200..=254));
    let forged = call.clone().header("X-Forwarded-For", &address);
    let answer = p.send(client, &forged).await;
    if answer.is_rate_limited() {
        p.note(format!(
            "with X-Forwarded-For: {address}: still limited (429)"
        ));
    } else if answer.status.is_none() {
        p.note(format!(
            "with X-Forwarded-For: not checked ({})",
            answer.describe()
        ));
    } else {
        p.find(
            Severity::High,
            &forged,
            &answer,
            "The rate limiter trusts X-Forwarded-For: any client escapes its limit by sending a new address in that header.",
        );
    }
}
