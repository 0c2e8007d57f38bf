//! Options of the reference server: the clap arguments and the validated configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ServerError;

/// Every option of `lva-target`; can be flattened into another clap parser.
///
/// Numbers are parsed as signed values so that a negative number reaches
/// [`ServerArgs::into_config`], which names the option and its valid range.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address and port to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8000")]
    pub bind: String,

    /// SQLite database file; data survives restarts. Default: in memory.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// HS256 signing secret (at least 16 characters). Default: kept in the
    /// database file when --db is given (so tokens survive a restart), else
    /// random for each process.
    #[arg(
        long,
        value_name = "SECRET",
        env = "LVA_TARGET_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// bcrypt cost factor (4..=31); 12 is production-like, 4 is fast for tests.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 12,
        allow_negative_numbers = true
    )]
    pub bcrypt_cost: i64,

    /// Lifetime of access tokens in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 900,
        allow_negative_numbers = true
    )]
    pub access_token_ttl: i64,

    /// Lifetime of refresh tokens in seconds (default 7 days).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 604_800,
        allow_negative_numbers = true
    )]
    pub refresh_token_ttl: i64,

    /// How long a GDPR export stays `processing` before it is `completed`.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 2000,
        allow_negative_numbers = true
    )]
    pub export_delay_ms: i64,

    /// How long an account stays locked after 5 wrong passwords (0 disables lockout).
    #[arg(
        long,
        value_name = "MINUTES",
        default_value_t = 15,
        allow_negative_numbers = true
    )]
    pub lockout_minutes: i64,

    /// Turn rate limiting off.
    #[arg(long)]
    pub no_rate_limit: bool,

    /// Length of the fixed rate-limit windows in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        allow_negative_numbers = true
    )]
    pub rate_limit_window_secs: i64,

    /// Requests per window and client to /api/auth/*.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        allow_negative_numbers = true
    )]
    pub rate_limit_auth: i64,

    /// Requests per window and client to other /api/* paths and /.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    pub rate_limit_api: i64,

    /// Requests per window and client to /health*.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub rate_limit_health: i64,

    /// Plain (non-handshake) HTTP requests per window and client to /ws/*.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        allow_negative_numbers = true
    )]
    pub rate_limit_websocket: i64,

    /// Take the client from the first X-Forwarded-For entry (only safe behind a trusted proxy).
    #[arg(long)]
    pub trust_forwarded_for: bool,

    /// Comma-separated Origins allowed at the WebSocket handshake. Requests
    /// without an Origin header are always allowed. Default: any Origin.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,

    /// Fault: fixed latency added to every request, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub fault_latency_ms: i64,

    /// Fault: extra latency drawn uniformly from 0..=MS for every request.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub fault_jitter_ms: i64,

    /// Fault: share (0..1) of /api/* requests answered 500 `Injected fault`.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub fault_error_rate: f64,

    /// Fault: a known capacity. Every /api/* request holds one of N slots for
    /// --fault-slot-ms (waiting for a free one), so the server serves at most
    /// N x 1000 / MS requests a second and queues the rest: a knee known in advance.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub fault_slots: i64,

    /// With --fault-slots: how long each /api/* request holds its slot, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub fault_slot_ms: i64,

    /// Fault: the server stalls for MS milliseconds at the start of every
    /// --fault-stall-period-ms (a request arriving in a stall waits for its end).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub fault_stall_ms: i64,

    /// With --fault-stall-ms: how often the stall comes back, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 5000,
        allow_negative_numbers = true
    )]
    pub fault_stall_period_ms: i64,

    /// Fault: bytes retained for every request and never freed (a deliberate leak).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub fault_leak_bytes: i64,

    /// Flaw: GDPR exports can be read and downloaded by any signed-in user.
    #[arg(long)]
    pub flaw_exports_readable: bool,

    /// Flaw: refresh tokens are accepted as Bearer access tokens (HTTP and WebSocket).
    #[arg(long)]
    pub flaw_refresh_as_access: bool,

    /// Flaw: X-Forwarded-For is trusted (same effect as --trust-forwarded-for).
    #[arg(long)]
    pub flaw_trust_forwarded_for: bool,

    /// Flaw: rate limiting is off (same effect as --no-rate-limit).
    #[arg(long)]
    pub flaw_no_rate_limit: bool,

    /// Flaw: a deleted account's access token still opens a WebSocket session.
    #[arg(long)]
    pub flaw_ws_deleted_accepted: bool,

    /// Turn on every --flaw-* option.
    #[arg(long)]
    pub flaws_all: bool,

    /// Like many ASGI and WSGI servers: close the keep-alive connection after any 5xx
    /// answer, without announcing it, so the client's next request on it fails.
    #[arg(long)]
    pub close_after_5xx: bool,

    /// Like a deployment that hands the query to the full-text engine unquoted: search
    /// syntax characters answer 500 `text/plain`.
    #[arg(long)]
    pub search_syntax_errors: bool,

    /// Like a deployment whose export download ignores the id in its path: it answers
    /// with the caller's own data, whatever the id.
    #[arg(long)]
    pub download_own_data: bool,

    /// Like a deployment that reads the deletion's confirmation as a truth value: any
    /// `confirm` but false, 0, "" or a missing one (the string "yes", say) deletes the
    /// account.
    #[arg(long)]
    pub lax_delete_confirm: bool,

    /// Serve HTTPS and WSS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE.pem", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE.pem", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Shut down when the process that started this one ends (the load tool's built-in
    /// server, which must never outlive it).
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,

    /// Remove the --db file (and its journal) when shutting down: a temporary database.
    #[arg(long, hide = true, requires = "db")]
    pub temporary_db: bool,
}

