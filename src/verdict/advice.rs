//! What to look at when a check fails, after the guide's warning signs. Each check picks
//! its own advice; these are the texts several checks share.

use super::fmt_ms;
use crate::measure::{MeasuredRun, RequestKind};
use std::collections::BTreeMap;

/// The slowest rows of `kind` by P95, for advice.
pub(super) fn slowest(run: &MeasuredRun, kind: RequestKind, n: usize) -> String {
    let mut rows: Vec<_> = run
        .requests
        .iter()
        .filter(|r| r.kind == Some(kind) && r.times.count > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.times.percentile_us(95.0)));
    rows.iter()
        .take(n)
        .map(|r| format!("{} (P95 {})", r.key(), fmt_ms(r.times.percentile_ms(95.0))))
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

/// Slow answers: where to look, naming the slowest requests of `kind`.
pub(super) fn latency(run: &MeasuredRun, kind: RequestKind) -> String {
    if kind == RequestKind::Http
        && let Some(t) = timeouts(run)
    {
        return timeout_advice(run, &t);
    }
    format!(
        "Slow responses (database bottleneck?): check query performance and profile the \
         slowest endpoints: {}.",
        slowest(run, kind, 3)
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
