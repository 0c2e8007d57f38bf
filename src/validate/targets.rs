//! The targets a run is judged against: command-line options, the TOML targets file, per-request
//! rules, and the checks made on them before any traffic.
//!
//! Precedence, per setting: command line, then the targets file, then the layer underneath
//! (the defaults, or the targets a saved run was judged with when it is re-judged).

use super::ValidateError;
use super::baseline::BaselineSummary;
use crate::presets::parse_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The rule syntax, as error messages show it.
pub const RULE_SYNTAX: &str = "METRIC OP VALUE [for METHOD NAME], where METRIC is pNN (p50, p95, p99.9...), \
avg, max, error-rate or success-rate, OP is <, <=, > or >=, and VALUE is a time (500ms, 2s, 800us; ms \
when bare) or a percentage (1%); for example \"p95<2000ms for POST /api/conversation\" or \
\"error-rate<=1% for GET /api/stats\"";

/// Target options, flattened into the tool's command line. Every one is optional: an absent
/// option falls back to the targets file, then to the default.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TargetOptions {
    /// HTTP P95 response time target in milliseconds, met when strictly below [default: 500]
    #[arg(long = "p95-ms", value_name = "MS")]
    pub p95_ms: Option<f64>,
    /// Lowest acceptable HTTP success rate, in percent [default: 99.5]
    #[arg(long = "success-rate", value_name = "PERCENT")]
    pub success_rate: Option<f64>,
    /// Highest acceptable HTTP error rate, in percent [default: 0.5]
    #[arg(long = "error-rate", value_name = "PERCENT")]
    pub error_rate: Option<f64>,
    /// WebSocket message round-trip P95 target in milliseconds [default: 500]
    #[arg(long = "ws-p95-ms", value_name = "MS")]
    pub ws_p95_ms: Option<f64>,
    /// Highest acceptable error rate of WebSocket operations, in percent [default: the
    /// --error-rate target]
    #[arg(long = "ws-error-rate", value_name = "PERCENT")]
    pub ws_error_rate: Option<f64>,
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
    /// Share of an ordinary user class's requests allowed to be rate limited, in percent
    /// [default: 5]
    #[arg(long = "max-throttled-share", value_name = "PERCENT")]
    pub max_throttled_share: Option<f64>,
    /// Length of the windows errors are counted in, for example 10s [default: 10s]
    #[arg(long = "spike-window", value_name = "DURATION", value_parser = parse_duration)]
    pub spike_window: Option<Duration>,
    /// A window is a spike when its error share exceeds this multiple of the error-rate
    /// target [default: 5]
    #[arg(long = "spike-factor", value_name = "X")]
    pub spike_factor: Option<f64>,
    /// ... and it holds at least this many failures [default: 5]
    #[arg(long = "spike-min-errors", value_name = "N")]
    pub spike_min_errors: Option<u64>,
    /// Memory samples before this are ignored [default: 30s or 10% of the run, whichever is
    /// longer, at most half the run]
    #[arg(long = "memory-warmup", value_name = "DURATION", value_parser = parse_duration)]
    pub memory_warmup: Option<Duration>,
    /// Fastest acceptable memory growth after warm-up, in MiB per minute [default: 10]
    #[arg(long = "memory-growth-limit", value_name = "MIB_PER_MIN")]
    pub memory_growth_limit: Option<f64>,
    /// Fastest acceptable rise of P95 through an endurance run, in percent of the P95 target
    /// per minute [default: 5]
    #[arg(long = "degradation-limit", value_name = "PERCENT_PER_MIN")]
    pub degradation_limit: Option<f64>,
    /// An earlier run to compare with: our _metrics.json or Goose's JSON report
    #[arg(long = "baseline", value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// How much worse than the baseline P95 may be, in percent [default: 20]
    #[arg(long = "regression-limit", value_name = "PERCENT")]
    pub regression_limit: Option<f64>,
}

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMetric {
    /// A percentile of the response time, 0 < p <= 100.
    Percentile(f64),
    Avg,
    Max,
    ErrorRate,
    SuccessRate,
}

impl RuleMetric {
    pub fn is_time(self) -> bool {
        matches!(self, Self::Percentile(_) | Self::Avg | Self::Max)
    }
}

