//! The run's outputs: the HTML report, the console summary, the stats, history and failures
//! CSV, the metrics JSON, the JUnit XML of the verdict, the probes' findings, and the names
//! and places of every file (Goose's own reports included, when asked for).
//!
//! Files are named `load_test_{scenario}_{YYYYmmdd_HHMMSS}` plus a suffix, in the output
//! directory, which [`RunOutputs::prepare`] creates and proves writable before the run. Every
//! file is written whole or not at all ([`write_atomic`]).

pub mod atomic;
pub mod console;
pub mod csv;
pub mod history;
pub mod html;
pub mod json;
pub mod junit;
pub mod probes;
pub mod provenance;
pub mod saved;

pub use atomic::write_atomic;
pub use console::{outcome_words, print_result, print_summary};

pub use provenance::Provenance;

use crate::exit::Exit;
use crate::measure::{Histogram, MeasuredRun, RequestKind, per_second};
use crate::probes::ProbeReport;
use crate::verdict::{Rates, RunFacts, Targets, Verdict};
use chrono::{DateTime, TimeZone};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Output errors. Those from [`RunOutputs::prepare`] are configuration errors (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create the output directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the output directory {} is not writable: {source}", dir.display())]
    Unwritable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Where a run's files go and what they are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutputs {
    pub dir: PathBuf,
    /// `load_test_{scenario}_{YYYYmmdd_HHMMSS}`, with `_2`, `_3`... when a run of the same
    /// scenario already wrote files in the same second.
    pub stem: String,
}

/// A scenario name safe in a file name.
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "run".to_string()
    } else {
        safe
    }
}

impl RunOutputs {
    /// Creates `dir` if missing and proves it writable (writes and removes a probe file), so
    /// an unusable directory is found before any traffic.
    pub fn prepare<Tz: TimeZone>(
        dir: &Path,
        scenario: &str,
        now: DateTime<Tz>,
    ) -> Result<RunOutputs, ReportError>
    where
        Tz::Offset: Display,
    {
        let base = format!(
            "load_test_{}_{}",
            file_safe(scenario),
            now.format("%Y%m%d_%H%M%S")
        );
        RunOutputs::prepare_named(dir, &base)
    }

