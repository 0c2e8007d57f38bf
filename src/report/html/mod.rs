//! The run's HTML report: one self-contained file (styles, the table-sorting script and the
//! SVG charts inline; nothing is fetched when it is opened), readable on a laptop and
//! printable.
//!
//! In order: the verdict (PASS, FAIL or INTERRUPTED, every check with its figure, target,
//! details and advice), the baseline beside the run, the security probes, the headline
//! figures, the charts over the run's time (phases shaded, error-spike windows marked as the
//! verdict found them), the latency distribution of every request, the endpoint table (the
//! stats CSV's columns and numbers, sortable), the errors, and the run's facts.

mod svg;

use super::csv::{STATS_HEADER, stats_row};
use super::{Headline, RunReport};
use crate::exit::Exit;
use crate::measure::{
    Histogram, MeasuredRun, RequestKind, RequestStats, WindowStats, bucket_value,
};
use crate::probes::{ProbeReport, ProbeStatus};
use crate::verdict::{Check, error_spike_windows, everything, is_round_trip};
use std::fmt::Write as _;
use svg::{Band, Distribution, Level, Mark, Series, TimeChart};

const STYLE: &str = include_str!("report.css");
const SORT_SCRIPT: &str = include_str!("sort.js");

/// Text made safe inside HTML, in elements and attributes alike. Control, bidirectional and
/// invisible characters are shown as `\u{202E}` rather than acting on the text around them.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2069}' | '\u{FEFF}') =>
            {
                let _ = write!(out, "\\u{{{:04X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The verdict's headline: the word, its CSS class, and what it means.
fn headline(r: &RunReport<'_>) -> (&'static str, &'static str) {
    if r.verdict.interrupted && r.verdict.aborted.is_none() {
        ("INTERRUPTED", "interrupted")
    } else if r.exit == Exit::Passed {
        ("PASS", "pass")
    } else {
        ("FAIL", "fail")
    }
}

fn verdict_section(out: &mut String, r: &RunReport<'_>) {
    let v = r.verdict;
    let (word, class) = headline(r);
    let judged = v.checks.iter().filter(|c| !c.skipped).count();
    let missed = v.failed_checks().count();
    let _ = write!(
        out,
        r#"<section class="card verdict {class}" id="verdict"><div class="word">{word}</div><div>"#
    );
    let summary = if missed == 0 {
        format!("All {judged} judged targets met")
    } else {
        format!("{missed} of {judged} judged targets missed")
    };
    let _ = write!(
        out,
        "<p><b>{}</b>; {} skipped (not applicable to this run). Exit code {}.</p>",
        escape(&summary),
        v.checks.len() - judged,
        r.exit.code()
    );
    if let Some(reason) = &v.aborted {
        let _ = write!(
            out,
            "<p>Aborted early by --abort-on-fail: {}</p>",
            escape(reason)
        );
    } else if v.interrupted {
        out.push_str(
            "<p>The run was stopped before its end: judged on what was measured until then.</p>",
        );
    }
    if r.exit == Exit::Failed && missed == 0 {
        out.push_str("<p>Every target was met; a high-severity security finding fails the run (see the probes below).</p>");
    }
    let _ = write!(
        out,
        "<p class=\"note\">{} rate-limited answers (429), {}.</p></div></section>",
        v.rate_limited,
        if v.rate_limited_counted_as_failures {
            "counted as failures (--count-429-as-failure)"
        } else {
            "kept apart from the success and error rates"
        }
    );

    out.push_str(
        r#"<h2 id="checks">Checks</h2><div class="wide"><table class="checks"><thead><tr><th>Result</th><th>Check</th><th>Measured</th><th>Target</th></tr></thead><tbody>"#,
    );
    for c in &v.checks {
        check_row(out, c);
    }
    out.push_str("</tbody></table></div>");
}

fn check_row(out: &mut String, c: &Check) {
    let status = c.status();
    let _ = write!(
        out,
        r#"<tr class="check{}" data-check="{}"><td><span class="status {status}">{status}</span></td><td><b>{}</b>"#,
        if c.failed() { " failed" } else { "" },
        escape(&c.id),
        escape(&c.label)
    );
    if !c.details.is_empty() {
        out.push_str(r#"<ul class="details">"#);
        for d in &c.details {
            let _ = write!(out, "<li>{}</li>", escape(d));
        }
        out.push_str("</ul>");
    }
    if let Some(advice) = &c.advice {
        let _ = write!(
            out,
            r#"<p class="advice"><b>What to look at:</b> {}</p>"#,
            escape(advice)
        );
    }
    let _ = write!(
        out,
        "</td><td>{}</td><td>{}</td></tr>",
        escape(&c.actual),
        escape(&c.target)
    );
}

fn baseline_section(out: &mut String, r: &RunReport<'_>) {
    let Some(base) = &r.targets.baseline else {
        return;
    };
    let head = Headline::of(r.run, r.verdict.rate_limited_counted_as_failures);
    let http = r.run.combined(RequestKind::Http);
    let now_p95 = (http.times.count > 0).then_some(head.times.p95);
    let change = |now: f64, before: f64| {
        if before == 0.0 {
            "n/a".to_string()
        } else {
            format!("{:+.1}%", (now - before) * 100.0 / before)
        }
    };
    let _ = write!(
        out,
        r#"<h2 id="baseline">Against the baseline</h2><p class="sub">Baseline: {} ({}).</p><table><thead><tr><th>Figure</th><th class="num">Baseline</th><th class="num">This run</th><th class="num">Change</th></tr></thead><tbody>"#,
        escape(&base.source),
        escape(&base.preset_name)
    );
    let mut row = |name: &str, before: String, now: String, delta: String| {
        let _ = write!(
            out,
            r#"<tr><td>{name}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&before),
            escape(&now),
            escape(&delta)
        );
    };
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} ms"));
    row(
        "P95 response time",
        ms(base.p95_ms),
        ms(now_p95),
        match (now_p95, base.p95_ms) {
            (Some(n), Some(b)) => change(n, b),
            _ => "n/a".into(),
        },
    );
    row(
        "Requests/s",
        format!("{:.2}", base.requests_per_second),
        format!("{:.2}", head.requests_per_second),
        change(head.requests_per_second, base.requests_per_second),
    );
    row(
        "Success rate",
        format!("{:.2}%", base.success_rate),
        format!("{:.2}%", head.rates.success_rate),
        format!("{:+.2} pt", head.rates.success_rate - base.success_rate),
    );
    row(
        "Error rate",
        format!("{:.2}%", base.error_rate),
        format!("{:.2}%", head.rates.error_rate),
        format!("{:+.2} pt", head.rates.error_rate - base.error_rate),
    );
    row(
        "Requests",
        base.total_requests.to_string(),
        head.rates.total.to_string(),
        change(head.rates.total as f64, base.total_requests as f64),
    );
    out.push_str("</tbody></table>");
}

fn probes_section(out: &mut String, report: &ProbeReport, report_only: bool) {
    let findings: Vec<_> = report.findings().collect();
    let _ = write!(
        out,
        r#"<h2 id="probes">Security probes</h2><p class="sub">{} probes, {} requests in {:.1} s, beside the load and not counted in its figures. {} finding{} ({} high, {} medium, {} low){}.</p>"#,
        report.probes.len(),
        report.requests(),
        report.elapsed_secs,
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        report.count(crate::probes::Severity::High),
        report.count(crate::probes::Severity::Medium),
        report.count(crate::probes::Severity::Low),
        if report_only && report.has_high() {
            "; reported only (--probes-report-only): they do not change the exit code"
        } else {
            ""
        }
    );
    out.push_str(r#"<div class="wide"><table class="probes"><thead><tr><th>Result</th><th>Probe</th><th class="num">Requests</th><th>Notes</th></tr></thead><tbody>"#);
    for p in &report.probes {
        let (status, label) = match p.status {
            ProbeStatus::Passed => ("PASS", "PASS".to_string()),
            ProbeStatus::Findings => ("FIND", format!("FIND {}", p.findings.len())),
            ProbeStatus::NotTested => ("NOT-TESTED", "NOT TESTED".to_string()),
        };
        let _ = write!(
            out,
            r#"<tr><td><span class="status {status}">{label}</span></td><td>{}</td><td class="num">{}</td><td><ul class="details">"#,
            escape(&p.name),
            p.requests
        );
        for n in &p.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul></td></tr>");
    }
    out.push_str("</tbody></table></div>");
    if findings.is_empty() {
        return;
    }
    out.push_str(r#"<h3 style="margin-top:12px">Findings</h3><div class="wide"><table class="findings"><thead><tr><th>Severity</th><th>Probe</th><th>What it means</th><th>Request</th><th>Answer</th></tr></thead><tbody>"#);
    for f in findings {
        let label = f.severity.label();
        let answer = match (f.answer.status, f.answer.body.is_empty()) {
            (Some(s), true) => s.to_string(),
            (Some(s), false) => format!("{s} {}", f.answer.body),
            (None, _) => format!("no answer {}", f.answer.body),
        };
        let _ = write!(
            out,
            r#"<tr><td><span class="status {label}">{label}</span></td><td>{}</td><td><span class="mono">{}</span>: {}<br>{}</td><td class="mono">{} {}<br>{}</td><td class="mono">{}</td></tr>"#,
            escape(&f.probe),
            escape(&f.endpoint),
            escape(&f.meaning),
            escape(&crate::report::probes::inputs_text(f)),
            escape(&f.request.method),
            escape(&f.request.path),
            escape(&f.request.summary),
            escape(&answer)
        );
    }
    out.push_str("</tbody></table></div>");
}

fn tiles(out: &mut String, r: &RunReport<'_>) {
    let head = Headline::of(r.run, r.verdict.rate_limited_counted_as_failures);
    let rate = |v: f64| {
        if head.rates.judged == 0 {
            "n/a".to_string()
        } else {
            format!("{v:.2}%")
        }
    };
    let tiles = [
        (head.rates.total.to_string(), "HTTP requests"),
        (format!("{:.2}", head.requests_per_second), "requests/s"),
        (rate(head.rates.success_rate), "success rate"),
        (rate(head.rates.error_rate), "error rate"),
        (head.rates.rate_limited.to_string(), "rate limited (429)"),
        (head.rates.expected_errors.to_string(), "expected errors"),
        (head.rates.judged.to_string(), "judged requests"),
        (
            format!("{:.2} ms", head.times.p95),
            "P95 response time (judged)",
        ),
        (r.run.max_users.to_string(), "peak users"),
        (format!("{:.1} s", r.run.duration_secs), "measured"),
    ];
    out.push_str(r#"<h2 id="figures">Headline figures</h2><div class="tiles">"#);
    for (value, label) in tiles {
        let _ = write!(
            out,
            r#"<div class="tile"><b>{}</b><span>{label}</span></div>"#,
            escape(&value)
        );
    }
    out.push_str("</div>");
}

/// The shaded stretches of every time chart: ramp, hold and stop, then the error spikes.
fn bands(r: &RunReport<'_>) -> Vec<Band> {
    let run = r.run;
    let end = run.duration_secs;
    let mut bands = Vec::new();
    if let (Some(first), Some(last)) = (run.first_user_secs, run.last_user_secs) {
        let stop = r
            .provenance
            .planned_secs
            .filter(|p| *p < end)
            .unwrap_or(end);
        let mut phase = |from: f64, to: f64, name: &str| {
            if to > from {
                bands.push(Band {
                    from,
                    to,
                    label: format!("{name} {}-{}", svg::short_secs(from), svg::short_secs(to)),
                    class: "phase",
                });
            }
        };
        phase(first, last.max(first), "ramp");
        phase(last.max(first), stop, "hold");
        phase(stop, end, "stop");
    }
    for (from, to) in error_spike_windows(run, r.targets) {
        bands.push(Band {
            from,
            to,
            label: format!(
                "error spike {}-{} (the error_spikes check)",
                svg::short_secs(from),
                svg::short_secs(to)
            ),
            class: "spike",
        });
    }
    bands
}

fn time_charts(r: &RunReport<'_>) -> Vec<(TimeChart, Option<String>)> {
    let run = r.run;
    let count_429 = r.count_429();
    let bands = bands(r);
    let chart = |title: &str, unit: &str, series: Vec<Series>, levels: Vec<Level>| TimeChart {
        title: title.to_string(),
        unit: unit.to_string(),
        x_end: run.duration_secs.max(run.window_secs.min(1.0)),
        bar_secs: run.window_secs,
        series,
        bands: bands.clone(),
        levels,
    };
    let line = |name: &str, class, points| Series {
        name: name.to_string(),
        class,
        mark: Mark::Line,
        points,
    };
    let bars = |name: &str, class, points| Series {
        name: name.to_string(),
        class,
        mark: Mark::Bars,
        points,
    };
    // Lines pass through the middle of each window; bars stand on the window.
    let at_window = |middle: bool, value: &dyn Fn(&WindowStats, f64) -> Option<f64>| {
        // The stop phase is not a window: the charts show the load only.
        run.windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let len = (run.window_end(i) - w.start_secs).max(1e-9);
                let at = w.start_secs + if middle { len / 2.0 } else { 0.0 };
                value(w, len).map(|v| (at, v))
            })
            .collect::<Vec<_>>()
    };
    let per_window = |value: &dyn Fn(&WindowStats, f64) -> Option<f64>| at_window(true, value);
    let bar_per_window = |value: &dyn Fn(&WindowStats, f64) -> Option<f64>| at_window(false, value);
    let http_pct = |p: f64| {
        per_window(&|w, _| {
            let http = w.combined(RequestKind::Http);
            let times = http.judged_times(count_429);
            (times.count > 0).then(|| times.percentile_ms(p))
        })
    };
    let mut charts = Vec::new();

    charts.push((
        chart(
            "Throughput",
            "requests/s",
            vec![
                line(
                    "HTTP requests/s",
                    "c1",
                    per_window(&|w, len| Some(w.combined(RequestKind::Http).total() as f64 / len)),
                ),
                line(
                    "WebSocket operations/s",
                    "c4",
                    per_window(&|w, len| {
                        let ws = w.combined(RequestKind::WebSocket);
                        (ws.total() > 0).then(|| ws.total() as f64 / len)
                    }),
                ),
            ],
            Vec::new(),
        ),
        None,
    ));

    let mut levels = vec![Level {
        value: r.targets.p95_ms,
        label: format!("P95 target {} ms", svg::short_number(r.targets.p95_ms)),
        class: "target",
    }];
    if let Some(b) = r.targets.baseline.as_ref().and_then(|b| b.p95_ms) {
        levels.push(Level {
            value: b,
            label: format!("baseline P95 {} ms", svg::short_number(b)),
            class: "baseline",
        });
    }
    charts.push((
        chart(
            "HTTP response times",
            "ms",
            vec![
                line("P50", "c4", http_pct(50.0)),
                line("P95", "c1", http_pct(95.0)),
                line("P99", "c3", http_pct(99.0)),
            ],
            levels,
        ),
        None,
    ));

    charts.push((
        chart(
            "Errors and 429s per window",
            "answers",
            vec![
                bars(
                    "failures",
                    "c2",
                    bar_per_window(&|w, _| Some(everything(w).failures as f64)),
                ),
                bars(
                    "rate limited (429)",
                    "c6",
                    bar_per_window(&|w, _| Some(everything(w).rate_limited as f64)),
                ),
                bars(
                    "expected errors",
                    "c3",
                    bar_per_window(&|w, _| Some(everything(w).expected_errors as f64)),
                ),
            ],
            Vec::new(),
        ),
        Some(format!(
            "HTTP and WebSocket together, per {}-second window, as the error-spike check counts them.",
            svg::short_number(run.window_secs)
        )),
    ));

    charts.push((
        chart(
            "Users",
            "users",
            vec![line(
                "users started",
                "c1",
                run.users_over_time
                    .iter()
                    .map(|s| (s.t_secs, s.users as f64))
                    .collect(),
            )],
            Vec::new(),
        ),
        None,
    ));

    if let Some(memory) = run.memory.as_ref().filter(|m| !m.samples.is_empty()) {
        charts.push((
            chart(
                "Server memory (RSS)",
                "MB",
                vec![line(
                    "RSS",
                    "c5",
                    memory
                        .samples
                        .iter()
                        .map(|s| (s.t_secs, s.rss_bytes as f64 / 1_048_576.0))
                        .collect(),
                )],
                Vec::new(),
            ),
            Some(format!("Read from {}.", memory.source)),
        ));
    }

    let ws_pct = |p: f64| {
        per_window(&|w, _| {
            let mut trips = RequestStats::default();
            for s in w.requests.values().filter(|s| is_round_trip(s)) {
                trips.merge(s);
            }
            let times = trips.judged_times(count_429);
            (times.count > 0).then(|| times.percentile_ms(p))
        })
    };
    let ws_p95 = ws_pct(95.0);
    if !ws_p95.is_empty() {
        charts.push((
            chart(
                "WebSocket round trips",
                "ms",
                vec![line("P50", "c4", ws_pct(50.0)), line("P95", "c1", ws_p95)],
                vec![Level {
                    value: r.targets.ws_p95_ms,
                    label: format!(
                        "round-trip P95 target {} ms",
                        svg::short_number(r.targets.ws_p95_ms)
                    ),
                    class: "target",
                }],
            ),
            Some("Message round trips (every WebSocket operation but connect and close).".into()),
        ));
    }
    charts
}

fn charts_section(out: &mut String, r: &RunReport<'_>) {
    let _ = write!(
        out,
        r#"<h2 id="timeline">Over the run</h2><p class="sub">{} windows of {} s. <span class="legend"><span><i class="band-key phase"></i>phases: ramp, hold, stop</span><span><i class="band-key spike"></i>error spike (a window the error_spikes check failed)</span></span></p>"#,
        r.run.windows.len(),
        svg::short_number(r.run.window_secs)
    );
    if r.run.windows.is_empty() {
        out.push_str(r#"<p class="note">This run has no timeline of windows (a saved Goose report keeps none): no charts over time.</p>"#);
        return;
    }
    out.push_str(r#"<div class="charts">"#);
    for (chart, note) in time_charts(r) {
        let _ = write!(
            out,
            r#"<div class="card chart-card"><h3>{} <span class="note">({})</span></h3><div class="legend">"#,
            escape(&chart.title),
            escape(&chart.unit)
        );
        for s in chart.series.iter().filter(|s| !s.points.is_empty()) {
            let _ = write!(
                out,
                r#"<span><i class="{}"></i>{}</span>"#,
                s.class,
                escape(&s.name)
            );
        }
        out.push_str("</div>");
        if chart.has_data() {
            out.push_str(&chart.svg());
        } else {
            out.push_str(r#"<p class="note">Nothing measured for this chart.</p>"#);
        }
        if let Some(note) = note {
            let _ = write!(out, r#"<p class="note">{}</p>"#, escape(&note));
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    if r.run.memory.as_ref().is_none_or(|m| m.samples.is_empty()) {
        out.push_str(r#"<p class="note">The server's memory was not sampled (--server-pid or --memory-url; the built-in server is sampled by itself).</p>"#);
    }
}

/// The latency distribution of a request, in bins shared by every request of the report.
fn distribution(s: &RequestStats, times: &Histogram) -> Distribution {
    let mut bins = std::collections::BTreeMap::<i32, u64>::new();
    for (floor, n) in &times.buckets {
        *bins
            .entry(svg::bin_of(bucket_value(*floor) as f64 / 1000.0))
            .or_insert(0) += n;
    }
    Distribution {
        name: s.key(),
        bins: bins
            .into_iter()
            .map(|(b, n)| (svg::bin_floor(b), svg::bin_floor(b + 1), n))
            .collect(),
        percentiles: [50.0, 95.0, 99.0].map(|p| times.percentile_ms(p)),
    }
}

fn distributions_section(out: &mut String, run: &MeasuredRun, count_429: bool) {
    let measured: Vec<(&RequestStats, Histogram)> = run
        .requests
        .iter()
        .map(|s| (s, s.judged_times(count_429).into_owned()))
        .filter(|(_, times)| times.count > 0)
        .collect();
    if measured.is_empty() {
        return;
    }
    let lo = measured
        .iter()
        .map(|(_, t)| t.min_us.max(1))
        .min()
        .unwrap_or(1) as f64
        / 1000.0;
    let hi = measured.iter().map(|(_, t)| t.max_us).max().unwrap_or(1) as f64 / 1000.0;
    // Whole powers of ten, so every request's chart has the same axis.
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.max(lo * 10.0).log10().ceil()),
    );
    out.push_str(r#"<h2 id="latency">Latency distribution per request</h2><p class="sub">How many judged answers took how long (429s and expected errors not included; logarithmic axis, shared by every request); dashed lines mark P50, P95 and P99.</p><div class="dists">"#);
    for (s, times) in &measured {
        let d = distribution(s, times);
        let _ = write!(
            out,
            r#"<div class="card"><h3>{}</h3><p>{} answers; P50 {:.2} ms, P95 {:.2} ms, P99 {:.2} ms</p>{}</div>"#,
            escape(&d.name),
            times.count,
            d.percentiles[0],
            d.percentiles[1],
            d.percentiles[2],
            d.svg(lo, hi)
        );
    }
    out.push_str("</div>");
}

/// The stats CSV's columns the endpoint table shows, in its order, with their short
/// headings (the CSV's name is the heading's tooltip).
const TABLE_COLUMNS: [(&str, &str); 18] = [
    ("Type", "Type"),
    ("Name", "Name"),
    ("Request Count", "Requests"),
    ("Failure Count", "Failures"),
    ("Rate Limited Count", "429s"),
    ("Expected Error Count", "Expected errors"),
    ("Requests/s", "Req/s"),
    ("Failures/s", "Fail/s"),
    ("Median Response Time", "Median"),
    ("Average Response Time", "Average"),
    ("Min Response Time", "Min"),
    ("Max Response Time", "Max"),
    ("90%", "P90"),
    ("95%", "P95"),
    ("99%", "P99"),
    ("Rate Limited 95%", "429 P95"),
    ("Expected Error 95%", "Expected P95"),
    ("Average Content Size", "Avg bytes"),
];

fn table_cells(row: &[String]) -> String {
    TABLE_COLUMNS
        .iter()
        .map(|(name, _)| {
            let i = STATS_HEADER.iter().position(|h| h == name).unwrap_or(0);
            let value = row.get(i).map_or("", String::as_str);
            if i < 2 {
                format!("<td>{}</td>", escape(value))
            } else {
                format!(r#"<td class="num">{}</td>"#, escape(value))
            }
        })
        .collect()
}

fn endpoints_section(out: &mut String, run: &MeasuredRun, count_429: bool) {
    out.push_str(r#"<h2 id="endpoints">Endpoints</h2><p class="sub">The stats CSV's rows and figures (times in ms, over the judged answers; the 429s' and the expected errors' own P95 apart). Failures are the failures as measured; 429s and expected errors are counted apart. The aggregate is over HTTP requests. Click a column to sort.</p><div class="wide"><table class="sortable endpoints"><thead><tr>"#);
    for (i, (name, heading)) in TABLE_COLUMNS.iter().enumerate() {
        let _ = write!(
            out,
            r#"<th{} title="{}" data-column="{}">{}</th>"#,
            if i < 2 { "" } else { r#" class="num""# },
            escape(name),
            escape(name),
            escape(heading)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for s in &run.requests {
        let _ = write!(
            out,
            r#"<tr data-key="{}">{}</tr>"#,
            escape(&s.key()),
            table_cells(&stats_row(
                &s.method,
                &s.name,
                s,
                run.duration_secs,
                count_429
            ))
        );
    }
    let _ = write!(
        out,
        r#"</tbody><tfoot><tr data-key="Aggregated">{}</tr></tfoot></table></div>"#,
        table_cells(&stats_row(
            "",
            "Aggregated",
            &run.combined(RequestKind::Http),
            run.duration_secs,
            count_429
        ))
    );
}

fn errors_section(out: &mut String, run: &MeasuredRun) {
    if run.errors.is_empty() {
        return;
    }
    out.push_str(r#"<h2 id="errors">Errors</h2><p class="sub">As in the failures CSV: failures, and the errors the tasks expect (not judged: neither successes nor failures).</p><div class="wide"><table class="sortable"><thead><tr><th>Request</th><th>Error</th><th class="num">Occurrences</th><th>Kind</th></tr></thead><tbody>"#);
    for e in &run.errors {
        let _ = write!(
            out,
            r#"<tr><td>{} {}</td><td class="mono">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            escape(&e.method),
            escape(&e.name),
            escape(&e.error),
            e.occurrences,
            if e.expected { "expected" } else { "failure" }
        );
    }
    out.push_str("</tbody></table></div>");
}

fn facts_section(out: &mut String, r: &RunReport<'_>) {
    let p = r.provenance;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("not recorded".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    };
    let mut facts: Vec<(String, String)> = Vec::new();
    if !p.run_id.is_empty() {
        facts.push(("Run id".into(), p.run_id.clone()));
    }
    if !p.command_line.is_empty() {
        facts.push(("Command line".into(), p.command_line.join(" ")));
    }
    if !p.host.is_empty() {
        facts.push((
            "Host".into(),
            format!(
                "{}{}",
                p.host,
                if p.builtin_server {
                    " (the built-in reference server)"
                } else {
                    ""
                }
            ),
        ));
    }
    facts.extend(p.plan.iter().cloned());
    facts.push(("Started".into(), time(r.run.started_at)));
    facts.push(("Ended".into(), time(r.run.ended_at)));
    facts.push((
        "Measured".into(),
        format!(
            "{:.1} s in windows of {} s",
            r.run.duration_secs,
            svg::short_number(r.run.window_secs)
        ),
    ));
    if !p.versions.is_empty() {
        facts.push(("Versions".into(), p.versions.clone()));
    }
    if !p.machine.is_empty() {
        facts.push(("Machine".into(), p.machine.clone()));
    }
    out.push_str(r#"<h2 id="facts">The run</h2><dl class="facts">"#);
    for (label, value) in facts {
        let class = if label == "Command line" {
            r#" class="mono cmd""#
        } else {
            ""
        };
        let _ = write!(
            out,
            "<dt>{}</dt><dd{class}>{}</dd>",
            escape(&label),
            escape(&value)
        );
    }
    out.push_str("</dl>");
}

/// The whole report, as one HTML document.
pub fn html_report(r: &RunReport<'_>) -> String {
    let (word, _) = headline(r);
    let title = format!("{word}: load test {}", r.verdict.preset_name);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><style>{STYLE}</style></head><body><main>"#,
        escape(&title)
    );
    let _ = write!(
        out,
        r#"<h1>Load test: {}</h1><p class="sub">{}{}</p>"#,
        escape(&r.verdict.preset_name),
        if r.provenance.host.is_empty() {
            String::new()
        } else {
            format!("against {} · ", escape(&r.provenance.host))
        },
        escape(&r.run.started_at.map_or(String::new(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        }))
    );
    verdict_section(&mut out, r);
    baseline_section(&mut out, r);
    if let Some(probes) = r.probes {
        probes_section(&mut out, probes, r.probes_report_only);
    }
    tiles(&mut out, r);
    charts_section(&mut out, r);
    distributions_section(&mut out, r.run, r.count_429());
    endpoints_section(&mut out, r.run, r.count_429());
    errors_section(&mut out, r.run);
    facts_section(&mut out, r);
    let _ = write!(
        out,
        "<footer>Written by {}. One file, nothing loaded from elsewhere: it reads the same offline.</footer></main><script>{SORT_SCRIPT}</script></body></html>",
        escape(&super::provenance::versions())
    );
    out
}

#[cfg(test)]
mod tests;