impl fmt::Display for RuleMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percentile(p) => write!(f, "p{}", super::trim_num(*p)),
            Self::Avg => f.write_str("avg"),
            Self::Max => f.write_str("max"),
            Self::ErrorRate => f.write_str("error-rate"),
            Self::SuccessRate => f.write_str("success-rate"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Comparison {
    pub fn holds(self, actual: f64, target: f64) -> bool {
        match self {
            Self::Lt => actual < target,
            Self::Le => actual <= target,
            Self::Gt => actual > target,
            Self::Ge => actual >= target,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// One parsed rule: `p95<2000ms for POST /api/conversation`. Times are held in milliseconds,
/// rates in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule as written.
    pub text: String,
    pub metric: RuleMetric,
    pub op: Comparison,
    pub value: f64,
    /// The request key (`"METHOD name"`) the rule is about; `None` for all HTTP requests.
    pub request: Option<String>,
}

impl Rule {
    /// The check id the rule's result is reported under.
    pub fn id(&self) -> String {
        match &self.request {
            Some(key) => format!("{} {key}", self.metric),
            None => format!("{} all HTTP", self.metric),
        }
    }

    /// The target as the summary shows it, for example `< 2000ms`.
    pub fn target_text(&self) -> String {
        let unit = if self.metric.is_time() { "ms" } else { "%" };
        format!("{} {}{unit}", self.op.symbol(), super::trim_num(self.value))
    }

    fn same_subject(&self, other: &Rule) -> bool {
        self.metric == other.metric && self.request == other.request
    }
}

impl std::str::FromStr for Rule {
    type Err = ValidateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_rule(text)
    }
}

fn bad_rule(rule: &str, reason: impl Into<String>) -> ValidateError {
    ValidateError::BadRule {
        rule: rule.to_string(),
        reason: reason.into(),
    }
}

/// Parses `METRIC OP VALUE [for METHOD NAME]`.
pub fn parse_rule(text: &str) -> Result<Rule, ValidateError> {
    let trimmed = text.trim();
    let (condition, request) = match split_for(trimmed) {
        Some((condition, subject)) => {
            let subject = subject.trim();
            let mut words = subject.splitn(2, char::is_whitespace);
            let method = words.next().unwrap_or_default();
            let name = words.next().unwrap_or_default().trim();
            if method.is_empty() || name.is_empty() {
                return Err(bad_rule(
                    text,
                    "after 'for' give the method and the request name, as in 'for GET /api/stats'",
                ));
            }
            if !method.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(bad_rule(text, format!("'{method}' is not a method")));
            }
            (
                condition.trim(),
                Some(format!("{} {name}", method.to_ascii_uppercase())),
            )
        }
        None => (trimmed, None),
    };
    let op_at = condition
        .find(['<', '>'])
        .ok_or_else(|| bad_rule(text, "no comparison (<, <=, > or >=)"))?;
    let metric_text = condition[..op_at].trim().to_ascii_lowercase();
    let rest = &condition[op_at..];
    let (op, value_text) = if let Some(v) = rest.strip_prefix("<=") {
        (Comparison::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Comparison::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Comparison::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Comparison::Gt, v)
    } else {
        return Err(bad_rule(text, "no comparison (<, <=, > or >=)"));
    };
    let metric = parse_metric(&metric_text).ok_or_else(|| {
        bad_rule(
            text,
            format!(
                "unknown metric '{metric_text}' (use pNN, avg, max, error-rate or success-rate)"
            ),
        )
    })?;
    let value = parse_value(metric, value_text.trim()).map_err(|reason| bad_rule(text, reason))?;
    Ok(Rule {
        text: trimmed.to_string(),
        metric,
        op,
        value,
        request,
    })
}

/// Splits at the word `for` (case-insensitive, surrounded by blanks).
fn split_for(text: &str) -> Option<(&str, &str)> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("for") {
        let at = from + found;
        let before_ok = at > 0 && lower[..at].ends_with(char::is_whitespace);
        let after_ok = lower[at + 3..].starts_with(char::is_whitespace);
        if before_ok && after_ok {
            return Some((&text[..at], &text[at + 3..]));
        }
        from = at + 3;
    }
    None
}

