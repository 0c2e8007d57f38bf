//! The reference Learning Voice Agent server: the `lva-target` program, which the load tool
//! starts as its built-in server when it is given no `--host`.
//!
//! It implements the LVA API contract (the shared `lva-api.md`) with SQLite
//! storage, per-client rate limiting, Prometheus metrics and optional fault
//! injection. Start it inside a process with [`start`] (tests) or as a program
//! with [`run`], whose [`ServerExit`] is the program's exit code.
//!
//! Layers, outermost first: request counting, JSON error bodies, the rate
//! limiter, fault injection, then routing; so the limiter sees every request
//! before validation and routing, and /metrics counts 429s too.
//!
//! Choices where the contract leaves room:
//! - refresh keeps the same refresh token (no rotation);
//! - the 5th wrong password still answers 401, later attempts 423 until the
//!   lockout ends; `--lockout-minutes 0` disables lockout;
//! - an export download answers 409 while `processing` (or `failed`), 410
//!   once expired (7 days), 404 for another user's export;
//! - `/api/conversation` is open; a valid Bearer token attributes the exchange
//!   to its user (for the export), an invalid one is ignored;
//! - session history returns the `limit` most recent exchanges, oldest first;
//! - WebSocket close codes: 1000 after `end`, 1007 for malformed JSON, 1003 for
//!   binary frames, 1001 at shutdown; a plain HTTP request to /ws/* gets 426;
//! - without `--jwt-secret`, the signing secret is random per process, or kept
//!   in the database file when `--db` is given so tokens survive a restart.

/// Writes a line to stderr; a closed stderr is not a reason to fail.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod auth;
mod config;
mod connections;
mod conversation;
mod error;
mod extract;
mod faults;
mod gdpr;
mod input;
mod metrics;
mod rate_limit;
mod storage;
mod tls;
mod users;
mod ws;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::serve::ListenerExt;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{OnceCell, Semaphore, watch};
use tokio::task::JoinHandle;

pub use config::{FaultConfig, Flaws, Quirks, RateLimitConfig, ServerArgs, ServerConfig};
pub use error::ServerError;

use auth::Jwt;
use connections::{Accepting, OpenConnections};
use conversation::ActiveSessions;
use error::ApiError;
use faults::Faults;
use metrics::Metrics;
use rate_limit::RateLimiter;
use storage::Db;

/// Everything the handlers share.
pub(crate) struct AppState {
    pub config: ServerConfig,
    pub db: Db,
    pub jwt: Jwt,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub faults: Faults,
    pub sessions: ActiveSessions,
    /// Turns `true` once shutdown starts (WebSockets and jobs watch it).
    pub shutdown: watch::Receiver<bool>,
    /// One bcrypt computation per core at a time.
    pub hashing: Semaphore,
    pub dummy_hash: OnceCell<String>,
}

pub(crate) type Shared = Arc<AppState>;

/// Current time as ISO-8601 UTC with milliseconds.
pub(crate) fn now_iso() -> String {
    iso(Utc::now())
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn now_epoch() -> i64 {
    Utc::now().timestamp()
}

/// A running server; dropping it without [`ServerHandle::shutdown`] also stops it,
/// but without waiting.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    state: Shared,
}

impl ServerHandle {
    /// The bound address (with the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (`https://` with TLS); an unspecified bind address (0.0.0.0, ::) is
    /// given as loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let scheme = if self.state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    }

    /// WebSocket sessions open now.
    pub fn open_websockets(&self) -> usize {
        self.state.metrics.ws_open()
    }

    /// Stops accepting, lets running requests finish, closes open WebSockets
    /// with 1001 and waits (up to 5 s) for them to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Err(e)) => errln!("lva-target: server error: {e}"),
                Err(e) => errln!("lva-target: server task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.open_websockets() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The signing secret: the option if given; else one kept in the database
/// file (so tokens survive a restart); else random for this process.
fn signing_secret(config: &ServerConfig, db: &Db) -> Result<Vec<u8>, ServerError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let fresh = || {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    if config.db.is_none() {
        return Ok(fresh().into_bytes());
    }
    let secret = db
        .call_now(|conn| {
            if let Some(s) = storage::meta_get(conn, "jwt_secret")? {
                return Ok(s);
            }
            let s = fresh();
            storage::meta_set(conn, "jwt_secret", &s)?;
            Ok(s)
        })
        .map_err(|e| match e {
            ApiError::Internal(m) => {
                ServerError::Config(format!("cannot read the signing secret: {m}"))
            }
            other => ServerError::Config(format!("cannot read the signing secret: {other:?}")),
        })?;
    Ok(secret.into_bytes())
}

fn router(state: Shared, closing: Option<Arc<OpenConnections>>) -> Router {
    let router = Router::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(gdpr::routes())
        .merge(conversation::routes())
        .merge(ws::routes())
        .merge(metrics::routes())
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), faults::inject))
        .layer(from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(from_fn(extract::json_errors))
        .layer(from_fn_with_state(state.clone(), metrics::count))
        .with_state(state);
    match closing {
        Some(open) => router.layer(from_fn_with_state(open, connections::close_after_5xx)),
        None => router,
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

/// Periodic housekeeping: ended rate-limit windows, idle sessions, expired revocations.
fn spawn_sweeper(state: Shared) {
    let period = state
        .config
        .rate_limit
        .window
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            state.limiter.sweep();
            state.sessions.sweep();
            let now = now_epoch();
            let _ = state
                .db
                .call(move |conn| Ok(storage::purge_revoked(conn, now)?))
                .await;
        }
    });
}

