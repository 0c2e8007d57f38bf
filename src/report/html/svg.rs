//! Charts as SVG, drawn here from the run's figures: figures over the run's time (lines and
//! bars, with shaded bands for the phases and the error spikes, and level lines for targets)
//! and latency distributions on a logarithmic axis. Every mark is a `<path class="mark">`,
//! so a chart that drew something can be told from an empty one.

use super::escape;
use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 30.0;
/// How far above the highest point a level may be and still be drawn as a line.
const LEVEL_REACH: f64 = 4.0;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A line through the points, each point a dot.
    Line,
    /// A bar per point, from its x (a window's start) over `TimeChart::bar_secs` (the
    /// window, cut at the run's end); the bar series of a chart stand side by side.
    Bars,
}

/// One series: its name (legend and tooltips), its colour class and its points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// A CSS class giving the colour (`c1` ... `c6`).
    pub class: &'static str,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// A shaded stretch of the run: a phase, or a window where errors spiked.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
    /// `phase` or `spike`.
    pub class: &'static str,
}

/// A horizontal line: a target or the baseline's figure.
#[derive(Debug, Clone)]
pub struct Level {
    pub value: f64,
    pub label: String,
    pub class: &'static str,
}

/// A chart of figures over the run's seconds.
#[derive(Debug, Clone)]
pub struct TimeChart {
    pub title: String,
    /// The y axis' unit, e.g. `ms` or `requests/s`.
    pub unit: String,
    /// The run's length in seconds: the x axis spans 0 to this.
    pub x_end: f64,
    /// The width of a bar in seconds (a window).
    pub bar_secs: f64,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub levels: Vec<Level>,
}

/// A number for an axis or a tooltip: 0, 12, 1.5, 0.25, 12k.
pub fn short_number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        return format!("{}k", short_number(v / 1000.0));
    }
    let text = if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    if text == "-0" { "0".to_string() } else { text }
}

