//! `lva-loadtest merge FOLDER`: the exact verdict of a run driven by a Locust master.
//! `scripts/locust_master.py` stores each worker's delivery (`<node id>.lvarun`, the bytes
//! as they came) and a `workers.json` saying which workers took part and which were lost;
//! this reads them back, checks that every worker ran the same build and plan as this
//! program, and ends the run as the tool's manager ends one.

use super::delivery::{Delivery, FILE_SUFFIX};
use super::fingerprint::Fingerprint;
use super::roster::{Ending, Roster, WorkerOutcome, WorkerRecord, conclude_distributed};
use crate::cli::MergeArgs;
use crate::exit::Exit;
use crate::plan::ConfigError;
use crate::report::RunOutputs;
use crate::user_classes::UserClass;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The manifest the master's locustfile writes beside the deliveries.
pub const MANIFEST: &str = "workers.json";

#[derive(Deserialize)]
struct Manifest {
    workers: Vec<ManifestWorker>,
    #[serde(default)]
    master: Value,
}

#[derive(Deserialize)]
struct ManifestWorker {
    node_id: String,
    name: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    reported_requests: Option<u64>,
}

fn read_deliveries(folder: &Path) -> Result<Vec<Delivery>, ConfigError> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        ConfigError(format!(
            "cannot read {}: {e} (give the folder of one run's exact runs)",
            folder.display()
        ))
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(FILE_SUFFIX))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            Delivery::from_bytes(&bytes)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))
        })
        .collect()
}

fn read_manifest(folder: &Path) -> Result<Option<Manifest>, ConfigError> {
    let path = folder.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The workers of the run: those the manifest lists (a delivered one matched to its file),
/// or, without a manifest, the deliveries found.
fn roster(deliveries: Vec<Delivery>, manifest: Option<&Manifest>, accept_degraded: bool) -> Roster {
    let mut deliveries: Vec<Option<Delivery>> = deliveries.into_iter().map(Some).collect();
    let mut workers = Vec::new();
    if let Some(manifest) = manifest {
        for listed in &manifest.workers {
            let found = deliveries
                .iter_mut()
                .find(|d| d.as_ref().is_some_and(|d| d.node_id == listed.node_id))
                .and_then(Option::take);
            let outcome =
                match found {
                    Some(d) => WorkerOutcome::Delivered(Box::new(d)),
                    None => WorkerOutcome::Lost(listed.reason.clone().unwrap_or_else(|| {
                        format!("{}; no exact run in the folder", listed.status)
                    })),
                };
            workers.push(WorkerRecord {
                name: listed.name.clone(),
                outcome,
                reported_requests: listed.reported_requests,
            });
        }
    }
    // Deliveries the manifest does not list (or all of them, without one).
    for d in deliveries.into_iter().flatten() {
        workers.push(WorkerRecord {
            name: d.name.clone(),
            outcome: WorkerOutcome::Delivered(Box::new(d)),
            reported_requests: None,
        });
    }
    Roster {
        workers,
        accept_degraded,
    }
}

/// Runs `merge`: exit 2 when the folder cannot be read or its runs do not belong together.
pub fn merge_folder(args: &MergeArgs, classes: Vec<UserClass>) -> Exit {
    let deliveries = match read_deliveries(&args.folder) {
        Ok(d) => d,
        Err(e) => return Exit::config_error(e),
    };
    let manifest = match read_manifest(&args.folder) {
        Ok(m) => m,
        Err(e) => return Exit::config_error(e),
    };
    if deliveries.is_empty() {
        return Exit::config_error(format!(
            "no exact run (*{FILE_SUFFIX}) in {}: no worker delivered one",
            args.folder.display()
        ));
    }
    let ours = Fingerprint::of_this_build(&classes);
    for d in &deliveries {
        let differences = ours.differences_named(&d.fingerprint, ("this program", "worker"));
        if !differences.is_empty() {
            return Exit::config_error(format!(
                "worker {} ran another build than this program ({}): merge with the program \
                 the workers ran",
                d.name,
                differences.join("; ")
            ));
        }
    }
    let roster = roster(deliveries, manifest.as_ref(), args.accept_degraded);
    let Some(first) = roster.deliveries().next() else {
        return Exit::config_error("no worker delivered an exact run");
    };
    let window = first.plan.targets.spike_window_secs;
    if let Some(other) = roster.deliveries().find(|d| {
        d.plan.targets.spike_window_secs != window || d.plan.preset_name != first.plan.preset_name
    }) {
        return Exit::config_error(format!(
            "worker {} ran another plan than worker {} (scenario or measurement windows differ): \
             these runs do not belong to one run",
            other.name, first.name
        ));
    }
    let mut plan = first.plan.clone();
    if let Err(e) = plan.select(classes) {
        return Exit::config_error(e);
    }
    plan.targets = match args.targets.resolve_over(&plan.targets) {
        Ok(targets) => targets,
        Err(e) => return Exit::config_error(e),
    };
    if let Err(e) = crate::report::saved::load_baseline(&mut plan.targets) {
        return Exit::config_error(e);
    }
    if let Some(output) = &args.output {
        plan.output = output.clone();
    }
    plan.no_reports |= args.no_reports;
    let Some(host) = plan.host.clone() else {
        return Exit::config_error("the workers' plan names no host");
    };
    let outputs = match RunOutputs::prepare(&plan.output, &plan.preset_name, chrono::Local::now()) {
        Ok(outputs) => outputs,
        Err(e) => return Exit::config_error(format!("{e} (choose another --output)")),
    };
    outln!(
        "Merging the exact runs of {} worker{} from {}",
        roster.workers.len(),
        if roster.workers.len() == 1 { "" } else { "s" },
        args.folder.display()
    );
    let master = manifest.map_or(Value::Null, |m| m.master);
    let interrupted = master["interrupted"] == true;
    let distributed = roster.json(master);
    conclude_distributed(
        &roster,
        Ending {
            plan: &plan,
            host: &host,
            builtin_server: false,
            outputs: &outputs,
            memory: None,
            probes: None,
            distributed,
            interrupted,
            metrics: None,
        },
    )
}
