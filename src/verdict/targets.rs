//! The targets a run is judged against, each declared once in the `declare_targets!` table:
//! its field in [`Targets`], its option in [`TargetOptions`] (with the default in its help),
//! its key in the targets file and its default all come from that one row.
//!
//! Precedence, per setting: command line, then the targets file, then the layer underneath
//! (the defaults, or the targets a saved run was judged with when it is re-judged).

use super::TargetError;
use super::baseline::BaselineSummary;
use super::rules::{Rule, parse_rule};
use crate::duration::parse_duration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How one kind of target value is written, read and checked.
pub trait Setting {
    /// The value as the command line gives it.
    type Arg: Clone + Send + Sync + 'static;
    /// The value as the targets file gives it.
    type File: DeserializeOwned;
    /// The resolved value, as [`Targets`] and the metrics JSON hold it.
    type Value;
    /// Parses the command line's text.
    fn parse_arg(text: &str) -> Result<Self::Arg, String>;
    /// Checks a value from the command line.
    fn from_arg(arg: Self::Arg) -> Result<Self::Value, String>;
    /// Checks a value from the targets file.
    fn from_file(file: Self::File) -> Result<Self::Value, String>;
    /// The declared default, written as on the command line.
    fn default_value(text: &str) -> Result<Self::Value, String> {
        Self::from_arg(Self::parse_arg(text)?)
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))
}

/// A kind of target that is a number within bounds, the same on the command line and in
/// the file.
macro_rules! number_setting {
    ($(#[$doc:meta])* $name:ident, $holds:expr, $otherwise:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl Setting for $name {
            type Arg = f64;
            type File = f64;
            type Value = f64;
            fn parse_arg(text: &str) -> Result<f64, String> {
                number(text)
            }
            fn from_arg(value: f64) -> Result<f64, String> {
                let holds: fn(f64) -> bool = $holds;
                if value.is_finite() && holds(value) {
                    Ok(value)
                } else {
                    Err(format!($otherwise, value))
                }
            }
            fn from_file(value: f64) -> Result<f64, String> {
                Self::from_arg(value)
            }
        }
    };
}

number_setting!(
    /// A number above 0: a time in milliseconds, a factor.
    Positive,
    |v| v > 0.0,
    "{} must be more than 0"
);
number_setting!(
    /// A number of 0 or more: a limit on a rate of change.
    NonNegative,
    |v| v >= 0.0,
    "{} must be 0 or more"
);
number_setting!(
    /// A percentage from 0 to 100.
    Percent,
    |v| (0.0..=100.0).contains(&v),
    "{} is not a percentage from 0 to 100"
);

/// A count; 0 counts as 1.
pub struct Count;
impl Setting for Count {
    type Arg = u64;
    type File = u64;
    type Value = u64;
    fn parse_arg(text: &str) -> Result<u64, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a whole number"))
    }
    fn from_arg(value: u64) -> Result<u64, String> {
        Ok(value.max(1))
    }
    fn from_file(value: u64) -> Result<u64, String> {
        Self::from_arg(value)
    }
}

/// A duration in the file: `"10s"` or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileDuration {
    Secs(u64),
    Text(String),
}

impl FileDuration {
    fn resolve(self) -> Result<Duration, String> {
        match self {
            Self::Secs(s) => Ok(Duration::from_secs(s)),
            Self::Text(t) => parse_duration(&t),
        }
    }
}

/// A window of the run's timeline, at least a second long; held in seconds.
pub struct Window;
impl Setting for Window {
    type Arg = Duration;
    type File = FileDuration;
    type Value = f64;
    fn parse_arg(text: &str) -> Result<Duration, String> {
        parse_duration(text)
    }
    fn from_arg(window: Duration) -> Result<f64, String> {
        if window < Duration::from_secs(1) {
            return Err("the window must be at least 1s long".into());
        }
        Ok(window.as_secs_f64())
    }
    fn from_file(window: FileDuration) -> Result<f64, String> {
        Self::from_arg(window.resolve()?)
    }
}

