//! SQLite storage: one connection behind a mutex, used only inside `spawn_blocking`.
//!
//! A single connection keeps an in-memory database possible (each in-memory
//! connection is its own database) and avoids SQLITE_BUSY handling; every
//! query here is short, so callers wait for the lock on a blocking thread,
//! never on the async executor.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::error::ApiResult;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    full_name TEXT,
    role TEXT NOT NULL DEFAULT 'user',
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    last_login TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    deleted_at TEXT,
    deletion_reason TEXT
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    user_id TEXT,
    timestamp TEXT NOT NULL,
    user_text TEXT NOT NULL,
    agent_text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_by_session ON captures(session_id, id);
CREATE INDEX IF NOT EXISTS captures_by_user ON captures(user_id);
CREATE VIRTUAL TABLE IF NOT EXISTS captures_fts USING fts5(
    user_text, agent_text, content='captures', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS captures_fts_insert AFTER INSERT ON captures BEGIN
    INSERT INTO captures_fts(rowid, user_text, agent_text)
    VALUES (new.id, new.user_text, new.agent_text);
END;
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    format TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    completed_at TEXT,
    data TEXT
);
"#;

/// Shared handle to the database.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Calls holding the connection (0 or 1), and calls waiting for it.
    use_counts: Arc<[AtomicU64; 2]>,
}

/// The database's connections as a pool: its size, in use, waiting (for `/metrics`).
pub(crate) struct PoolState {
    pub size: u64,
    pub in_use: u64,
    pub waiting: u64,
}

/// Counts one in a gauge until dropped (a panicking call included): a [`Db`] call in use
/// or waiting, a request in flight.
pub(crate) struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    pub fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Db {
    /// Opens (creating if needed) the file, or a fresh in-memory database.
    pub fn open(path: Option<&Path>) -> rusqlite::Result<Self> {
        let conn = match path {
            Some(p) => {
                let conn = Connection::open(p)?;
                // WAL lets a reader (e.g. `sqlite3` on the file) run beside the server.
                let _mode: String =
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            use_counts: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> ApiResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let counts = Arc::clone(&self.use_counts);
        tokio::task::spawn_blocking(move || {
            let waiting = Counted::new(&counts[1]);
            // A panic while holding the lock cannot leave SQLite inconsistent
            // (statements are atomic), so a poisoned lock is still usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let _in_use = Counted::new(&counts[0]);
            drop(waiting);
            f(&mut guard)
        })
        .await?
    }

    /// The connection's use now, as a pool's figures.
    pub fn pool(&self) -> PoolState {
        PoolState {
            size: 1,
            in_use: self.use_counts[0].load(Ordering::Relaxed),
            waiting: self.use_counts[1].load(Ordering::Relaxed),
        }
    }

    /// Same as [`Db::call`] but synchronous, for start-up.
    pub fn call_now<T>(&self, f: impl FnOnce(&mut Connection) -> ApiResult<T>) -> ApiResult<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

// ---------------------------------------------------------------- meta

pub(crate) fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

pub(crate) fn meta_set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

// ---------------------------------------------------------------- users

/// A user as stored.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub role: String,
    pub status: String,
    pub created_at: String,
    pub last_login: Option<String>,
    pub locked_until: Option<i64>,
}

impl UserRow {
    pub fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }

    /// The contract's user object (never the hash).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "full_name": self.full_name,
            "role": self.role,
            "status": self.status,
            "created_at": self.created_at,
            "last_login": self.last_login,
        })
    }
}

const USER_COLUMNS: &str =
    "id, email, password_hash, full_name, role, status, created_at, last_login, locked_until";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        full_name: r.get(3)?,
        role: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        last_login: r.get(7)?,
        locked_until: r.get(8)?,
    })
}

pub(crate) fn user_by_email(conn: &Connection, email: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
        [email],
        user_from_row,
    )
    .optional()
}

pub(crate) fn user_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        user_from_row,
    )
    .optional()
}

/// Inserts a user; `Ok(false)` when the address is taken (deleted accounts keep theirs).
pub(crate) fn insert_user(conn: &Connection, user: &UserRow) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO users (id, email, password_hash, full_name, role, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(email) DO NOTHING",
        params![
            user.id,
            user.email,
            user.password_hash,
            user.full_name,
            user.role,
            user.status,
            user.created_at
        ],
    )?;
    Ok(n == 1)
}

