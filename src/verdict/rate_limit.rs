//! Rate limits under load: ordinary users are not throttled beyond a share (judged in every
//! run where they ran), and when the run includes rate-limit traffic, 429s appear and each
//! carries `Retry-After`.

use super::{Check, RunFacts, Targets, trim_num};
use crate::measure::MeasuredRun;

/// The share of 429s among the ordinary (not rate-limit) users' requests, class by class.
pub(super) fn throttled(run: &MeasuredRun, t: &Targets, facts: &RunFacts) -> Check {
    let label = "Throttled Users";
    let target = format!(
        "at most {}% of an ordinary user class's requests answered 429",
        trim_num(t.max_throttled_share)
    );
    let mut details = Vec::new();
    let mut worst: Option<(f64, &str, u64, u64)> = None;
    for class in &facts.ordinary_user_classes {
        let Some(c) = run.rate_limit.by_user_class.get(class) else {
            continue;
        };
        if c.requests == 0 {
            continue;
        }
        let share = c.rate_limited as f64 * 100.0 / c.requests as f64;
        details.push(format!(
            "{class}: {} of {} requests rate limited ({})",
            c.rate_limited,
            c.requests,
            share_text(c.rate_limited, c.requests)
        ));
        if worst.is_none_or(|(w, ..)| share > w) {
            worst = Some((share, class, c.rate_limited, c.requests));
        }
    }
    let Some((share, class, limited, requests)) = worst else {
        return Check::skipped("throttled_users", label, target, "no ordinary user ran");
    };
    Check::judged(
        "throttled_users",
        label,
        target,
        format!("{share:.2}% for {class} ({limited} of {requests})"),
        share <= t.max_throttled_share,
    )
    .with_details(details)
    .advise(|| {
        "Ordinary users were rate limited (429): the server's per-client limits see them as \
         few clients, or the limits are too tight for this load. Give each user its own source \
         address (the default against this machine's IPv4 loopback), use --forwarded-for-pool \
         where the server trusts X-Forwarded-For, or raise the limits in a test environment; \
         --max-throttled-share allows a share."
            .to_string()
    })
}

/// With rate-limit traffic in the run: the limits engage, and every 429 says when to retry.
pub(super) fn check(run: &MeasuredRun, t: &Targets, facts: &RunFacts) -> Check {
    let _ = t;
    let target = "429s appear, each with Retry-After".to_string();
    let label = "Rate Limiting";
    let total_429: u64 = run.requests.iter().map(|r| r.rate_limited).sum();
    let evidence = &run.rate_limit;
    if !facts.rate_limit_traffic {
        let mut check = Check::skipped(
            "rate_limiting",
            label,
            target,
            "the run has no rate-limit traffic",
        );
        if total_429 > 0 {
            check.details.push(format!(
                "{total_429} rate-limited answers (429) from ordinary traffic"
            ));
        }
        return check;
    }

    let mut details = Vec::new();
    let mut problems = Vec::new();
    if total_429 == 0 {
        // Only the rate-limit preset sends enough to be sure a limit must engage; a short
        // mixed run may stay under it.
        if !facts.limits_must_engage {
            let sent: u64 = facts
                .rate_limit_user_classes
                .iter()
                .filter_map(|c| evidence.by_user_class.get(c))
                .map(|c| c.requests)
                .sum();
            return Check::skipped(
                "rate_limiting",
                label,
                target,
                format!(
                    "no 429 in {sent} rate-limit-test requests; only the rate-limit preset \
                     requires one"
                ),
            );
        }
        problems.push("no 429 at all: rate limiting never triggered".to_string());
    }
    if evidence.responses_429 == 0 {
        if total_429 > 0 {
            details.push("the 429s' headers were not recorded".to_string());
        }
    } else {
        details.push(format!(
            "Retry-After on {} of {} 429s; X-RateLimit-* on {}",
            evidence.with_retry_after, evidence.responses_429, evidence.with_ratelimit_headers
        ));
        if evidence.with_retry_after < evidence.responses_429 {
            problems.push(format!(
                "{} 429s without Retry-After",
                evidence.responses_429 - evidence.with_retry_after
            ));
        }
    }
    for class in &facts.rate_limit_user_classes {
        if let Some(c) = evidence.by_user_class.get(class) {
            details.push(format!(
                "{class} (rate-limit traffic): {} of {} requests rate limited ({})",
                c.rate_limited,
                c.requests,
                share_text(c.rate_limited, c.requests)
            ));
        }
    }
    let mut actual = format!("{total_429} 429s");
    if evidence.responses_429 > 0 {
        actual.push_str(&format!(
            ", Retry-After on {}/{}",
            evidence.with_retry_after, evidence.responses_429
        ));
    }
    let passed = problems.is_empty();
    let mut all = problems;
    all.extend(details);
    Check::judged("rate_limiting", label, target, actual, passed)
        .with_details(all)
        .advise(|| {
            "Rate limiting: verify the rate-limit configuration (and the store behind it when \
             limits are distributed); every 429 should carry Retry-After."
                .to_string()
        })
}