/// The certificate and key the server serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Rate-limit settings: one limit per category, all sharing one window length.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub window: Duration,
    pub auth: u32,
    pub api: u32,
    pub health: u32,
    pub websocket: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(60),
            auth: 10,
            api: 100,
            health: 1000,
            websocket: 30,
        }
    }
}

/// Injected faults; all off by default.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    pub latency: Duration,
    pub jitter: Duration,
    /// Share of /api/* requests answered 500, in 0..=1.
    pub error_rate: f64,
    /// Bytes retained (never freed) per request.
    pub leak_bytes: usize,
    /// `--fault-slots`: at most this many /api/* requests are served at once, each for
    /// `slot_time` (0: off).
    pub slots: u32,
    pub slot_time: Duration,
    /// `--fault-stall-ms`: a stall of this long at the start of every `stall_period`.
    pub stall: Duration,
    pub stall_period: Duration,
}

/// Deliberate security flaws, for checking that the load tester reports them.
#[derive(Debug, Clone, Default)]
pub struct Flaws {
    pub exports_readable: bool,
    pub refresh_as_access: bool,
    pub trust_forwarded_for: bool,
    pub no_rate_limit: bool,
    pub ws_deleted_accepted: bool,
}

/// How real deployments of the API behave beyond the contract (lva-api.md, its last
/// section); all off by default. Not flaws of the API: the load tester must judge them
/// correctly, so the reference server can behave like them.
#[derive(Debug, Clone, Default)]
pub struct Quirks {
    /// Close the connection after a 5xx answer, unannounced.
    pub close_after_5xx: bool,
    /// Search queries reach FTS5 unquoted: syntax errors answer 500 `text/plain`.
    pub search_syntax_errors: bool,
    /// An export download answers with the caller's own data, whatever the id.
    pub download_own_data: bool,
    /// A deletion accepts any truthy `confirm`, not only `true`.
    pub lax_delete_confirm: bool,
}

