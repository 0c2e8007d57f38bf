//! Whether the run did the work it was asked to do, before any figure is trusted: it ran to
//! its planned end (`run_completed`), it measured judged requests (`work_done`), and the
//! users of every class could start (`users_started`).

use super::{Check, Rates, RunFacts, Targets, trim_num};
use crate::measure::{AbortArming, MeasuredRun, RequestKind};

/// `INTERRUPTED at 7.0 s of 20 s (Ctrl-C)`, for a run stopped before its planned end.
pub fn interruption_text(run: &MeasuredRun, facts: &RunFacts) -> Option<String> {
    if !run.interrupted && run.aborted.is_none() {
        return None;
    }
    let planned = if facts.planned_secs > 0.0 {
        format!(" of {} s", trim_num(facts.planned_secs))
    } else {
        String::new()
    };
    let why = match (&run.aborted, &run.interruption) {
        (Some(reason), _) => format!(" (--abort-on-fail: {reason})"),
        (None, Some(reason)) => format!(" ({reason})"),
        (None, None) => String::new(),
    };
    // A dashboard run stopped before Start measured no time at all: its wait is no part
    // of the planned time.
    if run.first_user_secs.is_none() && run.max_users == 0 && run.requests.is_empty() {
        return Some(format!("INTERRUPTED before any user started{why}"));
    }
    Some(format!(
        "INTERRUPTED at {:.1} s{planned}{why}",
        run.duration_secs
    ))
}

/// A run stopped before its planned end never passes.
pub(super) fn run_completed(run: &MeasuredRun, facts: &RunFacts) -> Check {
    let label = "Run Completed";
    let target = if facts.planned_secs > 0.0 {
        format!("runs its planned {} s", trim_num(facts.planned_secs))
    } else {
        "runs to its planned end".to_string()
    };
    match interruption_text(run, facts) {
        None => Check::judged("run_completed", label, target, "ran to its end", true),
        Some(text) => Check::judged("run_completed", label, target, text, false).advise(|| {
            match &run.aborted {
                Some(_) => "The run was stopped early by --abort-on-fail: see the check that \
                            tripped it, then run again to its end."
                    .to_string(),
                None => "The figures cover only the time before the stop: run again to the \
                         planned end before trusting them."
                    .to_string(),
            }
        }),
    }
}

/// Whether `--abort-on-fail`'s rule was ever armed: one that stayed below its minimums did
/// nothing, and a reader must not think the run was guarded. Not a target: it never fails.
pub(super) fn abort_rule(run: &MeasuredRun, rule: &AbortArming, t: &Targets) -> Check {
    let label = "Abort Rule";
    let target = format!(
        "armed after {} judged requests and {} s",
        rule.min_requests,
        trim_num(rule.min_secs)
    );
    match rule.armed_at_secs {
        Some(at) => Check::judged(
            "abort_rule",
            label,
            target,
            format!("armed at {at:.1} s"),
            true,
        ),
        None => {
            let judged = super::core_figures(run, t).rates.judged;
            let why = if judged < rule.min_requests {
                format!(
                    "{judged} judged requests, fewer than --abort-min-requests {}",
                    rule.min_requests
                )
            } else {
                format!(
                    "the run ended before --abort-min-time {} s",
                    trim_num(rule.min_secs)
                )
            };
            Check::skipped(
                "abort_rule",
                label,
                target,
                format!("NEVER ARMED: {why}; --abort-on-fail could not stop this run"),
            )
        }
    }
}

pub use crate::measure::LATE_SHARE_PCT;

