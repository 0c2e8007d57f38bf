//! Conversation, search, stats, session history, health, and the canned agent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};

use super::auth::{authenticate, bearer};
use super::error::{ApiError, ApiResult, FieldError};
use super::extract::{Fields, JsonBody, query_pairs};
use super::storage::{self, NewCapture};
use super::{Shared, now_iso};

/// A session counts as active this long after its last exchange.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// At most this many active sessions are tracked (bounded memory under load).
const MAX_TRACKED_SESSIONS: usize = 100_000;
/// At most this many ids are listed by /api/stats.
const MAX_LISTED_SESSIONS: usize = 100;
const MAX_TEXT_CHARS: usize = 10_000;
const MAX_SESSION_ID_CHARS: usize = 128;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/api/conversation", post(conversation))
        .route("/api/search", post(search))
        .route("/api/stats", get(stats))
        .route("/api/session/{session_id}/history", get(history))
}

// ---------------------------------------------------------------- the canned agent

/// A deterministic answer: the same text always gets the same reply.
pub(crate) struct Reply {
    pub intent: &'static str,
    pub agent_text: String,
}

fn topic_of(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(8).collect();
    let mut topic = words
        .join(" ")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned();
    if let Some((cut, _)) = topic.char_indices().nth(60) {
        topic.truncate(cut);
    }
    topic
}

/// Picks an intent from keywords and answers with a template.
pub(crate) fn reply_to(text: &str) -> Reply {
    let lower = text.to_lowercase();
    let first = lower
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    let topic = topic_of(text);
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if ["hello", "hi", "hey", "greetings"].contains(&first) {
        return Reply {
            intent: "greeting",
            agent_text: "Hello! What would you like to learn about today?".into(),
        };
    }
    let question_words = [
        "what", "how", "why", "when", "where", "who", "which", "can", "could", "should", "is",
        "are", "do", "does", "explain",
    ];
    if lower.trim_end().ends_with('?') || question_words.contains(&first) {
        return Reply {
            intent: "question",
            agent_text: format!(
                "Good question about \"{topic}\". Let's break it into smaller parts: what do you already know about it?"
            ),
        };
    }
    if has(&["learn", "study", "understand", "practice", "course"]) {
        return Reply {
            intent: "learning",
            agent_text: format!(
                "Great, you are learning about \"{topic}\". Try explaining the key idea in your own words."
            ),
        };
    }
    if has(&["remember", "note", "idea", "meeting", "todo"]) {
        return Reply {
            intent: "note",
            agent_text: format!("Noted: \"{topic}\". It is saved, so you can search for it later."),
        };
    }
    Reply {
        intent: "statement",
        agent_text: format!("I hear you: \"{topic}\". What would you like to explore next?"),
    }
}

/// The reply to an audio message of `bytes` bytes (there is no speech recognition).
pub(crate) fn reply_to_audio(bytes: usize) -> (String, Reply) {
    (
        format!("(audio: {bytes} bytes)"),
        Reply {
            intent: "audio",
            agent_text: format!(
                "I received your audio message ({bytes} bytes). Tell me more about what you are learning."
            ),
        },
    )
}

/// Decodes base64 with or without padding.
pub(crate) fn decode_audio(b64: &str) -> Option<Vec<u8>> {
    let b64 = b64.trim();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
        .ok()
}

// ---------------------------------------------------------------- active sessions

/// Sessions with an exchange in the last [`SESSION_TTL`], kept in memory.
#[derive(Default)]
pub(crate) struct ActiveSessions {
    seen: Mutex<HashMap<String, Instant>>,
}

impl ActiveSessions {
    pub fn touch(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED_SESSIONS && !seen.contains_key(id) {
            let now = Instant::now();
            seen.retain(|_, t| now.duration_since(*t) < SESSION_TTL);
            if seen.len() >= MAX_TRACKED_SESSIONS {
                return;
            }
        }
        seen.insert(id.to_owned(), Instant::now());
    }

    /// Forgets sessions idle for longer than the TTL.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, t| now.duration_since(*t) < SESSION_TTL);
    }

    /// `(count, some ids)` of the active sessions, most recent first.
    fn snapshot(&self) -> (usize, Vec<String>) {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut live: Vec<(&String, &Instant)> = seen
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < SESSION_TTL)
            .collect();
        live.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let ids = live
            .iter()
            .take(MAX_LISTED_SESSIONS)
            .map(|(id, _)| (*id).clone())
            .collect();
        (live.len(), ids)
    }
}

/// Stores one exchange in the session's history; returns its timestamp.
pub(crate) async fn record_exchange(
    state: &Shared,
    session_id: &str,
    user_id: Option<String>,
    user_text: &str,
    reply: &Reply,
    source: &str,
) -> ApiResult<String> {
    let capture = NewCapture {
        session_id: session_id.to_owned(),
        user_id,
        timestamp: now_iso(),
        user_text: user_text.to_owned(),
        agent_text: reply.agent_text.clone(),
        metadata: json!({ "intent": reply.intent, "source": source }),
    };
    let timestamp = capture.timestamp.clone();
    state
        .db
        .call(move |conn| Ok(storage::insert_capture(conn, &capture)?))
        .await?;
    state.sessions.touch(session_id);
    Ok(timestamp)
}

// ---------------------------------------------------------------- handlers

