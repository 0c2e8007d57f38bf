//! Locust's messages as bytes: each frame is a msgpack array `[type, data, node_id]`, and
//! `data` is a map whose fields are named (as Python's msgpack writes a dict). The types
//! this tool adds to Locust's own start with `lva_`; a stock Locust master hands them to
//! the handlers its locustfile registers (`scripts/locust_master.py` does), and the
//! tool's own manager reads them itself. Documented in `docs/DISTRIBUTED.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bump when an `lva_` message changes meaning or shape (adding an optional field does
/// not). Locust's own messages follow Locust.
pub const PROTOCOL_VERSION: u32 = 3;

/// What `client_ready` carries: Locust's masters skip their version check for `-1`, as
/// they do for the workers other projects wrote in other languages.
pub const NO_LOCUST_VERSION: i64 = -1;

/// Declares [`Kind`]: each message type once, with the name it travels under.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A message's type. Locust's own keep Locust's names; the ones this tool adds start
        /// with `lva_`; any other name a master may send is kept as it came.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
            /// A type this tool does not know (Locust's `update_user_class`, `locustfile`).
            Other(String),
        }

        impl Kind {
            /// The name it travels under.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Kind::$variant => $name,)*
                    Kind::Other(name) => name,
                }
            }

            /// The type a name stands for.
            pub fn named(name: &str) -> Kind {
                match name {
                    $($name => Kind::$variant,)*
                    other => Kind::Other(other.to_string()),
                }
            }
        }
    };
}

kinds! {
    ClientReady => "client_ready",
    Ack => "ack",
    Heartbeat => "heartbeat",
    Spawn => "spawn",
    Spawning => "spawning",
    SpawningComplete => "spawning_complete",
    Stats => "stats",
    Stop => "stop",
    ClientStopped => "client_stopped",
    Quit => "quit",
    Reconnect => "reconnect",
    Exception => "exception",
    /// Worker → master: who it is and what it would run ([`Hello`]).
    Hello => "lva_hello",
    /// Master → worker: the worker is not part of the run, and why; it exits with code 2.
    Refused => "lva_refused",
    /// The tool's manager → worker: the resolved plan ([`crate::plan::Plan`]).
    Plan => "lva_plan",
    /// Worker → the tool's manager: the plan is taken and the host answers.
    Ready => "lva_ready",
    /// Worker → the tool's manager: its share of an open-model run's arrivals is over.
    ArrivalsOver => "lva_arrivals_over",
    /// Worker → the tool's manager: its figures so far ([`RunMessage`] holding a
    /// [`crate::measure::MeasuredRun`]), for the manager's live metrics.
    Snapshot => "lva_snapshot",
    /// Worker → master: it cannot take the plan or the users it was given.
    Failed => "lva_failed",
    /// Master → worker: stop the users and deliver the exact run now (a Locust master
    /// quitting does not send `stop` first).
    Collect => "lva_collect",
    /// Worker → master: everything it measured ([`crate::distributed::delivery::Delivery`], as bytes).
    Run => "lva_run",
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame that is not a message of the protocol.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a Locust message: {0}")]
    Frame(String),
    #[error("a {kind} message of an unexpected shape: {detail}")]
    Data { kind: String, detail: String },
}

/// A received message, its data not yet read.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub kind: Kind,
    pub data: rmpv::Value,
    pub node_id: String,
}

impl Envelope {
    /// Reads the data as `T` (through msgpack again: the value reader cannot take an enum
    /// written as its variant's name, which is how Python and this tool write them).
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WireError> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &self.data).map_err(|e| self.unexpected(e))?;
        rmp_serde::from_slice(&bytes).map_err(|e| self.unexpected(e))
    }

    /// Reads data written by [`encode_json`].
    pub fn json_data<T: DeserializeOwned>(&self) -> Result<T, WireError> {
        match &self.data {
            rmpv::Value::Binary(bytes) => read_json_payload(bytes).map_err(|e| self.unexpected(e)),
            other => Err(self.unexpected(format!("not a payload: {other}"))),
        }
    }

    fn unexpected(&self, detail: impl std::fmt::Display) -> WireError {
        WireError::Data {
            kind: self.kind.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// The tool's own large payloads (a plan, a run) travel as JSON in a msgpack binary: the tool
/// already reads them from JSON, and msgpack's decoder is generated again for every type it
/// visits (reading the plan and the runs as JSON took the tool's library from 2.21M to 1.99M
/// lines of LLVM IR). Writing cannot fail: the types hold no foreign values, no maps keyed
/// by anything but strings and integers, and no float that is not finite.
pub fn json_payload<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads a payload [`json_payload`] wrote.
pub fn read_json_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// A message as bytes. Serialising these types cannot fail: no foreign types, maps keyed
/// by strings or integers.
pub fn encode<T: Serialize + ?Sized>(kind: Kind, data: &T, node_id: &str) -> Vec<u8> {
    rmp_serde::to_vec_named(&(kind.as_str(), data, node_id)).unwrap_or_default()
}

/// A message whose data is a [`json_payload`].
pub fn encode_json<T: Serialize>(kind: Kind, data: &T, node_id: &str) -> Vec<u8> {
    encode(kind, serde_bytes::Bytes::new(&json_payload(data)), node_id)
}

/// A message whose data is nil.
pub fn encode_empty(kind: Kind, node_id: &str) -> Vec<u8> {
    encode(kind, &(), node_id)
}

/// Reads a frame.
pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
    let (kind, data, node_id): (String, rmpv::Value, String) =
        rmp_serde::from_slice(bytes).map_err(|e| WireError::Frame(e.to_string()))?;
    Ok(Envelope {
        kind: Kind::named(&kind),
        data,
        node_id,
    })
}

/// A worker's state, as its heartbeats say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Ready,
    Spawning,
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub state: WorkerState,
    /// Percent of one core, over the last second.
    pub current_cpu_usage: f64,
    /// Resident memory, in bytes.
    pub current_memory_usage: u64,
}

