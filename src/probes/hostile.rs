//! Hostile input: malformed JSON, wrong types, missing fields, very long texts, and search
//! queries full of punctuation and full-text-search operators, on each endpoint. Invalid
//! input must get a 4xx; nothing may get a 500 or a dropped connection.
//!
//! Requests go in groups, each from its own client (its own rate-limit budget when the host
//! is on this machine); the logout group comes last, since a lax server could revoke the
//! probe's token there. Every finding is confirmed on a fresh connection, and a request
//! whose connection was closed by the server after an earlier error answer is sent again
//! on a fresh one and judged on that answer.

use super::kit::tokens_of;
use super::kit::{Answer, Call, Kit, Outcome, Probe, ProbeAccount, ProbeClient, Verdict};
use super::{ProbeOutcome, Severity};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const NAME: &str = "hostile-input";

/// Length of the "very long" texts.
const LONG: usize = 100_000;
const JSON: &str = "application/json";
const MALFORMED: &str = "{\"query\": \"unterminated, \"limit\": ";

/// What a hostile request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Invalid input: a 4xx.
    Refused,
    /// Unusual but valid input: any answer below 500.
    Answered,
    /// A 4xx, or the caller's own data (a server that ignores the id in the path):
    /// another 2xx is lax validation.
    RefusedOrOwnData,
}

struct Case {
    what: String,
    call: Call,
    expect: Expect,
}

fn case(what: impl Into<String>, call: Call, expect: Expect) -> Case {
    Case {
        what: what.into(),
        call,
        expect,
    }
}

/// The usual bad bodies for a JSON endpoint: malformed, not an object, wrong types and
/// missing fields.
fn bad_bodies(method: Method, path: &str, token: Option<&str>, wrong_types: Value) -> Vec<Case> {
    let call = |c: Call| match token {
        Some(t) => c.bearer(t),
        None => c,
    };
    let route = format!("{method} {path}");
    vec![
        case(
            format!("malformed JSON on {route}"),
            call(Call::new(method.clone(), path).raw(JSON, MALFORMED)),
            Expect::Refused,
        ),
        case(
            format!("a JSON array instead of an object on {route}"),
            call(Call::new(method.clone(), path).raw(JSON, "[1, 2, 3]")),
            Expect::Refused,
        ),
        case(
            format!("wrong types on {route}"),
            call(Call::new(method.clone(), path).json(wrong_types)),
            Expect::Refused,
        ),
        case(
            format!("missing fields on {route}"),
            call(Call::new(method, path).json(json!({}))),
            Expect::Refused,
        ),
    ]
}

fn long(c: char) -> String {
    std::iter::repeat_n(c, LONG).collect()
}

fn auth_groups(kit: &Kit) -> Vec<Vec<Case>> {
    let nobody = kit.unknown_email();
    let mut register = bad_bodies(
        Method::POST,
        "/api/auth/register",
        None,
        json!({"email": 5, "password": ["x"], "full_name": {}}),
    );
    register.push(case(
        "a 300-character email and a 100 000-character password on POST /api/auth/register",
        Call::post("/api/auth/register")
            .json(json!({
                "email": format!("{}@loadtest.example.com", "a".repeat(300)),
                "password": format!("Aa1{}", long('x')),
            }))
            .label("{\"email\": 322 characters, \"password\": 100 003 characters}"),
        Expect::Refused,
    ));
    register.push(case(
        "a text/plain body on POST /api/auth/register",
        Call::post("/api/auth/register").raw("text/plain", "email=a&password=b"),
        Expect::Refused,
    ));

    let mut login = bad_bodies(
        Method::POST,
        "/api/auth/login/json",
        None,
        json!({"email": true, "password": 1}),
    );
    login.push(case(
        "a 100 000-character password on POST /api/auth/login/json",
        Call::post("/api/auth/login/json")
            .json(json!({"email": nobody, "password": long('x')}))
            .label(format!(
                "{{\"email\": \"{nobody}\", \"password\": 100 000 characters}}"
            )),
        Expect::Refused,
    ));
    let form = vec![
        case(
            "an empty form on POST /api/auth/login",
            Call::post("/api/auth/login").form(&[]),
            Expect::Refused,
        ),
        case(
            "a JSON body on the form login POST /api/auth/login",
            Call::post("/api/auth/login").json(json!({"username": nobody, "password": "x"})),
            Expect::Refused,
        ),
        case(
            "an SQL-looking user name on POST /api/auth/login",
            Call::post("/api/auth/login")
                .form(&[("username", "' OR '1'='1' --"), ("password", "' OR '1'='1")]),
            Expect::Refused,
        ),
    ];
    let mut refresh = bad_bodies(
        Method::POST,
        "/api/auth/refresh",
        None,
        json!({"refresh_token": 123}),
    );
    refresh.push(case(
        "a 100 000-character refresh token on POST /api/auth/refresh",
        Call::post("/api/auth/refresh")
            .json(json!({"refresh_token": long('a')}))
            .label("{\"refresh_token\": 100 000 characters}"),
        Expect::Refused,
    ));
    refresh.push(case(
        "a forged unsigned token on POST /api/auth/refresh",
        Call::post("/api/auth/refresh")
            // {"alg":"none"}.{"sub":"1","type":"refresh"}.
            .json(json!({"refresh_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwidHlwZSI6InJlZnJlc2gifQ."}))
            .label("{\"refresh_token\": an unsigned token with alg none}"),
        Expect::Refused,
    ));
    vec![register, login, form, refresh]
}

