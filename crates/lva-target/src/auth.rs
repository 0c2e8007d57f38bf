//! Accounts and tokens: register, login (JSON and form), refresh, logout,
//! the Bearer extractor, and bcrypt kept off the async executor.

use std::time::Duration;

use aws_lc_rs::hmac;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{Fields, FormBody, JsonBody, OptionalJsonBody};
use super::storage::{self, UserRow};
use super::{Shared, input, now_epoch, now_iso};

/// Wrong passwords in a row that lock an account.
const MAX_FAILED_LOGINS: i64 = 5;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login/json", post(login_json))
        .route("/api/auth/login", post(login_form))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
}

// ---------------------------------------------------------------- tokens

/// The JWT claims of the contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub email: String,
    pub role: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// The only header this server signs, and the only algorithm it accepts.
const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The part of a token's header that is checked.
#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

/// Signs and checks HS256 tokens (RFC 7519: base64url header, claims and HMAC-SHA256 tag).
pub(crate) struct Jwt {
    key: hmac::Key,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl Jwt {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            access_ttl,
            refresh_ttl,
        }
    }

    fn issue(&self, user: &UserRow, kind: &str, ttl: Duration) -> ApiResult<String> {
        let iat = now_epoch();
        let claims = Claims {
            sub: user.id.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            kind: kind.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|e| ApiError::Internal(format!("jwt encode: {e}")))?;
        Ok(self.sign(&payload))
    }

    /// `header.payload.tag`, each part base64url without padding.
    fn sign(&self, payload: &[u8]) -> String {
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(JWT_HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
        token
    }

    /// The Token object of the contract.
    fn token_pair(&self, user: &UserRow, refresh_token: Option<String>) -> ApiResult<Value> {
        let access = self.issue(user, "access", self.access_ttl)?;
        let refresh = match refresh_token {
            Some(t) => t,
            None => self.issue(user, "refresh", self.refresh_ttl)?,
        };
        Ok(json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.access_ttl.as_secs(),
        }))
    }

    /// The header and payload parts of a token whose tag is this key's (checked in constant
    /// time).
    fn verified<'t>(&self, token: &'t str) -> Option<(&'t str, &'t str)> {
        let (signed, tag) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).ok()?;
        Some((header, payload))
    }

    /// Checks the tag (in constant time, before anything of the token is read), the algorithm,
    /// the claims and the expiry (exact: tests use one-second tokens).
    pub fn decode(&self, token: &str) -> ApiResult<Claims> {
        let invalid = || ApiError::unauthorized("Could not validate credentials");
        let (header, payload) = self.verified(token).ok_or_else(invalid)?;
        let part = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid());
        let header: JwtHeader = serde_json::from_slice(&part(header)?).map_err(|_| invalid())?;
        if header.alg != "HS256" {
            return Err(invalid());
        }
        let claims: Claims = serde_json::from_slice(&part(payload)?).map_err(|_| invalid())?;
        if claims.exp < now_epoch() {
            return Err(ApiError::unauthorized("Token has expired"));
        }
        Ok(claims)
    }
}

/// The signed-in user of a request: an access token (or, with the flaw, a
/// refresh token) that is valid, not revoked, of an account that is not deleted.
/// The user a token names, unless the token was revoked; `missing` is the 401's detail when
/// the user no longer exists.
async fn token_user(state: &Shared, claims: &Claims, missing: &'static str) -> ApiResult<UserRow> {
    let (jti, sub) = (claims.jti.clone(), claims.sub.clone());
    state
        .db
        .call(move |conn| {
            if storage::is_revoked(conn, &jti)? {
                return Err(ApiError::unauthorized("Token has been revoked"));
            }
            storage::user_by_id(conn, &sub)?.ok_or_else(|| ApiError::unauthorized(missing))
        })
        .await
}

pub(crate) struct AuthUser {
    pub claims: Claims,
    pub user: UserRow,
}

/// The token of an `Authorization: Bearer` header, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks a token the way every protected endpoint does.
pub(crate) async fn authenticate(state: &Shared, token: &str) -> ApiResult<AuthUser> {
    authenticate_as(state, token, false).await
}

/// [`authenticate`], letting a deleted account through when `deleted_ok` (a flaw's effect).
pub(crate) async fn authenticate_as(
    state: &Shared,
    token: &str,
    deleted_ok: bool,
) -> ApiResult<AuthUser> {
    let claims = state.jwt.decode(token)?;
    let refresh_ok = state.config.flaws.refresh_as_access;
    if claims.kind != "access" && !(refresh_ok && claims.kind == "refresh") {
        return Err(ApiError::unauthorized("Invalid token type"));
    }
    let user = token_user(state, &claims, "Could not validate credentials").await?;
    if user.is_deleted() && !deleted_ok {
        return Err(ApiError::forbidden("Account is deleted"));
    }
    Ok(AuthUser { claims, user })
}