fn share_text(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".to_string()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{row, run_of};
    use super::*;
    use crate::measure::ClassRateLimits;

    fn facts() -> RunFacts {
        RunFacts {
            preset_name: "rate-limit".into(),
            rate_limit_traffic: true,
            limits_must_engage: true,
            ordinary_user_classes: vec!["AuthenticatedUser".into()],
            rate_limit_user_classes: vec!["RateLimitTestUser".into()],
            ..RunFacts::default()
        }
    }

    fn limited_run(limited: u64, with_retry_after: u64, ordinary_limited: u64) -> MeasuredRun {
        let mut run = run_of(
            10.0,
            vec![vec![row(
                "POST",
                "/api/auth/login/json [rate-limit-test]",
                5,
                100,
                0,
                limited,
            )]],
        );
        run.rate_limit.responses_429 = limited;
        run.rate_limit.with_retry_after = with_retry_after;
        run.rate_limit.by_user_class.insert(
            "RateLimitTestUser".into(),
            ClassRateLimits {
                requests: 100 + limited,
                rate_limited: limited,
            },
        );
        run.rate_limit.by_user_class.insert(
            "AuthenticatedUser".into(),
            ClassRateLimits {
                requests: 1000,
                rate_limited: ordinary_limited,
            },
        );
        run
    }

    #[test]
    fn a_limiting_server_passes() {
        let c = check(&limited_run(400, 400, 10), &Targets::default(), &facts());
        assert!(c.passed && !c.skipped, "{c:?}");
        assert!(c.actual.starts_with("400 429s"), "{}", c.actual);
    }

    #[test]
    fn no_429_under_rate_limit_traffic_fails() {
        let c = check(&limited_run(0, 0, 0), &Targets::default(), &facts());
        assert!(c.failed(), "{c:?}");
        assert!(c.details[0].contains("never triggered"));
    }

    #[test]
    fn no_429_in_a_mixed_run_is_not_judged() {
        let mixed = RunFacts {
            preset_name: "smoke".into(),
            limits_must_engage: false,
            ..facts()
        };
        let c = check(&limited_run(0, 0, 0), &Targets::default(), &mixed);
        assert!(c.skipped && !c.failed(), "{c:?}");
    }

    #[test]
    fn missing_retry_after_fails() {
        let c = check(&limited_run(400, 399, 0), &Targets::default(), &facts());
        assert!(c.failed());
        assert!(c.details[0].contains("1 429s without Retry-After"), "{c:?}");
    }

    #[test]
    fn ordinary_users_throttled_beyond_the_share_fail() {
        // 60 of 1000 = 6% > 5%.
        let c = throttled(&limited_run(400, 400, 60), &Targets::default(), &facts());
        assert!(c.failed());
        assert_eq!(c.actual, "6.00% for AuthenticatedUser (60 of 1000)");
        let loose = Targets {
            max_throttled_share: 10.0,
            ..Targets::default()
        };
        assert!(throttled(&limited_run(400, 400, 60), &loose, &facts()).passed);
        // Judged without rate-limit traffic too.
        let no_rate_limit_users = RunFacts {
            rate_limit_traffic: false,
            rate_limit_user_classes: Vec::new(),
            ..facts()
        };
        let c = throttled(
            &limited_run(0, 0, 60),
            &Targets::default(),
            &no_rate_limit_users,
        );
        assert!(c.failed(), "{c:?}");
        assert!(
            throttled(
                &limited_run(0, 0, 60),
                &Targets::default(),
                &RunFacts::default()
            )
            .skipped
        );
    }

    #[test]
    fn skipped_without_rate_limit_traffic() {
        let c = check(
            &limited_run(0, 0, 0),
            &Targets::default(),
            &RunFacts::default(),
        );
        assert!(c.skipped);
    }
}