/// Search queries made of punctuation and full-text-search syntax: valid queries that
/// must be answered (results or none), never crash the search.
const SEARCH_QUERIES: &[&str] = &[
    "\"",
    "'",
    "*",
    "NEAR(machine learning, 2)",
    "a AND OR NOT b",
    "\"unterminated phrase",
    "user_text:secret",
    "^start",
    "((()",
    "-minus +plus ~tilde",
    "% _ \\ ; --",
    "'; DROP TABLE captures; --",
    "a* OR b* NOT c*",
    "{}[]<>|&$#@!?",
    "😀 \u{202e}ltr \u{0}nul",
    // A right-to-left override that makes "exe.txt" read as "txt.exe", in an unterminated
    // phrase: a value reports must show escaped.
    "\"\u{202E}txt.exe",
];

/// Search queries of every kind, valid or not: a group of their own, since a server that
/// crashes on query syntax and then closes the connection costs each of them a retry.
fn search_group() -> Vec<Case> {
    let mut cases = bad_bodies(
        Method::POST,
        "/api/search",
        None,
        json!({"query": 5, "limit": "ten"}),
    );
    for (body, what) in [
        (json!({"query": ""}), "an empty query"),
        (json!({"query": "x", "limit": 0}), "limit 0"),
        (json!({"query": "x", "limit": 101}), "limit 101"),
        (json!({"query": "x", "limit": -1}), "limit -1"),
        (json!({"query": "x", "limit": 1e20}), "limit 1e20"),
    ] {
        cases.push(case(
            format!("{what} on POST /api/search"),
            Call::post("/api/search").json(body),
            Expect::Refused,
        ));
    }
    cases.push(case(
        "a 100 000-character query on POST /api/search",
        Call::post("/api/search")
            .json(json!({"query": long('q')}))
            .label("{\"query\": 100 000 characters}"),
        Expect::Answered,
    ));
    for query in SEARCH_QUERIES {
        cases.push(case(
            format!("the search query \"{query}\" on POST /api/search"),
            Call::post("/api/search").json(json!({"query": query})),
            Expect::Answered,
        ));
    }
    cases
}

