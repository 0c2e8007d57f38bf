//! GDPR: data export as a background job, and account deletion.
//!
//! Download answers: 200 with the data once `completed`; 409 `Export is not
//! ready` while `processing` (409 `Export failed` if it failed); 410 after
//! `expires_at`; 404 for an unknown id or another user's export.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration as ChronoDuration, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{Fields, JsonBody, OptionalJsonBody};
use super::storage::{self, ExportRow};
use super::{Shared, iso, now_iso};

/// How long a finished export can be downloaded.
const EXPORT_LIFETIME_DAYS: i64 = 7;
/// Grace period between the deletion request and the erasure.
const DELETION_GRACE_DAYS: i64 = 30;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/gdpr/export", post(request_export))
        .route("/api/gdpr/export/{export_id}", get(export_status))
        .route("/api/gdpr/export/{export_id}/download", get(download))
        .route("/api/gdpr/delete", post(delete_account))
}

fn status_body(e: &ExportRow) -> Value {
    let download_url =
        (e.status == "completed").then(|| format!("/api/gdpr/export/{}/download", e.id));
    json!({
        "export_id": e.id,
        "status": e.status,
        "created_at": e.created_at,
        "download_url": download_url,
        "expires_at": e.expires_at,
    })
}

async fn request_export(
    State(state): State<Shared>,
    auth: AuthUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Json<Value>> {
    let empty = serde_json::Map::new();
    let mut f = Fields::new(body.as_ref().unwrap_or(&empty));
    let format = f
        .optional_str("format")
        .unwrap_or("json")
        .to_ascii_lowercase();
    let options = json!({
        "include_conversations": f.bool_or("include_conversations", true),
        "include_sessions": f.bool_or("include_sessions", true),
        "include_preferences": f.bool_or("include_preferences", true),
    });
    if format != "json" && format != "csv" {
        f.push(FieldError::body(
            "format",
            "Input should be 'json' or 'csv'",
            "enum",
        ));
    }
    f.finish()?;

    let now = Utc::now();
    let export = ExportRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: auth.user.id.clone(),
        format,
        options,
        status: "processing".into(),
        created_at: iso(now),
        expires_at: iso(now + ChronoDuration::days(EXPORT_LIFETIME_DAYS)),
    };
    let row = export.clone();
    state
        .db
        .call(move |conn| Ok(storage::insert_export(conn, &row)?))
        .await?;
    spawn_export_job(state.clone(), export.clone(), state.config.export_delay);
    Ok(Json(status_body(&export)))
}

/// Completes an export after `delay`, unless the server shuts down first
/// (the export then stays `processing` and is resumed at the next start).
pub(crate) fn spawn_export_job(state: Shared, export: ExportRow, delay: std::time::Duration) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let id = export.id.clone();
        let result = state
            .db
            .call(move |conn| {
                let data = build_export(conn, &export)?;
                storage::finish_export(conn, &export.id, "completed", &now_iso(), Some(&data))?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            errln!("lva-target: export {id} failed: {e:?}");
            let _ = state
                .db
                .call(move |conn| {
                    Ok(storage::finish_export(
                        conn,
                        &id,
                        "failed",
                        &now_iso(),
                        None,
                    )?)
                })
                .await;
        }
    });
}

/// Gathers the user's data in the export's format.
fn build_export(conn: &Connection, export: &ExportRow) -> ApiResult<String> {
    let user = storage::user_by_id(conn, &export.user_id)?
        .ok_or_else(|| ApiError::Internal("export of an unknown user".into()))?;
    let wants = |key: &str| {
        export
            .options
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(true)
    };
    let conversations = if wants("include_conversations") {
        storage::user_captures(conn, &user.id)?
    } else {
        Vec::new()
    };
    if export.format == "csv" {
        return build_csv(&user, &conversations);
    }
    let mut doc = json!({
        "export_id": export.id,
        "generated_at": now_iso(),
        "format": "json",
        "user": user.to_json(),
    });
    if wants("include_conversations") {
        doc["conversations"] = Value::Array(conversations);
    }
    if wants("include_sessions") {
        doc["sessions"] = json!(storage::user_sessions(conn, &user.id)?);
    }
    if wants("include_preferences") {
        doc["preferences"] = json!({});
    }
    Ok(doc.to_string())
}

