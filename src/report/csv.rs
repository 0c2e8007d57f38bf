//! The stats and failures CSV, with the columns Locust users know.
//!
//! Stats: one row per request key (Type is the method, `WS` for WebSocket operations), then
//! an `Aggregated` row over HTTP requests only (WebSocket rows are listed but, as in the
//! verdict, not mixed into the HTTP aggregate). Times are in milliseconds, over the judged
//! answers (successes and failures, plus the 429s with `--count-429-as-failure`), as the
//! verdict's; the 429s' and the expected errors' own times are in their columns at the end
//! (`N/A` where a row had none). `Failure Count` is the failures as measured; 429s are in
//! `Rate Limited Count` whatever the verdict's option.

use super::{ReportError, per_second};
use crate::measure::{MeasuredRun, RequestKind, RequestStats};

/// The stats CSV's header, in order.
pub const STATS_HEADER: [&str; 28] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
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
    "Rate Limited Count",
    "Expected Error Count",
    "Rate Limited Average Response Time",
    "Rate Limited 95%",
    "Expected Error Average Response Time",
    "Expected Error 95%",
];

/// The failures CSV's header, in order.
pub const FAILURES_HEADER: [&str; 5] = ["Method", "Name", "Error", "Occurrences", "Expected"];

pub(super) const PERCENTILES: [f64; 11] = [
    50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0,
];

pub(super) fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

pub(super) fn stats_row(
    kind: &str,
    name: &str,
    s: &RequestStats,
    secs: f64,
    count_429: bool,
) -> Vec<String> {
    let total = s.total();
    let h = s.judged_times(count_429);
    let mut row = vec![
        kind.to_string(),
        name.to_string(),
        total.to_string(),
        s.failures.to_string(),
        ms(h.percentile_us(50.0) as f64),
        ms(h.mean_us()),
        ms(h.min_us as f64),
        ms(h.max_us as f64),
        format!(
            "{:.2}",
            if total == 0 {
                0.0
            } else {
                s.bytes_received as f64 / total as f64
            }
        ),
        format!("{:.2}", per_second(total, secs)),
        format!("{:.2}", per_second(s.failures, secs)),
    ];
    row.extend(PERCENTILES.iter().map(|p| ms(h.percentile_us(*p) as f64)));
    row.push(s.rate_limited.to_string());
    row.push(s.expected_errors.to_string());
    for apart in [&s.rate_limited_times, &s.expected_error_times] {
        if apart.count == 0 {
            row.extend(["N/A".to_string(), "N/A".to_string()]);
        } else {
            row.push(ms(apart.mean_us()));
            row.push(ms(apart.percentile_us(95.0) as f64));
        }
    }
    row
}

pub(super) fn encode(rows: Vec<Vec<String>>, what: &'static str) -> Result<Vec<u8>, ReportError> {
    let encode_err = |reason: String| ReportError::Encode { what, reason };
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .write_record(&row)
            .map_err(|e| encode_err(e.to_string()))?;
    }
    writer.into_inner().map_err(|e| encode_err(e.to_string()))
}

/// The `_stats.csv` bytes.
pub fn stats_csv(run: &MeasuredRun, count_429: bool) -> Result<Vec<u8>, ReportError> {
    let mut rows = vec![STATS_HEADER.iter().map(|s| s.to_string()).collect()];
    for s in &run.requests {
        rows.push(stats_row(
            &s.method,
            &s.name,
            s,
            run.duration_secs,
            count_429,
        ));
    }
    rows.push(stats_row(
        "",
        "Aggregated",
        &run.combined(RequestKind::Http),
        run.duration_secs,
        count_429,
    ));
    encode(rows, "stats CSV")
}

/// The `_accounts_left.csv` bytes: every account the run created and could not delete, with
/// the run's id (the e-mails carry it too), the server's id for it and why; never a password
/// or a token.
pub fn accounts_left_csv(run: &MeasuredRun, run_id: &str) -> Result<Vec<u8>, ReportError> {
    let mut rows = vec![
        ["Run Id", "Email", "Account Id", "Why It Was Left"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ];
    for a in &run.cleanup.left_behind {
        rows.push(vec![
            run_id.to_string(),
            a.email.clone(),
            a.id.clone().unwrap_or_default(),
            a.reason.clone(),
        ]);
    }
    encode(rows, "accounts CSV")
}

/// The `_failures.csv` bytes: failures and expected errors, most frequent first.
pub fn failures_csv(run: &MeasuredRun) -> Result<Vec<u8>, ReportError> {
    let mut rows = vec![FAILURES_HEADER.iter().map(|s| s.to_string()).collect()];
    for e in &run.errors {
        rows.push(vec![
            e.method.clone(),
            e.name.clone(),
            e.error.clone(),
            e.occurrences.to_string(),
            e.expected.to_string(),
        ]);
    }
    encode(rows, "failures CSV")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::ErrorCount;
    use crate::verdict::testing::{row, run_of};

    #[test]
    fn stats_header_is_locusts_plus_ours() {
        let run = run_of(10.0, vec![vec![row("GET", "/health", 10, 10, 0, 0)]]);
        let text = String::from_utf8(stats_csv(&run, false).expect("csv")).expect("utf8");
        let header = text.lines().next().expect("header");
        assert_eq!(
            header,
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
             Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
             50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Rate Limited Count,Expected Error Count,\
             Rate Limited Average Response Time,Rate Limited 95%,Expected Error Average Response Time,\
             Expected Error 95%"
        );
    }

    #[test]
    fn rows_per_request_and_an_http_aggregate() {
        let run = run_of(
            10.0,
            vec![vec![
                row("GET", "/health", 10, 90, 10, 0),
                row("POST", "/api/search", 30, 50, 0, 5),
                row("WS", "message /ws/{session_id}", 900, 20, 0, 0),
            ]],
        );
        let bytes = stats_csv(&run, false).expect("csv");
        let mut reader = ::csv::Reader::from_reader(bytes.as_slice());
        let rows: Vec<::csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(&rows[0][0], "GET");
        assert_eq!(&rows[0][1], "/health");
        assert_eq!(&rows[0][2], "100");
        assert_eq!(&rows[0][3], "10");
        assert_eq!(&rows[0][9], "10.00", "100 requests in 10s");
        assert_eq!(&rows[2][0], "WS");
        let agg = &rows[3];
        assert_eq!((&agg[0], &agg[1]), ("", "Aggregated"));
        assert_eq!(&agg[2], "155", "HTTP only: 100 + 55");
        assert_eq!(&agg[3], "10");
        assert_eq!(&agg[22], "5");
        assert_eq!(
            &agg[7], "30.00",
            "the WebSocket 900ms is not in the HTTP max"
        );
    }

    #[test]
    fn failures_rows() {
        let mut run = MeasuredRun::default();
        run.errors.push(ErrorCount {
            method: "POST".into(),
            name: "/api/conversation".into(),
            error: "500 Internal Server Error, body: \"boom\"".into(),
            occurrences: 3,
            expected: false,
        });
        let bytes = failures_csv(&run).expect("csv");
        let mut reader = ::csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(
            reader
                .headers()
                .expect("headers")
                .iter()
                .collect::<Vec<_>>(),
            FAILURES_HEADER.to_vec()
        );
        let rows: Vec<_> = reader.records().map(|r| r.expect("record")).collect();
        assert_eq!(&rows[0][2], "500 Internal Server Error, body: \"boom\"");
        assert_eq!(&rows[0][3], "3");
    }
}
