//! The workers of a finished distributed run and what became of each (delivered its exact
//! run, or lost), and the end of such a run: the exact merge of what was delivered, judged
//! and reported by [`crate::conclude`] like a single run, with a check of its own on the
//! workers. The tool's manager and `lva-loadtest merge` (a Locust master's runs) end here.

use super::delivery::Delivery;
use super::wire::PROTOCOL_VERSION;
use crate::conclude::{RunEnd, conclude};
use crate::exit::Exit;
use crate::measure::{MemorySeries, merge};
use crate::plan::Plan;
use crate::probes::ProbeReport;
use crate::report::RunOutputs;
use crate::verdict::Check;
use serde_json::{Map, Value, json};
use url::Url;

/// What became of one worker.
pub enum WorkerOutcome {
    Delivered(Box<Delivery>),
    /// It took part but its exact run never came, and why.
    Lost(String),
}

pub struct WorkerRecord {
    pub name: String,
    pub outcome: WorkerOutcome,
    /// The requests it reported live before it was lost (Locust's figures), if known.
    pub reported_requests: Option<u64>,
}

impl WorkerRecord {
    fn line(&self) -> String {
        match &self.outcome {
            WorkerOutcome::Delivered(d) => {
                format!("{}: delivered {}", self.name, d.measured.request_count())
            }
            WorkerOutcome::Lost(reason) => format!(
                "{}: LOST ({reason}); {}; not in the merged figures",
                self.name,
                self.reported_requests.map_or_else(
                    || "nothing reported live".to_string(),
                    |n| format!("{n} requests reported live")
                )
            ),
        }
    }

    fn json(&self) -> Value {
        match &self.outcome {
            WorkerOutcome::Delivered(d) => json!({
                "name": self.name,
                "status": "delivered",
                "requests": d.requests(),
            }),
            WorkerOutcome::Lost(reason) => json!({
                "name": self.name,
                "status": "lost",
                "lost_reason": reason,
                "reported_requests": self.reported_requests,
            }),
        }
    }
}

/// Every worker that took part in a run.
pub struct Roster {
    pub workers: Vec<WorkerRecord>,
    pub accept_degraded: bool,
}

impl Roster {
    pub fn deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.workers.iter().filter_map(|w| match &w.outcome {
            WorkerOutcome::Delivered(d) => Some(d.as_ref()),
            WorkerOutcome::Lost(_) => None,
        })
    }

    pub fn lost(&self) -> Vec<&str> {
        self.workers
            .iter()
            .filter(|w| matches!(w.outcome, WorkerOutcome::Lost(_)))
            .map(|w| w.name.as_str())
            .collect()
    }

    /// The verdict's word on the workers: all delivered, or which were lost.
    pub fn check(&self) -> Check {
        let lost = self.lost();
        let expected = self.workers.len();
        let mut actual = format!("{} of {expected} delivered", expected - lost.len());
        if !lost.is_empty() {
            actual.push_str(&format!(
                "; DEGRADED, lost: {}{}",
                lost.join(", "),
                if self.accept_degraded {
                    " (accepted by --accept-degraded)"
                } else {
                    ""
                }
            ));
        }
        let mut check = Check::judged(
            "workers",
            "Workers Reporting",
            format!("all {expected} workers deliver their measurements"),
            actual,
            lost.is_empty() || self.accept_degraded,
        )
        .with_details(self.workers.iter().map(WorkerRecord::line).collect());
        if check.failed() {
            check.advice = Some(
                "A worker stopped reporting: look at its log and its machine (killed, out of \
                 memory, network). The figures cover the workers that delivered; a lost \
                 worker's requests are not merged. --accept-degraded accepts such a run."
                    .into(),
            );
        }
        check
    }

    /// The `distributed` section of the metrics JSON's `extra`.
    pub fn json(&self, master: Value) -> Value {
        let lost = self.lost();
        json!({
            "protocol": format!("Locust master/worker (ZeroMQ, msgpack), lva messages version {PROTOCOL_VERSION}"),
            "master": master,
            "fingerprint": self.deliveries().next().map(|d| d.fingerprint.digest()),
            "expected_workers": self.workers.len(),
            "degraded": !lost.is_empty(),
            "accept_degraded": self.accept_degraded,
            "lost_workers": lost,
            "workers": self.workers.iter().map(WorkerRecord::json).collect::<Vec<_>>(),
            "goose_reports": "not written: the workers run their users themselves (see docs/DISTRIBUTED.md)",
        })
    }
}

/// What the end of a distributed run adds to the workers' deliveries.
pub struct Ending<'a> {
    pub plan: &'a Plan,
    pub host: &'a Url,
    pub builtin_server: bool,
    pub outputs: &'a RunOutputs,
    /// The server's memory, when the master sampled it.
    pub memory: Option<MemorySeries>,
    pub probes: Option<ProbeReport>,
    /// The `distributed` section of the metrics JSON (see [`Roster::json`]).
    pub distributed: Value,
    /// The master ended the run before its planned end (Ctrl-C, a stop by hand).
    pub interrupted: bool,
    /// The manager's live metrics, given the merged figures as its final ones.
    pub metrics: Option<(&'a crate::live_metrics::LiveMetrics, std::time::Duration)>,
}

/// Merges every delivered run exactly, then judges and reports the whole as one run.
pub fn conclude_distributed(roster: &Roster, ending: Ending<'_>) -> Exit {
    let runs: Vec<_> = roster.deliveries().map(|d| d.measured.clone()).collect();
    let mut merged = match merge(&runs) {
        Ok(merged) => merged,
        Err(e) => {
            errln!("error: {e}; nothing to judge");
            for line in roster.check().details {
                errln!("  {line}");
            }
            return Exit::Failed;
        }
    };
    merged.preset_name = ending.plan.preset_name.clone();
    merged.memory = ending.memory;
    merged.interrupted |= ending.interrupted;
    let mut extra = Map::new();
    extra.insert("distributed".into(), ending.distributed);
    if let Some((metrics, linger)) = ending.metrics {
        metrics.finish(&merged, linger);
    }
    let end = RunEnd {
        measured: merged,
        goose_error: None,
        goose_reports: Vec::new(),
        extra_checks: vec![roster.check()],
        extra,
        probes: ending.probes,
    };
    conclude(
        ending.plan,
        ending.host,
        ending.builtin_server,
        ending.outputs,
        end,
    )
}
