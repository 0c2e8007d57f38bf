//! Per-request and extra rules: `p95<2000ms for POST /api/conversation`, given with
//! `--target` or in the targets file.

use super::{TargetError, trim_num};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The rule syntax, as error messages show it.
pub const RULE_SYNTAX: &str = "METRIC OP VALUE [for METHOD NAME], where METRIC is pNN (p50, p95, p99.9...), \
avg, max, error-rate or success-rate, OP is <, <=, > or >=, and VALUE is a time (500ms, 2s, 800us; ms \
when bare) or a percentage (1%); for example \"p95<2000ms for POST /api/conversation\" or \
\"error-rate<=1% for GET /api/stats\"";

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
            Self::Percentile(p) => write!(f, "p{}", trim_num(*p)),
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

    /// The target as the summary shows it, for example `below 2000 ms`.
    pub fn target_text(&self) -> String {
        let unit = if self.metric.is_time() { " ms" } else { "%" };
        format!(
            "{} {}{unit}",
            super::bound_words(self.op),
            trim_num(self.value)
        )
    }

    pub(super) fn same_subject(&self, other: &Rule) -> bool {
        self.metric == other.metric && self.request == other.request
    }
}

impl std::str::FromStr for Rule {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_rule(text)
    }
}

fn bad_rule(rule: &str, reason: impl Into<String>) -> TargetError {
    TargetError::BadRule {
        rule: rule.to_string(),
        reason: reason.into(),
    }
}

/// Parses `METRIC OP VALUE [for METHOD NAME]`.
pub fn parse_rule(text: &str) -> Result<Rule, TargetError> {
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
        assert_eq!(r.target_text(), "below 2000 ms");

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
}