fn api_group(token: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let me = bad_bodies(
        Method::PATCH,
        "/api/user/me",
        Some(token),
        json!({"full_name": 5, "email": []}),
    );
    // `{}` changes nothing: a valid (empty) update, answered either way.
    cases.extend(me.into_iter().take(3));
    cases.push(case(
        "an invalid email on PATCH /api/user/me",
        Call::new(Method::PATCH, "/api/user/me")
            .bearer(token)
            .json(json!({"email": "not an email"})),
        Expect::Refused,
    ));
    cases.push(case(
        "a 100 000-character full name on PATCH /api/user/me",
        Call::new(Method::PATCH, "/api/user/me")
            .bearer(token)
            .json(json!({"full_name": long('n')}))
            .label("{\"full_name\": 100 000 characters}"),
        Expect::Answered,
    ));

    let export = bad_bodies(
        Method::POST,
        "/api/gdpr/export",
        Some(token),
        json!({"format": 5, "include_conversations": "yes"}),
    );
    // `{}` asks for an export with the defaults: valid.
    cases.extend(export.into_iter().take(3));
    cases.push(case(
        "an unknown format on POST /api/gdpr/export",
        Call::post("/api/gdpr/export")
            .bearer(token)
            .json(json!({"format": "xml"})),
        Expect::Refused,
    ));
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "'%20OR%20'1'%3D'1",
        &"9".repeat(5000),
    ] {
        cases.push(case(
            format!("the export id \"{id}\" on GET /api/gdpr/export/{{id}}"),
            Call::get(&format!("/api/gdpr/export/{id}"))
                .route("/api/gdpr/export/{id}")
                .bearer(token),
            Expect::Refused,
        ));
    }
    cases.push(case(
        "the export id \"%00\" on GET /api/gdpr/export/{id}/download",
        Call::get("/api/gdpr/export/%00/download")
            .route("/api/gdpr/export/{id}/download")
            .bearer(token),
        Expect::RefusedOrOwnData,
    ));

    cases.extend(bad_bodies(
        Method::POST,
        "/api/conversation",
        Some(token),
        json!({"text": 123, "session_id": []}),
    ));
    cases.push(case(
        "invalid base64 audio on POST /api/conversation",
        Call::post("/api/conversation")
            .bearer(token)
            .json(json!({"audio_base64": "!!! not base64 !!!"})),
        Expect::Refused,
    ));
    cases.push(case(
        "a 100 000-character text on POST /api/conversation",
        Call::post("/api/conversation")
            .bearer(token)
            .json(json!({"text": long('t')}))
            .label("{\"text\": 100 000 characters}"),
        Expect::Answered,
    ));
    cases.push(case(
        "a 10 000-character session id on POST /api/conversation",
        Call::post("/api/conversation")
            .bearer(token)
            .json(json!({"session_id": "s".repeat(10_000), "text": "hello"}))
            .label("{\"session_id\": 10 000 characters, \"text\": \"hello\"}"),
        Expect::Answered,
    ));
    cases.push(case(
        "control characters, markup and SQL in a text on POST /api/conversation",
        Call::post("/api/conversation")
            .bearer(token)
            .json(json!({"text": "\u{0}\u{202e} <script>alert(1)</script> ' OR 1=1 -- 😀"})),
        Expect::Answered,
    ));

    for (query, expect) in [
        ("limit=abc", Expect::Refused),
        ("limit=-5", Expect::Answered),
        ("limit=99999999999999999999999", Expect::Answered),
    ] {
        cases.push(case(
            format!("{query} on GET /api/session/{{id}}/history"),
            Call::get(&format!("/api/session/probe-session/history?{query}"))
                .route("/api/session/{id}/history"),
            expect,
        ));
    }
    for id in ["'%20OR%201%3D1%20--", "%00", "..%2F..%2F"] {
        cases.push(case(
            format!("the session id \"{id}\" on GET /api/session/{{id}}/history"),
            Call::get(&format!("/api/session/{id}/history")).route("/api/session/{id}/history"),
            Expect::Answered,
        ));
    }

    // Invalid deletion requests: a lax server could delete the probe account here, so
    // these come last among the requests that use its token.
    let mut delete = bad_bodies(
        Method::POST,
        "/api/gdpr/delete",
        Some(token),
        json!({"confirm": "yes"}),
    );
    delete.push(case(
        "confirm false on POST /api/gdpr/delete",
        Call::post("/api/gdpr/delete")
            .bearer(token)
            .json(json!({"confirm": false})),
        Expect::Refused,
    ));
    cases.extend(delete);
    cases
}

fn logout_group(token: &str) -> Vec<Case> {
    vec![
        case(
            "malformed JSON on POST /api/auth/logout",
            Call::post("/api/auth/logout")
                .bearer(token)
                .raw(JSON, MALFORMED),
            Expect::Refused,
        ),
        case(
            "wrong types on POST /api/auth/logout",
            Call::post("/api/auth/logout")
                .bearer(token)
                .json(json!({"refresh_token": 5})),
            Expect::Refused,
        ),
        case(
            "no token on POST /api/auth/logout",
            Call::post("/api/auth/logout"),
            Expect::Refused,
        ),
    ]
}