fn parse_metric(text: &str) -> Option<RuleMetric> {
    match text.replace('_', "-").as_str() {
        "avg" | "average" | "mean" => Some(RuleMetric::Avg),
        "max" | "maximum" => Some(RuleMetric::Max),
        "error-rate" => Some(RuleMetric::ErrorRate),
        "success-rate" => Some(RuleMetric::SuccessRate),
        other => {
            let p: f64 = other.strip_prefix('p')?.parse().ok()?;
            (p > 0.0 && p <= 100.0).then_some(RuleMetric::Percentile(p))
        }
    }
}

fn parse_value(metric: RuleMetric, text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a number with an optional unit"))?;
    let value = if metric.is_time() {
        match unit {
            "" | "ms" => value,
            "s" => value * 1000.0,
            "us" | "µs" => value / 1000.0,
            _ => return Err(format!("unknown time unit '{unit}' (use ms, s or us)")),
        }
    } else {
        match unit {
            "" | "%" => {
                if value > 100.0 {
                    return Err(format!("{value}% is more than 100%"));
                }
                value
            }
            _ => return Err(format!("a rate is a percentage, not '{unit}'")),
        }
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("'{text}' is not a finite number"))
    }
}

/// The resolved targets: what [`super::judge`] applies, and what the metrics JSON records.
/// Read back with defaults for missing keys, so a newer key does not break an older file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Targets {
    pub p95_ms: f64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub ws_p95_ms: f64,
    pub ws_error_rate: f64,
    pub rules: Vec<Rule>,
    pub count_429_as_failure: bool,
    pub max_throttled_share: f64,
    pub spike_window_secs: f64,
    pub spike_factor: f64,
    pub spike_min_errors: u64,
    /// `None`: the default warm-up, which depends on the run's length.
    pub memory_warmup_secs: Option<f64>,
    pub memory_growth_limit_mib_per_min: f64,
    /// Percent of the P95 target per minute.
    pub degradation_limit_percent_per_min: f64,
    pub regression_limit: f64,
    /// The run compared with, summarised when the targets were resolved.
    pub baseline: Option<BaselineSummary>,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            p95_ms: 500.0,
            success_rate: 99.5,
            error_rate: 0.5,
            ws_p95_ms: 500.0,
            ws_error_rate: 0.5,
            rules: Vec::new(),
            count_429_as_failure: false,
            max_throttled_share: 5.0,
            spike_window_secs: 10.0,
            spike_factor: 5.0,
            spike_min_errors: 5,
            memory_warmup_secs: None,
            memory_growth_limit_mib_per_min: 10.0,
            degradation_limit_percent_per_min: 5.0,
            regression_limit: 20.0,
            baseline: None,
        }
    }
}

