//! Security and correctness probes: short, bounded request sequences, run once per load test
//! beside the attack, that check the API keeps users apart, refuses tokens it should refuse,
//! cannot have its limits walked around and survives hostile input.
//!
//! Probes make their own accounts (`lt-{run_id}-probe-{n}@loadtest.example.com`, deleted at
//! the end) with their own clients; against a server on this machine every probe client has
//! its own loopback source address, so a probe that exhausts its rate-limit budget never
//! throttles the simulated users, and the users never throttle a probe. Nothing they do is
//! recorded in the run's ledger: their requests are counted here, apart from the
//! performance figures.
//!
//! Each probe ends `passed`, with `findings`, or `not tested` (with the reason: for example
//! a setup step rate limited). A finding carries its severity, the request and the answer
//! that show it (passwords and tokens redacted), and one sentence on what it means. See
//! `docs/PROBES.md`.

mod deletion;
mod hostile;
mod kit;
mod lockout;
mod ownership;
mod rate_limit;
mod revocation;
mod sanitize;
mod token_types;

use crate::exchange::context::{FlowOptions, new_run_id};
use crate::transport::{TlsOptions, is_loopback_host, tls_config};
use kit::Kit;
use rustls::ClientConfig;
use sanitize::shown;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The longest any one probe may take before it is reported as not tested.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// How many characters of a request's summary or an answer's body a report shows.
const BODY_CHARS: usize = 300;
/// How many characters of any other text of a report (paths, notes, meanings).
const TEXT_CHARS: usize = 500;

/// How bad a finding is. Any `High` finding fails the run (exit code 1) unless
/// `--probes-report-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Lax validation: invalid input accepted.
    Low,
    /// A protection missing or weaker than the contract (no lockout, no rate limit, a
    /// server error or dropped connection on hostile input).
    Medium,
    /// Users not kept apart, or a token, session or limit that can be walked around.
    High,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
        }
    }
}

/// A request as reports show it: secrets replaced by `[REDACTED]`, long bodies summarized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeRequest {
    pub method: String,
    pub path: String,
    /// Headers that matter and the (redacted, shortened) body.
    pub summary: String,
}

/// An answer as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeAnswer {
    /// The HTTP status (101 for an accepted WebSocket handshake); `None` without an answer.
    pub status: Option<u16>,
    /// The start of the body (redacted), or why there was no answer.
    pub body: String,
}

/// One thing a probe found wrong: one cause, that is one probe, endpoint and kind of failure
/// (its meaning), with every input that showed it. The request and answer shown are the
/// first input's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub probe: String,
    pub severity: Severity,
    /// The method and route the finding is about (`POST /api/search`,
    /// `GET /api/gdpr/export/{id}`).
    pub endpoint: String,
    /// The inputs that showed it, in the order they were sent (at least one).
    pub inputs: Vec<String>,
    pub request: ProbeRequest,
    pub answer: ProbeAnswer,
    /// What it means, in one sentence.
    pub meaning: String,
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    Passed,
    Findings,
    /// It could not establish what it checks (the notes say why); not a finding.
    NotTested,
}

/// The result of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    pub name: String,
    pub status: ProbeStatus,
    pub passed: bool,
    /// Requests it sent (WebSocket handshakes included).
    pub requests: u64,
    /// What it established, and anything it could not test.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// The passwords and tokens the probes used; kept to scrub them from every output. Never
/// printed: `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when any secret occurs in `text`.
    pub fn appears_in(&self, text: &str) -> bool {
        self.0.iter().any(|s| text.contains(s.as_str()))
    }

    fn scrub(&self, text: &mut String) {
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), kit::REDACTED);
            }
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

/// Every probe's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeReport {
    pub probes: Vec<ProbeOutcome>,
    /// From the first probe request to the last answer.
    pub elapsed_secs: f64,
    #[serde(skip)]
    pub secrets: Secrets,
}

