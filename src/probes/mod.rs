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
mod render;
mod revocation;
mod token_types;

pub use render::{findings_markdown, junit_suite, print_report};

use crate::flows::context::{FlowOptions, new_run_id, tls_config};
use crate::plan::is_loopback_host;
use kit::Kit;
use rustls::ClientConfig;
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The longest any one probe may take before it is reported as not tested.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

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

/// One thing a probe found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub probe: String,
    pub severity: Severity,
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

    /// Replaces every secret the probes used, wherever it ended up, by `[REDACTED]`.
    fn scrub(&mut self) {
        let secrets = self.secrets.clone();
        for probe in &mut self.probes {
            probe.notes.iter_mut().for_each(|n| secrets.scrub(n));
            for f in &mut probe.findings {
                for text in [
                    &mut f.request.path,
                    &mut f.request.summary,
                    &mut f.answer.body,
                    &mut f.meaning,
                ] {
                    secrets.scrub(text);
                }
            }
        }
    }
}

/// What the probes need to know about the run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub host: Url,
    /// Makes the probe accounts' addresses unique.
    pub run_id: String,
    /// Give every probe client its own loopback source address, from this user index up
    /// (see `flows::context::loopback_source`); `None` connects from the default address.
    pub source_base: Option<u64>,
    /// Timeout of each request and WebSocket handshake.
    pub timeout: Duration,
    /// Log the probe accounts out at the end instead of deleting them.
    pub keep_accounts: bool,
}

/// Probe clients take loopback indexes from here up, far above any run's user count, so
/// they never share a source address with a simulated user.
pub const PROBE_SOURCE_BASE: u64 = 50_000;

impl ProbeSettings {
    /// Settings for `host`: own loopback source addresses when the host is on this machine.
    pub fn new(host: Url) -> ProbeSettings {
        let source_base = is_loopback_host(&host).then_some(PROBE_SOURCE_BASE);
        ProbeSettings {
            host,
            run_id: new_run_id(),
            source_base,
            timeout: Duration::from_secs(15),
            keep_accounts: false,
        }
    }
}

impl ProbeSettings {
    /// Settings for a load test: its own loopback source addresses only when the users have
    /// theirs, at most the users' request timeout, and `--keep-accounts` honoured.
    pub fn for_run(host: Url, flow: &FlowOptions) -> ProbeSettings {
        let mut settings = ProbeSettings::new(host);
        if !flow.loopback_sources {
            settings.source_base = None;
        }
        if let Some(timeout) = flow.timeout {
            settings.timeout = settings.timeout.min(timeout);
        }
        settings.keep_accounts = flow.keep_accounts;
        settings
    }
}

/// The probes running beside a load run, on their own accounts and clients (or not at all).
pub struct BesideRun(Option<tokio::task::JoinHandle<ProbeReport>>);

impl BesideRun {
    /// Starts the probes against `host` when `enabled`.
    pub fn start(enabled: bool, host: &Url, flow: &FlowOptions) -> BesideRun {
        BesideRun(enabled.then(|| tokio::spawn(run(ProbeSettings::for_run(host.clone(), flow)))))
    }

    /// Their report once they are done; `None` when they did not run or their task failed
    /// (a warning says so).
    pub async fn report(self) -> Option<ProbeReport> {
        self.0?
            .await
            .inspect_err(|e| eprintln!("warning: the security probes failed: {e}"))
            .ok()
    }
}

/// Writes the `_findings.md` file (atomically).
pub fn write_findings(
    report: &ProbeReport,
    path: &Path,
    heading: &str,
    report_only: bool,
) -> std::io::Result<()> {
    crate::report::write_atomic(
        path,
        findings_markdown(report, heading, report_only).as_bytes(),
    )
}

/// The run's exit code once the probes are in: a high-severity finding turns a pass into a
/// failure unless the findings are reported only.
pub fn exit_code(verdict_code: i32, report: Option<&ProbeReport>, report_only: bool) -> i32 {
    let fails = report.is_some_and(ProbeReport::has_high) && !report_only;
    if fails && verdict_code == crate::app::EXIT_PASSED {
        crate::app::EXIT_FAILED
    } else {
        verdict_code
    }
}

