//! Reading Prometheus's text exposition format (0.0.4, and OpenMetrics text, whose extra
//! lines are comments here): sample lines with their labels, and the `# TYPE` of each
//! family. Strict: a line that is neither is refused, so a web page or a JSON answer reads
//! as "not Prometheus text" instead of as no series.
//!
//! Written here rather than taken from `prometheus-parse`: that crate splits label pairs on
//! `,` and `=` without regard to quotes or escapes (a value holding a comma, like a request
//! template or a path, breaks it) and would bring a second `itertools` into the build.

use std::collections::HashMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names and their values, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A whole exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → its `# TYPE` (`counter`, `gauge`...).
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Whether `name` is a counter: typed so, or untyped and named like one.
    pub fn is_counter(&self, name: &str) -> bool {
        let family = name.strip_suffix("_total").unwrap_or(name);
        match self.types.get(name).or_else(|| self.types.get(family)) {
            Some(kind) => kind == "counter",
            None => name.ends_with("_total"),
        }
    }
}

/// Why a text is not Prometheus text: its first bad line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line} is not Prometheus text: {text:?}")]
pub struct NotExposition {
    pub line: usize,
    pub text: String,
}

/// Parses `text`; a line that is not a comment, a blank or a sample is an error.
pub fn parse(text: &str) -> Result<Exposition, NotExposition> {
    let mut out = Exposition::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (words.next(), words.next())
            {
                out.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let sample = sample(line).ok_or_else(|| NotExposition {
            line: i + 1,
            text: line.chars().take(80).collect(),
        })?;
        out.samples.push(sample);
    }
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// `name{label="value",...} value [timestamp]`.
fn sample(line: &str) -> Option<Sample> {
    let name_len = name_length(line)?;
    let (name, mut rest) = line.split_at(name_len);
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    // The value must be separated from what comes before.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let value = number(words.next()?)?;
    if let Some(timestamp) = words.next() {
        timestamp.parse::<i64>().ok()?;
    }
    if words.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn name_length(text: &str) -> Option<usize> {
    let mut chars = text.char_indices();
    let (_, first) = chars.next()?;
    if !is_name_start(first) {
        return None;
    }
    Some(
        chars
            .find(|(_, c)| !is_name_char(*c))
            .map_or(text.len(), |(at, _)| at),
    )
}

/// The labels after a `{`, up to and including the closing `}`; returns them and the rest.
pub fn label_set(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let len = name_length(text)?;
        let (name, rest) = text.split_at(len);
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let (value, rest) = quoted(rest)?;
        labels.push((name.to_string(), value));
        let rest = rest.trim_start();
        text = match rest.strip_prefix(',') {
            Some(more) => more,
            None if rest.starts_with('}') => rest,
            None => return None,
        };
    }
}

/// A `"..."` label value with its `\\`, `\"` and `\n` escapes; returns it and the rest.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_types_are_read() {
        let text = "# HELP process_cpu_seconds_total CPU.\n\
                    # TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total 1.5\n\
                    \n\
                    lva_http_requests_total{status=\"200\"} 7 1700000000000\n\
                    req{path=\"/a,b=c\",note=\"say \\\"hi\\\"\\n\\\\\"} +Inf\n\
                    up 1e3\n";
        let e = parse(text).expect("exposition");
        assert_eq!(e.samples.len(), 4);
        assert_eq!(e.samples[0].value, 1.5);
        assert!(e.is_counter("process_cpu_seconds_total"));
        assert!(e.is_counter("lva_http_requests_total"));
        assert!(!e.is_counter("up"));
        assert_eq!(
            e.samples[2].labels,
            vec![
                ("path".to_string(), "/a,b=c".to_string()),
                ("note".to_string(), "say \"hi\"\n\\".to_string()),
            ]
        );
        assert_eq!(e.samples[2].value, f64::INFINITY);
        assert_eq!(e.samples[3].value, 1000.0);
    }

    #[test]
    fn other_formats_are_refused_by_their_first_bad_line() {
        let html = "<!DOCTYPE html>\n<html><body>Not found</body></html>\n";
        assert_eq!(
            parse(html).map(|_| ()),
            Err(NotExposition {
                line: 1,
                text: "<!DOCTYPE html>".into()
            })
        );
        assert!(parse("{\"status\": \"ok\"}").is_err());
        assert!(parse("ok\n").is_err());
        assert!(parse("x{a=\"1\" 2\n").is_err());
        assert!(parse("x 1 2 3\n").is_err());
        assert!(parse("x{a=1} 2\n").is_err());
        // An empty exposition is one, with no samples.
        assert!(parse("").is_ok_and(|e| e.samples.is_empty()));
    }
}
