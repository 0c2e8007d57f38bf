//! The signed-in user's profile: GET and PATCH /api/user/me.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::auth::AuthUser;
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{Fields, JsonBody};
use super::{Shared, input, storage};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/api/user/me", get(me).patch(update_me))
}

async fn me(auth: AuthUser) -> Json<Value> {
    Json(auth.user.to_json())
}

async fn update_me(
    State(state): State<Shared>,
    auth: AuthUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let full_name = f.nullable_str("full_name");
    let email = f.optional_str("email");
    let full_name = match full_name {
        Some(Some(raw)) => match input::full_name(raw) {
            Ok(n) => Some(n),
            Err(m) => {
                f.push(FieldError::body("full_name", m, "string_too_long"));
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    let email = email.and_then(|e| {
        input::email(e)
            .map_err(|m| f.push(FieldError::body("email", m, "value_error")))
            .ok()
    });
    f.finish()?;

    let id = auth.user.id.clone();
    let user = state
        .db
        .call(move |conn| {
            if !storage::update_profile(conn, &id, full_name, email)? {
                return Err(ApiError::bad_request("Email already in use"));
            }
            storage::user_by_id(conn, &id)?
                .ok_or_else(|| ApiError::unauthorized("Could not validate credentials"))
        })
        .await?;
    Ok(Json(user.to_json()))
}