    /// Like [`RunOutputs::prepare`], for files named `base` plus their suffixes (`_2`, `_3`...
    /// added when files of that name exist).
    pub fn prepare_named(dir: &Path, base: &str) -> Result<RunOutputs, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let base = base.to_string();
        let mut outputs = RunOutputs {
            dir: dir.to_path_buf(),
            stem: base.clone(),
        };
        // Never overwrite an earlier run's files.
        let mut n = 1;
        while outputs.metrics_json_path().exists() || outputs.html_path().exists() {
            n += 1;
            outputs.stem = format!("{base}_{n}");
        }
        let probe = dir.join(format!(".{}.probe-{}", outputs.stem, std::process::id()));
        let unwritable = |source| ReportError::Unwritable {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::write(&probe, b"probe").map_err(unwritable)?;
        std::fs::remove_file(&probe).map_err(unwritable)?;
        Ok(outputs)
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.stem))
    }

    /// This tool's HTML report.
    pub fn html_path(&self) -> PathBuf {
        self.path(".html")
    }

    /// Goose's own HTML report (`--goose-report`).
    pub fn goose_html_path(&self) -> PathBuf {
        self.path("_goose.html")
    }

    /// Goose's JSON report (`--goose-report`; readable by `validate` and `--baseline`).
    pub fn goose_json_path(&self) -> PathBuf {
        self.path("_goose.json")
    }

    pub fn stats_csv_path(&self) -> PathBuf {
        self.path("_stats.csv")
    }

    /// The run window by window, in Locust's `--csv-full-history` shape.
    pub fn stats_history_csv_path(&self) -> PathBuf {
        self.path("_stats_history.csv")
    }

    pub fn failures_csv_path(&self) -> PathBuf {
        self.path("_failures.csv")
    }

    pub fn metrics_json_path(&self) -> PathBuf {
        self.path("_metrics.json")
    }

    /// The verdict as JUnit XML, one test case per check.
    pub fn junit_xml_path(&self) -> PathBuf {
        self.path("_junit.xml")
    }

    /// The accounts the run created and could not delete (when there are any).
    pub fn accounts_left_path(&self) -> PathBuf {
        self.path("_accounts_left.csv")
    }

    /// The security probes' findings (when the probes ran).
    pub fn findings_md_path(&self) -> PathBuf {
        self.path("_findings.md")
    }

    /// Writes every file of the run: the HTML report, the stats, history and failures CSV,
    /// the metrics JSON, the JUnit XML (the verdict's suite, and the probes' when they ran)
    /// and the findings; returns their paths.
    pub fn write_all(&self, r: &RunReport<'_>) -> Result<Vec<PathBuf>, ReportError> {
        let mut verdict_suite = junit::TestSuite::of_verdict(r.verdict, r.run);
        if !r.provenance.run_id.is_empty() {
            verdict_suite
                .properties
                .push(("run_id".into(), r.provenance.run_id.clone()));
        }
        let mut suites = vec![verdict_suite];
        let mut extra = r.extra.clone();
        if let Some(p) = r.probes {
            suites.push(probes::junit_suite(p, r.probes_report_only));
            if let Some(map) = extra.as_object_mut() {
                let (outcomes, findings) = p.json_parts();
                map.insert("probes".into(), outcomes);
                map.insert("findings".into(), findings);
                map.insert(
                    "probes_report_only".into(),
                    serde_json::Value::Bool(r.probes_report_only),
                );
                map.insert("probes_elapsed_secs".into(), p.elapsed_secs.into());
            }
        }
        let mut files = vec![
            (self.html_path(), html::html_report(r).into_bytes()),
            (self.stats_csv_path(), csv::stats_csv(r.run, r.count_429())?),
            (
                self.stats_history_csv_path(),
                history::history_csv(r.run, r.count_429())?,
            ),
            (self.failures_csv_path(), csv::failures_csv(r.run)?),
            (
                self.metrics_json_path(),
                json::metrics_json(r.run, r.verdict, r.targets, r.facts, &extra, r.provenance)?,
            ),
            (self.junit_xml_path(), junit::junit_xml(&suites)),
        ];
        if !r.run.cleanup.left_behind.is_empty() {
            let bytes = csv::accounts_left_csv(r.run, &r.provenance.run_id)?;
            files.push((self.accounts_left_path(), bytes));
        }
        if let Some(p) = r.probes {
            let heading = format!(
                "Scenario {} against {} ({}, run id {})",
                r.verdict.scenario, r.provenance.host, self.stem, r.provenance.run_id
            );
            let text = probes::findings_markdown(p, &heading, r.probes_report_only);
            files.push((self.findings_md_path(), text.into_bytes()));
        }
        write_files(files)
    }

    /// The files `validate` writes for a saved run: the HTML report and the history CSV.
    pub fn write_review(&self, r: &RunReport<'_>) -> Result<Vec<PathBuf>, ReportError> {
        write_files(vec![
            (self.html_path(), html::html_report(r).into_bytes()),
            (
                self.stats_history_csv_path(),
                history::history_csv(r.run, r.count_429())?,
            ),
        ])
    }
}

fn write_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    for (path, bytes) in files {
        write_atomic(&path, &bytes).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Everything a run's files are made of: what was measured, how it was judged, and where it
/// came from. A run on one machine, a distributed run and `validate` build one alike.
pub struct RunReport<'a> {
    pub run: &'a MeasuredRun,
    pub verdict: &'a Verdict,
    pub targets: &'a Targets,
    pub facts: &'a RunFacts,
    pub provenance: &'a Provenance,
    /// The security probes' report, when they ran.
    pub probes: Option<&'a ProbeReport>,
    pub probes_report_only: bool,
    /// How the run ends: the verdict, and the probes' high-severity findings.
    pub exit: Exit,
    /// Keys added to the metrics JSON's `extra` (an object, or null).
    pub extra: &'a serde_json::Value,
}

