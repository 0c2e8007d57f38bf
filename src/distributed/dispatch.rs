//! How the tool's manager spreads a run's users over its workers and ramps them up, as a
//! Locust master does: the users are numbered, user `k` is of the class a smooth weighted
//! round robin gives it (so every prefix of the users is split by weight as evenly as can
//! be) and runs on worker `k mod workers`. The first `n` users are what runs when `n` have
//! started, so every step of the ramp only adds users, and the workers' numbers add up to
//! exactly `n`, each class's to its share.

use std::collections::BTreeMap;

/// Per worker (by position), per class: the users to run.
pub type Counts = Vec<BTreeMap<String, u64>>;

/// The class of each of the first `users` users.
fn classes_in_order(classes: &[(&str, usize)], users: usize) -> Vec<usize> {
    let total: i64 = classes.iter().map(|(_, w)| *w as i64).sum();
    let mut current = vec![0i64; classes.len()];
    let mut order = Vec::with_capacity(users);
    if total == 0 {
        return order;
    }
    for _ in 0..users {
        for (c, (_, weight)) in current.iter_mut().zip(classes) {
            *c += *weight as i64;
        }
        // The class furthest ahead of its share goes next (the first one on a tie).
        let mut best = 0;
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

/// What each of `workers` workers runs once `started` of the run's users have started.
/// Every class appears for every worker (0 included), as Locust's spawn messages name them.
pub fn counts(classes: &[(&str, usize)], workers: usize, started: usize) -> Counts {
    let mut counts: Counts = (0..workers)
        .map(|_| {
            classes
                .iter()
                .map(|(name, _)| (name.to_string(), 0))
                .collect()
        })
        .collect();
    if workers == 0 {
        return counts;
    }
    for (k, class) in classes_in_order(classes, started).into_iter().enumerate() {
        if let Some(n) = counts[k % workers].get_mut(classes[class].0) {
            *n += 1;
        }
    }
    counts
}

/// How many users have started `seconds` into the ramp: the spawn rate's worth each
/// second, the first second's at once.
pub fn started_after(users: usize, spawn_rate: f64, seconds: u64) -> usize {
    let n = (spawn_rate * (seconds + 1) as f64).ceil() as usize;
    n.clamp(1, users.max(1)).min(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: [(&str, usize); 4] = [
        ("AuthenticatedUser", 10),
        ("GDPRTestUser", 1),
        ("RateLimitTestUser", 1),
        ("WebSocketUser", 2),
    ];

    fn class_total(counts: &Counts, class: &str) -> u64 {
        counts.iter().map(|w| w[class]).sum()
    }

    #[test]
    fn users_split_by_weight_and_evenly_over_workers() {
        let c = counts(&BUILTIN, 3, 14);
        assert_eq!(class_total(&c, "AuthenticatedUser"), 10);
        assert_eq!(class_total(&c, "GDPRTestUser"), 1);
        assert_eq!(class_total(&c, "RateLimitTestUser"), 1);
        assert_eq!(class_total(&c, "WebSocketUser"), 2);
        let per_worker: Vec<u64> = c.iter().map(|w| w.values().sum()).collect();
        assert_eq!(per_worker, [5, 5, 4]);
        // Every class is named for every worker.
        assert!(c.iter().all(|w| w.len() == 4));
        // 28 users: exactly twice as many of each.
        let c = counts(&BUILTIN, 3, 28);
        assert_eq!(class_total(&c, "WebSocketUser"), 4);
        assert_eq!(class_total(&c, "AuthenticatedUser"), 20);
    }

    #[test]
    fn each_step_of_the_ramp_only_adds_users() {
        let mut before = counts(&BUILTIN, 3, 0);
        for started in 1..=40 {
            let now = counts(&BUILTIN, 3, started);
            let total: u64 = now.iter().flat_map(|w| w.values()).sum();
            assert_eq!(total, started as u64);
            for (b, n) in before.iter().zip(&now) {
                for (class, count) in n {
                    assert!(*count >= b[class], "{class} went down at {started}");
                }
            }
            before = now;
        }
    }

    #[test]
    fn the_ramp_follows_the_spawn_rate() {
        let steps: Vec<usize> = (0..5).map(|s| started_after(10, 3.0, s)).collect();
        assert_eq!(steps, [3, 6, 9, 10, 10]);
        assert_eq!(started_after(10, 0.5, 0), 1);
        assert_eq!(started_after(10, 0.5, 3), 2);
        assert_eq!(started_after(10, 100.0, 0), 10);
    }
}