/// Seconds into the run for an axis: 45s, 2m, 1m30s, 1h.
pub fn short_secs(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// A round step that cuts `span` into about `parts` pieces (1, 2 or 5 times a power of ten).
fn step_for(span: f64, parts: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / parts;
    let power = 10f64.powf(raw.log10().floor());
    let unit = raw / power;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A round step of seconds for the time axis (minutes and hours past two minutes).
fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or_else(|| step_for(span, 8.0))
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

impl TimeChart {
    /// True when some series has a point to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| !s.points.is_empty())
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x_end = if self.x_end > 0.0 { self.x_end } else { 1.0 };
        let data_top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // A level far above the data would flatten it: such a level is named, not drawn.
        let (drawn, above): (Vec<&Level>, Vec<&Level>) = self
            .levels
            .iter()
            .partition(|l| data_top <= 0.0 || l.value <= data_top * LEVEL_REACH);
        let top_value = drawn.iter().map(|l| l.value).fold(data_top, f64::max);
        // A series of zeros (an idle pool) gets an axis up to 1, not one of 0 to 0.
        let top_value = if top_value > 0.0 { top_value } else { 1.0 };
        let y_step = step_for(top_value.max(1e-9) * 1.05, 4.0);
        let y_top = (top_value * 1.05 / y_step).ceil().max(1.0) * y_step;
        let x = |secs: f64| LEFT + secs.clamp(0.0, x_end) / x_end * plot_w;
        let y = |v: f64| TOP + plot_h - v.clamp(0.0, y_top) / y_top * plot_h;

        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{} ({})">"#,
            escape(&self.title),
            escape(&self.unit)
        );
        for band in &self.bands {
            let (x0, x1) = (x(band.from), x(band.to.max(band.from)));
            let _ = write!(
                svg,
                r#"<rect class="band {}" x="{}" y="{TOP}" width="{}" height="{plot_h}"><title>{}</title></rect>"#,
                band.class,
                f(x0),
                f((x1 - x0).max(1.0)),
                escape(&band.label)
            );
            // A phase is named above the plot by its first word, where the name fits.
            let name = band.label.split_whitespace().next().unwrap_or_default();
            if band.class == "phase" && x1 - x0 > 8.0 + 6.5 * name.chars().count() as f64 {
                let _ = write!(
                    svg,
                    r#"<text class="band-label" x="{}" y="{}">{}</text>"#,
                    f(x0 + 4.0),
                    f(TOP - 6.0),
                    escape(name)
                );
            }
        }
        // Grid and axes.
        let mut v = 0.0;
        while v <= y_top + y_step * 0.01 {
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
                f(WIDTH - RIGHT),
                f(LEFT - 6.0),
                f(y(v) + 4.0),
                short_number(v),
                y0 = f(y(v))
            );
            v += y_step;
        }
        let x_step = time_step(x_end);
        let mut t = 0.0;
        while t <= x_end + 1e-9 {
            let _ = write!(
                svg,
                r#"<line class="axis" x1="{x0}" x2="{x0}" y1="{}" y2="{}"/><text class="tick" x="{x0}" y="{}" text-anchor="middle">{}</text>"#,
                f(TOP + plot_h),
                f(TOP + plot_h + 4.0),
                f(HEIGHT - 12.0),
                short_secs(t),
                x0 = f(x(t))
            );
            t += x_step;
        }
        for (i, level) in above.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<text class="level-label" x="{}" y="{}" text-anchor="end">{} (above the scale)</text>"#,
                f(WIDTH - RIGHT - 2.0),
                f(TOP + 12.0 + 13.0 * i as f64),
                escape(&level.label)
            );
        }
        for level in drawn {
            let _ = write!(
                svg,
                r#"<line class="level {}" x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}"><title>{}</title></line><text class="level-label" x="{}" y="{}" text-anchor="end">{}</text>"#,
                level.class,
                f(WIDTH - RIGHT),
                escape(&level.label),
                f(WIDTH - RIGHT - 2.0),
                f(y(level.value) - 3.0),
                escape(&level.label),
                y0 = f(y(level.value))
            );
        }
        // Bars side by side within their window, then lines over them.
        let bars: Vec<&Series> = self
            .series
            .iter()
            .filter(|s| s.mark == Mark::Bars)
            .collect();
        for (i, s) in bars.iter().enumerate() {
            for &(at, value) in &s.points {
                if value <= 0.0 {
                    continue;
                }
                let span = self.bar_secs.min(x_end - at).max(0.0);
                let slot = span / x_end * plot_w / bars.len() as f64;
                let x0 = x(at) + slot * i as f64 + slot * 0.1;
                let width = (slot * 0.8).max(1.0);
                let _ = write!(
                    svg,
                    r#"<path class="mark bar {}" d="M{} {}h{}V{}h-{}Z"><title>{}: {} at {}</title></path>"#,
                    s.class,
                    f(x0),
                    f(y(0.0)),
                    f(width),
                    f(y(value)),
                    f(width),
                    escape(&s.name),
                    short_number(value),
                    short_secs(at)
                );
            }
        }
        for s in self.series.iter().filter(|s| s.mark == Mark::Line) {
            if s.points.is_empty() {
                continue;
            }
            let mut d: Vec<String> = s
                .points
                .iter()
                .enumerate()
                .map(|(i, &(at, value))| {
                    format!(
                        "{}{} {}",
                        if i == 0 { 'M' } else { 'L' },
                        f(x(at)),
                        f(y(value))
                    )
                })
                .collect();
            // A line of one point (a run of one window) would draw nothing: a short level
            // shows it.
            if let [(at, value)] = s.points[..] {
                d = vec![format!("M{} {}h{}", f(x(at) - 4.0), f(y(value)), f(8.0))];
            }
            let _ = write!(
                svg,
                r#"<path class="mark line {}" d="{}"/>"#,
                s.class,
                d.join("")
            );
            for &(at, value) in &s.points {
                let _ = write!(
                    svg,
                    r#"<path class="dot {}" d="M{} {}h0"><title>{}: {} at {}</title></path>"#,
                    s.class,
                    f(x(at)),
                    f(y(value)),
                    escape(&s.name),
                    short_number(value),
                    short_secs(at)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The latency distribution of one request name: counts over logarithmic bins.
#[derive(Debug, Clone)]
pub struct Distribution {
    pub name: String,
    /// (lowest ms, highest ms, count) of each bin, in order.
    pub bins: Vec<(f64, f64, u64)>,
    /// P50, P95, P99 in ms, marked on the axis.
    pub percentiles: [f64; 3],
}

/// Bins per power of ten on the latency axis.
pub const BINS_PER_DECADE: f64 = 5.0;

/// The bin index of a latency in ms.
pub fn bin_of(ms: f64) -> i32 {
    (ms.max(1e-3).log10() * BINS_PER_DECADE).floor() as i32
}

/// The lowest latency of a bin, in ms.
pub fn bin_floor(bin: i32) -> f64 {
    10f64.powf(bin as f64 / BINS_PER_DECADE)
}

const DIST_WIDTH: f64 = 360.0;
const DIST_HEIGHT: f64 = 120.0;
const DIST_BOTTOM: f64 = 22.0;
const DIST_TOP: f64 = 6.0;
const DIST_SIDE: f64 = 24.0;

impl Distribution {
    /// The distribution as an `<svg>` element on a shared axis from `lo_ms` to `hi_ms`.
    pub fn svg(&self, lo_ms: f64, hi_ms: f64) -> String {
        let (lo, hi) = (lo_ms.max(1e-3).log10(), hi_ms.max(lo_ms * 10.0).log10());
        let plot_w = DIST_WIDTH - 2.0 * DIST_SIDE;
        let plot_h = DIST_HEIGHT - DIST_TOP - DIST_BOTTOM;
        let x = |ms: f64| {
            DIST_SIDE + (ms.max(1e-3).log10() - lo).clamp(0.0, hi - lo) / (hi - lo) * plot_w
        };
        let most = self.bins.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
        let base = DIST_TOP + plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart dist" viewBox="0 0 {DIST_WIDTH} {DIST_HEIGHT}" role="img" aria-label="{}">"#,
            escape(&format!("latency distribution of {}", self.name))
        );
        let _ = write!(
            svg,
            r#"<line class="axis" x1="{DIST_SIDE}" x2="{}" y1="{base}" y2="{base}"/>"#,
            f(DIST_WIDTH - DIST_SIDE)
        );
        let mut decade = lo.floor() as i32;
        while (decade as f64) <= hi {
            let ms = 10f64.powi(decade);
            if ms >= lo_ms * 0.999 {
                let _ = write!(
                    svg,
                    r#"<line class="grid" x1="{x0}" x2="{x0}" y1="{DIST_TOP}" y2="{base}"/><text class="tick" x="{x0}" y="{}" text-anchor="middle">{}ms</text>"#,
                    f(DIST_HEIGHT - 6.0),
                    short_number(ms),
                    x0 = f(x(ms))
                );
            }
            decade += 1;
        }
        let mut d = String::new();
        for &(from, to, n) in &self.bins {
            if n == 0 {
                continue;
            }
            let (x0, x1) = (x(from), x(to));
            let top = base - n as f64 / most * plot_h;
            let _ = write!(
                d,
                "M{} {}h{}V{}h-{}Z",
                f(x0 + 0.5),
                f(base),
                f((x1 - x0 - 1.0).max(1.0)),
                f(top),
                f((x1 - x0 - 1.0).max(1.0))
            );
        }
        let total: u64 = self.bins.iter().map(|b| b.2).sum();
        let _ = write!(
            svg,
            r#"<path class="mark bar c1" d="{d}"><title>{}: {total} requests</title></path>"#,
            escape(&self.name)
        );
        for (p, label) in self.percentiles.iter().zip(["P50", "P95", "P99"]) {
            let _ = write!(
                svg,
                r#"<line class="pct" x1="{x0}" x2="{x0}" y1="{DIST_TOP}" y2="{base}"><title>{label} {}ms</title></line>"#,
                short_number(*p),
                x0 = f(x(*p))
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> TimeChart {
        TimeChart {
            title: "Requests <per> second & \"more\"".into(),
            unit: "requests/s".into(),
            x_end: 60.0,
            bar_secs: 10.0,
            series,
            bands: vec![Band {
                from: 0.0,
                to: 20.0,
                label: "ramp <0-20s>".into(),
                class: "phase",
            }],
            levels: vec![Level {
                value: 50.0,
                label: "target & more".into(),
                class: "target",
            }],
        }
    }

    #[test]
    fn numbers_and_times_read_short() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(1.26), "1.3");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(250.0), "250");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_secs(45.0), "45s");
        assert_eq!(short_secs(120.0), "2m");
        assert_eq!(short_secs(90.0), "1m30s");
        assert_eq!(short_secs(5400.0), "1h30m");
        assert_eq!(step_for(105.0, 4.0), 50.0);
        assert_eq!(step_for(0.8, 4.0), 0.2);
        assert_eq!(time_step(60.0), 10.0);
        assert_eq!(time_step(3600.0), 600.0);
    }

    #[test]
    fn a_line_and_bars_are_paths_inside_the_plot_and_text_is_escaped() {
        let svg = chart(vec![
            Series {
                name: "P95 <ms>".into(),
                class: "c1",
                mark: Mark::Line,
                points: vec![(5.0, 10.0), (15.0, 40.0), (25.0, 20.0)],
            },
            Series {
                name: "errors".into(),
                class: "c2",
                mark: Mark::Bars,
                points: vec![(0.0, 3.0), (10.0, 0.0)],
            },
        ])
        .svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"<path class="mark line c1" d="M"#), "{svg}");
        assert_eq!(
            svg.matches(r#"class="mark bar c2""#).count(),
            1,
            "a zero bar is not drawn"
        );
        assert_eq!(svg.matches(r#"class="dot c1""#).count(), 3);
        assert!(svg.contains("P95 &lt;ms&gt;: 40 at 15s"), "{svg}");
        assert!(svg.contains(
            "aria-label=\"Requests &lt;per&gt; second &amp; &quot;more&quot; (requests/s)\""
        ));
        assert!(svg.contains("target &amp; more"));
        assert!(svg.contains("<title>ramp &lt;0-20s&gt;</title>"));
        assert!(
            svg.contains(r#"<text class="band-label" x="62.0" y="18.0">ramp</text>"#),
            "{svg}"
        );
        assert!(!svg.contains("<per>") && !svg.contains("<ms>"));
        // Every coordinate of the line lies in the plot area.
        let d = svg
            .split(r#"class="mark line c1" d=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the line's path");
        for pair in d.split(['M', 'L']).filter(|p| !p.is_empty()) {
            let mut xy = pair.split(' ').map(|v| v.parse::<f64>().expect("number"));
            let (px, py) = (xy.next().expect("x"), xy.next().expect("y"));
            assert!((LEFT..=WIDTH - RIGHT).contains(&px), "{px}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&py), "{py}");
        }
    }

    #[test]
    fn a_line_of_one_point_still_draws_a_mark() {
        let svg = chart(vec![Series {
            name: "requests/s".into(),
            class: "c1",
            mark: Mark::Line,
            points: vec![(10.0, 5.0)],
        }])
        .svg();
        let d = svg
            .split(r#"class="mark line c1" d=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert!(d.starts_with('M') && d.contains('h'), "{svg}");
    }

    #[test]
    fn the_y_axis_covers_the_highest_point_and_level() {
        let svg = chart(vec![Series {
            name: "x".into(),
            class: "c1",
            mark: Mark::Line,
            points: vec![(5.0, 180.0)],
        }])
        .svg();
        assert!(svg.contains(">200</text>"), "{svg}");
        assert!(!chart(Vec::new()).has_data());
        // A target far above the data is named, not drawn: it would flatten the line.
        let low = chart(vec![Series {
            name: "x".into(),
            class: "c1",
            mark: Mark::Line,
            points: vec![(5.0, 5.0)],
        }])
        .svg();
        assert!(low.contains("target &amp; more (above the scale)"), "{low}");
        assert!(!low.contains(r#"class="level target""#));
        assert!(
            low.contains(">6</text>"),
            "the axis follows the data: {low}"
        );
        // Only zeros: the axis runs from 0 to 1, so the line lies on the floor of a real scale.
        let mut zeros = chart(vec![Series {
            name: "x".into(),
            class: "c1",
            mark: Mark::Line,
            points: vec![(5.0, 0.0), (15.0, 0.0)],
        }]);
        zeros.levels.clear();
        let zeros = zeros.svg();
        assert!(zeros.contains(">1</text>"), "{zeros}");
        assert!(zeros.contains(">0.5</text>"), "{zeros}");
    }

    #[test]
    fn a_distribution_draws_its_bins_on_a_log_axis() {
        let d = Distribution {
            name: "GET /a?b=<c>&d".into(),
            bins: vec![(1.0, 1.58, 10), (10.0, 15.8, 5), (100.0, 158.0, 0)],
            percentiles: [1.2, 12.0, 14.0],
        };
        let svg = d.svg(0.1, 1000.0);
        assert!(
            svg.contains("GET /a?b=&lt;c&gt;&amp;d: 15 requests"),
            "{svg}"
        );
        assert_eq!(svg.matches("Z").count(), 2, "two bins with counts");
        for label in ["0.1ms", "1ms", "10ms", "100ms", "1000ms"] {
            assert!(
                svg.contains(&format!(">{label}</text>")),
                "{label} in {svg}"
            );
        }
        assert_eq!(bin_of(1.0), 0);
        assert_eq!(bin_of(10.0), 5);
        assert!((bin_floor(5) - 10.0).abs() < 1e-9);
    }
}
