//! The verdict as JUnit XML (`_junit.xml`), so that CI systems (GitHub Actions reporters,
//! GitLab's `artifacts:reports:junit`, Jenkins) show each target as a test of its own.
//!
//! A file holds one `<testsuite>` per [`TestSuite`]: today the verdict's checks
//! ([`TestSuite::of_verdict`]); any other list of pass/fail results becomes a suite with
//! [`TestSuite::from_results`] and is written beside it by passing both to [`junit_xml`].
//! Each check is a `<testcase>`: a failed check carries a `<failure>` whose message is the
//! summary's line and whose text is the details and advice; a skipped check carries
//! `<skipped>` with the reason.

use super::console::check_result;
use crate::measure::MeasuredRun;
use crate::verdict::{Check, Verdict};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// How a test case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    Passed,
    /// `message` is the one-line reason shown by CI systems.
    Failed {
        message: String,
    },
    /// Not applicable; never a failure.
    Skipped {
        reason: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub name: String,
    pub outcome: CaseOutcome,
    /// Lines shown with the case: the failure's text, or `<system-out>` otherwise.
    pub output: Vec<String>,
}

/// One `<testsuite>`: its name is also the `classname` of its cases.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSuite {
    pub name: String,
    /// Seconds the suite took (for the verdict: the run's length).
    pub time_secs: f64,
    pub timestamp: Option<DateTime<Utc>>,
    /// `<properties>` of the suite, as (name, value): the verdict's carries the run id.
    pub properties: Vec<(String, String)>,
    pub cases: Vec<TestCase>,
}

impl TestCase {
    fn of_check(check: &Check) -> TestCase {
        let outcome = if check.skipped {
            CaseOutcome::Skipped {
                reason: check.actual.clone(),
            }
        } else if check.passed {
            CaseOutcome::Passed
        } else {
            CaseOutcome::Failed {
                message: check_result(check),
            }
        };
        let mut output = check.details.clone();
        output.extend(check.advice.iter().map(|a| format!("What to look at: {a}")));
        TestCase {
            name: check.label.clone(),
            outcome,
            output,
        }
    }
}

impl TestSuite {
    /// One case per check of the verdict, in the verdict's order, in a suite named
    /// `lva-loadtest {scenario}`.
    pub fn of_verdict(verdict: &Verdict, run: &MeasuredRun) -> TestSuite {
        TestSuite {
            name: format!("lva-loadtest {}", verdict.preset_name),
            time_secs: run.duration_secs,
            timestamp: run.started_at,
            properties: Vec::new(),
            cases: verdict.checks.iter().map(TestCase::of_check).collect(),
        }
    }

    /// A suite from plain `(name, passed, message)` results; the message is the failure's
    /// reason, or shown as output when the case passed (empty messages are left out).
    pub fn from_results<N, M>(
        name: impl Into<String>,
        results: impl IntoIterator<Item = (N, bool, M)>,
    ) -> TestSuite
    where
        N: Into<String>,
        M: Into<String>,
    {
        let cases = results
            .into_iter()
            .map(|(case, passed, message)| {
                let message = message.into();
                let (outcome, output) = match (passed, message.is_empty()) {
                    (false, _) => (CaseOutcome::Failed { message }, Vec::new()),
                    (true, true) => (CaseOutcome::Passed, Vec::new()),
                    (true, false) => (CaseOutcome::Passed, vec![message]),
                };
                TestCase {
                    name: case.into(),
                    outcome,
                    output,
                }
            })
            .collect();
        TestSuite {
            name: name.into(),
            time_secs: 0.0,
            timestamp: None,
            properties: Vec::new(),
            cases,
        }
    }

    pub fn failures(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Failed { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Skipped { .. }))
    }

    fn count(&self, which: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| which(&c.outcome)).count()
    }
}