/// Runs every probe concurrently and returns their outcomes, secrets scrubbed. Bounded:
/// every request has a timeout and every probe a deadline.
pub async fn run(settings: ProbeSettings) -> ProbeReport {
    let tls = match tls_config() {
        Ok(tls) => Arc::new(tls),
        Err(e) => return unavailable(&e),
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
    report.scrub();
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
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::flows::builtin_classes;
    use crate::plan::Plan;
    use clap::Parser;

    fn plan(args: &[&str]) -> Plan {
        let words = std::iter::once("lva-loadtest").chain(args.iter().copied());
        let cli = Cli::try_parse_from(words).expect("options parse");
        Plan::resolve(&cli.run, builtin_classes()).expect("plan resolves")
    }

    #[test]
    fn presets_and_flags_decide_whether_the_probes_run() {
        assert!(plan(&["--scenario", "smoke"]).probes);
        assert!(plan(&["--scenario", "auth-only"]).probes);
        assert!(!plan(&["--scenario", "load"]).probes);
        assert!(plan(&["--scenario", "load", "--probes"]).probes);
        assert!(!plan(&["--scenario", "smoke", "--no-probes"]).probes);
        let report_only = plan(&["--scenario", "stress", "--probes-report-only"]);
        assert!(report_only.probes && report_only.probes_report_only);
        assert!(!plan(&["--scenario", "smoke"]).probes_report_only);
        for clash in [
            ["--probes", "--no-probes"],
            ["--probes-report-only", "--no-probes"],
        ] {
            let words = std::iter::once("lva-loadtest").chain(clash);
            assert!(Cli::try_parse_from(words).is_err(), "{clash:?}");
        }
    }

    fn report_with(severity: Severity) -> ProbeReport {
        let finding = Finding {
            probe: "p".into(),
            severity,
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
    fn only_high_findings_fail_a_passing_run_and_report_only_keeps_the_verdict() {
        let high = report_with(Severity::High);
        let medium = report_with(Severity::Medium);
        assert_eq!(exit_code(0, Some(&high), false), 1);
        assert_eq!(exit_code(0, Some(&high), true), 0);
        assert_eq!(exit_code(0, Some(&medium), false), 0);
        assert_eq!(exit_code(1, Some(&medium), true), 1);
        assert_eq!(exit_code(0, None, false), 0);
    }

    #[test]
    fn the_junit_suite_fails_a_probe_exactly_when_it_fails_the_run() {
        use crate::report::junit::CaseOutcome;
        let mut report = report_with(Severity::High);
        let mut medium = report_with(Severity::Medium).probes.remove(0);
        medium.name = "q".into();
        report.probes.push(medium);
        report.probes.push(ProbeOutcome {
            name: "r".into(),
            status: ProbeStatus::NotTested,
            passed: true,
            requests: 0,
            notes: vec!["not tested: the server never answered".into()],
            findings: Vec::new(),
        });
        let suite = junit_suite(&report, false);
        assert_eq!(suite.name, "security probes");
        let outcomes: Vec<_> = suite.cases.iter().map(|c| c.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                CaseOutcome::Failed {
                    message: "[HIGH] m".into()
                },
                CaseOutcome::Passed,
                CaseOutcome::Skipped {
                    reason: "not tested: the server never answered".into()
                },
            ]
        );
        assert_eq!(suite.cases[1].output[0], "[MEDIUM] m");
        assert_eq!(junit_suite(&report, true).failures(), 0);
    }

    #[test]
    fn secrets_are_scrubbed_from_every_text_of_the_report() {
        let mut report = report_with(Severity::High);
        report.probes[0].findings[0].answer.body = "token abc.def.ghi leaked".into();
        report.probes[0].notes.push("saw abc.def.ghi".into());
        report.secrets = Secrets(vec!["abc.def.ghi".into()]);
        report.scrub();
        let text = serde_json::to_string(&report.json_parts()).expect("json");
        assert!(!report.secrets.appears_in(&text), "{text}");
        assert!(text.contains("token [REDACTED] leaked"), "{text}");
        assert_eq!(format!("{:?}", report.secrets), "Secrets(1 hidden)");
    }
}