impl FromRequestParts<Shared> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let token =
            bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
        authenticate(state, token).await
    }
}

// ---------------------------------------------------------------- bcrypt

/// Hashes on a blocking thread; a semaphore keeps at most one hash per core
/// running so a login storm queues instead of spawning hundreds of threads.
pub(crate) async fn hash_password(state: &Shared, password: String) -> ApiResult<String> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("hashing semaphore closed".into()))?;
    let cost = state.config.bcrypt_cost;
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await?
        .map_err(|e| ApiError::Internal(format!("bcrypt: {e}")))
}

async fn verify_password(state: &Shared, password: String, hash: String) -> ApiResult<bool> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("hashing semaphore closed".into()))?;
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
        .await?
        .map_err(|e| ApiError::Internal(format!("bcrypt: {e}")))
}

/// A hash to check unknown addresses against, so that they cost as much time
/// as known ones and the answer time does not tell which addresses exist.
async fn dummy_hash(state: &Shared) -> ApiResult<String> {
    state
        .dummy_hash
        .get_or_try_init(|| hash_password(state, "Not-a-real-password-0".into()))
        .await
        .cloned()
}

// ---------------------------------------------------------------- handlers

async fn register(State(state): State<Shared>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let email = f.required_str("email");
    let password = f.required_str("password");
    let full_name = f.optional_str("full_name");
    let email = email.and_then(|e| {
        input::email(e)
            .map_err(|m| f.push(FieldError::body("email", m, "value_error")))
            .ok()
    });
    if let Some(p) = password
        && let Err(m) = input::password(p)
    {
        f.push(FieldError::body("password", m, "value_error"));
    }
    let full_name = match full_name.map(input::full_name) {
        Some(Ok(n)) => n,
        Some(Err(m)) => {
            f.push(FieldError::body("full_name", m, "string_too_long"));
            None
        }
        None => None,
    };
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    // Cheap check first so that taken addresses do not cost a bcrypt hash;
    // the insert below still settles races.
    let probe = email.clone();
    let exists = state
        .db
        .call(move |conn| Ok(storage::user_by_email(conn, &probe)?.is_some()))
        .await?;
    if exists {
        return Err(ApiError::bad_request("Email already registered"));
    }
    let password_hash = hash_password(&state, password.to_owned()).await?;
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        password_hash,
        full_name,
        role: "user".into(),
        status: "active".into(),
        created_at: now_iso(),
        last_login: None,
        locked_until: None,
    };
    let row = user.clone();
    let inserted = state
        .db
        .call(move |conn| Ok(storage::insert_user(conn, &row)?))
        .await?;
    if !inserted {
        return Err(ApiError::bad_request("Email already registered"));
    }
    Ok((StatusCode::CREATED, Json(user.to_json())).into_response())
}

async fn login_json(
    State(state): State<Shared>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let email = f.required_str("email");
    let password = f.required_str("password");
    f.finish()?;
    match (email, password) {
        (Some(e), Some(p)) => login(&state, e, p).await.map(Json),
        _ => Err(ApiError::Internal("validated fields missing".into())),
    }
}

async fn login_form(State(state): State<Shared>, form: FormBody) -> ApiResult<Json<Value>> {
    let mut errors = Vec::new();
    for name in ["username", "password"] {
        if form.get(name).is_none() {
            errors.push(FieldError::body(name, "Field required", "missing"));
        }
    }
    match (form.get("username"), form.get("password")) {
        (Some(u), Some(p)) if errors.is_empty() => login(&state, u, p).await.map(Json),
        _ => Err(ApiError::Validation(errors)),
    }
}

async fn login(state: &Shared, email: &str, password: &str) -> ApiResult<Value> {
    let email = email.trim().to_ascii_lowercase();
    let user = state
        .db
        .call(move |conn| Ok(storage::user_by_email(conn, &email)?))
        .await?;
    let Some(user) = user else {
        let hash = dummy_hash(state).await?;
        verify_password(state, password.to_owned(), hash).await?;
        return Err(ApiError::unauthorized("Invalid email or password"));
    };
    let now = now_epoch();
    let lockout = i64::try_from(state.config.lockout.as_secs()).unwrap_or(i64::MAX);
    if lockout > 0
        && let Some(until) = user.locked_until
        && until > now
    {
        let minutes = (until - now + 59) / 60;
        return Err(ApiError::new(
            StatusCode::LOCKED,
            format!(
                "Account locked after too many failed login attempts. Try again in {minutes} minute(s)."
            ),
        ));
    }
    if !verify_password(state, password.to_owned(), user.password_hash.clone()).await? {
        let id = user.id.clone();
        let (max, until) = if lockout > 0 {
            (MAX_FAILED_LOGINS, Some(now.saturating_add(lockout)))
        } else {
            (i64::MAX, None)
        };
        state
            .db
            .call(move |conn| Ok(storage::record_failed_login(conn, &id, max, until)?))
            .await?;
        return Err(ApiError::unauthorized("Invalid email or password"));
    }
    if user.is_deleted() {
        return Err(ApiError::forbidden("Account is deleted"));
    }
    let id = user.id.clone();
    state
        .db
        .call(move |conn| Ok(storage::record_successful_login(conn, &id, &now_iso())?))
        .await?;
    state.jwt.token_pair(&user, None)
}