/// A duration that, when not given, depends on the run ("auto"); held in seconds.
pub struct AutoDuration;
impl Setting for AutoDuration {
    type Arg = Duration;
    type File = FileDuration;
    type Value = Option<f64>;
    fn parse_arg(text: &str) -> Result<Duration, String> {
        parse_duration(text)
    }
    fn from_arg(duration: Duration) -> Result<Option<f64>, String> {
        Ok(Some(duration.as_secs_f64()))
    }
    fn from_file(duration: FileDuration) -> Result<Option<f64>, String> {
        Self::from_arg(duration.resolve()?)
    }
    fn default_value(text: &str) -> Result<Option<f64>, String> {
        match text {
            "auto" => Ok(None),
            other => Self::from_arg(Self::parse_arg(other)?),
        }
    }
}

/// The help text's default: the declared one, or words for one that depends on something.
macro_rules! shown_default {
    ($default:literal) => {
        $default
    };
    ($default:literal, $shown:literal) => {
        $shown
    };
}

/// The table of targets. A row: `field (option): Kind = "default" ["shown default"],
/// "flag", "VALUE", "help";` declares the [`Targets`] field, the [`TargetOptions`] field, the
/// default (written as on the command line), the flag (also the targets file's key) and the
/// help. Adding a target is one row here, plus its check.
macro_rules! declare_targets {
    ($(
        $field:ident ($option:ident): $kind:ty = $default:literal $(($shown:literal))?,
            $flag:literal, $value:literal, $help:literal;
    )*) => {
        /// Target options, flattened into the tool's command line. Every one is optional: an
        /// absent option falls back to the targets file, then to the default.
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct TargetOptions {
            $(
                #[doc = $help]
                #[arg(
                    long = $flag,
                    value_name = $value,
                    value_parser = <$kind as Setting>::parse_arg,
                    help = concat!($help, " [default: ", shown_default!($default $(, $shown)?), "]")
                )]
                pub $option: Option<<$kind as Setting>::Arg>,
            )*
            /// A per-request or extra rule, for example "p95<2000ms for POST /api/conversation"
            /// (repeatable)
            #[arg(long = "target", value_name = "RULE")]
            pub target: Vec<String>,
            /// A TOML file of targets (see docs/METRICS_JSON.md for its keys)
            #[arg(long = "targets-file", value_name = "FILE.toml")]
            pub targets_file: Option<PathBuf>,
            /// Count rate-limited answers (429) as failures in the success and error rates
            #[arg(long = "count-429-as-failure")]
            pub count_429_as_failure: bool,
            /// An earlier run to compare with: our _metrics.json or Goose's JSON report
            #[arg(long = "baseline", value_name = "FILE")]
            pub baseline: Option<PathBuf>,
        }

        /// The resolved targets: what [`super::judge`] applies, and what the metrics JSON
        /// records. Read back with defaults for missing keys, so a newer key does not break
        /// an older file.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Targets {
            $(
                #[doc = $help]
                pub $field: <$kind as Setting>::Value,
            )*
            pub rules: Vec<Rule>,
            pub count_429_as_failure: bool,
            /// The run compared with, summarised when the targets were resolved.
            pub baseline: Option<BaselineSummary>,
            /// The file the baseline is read from, before the run (see
            /// [`Targets::baseline_file`]).
            #[serde(skip)]
            pub baseline_file: Option<PathBuf>,
        }

        impl Default for Targets {
            fn default() -> Self {
                Targets {
                    $(
                        $field: <$kind as Setting>::default_value($default)
                            .expect(concat!("the declared default of --", $flag, " is valid")),
                    )*
                    rules: Vec::new(),
                    count_429_as_failure: false,
                    baseline: None,
                    baseline_file: None,
                }
            }
        }

        /// The targets file: the command line's option names as keys, plus rules.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TargetsFile {
            $(
                #[serde(rename = $flag, default)]
                $option: Option<<$kind as Setting>::File>,
            )*
            #[serde(rename = "count-429-as-failure", default)]
            count_429_as_failure: Option<bool>,
            #[serde(default)]
            baseline: Option<PathBuf>,
            #[serde(default)]
            rules: Vec<String>,
            #[serde(default)]
            requests: BTreeMap<String, RequestTargets>,
        }

        impl TargetOptions {
            /// Sets every declared target given on the command line or, failing that, in the
            /// file; returns the flags that were given.
            fn layer_declared(
                &self,
                file: &mut TargetsFile,
                t: &mut Targets,
            ) -> Result<Vec<&'static str>, TargetError> {
                let mut given = Vec::new();
                $(
                    let value = match (self.$option.clone(), file.$option.take()) {
                        (Some(arg), _) => Some(<$kind as Setting>::from_arg(arg)),
                        (None, Some(in_file)) => Some(<$kind as Setting>::from_file(in_file)),
                        (None, None) => None,
                    };
                    if let Some(value) = value {
                        t.$field = value.map_err(|reason| bad_value(concat!("--", $flag), reason))?;
                        given.push($flag);
                    }
                )*
                Ok(given)
            }
        }
    };
}

