//! What this machine and the run's plan can hold, checked before any traffic: the users'
//! memory and source addresses, a duration a run can finish, and a spawn rate the duration
//! does not cut short.

use super::ConfigError;
use crate::duration::HumanDuration;
use crate::transport::LOOPBACK_SOURCES;
use std::time::Duration;

/// The longest run the tool plans: a week. A longer soak is several runs.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one simulated user costs the generator, with room to spare: about 70 KiB were
/// measured per user of the full mix at 1000 users (docs/PERFORMANCE.md).
const BYTES_PER_USER: u64 = 96 * 1024;
/// What the generator costs before its first user.
const BASE_BYTES: u64 = 32 * 1024 * 1024;

/// The machine's available memory, from `/proc/meminfo` (`None` where it cannot be read).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> String {
    let gib = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    if gib >= 1024.0 {
        format!("{:.1} TiB", gib / 1024.0)
    } else {
        format!("{gib:.1} GiB")
    }
}

/// Users beyond what this machine holds: their estimated memory against the memory
/// available, and one loopback source address each when they have their own.
pub fn check_users(
    users: usize,
    loopback_sources: bool,
    available: Option<u64>,
) -> Result<(), ConfigError> {
    let users = users as u64;
    let needed = users
        .saturating_mul(BYTES_PER_USER)
        .saturating_add(BASE_BYTES);
    if let Some(available) = available.or_else(available_memory)
        && needed > available
    {
        return Err(ConfigError(format!(
            "--users {users} needs about {} of memory (about {} KiB a user), and this machine \
             has {} available: use fewer users, or spread them over a distributed run \
             (docs/DISTRIBUTED.md)",
            gib(needed),
            BYTES_PER_USER / 1024,
            gib(available)
        )));
    }
    if loopback_sources && users > LOOPBACK_SOURCES {
        return Err(ConfigError(format!(
            "--users {users} is more than the {LOOPBACK_SOURCES} loopback source addresses users \
             get one each of: use fewer users, or --no-loopback-sources"
        )));
    }
    Ok(())
}

/// A duration a run can finish: at most [`MAX_DURATION`].
pub fn check_duration(duration: Duration) -> Result<(), ConfigError> {
    if duration > MAX_DURATION {
        return Err(ConfigError(format!(
            "--duration {} is longer than the {} a run may last: split a longer soak into runs",
            HumanDuration(duration),
            HumanDuration(MAX_DURATION)
        )));
    }
    Ok(())
}

/// The spawn rate the run really has, and a note when it is not the asked one. The users all
/// start within the duration (the test plan ramps, then holds at least a second): when the
/// asked rate is too slow for that, the run starts them faster, and says so.
pub fn effective_spawn_rate(
    users: usize,
    spawn_rate: f64,
    duration: Duration,
) -> (f64, Option<String>) {
    let ramp = users as f64 / spawn_rate;
    let room = (duration.as_secs().max(1) - 1).max(1) as f64;
    if ramp <= room {
        return (spawn_rate, None);
    }
    let effective = users as f64 / room;
    let warning = format!(
        "--spawn-rate {spawn_rate}/s would take {} to start {users} users, longer than the \
         {} run: they start at {effective:.2}/s instead, within {}. Lower --users or raise \
         --duration to keep the asked rate.",
        HumanDuration(Duration::from_secs_f64(
            ramp.min(MAX_DURATION.as_secs_f64())
        )),
        HumanDuration(duration),
        HumanDuration(Duration::from_secs_f64(room)),
    );
    (effective, Some(warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_user_counts_are_refused_with_the_limit() {
        let gib16 = Some(16 * 1024 * 1024 * 1024);
        let err = check_users(99_999_999_999, false, gib16).expect_err("too many");
        let text = err.to_string();
        assert!(text.contains("--users 99999999999"), "{text}");
        assert!(text.contains("TiB"), "{text}");
        assert!(text.contains("16.0 GiB available"), "{text}");
        assert!(check_users(1000, true, gib16).is_ok());
        let err = check_users(20_000_000, true, Some(u64::MAX)).expect_err("addresses");
        assert!(err.to_string().contains("--no-loopback-sources"), "{err}");
    }

    #[test]
    fn durations_are_capped_at_a_week() {
        assert!(check_duration(Duration::from_secs(3600)).is_ok());
        let err = check_duration(Duration::from_secs(99_999_999_999 * 3600)).expect_err("long");
        assert!(err.to_string().contains("longer than the 168h"), "{err}");
    }

    #[test]
    fn a_rate_the_duration_cuts_short_is_raised_and_said() {
        assert_eq!(
            effective_spawn_rate(10, 2.0, Duration::from_secs(20)).0,
            2.0
        );
        let (rate, warning) = effective_spawn_rate(10, 0.001, Duration::from_secs(5));
        assert_eq!(rate, 2.5);
        let warning = warning.expect("warning");
        assert!(warning.contains("2.50/s"), "{warning}");
        assert!(warning.contains("0.001/s"), "{warning}");
    }
}
