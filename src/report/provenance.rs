//! Where a run's figures come from: the command line (secrets redacted), the host, the plan,
//! the versions and the machine. Saved in the metrics JSON, so that `validate` can write the
//! same report for a saved run.

use crate::duration::HumanDuration;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};

/// What replaces a secret in the command line.
pub const REDACTED: &str = "[REDACTED]";

/// The facts about a run that the measurements do not hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// The run's id ([`Plan::run_id`]): in its account addresses and every output.
    pub run_id: String,
    /// The command line, each word as given, secrets replaced by `[REDACTED]`.
    pub command_line: Vec<String>,
    pub host: String,
    /// The host was the built-in reference server.
    pub builtin_server: bool,
    /// The plan, as (label, value) lines in the order people read them.
    pub plan: Vec<(String, String)>,
    /// The planned duration in seconds: after it, the users are being stopped.
    pub planned_secs: Option<f64>,
    /// `lva-loadtest 0.1.0 (Goose 0.19.0)`.
    pub versions: String,
    /// `name (linux x86_64, 2 CPUs)`.
    pub machine: String,
}

impl Provenance {
    /// The provenance of a run of `plan` against `host`, started by `command_line`.
    pub fn of_plan(
        plan: &Plan,
        host: &url::Url,
        builtin_server: bool,
        command_line: impl IntoIterator<Item = String>,
    ) -> Provenance {
        let list = |items: &[String]| {
            if items.is_empty() {
                "all".to_string()
            } else {
                items.join(", ")
            }
        };
        let mut lines = vec![
            ("Scenario", plan.preset_name.clone()),
            ("Users", plan.users.to_string()),
            ("Spawn rate", plan.spawn_rate_text()),
            (
                "Ramp",
                match plan.ramp_secs() {
                    0 => "0s (every user at once)".to_string(),
                    secs => HumanDuration(std::time::Duration::from_secs(secs)).to_string(),
                },
            ),
            ("Duration", HumanDuration(plan.duration).to_string()),
            ("Tags", list(&plan.filter.include)),
        ];
        if !plan.filter.exclude.is_empty() {
            lines.push(("Excluded tags", plan.filter.exclude.join(", ")));
        }
        lines.push(("User classes", plan.selection.class_names().join(", ")));
        if !plan.selection.skipped.is_empty() {
            lines.push(("Not spawned", plan.selection.skipped.join(", ")));
        }
        lines.push((
            "Security probes",
            match (plan.probes, plan.probes_report_only) {
                (false, _) => "off",
                (true, false) => "on",
                (true, true) => "on, report only",
            }
            .to_string(),
        ));
        lines.push((
            "429s",
            if plan.targets.count_429_as_failure {
                "counted as failures"
            } else {
                "apart from the rates"
            }
            .to_string(),
        ));
        Provenance {
            run_id: plan.run_id.clone(),
            command_line: redact_command_line(command_line),
            host: redact_url(host.as_str()),
            builtin_server,
            plan: lines.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            planned_secs: Some(plan.duration.as_secs_f64()),
            versions: versions(),
            machine: machine(),
        }
    }
}

/// This build's version and Goose's.
pub fn versions() -> String {
    format!(
        "lva-loadtest {} (Goose {})",
        env!("CARGO_PKG_VERSION"),
        env!("LVA_GOOSE_VERSION")
    )
}

/// The machine that ran the tool: host name, system, architecture and CPUs.
pub fn machine() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown host".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{name} ({} {}, {cpus} CPU{})",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cpus == 1 { "" } else { "s" }
    )
}

/// True for an option whose value is a secret: `--jwt-secret`, `--password`, `--api-key`...
fn secret_option(word: &str) -> bool {
    let Some(name) = word.strip_prefix("--") else {
        return false;
    };
    let name = name.split('=').next().unwrap_or(name).to_ascii_lowercase();
    // `--ws-token-in-header` names where a token goes; it holds none.
    name.split(['-', '_']).any(|part| {
        matches!(
            part,
            "secret" | "password" | "passwd" | "token" | "key" | "credential" | "credentials"
        )
    }) && !name.ends_with("in-header")
}

/// True for a value that is a secret whatever option it follows: a bearer token or a JWT.
fn secret_value(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    lower.contains("bearer ")
        || (word.starts_with("eyJ") && word.split('.').count() == 3)
        || lower.starts_with("authorization:")
}

/// `https://user:pass@host/` → `https://user:[REDACTED]@host/`.
fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(REDACTED));
            url.as_str().replace("%5BREDACTED%5D", REDACTED)
        }
        _ => text.to_string(),
    }
}

/// Redacts the words of a command line (or of the `--builtin-args` string inside it).
fn redact_words(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut hide_next = false;
    let mut builtin_next = false;
    for word in words {
        let value_of_secret = hide_next && !word.starts_with('-');
        let redacted = if value_of_secret || secret_value(&word) {
            REDACTED.to_string()
        } else if builtin_next {
            let inner = redact_words(word.split_whitespace().map(str::to_string).collect());
            inner.join(" ")
        } else if let Some((name, value)) = word.split_once('=')
            && name.starts_with("--")
        {
            if secret_option(name) {
                format!("{name}={REDACTED}")
            } else if name == "--builtin-args" {
                let inner = redact_words(value.split_whitespace().map(str::to_string).collect());
                format!("{name}={}", inner.join(" "))
            } else {
                format!("{name}={}", redact_url(value))
            }
        } else {
            redact_url(&word)
        };
        hide_next = secret_option(&word) && !word.contains('=');
        builtin_next = word == "--builtin-args";
        out.push(redacted);
    }
    out
}

/// The command line with every secret replaced by `[REDACTED]`: the values of options named
/// like secrets (`--jwt-secret`, `--password`, `--api-key`), inside `--builtin-args` too,
/// bearer tokens and JWTs anywhere, and the password of a URL.
pub fn redact_command_line(words: impl IntoIterator<Item = String>) -> Vec<String> {
    redact_words(words.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(words: &[&str]) -> Vec<String> {
        redact_command_line(words.iter().map(|w| w.to_string()))
    }

    #[test]
    fn secrets_are_redacted_and_everything_else_kept() {
        assert_eq!(
            redacted(&[
                "lva-loadtest",
                "--builtin-args",
                "--jwt-secret s3cr3t --fault-error-rate 0.3",
                "--ws-token-in-header",
                "--scenario",
                "smoke",
            ]),
            [
                "lva-loadtest",
                "--builtin-args",
                "--jwt-secret [REDACTED] --fault-error-rate 0.3",
                "--ws-token-in-header",
                "--scenario",
                "smoke",
            ]
        );
        assert_eq!(
            redacted(&[
                "x",
                "--api-key=abc",
                "--password",
                "hunter2",
                "--host",
                "https://me:pw@staging.example.com/",
                "--builtin-args=--jwt-secret=k",
                "-H",
                "Authorization: Bearer abc.def",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            ]),
            [
                "x",
                "--api-key=[REDACTED]",
                "--password",
                "[REDACTED]",
                "--host",
                "https://me:[REDACTED]@staging.example.com/",
                "--builtin-args=--jwt-secret=[REDACTED]",
                "-H",
                "[REDACTED]",
                "[REDACTED]",
            ]
        );
    }

    #[test]
    fn the_machine_and_versions_are_named() {
        assert!(versions().starts_with(concat!("lva-loadtest ", env!("CARGO_PKG_VERSION"))));
        assert!(!versions().contains("unknown"), "{}", versions());
        assert!(machine().contains(std::env::consts::ARCH), "{}", machine());
    }
}
