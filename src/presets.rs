//! The scenario presets of the old runner's table, and what makes each one special.

use crate::duration::HumanDuration;
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
    /// The checks this preset's verdict adds to those every run gets.
    pub checks: PresetChecks,
    pub purpose: &'static str,
}

/// Checks that only some presets' runs can answer, so only those presets ask for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresetChecks {
    /// The run is a sudden surge: judge how the system recovered after it.
    pub recovery: bool,
    /// The run is long enough to show a trend: judge whether latency rises over time.
    pub degradation: bool,
    /// The run sends enough rate-limit traffic that the limits must engage: a run without
    /// a single 429 fails the rate-limiting check.
    pub limits_must_engage: bool,
}

/// What most presets ask for: the checks every run gets, nothing more.
const EVERY_RUN: PresetChecks = PresetChecks {
    recovery: false,
    degradation: false,
    limits_must_engage: false,
};

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
        checks: EVERY_RUN,
        purpose: "validate basic functionality before heavier tests",
    },
    Preset {
        name: "load",
        users: 100,
        spawn_rate: 10.0,
        duration: mins(10),
        tags: &[],
        probes: false,
        checks: EVERY_RUN,
        purpose: "expected daily load",
    },
    Preset {
        name: "stress",
        users: 1000,
        spawn_rate: 50.0,
        duration: mins(15),
        tags: &[],
        probes: false,
        checks: EVERY_RUN,
        purpose: "peak capacity",
    },
    Preset {
        name: "spike",
        users: 500,
        spawn_rate: 500.0,
        duration: mins(5),
        tags: &[],
        probes: false,
        checks: PresetChecks {
            recovery: true,
            ..EVERY_RUN
        },
        purpose: "sudden surge, then recovery",
    },
    Preset {
        name: "endurance",
        users: 200,
        spawn_rate: 10.0,
        duration: mins(30),
        tags: &[],
        probes: false,
        checks: PresetChecks {
            degradation: true,
            ..EVERY_RUN
        },
        purpose: "memory leaks and degradation over time",
    },
    Preset {
        name: "auth-only",
        users: 50,
        spawn_rate: 10.0,
        duration: mins(5),
        tags: &["authenticated"],
        probes: true,
        checks: EVERY_RUN,
        purpose: "authenticated endpoints under load",
    },
    Preset {
        name: "gdpr-only",
        users: 20,
        spawn_rate: 5.0,
        duration: mins(5),
        tags: &["gdpr"],
        probes: false,
        checks: EVERY_RUN,
        purpose: "GDPR endpoints under concurrent requests",
    },
    Preset {
        name: "rate-limit",
        users: 100,
        spawn_rate: 100.0,
        duration: mins(2),
        tags: &["rate-limit"],
        probes: false,
        checks: PresetChecks {
            limits_must_engage: true,
            ..EVERY_RUN
        },
        purpose: "rate limiting activates and protects the system",
    },
];

/// The name of the scenario that takes everything from the flags.
pub const CUSTOM: &str = "custom";

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Every scenario name the tool accepts, presets first.
pub fn preset_names() -> Vec<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_preset_and_custom() {
        let table = table();
        for name in preset_names() {
            assert!(table.contains(name), "{name} missing");
        }
        assert_eq!(find("spike").map(|p| p.users), Some(500));
        assert_eq!(
            find("rate-limit").map(|p| p.tags),
            Some(&["rate-limit"][..])
        );
        assert!(find("nope").is_none());
    }
}
