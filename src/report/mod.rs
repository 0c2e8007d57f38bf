//! The run's outputs: the HTML report, the console summary, the stats, history and failures
//! CSV, the metrics JSON, the JUnit XML of the verdict, the probes' findings, and the names
//! and places of every file (Goose's own reports included, when asked for).
//!
//! Files are named `load_test_{scenario}_{YYYYmmdd_HHMMSS}` plus a suffix, in the output
//! directory, which [`RunOutputs::prepare`] creates before the run; the name is claimed
//! there exclusively (a hidden `.{stem}.claim` file, created only if absent, removed when
//! the run ends), so that two runs started in the same second never share one. Every file is
//! written whole or not at all ([`write_atomic`]).

pub mod atomic;
pub mod capacity;
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
    #[error("cannot encode the {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Where a run's files go and what they are called. It holds the claim on its name (see
/// [`RunOutputs::prepare_named`]) until it is dropped.
#[derive(Debug)]
pub struct RunOutputs {
    pub dir: PathBuf,
    /// `load_test_{scenario}_{YYYYmmdd_HHMMSS}`, with `_2`, `_3`... when another run claimed
    /// that name, or wrote files under it, first.
    pub stem: String,
    /// The file that claims `stem` in `dir` while the run goes (removed when dropped).
    claim: PathBuf,
}

/// The suffixes of every file a run may write under its stem.
const SUFFIXES: [&str; 10] = [
    ".html",
    "_capacity.json",
    "_goose.html",
    "_goose.json",
    "_stats.csv",
    "_stats_history.csv",
    "_failures.csv",
    "_metrics.json",
    "_junit.xml",
    "_findings.md",
];

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

/// `dir/.{stem}.claim`: the file whose exclusive creation reserves `stem` in `dir`.
fn claim_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.claim"))
}

/// Claims `stem` in `dir`: creates its claim file exclusively (another run holding it
/// makes this fail with `AlreadyExists`), then makes sure no earlier run wrote files under
/// it. `Ok(false)` when the name is taken either way.
fn claim(dir: &Path, stem: &str) -> std::io::Result<bool> {
    let path = claim_path(dir, stem);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => {
            use std::io::Write;
            // Who holds it, for whoever finds one a killed run left behind.
            let _ = writeln!(file, "{}", std::process::id());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    }
    // A finished run's claim is gone, its files are not: they keep the name taken.
    let written = SUFFIXES
        .iter()
        .any(|suffix| dir.join(format!("{stem}{suffix}")).exists());
    if written {
        let _ = std::fs::remove_file(&path);
    }
    Ok(!written)
}

impl RunOutputs {
    /// Creates `dir` if missing and claims the run's name in it (which proves it
    /// writable), so an unusable directory is found before any traffic.
    pub fn prepare<Tz: TimeZone>(
        dir: &Path,
        preset_name: &str,
        now: DateTime<Tz>,
    ) -> Result<RunOutputs, ReportError>
    where
        Tz::Offset: Display,
    {
        let base = format!(
            "load_test_{}_{}",
            file_safe(preset_name),
            now.format("%Y%m%d_%H%M%S")
        );
        RunOutputs::prepare_named(dir, &base)
    }