/// The validated configuration of one server instance.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// SQLite file; `None` keeps everything in memory.
    pub db: Option<PathBuf>,
    /// Signing secret; `None` picks one as described on `--jwt-secret`.
    pub jwt_secret: Option<String>,
    pub bcrypt_cost: u32,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub export_delay: Duration,
    /// Lockout duration after 5 wrong passwords; zero disables lockout.
    pub lockout: Duration,
    pub rate_limit: RateLimitConfig,
    pub trust_forwarded_for: bool,
    /// `None`: any Origin may open a WebSocket.
    pub allowed_origins: Option<Vec<String>>,
    pub faults: FaultConfig,
    pub flaws: Flaws,
    /// Serve HTTPS and WSS instead of HTTP and WS.
    pub tls: Option<TlsFiles>,
    pub quirks: Quirks,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: None,
            jwt_secret: None,
            bcrypt_cost: 12,
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            export_delay: Duration::from_millis(2000),
            lockout: Duration::from_secs(15 * 60),
            rate_limit: RateLimitConfig::default(),
            trust_forwarded_for: false,
            allowed_origins: None,
            faults: FaultConfig::default(),
            flaws: Flaws::default(),
            tls: None,
            quirks: Quirks::default(),
        }
    }
}

impl ServerConfig {
    /// True when the client is taken from X-Forwarded-For (option or flaw).
    pub fn trusts_forwarded_for(&self) -> bool {
        self.trust_forwarded_for || self.flaws.trust_forwarded_for
    }

    /// True when requests are rate limited (neither the option nor the flaw turned it off).
    pub fn rate_limiting(&self) -> bool {
        self.rate_limit.enabled && !self.flaws.no_rate_limit
    }
}

/// Checks `value` is within `lo..=hi`, else a message naming the option and the range.
fn ranged(option: &str, value: i64, lo: i64, hi: i64) -> Result<i64, ServerError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(ServerError::Config(format!(
            "invalid value {value} for --{option}: must be between {lo} and {hi}"
        )))
    }
}

/// Like [`ranged`], converted to an unsigned type that always holds the range.
fn ranged_u64(option: &str, value: i64, lo: i64, hi: i64) -> Result<u64, ServerError> {
    let v = ranged(option, value, lo, hi)?;
    u64::try_from(v).map_err(|_| ServerError::Config(format!("invalid value for --{option}")))
}

fn ranged_u32(option: &str, value: i64, lo: i64, hi: i64) -> Result<u32, ServerError> {
    let v = ranged(option, value, lo, hi)?;
    u32::try_from(v).map_err(|_| ServerError::Config(format!("invalid value for --{option}")))
}