/// An open-model run did its work only when every arrival started, and on time: a dropped
/// arrival is work never sent, a late one a start the generator (or the pool) held back.
pub(super) fn arrivals(run: &MeasuredRun) -> Option<Check> {
    let a = run.arrivals.as_ref()?;
    let started = a.started();
    let lag_p99 = if a.lag.count > 0 {
        super::fmt_ms(a.lag.percentile_ms(99.0))
    } else {
        "n/a".to_string()
    };
    let target = format!(
        "every planned arrival starts, at most {}% of them (one at least) more than {} ms late",
        trim_num(LATE_SHARE_PCT),
        crate::measure::LATE_START.as_millis()
    );
    let mut actual = format!(
        "{started} of {} started ({} dropped, {} late); start lag P99 {lag_p99}",
        a.planned, a.dropped, a.late
    );
    if !a.completed {
        actual.push_str("; the schedule did not run to its end");
    }
    let passed = a.planned > 0 && a.completed && a.dropped == 0 && !a.too_many_late();
    let details = vec![
        format!("schedule: {}", a.schedule),
        format!(
            "pool of {} users: {} arrivals taken by a waiting user, {} by a user started for them",
            a.max_users, a.taken, a.on_demand
        ),
    ];
    Some(
        Check::judged("arrivals", "Arrivals", target, actual, passed)
            .with_details(details)
            .advise(|| {
                if a.planned == 0 {
                    "No arrival's time came: the pre-started users never got ready (see Users \
                     Started), or the run stopped first."
                        .to_string()
                } else if !a.completed {
                    "The run ended before its arrival schedule did, so part of the planned \
                     load was never sent: give the run (a Locust master's -t) at least the \
                     schedule's length, or see why it stopped early."
                        .to_string()
                } else if a.dropped > 0 {
                    format!(
                        "{} arrivals found all {} users of the pool busy and were dropped: the \
                         server answered slower than work arrived. This load was not sent, so \
                         the figures understate it: raise --max-users, or lower the rate to \
                         what the server holds (the capacity command finds it).",
                        a.dropped, a.max_users
                    )
                } else {
                    format!(
                        "{} of {started} starts came more than {} ms late: users started on \
                         demand (raise --pre-started-users), or this machine cannot keep the \
                         pace (start lag P99 {lag_p99}; run fewer arrivals per generator).",
                        a.late,
                        crate::measure::LATE_START.as_millis()
                    )
                }
            }),
    )
}

/// A run that judged no request measured nothing worth a verdict.
pub(super) fn work_done(run: &MeasuredRun, t: &Targets) -> Check {
    let http = Rates::of(&run.combined(RequestKind::Http), t.count_429_as_failure);
    let ws = Rates::of(
        &run.combined(RequestKind::WebSocket),
        t.count_429_as_failure,
    );
    // HTTP requests and WebSocket operations are judged apart: named apart, never added.
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut actual = format!("{} judged HTTP request{}", http.judged, plural(http.judged));
    if ws.total > 0 {
        actual.push_str(&format!(
            ", {} WebSocket operation{}",
            ws.judged,
            plural(ws.judged)
        ));
    }
    let mut check = Check::judged(
        "work_done",
        "Work Done",
        "at least 1 judged request or WebSocket operation",
        actual,
        http.judged + ws.judged > 0,
    );
    check.details.push(format!(
        "{} HTTP requests sent: {} succeeded + {} failed = {} judged",
        http.total, http.successes, http.failures, http.judged
    ));
    let apart = if t.count_429_as_failure {
        format!("{} expected errors", http.expected_errors)
    } else {
        format!(
            "{} rate limited (429), {} expected errors",
            http.rate_limited, http.expected_errors
        )
    };
    check.details.push(format!("not judged: {apart}"));
    check.advise(|| {
        "Nothing was judged: no user got to its tasks, or every answer was a 429. See Users \
         Started and the failures table."
            .to_string()
    })
}

