//! Integration tests of the reference server over real HTTP and WebSocket on 127.0.0.1.
//! Every test starts its own server on an ephemeral port.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Api, PASSWORD, assert_validation, config, jwt_claims, server, unique_email};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use lva_target::{ServerArgs, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(api: &Api, session: &str, token: Option<&str>) -> String {
    let base = api.base.replacen("http://", "ws://", 1);
    match token {
        Some(t) => format!("{base}/ws/{session}?token={t}"),
        None => format!("{base}/ws/{session}"),
    }
}

/// Opens a WebSocket; `Err(status)` when the handshake is refused.
async fn ws_connect(
    api: &Api,
    session: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Ws, u16> {
    let mut req = ws_url(api, session, token)
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// Next text frame as JSON, or the close code when the server closes.
async fn ws_next(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("server answers in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(t.as_str()).expect("json"));
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

async fn ws_send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

// ------------------------------------------------------------------ basics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_root_metrics_and_unknown_routes() {
    let (handle, api) = server(config()).await;
    let h = api.get("/health", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "healthy");
    let ts = h.body["timestamp"].as_str().expect("timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");

    assert_eq!(api.get("/", None).await.status, StatusCode::OK);

    let nf = api.get("/api/nope", None).await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.body, json!({ "detail": "Not Found" }));

    let wrong = api.send(api.req(Method::DELETE, "/health", None)).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.detail(), "Method Not Allowed");

    let m = api.get("/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    for name in [
        "process_resident_memory_bytes",
        "lva_http_requests_total{status=\"200\"}",
        "lva_http_requests_total{status=\"404\"}",
        "lva_websocket_connections_open",
        "lva_websocket_connections_total",
        "lva_rate_limited_total",
        "lva_db_pool_connections 1",
        "lva_db_pool_in_use",
        "lva_db_pool_waiting",
    ] {
        assert!(m.text.contains(name), "metrics lack {name}:\n{}", m.text);
    }
    // The scrape itself is in flight while it is rendered.
    assert!(
        api.metric("lva_http_requests_in_flight")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(api.metric("process_cpu_seconds_total").await.unwrap_or(0.0) > 0.0);
    assert!(
        api.metric("process_resident_memory_bytes")
            .await
            .unwrap_or(0.0)
            > 1e6
    );
    handle.shutdown().await;
}

// ------------------------------------------------------------------ auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_success_duplicates_and_validation() {
    let (handle, api) = server(config()).await;
    let email = unique_email();
    let r = api.register(&email).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for key in [
        "id",
        "email",
        "full_name",
        "role",
        "status",
        "created_at",
        "last_login",
    ] {
        assert!(r.body.get(key).is_some(), "missing {key}: {}", r.text);
    }
    assert_eq!(r.body["role"], "user");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["last_login"], Value::Null);
    assert!(r.body.get("password_hash").is_none());

    let dup = api.register(&email.to_uppercase()).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(dup.detail(), "Email already registered");

    for bad in [
        "someone@test.local",
        "a@b.test",
        "a@b.invalid",
        "a@localhost",
        "a@docs.example",
        "no-at-sign",
        "a@nodot",
    ] {
        let a = api
            .post(
                "/api/auth/register",
                None,
                json!({ "email": bad, "password": PASSWORD }),
            )
            .await;
        let locs = assert_validation(&a);
        assert_eq!(locs[0], json!(["body", "email"]), "{bad}");
    }
    for weak in ["Sh0rt", "alllowercase1", "ALLUPPERCASE1", "NoDigitsAtAll"] {
        let a = api
            .post(
                "/api/auth/register",
                None,
                json!({ "email": unique_email(), "password": weak }),
            )
            .await;
        assert_eq!(
            assert_validation(&a)[0],
            json!(["body", "password"]),
            "{weak}"
        );
    }
    let long = format!("Aa1{}", "x".repeat(130));
    let a = api
        .post(
            "/api/auth/register",
            None,
            json!({ "email": unique_email(), "password": long }),
        )
        .await;
    assert_validation(&a);

    let missing = api
        .post("/api/auth/register", None, json!({ "password": PASSWORD }))
        .await;
    assert_eq!(assert_validation(&missing)[0], json!(["body", "email"]));
    let wrong_type = api
        .post(
            "/api/auth/register",
            None,
            json!({ "email": 5, "password": PASSWORD }),
        )
        .await;
    assert_eq!(wrong_type.body["detail"][0]["type"], "string_type");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_422_never_500() {
    let (handle, api) = server(config()).await;
    let paths = [
        "/api/auth/register",
        "/api/auth/login/json",
        "/api/auth/refresh",
        "/api/conversation",
        "/api/search",
    ];
    for path in paths {
        for (ct, body) in [
            ("application/json", "{not json"),
            ("application/json", "[1,2]"),
            ("application/json", "\"text\""),
            ("application/json", ""),
            ("text/plain", "{\"email\":\"a@b.com\"}"),
            ("application/json", "{\"email\": "),
        ] {
            let a = api.post_raw(path, ct, body).await;
            assert_validation(&a);
            assert!(
                a.header("content-type")
                    .unwrap_or("")
                    .starts_with("application/json")
            );
        }
    }
    // Form login with a JSON content type, and with a missing field.
    let a = api
        .post_raw("/api/auth/login", "application/json", "{}")
        .await;
    assert_validation(&a);
    let a = api
        .post_raw(
            "/api/auth/login",
            "application/x-www-form-urlencoded",
            "username=x%40y.com",
        )
        .await;
    assert_eq!(assert_validation(&a)[0], json!(["body", "password"]));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_json_form_profile_and_claims() {
    let (handle, api) = server(config()).await;
    let (email, access, refresh) = api.new_user().await;

    let claims = jwt_claims(&access);
    for key in ["sub", "email", "role", "type", "jti", "iat", "exp"] {
        assert!(claims.get(key).is_some(), "claim {key} missing: {claims}");
    }
    assert_eq!(claims["type"], "access");
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        900
    );
    assert_eq!(jwt_claims(&refresh)["type"], "refresh");

    let t = api.login(&email, PASSWORD).await;
    assert_eq!(t.body["token_type"], "bearer");
    assert_eq!(t.body["expires_in"], 900);

    let form = api
        .send(
            api.req(Method::POST, "/api/auth/login", None)
                .form(&[("username", email.as_str()), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.body["access_token"].is_string());

    let wrong = api.login(&email, "Wrong-Passw0rd").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.detail(), "Invalid email or password");
    let unknown = api.login(&unique_email(), PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.detail(), "Invalid email or password");
    assert_validation(
        &api.post("/api/auth/login/json", None, json!({ "email": email }))
            .await,
    );

    let me = api.get("/api/user/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], email.as_str());
    assert!(me.body["last_login"].is_string());
    assert_eq!(
        api.get("/api/user/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/api/user/me", Some("not.a.jwt")).await.status,
        StatusCode::UNAUTHORIZED
    );

    let new_email = unique_email();
    let p = api
        .patch(
            "/api/user/me",
            Some(&access),
            json!({ "full_name": "New Name", "email": new_email }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["full_name"], "New Name");
    assert_eq!(p.body["email"], new_email.as_str());

    let (other, _, _) = api.new_user().await;
    let taken = api
        .patch("/api/user/me", Some(&access), json!({ "email": other }))
        .await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST);
    assert_eq!(taken.detail(), "Email already in use");
    assert_validation(
        &api.patch(
            "/api/user/me",
            Some(&access),
            json!({ "email": "x@y.test" }),
        )
        .await,
    );
    assert_validation(
        &api.patch("/api/user/me", Some(&access), json!({ "full_name": 7 }))
            .await,
    );
    assert_eq!(
        api.patch("/api/user/me", None, json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_logout_and_revocation() {
    let (handle, api) = server(config()).await;
    let (_, access, refresh) = api.new_user().await;

    let r = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_access = r.body["access_token"].as_str().expect("access").to_owned();
    assert_ne!(new_access, access);
    assert!(r.body["refresh_token"].is_string());
    assert_eq!(
        api.get("/api/user/me", Some(&new_access)).await.status,
        StatusCode::OK
    );

    // Tokens only where they belong.
    let wrong = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": access }),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let garbage = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": "x.y.z" }),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.get("/api/user/me", Some(&refresh)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_validation(&api.post("/api/auth/refresh", None, json!({})).await);

    assert_eq!(
        api.post("/api/auth/logout", None, json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let out = api
        .post(
            "/api/auth/logout",
            Some(&access),
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = api.get("/api/user/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.detail(), "Token has been revoked");
    let again = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.detail(), "Token has been revoked");
    // Access tokens not sent to logout still work; logout without a body is fine too.
    assert_eq!(
        api.get("/api/user/me", Some(&new_access)).await.status,
        StatusCode::OK
    );
    let bare = api
        .send(api.req(Method::POST, "/api/auth/logout", Some(&new_access)))
        .await;
    assert_eq!(bare.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/api/user/me", Some(&new_access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_expire() {
    let mut c = config();
    c.access_token_ttl = Duration::from_secs(1);
    let (handle, api) = server(c).await;
    let (_, access, refresh) = api.new_user().await;
    assert_eq!(
        api.get("/api/user/me", Some(&access)).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = api.get("/api/user/me", Some(&access)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.detail(), "Token has expired");
    let r = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["expires_in"], 1);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_five_wrong_passwords() {
    let (handle, api) = server(config()).await;
    let (email, _, _) = api.new_user().await;
    for _ in 0..5 {
        assert_eq!(
            api.login(&email, "Wrong-Passw0rd").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = api.login(&email, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::LOCKED, "{}", locked.text);
    assert!(locked.detail().contains("locked"));
    // A successful login in between resets the count.
    let (email2, _, _) = api.new_user().await;
    for _ in 0..4 {
        api.login(&email2, "Wrong-Passw0rd").await;
    }
    assert_eq!(api.login(&email2, PASSWORD).await.status, StatusCode::OK);
    for _ in 0..4 {
        api.login(&email2, "Wrong-Passw0rd").await;
    }
    assert_eq!(api.login(&email2, PASSWORD).await.status, StatusCode::OK);
    handle.shutdown().await;
}

// ------------------------------------------------------------------ GDPR

async fn wait_completed(api: &Api, id: &str, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = api
            .get(&format!("/api/gdpr/export/{id}"), Some(token))
            .await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.text);
        if s.body["status"] == "completed" {
            return s.body;
        }
        assert_eq!(s.body["status"], "processing");
        assert!(Instant::now() < deadline, "export never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_export_lifecycle_and_ownership() {
    let (handle, api) = server(config()).await;
    let (email, access, _) = api.new_user().await;
    let (_, other, _) = api.new_user().await;
    let conv = api
        .post(
            "/api/conversation",
            Some(&access),
            json!({ "session_id": "gdpr-session", "text": "I study Rust ownership" }),
        )
        .await;
    assert_eq!(conv.status, StatusCode::OK);

    let e = api
        .post(
            "/api/gdpr/export",
            Some(&access),
            json!({ "format": "json", "include_metadata": true }),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.text);
    assert_eq!(e.body["status"], "processing");
    assert_eq!(e.body["download_url"], Value::Null);
    assert!(e.body["created_at"].is_string() && e.body["expires_at"].is_string());
    let id = e.body["export_id"].as_str().expect("id").to_owned();
    let status_path = format!("/api/gdpr/export/{id}");
    let download_path = format!("/api/gdpr/export/{id}/download");

    assert_eq!(
        api.get(&download_path, Some(&access)).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.get(&status_path, Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&status_path, None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let done = wait_completed(&api, &id, &access).await;
    assert_eq!(done["download_url"], download_path.as_str());
    assert_eq!(
        api.get(&download_path, Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    let data = api.get(&download_path, Some(&access)).await;
    assert_eq!(data.status, StatusCode::OK);
    assert_eq!(data.body["user"]["email"], email.as_str());
    assert_eq!(
        data.body["conversations"][0]["user_text"],
        "I study Rust ownership"
    );
    assert_eq!(data.body["sessions"], json!(["gdpr-session"]));

    let csv = api
        .post(
            "/api/gdpr/export",
            Some(&access),
            json!({ "format": "csv" }),
        )
        .await;
    let csv_id = csv.body["export_id"].as_str().expect("id").to_owned();
    wait_completed(&api, &csv_id, &access).await;
    let file = api
        .get(
            &format!("/api/gdpr/export/{csv_id}/download"),
            Some(&access),
        )
        .await;
    assert!(
        file.header("content-type")
            .unwrap_or("")
            .starts_with("text/csv")
    );
    assert!(file.text.contains(&email) && file.text.contains("I study Rust ownership"));

    // An empty body takes the defaults; a bad format is 422; unknown ids 404.
    let empty = api
        .send(api.req(Method::POST, "/api/gdpr/export", Some(&access)))
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_validation(
        &api.post(
            "/api/gdpr/export",
            Some(&access),
            json!({ "format": "xml" }),
        )
        .await,
    );
    assert_eq!(
        api.get("/api/gdpr/export/no-such-id", Some(&access))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.post("/api/gdpr/export", None, json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_delete_deactivates_at_once() {
    let (handle, api) = server(config()).await;
    let (email, access, refresh) = api.new_user().await;
    assert_validation(&api.post("/api/gdpr/delete", Some(&access), json!({})).await);
    assert_validation(
        &api.post(
            "/api/gdpr/delete",
            Some(&access),
            json!({ "confirm": false }),
        )
        .await,
    );
    assert_validation(
        &api.post(
            "/api/gdpr/delete",
            Some(&access),
            json!({ "confirm": "yes" }),
        )
        .await,
    );
    assert_eq!(
        api.post("/api/gdpr/delete", None, json!({ "confirm": true }))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let d = api
        .post(
            "/api/gdpr/delete",
            Some(&access),
            json!({ "confirm": true, "reason": "testing" }),
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert_eq!(d.body["status"], "scheduled");
    assert!(d.body["scheduled_at"].is_string() && d.body["completion_date"].is_string());
    assert!(
        !d.body["items_to_delete"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    let me = api.get("/api/user/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN);
    assert_eq!(me.detail(), "Account is deleted");
    let login = api.login(&email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert_eq!(login.detail(), "Account is deleted");
    let r = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let again = api.register(&email).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.detail(), "Email already registered");
    handle.shutdown().await;
}

// ------------------------------------------------------------------ conversation & search

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_history_stats_and_search() {
    let (handle, api) = server(config()).await;
    let session = "session-conv";
    let texts = [
        "How do neural networks learn?",
        "I want to learn machine learning",
        "Remember the meeting notes about API design",
    ];
    let mut first_reply = String::new();
    for (i, text) in texts.iter().enumerate() {
        let a = api
            .post(
                "/api/conversation",
                None,
                json!({ "session_id": session, "text": text }),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        for key in [
            "session_id",
            "user_text",
            "agent_text",
            "intent",
            "timestamp",
        ] {
            assert!(a.body.get(key).is_some(), "{key} missing");
        }
        assert_eq!(a.body["session_id"], session);
        if i == 0 {
            first_reply = a.body["agent_text"].as_str().unwrap_or("").to_owned();
            assert_eq!(a.body["intent"], "question");
        }
    }
    // Deterministic: the same text gets the same reply.
    let same = api
        .post("/api/conversation", None, json!({ "text": texts[0] }))
        .await;
    assert_eq!(same.body["agent_text"], first_reply.as_str());
    assert!(
        same.body["session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    let audio = api
        .post(
            "/api/conversation",
            None,
            json!({ "session_id": session, "audio_base64": "AAEC" }),
        )
        .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.body["user_text"], "(audio: 3 bytes)");
    let none = api
        .post("/api/conversation", None, json!({ "session_id": session }))
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.detail(), "No input provided");
    let blank = api
        .post("/api/conversation", None, json!({ "text": "   " }))
        .await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert_validation(
        &api.post("/api/conversation", None, json!({ "audio_base64": "%%%" }))
            .await,
    );
    assert_validation(
        &api.post("/api/conversation", None, json!({ "text": 12 }))
            .await,
    );

    let h = api
        .get(&format!("/api/session/{session}/history"), None)
        .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["count"], 4);
    assert_eq!(h.body["history"][0]["user_text"], texts[0]);
    assert_eq!(h.body["history"][3]["user_text"], "(audio: 3 bytes)");
    assert!(h.body["history"][0]["metadata"].is_object());
    let h2 = api
        .get(&format!("/api/session/{session}/history?limit=2"), None)
        .await;
    assert_eq!(h2.body["count"], 2);
    assert_eq!(h2.body["history"][0]["user_text"], texts[2]);
    let unknown = api.get("/api/session/nobody/history", None).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body["history"], json!([]));
    assert_validation(
        &api.get(&format!("/api/session/{session}/history?limit=abc"), None)
            .await,
    );
    assert_validation(
        &api.get(&format!("/api/session/{session}/history?limit=0"), None)
            .await,
    );

    let s = api.get("/api/stats", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.body["database"]["total_captures"], 5);
    assert_eq!(s.body["database"]["unique_sessions"], 2);
    assert!(s.body["database"]["last_capture"].is_string());
    assert!(s.body["sessions"]["active"].as_u64().unwrap_or(0) >= 2);
    assert!(
        s.body["sessions"]["ids"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(session)))
    );

    let found = api
        .post(
            "/api/search",
            None,
            json!({ "query": "machine learning", "limit": 5 }),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.body["count"], 1);
    let hit = &found.body["results"][0];
    for key in [
        "id",
        "session_id",
        "timestamp",
        "user_text",
        "agent_text",
        "user_snippet",
        "agent_snippet",
    ] {
        assert!(hit.get(key).is_some(), "{key} missing in {hit}");
    }
    assert!(
        hit["user_snippet"]
            .as_str()
            .unwrap_or("")
            .contains("<mark>")
    );

    for q in [
        "\"",
        "*",
        "NEAR(",
        "AND OR NOT",
        "'",
        "-",
        ":",
        "()",
        "\"unbalanced",
        "a AND",
        "col:val",
        "NOT",
        "^*\"'():-",
        "neural*",
        "OR OR",
        "(((",
        "💥",
        "machine -learning",
    ] {
        let a = api.post("/api/search", None, json!({ "query": q })).await;
        assert_eq!(a.status, StatusCode::OK, "query {q:?}: {}", a.text);
        assert!(a.body["results"].is_array());
    }
    let neural = api
        .post("/api/search", None, json!({ "query": "neural*" }))
        .await;
    assert_eq!(neural.body["count"], 2, "the question was asked twice");

    assert_validation(&api.post("/api/search", None, json!({ "query": "" })).await);
    assert_validation(
        &api.post("/api/search", None, json!({ "query": "x", "limit": 0 }))
            .await,
    );
    assert_validation(
        &api.post("/api/search", None, json!({ "query": "x", "limit": 101 }))
            .await,
    );
    assert_validation(
        &api.post("/api/search", None, json!({ "query": "x", "limit": "ten" }))
            .await,
    );
    assert_validation(&api.post("/api/search", None, json!({ "limit": 5 })).await);
    handle.shutdown().await;
}

// ------------------------------------------------------------------ rate limiting

fn limited_config(window_secs: u64) -> ServerConfig {
    let mut c = config();
    c.rate_limit.enabled = true;
    c.rate_limit.window = Duration::from_secs(window_secs);
    c.rate_limit.auth = 3;
    c.rate_limit.api = 5;
    c.rate_limit.health = 4;
    c.rate_limit.websocket = 2;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_headers_and_window_reset() {
    // A window long enough that a busy machine still makes its requests inside it.
    const WINDOW: u64 = 5;
    let (handle, api) = server(limited_config(WINDOW)).await;
    let started = Instant::now();
    // Validation failures and unknown auth paths count too.
    assert_validation(&api.post("/api/auth/login/json", None, json!({})).await);
    assert_eq!(
        api.get("/api/auth/nothing-here", None).await.status,
        StatusCode::NOT_FOUND
    );
    let third = api.post("/api/auth/login/json", None, json!({})).await;
    assert_eq!(third.header("x-ratelimit-remaining"), Some("0"));
    let limited = api.login("a@example.com", PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body, json!({ "detail": "Rate limit exceeded" }));
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=WINDOW).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .and_then(|v| v.parse().ok())
        .expect("reset");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        reset >= now && reset <= now + WINDOW + 1,
        "reset {reset} now {now}"
    );

    // Other categories have their own budgets; /metrics is never limited.
    for _ in 0..5 {
        assert_eq!(api.get("/api/stats", None).await.status, StatusCode::OK);
    }
    assert_eq!(
        api.get("/api/does-not-exist", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..4 {
        assert_eq!(api.get("/health", None).await.status, StatusCode::OK);
    }
    assert_eq!(
        api.get("/health", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..10 {
        assert_eq!(api.get("/metrics", None).await.status, StatusCode::OK);
    }
    assert!(api.metric("lva_rate_limited_total").await.unwrap_or(0.0) >= 3.0);
    assert!(
        api.metric("lva_http_requests_total{status=\"429\"}")
            .await
            .unwrap_or(0.0)
            >= 3.0
    );
    assert!(
        started.elapsed() < Duration::from_millis(WINDOW * 1000 - 100),
        "too slow to test a {WINDOW} s window"
    );

    tokio::time::sleep(
        Duration::from_millis(WINDOW * 1000 + 100).saturating_sub(started.elapsed()),
    )
    .await;
    let after = api.login(&unique_email(), PASSWORD).await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "window should have reset: {}",
        after.text
    );
    assert_eq!(api.get("/health", None).await.status, StatusCode::OK);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ws_requests_are_limited_but_handshakes_are_not() {
    let (handle, api) = server(limited_config(60)).await;
    let plain = api.get("/ws/abc", None).await;
    assert_eq!(plain.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(
        api.get("/ws/abc", None).await.status,
        StatusCode::UPGRADE_REQUIRED
    );
    assert_eq!(
        api.get("/ws/abc", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Handshakes (refused or not) do not use the budget.
    for _ in 0..3 {
        assert_eq!(ws_connect(&api, "abc", None, &[]).await.err(), Some(403));
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_trusted_only_when_asked() {
    async fn statuses(api: &Api, ips: &[&str]) -> Vec<u16> {
        let mut out = Vec::new();
        for ip in ips {
            let req = api
                .req(Method::GET, "/health", None)
                .header("x-forwarded-for", *ip);
            out.push(api.send(req).await.status.as_u16());
        }
        out
    }
    let ips = [
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
    ];

    let (h1, api) = server(limited_config(60)).await;
    let s = statuses(&api, &ips).await;
    assert_eq!(
        s,
        vec![200, 200, 200, 200, 429, 429],
        "peer address decides by default"
    );
    h1.shutdown().await;

    let mut c = limited_config(60);
    c.trust_forwarded_for = true;
    let (h2, api) = server(c).await;
    assert!(statuses(&api, &ips).await.iter().all(|s| *s == 200));
    let same = statuses(&api, &["10.9.9.9, 1.2.3.4"; 5]).await;
    assert_eq!(same, vec![200, 200, 200, 200, 429]);
    h2.shutdown().await;

    let mut c = limited_config(60);
    c.flaws.trust_forwarded_for = true;
    let (h3, api) = server(c).await;
    assert!(statuses(&api, &ips).await.iter().all(|s| *s == 200));
    h3.shutdown().await;
}

// ------------------------------------------------------------------ WebSocket

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_auth_is_checked_at_the_handshake() {
    let mut c = config();
    c.allowed_origins = Some(vec!["https://app.example.com".into()]);
    let (handle, api) = server(c).await;
    let (_, access, refresh) = api.new_user().await;
    let (_, revoked, _) = api.new_user().await;
    api.post("/api/auth/logout", Some(&revoked), json!({}))
        .await;

    assert_eq!(ws_connect(&api, "s1", None, &[]).await.err(), Some(403));
    assert_eq!(
        ws_connect(&api, "s1", Some("garbage"), &[]).await.err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(&api, "s1", Some(&refresh), &[]).await.err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(&api, "s1", Some(&revoked), &[]).await.err(),
        Some(403)
    );
    let evil = [("origin", "https://evil.example.net")];
    assert_eq!(
        ws_connect(&api, "s1", Some(&access), &evil).await.err(),
        Some(403)
    );

    let good = [("origin", "https://app.example.com")];
    let ws = ws_connect(&api, "s1", Some(&access), &good)
        .await
        .expect("allowed origin");
    drop(ws);
    let bearer = format!("Bearer {access}");
    let ws = ws_connect(&api, "s2", None, &[("authorization", bearer.as_str())])
        .await
        .expect("header token");
    drop(ws);
    handle.shutdown().await;
}

async fn wait_open(handle: &lva_target::ServerHandle, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while handle.open_websockets() != n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handle.open_websockets(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_audio_end_summary_and_gauge() {
    let (handle, api) = server(config()).await;
    let (_, access, _) = api.new_user().await;
    let mut ws = ws_connect(&api, "ws-session", Some(&access), &[])
        .await
        .expect("open");
    // The session task starts right after the 101 is sent: give it a moment.
    wait_open(&handle, 1).await;
    assert_eq!(
        api.metric("lva_websocket_connections_open").await,
        Some(1.0)
    );

    ws_send(&mut ws, json!({ "type": "hello-unknown" })).await;
    ws_send(&mut ws, json!({ "type": "audio", "audio": "AAECAwQ=" })).await;
    let r = ws_next(&mut ws).await.expect("response");
    assert_eq!(r["type"], "response");
    assert_eq!(r["user_text"], "(audio: 5 bytes)");
    assert!(r["agent_text"].is_string() && r["intent"].is_string());

    ws_send(&mut ws, json!({ "type": "end" })).await;
    let s = ws_next(&mut ws).await.expect("summary");
    assert_eq!(s["type"], "summary");
    assert!(s["text"].is_string());
    assert_eq!(ws_next(&mut ws).await.err(), Some(Some(1000)));
    drop(ws);

    wait_open(&handle, 0).await;
    assert_eq!(
        api.metric("lva_websocket_connections_open").await,
        Some(0.0)
    );
    assert_eq!(
        api.metric("lva_websocket_connections_total").await,
        Some(1.0)
    );
    let h = api.get("/api/session/ws-session/history", None).await;
    assert_eq!(h.body["count"], 1);

    // Malformed JSON closes the socket with 1007.
    let mut ws = ws_connect(&api, "ws-bad", Some(&access), &[])
        .await
        .expect("open");
    ws.send(Message::text("{not json")).await.expect("send");
    assert_eq!(ws_next(&mut ws).await.err(), Some(Some(1007)));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_websockets_with_1001() {
    let (handle, api) = server(config()).await;
    let (_, access, _) = api.new_user().await;
    let mut ws = ws_connect(&api, "bye", Some(&access), &[])
        .await
        .expect("open");
    let reader = tokio::spawn(async move { ws_next(&mut ws).await.err() });
    tokio::time::timeout(Duration::from_secs(8), handle.shutdown())
        .await
        .expect("shutdown finishes");
    assert_eq!(reader.await.expect("reader"), Some(Some(1001)));
    assert!(
        api.http.get(api.url("/health")).send().await.is_err(),
        "server still answers"
    );
}

// ------------------------------------------------------------------ faults and flaws

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_latency_and_jitter() {
    let mut c = config();
    c.faults.latency = Duration::from_millis(150);
    let (h1, api) = server(c).await;
    let t = Instant::now();
    assert_eq!(api.get("/health", None).await.status, StatusCode::OK);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    h1.shutdown().await;

    let mut c = config();
    c.faults.jitter = Duration::from_millis(80);
    let (h2, api) = server(c).await;
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        api.get("/health", None).await;
        times.push(t.elapsed());
    }
    let (min, max) = (times.iter().min().copied(), times.iter().max().copied());
    let spread = max.unwrap_or_default() - min.unwrap_or_default();
    assert!(
        spread >= Duration::from_millis(15),
        "jitter spread {spread:?}"
    );
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_error_rate_hits_api_routes_only() {
    let mut c = config();
    c.faults.error_rate = 0.3;
    let (handle, api) = server(c).await;
    let mut errors = 0;
    for _ in 0..200 {
        let a = api.get("/api/stats", None).await;
        if a.status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(a.detail(), "Injected fault");
            errors += 1;
        } else {
            assert_eq!(a.status, StatusCode::OK);
        }
    }
    let share = f64::from(errors) / 200.0;
    assert!((0.18..=0.42).contains(&share), "share of 500s {share}");
    for _ in 0..30 {
        assert_eq!(api.get("/health", None).await.status, StatusCode::OK);
        assert_eq!(api.get("/metrics", None).await.status, StatusCode::OK);
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_leak_grows_resident_memory() {
    let mut c = config();
    c.faults.leak_bytes = 4 << 20;
    let (handle, api) = server(c).await;
    let before = api
        .metric("process_resident_memory_bytes")
        .await
        .expect("rss");
    for _ in 0..30 {
        api.get("/health", None).await;
    }
    let after = api
        .metric("process_resident_memory_bytes")
        .await
        .expect("rss");
    let leaked = api.metric("lva_fault_leaked_bytes").await.expect("leaked");
    assert_eq!(leaked, f64::from(30 * (4 << 20)));
    assert!(
        after - before > 80.0 * 1024.0 * 1024.0,
        "RSS {before} -> {after}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaws_each_have_their_effect() {
    // Without flaws: someone else's export is hidden, refresh tokens are not access tokens.
    let mut c = config();
    c.flaws.exports_readable = true;
    c.flaws.refresh_as_access = true;
    c.flaws.no_rate_limit = true;
    c.rate_limit = limited_config(60).rate_limit;
    let (handle, api) = server(c).await;
    let (_, owner, _) = api.new_user().await;
    let (_, other, other_refresh) = api.new_user().await;
    let e = api.post("/api/gdpr/export", Some(&owner), json!({})).await;
    let id = e.body["export_id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.get(&format!("/api/gdpr/export/{id}"), Some(&other))
            .await
            .status,
        StatusCode::OK
    );
    wait_completed(&api, &id, &owner).await;
    let stolen = api
        .get(&format!("/api/gdpr/export/{id}/download"), Some(&other))
        .await;
    assert_eq!(stolen.status, StatusCode::OK);

    assert_eq!(
        api.get("/api/user/me", Some(&other_refresh)).await.status,
        StatusCode::OK
    );
    let ws = ws_connect(&api, "flaw", Some(&other_refresh), &[]).await;
    assert!(ws.is_ok(), "refresh token accepted at the WS handshake");

    // Rate limit of 3 auth requests is not applied.
    for _ in 0..8 {
        let s = api.login(&unique_email(), PASSWORD).await.status;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_accounts_token_opens_a_websocket_only_with_its_flaw() {
    for flaw in [false, true] {
        let mut c = config();
        c.flaws.ws_deleted_accepted = flaw;
        let (handle, api) = server(c).await;
        let (_, access, _) = api.new_user().await;
        let deleted = api
            .post("/api/gdpr/delete", Some(&access), json!({"confirm": true}))
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
        // HTTP refuses the token either way; the WebSocket only without the flaw.
        assert_eq!(
            api.get("/api/user/me", Some(&access)).await.status,
            StatusCode::FORBIDDEN
        );
        let ws = ws_connect(&api, "deleted", Some(&access), &[]).await;
        assert_eq!(ws.is_ok(), flaw, "flaw {flaw}");
        handle.shutdown().await;
    }
    let all = parse(&["--flaws-all"]).into_config().expect("valid");
    assert!(all.flaws.ws_deleted_accepted);
}

// ------------------------------------------------------------------ real deployments

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_syntax_errors_answer_500_text_plain_and_words_still_search() {
    let mut c = config();
    c.quirks.search_syntax_errors = true;
    let (handle, api) = server(c).await;
    let said = api
        .post(
            "/api/conversation",
            None,
            json!({"text": "machine learning notes"}),
        )
        .await;
    assert_eq!(said.status, StatusCode::OK);
    for query in ["\"", "a AND OR NOT b", "((()", "*"] {
        let r = api.post("/api/search", None, json!({"query": query})).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{query}");
        assert_eq!(r.text, "Internal Server Error", "{query}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain"))
        );
    }
    // Valid syntax, words included, is searched as usual (the capture is stored shortly
    // after the answer).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = api
            .post("/api/search", None, json!({"query": "machine learning"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["count"] == 1 || Instant::now() > deadline {
            assert_eq!(r.body["count"], 1, "{}", r.text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = api
        .post("/api/search", None, json!({"query": "NEAR(a b, 2)"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_ignores_the_id_gives_the_callers_own_data() {
    let mut c = config();
    c.quirks.download_own_data = true;
    let (handle, api) = server(c).await;
    let (owner_email, owner, _) = api.new_user().await;
    let (other_email, other, _) = api.new_user().await;
    let e = api.post("/api/gdpr/export", Some(&owner), json!({})).await;
    let id = e.body["export_id"].as_str().expect("id").to_owned();
    wait_completed(&api, &id, &owner).await;
    let own = api
        .get(&format!("/api/gdpr/export/{id}/download"), Some(&other))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(
        own.body["user"]["email"],
        other_email.as_str(),
        "{}",
        own.text
    );
    assert!(!own.text.contains(&owner_email), "{}", own.text);
    // Whatever the id, and the status endpoint still keeps exports apart.
    let any = api
        .get("/api/gdpr/export/nothing/download", Some(&owner))
        .await;
    assert_eq!(
        any.body["user"]["email"],
        owner_email.as_str(),
        "{}",
        any.text
    );
    assert_eq!(
        api.get(&format!("/api/gdpr/export/{id}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    handle.shutdown().await;
}

/// With `--close-after-5xx`, the request after a 5xx on the same connection fails at the
/// transport level; on a fresh connection it is answered. Without it, the connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_close_after_a_5xx_only_when_asked() {
    for close in [true, false] {
        let mut c = config();
        c.quirks.close_after_5xx = close;
        c.quirks.search_syntax_errors = true;
        let (handle, api) = server(c).await;
        // One connection per client, kept alive between requests.
        let one = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let crash = one
            .post(api.url("/api/search"))
            .json(&json!({"query": "\""}))
            .send()
            .await
            .expect("answered");
        assert_eq!(crash.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(crash.headers().get("connection").is_none(), "unannounced");
        let _ = crash.bytes().await;
        let next = one.get(api.url("/health")).send().await;
        match (close, next) {
            (true, Err(e)) => assert!(!e.is_timeout(), "{e}"),
            (false, Ok(r)) => assert_eq!(r.status(), StatusCode::OK),
            (close, next) => panic!("close {close}: {next:?}"),
        }
        // A fresh connection is served as usual.
        assert_eq!(api.get("/health", None).await.status, StatusCode::OK);
        handle.shutdown().await;
    }
    let real = parse(&[
        "--close-after-5xx",
        "--search-syntax-errors",
        "--download-own-data",
    ])
    .into_config()
    .expect("valid");
    assert!(
        real.quirks.close_after_5xx
            && real.quirks.search_syntax_errors
            && real.quirks.download_own_data
    );
}

// ------------------------------------------------------------------ persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_with_a_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config();
    c.db = Some(dir.path().join("lva.sqlite"));
    c.export_delay = Duration::from_millis(100);

    let (h1, api) = server(c.clone()).await;
    let (email, access, refresh) = api.new_user().await;
    let (_, revoked, _) = api.new_user().await;
    api.post("/api/auth/logout", Some(&revoked), json!({}))
        .await;
    api.post(
        "/api/conversation",
        Some(&access),
        json!({ "session_id": "persist", "text": "persistence with sqlite" }),
    )
    .await;
    let e = api.post("/api/gdpr/export", Some(&access), json!({})).await;
    let id = e.body["export_id"].as_str().expect("id").to_owned();
    wait_completed(&api, &id, &access).await;
    h1.shutdown().await;

    let (h2, api) = server(c).await;
    assert_eq!(
        api.get("/api/user/me", Some(&access)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/api/user/me", Some(&revoked)).await.detail(),
        "Token has been revoked"
    );
    let r = api
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.login(&email, PASSWORD).await.status, StatusCode::OK);
    let h = api.get("/api/session/persist/history", None).await;
    assert_eq!(h.body["history"][0]["user_text"], "persistence with sqlite");
    let s = api
        .post("/api/search", None, json!({ "query": "sqlite" }))
        .await;
    assert_eq!(s.body["count"], 1);
    let status = api
        .get(&format!("/api/gdpr/export/{id}"), Some(&access))
        .await;
    assert_eq!(status.body["status"], "completed");
    h2.shutdown().await;
}

// ------------------------------------------------------------------ options and the binary

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

fn parse(args: &[&str]) -> ServerArgs {
    let mut argv = vec!["lva-target"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("parses").args
}

#[test]
fn options_are_validated_into_a_config() {
    let c = parse(&[]).into_config().expect("defaults are valid");
    assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
    assert_eq!(c.bcrypt_cost, 12);
    assert_eq!(c.access_token_ttl, Duration::from_secs(900));
    assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 24 * 3600));
    assert!(c.rate_limiting() && !c.trusts_forwarded_for());
    assert_eq!(
        (
            c.rate_limit.auth,
            c.rate_limit.api,
            c.rate_limit.health,
            c.rate_limit.websocket
        ),
        (10, 100, 1000, 30)
    );

    let all = parse(&["--flaws-all"]).into_config().expect("valid");
    assert!(all.flaws.exports_readable && all.flaws.refresh_as_access);
    assert!(!all.rate_limiting() && all.trusts_forwarded_for());
    let origins = parse(&[
        "--allowed-origins",
        "https://a.example.com, https://b.example.com/",
    ])
    .into_config()
    .expect("valid");
    assert_eq!(
        origins.allowed_origins,
        Some(vec![
            "https://a.example.com".to_owned(),
            "https://b.example.com".to_owned()
        ])
    );

    for (args, option) in [
        (vec!["--bcrypt-cost", "3"], "--bcrypt-cost"),
        (vec!["--bcrypt-cost", "32"], "--bcrypt-cost"),
        (vec!["--fault-error-rate", "1.5"], "--fault-error-rate"),
        (vec!["--fault-error-rate", "-0.1"], "--fault-error-rate"),
        (
            vec!["--rate-limit-window-secs", "-5"],
            "--rate-limit-window-secs",
        ),
        (vec!["--rate-limit-auth", "0"], "--rate-limit-auth"),
        (vec!["--access-token-ttl", "0"], "--access-token-ttl"),
        (vec!["--fault-latency-ms", "-1"], "--fault-latency-ms"),
        (vec!["--bind", "not-an-address"], "--bind"),
        (vec!["--jwt-secret", "short"], "--jwt-secret"),
    ] {
        match parse(&args).into_config() {
            Err(e) => assert!(e.to_string().contains(option), "{args:?}: {e}"),
            Ok(_) => panic!("{args:?} should be refused"),
        }
    }
}

#[test]
fn the_binary_serves_until_sigterm_and_refuses_bad_options() {
    let exe = env!("CARGO_BIN_EXE_lva-target");
    let mut child = Command::new(exe)
        .args(["--bind", "127.0.0.1:0", "--bcrypt-cost", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lva-target");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .strip_prefix("lva-target listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let health = rt.block_on(async { Api::new(&url).get("/health", None).await });
    assert_eq!(health.status, StatusCode::OK);

    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "lva-target did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));

    for (args, needle) in [
        (vec!["--bcrypt-cost", "2"], "--bcrypt-cost"),
        (vec!["--fault-error-rate", "2"], "--fault-error-rate"),
        (vec!["--bind", "nowhere"], "--bind"),
        (vec!["--export-delay-ms", "-10"], "--export-delay-ms"),
        (vec!["--bcrypt-cost", "abc"], "--bcrypt-cost"),
        (vec!["--no-such-option"], "--no-such-option"),
    ] {
        let out = Command::new(exe).args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
