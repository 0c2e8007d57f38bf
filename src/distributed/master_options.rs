//! A Locust master's options as this tool's plan. A `spawn` carries every option of the
//! master's command line; the worker turns the ones that concern it into this tool's own
//! command line and resolves it exactly as a single run resolves its own
//! ([`Plan::resolve`]), so both read options in one place.
//!
//! From Locust's own options: `--host`, `-u`, `-r`, `-t`, `--tags` and `--exclude-tags`.
//! From the options `scripts/locust_master.py` adds: `--scenario` (a preset) and
//! `--lva-args` (any other run option of this tool, targets included, as one string).

use crate::cli::Cli;
use crate::plan::{ConfigError, Plan};
use crate::user_classes::UserClass;
use clap::Parser;
use rmpv::Value;
use std::collections::BTreeMap;

/// The custom options of `scripts/locust_master.py`, as they arrive (argparse's names).
pub const SCENARIO: &str = "scenario";
pub const LVA_ARGS: &str = "lva_args";

/// Options a Locust master sets with its own flags: refused inside `--lva-args`.
const LOCUST_OWNS: &[(&str, &str)] = &[
    ("--host", "--host"),
    ("--users", "-u/--users"),
    ("-u", "-u/--users"),
    ("--spawn-rate", "-r/--spawn-rate"),
    ("-r", "-r/--spawn-rate"),
    ("--duration", "-t/--run-time"),
    ("-d", "-t/--run-time"),
    ("--tags", "-T/--tags"),
    ("-t", "-T/--tags"),
    ("--exclude-tags", "-E/--exclude-tags"),
    ("--scenario", "--scenario"),
    ("-s", "--scenario"),
    ("--max-users", "-u/--users (an open model's pool)"),
];

/// The options that make a run an open-model one.
const OPEN_MODEL: &[&str] = &["--rate", "--rate-stages"];

fn text(options: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    options.get(key)?.as_str().map(str::to_string)
}

/// A list option (`--tags a b`), or a comma-separated one.
fn list(options: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    let items: Vec<String> = match options.get(key)? {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => vec![s.as_str()?.to_string()],
        _ => return None,
    };
    (!items.is_empty()).then(|| items.join(","))
}

fn number(options: &BTreeMap<String, Value>, key: &str) -> Option<f64> {
    let value = options.get(key)?;
    value.as_f64().or_else(|| value.as_i64().map(|n| n as f64))
}

/// The tool's command line for a master's options and host.
pub fn command_line(
    options: &BTreeMap<String, Value>,
    host: Option<&str>,
) -> Result<Vec<String>, ConfigError> {
    let mut words = vec!["lva-loadtest".to_string()];
    let mut open = false;
    if let Some(extra) = text(options, LVA_ARGS) {
        let extra = shlex::split(&extra).ok_or_else(|| {
            ConfigError(format!(
                "the master's --lva-args '{extra}' is not a valid command line (unbalanced quotes?)"
            ))
        })?;
        let flag_of = |word: &String| word.split('=').next().unwrap_or(word).to_string();
        open = extra
            .iter()
            .any(|w| OPEN_MODEL.contains(&flag_of(w).as_str()));
        for word in &extra {
            let flag = flag_of(word);
            let flag = flag.as_str();
            // An open model's arrivals last its own --duration; the master's -t bounds the
            // whole run (the pool's start included).
            if open && (flag == "--duration" || flag == "-d") {
                continue;
            }
            if let Some((_, theirs)) = LOCUST_OWNS.iter().find(|(ours, _)| *ours == flag) {
                return Err(ConfigError(format!(
                    "the master's --lva-args sets {flag}, which the master's own {theirs} sets: \
                     give it to locust instead"
                )));
            }
        }
        words.extend(extra);
    }
    let host = host.filter(|h| !h.is_empty()).ok_or_else(|| {
        ConfigError::new("the master names no host: start locust with --host URL")
    })?;
    words.extend(["--host".to_string(), host.to_string()]);
    let preset_name = text(options, SCENARIO).unwrap_or_else(|| "custom".to_string());
    let custom = preset_name == crate::presets::CUSTOM;
    words.extend(["--scenario".to_string(), preset_name]);
    let users = number(options, "num_users").filter(|n| *n >= 1.0);
    // In an open model, the master's users are the pool the arrivals are handed to.
    let users_flag = if open { "--max-users" } else { "--users" };
    if let Some(users) = users.or((custom && !open).then_some(1.0)) {
        words.extend([users_flag.to_string(), (users as u64).to_string()]);
    }
    if let Some(rate) = number(options, "spawn_rate").filter(|r| *r > 0.0) {
        words.extend(["--spawn-rate".to_string(), rate.to_string()]);
    }
    // Without -t the master runs until it is stopped; the plan's duration is then only
    // what the reports say was planned.
    match number(options, "run_time").filter(|t| *t >= 1.0) {
        _ if open => {}
        Some(seconds) => words.extend(["--duration".to_string(), format!("{}s", seconds as u64)]),
        None if custom => words.extend(["--duration".to_string(), "24h".to_string()]),
        None => {}
    }
    if let Some(tags) = list(options, "tags") {
        words.extend(["--tags".to_string(), tags]);
    }
    if let Some(tags) = list(options, "exclude_tags") {
        words.extend(["--exclude-tags".to_string(), tags]);
    }
    Ok(words)
}

