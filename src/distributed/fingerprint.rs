//! What a build would run, as a value two processes can compare: the tool's version and
//! every user class with its weight, wait, hooks and tasks. A master refuses a worker whose
//! fingerprint differs from its own (another version, or other classes), naming what
//! differs.

use crate::user_classes::{Hook, UserClass};
use serde::{Deserialize, Serialize};

/// Environment variable that alters this process's fingerprint (its reported tool version),
/// so the tests can provoke a mismatch without a second build.
pub const FINGERPRINT_SALT_ENV: &str = "LVA_LOADTEST_FINGERPRINT_SALT";

/// What a build would run: the tool's version and the whole task table. Two processes with
/// equal fingerprints spawn the same users doing the same tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub tool_version: String,
    pub classes: Vec<ClassPrint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassPrint {
    pub name: String,
    pub weight: usize,
    /// Wait between tasks, in milliseconds.
    pub wait_ms: (u64, u64),
    pub on_start: Option<HookPrint>,
    pub on_stop: Option<HookPrint>,
    pub tasks: Vec<TaskPrint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookPrint {
    pub name: String,
    pub requests: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPrint {
    pub name: String,
    pub weight: usize,
    pub tags: Vec<String>,
    pub requests: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn hook_print(hook: &Option<Hook>) -> Option<HookPrint> {
    hook.as_ref().map(|h| HookPrint {
        name: h.name.to_string(),
        requests: strings(h.requests),
    })
}

impl Fingerprint {
    pub fn of(tool_version: &str, classes: &[UserClass]) -> Fingerprint {
        Fingerprint {
            tool_version: tool_version.to_string(),
            classes: classes
                .iter()
                .map(|c| ClassPrint {
                    name: c.name.to_string(),
                    weight: c.weight,
                    wait_ms: (c.wait.0.as_millis() as u64, c.wait.1.as_millis() as u64),
                    on_start: hook_print(&c.on_start),
                    on_stop: hook_print(&c.on_stop),
                    tasks: c
                        .tasks
                        .iter()
                        .map(|t| TaskPrint {
                            name: t.name.to_string(),
                            weight: t.weight,
                            tags: strings(t.tags),
                            requests: strings(t.requests),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// This process: its version (with the test salt, if set) and the classes it runs
    /// (the built-in ones, or a program's own).
    pub fn of_this_build(classes: &[UserClass]) -> Fingerprint {
        let mut version = env!("CARGO_PKG_VERSION").to_string();
        if let Ok(salt) = std::env::var(FINGERPRINT_SALT_ENV)
            && !salt.is_empty()
        {
            version = format!("{version}+{salt}");
        }
        Fingerprint::of(&version, classes)
    }

    /// A short stable digest for logs: FNV-1a over the canonical JSON.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// What differs between the master's fingerprint (`self`) and a worker's, for people;
    /// empty when they are the same.
    pub fn differences(&self, worker: &Fingerprint) -> Vec<String> {
        self.differences_named(worker, ("master", "worker"))
    }

    /// [`Fingerprint::differences`], with the two sides named.
    pub fn differences_named(&self, worker: &Fingerprint, names: (&str, &str)) -> Vec<String> {
        let (us, them) = names;
        let mut out = Vec::new();
        if self.tool_version != worker.tool_version {
            out.push(format!(
                "tool version: {us} {}, {them} {}",
                self.tool_version, worker.tool_version
            ));
        }
        for ours in &self.classes {
            match worker.classes.iter().find(|c| c.name == ours.name) {
                None => out.push(format!("user class {}: only on the {us}", ours.name)),
                Some(theirs) => class_differences(ours, theirs, names, &mut out),
            }
        }
        for theirs in &worker.classes {
            if !self.classes.iter().any(|c| c.name == theirs.name) {
                out.push(format!("user class {}: only on the {them}", theirs.name));
            }
        }
        out
    }
}

fn class_differences(
    ours: &ClassPrint,
    theirs: &ClassPrint,
    (us, them): (&str, &str),
    out: &mut Vec<String>,
) {
    let class = &ours.name;
    let differ = |out: &mut Vec<String>, what: String, a: String, b: String| {
        if a != b {
            out.push(format!("{what}: {us} {a}, {them} {b}"));
        }
    };
    differ(
        out,
        format!("user class {class} weight"),
        ours.weight.to_string(),
        theirs.weight.to_string(),
    );
    differ(
        out,
        format!("user class {class} wait"),
        format!("{:?} ms", ours.wait_ms),
        format!("{:?} ms", theirs.wait_ms),
    );
    differ(
        out,
        format!("user class {class} on_start"),
        format!("{:?}", ours.on_start),
        format!("{:?}", theirs.on_start),
    );
    differ(
        out,
        format!("user class {class} on_stop"),
        format!("{:?}", ours.on_stop),
        format!("{:?}", theirs.on_stop),
    );
    for task in &ours.tasks {
        let Some(other) = theirs.tasks.iter().find(|t| t.name == task.name) else {
            out.push(format!("task {class}.{}: only on the {us}", task.name));
            continue;
        };
        let what = |field: &str| format!("task {class}.{} {field}", task.name);
        differ(
            out,
            what("weight"),
            task.weight.to_string(),
            other.weight.to_string(),
        );
        differ(out, what("tags"), task.tags.join(","), other.tags.join(","));
        differ(
            out,
            what("requests"),
            task.requests.join(", "),
            other.requests.join(", "),
        );
    }
    for task in &theirs.tasks {
        if !ours.tasks.iter().any(|t| t.name == task.name) {
            out.push(format!("task {class}.{}: only on the {them}", task.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_classes::builtin_classes;

    #[test]
    fn fingerprints_name_what_differs() {
        let ours = Fingerprint::of("0.1.0", &builtin_classes());
        assert!(ours.differences(&ours.clone()).is_empty());
        assert_eq!(ours.digest(), ours.clone().digest());

        let mut classes = builtin_classes();
        classes[0].tasks[0].weight += 1;
        classes[1].wait.1 += std::time::Duration::from_millis(500);
        classes.pop();
        let theirs = Fingerprint::of("0.2.0", &classes);
        assert_ne!(ours.digest(), theirs.digest());
        let diff = ours.differences(&theirs).join("\n");
        assert!(
            diff.contains("tool version: master 0.1.0, worker 0.2.0"),
            "{diff}"
        );
        assert!(
            diff.contains("task AuthenticatedUser.health_check weight: master 10, worker 11"),
            "{diff}"
        );
        assert!(diff.contains("user class GDPRTestUser wait"), "{diff}");
        assert!(
            diff.contains("user class WebSocketUser: only on the master"),
            "{diff}"
        );
    }
}