impl ProbeReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.probes.iter().flat_map(|p| p.findings.iter())
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings().filter(|f| f.severity == severity).count()
    }

    /// True when a finding is high severity: the run fails unless `--probes-report-only`.
    pub fn has_high(&self) -> bool {
        self.count(Severity::High) > 0
    }

    pub fn requests(&self) -> u64 {
        self.probes.iter().map(|p| p.requests).sum()
    }

    pub fn outcome(&self, name: &str) -> Option<&ProbeOutcome> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// The probes (without their findings) and the findings, for the metrics JSON.
    pub fn json_parts(&self) -> (serde_json::Value, serde_json::Value) {
        let findings: Vec<&Finding> = self.findings().collect();
        (
            serde_json::to_value(&self.probes).unwrap_or_default(),
            serde_json::to_value(findings).unwrap_or_default(),
        )
    }

    /// Makes every text safe to show, once, before any output: every secret the probes
    /// used replaced by `[REDACTED]` wherever it ended up, then hostile values shortened
    /// and invisible characters escaped ([`sanitize::shown`]).
    fn clean(&mut self) {
        let secrets = self.secrets.clone();
        let clean = |text: &mut String, max: usize| {
            secrets.scrub(text);
            *text = shown(text, max);
        };
        for probe in &mut self.probes {
            probe.notes.iter_mut().for_each(|n| clean(n, TEXT_CHARS));
            for f in &mut probe.findings {
                clean(&mut f.endpoint, TEXT_CHARS);
                f.inputs.iter_mut().for_each(|i| clean(i, TEXT_CHARS));
                clean(&mut f.request.path, TEXT_CHARS);
                clean(&mut f.request.summary, BODY_CHARS);
                clean(&mut f.answer.body, BODY_CHARS);
                clean(&mut f.meaning, TEXT_CHARS);
            }
        }
    }
}

/// What the probes need to know about the run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub host: Url,
    /// Makes the probe accounts' addresses unique: the run's own id beside a load test,
    /// a fresh one for probes run alone.
    pub run_id: String,
    /// Give every probe client its own loopback source address, from this user index up
    /// (see `transport::loopback_source`); `None` connects from the default address.
    pub source_base: Option<u64>,
    /// The users send `X-Forwarded-For` from a pool of this many addresses: every probe
    /// client then sends one of its own, outside the pool.
    pub forwarded_for_pool: Option<u32>,
    /// Timeout of each request and WebSocket handshake.
    pub timeout: Duration,
    /// Log the probe accounts out at the end instead of deleting them.
    pub keep_accounts: bool,
    /// How the probe clients trust the server's certificate (the run's own).
    pub tls: TlsOptions,
}

/// Probe clients take loopback indexes from here up, far above any run's user count, so
/// they never share a source address with a simulated user.
pub const PROBE_SOURCE_BASE: u64 = 50_000;

/// True when clients can reach `host` from loopback addresses of their own: a server on
/// this machine reached over IPv4 (an IPv6 host is never given an IPv4 source address).
fn own_loopback_sources(host: &Url) -> bool {
    is_loopback_host(host) && !matches!(host.host(), Some(url::Host::Ipv6(_)))
}

impl ProbeSettings {
    /// Settings for `host`: own loopback source addresses when the host is on this machine
    /// and reached over IPv4.
    pub fn new(host: Url) -> ProbeSettings {
        let source_base = own_loopback_sources(&host).then_some(PROBE_SOURCE_BASE);
        ProbeSettings {
            host,
            run_id: new_run_id(),
            source_base,
            forwarded_for_pool: None,
            timeout: Duration::from_secs(15),
            keep_accounts: false,
            tls: TlsOptions::default(),
        }
    }

