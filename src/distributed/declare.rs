//! `lva-loadtest locust-classes`: the user classes as a Locust master declares them, read
//! by `scripts/locust_master.py` so that its classes are always this build's (its own
//! classes included, for a program built on the library). JSON on stdout: the version, the
//! fingerprint's digest (the master refuses workers of another), and each class with its
//! weight, wait and tasks (with their tags), marked `selected` when the scenario's and the
//! given tag filter leave it a task to run.

use super::fingerprint::Fingerprint;
use super::wire::PROTOCOL_VERSION;
use crate::cli::LocustClassesArgs as DeclareArgs;
use crate::plan::{ConfigError, tag_filter};
use crate::presets;
use crate::user_classes::{Selection, UserClass};
use serde_json::{Value, json};

/// The classes as JSON, or what is wrong with the options.
pub fn declare(args: &DeclareArgs, classes: &[UserClass]) -> Result<Value, ConfigError> {
    let preset = presets::find(&args.preset_name);
    if preset.is_none() && args.preset_name != presets::CUSTOM {
        return Err(ConfigError(format!(
            "unknown scenario '{}': valid scenarios are {}",
            args.preset_name,
            presets::preset_names().join(", ")
        )));
    }
    let filter = tag_filter(preset, args.tags.as_deref(), args.exclude_tags.as_deref());
    filter.check_known(classes).map_err(ConfigError)?;
    let selected = Selection::new(classes.to_vec(), &filter).class_names();
    let fingerprint = Fingerprint::of_this_build(classes);
    Ok(json!({
        "tool_version": fingerprint.tool_version,
        "protocol_version": PROTOCOL_VERSION,
        "digest": fingerprint.digest(),
        "tags": filter.include,
        "exclude_tags": filter.exclude,
        "classes": classes.iter().map(|c| json!({
            "name": c.name,
            "weight": c.weight,
            "wait_seconds": [c.wait.0.as_secs_f64(), c.wait.1.as_secs_f64()],
            "selected": selected.contains(&c.name),
            "tasks": c.tasks.iter().map(|t| json!({
                "name": t.name,
                "weight": t.weight,
                "tags": t.tags,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_classes::builtin_classes;

    fn args(preset_name: &str, tags: Option<&str>) -> DeclareArgs {
        DeclareArgs {
            preset_name: preset_name.into(),
            tags: tags.map(str::to_string),
            exclude_tags: None,
        }
    }

    #[test]
    fn classes_carry_weights_and_the_selection() {
        let all = declare(&args("custom", None), &builtin_classes()).expect("json");
        let names: Vec<(&str, u64, bool)> = all["classes"]
            .as_array()
            .expect("classes")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or(""),
                    c["weight"].as_u64().unwrap_or(0),
                    c["selected"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("AuthenticatedUser", 10, true),
                ("GDPRTestUser", 1, true),
                ("RateLimitTestUser", 1, true),
                ("WebSocketUser", 2, true)
            ]
        );
        let gdpr = declare(&args("gdpr-only", None), &builtin_classes()).expect("json");
        let selected: Vec<&str> = gdpr["classes"]
            .as_array()
            .expect("classes")
            .iter()
            .filter(|c| c["selected"] == true)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(selected, ["GDPRTestUser"]);
        assert!(declare(&args("nope", None), &builtin_classes()).is_err());
        assert!(declare(&args("custom", Some("nope")), &builtin_classes()).is_err());
    }
}
