//! The security probes against in-process reference servers with each deliberate flaw on in
//! turn, and against a server that accepts everything. The real binary's runs with probes are
//! in `tests/loadtest.rs`.

use lva_loadtest::probes::{self, ProbeReport, ProbeSettings, ProbeStatus, Severity};
use lva_loadtest::reference_server::{self, ServerConfig};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use url::Url;

/// The reference server as the built-in one runs, but fast: bcrypt cost 4, short exports,
/// the contract's rate limits on.
fn config() -> ServerConfig {
    ServerConfig {
        bcrypt_cost: 4,
        export_delay: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

async fn probe_url(url: &str) -> ProbeReport {
    let url = Url::parse(url).expect("url");
    probes::run(ProbeSettings::new(url)).await
}

/// [`config`] changed by `change` (a flaw switched on, say).
fn with(change: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut c = config();
    change(&mut c);
    c
}

async fn probe(config: ServerConfig) -> ProbeReport {
    let handle = reference_server::start(config)
        .await
        .expect("server starts");
    let report = probe_url(&handle.base_url()).await;
    handle.shutdown().await;
    report
}

/// The console section, for assertion messages.
fn shown(report: &ProbeReport) -> String {
    let mut out = Vec::new();
    lva_loadtest::report::probes::print_report(&mut out, report, false).expect("print");
    String::from_utf8(out).expect("utf8")
}

/// Probes with at least one finding, and the severities they found.
fn finders(report: &ProbeReport) -> BTreeSet<(String, Severity)> {
    report
        .findings()
        .map(|f| (f.probe.clone(), f.severity))
        .collect()
}

fn assert_all_passed(report: &ProbeReport) {
    assert_eq!(report.findings().count(), 0, "{}", shown(report));
    for p in &report.probes {
        assert_eq!(p.status, ProbeStatus::Passed, "{}", shown(report));
        assert!(p.requests > 0, "{}", shown(report));
    }
    assert_eq!(report.probes.len(), 7);
}

/// Only `probe` found something, and at `severity`.
fn assert_only(report: &ProbeReport, probe: &str, severity: Severity) {
    let found = finders(report);
    assert!(
        found.contains(&(probe.to_string(), severity)),
        "{probe} should report {severity:?}:\n{}",
        shown(report)
    );
    assert!(
        found.iter().all(|(p, _)| p == probe),
        "only {probe} should report:\n{}",
        shown(report)
    );
    for p in report.probes.iter().filter(|p| p.name != probe) {
        assert_eq!(p.status, ProbeStatus::Passed, "{}", shown(report));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_server_gets_no_finding_and_every_probe_passes() {
    let report = probe(config()).await;
    assert_all_passed(&report);
    let rate = report.outcome("rate-limit-bypass").expect("probe");
    assert!(
        rate.notes.iter().any(|n| n.contains("still limited (429)")),
        "{rate:?}"
    );
    let lock = report.outcome("lockout").expect("probe");
    assert!(
        lock.notes.iter().any(|n| n.contains("locked (423)")),
        "{lock:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readable_exports_are_reported_by_the_ownership_probe_alone() {
    let report = probe(with(|c| c.flaws.exports_readable = true)).await;
    assert_only(&report, "ownership", Severity::High);
    let paths: Vec<_> = report.findings().map(|f| f.request.path.clone()).collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/download")),
        "{}",
        shown(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_as_access_tokens_are_reported_by_the_token_types_probe_alone() {
    let report = probe(with(|c| c.flaws.refresh_as_access = true)).await;
    assert_only(&report, "token-types", Severity::High);
    // HTTP and both WebSocket handshakes.
    assert_eq!(report.findings().count(), 3, "{}", shown(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_forwarded_for_is_reported_by_the_rate_limit_probe_alone() {
    let report = probe(with(|c| c.flaws.trust_forwarded_for = true)).await;
    assert_only(&report, "rate-limit-bypass", Severity::High);
    let f = report.findings().next().expect("finding");
    assert!(
        f.request.summary.contains("X-Forwarded-For: 203.0.113."),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rate_limit_is_reported_as_medium_by_the_rate_limit_probe_alone() {
    let report = probe(with(|c| c.flaws.no_rate_limit = true)).await;
    assert_only(&report, "rate-limit-bypass", Severity::Medium);
    assert!(!report.has_high(), "{}", shown(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lockout_is_reported_by_the_lockout_probe_alone() {
    let report = probe(with(|c| c.lockout = Duration::ZERO)).await;
    assert_only(&report, "lockout", Severity::Medium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_the_probe_outputs() {
    let mut c = config();
    c.flaws = reference_server::Flaws {
        exports_readable: true,
        refresh_as_access: true,
        trust_forwarded_for: false,
        no_rate_limit: true,
        ws_deleted_accepted: false,
    };
    let report = probe(c).await;
    assert!(report.findings().count() >= 4, "{}", shown(&report));
    // Passwords of every account, the wrong password, and tokens of every login.
    assert!(report.secrets.len() >= 10, "{:?}", report.secrets);
    let (probes_json, findings_json) = report.json_parts();
    let texts = [
        shown(&report),
        lva_loadtest::report::probes::findings_markdown(&report, "test", false),
        probes_json.to_string(),
        findings_json.to_string(),
    ];
    for text in &texts {
        assert!(!report.secrets.appears_in(text), "a secret in:\n{text}");
        assert!(!text.contains("eyJ"), "a token in:\n{text}");
        assert!(!text.contains("Pr0be-"), "a password in:\n{text}");
    }
    assert!(texts[0].contains("[REDACTED]"), "{}", texts[0]);
}

/// A server that accepts everything: every login, any token, any export, any input.
async fn permissive_server() -> String {
    use axum::Json;
    use axum::extract::ws::WebSocketUpgrade;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    let tokens = || async {
        Json(json!({
            "access_token": "permissive-access-token",
            "refresh_token": "permissive-refresh-token",
            "token_type": "bearer",
            "expires_in": 900,
        }))
    };
    let export =
        || async { Json(json!({"export_id": "e1", "status": "completed", "download_url": "/x"})) };
    let app = axum::Router::new()
        .route("/api/auth/login/json", post(tokens))
        .route("/api/auth/refresh", post(tokens))
        .route("/api/gdpr/export", post(export))
        .route("/api/gdpr/export/{id}", get(export))
        .route(
            "/api/search",
            post(|body: String| async move {
                // A quote in the query breaks this server's search.
                if body.contains("\\\"") {
                    (StatusCode::INTERNAL_SERVER_ERROR, "search failed")
                } else {
                    (StatusCode::OK, "{\"results\": []}")
                }
            }),
        )
        .route(
            "/ws/{id}",
            get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(|_socket| async {}) }),
        )
        .fallback(|| async { Json(json!({"id": "u1", "status": "ok"})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_everything_gets_a_finding_from_every_probe() {
    let url = permissive_server().await;
    let report = probe_url(&url).await;
    for p in &report.probes {
        assert_eq!(p.status, ProbeStatus::Findings, "{}", shown(&report));
    }
    let found = finders(&report);
    for (probe, severity) in [
        ("ownership", Severity::High),
        ("token-types", Severity::High),
        ("revocation", Severity::High),
        ("deletion", Severity::High),
        ("rate-limit-bypass", Severity::Medium),
        ("hostile-input", Severity::Medium),
        ("hostile-input", Severity::Low),
        ("lockout", Severity::High),
    ] {
        assert!(
            found.contains(&(probe.to_string(), severity)),
            "{probe} {severity:?} missing:\n{}",
            shown(&report)
        );
    }
    assert!(
        report
            .findings()
            .any(|f| f.probe == "hostile-input" && f.answer.status == Some(500)),
        "{}",
        shown(&report)
    );
    let text = shown(&report);
    assert!(!text.contains("permissive-access-token"), "{text}");
    assert!(!text.contains("permissive-refresh-token"), "{text}");
}
