//! The messages between the manager and its workers: JSON text frames over one WebSocket
//! per worker, each an object whose `type` names the message. Versioned by
//! [`PROTOCOL_VERSION`]: a worker says its version in `hello`, and the manager refuses one
//! that speaks another. Documented in `docs/DISTRIBUTED.md`.

use crate::measure::MeasuredRun;
use crate::user_classes::{Hook, UserClass};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bump when a message changes meaning or shape (adding an optional field does not).
pub const PROTOCOL_VERSION: u32 = 1;

/// Environment variable that alters this process's fingerprint (its reported tool version),
/// so the tests can provoke a mismatch without a second build.
pub const FINGERPRINT_SALT_ENV: &str = "LVA_LOADTEST_FINGERPRINT_SALT";

/// What a worker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// First message: who the worker is and what it would run.
    Hello {
        protocol_version: u32,
        worker_name: String,
        fingerprint: Fingerprint,
    },
    /// The worker resolved its share and reached the host: it can start.
    Ready,
    /// The worker cannot take or finish its share.
    Failed { reason: String },
    /// Still here (sent every second when there is no progress to send).
    Heartbeat,
    /// Live totals, every second while the attack runs.
    Progress(Progress),
    /// Everything the worker measured, once its users have stopped.
    Result {
        #[serde(deserialize_with = "measured_run")]
        measured: Box<MeasuredRun>,
        goose_error: Option<String>,
    },
}

/// Reads a measured run inside a tagged message. Serde buffers a tagged message before it
/// knows the variant, and its buffer cannot turn the JSON's string map keys back into the
/// numbers the histograms are keyed by; a JSON value can.
fn measured_run<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Box<MeasuredRun>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    serde_json::from_value(value)
        .map(Box::new)
        .map_err(serde::de::Error::custom)
}

/// What the manager sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManagerMessage {
    /// The worker is part of the run, under this name.
    Welcome { worker_name: String },
    /// The worker is not part of the run (late, extra, or a different build); the manager
    /// closes the connection after this.
    Refused { reason: String },
    /// The worker's share of the run: resolve it and check the host, then answer `ready`.
    Prepare { run: Box<WorkerRun> },
    /// Start the attack this many milliseconds after receiving this message.
    Start { start_in_ms: u64 },
    /// Still here (every second).
    Heartbeat,
    /// Stop the users now and send the result (Ctrl-C on the manager).
    Stop { reason: String },
    /// The run is called off before any traffic; the worker exits with code 2.
    Abort { reason: String },
    /// The result arrived; the worker may exit.
    Received,
}

/// A worker's live totals since its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub elapsed_secs: f64,
    pub requests: u64,
    pub failures: u64,
    pub rate_limited: u64,
    pub users: u64,
}

/// One worker's share of the run, and every option its users need. Durations are in the
/// command line's words (`10s`), so the worker resolves them exactly as the manager did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRun {
    pub scenario: String,
    pub host: String,
    pub users: usize,
    pub spawn_rate: f64,
    pub duration_secs: u64,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub skip_preflight: bool,
    pub keep_accounts: bool,
    pub forwarded_for_pool: Option<u32>,
    pub no_loopback_sources: bool,
    pub request_timeout: String,
    pub ws_token_in_header: bool,
    pub ws_hold: String,
    pub ws_pace_ms: u64,
    pub ws_payload_bytes: usize,
    pub ws_timeout: String,
    /// Length of the measurement windows: the same for every worker, so that window `i`
    /// of each covers the same seconds of the run and they merge by index.
    pub window_ms: u64,
    /// The worker's users are numbered from this + 1 (see `FlowOptions::first_user_index`).
    pub first_user_index: u64,
}

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

    /// This process: its version (with the test salt, if set) and the built-in classes.
    pub fn of_this_build() -> Fingerprint {
        let mut version = env!("CARGO_PKG_VERSION").to_string();
        if let Ok(salt) = std::env::var(FINGERPRINT_SALT_ENV)
            && !salt.is_empty()
        {
            version = format!("{version}+{salt}");
        }
        Fingerprint::of(&version, &crate::user_classes::builtin_classes())
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

    /// What differs between the manager's fingerprint (`self`) and a worker's, for people;
    /// empty when they are the same.
    pub fn differences(&self, worker: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.tool_version != worker.tool_version {
            out.push(format!(
                "tool version: manager {}, worker {}",
                self.tool_version, worker.tool_version
            ));
        }
        for ours in &self.classes {
            match worker.classes.iter().find(|c| c.name == ours.name) {
                None => out.push(format!("user class {}: only on the manager", ours.name)),
                Some(theirs) => class_differences(ours, theirs, &mut out),
            }
        }
        for theirs in &worker.classes {
            if !self.classes.iter().any(|c| c.name == theirs.name) {
                out.push(format!("user class {}: only on the worker", theirs.name));
            }
        }
        out
    }
}