    /// Settings for a load test, by the users' source-address rules: own loopback source
    /// addresses only when the users have theirs, own forwarded-for addresses when the
    /// users send theirs, at most the users' request timeout, and `--keep-accounts`.
    pub fn for_run(host: Url, run_id: &str, flow: &FlowOptions) -> ProbeSettings {
        let mut settings = ProbeSettings::new(host);
        settings.run_id = run_id.to_string();
        // Own loopback sources where the host allows them and the users have theirs, from
        // the run's own offset (apart from the users').
        settings.source_base = settings
            .source_base
            .filter(|_| flow.loopback_sources)
            .map(|_| flow.source_offset + PROBE_SOURCE_BASE);
        settings.forwarded_for_pool = flow.forwarded_for_pool;
        if let Some(timeout) = flow.timeout {
            settings.timeout = settings.timeout.min(timeout);
        }
        settings.keep_accounts = flow.keep_accounts;
        settings.tls = flow.tls.clone();
        settings
    }
}

/// The probes running beside a load run, on their own accounts and clients (or not at all).
pub struct BesideRun(Option<tokio::task::JoinHandle<ProbeReport>>);

impl BesideRun {
    /// Starts the probes against `host` when `enabled`, on accounts of the run `run_id`.
    pub fn start(enabled: bool, host: &Url, run_id: &str, flow: &FlowOptions) -> BesideRun {
        BesideRun(
            enabled.then(|| tokio::spawn(run(ProbeSettings::for_run(host.clone(), run_id, flow)))),
        )
    }

    /// Their report once they are done; `None` when they did not run or their task failed
    /// (a warning says so).
    pub async fn report(self) -> Option<ProbeReport> {
        self.0?
            .await
            .inspect_err(|e| errln!("warning: the security probes failed: {e}"))
            .ok()
    }
}

/// Runs every probe concurrently and returns their outcomes, secrets scrubbed. Bounded:
/// every request has a timeout and every probe a deadline.
pub async fn run(settings: ProbeSettings) -> ProbeReport {
    let tls = match tls_config(&settings.tls) {
        Ok(tls) => Arc::new(tls),
        Err(e) => return unavailable(&e.to_string()),
    };
    run_with_tls(settings, tls).await
}

/// [`run`] with a TLS configuration already built (the run's own).
pub async fn run_with_tls(settings: ProbeSettings, tls: Arc<ClientConfig>) -> ProbeReport {
    let started = std::time::Instant::now();
    let kit = Kit::new(settings, tls);
    let kit = &kit;
    let (own, tok, rev, del, rate, hostile, lock) = tokio::join!(
        bounded(kit, ownership::NAME, ownership::run(kit)),
        bounded(kit, token_types::NAME, token_types::run(kit)),
        bounded(kit, revocation::NAME, revocation::run(kit)),
        bounded(kit, deletion::NAME, deletion::run(kit)),
        bounded(kit, rate_limit::NAME, rate_limit::run(kit)),
        bounded(kit, hostile::NAME, hostile::run(kit)),
        bounded(kit, lockout::NAME, lockout::run(kit)),
    );
    let mut report = ProbeReport {
        probes: vec![own, tok, rev, del, rate, hostile, lock],
        elapsed_secs: started.elapsed().as_secs_f64(),
        secrets: kit.secrets(),
    };
    report.clean();
    report
}

async fn bounded(
    kit: &Kit,
    name: &'static str,
    probe: impl Future<Output = ProbeOutcome>,
) -> ProbeOutcome {
    match tokio::time::timeout(PROBE_DEADLINE, probe).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let mut p = kit::Probe::new(kit, name);
            p.not_tested(&format!(
                "did not finish within {} s",
                PROBE_DEADLINE.as_secs()
            ));
            p.finish()
        }
    }
}