declare_targets! {
    p95_ms (p95_ms): Positive = "500", "p95-ms", "MS",
        "HTTP P95 response time target in milliseconds, met when strictly below";
    success_rate (success_rate): Percent = "99.5", "success-rate", "PERCENT",
        "Lowest acceptable HTTP success rate, in percent";
    error_rate (error_rate): Percent = "0.5", "error-rate", "PERCENT",
        "Highest acceptable HTTP error rate, in percent";
    ws_p95_ms (ws_p95_ms): Positive = "500", "ws-p95-ms", "MS",
        "WebSocket message round-trip P95 target in milliseconds";
    ws_error_rate (ws_error_rate): Percent = "0.5" ("the --error-rate target"),
        "ws-error-rate", "PERCENT",
        "Highest acceptable error rate of WebSocket operations, in percent";
    max_throttled_share (max_throttled_share): Percent = "5", "max-throttled-share", "PERCENT",
        "Share of an ordinary user class's requests allowed to be rate limited, in percent";
    max_refused_users (max_refused_users): Percent = "0", "max-refused-users", "PERCENT",
        "Share of a user class's users allowed to be refused at their start (registration or login), in percent";
    spike_window_secs (spike_window): Window = "10s", "spike-window", "DURATION",
        "Length of the windows errors are counted in, for example 10s";
    spike_factor (spike_factor): Positive = "5", "spike-factor", "X",
        "A window is a spike when its error share exceeds this multiple of the error-rate target";
    spike_min_errors (spike_min_errors): Count = "5", "spike-min-errors", "N",
        "... and it holds at least this many failures";
    memory_warmup_secs (memory_warmup): AutoDuration = "auto"
        ("30s or 10% of the run, whichever is longer, at most half the run"),
        "memory-warmup", "DURATION",
        "Memory samples before this are ignored";
    memory_growth_limit_mib_per_min (memory_growth_limit): NonNegative = "10",
        "memory-growth-limit", "MIB_PER_MIN",
        "Fastest acceptable memory growth after warm-up, in MiB per minute";
    degradation_limit_percent_per_min (degradation_limit): NonNegative = "5",
        "degradation-limit", "PERCENT_PER_MIN",
        "Fastest acceptable rise of P95 through an endurance run, in percent of the P95 target per minute";
    regression_limit (regression_limit): NonNegative = "20", "regression-limit", "PERCENT",
        "How much worse than the baseline P95 may be, in percent";
}

impl Targets {
    /// Every rule naming a request must name one the scenario makes (`known_keys` are
    /// `"METHOD name"` keys).
    pub fn check_request_names(&self, known_keys: &[String]) -> Result<(), TargetError> {
        for rule in &self.rules {
            if let Some(key) = &rule.request
                && !known_keys.iter().any(|k| k == key)
            {
                let mut known = known_keys.to_vec();
                known.sort();
                known.dedup();
                return Err(TargetError::UnknownRequest {
                    rule: rule.text.clone(),
                    request: key.clone(),
                    known,
                });
            }
        }
        Ok(())
    }

    /// The window length the run's ledger should use, so that error spikes are judged on it.
    pub fn spike_window(&self) -> Duration {
        Duration::from_secs_f64(self.spike_window_secs)
    }

    /// The memory warm-up for a run of `run_secs`: the explicit one, else the longer of 30 s
    /// and 10% of the run, at most half the run (a short run keeps samples to fit).
    pub fn memory_warmup_for(&self, run_secs: f64) -> f64 {
        self.memory_warmup_secs
            .unwrap_or_else(|| (30.0f64).max(run_secs * 0.1).min(run_secs * 0.5))
    }
}

/// Targets for one request in the TOML file's `[requests."METHOD name"]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RequestTargets {
    p50_ms: Option<f64>,
    p90_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    avg_ms: Option<f64>,
    max_ms: Option<f64>,
    error_rate: Option<f64>,
    success_rate: Option<f64>,
}

