//! The security probes' report for people and CI: the console section printed after the
//! target validation, the `_findings.md` file, and the probes' JUnit testsuite.

use super::junit::{CaseOutcome, TestCase, TestSuite};
use crate::probes::{Finding, ProbeOutcome, ProbeReport, ProbeStatus, Severity};
use std::fmt::Write as _;
use std::io::{self, Write};

fn status_label(p: &ProbeOutcome) -> String {
    match p.status {
        ProbeStatus::Passed => "PASS".to_string(),
        ProbeStatus::Findings => format!("FIND {}", p.findings.len()),
        ProbeStatus::NotTested => "NOT TESTED".to_string(),
    }
}

fn findings_count(n: usize) -> String {
    format!("{n} finding{}", if n == 1 { "" } else { "s" })
}

fn counts(report: &ProbeReport) -> String {
    format!(
        "{} high, {} medium, {} low",
        report.count(Severity::High),
        report.count(Severity::Medium),
        report.count(Severity::Low)
    )
}

/// What the findings do to the exit code.
fn consequence(report: &ProbeReport, report_only: bool) -> &'static str {
    match (report.has_high(), report_only) {
        (false, _) => "no high-severity finding: the exit code is the verdict's",
        (true, false) => "a high-severity finding fails the run (exit code 1)",
        (true, true) => "reported only (--probes-report-only): the exit code is the verdict's",
    }
}

fn answer_text(f: &Finding) -> String {
    let status = f
        .answer
        .status
        .map_or_else(|| "no answer".to_string(), |s| s.to_string());
    if f.answer.body.is_empty() {
        status
    } else {
        format!("{status} {}", f.answer.body)
    }
}

/// The inputs that showed a finding: `input: X`, or `inputs (N): X; Y; Z`.
pub(crate) fn inputs_text(f: &Finding) -> String {
    match f.inputs.as_slice() {
        [one] => format!("input: {one}"),
        many => format!("inputs ({}): {}", many.len(), many.join("; ")),
    }
}

/// The console section: one line per probe, then every finding with its evidence.
pub fn print_report(
    out: &mut impl Write,
    report: &ProbeReport,
    report_only: bool,
) -> io::Result<()> {
    writeln!(
        out,
        "\nSECURITY PROBES ({} requests in {:.1} s, not counted in the figures above)",
        report.requests(),
        report.elapsed_secs
    )?;
    for p in &report.probes {
        let first = match p.status {
            ProbeStatus::NotTested => p
                .notes
                .iter()
                .rev()
                .find(|n| n.starts_with("not tested"))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        writeln!(
            out,
            "[{}] {} ({} requests){}",
            status_label(p),
            p.name,
            p.requests,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        )?;
    }
    let findings: Vec<&Finding> = report.findings().collect();
    if !findings.is_empty() {
        writeln!(out, "\nFindings:")?;
        for f in &findings {
            writeln!(
                out,
                "- [{}] {} on {}: {}",
                f.severity.label(),
                f.probe,
                f.endpoint,
                f.meaning
            )?;
            writeln!(out, "    {}", inputs_text(f))?;
            writeln!(
                out,
                "    request: {} {} ({})",
                f.request.method, f.request.path, f.request.summary
            )?;
            writeln!(out, "    answer:  {}", answer_text(f))?;
        }
    }
    writeln!(
        out,
        "\nProbes: {} ({}); {}",
        findings_count(findings.len()),
        counts(report),
        consequence(report, report_only)
    )
}

/// Text safe inside a Markdown table cell or code span.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('`', "'")
        .replace('\n', " ")
}

/// The `_findings.md` document; `heading` names the run (scenario, host, time).
pub fn findings_markdown(report: &ProbeReport, heading: &str, report_only: bool) -> String {
    let mut md = String::new();
    let findings: Vec<&Finding> = report.findings().collect();
    let _ = writeln!(md, "# Security probe findings\n\n{heading}\n");
    let _ = writeln!(
        md,
        "{} probes, {} requests in {:.1} s (not counted in the performance figures). {} ({}); {}.\n",
        report.probes.len(),
        report.requests(),
        report.elapsed_secs,
        findings_count(findings.len()),
        counts(report),
        consequence(report, report_only)
    );
    let _ = writeln!(
        md,
        "| probe | result | requests | notes |\n|---|---|---|---|"
    );
    for p in &report.probes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            p.name,
            status_label(p),
            p.requests,
            cell(&p.notes.join("; "))
        );
    }
    if findings.is_empty() {
        let _ = writeln!(md, "\nNo findings.");
        return md;
    }
    let _ = writeln!(md, "\n## Findings");
    for (i, f) in findings.iter().enumerate() {
        let _ = writeln!(
            md,
            "\n### {}. [{}] {} on `{}`\n\n{}\n\n- {}\n- Request: `{} {}` ({})\n- Answer: `{}`",
            i + 1,
            f.severity.label(),
            f.probe,
            cell(&f.endpoint),
            f.meaning,
            cell(&inputs_text(f)),
            f.request.method,
            cell(&f.request.path),
            cell(&f.request.summary),
            cell(&answer_text(f))
        );
    }
    md
}

/// The probes as a JUnit `<testsuite name="security probes">`, one case per probe. A probe
/// fails there exactly when it fails the run (a high-severity finding without
/// `--probes-report-only`); its other findings and its notes are the case's output, and a
/// probe that could not test what it checks is skipped.
pub fn junit_suite(report: &ProbeReport, report_only: bool) -> TestSuite {
    let cases = report
        .probes
        .iter()
        .map(|p| {
            let mut output: Vec<String> = p
                .findings
                .iter()
                .flat_map(|f| {
                    [
                        format!("[{}] {} on {}", f.severity.label(), f.meaning, f.endpoint),
                        inputs_text(f),
                        format!(
                            "request: {} {} ({})",
                            f.request.method, f.request.path, f.request.summary
                        ),
                        format!("answer: {}", answer_text(f)),
                    ]
                })
                .collect();
            output.extend(p.notes.iter().cloned());
            let high = p.findings.iter().find(|f| f.severity == Severity::High);
            let outcome = match (p.status, high) {
                (ProbeStatus::NotTested, _) => CaseOutcome::Skipped {
                    reason: p
                        .notes
                        .iter()
                        .rev()
                        .find(|n| n.starts_with("not tested"))
                        .cloned()
                        .unwrap_or_else(|| "not tested".to_string()),
                },
                (_, Some(f)) if !report_only => CaseOutcome::Failed {
                    message: format!("[HIGH] {}", f.meaning),
                },
                _ => CaseOutcome::Passed,
            };
            TestCase {
                name: p.name.clone(),
                outcome,
                output,
            }
        })
        .collect();
    TestSuite {
        name: "security probes".to_string(),
        time_secs: report.elapsed_secs,
        timestamp: None,
        properties: Vec::new(),
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tests::report_with;

    #[test]
    fn the_junit_suite_fails_a_probe_exactly_when_it_fails_the_run() {
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
        assert_eq!(suite.cases[1].output[0], "[MEDIUM] m on GET /");
        assert_eq!(suite.cases[1].output[1], "input: i");
        assert_eq!(junit_suite(&report, true).failures(), 0);
    }
}