/// Every user class's users could start (registration and login), but for the allowed share.
pub(super) fn users_started(run: &MeasuredRun, t: &Targets) -> Check {
    let label = "Users Started";
    let target = if t.max_refused_users > 0.0 {
        format!(
            "at most {}% of a class's users refused at start",
            trim_num(t.max_refused_users)
        )
    } else {
        "every user starts".to_string()
    };
    if run.user_starts.values().all(|c| c.launched == 0) {
        return Check::skipped("users_started", label, target, "no user was launched");
    }
    let mut details = Vec::new();
    let mut failing = Vec::new();
    let (mut launched, mut started) = (0, 0);
    for (class, c) in &run.user_starts {
        launched += c.launched;
        started += c.started;
        // Users whose start never ended (no answer, or the run stopped first) did not start.
        let pending = c
            .launched
            .saturating_sub(c.started)
            .saturating_sub(c.refused_total());
        let refused = c.refused_total() + pending;
        let mut reasons: Vec<String> = c
            .refused
            .iter()
            .map(|(reason, n)| format!("{reason} ×{n}"))
            .collect();
        if pending > 0 {
            reasons.push(format!("still starting when the run stopped ×{pending}"));
        }
        let reasons = reasons.join(", ");
        let line = if refused == 0 {
            format!("{} of {} {class} users started", c.started, c.launched)
        } else {
            format!(
                "{} of {} {class} users started ({reasons})",
                c.started, c.launched
            )
        };
        let share = if c.launched == 0 {
            0.0
        } else {
            refused as f64 * 100.0 / c.launched as f64
        };
        if refused > 0 && share > t.max_refused_users {
            failing.push(line.clone());
        }
        details.push(line);
        for (reason, n) in &c.stopped_later {
            details.push(format!("{class}: {n} stopped later ({reason})"));
        }
    }
    let passed = failing.is_empty();
    let actual = if passed {
        format!("{started} of {launched} users started")
    } else {
        failing.join("; ")
    };
    let mut reasons: Vec<String> = run
        .user_starts
        .values()
        .flat_map(|c| c.refused.keys().cloned())
        .collect();
    if run
        .user_starts
        .values()
        .any(|c| c.launched > c.started + c.refused_total())
    {
        reasons.push("still starting when the run stopped".to_string());
    }
    Check::judged("users_started", label, target, actual, passed)
        .with_details(details)
        .advise(|| refusal_advice(&reasons))
}

