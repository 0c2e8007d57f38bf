//! What to look at when a check fails, after the guide's warning signs. Each check picks
//! its own advice; these are the texts several checks share.

use super::{fmt_ms, is_round_trip};
use crate::measure::{MeasuredRun, RequestKind, RequestStats};
use std::collections::BTreeMap;

/// The slowest of `rows` by the P95 of their judged answers, for advice.
fn slowest<'a>(rows: impl Iterator<Item = &'a RequestStats>, count_429: bool, n: usize) -> String {
    let mut rows: Vec<(&RequestStats, u64)> = rows
        .filter_map(|r| {
            let times = r.judged_times(count_429);
            (times.count > 0).then(|| (r, times.percentile_us(95.0)))
        })
        .collect();
    rows.sort_by_key(|(_, p95)| std::cmp::Reverse(*p95));
    rows.iter()
        .take(n)
        .map(|(r, p95)| format!("{} (P95 {})", r.key(), fmt_ms(*p95 as f64 / 1000.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Requests the tool gave up on at `--request-timeout`: how many, the limit, and the
/// endpoints with the most.
struct Timeouts {
    count: u64,
    limit: String,
    endpoints: String,
}

/// What the failures table says about requests that hit `--request-timeout`, if any did.
fn timeouts(run: &MeasuredRun) -> Option<Timeouts> {
    const MARK: &str = "no answer within --request-timeout ";
    let mut limit = None;
    let mut by_endpoint = BTreeMap::<String, u64>::new();
    for e in run.errors.iter().filter(|e| e.error.contains(MARK)) {
        limit.get_or_insert_with(|| e.error.split(MARK).nth(1).unwrap_or("").to_string());
        *by_endpoint
            .entry(format!("{} {}", e.method, e.name))
            .or_insert(0) += e.occurrences;
    }
    let count = by_endpoint.values().sum();
    let mut endpoints: Vec<_> = by_endpoint.into_iter().collect();
    endpoints.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(Timeouts {
        count,
        limit: limit?,
        endpoints: endpoints
            .iter()
            .take(3)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The timeouts' own sentence: the tool's limit ended them, and what the server did.
fn timeout_advice(run: &MeasuredRun, t: &Timeouts) -> String {
    let http = run.combined(RequestKind::Http);
    let answered = http.total() - http.status_codes.get(&0).copied().unwrap_or(0);
    format!(
        "{} requests got no answer within --request-timeout {} ({}): the tool gave up on \
         them, the server was still working or never answered; it answered {answered} of \
         {} requests. Raise --request-timeout if waits that long are acceptable, else find \
         what holds those endpoints up.",
        t.count,
        t.limit,
        t.endpoints,
        http.total()
    )
}

/// The `n` slowest HTTP requests by the P95 of their judged answers.
pub(super) fn slowest_http(run: &MeasuredRun, count_429: bool, n: usize) -> String {
    let http = run
        .requests
        .iter()
        .filter(|r| r.kind == Some(RequestKind::Http));
    slowest(http, count_429, n)
}

/// Slow HTTP answers: where to look, naming the slowest requests.
pub(super) fn latency(run: &MeasuredRun, count_429: bool) -> String {
    if let Some(t) = timeouts(run) {
        return timeout_advice(run, &t);
    }
    format!(
        "Slow responses (database bottleneck?): check query performance and profile the \
         slowest endpoints: {}.",
        slowest_http(run, count_429, 3)
    )
}

/// Slow WebSocket round trips: the slowest round trips only (handshakes and closes are not
/// round trips), and what is known of why: the failed round trips' own reasons (closed by
/// the server with its code, no reply in time), or, when none failed, that the replies
/// came slowly.
pub(super) fn ws_latency(run: &MeasuredRun) -> String {
    let trips: Vec<&RequestStats> = run.requests.iter().filter(|r| is_round_trip(r)).collect();
    let names: Vec<String> = trips
        .iter()
        .map(|r| format!("{} {}", r.method, r.name))
        .collect();
    let mut causes: Vec<String> = run
        .errors
        .iter()
        .filter(|e| !e.expected && names.contains(&format!("{} {}", e.method, e.name)))
        .map(|e| format!("{} ×{}", e.error, e.occurrences))
        .collect();
    causes.truncate(3);
    let why = if causes.is_empty() {
        "every round trip got its reply, slowly: the server is slow to answer messages \
         (look at what it does per message, its event loop and what it awaits)"
            .to_string()
    } else {
        format!(
            "failed round trips counted their time to failure: {}; the failures table \
             (_failures.csv) says which and when",
            causes.join(", ")
        )
    };
    format!(
        "Slow WebSocket round trips: {}. {why}.",
        slowest(trips.into_iter(), false, 3)
    )
}

/// Failed answers of `kind`: what the status codes say, and where the details are. 429s are
/// named only when `with_429s` (they count as failures only with `--count-429-as-failure`).
pub(super) fn errors(run: &MeasuredRun, kind: RequestKind, with_429s: bool) -> String {
    if kind == RequestKind::WebSocket {
        let failed: u64 = run
            .requests
            .iter()
            .filter(|r| r.kind == Some(kind))
            .map(|r| r.failures)
            .sum();
        return format!(
            "{failed} WebSocket operations failed (handshakes, replies or closes): the \
             failures table (_failures.csv) says which step and why."
        );
    }
    let mut codes = BTreeMap::<u16, u64>::new();
    for r in run.requests.iter().filter(|r| r.kind == Some(kind)) {
        for (code, n) in &r.status_codes {
            *codes.entry(*code).or_insert(0) += n;
        }
    }
    let server: u64 = codes.range(500..600).map(|(_, n)| n).sum();
    let timed_out = timeouts(run);
    let transport = codes
        .get(&0)
        .copied()
        .unwrap_or(0)
        .saturating_sub(timed_out.as_ref().map_or(0, |t| t.count));
    let throttled = codes.get(&429).copied().unwrap_or(0);
    let mut parts = Vec::new();
    if server > 0 {
        parts.push(format!(
            "{server} server errors (5xx): application errors, check the server logs for exceptions."
        ));
    }
    if let Some(t) = &timed_out {
        parts.push(timeout_advice(run, t));
    }
    if transport > 0 {
        parts.push(format!(
            "{transport} connection errors or timeouts (no answer): resource exhaustion, check \
             connection limits and timeouts, scale horizontally."
        ));
    }
    if throttled > 0 && with_429s {
        parts.push(format!(
            "{throttled} rate-limited answers (429), counted as failures here: rate limiting \
             triggered, expected under load or adjust the limits."
        ));
    }
    if parts.is_empty() {
        parts.push(
            "Look at the failures table (_failures.csv) for the errors and the requests \
             that got them."
                .to_string(),
        );
    }
    parts.join(" ")
}