impl RunReport<'_> {
    /// The 429s are judged (as failures), so their times join the judged figures.
    pub fn count_429(&self) -> bool {
        self.verdict.rate_limited_counted_as_failures
    }
}

/// Response times in milliseconds, as the summary and the JSON show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TimeSummary {
    pub average: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl TimeSummary {
    pub fn of(h: &Histogram) -> TimeSummary {
        TimeSummary {
            average: h.mean_us() / 1000.0,
            min: h.min_us as f64 / 1000.0,
            max: h.max_us as f64 / 1000.0,
            p50: h.percentile_ms(50.0),
            p90: h.percentile_ms(90.0),
            p95: h.percentile_ms(95.0),
            p99: h.percentile_ms(99.0),
        }
    }
}

/// The headline figures over HTTP requests, shared by the console, the HTML and the JSON.
#[derive(Debug, Clone)]
pub(crate) struct Headline {
    pub rates: Rates,
    pub requests_per_second: f64,
    /// Over the judged answers (the verdict's P95 is this one's).
    pub times: TimeSummary,
    /// The answers that are not judged, apart: 429s (unless judged) and expected errors.
    pub apart: ApartTimes,
    pub status_codes: BTreeMap<u16, u64>,
}

/// The times of the answers kept out of the judged figures; `None` where there were none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ApartTimes {
    pub rate_limited: Option<TimeSummary>,
    pub expected_errors: Option<TimeSummary>,
}

impl ApartTimes {
    /// The 429s' and the expected errors' own times (the 429s' are also in the judged
    /// figures when they count as failures).
    pub fn of(s: &crate::measure::RequestStats) -> ApartTimes {
        let some = |h: &Histogram| (h.count > 0).then(|| TimeSummary::of(h));
        ApartTimes {
            rate_limited: some(&s.rate_limited_times),
            expected_errors: some(&s.expected_error_times),
        }
    }
}

impl Headline {
    pub(crate) fn of(run: &MeasuredRun, count_429_as_failure: bool) -> Headline {
        let http = run.combined(RequestKind::Http);
        Headline {
            rates: Rates::of(&http, count_429_as_failure),
            requests_per_second: per_second(http.total(), run.duration_secs),
            times: TimeSummary::of(&http.judged_times(count_429_as_failure)),
            apart: ApartTimes::of(&http),
            status_codes: http.status_codes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn prepare_names_files_and_creates_the_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("reports/load_tests");
        let now = Utc
            .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("time");
        let out = RunOutputs::prepare(&dir, "rate-limit", now).expect("prepare");
        assert!(dir.is_dir());
        assert_eq!(out.stem, "load_test_rate-limit_20260304_050607");
        assert_eq!(
            out.stats_csv_path(),
            dir.join("load_test_rate-limit_20260304_050607_stats.csv")
        );
        assert!(
            out.goose_json_path()
                .ends_with("load_test_rate-limit_20260304_050607_goose.json")
        );
        assert!(
            out.html_path()
                .ends_with("load_test_rate-limit_20260304_050607.html")
        );
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            0,
            "probe removed"
        );

        std::fs::write(out.metrics_json_path(), "{}").expect("write");
        let again = RunOutputs::prepare(&dir, "rate-limit", now).expect("prepare");
        assert_eq!(again.stem, "load_test_rate-limit_20260304_050607_2");
        assert_eq!(file_safe("a/b c"), "a_b_c");
    }

    #[test]
    fn an_unusable_directory_is_refused_before_the_run() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, "x").expect("write");
        let err = RunOutputs::prepare(&file.join("sub"), "smoke", Utc::now()).expect_err("file");
        assert!(matches!(err, ReportError::CreateDir { .. }), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let ro = root.path().join("ro");
            std::fs::create_dir(&ro).expect("mkdir");
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
            // Root ignores permissions: only check when the probe would really be refused.
            if std::fs::write(ro.join("x"), "x").is_err() {
                let err = RunOutputs::prepare(&ro, "smoke", Utc::now()).expect_err("read-only");
                assert!(matches!(err, ReportError::Unwritable { .. }), "{err}");
            }
        }
    }
}