impl Targets {
    /// Every rule naming a request must name one the scenario makes (`known_keys` are
    /// `"METHOD name"` keys).
    pub fn check_request_names(&self, known_keys: &[String]) -> Result<(), ValidateError> {
        for rule in &self.rules {
            if let Some(key) = &rule.request
                && !known_keys.iter().any(|k| k == key)
            {
                let mut known = known_keys.to_vec();
                known.sort();
                known.dedup();
                return Err(ValidateError::UnknownRequest {
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

/// A duration in the file: `"10s"` or a number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileDuration {
    Secs(u64),
    Text(String),
}

impl FileDuration {
    fn resolve(&self, key: &str) -> Result<Duration, String> {
        match self {
            Self::Secs(s) => Ok(Duration::from_secs(*s)),
            Self::Text(t) => parse_duration(t).map_err(|e| format!("{key}: {e}")),
        }
    }
}

/// The targets file: the command line's option names as keys, plus rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TargetsFile {
    p95_ms: Option<f64>,
    success_rate: Option<f64>,
    error_rate: Option<f64>,
    ws_p95_ms: Option<f64>,
    ws_error_rate: Option<f64>,
    count_429_as_failure: Option<bool>,
    max_throttled_share: Option<f64>,
    spike_window: Option<FileDuration>,
    spike_factor: Option<f64>,
    spike_min_errors: Option<u64>,
    memory_warmup: Option<FileDuration>,
    memory_growth_limit: Option<f64>,
    degradation_limit: Option<f64>,
    baseline: Option<PathBuf>,
    regression_limit: Option<f64>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    requests: BTreeMap<String, RequestTargets>,
}

impl TargetsFile {
    fn read(path: &Path) -> Result<Self, ValidateError> {
        let text = std::fs::read_to_string(path).map_err(|source| ValidateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ValidateError::TargetsFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The `[requests.KEY]` tables as rules.
    fn request_rules(&self) -> Result<Vec<Rule>, ValidateError> {
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

fn bad_value(option: &str, reason: impl Into<String>) -> ValidateError {
    ValidateError::BadValue {
        option: option.to_string(),
        reason: reason.into(),
    }
}

fn percent(option: &str, value: f64) -> Result<f64, ValidateError> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(bad_value(
            option,
            format!("{value} is not a percentage from 0 to 100"),
        ))
    }
}

fn positive(option: &str, value: f64) -> Result<f64, ValidateError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(bad_value(option, format!("{value} must be more than 0")))
    }
}

fn non_negative(option: &str, value: f64) -> Result<f64, ValidateError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(bad_value(option, format!("{value} must be 0 or more")))
    }
}

/// Replaces the base rules on the same metric and request with `newer`, keeps the others.
fn layer_rules(base: &mut Vec<Rule>, newer: Vec<Rule>) {
    base.retain(|old| !newer.iter().any(|new| new.same_subject(old)));
    base.extend(newer);
}

impl TargetOptions {
    /// The targets: command line over the targets file over the defaults.
    pub fn resolve(&self) -> Result<Targets, ValidateError> {
        self.resolve_over(&Targets::default())
    }

    /// The targets, with `base` (for example the targets a saved run was judged with)
    /// under the targets file and the command line.
    pub fn resolve_over(&self, base: &Targets) -> Result<Targets, ValidateError> {
        let file = match &self.targets_file {
            Some(path) => TargetsFile::read(path)?,
            None => TargetsFile::default(),
        };
        let file_dir = self
            .targets_file
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf);
        let file_err = |reason: String| ValidateError::TargetsFile {
            path: self.targets_file.clone().unwrap_or_default(),
            reason,
        };

        let mut t = base.clone();
        let pick = |cli: Option<f64>, file: Option<f64>, base: f64| cli.or(file).unwrap_or(base);
        t.p95_ms = positive("--p95-ms", pick(self.p95_ms, file.p95_ms, t.p95_ms))?;
        t.success_rate = percent(
            "--success-rate",
            pick(self.success_rate, file.success_rate, t.success_rate),
        )?;
        let error_rate_given = self.error_rate.or(file.error_rate);
        t.error_rate = percent(
            "--error-rate",
            pick(self.error_rate, file.error_rate, t.error_rate),
        )?;
        t.ws_p95_ms = positive(
            "--ws-p95-ms",
            pick(self.ws_p95_ms, file.ws_p95_ms, t.ws_p95_ms),
        )?;
        // Unless set on its own, the WebSocket error rate follows the error-rate target.
        t.ws_error_rate = percent(
            "--ws-error-rate",
            self.ws_error_rate
                .or(file.ws_error_rate)
                .or(error_rate_given)
                .unwrap_or(t.ws_error_rate),
        )?;
        t.count_429_as_failure = self.count_429_as_failure
            || file.count_429_as_failure.unwrap_or(t.count_429_as_failure);
        t.max_throttled_share = percent(
            "--max-throttled-share",
            pick(
                self.max_throttled_share,
                file.max_throttled_share,
                t.max_throttled_share,
            ),
        )?;
        let file_window = file
            .spike_window
            .as_ref()
            .map(|d| d.resolve("spike-window"))
            .transpose()
            .map_err(file_err)?;
        if let Some(window) = self.spike_window.or(file_window) {
            t.spike_window_secs = window.as_secs_f64();
        }
        if t.spike_window_secs < 1.0 {
            return Err(bad_value(
                "--spike-window",
                "the window must be at least 1s long",
            ));
        }
        t.spike_factor = positive(
            "--spike-factor",
            pick(self.spike_factor, file.spike_factor, t.spike_factor),
        )?;
        t.spike_min_errors = self
            .spike_min_errors
            .or(file.spike_min_errors)
            .unwrap_or(t.spike_min_errors)
            .max(1);
        let file_warmup = file
            .memory_warmup
            .as_ref()
            .map(|d| d.resolve("memory-warmup"))
            .transpose()
            .map_err(file_err)?;
        if let Some(warmup) = self.memory_warmup.or(file_warmup) {
            t.memory_warmup_secs = Some(warmup.as_secs_f64());
        }
        t.memory_growth_limit_mib_per_min = non_negative(
            "--memory-growth-limit",
            pick(
                self.memory_growth_limit,
                file.memory_growth_limit,
                t.memory_growth_limit_mib_per_min,
            ),
        )?;
        t.degradation_limit_percent_per_min = non_negative(
            "--degradation-limit",
            pick(
                self.degradation_limit,
                file.degradation_limit,
                t.degradation_limit_percent_per_min,
            ),
        )?;
        t.regression_limit = non_negative(
            "--regression-limit",
            pick(
                self.regression_limit,
                file.regression_limit,
                t.regression_limit,
            ),
        )?;

        layer_rules(&mut t.rules, file.request_rules()?);
        let cli_rules = self
            .target
            .iter()
            .map(|text| parse_rule(text))
            .collect::<Result<Vec<_>, _>>()?;
        layer_rules(&mut t.rules, cli_rules);

        // A baseline named in the file is found beside the file.
        let baseline_path = match (&self.baseline, &file.baseline) {
            (Some(cli), _) => Some(cli.clone()),
            (None, Some(in_file)) if in_file.is_relative() => Some(
                file_dir
                    .map(|d| d.join(in_file))
                    .unwrap_or_else(|| in_file.clone()),
            ),
            (None, Some(in_file)) => Some(in_file.clone()),
            (None, None) => None,
        };
        if let Some(path) = baseline_path {
            t.baseline = Some(BaselineSummary::load(&path, t.count_429_as_failure)?);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_units_and_requests() {
        let r = parse_rule("p95<2000ms for POST /api/conversation").expect("rule");
        assert_eq!(r.metric, RuleMetric::Percentile(95.0));
        assert_eq!(r.op, Comparison::Lt);
        assert_eq!(r.value, 2000.0);
        assert_eq!(r.request.as_deref(), Some("POST /api/conversation"));
        assert_eq!(r.id(), "p95 POST /api/conversation");
        assert_eq!(r.target_text(), "< 2000ms");

        let r = parse_rule("error-rate <= 1% for get /api/stats").expect("rule");
        assert_eq!(
            (r.metric, r.op, r.value),
            (RuleMetric::ErrorRate, Comparison::Le, 1.0)
        );
        assert_eq!(r.request.as_deref(), Some("GET /api/stats"));

        let r = parse_rule("p99.9 < 2s").expect("rule");
        assert_eq!(r.metric, RuleMetric::Percentile(99.9));
        assert_eq!(r.value, 2000.0);
        assert_eq!(r.request, None);
        assert_eq!(r.id(), "p99.9 all HTTP");

        let r = parse_rule("success-rate>=99 for WS /ws/{session_id} message").expect("rule");
        assert_eq!(r.request.as_deref(), Some("WS /ws/{session_id} message"));
        assert_eq!(parse_rule("avg<800us").expect("rule").value, 0.8);
        assert_eq!(
            parse_rule("max<=3000 for GET /health")
                .expect("rule")
                .metric,
            RuleMetric::Max
        );
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_syntax() {
        for bad in [
            "p95 2000ms",
            "p95<",
            "p95<fast",
            "p0<100ms",
            "p101<100ms",
            "latency<100ms",
            "p95<100h",
            "error-rate<1ms",
            "error-rate<150%",
            "p95<100ms for",
            "p95<100ms for GET",
            "p95<100ms for G3T /x",
        ] {
            let err = parse_rule(bad).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains(&format!("'{bad}'")), "{text}");
            assert!(text.contains("METRIC OP VALUE"), "{text}");
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
            Err(ValidateError::TargetsFile { .. })
        ));
        std::fs::write(&path, "rules = [\"p95 fast\"]\n").expect("write");
        assert!(matches!(
            options.resolve(),
            Err(ValidateError::BadRule { .. })
        ));
        let missing = TargetOptions {
            targets_file: Some(dir.path().join("missing.toml")),
            ..TargetOptions::default()
        };
        assert!(matches!(missing.resolve(), Err(ValidateError::Read { .. })));
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
                matches!(options.resolve(), Err(ValidateError::BadValue { .. })),
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