    /// Like [`RunOutputs::prepare`], for files named `base` plus their suffixes. The name is
    /// claimed exclusively: a run that finds `base` claimed by another (two runs started in
    /// the same second into one folder) or used by an earlier one takes the next free of
    /// `base_2`, `base_3`...
    pub fn prepare_named(dir: &Path, base: &str) -> Result<RunOutputs, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let stem = claim_free_stem(dir, base).map_err(|source| ReportError::Unwritable {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(RunOutputs {
            dir: dir.to_path_buf(),
            claim: claim_path(dir, &stem),
            stem,
        })
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

    /// The security probes' findings (when the probes ran).
    pub fn findings_md_path(&self) -> PathBuf {
        self.path("_findings.md")
    }

    /// Writes every file of the run: the HTML report, the stats, history and failures CSV,
    /// the metrics JSON, the JUnit XML (the verdict's suite, and the probes' when they ran)
    /// and the findings. A folder that vanished during the run is created again, each file
    /// is written on its own (one that fails loses no other), and a metrics JSON that cannot
    /// go into the folder goes to the system's temporary folder instead
    /// ([`Written::fallback`]). Only an encoding error is an `Err`.
    pub fn write_all(&self, r: &RunReport<'_>) -> Result<Written, ReportError> {
        let place = self.place();
        let mut verdict_suite = junit::TestSuite::of_verdict(r.verdict, r.run);
        if !r.provenance.run_id.is_empty() {
            verdict_suite
                .properties
                .push(("run_id".into(), r.provenance.run_id.clone()));
        }
        // The plan as it ran (the spawn rate and ramp the run really had), for CI readers.
        verdict_suite.properties.extend(
            r.provenance
                .plan
                .iter()
                .map(|(label, value)| (label.to_lowercase().replace(' ', "_"), value.clone())),
        );
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
        let metrics =
            json::metrics_json(r.run, r.verdict, r.targets, r.facts, &extra, r.provenance)?;
        let mut files = vec![
            (".html", html::html_report(r).into_bytes()),
            ("_stats.csv", csv::stats_csv(r.run, r.count_429())?),
            (
                "_stats_history.csv",
                history::history_csv(r.run, r.count_429())?,
            ),
            ("_failures.csv", csv::failures_csv(r.run)?),
            (METRICS_JSON, metrics),
            ("_junit.xml", junit::junit_xml(&suites)),
        ];
        if !r.run.cleanup.left_behind.is_empty() {
            let bytes = csv::accounts_left_csv(r.run, &r.provenance.run_id)?;
            files.push(("_accounts_left.csv", bytes));
        }
        if let Some(p) = r.probes {
            let heading = format!(
                "Scenario {} against {} ({}, run id {})",
                r.verdict.preset_name, r.provenance.host, place.stem, r.provenance.run_id
            );
            let text = probes::findings_markdown(p, &heading, r.probes_report_only);
            files.push(("_findings.md", text.into_bytes()));
        }
        Ok(self.write_each(place, files, Some(&r.provenance.run_id)))
    }

    /// The files `validate` writes for a saved run: the HTML report and the history CSV
    /// (the saved file it read stays where it is: no fallback).
    pub fn write_review(&self, r: &RunReport<'_>) -> Result<Written, ReportError> {
        let files = vec![
            (".html", html::html_report(r).into_bytes()),
            (
                "_stats_history.csv",
                history::history_csv(r.run, r.count_429())?,
            ),
        ];
        Ok(self.write_each(self.place(), files, None))
    }

    /// The folder and name the files go to now: the folder is created again when it
    /// vanished during the run, and the name claimed in it again (the next free one if
    /// another run took it meanwhile).
    fn place(&self) -> Place {
        let mut place = Place {
            stem: self.stem.clone(),
            recreated: false,
            claim: None,
            unusable: None,
        };
        if self.dir.is_dir() {
            return place;
        }
        match std::fs::create_dir_all(&self.dir)
            .and_then(|()| claim_free_stem(&self.dir, &self.stem))
        {
            Ok(stem) => {
                place.recreated = true;
                if stem != self.stem {
                    place.claim = Some(claim_path(&self.dir, &stem));
                }
                place.stem = stem;
            }
            Err(e) => place.unusable = Some(e),
        }
        place
    }

    /// Writes `files` (suffix, bytes) under `place`, each on its own; the metrics JSON goes
    /// to the fallback place when it cannot go into the folder and `run_id` is given.
    fn write_each(
        &self,
        place: Place,
        files: Vec<(&'static str, Vec<u8>)>,
        run_id: Option<&str>,
    ) -> Written {
        let mut written = Written {
            recreated: place.recreated,
            ..Written::default()
        };
        for (suffix, bytes) in files {
            let path = self.dir.join(format!("{}{suffix}", place.stem));
            let result = match &place.unusable {
                Some(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                None => write_atomic(&path, &bytes),
            };
            match result {
                Ok(()) => written.files.push(path),
                Err(e) => {
                    written.lost.push((path, e));
                    if suffix == METRICS_JSON
                        && let Some(run_id) = run_id
                    {
                        let fallback = fallback_path(&place.stem, run_id);
                        match write_atomic(&fallback, &bytes) {
                            Ok(()) => written.fallback = Some(fallback),
                            Err(e) => written.lost.push((fallback, e)),
                        }
                    }
                }
            }
        }
        if let Some(claim) = place.claim {
            let _ = std::fs::remove_file(claim);
        }
        written
    }
}

/// The metrics JSON's suffix.
const METRICS_JSON: &str = "_metrics.json";

/// Where a run's metrics JSON goes when its folder cannot take it: the system's temporary
/// folder (`$TMPDIR`, or `/tmp`), under the run's name and id, which no other run shares.
pub fn fallback_path(stem: &str, run_id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{stem}_run-{run_id}{METRICS_JSON}"))
}

/// Where the files go when they are written (see [`RunOutputs::place`]).
struct Place {
    stem: String,
    recreated: bool,
    /// A claim taken when the folder was created again, under another name than the run's.
    claim: Option<PathBuf>,
    /// Why the folder cannot be used, when it cannot.
    unusable: Option<std::io::Error>,
}

/// What writing a run's files came to: every file is tried, whatever happened to another.
#[derive(Debug, Default)]
pub struct Written {
    /// The files written, in the output folder.
    pub files: Vec<PathBuf>,
    /// The files that could not be written, and why (a failed fallback among them).
    pub lost: Vec<(PathBuf, std::io::Error)>,
    /// The output folder had vanished during the run and was created again.
    pub recreated: bool,
    /// Where the metrics JSON was written instead, when the folder could not take it.
    pub fallback: Option<PathBuf>,
}

impl Written {
    /// The metrics JSON written, in the folder or at the fallback place.
    pub fn metrics_json(&self) -> Option<&Path> {
        self.fallback.as_deref().or_else(|| {
            self.files
                .iter()
                .find(|p| p.to_string_lossy().ends_with(METRICS_JSON))
                .map(PathBuf::as_path)
        })
    }
}

impl Drop for RunOutputs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.claim);
    }
}

/// The first of `base`, `base_2`, `base_3`... that this process can claim in `dir`.
fn claim_free_stem(dir: &Path, base: &str) -> std::io::Result<String> {
    let mut n = 1;
    loop {
        let stem = if n == 1 {
            base.to_string()
        } else {
            format!("{base}_{n}")
        };
        if claim(dir, &stem)? {
            return Ok(stem);
        }
        n += 1;
    }
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
        let names = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(), [".load_test_rate-limit_20260304_050607.claim"]);

        // Claimed by a run still going: the next free name.
        let second = RunOutputs::prepare(&dir, "rate-limit", now).expect("prepare");
        assert_eq!(second.stem, "load_test_rate-limit_20260304_050607_2");
        // Written by a run that ended (its claim is gone): taken too.
        std::fs::write(second.junit_xml_path(), "<x/>").expect("write");
        drop(second);
        drop(out);
        let third = RunOutputs::prepare(&dir, "rate-limit", now).expect("prepare");
        assert_eq!(third.stem, "load_test_rate-limit_20260304_050607");
        std::fs::write(third.metrics_json_path(), "{}").expect("write");
        drop(third);
        let fourth = RunOutputs::prepare(&dir, "rate-limit", now).expect("prepare");
        assert_eq!(fourth.stem, "load_test_rate-limit_20260304_050607_3");
        drop(fourth);
        assert_eq!(
            names(),
            [
                "load_test_rate-limit_20260304_050607_2_junit.xml",
                "load_test_rate-limit_20260304_050607_metrics.json",
            ],
            "no claim outlives its run"
        );
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
