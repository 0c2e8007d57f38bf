//! The security probes against in-process reference servers with each deliberate flaw on in
//! turn, behaving like real deployments (connections closed after a 5xx, search syntax
//! errors, downloads that ignore the id), against a server that accepts everything, and
//! against a plain file server. The real binary's runs with probes are in
//! `tests/loadtest.rs`.

use lva_loadtest::probes::{self, ProbeReport, ProbeSettings, ProbeStatus, Severity};
use lva_target::ServerConfig;
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
    let handle = lva_target::start(config).await.expect("server starts");
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

/// One of `probe`'s notes says `text`.
fn assert_noted(report: &ProbeReport, probe: &str, text: &str) {
    let notes = &report.outcome(probe).expect("probe").notes;
    assert!(
        notes.iter().any(|n| n.contains(text)),
        "{probe} does not note {text:?}: {notes:?}"
    );
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
async fn a_websocket_open_to_deleted_accounts_is_reported_by_the_deletion_probe_alone() {
    let report = probe(with(|c| c.flaws.ws_deleted_accepted = true)).await;
    assert_only(&report, "deletion", Severity::High);
    let f = report.findings().next().expect("finding");
    assert_eq!(f.answer.status, Some(101), "{}", shown(&report));
    assert!(f.request.path.starts_with("/ws/"), "{f:?}");
    assert_eq!(report.findings().count(), 1, "{}", shown(&report));
}

/// Like a real ASGI deployment: the connection closed after each 5xx, search syntax that
/// crashes the full-text engine, and downloads that ignore the id.
fn like_a_real_deployment(c: &mut ServerConfig) {
    c.quirks = lva_target::Quirks {
        close_after_5xx: true,
        search_syntax_errors: true,
        download_own_data: true,
        ..lva_target::Quirks::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deployment_gets_one_search_finding_listing_each_query_that_showed_it() {
    let report = probe(with(like_a_real_deployment)).await;
    let text = shown(&report);
    // One cause, one finding: the search's server error, with every query that showed it.
    let findings: Vec<_> = report.findings().collect();
    assert_eq!(findings.len(), 1, "{text}");
    let f = findings[0];
    assert_eq!(
        (f.probe.as_str(), f.severity, f.endpoint.as_str()),
        ("hostile-input", Severity::Medium, "POST /api/search"),
        "{text}"
    );
    assert!(f.meaning.contains("server error (500)"), "{text}");
    assert!(f.inputs.len() >= 5, "{text}");
    for input in &f.inputs {
        assert!(input.starts_with("the search query \""), "{input}\n{text}");
        assert!(!input.contains("POST /api/search"), "{input}");
    }
    // The first query's request and answer: never a dropped connection blamed on the
    // request that met it.
    assert_eq!(f.request.path, "/api/search", "{text}");
    assert!(f.request.summary.contains("\"query\""), "{text}");
    assert_eq!(f.answer.status, Some(500), "{text}");
    assert!(f.answer.body.contains("Internal Server Error"), "{text}");
    // The console lists the inputs under the one finding.
    assert!(
        text.contains(&format!("inputs ({}):", f.inputs.len())),
        "{text}"
    );
    // A query that is plain words is no finding, nor one that FTS5 reads as valid syntax.
    assert!(!text.contains("NEAR(machine"), "{text}");
    // The connections the server closed were met, and each request sent again.
    assert_noted(&report, "hostile-input", "sent again on a fresh connection");
    // The download that ignores the id gives the caller its own data: no finding.
    assert_noted(
        &report,
        "ownership",
        "the id is ignored; the caller gets its own data",
    );
    for p in report.probes.iter().filter(|p| p.name != "hostile-input") {
        assert_eq!(p.status, ProbeStatus::Passed, "{text}");
    }
}

/// A deletion accepted with `{"confirm": "yes"}` deletes the probe account: sending it again
/// can only be refused (the token is gone), so the flaw is judged by its effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_accepting_a_wrong_confirmation_is_judged_by_its_effect() {
    let report = probe(with(|c| c.quirks.lax_delete_confirm = true)).await;
    let text = shown(&report);
    assert_only(&report, "hostile-input", Severity::Medium);
    let findings: Vec<_> = report.findings().collect();
    assert_eq!(findings.len(), 1, "{text}");
    let f = findings[0];
    assert_eq!(f.endpoint, "POST /api/gdpr/delete", "{text}");
    assert!(
        f.request.summary.contains("{\"confirm\":\"yes\"}"),
        "{text}"
    );
    // The first answer, the one that showed the flaw.
    assert_eq!(f.answer.status, Some(200), "{text}");
    assert!(f.meaning.contains("the account is gone"), "{text}");
    assert_noted(
        &report,
        "hostile-input",
        "not checked, the probe account is gone",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_file_server_is_not_tested_and_gets_no_finding() {
    let files = crate::support::FileServer::start();
    let report = probe_url(&files.url).await;
    let text = shown(&report);
    assert_eq!(report.findings().count(), 0, "{text}");
    assert_eq!(report.probes.len(), 7);
    for p in &report.probes {
        assert_eq!(p.status, ProbeStatus::NotTested, "{text}");
        let why = p
            .notes
            .iter()
            .find(|n| n.starts_with("not tested:"))
            .unwrap_or_else(|| panic!("no reason for {}:\n{text}", p.name));
        assert!(
            why.contains("answered 501") && why.contains("the API this probe needs is not there"),
            "{why}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_host_is_probed_from_its_own_family() {
    let mut c = config();
    c.bind = "[::1]:0".parse().expect("addr");
    c.rate_limit.enabled = false;
    let report = probe(c).await;
    let text = shown(&report);
    assert_eq!(report.findings().count(), 0, "{text}");
    for p in &report.probes {
        // Without sources of their own, the rate-limit probe stays out of the users' budget.
        let want = if p.name == "rate-limit-bypass" {
            ProbeStatus::NotTested
        } else {
            ProbeStatus::Passed
        };
        assert_eq!(p.status, want, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_the_probe_outputs() {
    let mut c = config();
    c.flaws = lva_target::Flaws {
        exports_readable: true,
        refresh_as_access: true,
        trust_forwarded_for: false,
        no_rate_limit: true,
        ws_deleted_accepted: true,
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

/// A server that accepts everything: every login, any token, any export, any input; it
/// fails (500) on a quote in a search and on a very long export id, echoing the input.
async fn permissive_server() -> String {
    use axum::Json;
    use axum::extract::Path;
    use axum::extract::ws::WebSocketUpgrade;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    let tokens = || async {
        Json(json!({
            "access_token": "permissive-access-token",
            "refresh_token": "permissive-refresh-token",
            "token_type": "bearer",
            "expires_in": 900,
        }))
    };
    let export = || async {
        Json(json!({"export_id": "e1", "status": "completed", "download_url": "/x"}))
            .into_response()
    };
    let status = move |Path(id): Path<String>| async move {
        if id.len() > 64 {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("no export {id}")).into_response()
        } else {
            export().await
        }
    };
    let app = axum::Router::new()
        .route("/api/auth/login/json", post(tokens))
        .route("/api/auth/refresh", post(tokens))
        .route("/api/gdpr/export", post(export))
        .route("/api/gdpr/export/{id}", get(status))
        .route(
            "/api/search",
            post(|body: String| async move {
                // A quote in the query breaks this server's search.
                if body.contains("\\\"") || body.contains('\u{202E}') {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("search failed: {body}"),
                    )
                } else {
                    (StatusCode::OK, "{\"results\": []}".to_string())
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

/// A 5,000-digit id and a right-to-left override reach the answers (the permissive server
/// echoes them in its errors): every output shows them shortened and escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_shortened_and_escaped_in_every_output() {
    use lva_loadtest::report::{junit, probes as shown_probes};
    let url = permissive_server().await;
    let report = probe_url(&url).await;
    let digits = "9".repeat(5000);
    let long_id = report
        .findings()
        .find(|f| f.request.path.starts_with("/api/gdpr/export/99999"))
        .unwrap_or_else(|| panic!("no finding for the long id:\n{}", shown(&report)));
    assert_eq!(
        long_id.request.path,
        format!("/api/gdpr/export/{}… (5000 characters)", &digits[..80])
    );
    assert!(
        long_id.answer.body.contains("… (5000 characters)"),
        "{long_id:?}"
    );
    // The search finding lists the query with the override among its inputs, escaped.
    let override_query = report
        .findings()
        .find(|f| f.inputs.iter().any(|i| i.contains("\\u{202E}ltr")))
        .unwrap_or_else(|| panic!("no finding for U+202E:\n{}", shown(&report)));
    assert_eq!(
        override_query.endpoint, "POST /api/search",
        "{override_query:?}"
    );
    assert!(
        !override_query.answer.body.contains('\u{202E}'),
        "{override_query:?}"
    );

    let (probes_json, findings_json) = report.json_parts();
    let outputs = [
        ("console", shown(&report)),
        (
            "findings file",
            shown_probes::findings_markdown(&report, "test", false),
        ),
        ("metrics JSON", format!("{probes_json}{findings_json}")),
        (
            "JUnit",
            String::from_utf8(junit::junit_xml(&[shown_probes::junit_suite(
                &report, false,
            )]))
            .expect("utf8"),
        ),
    ];
    for (name, text) in &outputs {
        assert!(
            !text.contains('\u{202E}'),
            "a raw U+202E in the {name}:\n{text}"
        );
        assert!(!text.contains('\u{0}'), "a raw NUL in the {name}:\n{text}");
        assert!(
            !text.contains(&digits[..81]),
            "81 digits in a row in the {name}"
        );
        assert!(text.contains("… (5000 characters)"), "{name}:\n{text}");
        assert!(text.contains("\\u{202E}ltr"), "{name}:\n{text}");
    }
}
