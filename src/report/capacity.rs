//! The capacity search's outputs: its JSON (`_capacity.json`, read back by `--baseline`),
//! its JUnit XML and its HTML page, with a chart of each level's P95 and error rate against
//! its rate and the knee marked.

use super::html::escape;
use super::junit::{TestSuite, junit_xml};
use super::{RunOutputs, write_atomic};
use crate::capacity::{CapacityResult, Finding, Level};
use crate::plan::open::trim;
use crate::verdict::fmt_ms;
use std::path::{Path, PathBuf};

/// The capacity JSON's suffix.
pub const CAPACITY_JSON: &str = "_capacity.json";

/// Reads a saved capacity result (for `--baseline`).
pub fn read_capacity_json(path: &Path) -> Result<CapacityResult, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--baseline {}: cannot read it ({e})", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "--baseline {}: not a capacity result ({e}); give the `{CAPACITY_JSON}` file a \
             capacity search wrote",
            path.display()
        )
    })
}

/// Writes every output of the search; returns the files written and, for each that could
/// not be, why. The JSON falls back to the temporary directory when its folder fails.
pub fn write_capacity(
    outputs: &RunOutputs,
    result: &CapacityResult,
) -> (Vec<PathBuf>, Vec<String>) {
    let mut written = Vec::new();
    let mut failed = Vec::new();
    let json = match serde_json::to_vec_pretty(result) {
        Ok(json) => json,
        Err(e) => {
            failed.push(format!("the capacity JSON: {e}"));
            Vec::new()
        }
    };
    let files: [(&str, Vec<u8>); 3] = [
        (CAPACITY_JSON, json.clone()),
        ("_junit.xml", junit_xml(&[suite(result)])),
        (".html", html_page(result).into_bytes()),
    ];
    for (suffix, bytes) in files {
        let path = outputs.dir.join(format!("{}{suffix}", outputs.stem));
        match write_atomic(&path, &bytes) {
            Ok(()) => written.push(path),
            Err(e) => {
                failed.push(format!("{}: {e}", path.display()));
                if suffix == CAPACITY_JSON && !json.is_empty() {
                    let fallback = std::env::temp_dir().join(format!(
                        "{}_run-{}{CAPACITY_JSON}",
                        outputs.stem, result.run_id
                    ));
                    if write_atomic(&fallback, &json).is_ok() {
                        written.push(fallback);
                    }
                }
            }
        }
    }
    (written, failed)
}

fn level_name(l: &Level) -> String {
    format!("level {}/s ({})", trim(l.rate), l.purpose.word())
}

fn level_text(l: &Level) -> String {
    format!(
        "P95 {}, success {:.2}%, errors {:.2}%, {} judged requests ({:.1}/s), {} of {} arrivals \
         dropped, {} late, {} users busy at most{}",
        l.p95_ms.map_or("n/a".into(), fmt_ms),
        l.success_rate,
        l.error_rate,
        l.judged_requests,
        l.requests_per_second,
        l.arrivals_dropped,
        l.arrivals_planned,
        l.arrivals_late,
        l.peak_busy_users,
        if l.stopped_early {
            "; stopped early"
        } else {
            ""
        }
    )
}