impl TargetsFile {
    fn read(path: &Path) -> Result<Self, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| TargetError::TargetsFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The `[requests.KEY]` tables as rules.
    fn request_rules(&self) -> Result<Vec<Rule>, TargetError> {
        let mut rules = Vec::new();
        for (key, t) in &self.requests {
            let limits = [
                ("p50", "<", "ms", t.p50_ms),
                ("p90", "<", "ms", t.p90_ms),
                ("p95", "<", "ms", t.p95_ms),
                ("p99", "<", "ms", t.p99_ms),
                ("avg", "<", "ms", t.avg_ms),
                ("max", "<", "ms", t.max_ms),
                ("error-rate", "<=", "%", t.error_rate),
                ("success-rate", ">=", "%", t.success_rate),
            ];
            for (metric, op, unit, value) in limits {
                if let Some(v) = value {
                    rules.push(parse_rule(&format!("{metric}{op}{v}{unit} for {key}"))?);
                }
            }
        }
        for text in &self.rules {
            rules.push(parse_rule(text)?);
        }
        Ok(rules)
    }
}

fn bad_value(option: &str, reason: impl Into<String>) -> TargetError {
    TargetError::BadValue {
        option: option.to_string(),
        reason: reason.into(),
    }
}

/// Replaces the base rules on the same metric and request with `newer`, keeps the others.
fn layer_rules(base: &mut Vec<Rule>, newer: Vec<Rule>) {
    base.retain(|old| !newer.iter().any(|new| new.same_subject(old)));
    base.extend(newer);
}

impl TargetOptions {
    /// The targets: command line over the targets file over the defaults.
    pub fn resolve(&self) -> Result<Targets, TargetError> {
        self.resolve_over(&Targets::default())
    }

    /// The targets, with `base` (for example the targets a saved run was judged with)
    /// under the targets file and the command line. A baseline named here is not read:
    /// its file is in [`Targets::baseline_file`] for the caller to load.
    pub fn resolve_over(&self, base: &Targets) -> Result<Targets, TargetError> {
        let mut file = match &self.targets_file {
            Some(path) => TargetsFile::read(path)?,
            None => TargetsFile::default(),
        };
        let mut t = base.clone();
        let given = self.layer_declared(&mut file, &mut t)?;
        // Unless set on its own, the WebSocket error rate follows the error-rate target.
        if given.contains(&"error-rate") && !given.contains(&"ws-error-rate") {
            t.ws_error_rate = t.error_rate;
        }
        t.count_429_as_failure = self.count_429_as_failure
            || file.count_429_as_failure.unwrap_or(t.count_429_as_failure);

        layer_rules(&mut t.rules, file.request_rules()?);
        let cli_rules = self
            .target
            .iter()
            .map(|text| parse_rule(text))
            .collect::<Result<Vec<_>, _>>()?;
        layer_rules(&mut t.rules, cli_rules);

        // A baseline named in the file is found beside the file.
        let file_dir = self
            .targets_file
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf);
        t.baseline_file = match (&self.baseline, file.baseline) {
            (Some(cli), _) => Some(cli.clone()),
            (None, Some(in_file)) if in_file.is_relative() => Some(
                file_dir
                    .map(|d| d.join(&in_file))
                    .unwrap_or_else(|| in_file.clone()),
            ),
            (None, Some(in_file)) => Some(in_file),
            (None, None) => None,
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_default_is_valid_and_shown_in_the_help() {
        let _ = Targets::default();
        let mut command = clap::Command::new("t").term_width(1000);
        command = <TargetOptions as clap::Args>::augment_args(command);
        let help = command.render_long_help().to_string();
        for shown in [
            "[default: 500]",
            "[default: 99.5]",
            "[default: the --error-rate target]",
            "[default: 10s]",
            "[default: 30s or 10% of the run, whichever is longer, at most half the run]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }

    #[test]
    fn defaults_match_the_guide() {
        let t = TargetOptions::default().resolve().expect("defaults");
        assert_eq!((t.p95_ms, t.success_rate, t.error_rate), (500.0, 99.5, 0.5));
        assert_eq!(t.spike_window(), Duration::from_secs(10));
        assert!(!t.count_429_as_failure);
        assert_eq!(t.memory_warmup_for(600.0), 60.0);
        assert_eq!(t.memory_warmup_for(1800.0), 180.0);
        assert_eq!(t.memory_warmup_for(100.0), 30.0);
        assert_eq!(t.memory_warmup_for(20.0), 10.0);
    }

    #[test]
    fn command_line_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("targets.toml");
        std::fs::write(
            &path,
            r#"
p95-ms = 800
success-rate = 99
spike-window = "20s"
memory-warmup = 45
rules = ["p99<1500ms for GET /api/stats"]

[requests."POST /api/conversation"]
p95-ms = 2000
error-rate = 1
"#,
        )
        .expect("write");
        let options = TargetOptions {
            p95_ms: Some(300.0),
            targets_file: Some(path),
            target: vec!["p95<2500ms for POST /api/conversation".into()],
            ..TargetOptions::default()
        };
        let t = options.resolve().expect("targets");
        assert_eq!(t.p95_ms, 300.0, "command line wins");
        assert_eq!(t.success_rate, 99.0, "file beats default");
        assert_eq!(t.error_rate, 0.5, "default stays");
        assert_eq!(t.spike_window_secs, 20.0);
        assert_eq!(t.memory_warmup_secs, Some(45.0));
        let conv_p95: Vec<_> = t
            .rules
            .iter()
            .filter(|r| r.id() == "p95 POST /api/conversation")
            .collect();
        assert_eq!(conv_p95.len(), 1);
        assert_eq!(
            conv_p95[0].value, 2500.0,
            "the command line's rule replaces the file's"
        );
        assert!(
            t.rules
                .iter()
                .any(|r| r.id() == "error-rate POST /api/conversation")
        );
        assert!(t.rules.iter().any(|r| r.id() == "p99 GET /api/stats"));
    }

    #[test]
    fn a_file_with_an_unknown_key_or_bad_rule_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "p95 = 500\n").expect("write");
        let options = TargetOptions {
            targets_file: Some(path.clone()),
            ..TargetOptions::default()
        };
        assert!(matches!(
            options.resolve(),
            Err(TargetError::TargetsFile { .. })
        ));
        std::fs::write(&path, "rules = [\"p95 fast\"]\n").expect("write");
        assert!(matches!(
            options.resolve(),
            Err(TargetError::BadRule { .. })
        ));
        let missing = TargetOptions {
            targets_file: Some(dir.path().join("missing.toml")),
            ..TargetOptions::default()
        };
        assert!(matches!(missing.resolve(), Err(TargetError::Read { .. })));
    }