async fn root() -> Json<Value> {
    Json(json!({
        "name": "Learning Voice Agent API (lva-target reference server)",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ok",
    }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy", "timestamp": now_iso() }))
}

async fn conversation(
    State(state): State<Shared>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let session_id = f.optional_str("session_id").map(str::trim).unwrap_or("");
    let text = f.optional_str("text").map(str::trim).unwrap_or("");
    let audio = f.optional_str("audio_base64").map(str::trim).unwrap_or("");
    if session_id.chars().count() > MAX_SESSION_ID_CHARS {
        f.push(FieldError::body(
            "session_id",
            "String should have at most 128 characters",
            "string_too_long",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        f.push(FieldError::body(
            "text",
            "String should have at most 10000 characters",
            "string_too_long",
        ));
    }
    let decoded = if text.is_empty() && !audio.is_empty() {
        let d = decode_audio(audio);
        if d.is_none() {
            f.push(FieldError::body(
                "audio_base64",
                "Invalid base64-encoded audio",
                "value_error",
            ));
        }
        d
    } else {
        None
    };
    f.finish()?;

    let (user_text, reply) = if !text.is_empty() {
        (text.to_owned(), reply_to(text))
    } else if let Some(bytes) = decoded {
        reply_to_audio(bytes.len())
    } else {
        return Err(ApiError::bad_request("No input provided"));
    };
    let session_id = if session_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        session_id.to_owned()
    };
    // The endpoint is open: a valid token only attributes the exchange to its
    // user (for the GDPR export); a bad one is ignored, as if absent.
    let user_id = match bearer(&headers) {
        Some(token) => authenticate(&state, token).await.ok().map(|a| a.user.id),
        None => None,
    };
    let timestamp =
        record_exchange(&state, &session_id, user_id, &user_text, &reply, "text").await?;
    Ok(Json(json!({
        "session_id": session_id,
        "user_text": user_text,
        "agent_text": reply.agent_text,
        "intent": reply.intent,
        "timestamp": timestamp,
    })))
}

/// Turns free text into a safe FTS5 expression: every run of letters/digits
/// becomes a quoted term (so `AND`, `NEAR(`, `*`, `"`… are plain words or
/// dropped). `None` when nothing searchable is left.
pub(crate) fn fts_expression(query: &str) -> Option<String> {
    let terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(32)
        .map(|t| format!("\"{t}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

async fn search(State(state): State<Shared>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let query = f.required_str("query");
    let limit = f.int_or("limit", 20);
    if let Some(q) = query {
        let n = q.chars().count();
        if n == 0 {
            f.push(FieldError::body(
                "query",
                "String should have at least 1 character",
                "string_too_short",
            ));
        } else if n > 1000 {
            f.push(FieldError::body(
                "query",
                "String should have at most 1000 characters",
                "string_too_long",
            ));
        }
    }
    if limit < 1 {
        f.push(FieldError::body(
            "limit",
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        ));
    } else if limit > 100 {
        f.push(FieldError::body(
            "limit",
            "Input should be less than or equal to 100",
            "less_than_equal",
        ));
    }
    f.finish()?;
    let query = query.unwrap_or_default().to_owned();
    let results = if state.config.quirks.search_syntax_errors {
        // The query as it came: FTS5 refuses its syntax errors, and nothing handles that.
        let expr = query.clone();
        state
            .db
            .call(move |conn| {
                storage::search(conn, &expr, limit).map_err(|e| ApiError::Unhandled(e.to_string()))
            })
            .await?
    } else {
        match fts_expression(&query) {
            Some(expr) => {
                state
                    .db
                    .call(move |conn| Ok(storage::search(conn, &expr, limit)?))
                    .await?
            }
            None => Vec::new(),
        }
    };
    Ok(Json(json!({
        "query": query,
        "count": results.len(),
        "results": results,
    })))
}

async fn stats(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let (total, unique, last) = state
        .db
        .call(|conn| Ok(storage::capture_stats(conn)?))
        .await?;
    let (active, ids) = state.sessions.snapshot();
    Ok(Json(json!({
        "database": {
            "total_captures": total,
            "unique_sessions": unique,
            "last_capture": last,
        },
        "sessions": { "active": active, "ids": ids },
    })))
}

async fn history(
    State(state): State<Shared>,
    Path(session_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut limit = 20;
    if let Some((_, v)) = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "limit")
    {
        match v.trim().parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => limit = n,
            Ok(_) => {
                return Err(ApiError::invalid(FieldError::query(
                    "limit",
                    "Input should be between 1 and 1000",
                    "value_error",
                )));
            }
            Err(_) => {
                return Err(ApiError::invalid(FieldError::query(
                    "limit",
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                )));
            }
        }
    }
    let id = session_id.clone();
    let history = state
        .db
        .call(move |conn| Ok(storage::session_history(conn, &id, limit)?))
        .await?;
    Ok(Json(json!({
        "session_id": session_id,
        "count": history.len(),
        "history": history,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_expressions_are_quoted_terms() {
        assert_eq!(
            fts_expression("machine learning").as_deref(),
            Some("\"machine\" \"learning\"")
        );
        assert_eq!(
            fts_expression("NEAR(a b) AND \"x*").as_deref(),
            Some("\"NEAR\" \"a\" \"b\" \"AND\" \"x\"")
        );
        assert_eq!(fts_expression("\"*():-'"), None);
    }

    #[test]
    fn replies_are_deterministic() {
        let a = reply_to("How do neural networks learn?");
        let b = reply_to("How do neural networks learn?");
        assert_eq!(a.agent_text, b.agent_text);
        assert_eq!(a.intent, "question");
        assert_eq!(reply_to("hello there").intent, "greeting");
    }
}