impl ServerArgs {
    /// Validates every option and builds the configuration.
    pub fn into_config(self) -> Result<ServerConfig, ServerError> {
        let bind: SocketAddr = self.bind.trim().parse().map_err(|_| {
            ServerError::Config(format!(
                "invalid value '{}' for --bind: expected IP:PORT, e.g. 127.0.0.1:8000",
                self.bind
            ))
        })?;
        if let Some(secret) = &self.jwt_secret
            && secret.chars().count() < 16
        {
            return Err(ServerError::Config(
                "invalid value for --jwt-secret: must be at least 16 characters".into(),
            ));
        }
        if let Some(db) = &self.db
            && db.as_os_str().is_empty()
        {
            return Err(ServerError::Config(
                "invalid value for --db: the file name is empty".into(),
            ));
        }
        const DAY: i64 = 24 * 3600;
        let bcrypt_cost = ranged_u32("bcrypt-cost", self.bcrypt_cost, 4, 31)?;
        let access = ranged_u64("access-token-ttl", self.access_token_ttl, 1, 365 * DAY)?;
        let refresh = ranged_u64("refresh-token-ttl", self.refresh_token_ttl, 1, 3650 * DAY)?;
        let export_delay = ranged_u64("export-delay-ms", self.export_delay_ms, 0, 3_600_000)?;
        let lockout = ranged_u64("lockout-minutes", self.lockout_minutes, 0, 7 * 24 * 60)?;
        let window = ranged_u64(
            "rate-limit-window-secs",
            self.rate_limit_window_secs,
            1,
            DAY,
        )?;
        let max_limit = 10_000_000;
        let rate_limit = RateLimitConfig {
            enabled: !self.no_rate_limit,
            window: Duration::from_secs(window),
            auth: ranged_u32("rate-limit-auth", self.rate_limit_auth, 1, max_limit)?,
            api: ranged_u32("rate-limit-api", self.rate_limit_api, 1, max_limit)?,
            health: ranged_u32("rate-limit-health", self.rate_limit_health, 1, max_limit)?,
            websocket: ranged_u32(
                "rate-limit-websocket",
                self.rate_limit_websocket,
                1,
                max_limit,
            )?,
        };
        let latency = ranged_u64("fault-latency-ms", self.fault_latency_ms, 0, 600_000)?;
        let jitter = ranged_u64("fault-jitter-ms", self.fault_jitter_ms, 0, 600_000)?;
        if !(0.0..=1.0).contains(&self.fault_error_rate) {
            return Err(ServerError::Config(format!(
                "invalid value {} for --fault-error-rate: must be a share between 0 and 1",
                self.fault_error_rate
            )));
        }
        let slots = ranged_u32("fault-slots", self.fault_slots, 0, 100_000)?;
        let slot_ms = ranged_u64("fault-slot-ms", self.fault_slot_ms, 1, 600_000)?;
        let stall_ms = ranged_u64("fault-stall-ms", self.fault_stall_ms, 0, 600_000)?;
        let period_ms = ranged_u64(
            "fault-stall-period-ms",
            self.fault_stall_period_ms,
            1,
            3_600_000,
        )?;
        if stall_ms >= period_ms && stall_ms > 0 {
            return Err(ServerError::Config(format!(
                "--fault-stall-ms {stall_ms} must be shorter than --fault-stall-period-ms \
                 {period_ms} (the server would never answer)"
            )));
        }
        let leak = ranged_u64("fault-leak-bytes", self.fault_leak_bytes, 0, 64 << 20)?;
        let leak_bytes = usize::try_from(leak)
            .map_err(|_| ServerError::Config("invalid value for --fault-leak-bytes".into()))?;
        let allowed_origins = self.allowed_origins.map(|list| {
            list.iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
        });
        Ok(ServerConfig {
            bind,
            db: self.db,
            jwt_secret: self.jwt_secret,
            bcrypt_cost,
            access_token_ttl: Duration::from_secs(access),
            refresh_token_ttl: Duration::from_secs(refresh),
            export_delay: Duration::from_millis(export_delay),
            lockout: Duration::from_secs(lockout * 60),
            rate_limit,
            trust_forwarded_for: self.trust_forwarded_for,
            allowed_origins,
            faults: FaultConfig {
                latency: Duration::from_millis(latency),
                jitter: Duration::from_millis(jitter),
                error_rate: self.fault_error_rate,
                leak_bytes,
                slots,
                slot_time: Duration::from_millis(slot_ms),
                stall: Duration::from_millis(stall_ms),
                stall_period: Duration::from_millis(period_ms),
            },
            flaws: Flaws {
                exports_readable: self.flaw_exports_readable || self.flaws_all,
                refresh_as_access: self.flaw_refresh_as_access || self.flaws_all,
                trust_forwarded_for: self.flaw_trust_forwarded_for || self.flaws_all,
                no_rate_limit: self.flaw_no_rate_limit || self.flaws_all,
                ws_deleted_accepted: self.flaw_ws_deleted_accepted || self.flaws_all,
            },
            quirks: Quirks {
                close_after_5xx: self.close_after_5xx,
                search_syntax_errors: self.search_syntax_errors,
                download_own_data: self.download_own_data,
                lax_delete_confirm: self.lax_delete_confirm,
            },
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
        })
    }
}