fn class_differences(ours: &ClassPrint, theirs: &ClassPrint, out: &mut Vec<String>) {
    let class = &ours.name;
    let differ = |out: &mut Vec<String>, what: String, a: String, b: String| {
        if a != b {
            out.push(format!("{what}: manager {a}, worker {b}"));
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
            out.push(format!("task {class}.{}: only on the manager", task.name));
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
            out.push(format!("task {class}.{}: only on the worker", task.name));
        }
    }
}

/// Why a frame could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the peer speaks protocol version {theirs}; this build speaks {ours}")]
    Version { ours: u32, theirs: u64 },
    #[error("not a message of this protocol: {0}")]
    Malformed(String),
    #[error("the connection closed")]
    Closed,
    #[error("connection error: {0}")]
    Transport(String),
}

/// Generous limits: a long run's result carries every window's histograms.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(512 << 20))
        .max_frame_size(Some(512 << 20))
}

/// A message as a text frame.
pub fn encode<T: Serialize>(message: &T) -> Message {
    // Serialising these types cannot fail: no maps with non-string keys, no foreign types.
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

/// Reads a frame: `Ok(None)` for control frames (ping, pong) that carry no message.
pub fn decode<T: for<'de> Deserialize<'de>>(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<(T, usize)>, ProtocolError> {
    match frame {
        None | Some(Ok(Message::Close(_))) => Err(ProtocolError::Closed),
        Some(Err(e)) => Err(ProtocolError::Transport(e.to_string())),
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str())
            .map(|m| Some((m, text.len())))
            .map_err(|e| ProtocolError::Malformed(e.to_string())),
        Some(Ok(Message::Binary(_))) => Err(ProtocolError::Malformed(
            "a binary frame (messages are JSON text)".into(),
        )),
        Some(Ok(_)) => Ok(None),
    }
}

/// Reads a worker's first message, checking the protocol version before the shape, so a
/// worker of another version is told so rather than that its message is malformed.
pub fn decode_hello(text: &str) -> Result<(String, Fingerprint), ProtocolError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if value.get("type").and_then(|t| t.as_str()) != Some("hello") {
        return Err(ProtocolError::Malformed(
            "the first message must be hello".into(),
        ));
    }
    let theirs = value
        .get("protocol_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if theirs != u64::from(PROTOCOL_VERSION) {
        return Err(ProtocolError::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    match serde_json::from_value(value) {
        Ok(WorkerMessage::Hello {
            worker_name,
            fingerprint,
            ..
        }) => Ok((worker_name, fingerprint)),
        Ok(_) => Err(ProtocolError::Malformed(
            "the first message must be hello".into(),
        )),
        Err(e) => Err(ProtocolError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_classes::builtin_classes;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let hello = WorkerMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            worker_name: "w1".into(),
            fingerprint: Fingerprint::of("0.1.0", &builtin_classes()),
        };
        let text = serde_json::to_string(&hello).expect("encode");
        assert!(text.starts_with(r#"{"type":"hello""#), "{text}");
        let (name, print) = decode_hello(&text).expect("hello");
        assert_eq!(name, "w1");
        assert_eq!(print, Fingerprint::of("0.1.0", &builtin_classes()));

        let progress = WorkerMessage::Progress(Progress {
            requests: 5,
            ..Progress::default()
        });
        let text = serde_json::to_string(&progress).expect("encode");
        assert!(text.contains(r#""type":"progress""#), "{text}");
        let back: WorkerMessage = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, progress);
        let mut measured = MeasuredRun::default();
        let mut stats = crate::measure::RequestStats::default();
        stats.times.record(12_345);
        stats.status_codes.insert(200, 1);
        measured.requests.push(stats);
        let result = WorkerMessage::Result {
            measured: Box::new(measured),
            goose_error: None,
        };
        let text = serde_json::to_string(&result).expect("encode");
        let back: WorkerMessage = serde_json::from_str(&text).expect("decode result");
        assert_eq!(back, result);

        let start =
            serde_json::to_string(&ManagerMessage::Start { start_in_ms: 1000 }).expect("encode");
        assert_eq!(start, r#"{"type":"start","start_in_ms":1000}"#);
    }

    #[test]
    fn another_protocol_version_is_named() {
        let text = r#"{"type":"hello","protocol_version":7,"something":"new"}"#;
        let err = decode_hello(text).expect_err("version 7");
        assert!(
            matches!(err, ProtocolError::Version { theirs: 7, .. }),
            "{err}"
        );
        assert!(decode_hello(r#"{"type":"ready"}"#).is_err());
    }

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
            diff.contains("tool version: manager 0.1.0, worker 0.2.0"),
            "{diff}"
        );
        assert!(
            diff.contains("task AuthenticatedUser.health_check weight: manager 10, worker 11"),
            "{diff}"
        );
        assert!(diff.contains("user class GDPRTestUser wait"), "{diff}");
        assert!(
            diff.contains("user class WebSocketUser: only on the manager"),
            "{diff}"
        );
    }
}