/// The master's order: this many users of each class from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spawn {
    pub timestamp: f64,
    pub user_classes_count: BTreeMap<String, u64>,
    pub host: Option<String>,
    #[serde(default)]
    pub stop_timeout: Option<f64>,
    /// Every option of the master's command line, its locustfile's own included.
    #[serde(default)]
    pub parsed_options: BTreeMap<String, rmpv::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(default)]
    pub index: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpawningComplete {
    pub user_classes_count: BTreeMap<String, u64>,
    pub user_count: u64,
}

/// A worker's report: what its users did since the previous one (Locust merges these
/// deltas into its live figures), and how many users run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub stats: Vec<StatsEntry>,
    pub stats_total: StatsEntry,
    pub errors: BTreeMap<String, StatsError>,
    pub user_classes_count: BTreeMap<String, u64>,
    pub user_count: u64,
}

/// One request name's figures over a report's period, as Locust keeps them. Times are in
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsEntry {
    pub name: String,
    pub method: String,
    pub last_request_timestamp: Option<f64>,
    pub start_time: f64,
    pub num_requests: u64,
    pub num_none_requests: u64,
    pub num_failures: u64,
    pub total_response_time: f64,
    pub max_response_time: f64,
    pub min_response_time: Option<f64>,
    pub total_content_length: u64,
    /// Rounded milliseconds → count (see `locust_stats::round_ms`).
    pub response_times: BTreeMap<u64, u64>,
    /// Unix second → requests (and failures) in it.
    pub num_reqs_per_sec: BTreeMap<u64, u64>,
    pub num_fail_per_sec: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsError {
    pub name: String,
    pub method: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: Option<f64>,
    pub last_seen: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    pub msg: String,
    pub traceback: String,
}

/// A reason, for `lva_refused` and `lva_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub reason: String,
}

/// `lva_hello`: the worker's name and what it would run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub name: String,
    pub fingerprint: super::fingerprint::Fingerprint,
    /// [`super::fingerprint::Fingerprint::digest`], for a master that compares digests only.
    pub digest: String,
}

/// `lva_run`: a worker's exact run, as opaque bytes ([`crate::distributed::delivery::Delivery`] as JSON), so a
/// Locust master's locustfile can store it without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMessage {
    pub name: String,
    pub protocol_version: u32,
    #[serde(with = "serde_bytes")]
    pub run: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_travels_under_its_name_and_unknown_ones_are_kept() {
        for kind in [
            Kind::ClientReady,
            Kind::SpawningComplete,
            Kind::Hello,
            Kind::Run,
        ] {
            let back = decode(&encode_empty(kind.clone(), "w")).expect("frame");
            assert_eq!(back.kind, kind);
        }
        assert_eq!(Kind::named("spawning_complete"), Kind::SpawningComplete);
        let other = decode(&encode_empty(Kind::named("update_user_class"), "w")).expect("frame");
        assert_eq!(other.kind, Kind::Other("update_user_class".into()));
        assert_eq!(other.kind.as_str(), "update_user_class");
    }
    #[test]
    fn frames_are_three_element_arrays_with_named_maps() {
        let bytes = encode(
            Kind::Heartbeat,
            &Heartbeat {
                state: WorkerState::Running,
                current_cpu_usage: 1.5,
                current_memory_usage: 1024,
            },
            "w1_00",
        );
        // fixarray of 3, then "heartbeat" as a fixstr.
        assert_eq!(&bytes[..2], &[0x93, 0xa9]);
        let back = decode(&bytes).expect("decode");
        assert_eq!(back.kind, Kind::Heartbeat);
        assert_eq!(back.kind.as_str(), "heartbeat");
        assert_eq!(back.node_id, "w1_00");
        let beat: Heartbeat = back.data().expect("data");
        assert_eq!(beat.state, WorkerState::Running);
        let ready = decode(&encode(Kind::ClientReady, &NO_LOCUST_VERSION, "w")).expect("ready");
        assert_eq!(ready.data, rmpv::Value::from(-1));
        assert_eq!(
            decode(&encode_empty(Kind::Quit, "w")).expect("quit").data,
            rmpv::Value::Nil
        );
        assert!(decode(b"\x01\x02").is_err());
    }

    #[test]
    fn a_spawn_from_python_is_read() {
        // What Locust 2.47 sends, built as Python builds it: a dict with these keys.
        let value = rmpv::Value::Map(vec![
            ("timestamp".into(), 1.7e9.into()),
            (
                "user_classes_count".into(),
                rmpv::Value::Map(vec![("AuthenticatedUser".into(), 3.into())]),
            ),
            ("host".into(), "http://127.0.0.1:8000".into()),
            ("stop_timeout".into(), rmpv::Value::Nil),
            (
                "parsed_options".into(),
                rmpv::Value::Map(vec![("num_users".into(), 6.into())]),
            ),
        ]);
        let bytes = encode(Kind::Spawn, &value, "");
        let spawn: Spawn = decode(&bytes).expect("frame").data().expect("spawn");
        assert_eq!(spawn.user_classes_count["AuthenticatedUser"], 3);
        assert_eq!(spawn.stop_timeout, None);
        assert_eq!(spawn.parsed_options["num_users"], rmpv::Value::from(6));
    }
}