/// Counts a wrong password; locks the account (and restarts the count) at `max_attempts`.
pub(crate) fn record_failed_login(
    conn: &Connection,
    id: &str,
    max_attempts: i64,
    lock_until: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET
            locked_until = CASE WHEN failed_attempts + 1 >= ?2 THEN ?3 ELSE locked_until END,
            failed_attempts = CASE WHEN failed_attempts + 1 >= ?2 THEN 0 ELSE failed_attempts + 1 END
         WHERE id = ?1",
        params![id, max_attempts, lock_until],
    )?;
    Ok(())
}

pub(crate) fn record_successful_login(
    conn: &Connection,
    id: &str,
    now: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Applies a profile change; `Ok(false)` when the new address belongs to someone else.
pub(crate) fn update_profile(
    conn: &Connection,
    id: &str,
    full_name: Option<Option<String>>,
    email: Option<String>,
) -> rusqlite::Result<bool> {
    if let Some(email) = &email {
        let taken: Option<String> = conn
            .query_row(
                "SELECT id FROM users WHERE email = ?1 AND id <> ?2",
                params![email, id],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Ok(false);
        }
        conn.execute(
            "UPDATE users SET email = ?2 WHERE id = ?1",
            params![id, email],
        )?;
    }
    if let Some(full_name) = full_name {
        conn.execute(
            "UPDATE users SET full_name = ?2 WHERE id = ?1",
            params![id, full_name],
        )?;
    }
    Ok(true)
}

pub(crate) fn mark_deleted(
    conn: &Connection,
    id: &str,
    now: &str,
    reason: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET status = 'deleted', deleted_at = ?2, deletion_reason = ?3 WHERE id = ?1",
        params![id, now, reason],
    )?;
    Ok(())
}

// ---------------------------------------------------------------- tokens

pub(crate) fn revoke(conn: &Connection, jti: &str, expires_at: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO revoked_tokens(jti, expires_at) VALUES (?1, ?2) ON CONFLICT(jti) DO NOTHING",
        params![jti, expires_at],
    )?;
    Ok(())
}

pub(crate) fn is_revoked(conn: &Connection, jti: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM revoked_tokens WHERE jti = ?1", [jti], |_| {
        Ok(())
    })
    .optional()
    .map(|o| o.is_some())
}

/// Forgets revocations of tokens that have expired anyway.
pub(crate) fn purge_revoked(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?1", [now])
}

// ---------------------------------------------------------------- captures

/// One stored exchange.
#[derive(Debug, Clone)]
pub(crate) struct NewCapture {
    pub session_id: String,
    pub user_id: Option<String>,
    pub timestamp: String,
    pub user_text: String,
    pub agent_text: String,
    pub metadata: Value,
}