/// Under a Locust master, an open-model run's arrivals are split over the workers the
/// master expects (its `--expect-workers`): worker `index` (as the master numbers it) takes
/// its share. A worker beyond them is refused, since the rate would be exceeded.
pub fn share_arrivals(
    mut plan: Plan,
    options: &BTreeMap<String, Value>,
    index: u64,
) -> Result<Plan, ConfigError> {
    let Some(open) = &plan.open else {
        return Ok(plan);
    };
    let expected = number(options, "expect_workers").map_or(1, |n| n.max(1.0) as u64);
    if index >= expected {
        return Err(ConfigError(format!(
            "this is worker {} but the master expects {expected}: an open model's rate is split \
             over the master's --expect-workers, so start locust with --expect-workers {}",
            index + 1,
            index + 1
        )));
    }
    plan.open = Some(open.share(index as usize, expected as usize));
    Ok(plan)
}

/// The plan a worker runs under a Locust master.
pub fn resolve(
    options: &BTreeMap<String, Value>,
    host: Option<&str>,
    classes: Vec<UserClass>,
) -> Result<Plan, ConfigError> {
    let words = command_line(options, host)?;
    let cli = Cli::try_parse_from(&words).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        ConfigError(format!(
            "the master's options do not make a run of this tool: {first} (from: {})",
            words[1..].join(" ")
        ))
    })?;
    Plan::resolve(&cli.run, classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_classes::builtin_classes;

    fn options(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn locust_options_become_the_tools_plan() {
        let given = options(&[
            ("num_users", 6.into()),
            ("spawn_rate", 2.5.into()),
            ("run_time", 30.into()),
            ("tags", Value::Array(vec!["health".into(), "stats".into()])),
            ("exclude_tags", Value::Nil),
            (SCENARIO, "custom".into()),
            (
                LVA_ARGS,
                "--keep-accounts --target 'p95<800ms for GET /health'".into(),
            ),
            ("web_port", 8089.into()),
        ]);
        let plan = resolve(&given, Some("http://127.0.0.1:9"), builtin_classes()).expect("plan");
        assert_eq!((plan.users, plan.spawn_rate), (6, 2.5));
        assert_eq!(plan.duration.as_secs(), 30);
        assert_eq!(plan.filter.include, ["health", "stats"]);
        assert!(plan.flow_options.keep_accounts);
        assert_eq!(plan.targets.rules.len(), 1);
        assert_eq!(
            plan.host.as_ref().map(|h| h.as_str()),
            Some("http://127.0.0.1:9/")
        );

        // A preset brings its own tags and checks.
        let plan = resolve(
            &options(&[(SCENARIO, "gdpr-only".into())]),
            Some("http://127.0.0.1:9"),
            builtin_classes(),
        )
        .expect("preset");
        assert_eq!(plan.selection.class_names(), ["GDPRTestUser"]);
    }

    #[test]
    fn an_open_model_under_a_locust_master_is_split_over_its_workers() {
        let given = options(&[
            ("num_users", 8.into()),
            ("spawn_rate", 8.into()),
            ("run_time", 60.into()),
            ("expect_workers", 2.into()),
            (SCENARIO, "custom".into()),
            ("tags", Value::Array(vec!["health".into()])),
            (LVA_ARGS, "--rate 20 --duration 10s".into()),
        ]);
        let host = Some("http://127.0.0.1:9");
        let plan = resolve(&given, host, builtin_classes()).expect("plan");
        // The master's -u is the pool; the arrivals last their own --duration.
        let open = plan.open.clone().expect("open model");
        assert_eq!((open.max_users, plan.duration.as_secs()), (8, 10));
        let second = share_arrivals(plan.clone(), &given, 1).expect("share");
        let part = second.open.expect("open model");
        assert_eq!((part.schedule.peak(), part.max_users), (10.0, 4));
        assert_eq!(part.share.map(|s| (s.index, s.of)), Some((1, 2)));
        let refused = share_arrivals(plan, &given, 2).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("--expect-workers 3")));
        let mut pool_set = given.clone();
        pool_set.insert(
            LVA_ARGS.into(),
            "--rate 20 --duration 10s --max-users 3".into(),
        );
        let err = resolve(&pool_set, host, builtin_classes())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("-u/--users")));
    }

    #[test]
    fn what_cannot_make_a_run_is_named() {
        let host = Some("http://127.0.0.1:9");
        let err = |given: &[(&str, Value)], host: Option<&str>| {
            resolve(&options(given), host, builtin_classes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&[], None).contains("--host URL"));
        assert!(err(&[(LVA_ARGS, "--users 5".into())], host).contains("-u/--users"));
        assert!(err(&[(LVA_ARGS, "--nope".into())], host).contains("--nope"));
        assert!(err(&[(LVA_ARGS, "'open".into())], host).contains("unbalanced"));
        assert!(err(&[(SCENARIO, "huge".into())], host).contains("unknown scenario 'huge'"));
        assert!(
            err(&[("tags", Value::Array(vec!["nope".into()]))], host)
                .contains("unknown tag 'nope'")
        );
    }
}