    #[test]
    fn out_of_range_values_are_configuration_errors() {
        let cases = [
            TargetOptions {
                success_rate: Some(101.0),
                ..Default::default()
            },
            TargetOptions {
                p95_ms: Some(0.0),
                ..Default::default()
            },
            TargetOptions {
                spike_window: Some(Duration::from_millis(200)),
                ..Default::default()
            },
            TargetOptions {
                error_rate: Some(f64::NAN),
                ..Default::default()
            },
        ];
        for options in cases {
            assert!(
                matches!(options.resolve(), Err(TargetError::BadValue { .. })),
                "{options:?}"
            );
        }
    }

    #[test]
    fn unknown_request_names_list_the_ones_that_exist() {
        let options = TargetOptions {
            target: vec!["p95<2000ms for POST /api/conversations".into()],
            ..TargetOptions::default()
        };
        let t = options.resolve().expect("targets");
        let known = vec![
            "GET /health".to_string(),
            "POST /api/conversation".to_string(),
        ];
        let err = t.check_request_names(&known).expect_err("unknown name");
        let text = err.to_string();
        assert!(text.contains("POST /api/conversations"), "{text}");
        assert!(
            text.contains("requests it makes: GET /health, POST /api/conversation"),
            "{text}"
        );
        let fine = TargetOptions {
            target: vec!["p95<2000ms for POST /api/conversation".into()],
            ..TargetOptions::default()
        };
        fine.resolve()
            .expect("targets")
            .check_request_names(&known)
            .expect("known name");
    }

    #[test]
    fn ws_error_rate_follows_error_rate_unless_set() {
        let t = TargetOptions {
            error_rate: Some(2.0),
            ..Default::default()
        }
        .resolve()
        .expect("targets");
        assert_eq!(t.ws_error_rate, 2.0);
        let t = TargetOptions {
            error_rate: Some(2.0),
            ws_error_rate: Some(3.0),
            ..Default::default()
        }
        .resolve()
        .expect("targets");
        assert_eq!(t.ws_error_rate, 3.0);
    }
}
