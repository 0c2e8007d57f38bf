//! Whether the run did the work it was asked to do, before any figure is trusted: it ran to
//! its planned end (`run_completed`), it measured judged requests (`work_done`), and the
//! users of every class could start (`users_started`).

use super::{Check, Rates, RunFacts, Targets, trim_num};
use crate::measure::{MeasuredRun, RequestKind};

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
    let said: Vec<&String> = reasons
        .iter()
        .filter(|r| r.contains("refused (") && !r.contains("(429"))
        .collect();
    if !said.is_empty() {
        parts.push(format!(
            "The server refused them and said why: {}. Check the account rules (address \
             domain, password policy) and that registration is open on this deployment.",
            said.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
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
    if reasons.iter().any(|r| r.contains("no answer")) {
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