/// What to do about users refused at their start, after what refused them.
fn refusal_advice(reasons: &[String]) -> String {
    let mut parts = Vec::new();
    if reasons.iter().any(|r| r.contains("(429")) {
        parts.push(
            "The server's per-client rate limit refused them (429): it sees the simulated users \
             as one client. Ways out: per-user source addresses (the default against a server on \
             this machine's IPv4 loopback; not with --no-loopback-sources), --forwarded-for-pool N \
             where the server trusts X-Forwarded-For, or a test environment with raised limits. \
             A run right after another may also find the budget used up: wait for the window to \
             end."
                .to_string(),
        );
    }
    // The status the server refused with, read from `... refused (404: ...)`.
    let status = |r: &str| -> Option<u16> {
        let code = r.split("refused (").nth(1)?;
        code.get(..3)?.parse().ok()
    };
    let with = |pick: &dyn Fn(&str, u16) -> bool| -> Vec<&str> {
        reasons
            .iter()
            .filter(|r| status(r).is_some_and(|code| pick(r, code)))
            .map(String::as_str)
            .collect()
    };
    let not_json = with(&|r, _| r.contains("body is not JSON"));
    if !not_json.is_empty() {
        parts.push(format!(
            "The server answered with something that is not the API's JSON ({}): --host may \
             name a web site, a proxy or a catch-all page rather than the API's base URL.",
            not_json.join("; ")
        ));
    }
    let server = with(&|r, code| (500..600).contains(&code) && !r.contains("body is not JSON"));
    if !server.is_empty() {
        parts.push(format!(
            "The server failed at the account steps ({}): server errors, not a rule of the \
             account: check its logs for exceptions at registration and login.",
            server.join("; ")
        ));
    }
    let missing = with(&|r, code| matches!(code, 404 | 405) && !r.contains("body is not JSON"));
    if !missing.is_empty() {
        parts.push(format!(
            "The account endpoints are not there ({}): check that --host is the API's base \
             URL (with its path prefix, if it has one).",
            missing.join("; ")
        ));
    }
    let said = with(&|r, code| {
        (400..500).contains(&code)
            && !matches!(code, 404 | 405 | 429)
            && !r.contains("body is not JSON")
    });
    if !said.is_empty() {
        parts.push(format!(
            "The server refused them and said why: {}. Check the account rules (address \
             domain, password policy) and that registration is open on this deployment.",
            said.join("; ")
        ));
    }
    if reasons.iter().any(|r| r.contains("still starting")) {
        parts.push(
            "Some users were still registering or logging in when the run stopped: the server \
             answered too slowly (or not at all), or the run ended right after their start; \
             give the ramp more time before the end."
                .to_string(),
        );
    }
    if let Some(timed_out) = reasons.iter().find(|r| r.contains("--request-timeout")) {
        parts.push(format!(
            "Some waited longer than the tool's timeout for their start ({timed_out}), even \
             after retries: the tool gave up on them, the server had not answered. Raise \
             --request-timeout if the account steps may take that long, else find what slows \
             them (bcrypt cost, a busy database)."
        ));
    } else if reasons.iter().any(|r| r.contains("no answer")) {
        parts.push(
            "Some got no answer at all (after retries): the server dropped or timed out the \
             connections; check its logs and its connection limits."
                .to_string(),
        );
    }
    if parts.is_empty() {
        parts.push("See the reasons above.".to_string());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{row, run_of};
    use super::super::{RunFacts, judge};
    use super::*;
    use crate::measure::ClassStarts;

    fn healthy() -> MeasuredRun {
        run_of(10.0, vec![vec![row("GET", "/health", 20, 100, 0, 0)]; 2])
    }

    fn facts() -> RunFacts {
        RunFacts {
            planned_secs: 20.0,
            ..RunFacts::default()
        }
    }

    #[test]
    fn a_run_stopped_before_any_user_started_says_so_not_a_time() {
        let run = MeasuredRun {
            duration_secs: 179.9,
            interrupted: true,
            interruption: Some("SIGTERM".into()),
            ..MeasuredRun::default()
        };
        assert_eq!(
            interruption_text(&run, &facts()).as_deref(),
            Some("INTERRUPTED before any user started (SIGTERM)")
        );
    }

    #[test]
    fn an_abort_rule_never_armed_says_why_and_fails_nothing() {
        let mut run = healthy();
        run.abort_rule = Some(AbortArming {
            min_requests: 100_000,
            min_secs: 1.0,
            armed_at_secs: None,
        });
        let c = abort_rule(
            &run,
            run.abort_rule.as_ref().expect("rule"),
            &Targets::default(),
        );
        assert!(c.skipped && !c.failed(), "{c:?}");
        assert!(
            c.actual.starts_with(
                "NEVER ARMED: 200 judged requests, fewer than --abort-min-requests 100000"
            ),
            "{}",
            c.actual
        );
        run.abort_rule = Some(AbortArming {
            armed_at_secs: Some(10.0),
            ..AbortArming::default()
        });
        let verdict = judge(&run, &Targets::default(), &facts());
        let c = verdict.check("abort_rule").expect("the rule's check");
        assert_eq!((c.passed, c.actual.as_str()), (true, "armed at 10.0 s"));
    }

    #[test]
    fn an_interrupted_run_fails_and_says_when() {
        let mut run = healthy();
        run.duration_secs = 7.0;
        run.interrupted = true;
        run.interruption = Some("Ctrl-C".into());
        let v = judge(&run, &Targets::default(), &facts());
        assert!(!v.passed);
        let c = v.check("run_completed").expect("check");
        assert!(c.failed());
        assert_eq!(c.actual, "INTERRUPTED at 7.0 s of 20 s (Ctrl-C)");
        assert_eq!(c.target, "runs its planned 20 s");
        run.interrupted = false;
        run.interruption = None;
        let v = judge(&run, &Targets::default(), &facts());
        assert!(v.check("run_completed").expect("check").passed);
    }

    #[test]
    fn no_judged_request_is_no_work() {
        let only_429s = run_of(10.0, vec![vec![row("GET", "/health", 20, 0, 0, 50)]]);
        let v = judge(&only_429s, &Targets::default(), &facts());
        let c = v.check("work_done").expect("check");
        assert!(c.failed(), "{c:?}");
        assert_eq!(c.actual, "0 judged HTTP requests");
        assert!(!v.passed);
        let empty = run_of(10.0, vec![]);
        assert!(
            judge(&empty, &Targets::default(), &facts())
                .check("work_done")
                .expect("check")
                .failed()
        );
        let v = judge(&healthy(), &Targets::default(), &facts());
        assert_eq!(
            v.check("work_done").expect("check").actual,
            "200 judged HTTP requests"
        );
    }

    fn with_starts(launched: u64, started: u64, refused: &[(&str, u64)]) -> MeasuredRun {
        let mut run = healthy();
        run.user_starts.insert(
            "GDPRTestUser".into(),
            ClassStarts {
                launched,
                started,
                refused: refused.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                ..ClassStarts::default()
            },
        );
        run
    }

    #[test]
    fn refused_users_fail_the_run_with_the_reason_and_what_to_do() {
        let run = with_starts(5, 0, &[("registration refused (429)", 5)]);
        let v = judge(&run, &Targets::default(), &facts());
        let c = v.check("users_started").expect("check");
        assert!(c.failed());
        assert_eq!(
            c.actual,
            "0 of 5 GDPRTestUser users started (registration refused (429) ×5)"
        );
        let advice = c.advice.as_deref().expect("advice");
        assert!(advice.contains("--forwarded-for-pool"), "{advice}");
        assert!(advice.contains("one client"), "{advice}");

        let said = with_starts(2, 1, &[("registration refused (422: bad address)", 1)]);
        let c = judge(&said, &Targets::default(), &facts())
            .check("users_started")
            .cloned()
            .expect("check");
        assert!(
            c.advice
                .as_deref()
                .is_some_and(|a| a.contains("bad address"))
        );
    }

    #[test]
    fn users_still_starting_at_the_end_did_not_start() {
        let run = with_starts(5, 0, &[]);
        let c = judge(&run, &Targets::default(), &facts())
            .check("users_started")
            .cloned()
            .expect("check");
        assert!(c.failed(), "{c:?}");
        assert_eq!(
            c.actual,
            "0 of 5 GDPRTestUser users started (still starting when the run stopped ×5)"
        );
    }

    #[test]
    fn refusals_are_advised_after_their_real_cause() {
        let advice = |reason: &str| refusal_advice(&[reason.to_string()]);
        let server = advice("registration refused (500: Injected fault)");
        assert!(
            server.contains("server errors") && !server.contains("account rules"),
            "{server}"
        );
        let missing = advice("registration refused (404: Not Found)");
        assert!(
            missing.contains("not there") && !missing.contains("account rules"),
            "{missing}"
        );
        let html = advice("registration refused (200: body is not JSON)");
        assert!(
            html.contains("not the API's JSON") && !html.contains("account rules"),
            "{html}"
        );
        let rules = advice("registration refused (422: bad address)");
        assert!(rules.contains("account rules"), "{rules}");
        assert!(advice("registration refused (429)").contains("rate limit"));
    }

    #[test]
    fn a_refused_share_may_be_allowed() {
        let run = with_starts(
            10,
            9,
            &[("login refused (401: Invalid email or password)", 1)],
        );
        let strict = judge(&run, &Targets::default(), &facts());
        assert!(strict.check("users_started").expect("check").failed());
        let loose = Targets {
            max_refused_users: 10.0,
            ..Targets::default()
        };
        let v = judge(&run, &loose, &facts());
        let c = v.check("users_started").expect("check");
        assert!(c.passed, "{c:?}");
        assert_eq!(c.actual, "9 of 10 users started");
    }
}
