//! The `_stats_history.csv`: the run window by window, in the shape of Locust's
//! `--csv-full-history` file, so that scripts and dashboards reading Locust's history read
//! this one unchanged.
//!
//! Every window of the run's timeline gives one row per request name seen so far and one
//! `Aggregated` row (HTTP only, as in the stats CSV), stamped with the Unix time of the
//! window's end and the users running then. `Requests/s`, `Failures/s` and the percentiles
//! are the window's own ("current", as Locust says; `N/A` when the window had no such
//! request); the `Total ...` columns are the run's so far, so the last window's totals are
//! the stats CSV's figures. Windows are the run's window length (the last one ends with the
//! measured time). Three columns are added at the end: as in the stats CSV, the 429s and the
//! expected errors so far, and `Phase`: `load` for the windows of the run, `stop` for the
//! requests made once the run began to stop (the users' cleanup), written after the last
//! window with no rate (`N/A`: they are not load) and counted in the totals. Times are over
//! the judged answers, as everywhere.

use super::ReportError;
use super::csv::{encode, stats_row};
use crate::measure::{MeasuredRun, RequestKind, RequestStats, WindowStats};
use std::collections::BTreeMap;

/// The history CSV's header, in order: Locust's columns, then ours.
pub const HISTORY_HEADER: [&str; 27] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
    "Total Rate Limited Count",
    "Total Expected Error Count",
    "Phase",
];

/// Where the columns come from in a stats CSV row ([`stats_row`]): the window's rates and
/// percentiles, the cumulative counts and times.
const RATES: std::ops::RangeInclusive<usize> = 9..=10;
const PERCENTILES: std::ops::RangeInclusive<usize> = 11..=21;
const TOTALS: std::ops::RangeInclusive<usize> = 2..=8;
const OUR_TOTALS: std::ops::RangeInclusive<usize> = 22..=23;

/// The users running at `secs` into the run: the last sample taken by then.
pub(crate) fn users_at(run: &MeasuredRun, secs: f64) -> u64 {
    run.users_over_time
        .iter()
        .take_while(|s| s.t_secs <= secs + 1e-6)
        .last()
        .map_or(0, |s| s.users)
}

/// What every row of one window (or of the stop phase) shares.
struct Stamp {
    /// Unix time of the window's end, and the users running then.
    time: String,
    users: String,
    /// `load` for a window of the run, `stop` for the stop phase.
    phase: &'static str,
    /// The window's length in seconds; `None` for the stop phase, which has no rate.
    length: Option<f64>,
    /// Seconds of the run so far (for the cumulative columns).
    run_secs: f64,
    count_429: bool,
}

fn row(
    stamp: &Stamp,
    kind: &str,
    name: &str,
    window: Option<&RequestStats>,
    so_far: &RequestStats,
) -> Vec<String> {
    let mut out: Vec<String> = vec![stamp.time.clone(), stamp.users.clone()];
    out.push(kind.to_string());
    out.push(name.to_string());
    let empty = RequestStats::default();
    let now = stats_row(
        kind,
        name,
        window.unwrap_or(&empty),
        stamp.length.unwrap_or(0.0),
        stamp.count_429,
    );
    if stamp.length.is_some() {
        out.extend(now[RATES].iter().cloned());
    } else {
        out.extend(RATES.map(|_| "N/A".to_string()));
    }
    if window.is_some_and(|w| w.judged_times(stamp.count_429).count > 0) {
        out.extend(now[PERCENTILES].iter().cloned());
    } else {
        out.extend(PERCENTILES.map(|_| "N/A".to_string()));
    }
    let total = stats_row(kind, name, so_far, stamp.run_secs, stamp.count_429);
    out.extend(total[TOTALS].iter().cloned());
    out.extend(total[OUR_TOTALS].iter().cloned());
    out.push(stamp.phase.to_string());
    out
}

/// The rows of one window, or of the stop phase: one per request name seen so far, then the
/// HTTP aggregate.
fn window_rows(
    rows: &mut Vec<Vec<String>>,
    stamp: &Stamp,
    w: &WindowStats,
    so_far: &mut BTreeMap<String, RequestStats>,
    http_so_far: &mut RequestStats,
) {
    for (key, stats) in &w.requests {
        so_far.entry(key.clone()).or_default().merge(stats);
    }
    let http = w.combined(RequestKind::Http);
    http_so_far.merge(&http);
    // The stats CSV's order: by request key.
    for (key, total) in so_far.iter() {
        rows.push(row(
            stamp,
            &total.method,
            &total.name,
            w.requests.get(key),
            total,
        ));
    }
    rows.push(row(stamp, "", "Aggregated", Some(&http), http_so_far));
}

