//! What a worker delivers at the end of its run, whichever master it serves: its name, what
//! it would run (its fingerprint), the plan it ran and everything it measured. Carried as
//! msgpack bytes in an `lva_run` message; a Locust master's locustfile stores the bytes as
//! they came, one file per worker, and `lva-loadtest merge` reads them back.

use super::fingerprint::Fingerprint;
use crate::measure::MeasuredRun;
use crate::plan::Plan;
use serde::{Deserialize, Serialize};

/// The file name ending of a stored delivery.
pub const FILE_SUFFIX: &str = ".lvarun";

#[derive(Serialize, Deserialize)]
pub struct Delivery {
    /// The worker's name (`--worker-name`, or host name and process id).
    pub name: String,
    /// The worker's identity on the wire (its name and a random suffix).
    pub node_id: String,
    pub fingerprint: Fingerprint,
    /// The plan the worker ran (the user classes are its own, see the fingerprint).
    pub plan: Plan,
    pub measured: MeasuredRun,
}

/// A delivery that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("not an exact run of this version of lva-loadtest: {0}")]
pub struct DeliveryError(String);

impl Delivery {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising cannot fail: the types hold no foreign values and no maps with keys
        // msgpack cannot write.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Delivery, DeliveryError> {
        rmp_serde::from_slice(bytes).map_err(|e| DeliveryError(e.to_string()))
    }

    /// All requests it measured.
    pub fn requests(&self) -> u64 {
        self.measured.requests.iter().map(|r| r.total()).sum()
    }
}
