//! The scenario presets of the old runner's table, and durations as people write them.

use std::fmt;
use std::time::Duration;

/// One row of the presets table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub users: usize,
    /// Users started per second.
    pub spawn_rate: f64,
    pub duration: Duration,
    /// Tags the run is narrowed to; empty means every task.
    pub tags: &'static [&'static str],
    /// Security probes run by default (see `--probes`).
    pub probes: bool,
    pub purpose: &'static str,
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// The runner's presets, in the order the guide lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "smoke",
        users: 10,
        spawn_rate: 2.0,
        duration: mins(1),
        tags: &[],
        probes: true,
        purpose: "validate basic functionality before heavier tests",
    },
    Preset {
        name: "load",
        users: 100,
        spawn_rate: 10.0,
        duration: mins(10),
        tags: &[],
        probes: false,
        purpose: "expected daily load",
    },
    Preset {
        name: "stress",
        users: 1000,
        spawn_rate: 50.0,
        duration: mins(15),
        tags: &[],
        probes: false,
        purpose: "peak capacity",
    },
    Preset {
        name: "spike",
        users: 500,
        spawn_rate: 500.0,
        duration: mins(5),
        tags: &[],
        probes: false,
        purpose: "sudden surge, then recovery",
    },
    Preset {
        name: "endurance",
        users: 200,
        spawn_rate: 10.0,
        duration: mins(30),
        tags: &[],
        probes: false,
        purpose: "memory leaks and degradation over time",
    },
    Preset {
        name: "auth-only",
        users: 50,
        spawn_rate: 10.0,
        duration: mins(5),
        tags: &["authenticated"],
        probes: true,
        purpose: "authenticated endpoints under load",
    },
    Preset {
        name: "gdpr-only",
        users: 20,
        spawn_rate: 5.0,
        duration: mins(5),
        tags: &["gdpr"],
        probes: false,
        purpose: "GDPR endpoints under concurrent requests",
    },
    Preset {
        name: "rate-limit",
        users: 100,
        spawn_rate: 100.0,
        duration: mins(2),
        tags: &["rate-limit"],
        probes: false,
        purpose: "rate limiting activates and protects the system",
    },
];

/// The name of the scenario that takes everything from the flags.
pub const CUSTOM: &str = "custom";

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Every scenario name the tool accepts, presets first.
pub fn scenario_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).chain([CUSTOM]).collect()
}

/// The presets table as `--list-scenarios` prints it.
pub fn table() -> String {
    let mut out = format!(
        "{:<11} {:>6} {:>11} {:>9}  {:<14} {}\n",
        "scenario", "users", "spawn rate", "duration", "tags", "purpose"
    );
    for p in PRESETS {
        let tags = if p.tags.is_empty() {
            "all".to_string()
        } else {
            p.tags.join(",")
        };
        out.push_str(&format!(
            "{:<11} {:>6} {:>9}/s {:>9}  {:<14} {}\n",
            p.name,
            p.users,
            p.spawn_rate,
            HumanDuration(p.duration).to_string(),
            tags,
            p.purpose
        ));
    }
    out.push_str(&format!(
        "{:<11} {:>6} {:>11} {:>9}  {:<14} {}\n",
        CUSTOM, "--users", "--spawn-rate", "--duration", "--tags", "everything from the flags"
    ));
    out
}

/// A duration as the presets table and messages show it: `90s` as `1m30s`.
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        let mut wrote = false;
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
                wrote = true;
            }
        }
        if !wrote {
            write!(f, "{}ms", self.0.as_millis())?;
        }
        Ok(())
    }
}

/// Parses `30s`, `5m`, `1h`, `1m30s`, `1h2m3s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let bad = || {
        format!(
            "invalid duration '{text}': use seconds, minutes and hours such as 30s, 5m, 1h or 1m30s"
        )
    };
    if trimmed.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    let mut last_unit_rank = 0;
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (factor, rank) = match c.to_ascii_lowercase() {
            'h' => (3600, 1),
            'm' => (60, 2),
            's' => (1, 3),
            _ => return Err(bad()),
        };
        // Units must come in order (h, m, s) and each once, with a number before it.
        if digits.is_empty() || rank <= last_unit_rank {
            return Err(bad());
        }
        let value: u64 = digits.parse().map_err(|_| bad())?;
        total = value
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        last_unit_rank = rank;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2M"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn bad_durations_are_refused_with_the_value() {
        for bad in [
            "", "abc", "5x", "m", "30s5m", "1m1m", "10 s x", "-5s", "5m3",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn table_lists_every_preset_and_custom() {
        let table = table();
        for name in scenario_names() {
            assert!(table.contains(name), "{name} missing");
        }
        assert_eq!(find("spike").map(|p| p.users), Some(500));
        assert_eq!(
            find("rate-limit").map(|p| p.tags),
            Some(&["rate-limit"][..])
        );
        assert!(find("nope").is_none());
    }

    #[test]
    fn human_durations() {
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(HumanDuration(Duration::from_secs(1800)).to_string(), "30m");
    }
}