/// What the cases established.
#[derive(Default)]
struct Tally {
    as_expected: usize,
    rate_limited: usize,
}

/// How one case's answer is judged. `own_email` is the probe account's, whose data a
/// server that ignores an id in the path may send back. The meaning names the endpoint and
/// the kind of failure, not the input, so that every input failing the same way on the
/// same endpoint is one finding (the inputs are listed in it).
fn judge(case: &Case, own_email: &str) -> impl Fn(&Answer) -> Verdict + use<> {
    let (route, expect, own) = (case.call.endpoint(), case.expect, own_email.to_string());
    move |answer: &Answer| match answer.status {
        None => Verdict::flaw(
            Severity::Medium,
            format!(
                "Input on {route} got no answer (the connection was dropped or timed out) instead of a 4xx."
            ),
        ),
        Some(code) if code >= 500 => Verdict::flaw(
            Severity::Medium,
            format!(
                "Input on {route} causes a server error ({code}): it reaches code that fails instead of being validated."
            ),
        ),
        Some(_) if answer.error.is_some() => Verdict::flaw(
            Severity::Medium,
            format!(
                "Input on {route} got an answer cut short: the connection was dropped mid-answer."
            ),
        ),
        Some(429) => Verdict::Unchecked(None),
        Some(code) if code < 400 && expect == Expect::RefusedOrOwnData && answer.carries(&own) => {
            Verdict::sound(format!(
                "answered {code} with the caller's own data: the id is ignored; the caller gets its own data"
            ))
        }
        Some(code) if code < 400 && expect != Expect::Answered => Verdict::flaw(
            Severity::Low,
            format!(
                "Invalid input on {route} was accepted ({code}) instead of refused with a 4xx."
            ),
        ),
        Some(_) => Verdict::Sound(None),
    }
}

/// The path of the request that deletes the caller's account.
const DELETE_PATH: &str = "/api/gdpr/delete";

/// Sends every case of `group` from one new client and judges each. An invalid deletion
/// that is accepted is judged by its effect, since sending it again cannot show the flaw
/// once the account is gone (the token is then refused): when the account is gone, the
/// first answer is the finding, and the rest of the group is not sent. Returns true when
/// the probe account is gone.
async fn send_group(
    p: &mut Probe<'_>,
    group: &[Case],
    account: &ProbeAccount,
    tally: &mut Tally,
) -> bool {
    let Some(client) = p.client() else {
        return false;
    };
    for (n, case) in group.iter().enumerate() {
        let judge = judge(case, &account.email);
        let answer = p.ask(&client, &case.call).await;
        if case.call.path == DELETE_PATH
            && matches!(judge(&answer), Verdict::Flaw { .. })
            && account_gone(p, &client, account).await
        {
            p.report(
                Severity::Medium,
                &case.call,
                &answer,
                &format!(
                    "A deletion without the confirmation the API demands (confirm: true) was accepted ({}) and the account is gone (its token and its password refused since): an invalid or mistaken request deletes an account.",
                    answer.describe()
                ),
                &case.what,
            );
            let left = group.len() - n - 1;
            if left > 0 {
                p.note(format!(
                    "the probe account was deleted by an invalid deletion request: the {left} request{} after it in its group {} not sent",
                    if left == 1 { "" } else { "s" },
                    if left == 1 { "was" } else { "were" }
                ));
            }
            return true;
        }
        match p
            .settle(&client, &case.call, &case.what, &answer, judge)
            .await
        {
            Outcome::Sound => tally.as_expected += 1,
            Outcome::Unchecked => tally.rate_limited += 1,
            Outcome::Found | Outcome::Unconfirmed => {}
        }
    }
    false
}