/// A report saying no probe could run.
fn unavailable(why: &str) -> ProbeReport {
    let names = [
        ownership::NAME,
        token_types::NAME,
        revocation::NAME,
        deletion::NAME,
        rate_limit::NAME,
        hostile::NAME,
        lockout::NAME,
    ];
    ProbeReport {
        probes: names
            .iter()
            .map(|name| ProbeOutcome {
                name: name.to_string(),
                status: ProbeStatus::NotTested,
                passed: false,
                requests: 0,
                notes: vec![format!("the probes could not start: {why}")],
                findings: Vec::new(),
            })
            .collect(),
        elapsed_secs: 0.0,
        secrets: Secrets::default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn report_with(severity: Severity) -> ProbeReport {
        let finding = Finding {
            probe: "p".into(),
            severity,
            endpoint: "GET /".into(),
            inputs: vec!["i".into()],
            request: ProbeRequest {
                method: "GET".into(),
                path: "/".into(),
                summary: String::new(),
            },
            answer: ProbeAnswer {
                status: Some(200),
                body: String::new(),
            },
            meaning: "m".into(),
        };
        ProbeReport {
            probes: vec![ProbeOutcome {
                name: "p".into(),
                status: ProbeStatus::Findings,
                passed: false,
                requests: 1,
                notes: Vec::new(),
                findings: vec![finding],
            }],
            elapsed_secs: 1.0,
            secrets: Secrets::default(),
        }
    }

    #[test]
    fn secrets_are_scrubbed_from_every_text_of_the_report() {
        let mut report = report_with(Severity::High);
        report.probes[0].findings[0].answer.body = "token abc.def.ghi leaked".into();
        report.probes[0].notes.push("saw abc.def.ghi".into());
        report.secrets = Secrets(vec!["abc.def.ghi".into()]);
        report.clean();
        let text = serde_json::to_string(&report.json_parts()).expect("json");
        assert!(!report.secrets.appears_in(&text), "{text}");
        assert!(text.contains("token [REDACTED] leaked"), "{text}");
        assert_eq!(format!("{:?}", report.secrets), "Secrets(1 hidden)");
    }

    #[test]
    fn every_text_of_the_report_is_shortened_and_escaped() {
        let mut report = report_with(Severity::Medium);
        let long = "9".repeat(5000);
        let hostile = format!("{long} \u{202E}txt.exe");
        let f = &mut report.probes[0].findings[0];
        f.inputs = vec![hostile.clone()];
        for text in [
            &mut f.endpoint,
            &mut f.request.path,
            &mut f.request.summary,
            &mut f.answer.body,
            &mut f.meaning,
        ] {
            *text = hostile.clone();
        }
        report.probes[0].notes.push(hostile.clone());
        // A secret that a shortening would cut in two is still found whole.
        report.probes[0]
            .notes
            .push(format!("{}SECRET-TOKEN-1", "x".repeat(70)));
        report.secrets = Secrets(vec!["SECRET-TOKEN-1".into()]);
        report.clean();
        let text = serde_json::to_string(&report.json_parts()).expect("json");
        assert!(
            !text.contains('\u{202E}') && !text.contains(&long[..81]),
            "{text}"
        );
        assert_eq!(text.matches("… (5000 characters)").count(), 7, "{text}");
        assert_eq!(text.matches("\\u{202E}txt.exe").count(), 7, "{text}");
        assert!(
            !text.contains("SECRET") && text.contains("[REDACTED]"),
            "{text}"
        );
    }

    #[test]
    fn an_ipv6_host_gets_no_ipv4_source_address() {
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(
            ProbeSettings::new(url("http://[::1]:8000"))
                .source_base
                .is_none()
        );
        assert!(
            ProbeSettings::new(url("http://127.0.0.1:8000"))
                .source_base
                .is_some()
        );
        assert!(
            ProbeSettings::new(url("https://example.com"))
                .source_base
                .is_none()
        );
        let flow = FlowOptions {
            loopback_sources: true,
            forwarded_for_pool: Some(20),
            ..FlowOptions::default()
        };
        let settings = ProbeSettings::for_run(url("http://[::1]:8000"), "run12345", &flow);
        assert!(settings.source_base.is_none());
        assert_eq!(settings.forwarded_for_pool, Some(20));
        assert_eq!(settings.run_id, "run12345");
        let off = FlowOptions {
            loopback_sources: false,
            ..flow
        };
        assert!(
            ProbeSettings::for_run(url("http://127.0.0.1:1"), "run12345", &off)
                .source_base
                .is_none()
        );
    }
}
