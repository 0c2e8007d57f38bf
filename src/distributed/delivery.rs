//! What a worker delivers at the end of its run, whichever master it serves: its name, what
//! it would run (its fingerprint), the plan it ran and everything it measured. Carried as
//! opaque bytes in an `lva_run` message; a Locust master's locustfile stores the bytes as
//! they came, one file per worker, and `lva-loadtest merge` reads them back.
//! The bytes are JSON ([`super::wire::json_payload`]).

use super::fingerprint::Fingerprint;
use super::wire::{json_payload, read_json_payload};
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

impl From<serde_json::Error> for DeliveryError {
    fn from(e: serde_json::Error) -> Self {
        DeliveryError(e.to_string())
    }
}

impl Delivery {
    pub fn to_bytes(&self) -> Vec<u8> {
        json_payload(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Delivery, DeliveryError> {
        Ok(read_json_payload(bytes)?)
    }

    /// All requests it measured.
    pub fn requests(&self) -> u64 {
        self.measured.requests.iter().map(|r| r.total()).sum()
    }
}

/// A worker's snapshot of its run so far (`lva_snapshot`), in the bytes of a delivery.
pub fn snapshot_bytes(run: &MeasuredRun) -> Vec<u8> {
    json_payload(run)
}

pub fn snapshot_from_bytes(bytes: &[u8]) -> Result<MeasuredRun, DeliveryError> {
    Ok(read_json_payload(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Ledger, Observation, Outcome, RequestKind};
    use std::time::{Duration, Instant};

    #[test]
    fn a_snapshot_reads_back_exactly_from_its_bytes() {
        let ledger = Ledger::new(Duration::from_secs(10));
        ledger.user_started("AuthenticatedUser");
        for (ms, outcome, status) in [
            (3, Outcome::Success, 200),
            (
                1234,
                Outcome::Failure("500 Internal Server Error".into()),
                500,
            ),
            (1, Outcome::RateLimited, 429),
            (7, Outcome::ExpectedError("401 as expected".into()), 401),
        ] {
            ledger.record(&Observation {
                kind: RequestKind::Http,
                method: "POST",
                name: "/api/conversation",
                user_class: "AuthenticatedUser",
                started: Instant::now(),
                // Not a whole number of milliseconds, so the float times are not round.
                duration: Duration::from_micros(ms * 1000 + 37),
                service: None,
                status: Some(status),
                outcome: &outcome,
                bytes: 321,
            });
        }
        std::thread::sleep(Duration::from_millis(3));
        ledger.user_started("AuthenticatedUser");
        let run = ledger.snapshot("smoke", true);
        assert!(run.last_user_secs.is_some_and(|t| t.fract() != 0.0));
        let back = snapshot_from_bytes(&snapshot_bytes(&run)).expect("the bytes read back");
        assert_eq!(back, run);
        assert!(snapshot_from_bytes(b"\x93\x01").is_err());
    }
}