/// One case for the capacity found, one for the baseline, one per level (a level above
/// the capacity failing is what the search looks for: it passes as a case, its figures
/// shown).
fn suite(result: &CapacityResult) -> TestSuite {
    let mut cases: Vec<(String, bool, String)> = vec![(
        "Capacity Found".into(),
        result.passed() || result.baseline.as_ref().is_some_and(|b| !b.passed),
        result.summary.clone(),
    )];
    if let Some(b) = &result.baseline {
        cases.push((
            "Capacity Against Baseline".into(),
            b.passed,
            b.explanation.clone(),
        ));
    }
    for l in &result.levels {
        let text = match &l.failed_because {
            Some(why) => format!("failed: {why}; {}", level_text(l)),
            None => format!("held: {}", level_text(l)),
        };
        cases.push((level_name(l), true, text));
    }
    let mut suite =
        TestSuite::from_results(format!("lva-loadtest capacity {}", result.scenario), cases);
    suite
        .properties
        .push(("run_id".into(), result.run_id.clone()));
    suite
        .properties
        .push(("capacity_rate".into(), trim(result.capacity_rate)));
    suite
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;

/// Each level's P95 (left axis) and error rate (right axis) against its rate, the P95
/// target dashed, the capacity (the knee) a vertical line.
pub fn knee_chart(result: &CapacityResult, p95_target: f64) -> String {
    let mut levels: Vec<&Level> = result.levels.iter().collect();
    levels.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let (x_max, x_step) = round_axis(
        levels
            .iter()
            .map(|l| l.rate)
            .fold(result.capacity_rate, f64::max)
            .max(1.0)
            * 1.05,
        5,
    );
    let (y_max, y_step) = round_axis(
        levels
            .iter()
            .filter_map(|l| l.p95_ms)
            .fold(p95_target, f64::max)
            * 1.1,
        4,
    );
    let (e_max, e_step) = round_axis(
        levels.iter().map(|l| l.error_rate).fold(1.0, f64::max) * 1.1,
        4,
    );
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |r: f64| LEFT + r / x_max * pw;
    let y = |ms: f64| TOP + ph - ms / y_max * ph;
    let ye = |e: f64| TOP + ph - e / e_max * ph;
    let mut svg = format!(
        r#"<svg class="knee" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="P95 and error rate by arrival rate">"#
    );
    svg.push_str(&format!(
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    ));
    for v in ticks(y_max, y_step) {
        svg.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{} ms</text>"#,
            LEFT - 4.0,
            y(v) + 4.0,
            trim(v),
        ));
    }
    for e in ticks(e_max, e_step) {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#b35900">{}%</text>"##,
            W - RIGHT + 4.0,
            ye(e) + 4.0,
            trim(e)
        ));
    }
    for r in ticks(x_max, x_step) {
        svg.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}/s</text>"#,
            x(r),
            H - BOTTOM + 16.0,
            trim(r)
        ));
    }
    svg.push_str(&format!(
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#c00">P95 target {} ms</text>"##,
        W - RIGHT,
        y(p95_target),
        y(p95_target),
        LEFT + 6.0,
        y(p95_target) - 4.0,
        trim(p95_target)
    ));
    if result.capacity_rate > 0.0 {
        let kx = x(result.capacity_rate);
        svg.push_str(&format!(
            r##"<line x1="{kx:.1}" x2="{kx:.1}" y1="{TOP}" y2="{:.1}" stroke="#070" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#070">capacity {}/s</text>"##,
            TOP + ph,
            kx + 4.0,
            TOP + 14.0,
            trim(result.capacity_rate)
        ));
    }
    let path = |points: Vec<(f64, f64)>| {
        points
            .iter()
            .enumerate()
            .map(|(i, (px, py))| format!("{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" }))
            .collect::<String>()
    };
    let p95_points: Vec<(f64, f64)> = levels
        .iter()
        .filter_map(|l| l.p95_ms.map(|p| (x(l.rate), y(p.min(y_max)))))
        .collect();
    let err_points: Vec<(f64, f64)> = levels
        .iter()
        .map(|l| (x(l.rate), ye(l.error_rate)))
        .collect();
    svg.push_str(&format!(
        r##"<path d="{}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/><path d="{}" fill="none" stroke="#b35900" stroke-dasharray="3 3"/>"##,
        path(p95_points),
        path(err_points)
    ));
    for l in &levels {
        let colour = if l.passed { "#1f5fbf" } else { "#c00" };
        if let Some(p) = l.p95_ms {
            svg.push_str(&format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>{}: {}</title></circle>"#,
                x(l.rate),
                y(p.min(y_max)),
                escape(&level_name(l)),
                escape(&level_text(l))
            ));
        }
    }
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">arrival rate (task iterations a second); blue P95 (left), orange error rate (right), red: a level that failed</text></svg>"##,
        LEFT + pw / 2.0,
        H - 6.0
    ));
    svg
}

/// An axis from 0 that holds `max` in at most `most` steps of a round size (1, 2 or 5
/// times a power of ten): its top and its step.
fn round_axis(max: f64, most: usize) -> (f64, f64) {
    let raw = (max / most as f64).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power);
    let round = |v: f64| (v * 1e9).round() / 1e9;
    (round((max / step).ceil() * step), round(step))
}

/// The ticks of an axis from 0 to `top` by `step` (rounded, so that 0.1 steps read 0.3).
fn ticks(top: f64, step: f64) -> impl Iterator<Item = f64> {
    let n = (top / step).round() as usize;
    (0..=n).map(move |i| ((i as f64 * step) * 1e6).round() / 1e6)
}