/// True when the probe account is gone: its access token refused (it worked until now)
/// and its password refused at login, each with a 4xx other than 429, on a fresh
/// connection.
async fn account_gone(p: &mut Probe<'_>, client: &ProbeClient, account: &ProbeAccount) -> bool {
    let me = p
        .send_fresh(client, &Call::get("/api/user/me").bearer(&account.access))
        .await;
    if !me.is_refusal() {
        return false;
    }
    let login = p
        .send_fresh(
            client,
            &Probe::login_call(&account.email, &account.password),
        )
        .await;
    login.is_refusal() && tokens_of(&login).is_none()
}

pub async fn run(kit: &Kit) -> ProbeOutcome {
    let (mut p, client, mut account) = match Probe::with_account(kit, NAME).await {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };
    let mut tally = Tally::default();
    let mut groups = auth_groups(kit);
    groups.push(search_group());
    groups.push(api_group(&account.access));
    for group in &groups {
        account.deleted = send_group(&mut p, group, &account, &mut tally).await;
        if account.deleted {
            break;
        }
    }
    if account.deleted {
        p.note("malformed JSON on an open WebSocket: not checked, the probe account is gone");
    } else {
        websocket(&mut p, &client, &account).await;
    }
    // The probe account is deleted before the logout group, whose requests may revoke
    // its token.
    p.remove(&client, &account).await;
    account.deleted = true;
    send_group(&mut p, &logout_group(&account.access), &account, &mut tally).await;
    p.note(format!(
        "{} hostile requests answered as expected{}",
        tally.as_expected,
        if tally.rate_limited > 0 {
            format!("; {} rate limited (429), not checked", tally.rate_limited)
        } else {
            String::new()
        }
    ));
    p.finish()
}

/// Malformed JSON on an open WebSocket: the server should close the socket (or answer an
/// error), not drop the connection or close with 1011 (internal error). A flaw is reported
/// when a second socket shows it again.
async fn websocket(p: &mut Probe<'_>, client: &ProbeClient, account: &ProbeAccount) {
    let call = Call::get("/ws/{session_id}")
        .header("Upgrade", "websocket")
        .label("then the text frame `{not json` on the open socket");
    let what = "malformed JSON on an open WebSocket";
    let (shown, meaning) = match malformed_frame(p, client, &account.access).await {
        Frame::Flaw(shown, meaning) => (shown, meaning),
        Frame::Unchecked(why) => return p.note(format!("{what}: not checked, {why}")),
        Frame::Sound(how) => return p.note(format!("{what}: {how}")),
    };
    match malformed_frame(p, client, &account.access).await {
        Frame::Flaw(again, meaning_again) if meaning_again == meaning => {
            p.report(
                Severity::Medium,
                &call,
                &again,
                &format!("{what} {meaning}"),
                "the text frame {not json",
            );
        }
        _ => p.note(format!(
            "{what}: {} once, then not on a second socket: not confirmed, not reported",
            shown.text
        )),
    }
}

/// What one socket did with the malformed frame.
enum Frame {
    Sound(String),
    Unchecked(String),
    /// The answer to show and what it means.
    Flaw(Answer, String),
}

async fn malformed_frame(p: &mut Probe<'_>, client: &ProbeClient, token: &str) -> Frame {
    let (_, answer, socket) = p.ws_connect(client, token, true).await;
    let Some(mut socket) = socket else {
        return Frame::Unchecked(format!("the handshake answered {}", answer.describe()));
    };
    if let Err(e) = socket.send(Message::text("{not json")).await {
        return Frame::Unchecked(format!("sending failed ({e})"));
    }
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break Ok(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(Message::Text(_))) => break Ok(0),
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Err(e.to_string()),
                None => break Err("the connection ended without a close frame".to_string()),
            }
        }
    })
    .await;
    let shown = |text: String| Answer {
        status: Some(101),
        text,
        ..Answer::default()
    };
    let frame = match reply {
        Ok(Ok(1011)) => Frame::Flaw(
            shown("close 1011 (internal error)".into()),
            "makes the server fail (close 1011) instead of refusing the message.".into(),
        ),
        Ok(Ok(0)) => Frame::Sound("answered with a message".into()),
        Ok(Ok(code)) => Frame::Sound(format!("closed by the server ({code})")),
        Ok(Err(e)) => Frame::Flaw(
            shown(e),
            "drops the connection without a close frame.".into(),
        ),
        Err(_) => Frame::Sound("neither answered nor closed within 5 s".into()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    frame
}