/// The `_stats_history.csv` bytes; the time columns over the judged answers, as the stats
/// CSV's (`count_429`: the 429s are judged).
pub fn history_csv(run: &MeasuredRun, count_429: bool) -> Result<Vec<u8>, ReportError> {
    let mut rows = vec![HISTORY_HEADER.iter().map(|s| s.to_string()).collect()];
    let start = run.started_at.map_or(0, |t| t.timestamp());
    let mut so_far: BTreeMap<String, RequestStats> = BTreeMap::new();
    let mut http_so_far = RequestStats::default();
    for (i, w) in run.windows.iter().enumerate() {
        let end = run.window_end(i);
        let stamp = Stamp {
            time: (start + end.round() as i64).to_string(),
            users: users_at(run, end).to_string(),
            phase: "load",
            length: Some(end - w.start_secs),
            run_secs: end,
            count_429,
        };
        window_rows(&mut rows, &stamp, w, &mut so_far, &mut http_so_far);
    }
    if let Some(phase) = &run.stop_phase {
        let stamp = Stamp {
            time: (start + phase.start_secs.round() as i64).to_string(),
            users: users_at(run, phase.start_secs).to_string(),
            phase: "stop",
            length: None,
            run_secs: run.duration_secs,
            count_429,
        };
        window_rows(&mut rows, &stamp, phase, &mut so_far, &mut http_so_far);
    }
    encode(rows, "stats history CSV")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::UserSample;
    use crate::report::csv::stats_csv;
    use crate::verdict::testing::{row as req, run_of};

    fn records(bytes: &[u8]) -> (Vec<String>, Vec<::csv::StringRecord>) {
        let mut reader = ::csv::Reader::from_reader(bytes);
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader.records().map(|r| r.expect("record")).collect();
        (header, rows)
    }

    #[test]
    fn one_row_per_name_and_an_aggregate_every_window_with_totals_so_far() {
        let mut run = run_of(
            10.0,
            vec![
                vec![req("GET", "/health", 10, 100, 0, 0)],
                vec![
                    req("GET", "/health", 20, 50, 2, 0),
                    req("POST", "/api/search", 30, 20, 0, 4),
                ],
                vec![req("WS", "audio→response", 5, 30, 0, 0)],
            ],
        );
        run.duration_secs = 25.0;
        run.started_at = chrono::DateTime::from_timestamp(1_700_000_000, 0);
        run.users_over_time = vec![
            UserSample {
                t_secs: 1.0,
                users: 2,
            },
            UserSample {
                t_secs: 9.0,
                users: 5,
            },
        ];
        let (header, rows) = records(&history_csv(&run, false).expect("csv"));
        assert_eq!(header, HISTORY_HEADER);
        let at = |i: usize, col: &str| {
            let c = header.iter().position(|h| h == col).expect(col);
            rows[i][c].to_string()
        };
        // Window 1: health and the aggregate; window 2 adds search; window 3 the WS row.
        assert_eq!(rows.len(), 2 + 3 + 4);
        assert_eq!(at(0, "Timestamp"), "1700000010");
        assert_eq!(at(0, "User Count"), "5");
        assert_eq!(
            (at(0, "Type"), at(0, "Name")),
            ("GET".into(), "/health".into())
        );
        assert_eq!(at(0, "Requests/s"), "10.00");
        assert_eq!(at(1, "Name"), "Aggregated");
        assert_eq!(at(1, "Type"), "");
        assert_eq!(at(2, "Failures/s"), "0.20", "2 failures in 10s");
        assert_eq!(at(2, "Total Request Count"), "152");
        assert_eq!(at(2, "Total Failure Count"), "2");
        assert_eq!(at(3, "Total Rate Limited Count"), "4");
        assert_eq!(at(4, "Total Request Count"), "176", "HTTP: 100 + 52 + 24");
        // The last window is 5 s long and had no HTTP request.
        assert_eq!(at(5, "Timestamp"), "1700000025");
        assert_eq!(
            (at(5, "Name"), at(5, "95%")),
            ("/health".into(), "N/A".into())
        );
        assert_eq!(at(5, "Requests/s"), "0.00");
        assert_eq!(at(7, "Requests/s"), "6.00", "30 round trips in 5s");
        assert_eq!(at(7, "50%"), "5.00");
    }

    #[test]
    fn the_last_windows_totals_are_the_stats_csvs() {
        let run = run_of(
            10.0,
            (0..4)
                .map(|i| {
                    vec![
                        req("GET", "/health", 10 + i, 90, i, 1),
                        req("POST", "/api/conversation", 100 * (i + 1), 40, 1, 0),
                    ]
                })
                .collect(),
        );
        let (header, history) = records(&history_csv(&run, false).expect("history"));
        let (_, stats) = records(&stats_csv(&run, false).expect("stats"));
        let last = &history[history.len() - stats.len()..];
        for (h, s) in last.iter().zip(&stats) {
            assert_eq!(&h[3], &s[1], "same names in the same order");
            let total = |name: &str| &h[header.iter().position(|c| c == name).expect(name)];
            assert_eq!(total("Total Request Count"), &s[2]);
            assert_eq!(total("Total Failure Count"), &s[3]);
            assert_eq!(total("Total Median Response Time"), &s[4]);
            assert_eq!(total("Total Max Response Time"), &s[7]);
            assert_eq!(total("Total Rate Limited Count"), &s[22]);
        }
    }
}