fn html_page(result: &CapacityResult) -> String {
    let p95_target = result.p95_target_ms;
    let mut rows = String::new();
    for l in &result.levels {
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}%</td><td>{}</td><td>{:.1}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            if l.passed { "held" } else { "failed" },
            trim(l.rate),
            l.purpose.word(),
            l.p95_ms.map_or("n/a".into(), fmt_ms),
            l.success_rate,
            l.error_rate,
            l.judged_requests,
            l.requests_per_second,
            l.arrivals_dropped,
            l.arrivals_planned,
            l.arrivals_late,
            l.peak_busy_users,
            escape(l.failed_because.as_deref().unwrap_or("held")),
        ));
    }
    let baseline = result
        .baseline
        .as_ref()
        .map(|b| {
            format!(
                "<p class=\"{}\"><b>Against the baseline</b> ({}: {}/s, noise {:.0}%): {}</p>",
                if b.passed { "held" } else { "failed" },
                escape(&b.file),
                trim(b.baseline_rate),
                b.baseline_noise_share * 100.0,
                escape(&b.explanation)
            )
        })
        .unwrap_or_default();
    let noise = match (
        &result.first_measurement,
        &result.accepted,
        result.p95_noise,
    ) {
        (Some(f), Some(a), Some(n)) => format!(
            "<p>The accepted rate measured twice: P95 {} then {} (they differ by {:.0}%). The \
             result's noise, the search's tolerance and how far its confirmation stepped \
             down together: {:.0}%.</p>",
            f.p95_ms.map_or("n/a".into(), fmt_ms),
            a.p95_ms.map_or("n/a".into(), fmt_ms),
            n * 100.0,
            result.noise_share * 100.0
        ),
        _ => format!(
            "<p>The result's noise (the search's tolerance, and how far its confirmation \
             stepped down): {:.0}%.</p>",
            result.noise_share * 100.0
        ),
    };
    let verdict = if result.passed() { "held" } else { "failed" };
    let finding = match &result.finding {
        Finding::Found { .. } => "found",
        Finding::AtCeiling { .. } => "at least the ceiling",
        Finding::BelowStart { .. } => "below the first level",
        Finding::Unstable { .. } => "not found (no level held twice)",
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Capacity: {scenario} against {host}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; max-width: 1100px; }}
table {{ border-collapse: collapse; display: block; overflow-x: auto; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }}
td:last-child {{ text-align: left; white-space: normal; }}
tr.failed td, p.failed {{ color: #a00; }}
p.summary {{ font-size: 1.2em; font-weight: bold; }}
</style></head><body>
<h1>Capacity search</h1>
<p>Scenario {scenario} against {host}, run id {run_id}; {finding}.</p>
<p class="summary {verdict}">{summary}</p>
{baseline}
{noise}
<h2>Levels</h2>
{chart}
<table><thead><tr><th>rate /s</th><th>level</th><th>P95</th><th>success</th><th>errors</th><th>judged</th><th>req/s</th><th>dropped / arrivals</th><th>late</th><th>users</th><th>result</th></tr></thead>
<tbody>
{rows}</tbody></table>
<h2>How it searched</h2>
<p>From {start}/s, each level {factor} times the one before, up to the ceiling {max}/s; then bisected until the failing rate was within {tol:.0}% of the holding one, and the level found measured once more. Each level: {warmup} s of warm-up, then a judged window of {window} s, timed from each arrival's intended start; the server idles between levels while the last answers come in.</p>
</body></html>
"#,
        scenario = escape(&result.scenario),
        host = escape(&result.host),
        run_id = escape(&result.run_id),
        summary = escape(&result.summary),
        chart = knee_chart(result, p95_target),
        start = trim(result.settings.start_rate),
        factor = trim(result.settings.step_factor),
        max = trim(result.settings.max_rate),
        tol = result.settings.tolerance * 100.0,
        warmup = result.settings.warmup.as_secs_f64(),
        window = result.settings.level_duration.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_charts_axes_step_by_round_numbers() {
        assert_eq!(round_axis(84.0, 5), (100.0, 20.0));
        assert_eq!(round_axis(42.0, 5), (50.0, 10.0));
        assert_eq!(round_axis(550.0, 4), (600.0, 200.0));
        assert_eq!(round_axis(1.1, 4), (1.5, 0.5));
        assert_eq!(round_axis(0.33, 4), (0.4, 0.1));
        let axis: Vec<f64> = ticks(0.4, 0.1).collect();
        assert_eq!(axis, [0.0, 0.1, 0.2, 0.3, 0.4]);
    }
}