fn build_csv(user: &storage::UserRow, conversations: &[Value]) -> ApiResult<String> {
    let csv_err = |e: csv::Error| ApiError::Internal(format!("csv: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "record",
        "id",
        "session_id",
        "timestamp",
        "user_text",
        "agent_text",
        "email",
        "full_name",
    ])
    .map_err(csv_err)?;
    let full_name = user.full_name.clone().unwrap_or_default();
    w.write_record([
        "user",
        user.id.as_str(),
        "",
        user.created_at.as_str(),
        "",
        "",
        user.email.as_str(),
        full_name.as_str(),
    ])
    .map_err(csv_err)?;
    for c in conversations {
        let field = |k: &str| match &c[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        w.write_record([
            "conversation".to_owned(),
            field("id"),
            field("session_id"),
            field("timestamp"),
            field("user_text"),
            field("agent_text"),
            String::new(),
            String::new(),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::Internal(format!("csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::Internal(format!("csv: {e}")))
}

/// Loads an export the caller may see (its owner, or anyone with the flaw on).
async fn visible_export(state: &Shared, auth: &AuthUser, id: String) -> ApiResult<ExportRow> {
    let export = state
        .db
        .call(move |conn| Ok(storage::export_by_id(conn, &id)?))
        .await?;
    match export {
        Some(e) if e.user_id == auth.user.id || state.config.flaws.exports_readable => Ok(e),
        // Another user's export is reported as missing, so ids cannot be probed.
        _ => Err(ApiError::not_found("Export not found")),
    }
}

async fn export_status(
    State(state): State<Shared>,
    auth: AuthUser,
    Path(export_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let export = visible_export(&state, &auth, export_id).await?;
    Ok(Json(status_body(&export)))
}

async fn download(
    State(state): State<Shared>,
    auth: AuthUser,
    Path(export_id): Path<String>,
) -> ApiResult<Response> {
    if state.config.quirks.download_own_data {
        return own_data(&state, &auth, export_id).await;
    }
    let export = visible_export(&state, &auth, export_id).await?;
    match export.status.as_str() {
        "completed" => {}
        "failed" => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "Export failed",
            ));
        }
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "Export is not ready",
            ));
        }
    }
    if chrono::DateTime::parse_from_rfc3339(&export.expires_at).is_ok_and(|t| t < Utc::now()) {
        return Err(ApiError::new(
            axum::http::StatusCode::GONE,
            "Export has expired",
        ));
    }
    let id = export.id.clone();
    let data = state
        .db
        .call(move |conn| Ok(storage::export_data(conn, &id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("Export not found"))?;
    let (mime, ext) = if export.format == "csv" {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    let disposition = format!("attachment; filename=\"lva-export-{}.{ext}\"", export.id);
    let mut res = data.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The download of a deployment that ignores the id: the caller's own data, gathered now.
async fn own_data(state: &Shared, auth: &AuthUser, export_id: String) -> ApiResult<Response> {
    let now = Utc::now();
    let export = ExportRow {
        id: export_id,
        user_id: auth.user.id.clone(),
        format: "json".into(),
        options: json!({}),
        status: "completed".into(),
        created_at: iso(now),
        expires_at: iso(now + ChronoDuration::days(EXPORT_LIFETIME_DAYS)),
    };
    let data = state
        .db
        .call(move |conn| build_export(conn, &export))
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        data,
    )
        .into_response())
}

/// A value as a language with truth values reads it: false, null, 0, "" and empty
/// collections are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

async fn delete_account(
    State(state): State<Shared>,
    auth: AuthUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    match body.get("confirm") {
        None | Some(Value::Null) => {
            f.push(FieldError::body("confirm", "Field required", "missing"))
        }
        Some(Value::Bool(true)) => {}
        Some(v) if state.config.quirks.lax_delete_confirm && truthy(v) => {}
        Some(Value::Bool(false)) => f.push(FieldError::body(
            "confirm",
            "Account deletion must be confirmed with confirm: true",
            "value_error",
        )),
        Some(_) => f.push(FieldError::body(
            "confirm",
            "Input should be a valid boolean",
            "bool_type",
        )),
    }
    let reason = f.optional_str("reason").map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
        f.push(FieldError::body(
            "reason",
            "String should have at most 1000 characters",
            "string_too_long",
        ));
    }
    f.finish()?;

    let now = Utc::now();
    let scheduled_at = iso(now);
    let id = auth.user.id.clone();
    let at = scheduled_at.clone();
    state
        .db
        .call(move |conn| Ok(storage::mark_deleted(conn, &id, &at, reason.as_deref())?))
        .await?;
    Ok(Json(json!({
        "status": "scheduled",
        "scheduled_at": scheduled_at,
        "completion_date": iso(now + ChronoDuration::days(DELETION_GRACE_DAYS)),
        "items_to_delete": [
            "user_profile",
            "conversations",
            "sessions",
            "exports",
            "preferences",
            "authentication_tokens"
        ],
    })))
}