/// The JUnit XML document of `suites`, in a `<testsuites>` root.
pub fn junit_xml(suites: &[TestSuite]) -> Vec<u8> {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = |f: fn(&TestSuite) -> usize| suites.iter().map(f).sum::<usize>();
    // Writing to a String cannot fail.
    let _ = writeln!(
        xml,
        "<testsuites name=\"lva-loadtest\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\">",
        total(|s| s.cases.len()),
        total(TestSuite::failures),
        total(TestSuite::skipped),
    );
    for suite in suites {
        let _ = write!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{:.3}\"",
            escape(&suite.name, true),
            suite.cases.len(),
            suite.failures(),
            suite.skipped(),
            suite.time_secs.max(0.0),
        );
        if let Some(at) = suite.timestamp {
            let _ = write!(xml, " timestamp=\"{}\"", at.format("%Y-%m-%dT%H:%M:%S"));
        }
        xml.push_str(">\n");
        if !suite.properties.is_empty() {
            xml.push_str("    <properties>\n");
            for (name, value) in &suite.properties {
                let _ = writeln!(
                    xml,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    escape(name, true),
                    escape(value, true)
                );
            }
            xml.push_str("    </properties>\n");
        }
        for case in &suite.cases {
            write_case(&mut xml, &suite.name, case);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml.into_bytes()
}

fn write_case(xml: &mut String, classname: &str, case: &TestCase) {
    let _ = write!(
        xml,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"0\"",
        escape(&case.name, true),
        escape(classname, true)
    );
    let output = escape(&case.output.join("\n"), false);
    match &case.outcome {
        CaseOutcome::Passed if output.is_empty() => xml.push_str("/>\n"),
        CaseOutcome::Passed => {
            let _ = writeln!(
                xml,
                ">\n      <system-out>{output}</system-out>\n    </testcase>"
            );
        }
        CaseOutcome::Failed { message } => {
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{}\" type=\"target missed\">{output}</failure>\n    </testcase>",
                escape(message, true)
            );
        }
        CaseOutcome::Skipped { reason } => {
            let _ = writeln!(
                xml,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape(reason, true)
            );
        }
    }
}

/// Escapes text for XML 1.0; inside an attribute, line breaks and tabs are kept as
/// character references (a parser would otherwise turn them into spaces). Characters XML
/// cannot carry at all (most control characters) become U+FFFD.
fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' if attribute => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            '\n' | '\r' | '\t' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(suites: &[TestSuite]) -> String {
        String::from_utf8(junit_xml(suites)).expect("utf-8")
    }

    #[test]
    fn escapes_markup_quotes_breaks_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>", true),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(escape("one\ntwo\t", true), "one&#10;two&#9;");
        assert_eq!(escape("one\ntwo", false), "one\ntwo");
        assert_eq!(escape("bell\u{7}", false), "bell\u{FFFD}");
    }

    #[test]
    fn results_become_cases_with_counts() {
        let suite = TestSuite::from_results(
            "probes",
            [
                ("login is limited", true, ""),
                (
                    "exports need a token",
                    false,
                    "GET export answered 200 <no token>",
                ),
                ("refresh is not access", true, "checked 3 times"),
            ],
        );
        assert_eq!((suite.failures(), suite.skipped()), (1, 0));
        let xml = text(&[suite]);
        assert!(xml.contains("<testsuites name=\"lva-loadtest\" tests=\"3\" failures=\"1\""));
        assert!(
            xml.contains("<testcase name=\"login is limited\" classname=\"probes\" time=\"0\"/>")
        );
        assert!(xml.contains("<failure message=\"GET export answered 200 &lt;no token&gt;\""));
        assert!(xml.contains("<system-out>checked 3 times</system-out>"));
    }

    #[test]
    fn the_verdict_is_one_case_per_check_and_parses() {
        use crate::verdict::testing::{row, run_of};
        use crate::verdict::{RunFacts, Targets, judge};
        // Slow and failing enough to miss the P95, success and error targets.
        let run = run_of(
            10.0,
            vec![vec![row("GET", "/api/stats", 900, 90, 10, 0)]; 3],
        );
        let verdict = judge(&run, &Targets::default(), &RunFacts::default());
        let mut suite = TestSuite::of_verdict(&verdict, &run);
        suite.properties.push(("run_id".into(), "ab12cd34".into()));
        let xml = text(&[suite]);
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .expect("a testsuite");
        assert_eq!(suite.attribute("name"), Some("lva-loadtest load"));
        let property = suite
            .descendants()
            .find(|n| n.has_tag_name("property"))
            .expect("a property");
        assert_eq!(property.attribute("name"), Some("run_id"));
        assert_eq!(property.attribute("value"), Some("ab12cd34"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), verdict.checks.len());
        for (case, check) in cases.iter().zip(&verdict.checks) {
            assert_eq!(case.attribute("name"), Some(check.label.as_str()));
            let has = |tag: &str| case.children().any(|n| n.has_tag_name(tag));
            assert_eq!(has("failure"), check.failed(), "{}", check.id);
            assert_eq!(has("skipped"), check.skipped, "{}", check.id);
        }
        let failed = verdict.failed_checks().count();
        assert!(failed >= 3, "{:#?}", verdict.checks);
        assert_eq!(
            suite.attribute("failures"),
            Some(failed.to_string().as_str())
        );
        let p95 = cases
            .iter()
            .find(|c| c.attribute("name") == Some("P95 Response Time"))
            .and_then(|c| c.children().find(|n| n.has_tag_name("failure")))
            .expect("P95 failed");
        assert_eq!(
            p95.attribute("message"),
            Some("P95 Response Time: 900.0 ms (target: below 500 ms)")
        );
        assert!(p95.text().is_some_and(|t| t.contains("What to look at")));
    }
}
