//! Every run's outputs are its own and survive: one run id in every output and account,
//! names no other run can take, a report folder that vanished mid-run, and the plan as it
//! really ran. The real binary against its built-in reference server, on 127.0.0.1.

use crate::support::process::Proc;
use crate::support::{Args, BIN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Starts the tool with its outputs under `output`.
fn tool(args: &Args, output: &Path) -> Proc {
    let mut command = Command::new(BIN);
    command.arg("--output").arg(output).args(args.words());
    Proc::launch("lva-loadtest", command)
}

/// Runs the tool to its end (at most 90 s): its exit code and its process, ended.
fn finished(args: &Args, output: &Path) -> (i32, Proc) {
    let mut run = tool(args, output);
    (run.wait(Duration::from_secs(90)), run)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_in(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn ending(dir: &Path, suffix: &str) -> PathBuf {
    files(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} among {:?}", files(dir)))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).expect("JSON")
}

/// The word after `label` on the console line that starts with it.
fn console_value(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no '{label}' line in\n{stdout}"))
        .to_string()
}

/// The users' accounts, the probes' accounts and every output carry one run id: the
/// account addresses read from the server's own database, kept with `--keep-accounts`.
#[test]
fn one_run_id_names_every_account_and_every_output() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("server.sqlite");
    let out = dir.path().join("reports");
    let args = Args::custom(3, 3, "6s")
        .exclude_tags("rate-limit")
        .with(&["--probes", "--keep-accounts"])
        .builtin(&format!("--db {}", db.display()));
    let (code, run) = finished(&args, &out);
    assert_eq!(code, 0, "{}", run.output());
    let stdout = run.stdout();
    let id = console_value(&stdout, "Run id: ");
    assert_eq!(id.len(), 8, "{}", run.output());

    let metrics = json(&ending(&out, "_metrics.json"));
    assert_eq!(metrics["provenance"]["run_id"], id.as_str());
    let junit = read(&ending(&out, "_junit.xml"));
    assert!(
        junit.contains(&format!("<property name=\"run_id\" value=\"{id}\"/>")),
        "{junit}"
    );
    assert!(read(&ending(&out, ".html")).contains(&format!("<dd>{id}</dd>")));
    assert!(read(&ending(&out, "_findings.md")).contains(&format!("run id {id}")));

    let emails = lva_target::account_emails(&db, "lt-").expect("the server's database");
    let probes = emails.iter().filter(|e| e.contains("-probe-")).count();
    assert!(
        probes > 0 && emails.len() > probes,
        "users' and probes' accounts: {emails:?}"
    );
    for email in &emails {
        assert!(
            email.starts_with(&format!("lt-{id}-")),
            "{email} (run {id})"
        );
    }
}
