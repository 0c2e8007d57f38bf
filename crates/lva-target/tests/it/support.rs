//! Helpers for the server's tests: a server per test with fast settings, a small JSON
//! client, and checks of validation errors and tokens.

use std::time::Duration;

use lva_target::{ServerConfig, ServerHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "Passw0rd-Test";

/// Fast settings: bcrypt cost 4, short export delay, no rate limiting.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig {
        bcrypt_cost: 4,
        export_delay: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    c.rate_limit.enabled = false;
    c
}

pub async fn server(config: ServerConfig) -> (ServerHandle, Api) {
    let handle = lva_target::start(config).await.expect("server starts");
    let api = Api::new(&handle.base_url());
    (handle, api)
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A JSON answer: status, selected headers and body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            base: base.to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("request answered");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.req(Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(self.req(Method::POST, path, token).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(self.req(Method::PATCH, path, token).json(&body))
            .await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &'static str) -> Answer {
        self.send(
            self.req(Method::POST, path, None)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn register(&self, email: &str) -> Answer {
        self.post(
            "/api/auth/register",
            None,
            json!({ "email": email, "password": PASSWORD, "full_name": "Test User" }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/api/auth/login/json",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers a fresh user and logs in: `(email, access, refresh)`.
    pub async fn new_user(&self) -> (String, String, String) {
        let email = unique_email();
        let r = self.register(&email).await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.text);
        let t = self.login(&email, PASSWORD).await;
        assert_eq!(t.status, StatusCode::OK, "login: {}", t.text);
        let access = t.body["access_token"].as_str().expect("access").to_owned();
        let refresh = t.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        (email, access, refresh)
    }

    /// Reads one sample of the Prometheus text (`name` or `name{labels}`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics", None).await.text;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
    }
}

/// Asserts a 422 with the contract's list shape; returns the `loc`s.
pub fn assert_validation(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let list = a.body["detail"].as_array().expect("detail is a list");
    assert!(!list.is_empty());
    for item in list {
        assert!(item["loc"].is_array(), "{item}");
        assert!(item["msg"].is_string(), "{item}");
        assert!(item["type"].is_string(), "{item}");
    }
    list.iter().map(|i| i["loc"].clone()).collect()
}

/// Decodes a JWT payload without checking it.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}