/// Restarts the jobs of exports left `processing` by a previous run.
fn resume_exports(state: &Shared) -> Result<(), ServerError> {
    let pending = state
        .db
        .call_now(|conn| Ok(storage::exports_processing(conn)?))
        .map_err(|e| ServerError::Config(format!("cannot read pending exports: {e:?}")))?;
    let delay = state.config.export_delay;
    for export in pending {
        let age = DateTime::parse_from_rfc3339(&export.created_at)
            .ok()
            .and_then(|t| (Utc::now() - t.with_timezone(&Utc)).to_std().ok())
            .unwrap_or(Duration::ZERO);
        gdpr::spawn_export_job(Arc::clone(state), export, delay.saturating_sub(age));
    }
    Ok(())
}

/// Binds, spawns the serving task and returns at once.
pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let path = config.db.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(path.as_deref())).await??;
    let secret = signing_secret(&config, &db)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        jwt: Jwt::new(&secret, config.access_token_ttl, config.refresh_token_ttl),
        limiter: RateLimiter::new(config.rate_limit.clone()),
        metrics: Metrics::default(),
        faults: Faults::new(&config.faults),
        sessions: ActiveSessions::default(),
        shutdown: stopped.clone(),
        hashing: Semaphore::new(cores),
        dummy_hash: OnceCell::new(),
        db,
        config,
    });
    resume_exports(&state)?;
    spawn_sweeper(Arc::clone(&state));

    let closing = state
        .config
        .quirks
        .close_after_5xx
        .then(|| Arc::new(OpenConnections::default()));
    let listener = Accepting::new(listener, closing.clone());
    let app =
        router(Arc::clone(&state), closing).into_make_service_with_connect_info::<SocketAddr>();
    let mut signal = stopped;
    let shutdown = async move {
        let _ = signal.wait_for(|s| *s).await;
    };
    // No Nagle delay: a reply and the close frame that follows it leave at once.
    let listener = listener.tap_io(|connection| {
        let _ = connection.set_nodelay(true);
    });
    let task = match &state.config.tls {
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }),
        Some(files) => {
            let listener = tls::TlsListener::new(listener, tls::server_config(files)?)?;
            tokio::spawn(async move {
                axum::serve(listener.tap_io(|_| {}), app)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
    };
    Ok(ServerHandle {
        addr,
        stop,
        task: Some(task),
        state,
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// How the server program ends: its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerExit {
    /// Stopped as asked (SIGINT, SIGTERM, or its parent gone): 0.
    Stopped,
    /// Serving failed after it started (the database, the accept loop, stdout): 1.
    Failed,
    /// A bad option, or an address it cannot bind: 2, before it serves anything.
    Config,
}

impl ServerExit {
    pub fn code(self) -> u8 {
        match self {
            ServerExit::Stopped => 0,
            ServerExit::Failed => 1,
            ServerExit::Config => 2,
        }
    }

    fn of(error: &ServerError) -> ServerExit {
        match error {
            ServerError::Config(_) | ServerError::Bind { .. } => ServerExit::Config,
            _ => ServerExit::Failed,
        }
    }
}

impl From<ServerExit> for std::process::ExitCode {
    fn from(exit: ServerExit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The server as a program (`lva-target`, and the load tool's built-in server), on a
/// runtime of its own: checks the options, serves until SIGINT or SIGTERM (or, for the
/// built-in server, until the tool that started it is gone).
pub fn run(args: ServerArgs) -> ServerExit {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(main(args)),
        Err(e) => {
            errln!("lva-target: cannot start the async runtime: {e}");
            ServerExit::Failed
        }
    }
}

/// [`run`] on the caller's runtime.
pub async fn main(args: ServerArgs) -> ServerExit {
    let temporary_db = args.db.clone().filter(|_| args.temporary_db);
    let exit_with_parent = args.exit_with_parent;
    let result = match args.into_config() {
        Ok(config) => serve_until(config, stop_requested(exit_with_parent)).await,
        Err(e) => Err(e),
    };
    if let Some(db) = temporary_db {
        remove_database(&db);
    }
    match result {
        Ok(()) => ServerExit::Stopped,
        Err(e) => {
            errln!("lva-target: {e}");
            ServerExit::of(&e)
        }
    }
}

/// The e-mail addresses of the accounts kept in the database file `db` that start with
/// `prefix` (an operator looking for a run's accounts: `lt-{run_id}-`), in no set order.
pub fn account_emails(db: &std::path::Path, prefix: &str) -> Result<Vec<String>, String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| format!("{}: {e}", db.display()))?;
    let mut query = conn
        .prepare("SELECT email FROM users WHERE substr(email, 1, length(?1)) = ?1")
        .map_err(|e| e.to_string())?;
    query
        .query_map([prefix], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())
}

/// Removes an SQLite database file and its journal files.
pub fn remove_database(db: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

/// Resolves on SIGINT or SIGTERM, or when the parent process is gone (`watch_parent`):
/// its children are then adopted by another process.
async fn stop_requested(watch_parent: bool) -> std::io::Result<()> {
    let parent = std::os::unix::process::parent_id();
    let parent_gone = async move {
        if !watch_parent {
            return std::future::pending().await;
        }
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        result = wait_for_signal() => result,
        () = parent_gone => Ok(()),
    }
}

/// Runs the server as a program: prints `lva-target listening on URL` as the
/// first line of stdout, serves until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn serve_until_signal(config: ServerConfig) -> Result<(), ServerError> {
    serve_until(config, wait_for_signal()).await
}

/// Like [`serve_until_signal`], until `stop` resolves.
async fn serve_until(
    config: ServerConfig,
    stop: impl Future<Output = std::io::Result<()>>,
) -> Result<(), ServerError> {
    let handle = start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "lva-target listening on {}", handle.base_url())?;
        out.flush()?;
    }
    let waited = stop.await;
    handle.shutdown().await;
    waited?;
    Ok(())
}