pub(crate) fn insert_capture(conn: &Connection, c: &NewCapture) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO captures (session_id, user_id, timestamp, user_text, agent_text, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            c.session_id,
            c.user_id,
            c.timestamp,
            c.user_text,
            c.agent_text,
            c.metadata.to_string()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn metadata_value(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The `limit` most recent exchanges of a session, oldest first.
pub(crate) fn session_history(
    conn: &Connection,
    session_id: &str,
    limit: i64,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, session_id, timestamp, user_text, agent_text, metadata FROM (
             SELECT * FROM captures WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2
         ) ORDER BY id ASC",
    )?;
    let rows = stmt.query_map(params![session_id, limit], |r| {
        // The session's own id is the request's: the history items do not repeat it.
        capture_json(r, &["metadata"], false)
    })?;
    rows.collect()
}

/// A capture row as the API shows it: `id, session_id, timestamp, user_text, agent_text`,
/// then the `extra` columns by name (`metadata` parsed as JSON); `session_id` is left out
/// unless `with_session`.
fn capture_json(
    r: &rusqlite::Row<'_>,
    extra: &[&str],
    with_session: bool,
) -> rusqlite::Result<Value> {
    let mut capture = serde_json::Map::new();
    capture.insert("id".into(), r.get::<_, i64>(0)?.into());
    if with_session {
        capture.insert("session_id".into(), r.get::<_, String>(1)?.into());
    }
    for (i, name) in ["timestamp", "user_text", "agent_text"].iter().enumerate() {
        capture.insert((*name).into(), r.get::<_, String>(i + 2)?.into());
    }
    for (i, name) in extra.iter().enumerate() {
        let value = match *name {
            "metadata" => metadata_value(r.get(i + 5)?),
            _ => r.get::<_, String>(i + 5)?.into(),
        };
        capture.insert((*name).into(), value);
    }
    Ok(Value::Object(capture))
}

/// Full-text search; `match_expr` must already be a safe FTS5 expression.
pub(crate) fn search(
    conn: &Connection,
    match_expr: &str,
    limit: i64,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.session_id, c.timestamp, c.user_text, c.agent_text,
                snippet(captures_fts, 0, '<mark>', '</mark>', '...', 12),
                snippet(captures_fts, 1, '<mark>', '</mark>', '...', 12)
         FROM captures_fts JOIN captures c ON c.id = captures_fts.rowid
         WHERE captures_fts MATCH ?1
         ORDER BY rank LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![match_expr, limit], |r| {
        capture_json(r, &["user_snippet", "agent_snippet"], true)
    })?;
    rows.collect()
}

/// `(total_captures, unique_sessions, last_capture)`.
pub(crate) fn capture_stats(conn: &Connection) -> rusqlite::Result<(i64, i64, Option<String>)> {
    conn.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT session_id), MAX(timestamp) FROM captures",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Every capture attributed to a user, oldest first.
pub(crate) fn user_captures(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, session_id, timestamp, user_text, agent_text, metadata
         FROM captures WHERE user_id = ?1 ORDER BY id ASC",
    )?;
    let rows = stmt.query_map([user_id], |r| capture_json(r, &["metadata"], true))?;
    rows.collect()
}

// ---------------------------------------------------------------- exports

/// A GDPR export as stored (without its data).
#[derive(Debug, Clone)]
pub(crate) struct ExportRow {
    pub id: String,
    pub user_id: String,
    pub format: String,
    pub options: Value,
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
}

fn export_from_row(r: &Row<'_>) -> rusqlite::Result<ExportRow> {
    Ok(ExportRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        format: r.get(2)?,
        options: metadata_value(r.get(3)?),
        status: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

const EXPORT_COLUMNS: &str = "id, user_id, format, options, status, created_at, expires_at";

pub(crate) fn insert_export(conn: &Connection, e: &ExportRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO exports (id, user_id, format, options, status, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.id,
            e.user_id,
            e.format,
            e.options.to_string(),
            e.status,
            e.created_at,
            e.expires_at
        ],
    )?;
    Ok(())
}

pub(crate) fn export_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<ExportRow>> {
    conn.query_row(
        &format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = ?1"),
        [id],
        export_from_row,
    )
    .optional()
}

pub(crate) fn export_data(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT data FROM exports WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

pub(crate) fn exports_processing(conn: &Connection) -> rusqlite::Result<Vec<ExportRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {EXPORT_COLUMNS} FROM exports WHERE status = 'processing'"
    ))?;
    let rows = stmt.query_map([], export_from_row)?;
    rows.collect()
}

pub(crate) fn finish_export(
    conn: &Connection,
    id: &str,
    status: &str,
    now: &str,
    data: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE exports SET status = ?2, completed_at = ?3, data = ?4 WHERE id = ?1",
        params![id, status, now, data],
    )?;
    Ok(())
}

/// The sessions a user took part in, in order of first use.
pub(crate) fn user_sessions(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT session_id FROM captures WHERE user_id = ?1 GROUP BY session_id ORDER BY MIN(id)",
    )?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_counts_a_call_in_use_while_it_runs() {
        let db = Db::open(None).expect("in-memory database");
        let inside = db.clone();
        let during = db
            .call(move |_| Ok(inside.pool().in_use))
            .await
            .expect("call");
        assert_eq!(during, 1);
        let after = db.pool();
        assert_eq!((after.size, after.in_use, after.waiting), (1, 0, 0));
    }
}