async fn refresh(State(state): State<Shared>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let token = f.required_str("refresh_token");
    f.finish()?;
    let token = token.unwrap_or_default().to_owned();
    let claims = state
        .jwt
        .decode(&token)
        .map_err(|_| ApiError::unauthorized("Invalid refresh token"))?;
    if claims.kind != "refresh" {
        return Err(ApiError::unauthorized("Invalid token type"));
    }
    let user = token_user(&state, &claims, "Invalid refresh token").await?;
    if user.is_deleted() {
        return Err(ApiError::unauthorized("Account is deleted"));
    }
    // The refresh token is kept (not rotated); the contract lets clients keep
    // whichever comes back.
    state.jwt.token_pair(&user, Some(token)).map(Json)
}

async fn logout(
    State(state): State<Shared>,
    auth: AuthUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<StatusCode> {
    let mut to_revoke = vec![(auth.claims.jti.clone(), auth.claims.exp)];
    if let Some(body) = &body {
        let mut f = Fields::new(body);
        let refresh = f.optional_str("refresh_token");
        f.finish()?;
        // Only a valid refresh token of the same user is revoked; anything else is ignored.
        if let Some(c) = refresh.and_then(|t| state.jwt.decode(t).ok())
            && c.kind == "refresh"
            && c.sub == auth.user.id
        {
            to_revoke.push((c.jti, c.exp));
        }
    }
    state
        .db
        .call(move |conn| {
            for (jti, exp) in &to_revoke {
                storage::revoke(conn, jti, *exp)?;
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(secret: &str) -> Jwt {
        Jwt::new(
            secret.as_bytes(),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    fn user() -> UserRow {
        UserRow {
            id: "u-1".into(),
            email: "a@example.com".into(),
            password_hash: String::new(),
            full_name: None,
            role: "user".into(),
            status: "active".into(),
            created_at: String::new(),
            last_login: None,
            locked_until: None,
        }
    }

    fn detail(result: ApiResult<Claims>) -> String {
        match result {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn a_token_it_signed_decodes_to_its_claims() {
        let jwt = jwt("a-secret-of-16-chars");
        let token = jwt
            .issue(&user(), "access", Duration::from_secs(60))
            .unwrap();
        let claims = jwt.decode(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.kind.as_str()),
            ("u-1", "access")
        );
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn the_tag_is_standard_hs256() {
        // The usual HS256 example token, signed elsewhere with this secret.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                     eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
                     SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert!(jwt("your-256-bit-secret").verified(token).is_some());
        assert!(jwt("another-256-bit-secret").verified(token).is_none());
    }

    #[test]
    fn tampered_foreign_unsigned_and_expired_tokens_are_refused() {
        let jwt = jwt("a-secret-of-16-chars");
        let token = jwt
            .issue(&user(), "access", Duration::from_secs(60))
            .unwrap();
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, tag) = rest.split_once('.').unwrap();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["role"] = json!("admin");
        let forged = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(
            detail(jwt.decode(&format!("{head}.{forged}.{tag}"))).contains("Could not validate")
        );
        let other =
            self::jwt("another-secret-of-16").issue(&user(), "access", Duration::from_secs(60));
        assert!(detail(jwt.decode(&other.unwrap())).contains("Could not validate"));
        // A header naming another algorithm is refused even under a valid tag.
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let signed = format!("{none}.{payload}");
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(&jwt.key, signed.as_bytes()).as_ref());
        assert!(detail(jwt.decode(&format!("{signed}.{tag}"))).contains("Could not validate"));
        assert!(detail(jwt.decode(&format!("{head}.{payload}."))).contains("Could not validate"));
        assert!(detail(jwt.decode("not-a-token")).contains("Could not validate"));
        let mut old = claims.clone();
        old["role"] = json!("user");
        old["exp"] = json!(now_epoch() - 1);
        let expired = jwt.sign(old.to_string().as_bytes());
        assert!(detail(jwt.decode(&expired)).contains("expired"));
    }
}
