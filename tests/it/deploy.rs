//! What a cluster would run: the manifests in `docs/k8s` are valid against the Kubernetes
//! schemas (checked offline with the pinned `kubernetes-validate`, strictly, so a misspelled
//! field fails), hold together (Service, ports, worker counts), and their command lines are
//! ones the tool accepts; the Containerfile's stages and files exist. No image is built
//! here (no container engine runs on these machines).

use crate::support::process::python_tools;
use clap::Parser;
use lva_loadtest::cli::Cli;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn k8s(name: &str) -> PathBuf {
    Path::new(ROOT).join("docs/k8s").join(name)
}

/// The resources of a manifest file.
fn resources(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(k8s(name)).expect("manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .collect()
}

fn of_kind<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    all.iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn container(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("an argument").to_string())
        .collect()
}

/// The value of `--flag=value` among `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
}

fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(python_tools().join("bin/kubernetes-validate"))
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const MANIFESTS: [&str; 3] = ["locust-master.yaml", "manager.yaml", "workers.yaml"];

#[test]
fn the_manifests_are_valid_kubernetes_resources() {
    let files: Vec<PathBuf> = MANIFESTS.iter().map(|m| k8s(m)).collect();
    let (ok, text) = validate(&files);
    assert!(ok, "{text}");
    assert_eq!(text.matches("passed").count(), 5, "{text}");
    // The check can fail: a misspelled field is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("workers.yaml");
    let text = std::fs::read_to_string(k8s("workers.yaml")).expect("read");
    std::fs::write(&broken, text.replace("parallelism:", "parallelizm:")).expect("write");
    let (ok, text) = validate(&[broken]);
    assert!(!ok, "a misspelled field passed: {text}");
}

#[test]
fn the_manifests_hold_together_and_their_command_lines_are_the_tools() {
    let workers = resources("workers.yaml");
    let job = of_kind(&workers, "Job");
    let parallelism = job["spec"]["parallelism"].as_u64().expect("parallelism");
    assert_eq!(job["spec"]["completions"].as_u64(), Some(parallelism));
    let worker_args = args(container(job));
    let cli = Cli::try_parse_from(std::iter::once("lva-loadtest".to_string()).chain(worker_args))
        .expect("the workers' command line");
    assert!(cli.distributed.worker);

    for master in ["locust-master.yaml", "manager.yaml"] {
        let all = resources(master);
        let service = of_kind(&all, "Service");
        assert_eq!(
            service["metadata"]["name"].as_str(),
            Some(cli.distributed.manager_host.as_str()),
            "{master}: the workers' --master-host is this Service"
        );
        let port = service["spec"]["ports"]
            .as_sequence()
            .and_then(|ports| ports.iter().find(|p| p["name"] == "workers"))
            .expect("the workers' port");
        assert_eq!(
            port["port"].as_u64(),
            Some(u64::from(cli.distributed.manager_port))
        );
        let job = of_kind(&all, "Job");
        let selector = &service["spec"]["selector"];
        assert_eq!(
            &job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
            &selector["app.kubernetes.io/component"],
            "{master}: the Service selects the master's pod"
        );
        let master_args = args(container(job));
        assert_eq!(
            flag(&master_args, "--expect-workers").and_then(|n| n.parse().ok()),
            Some(parallelism),
            "{master}: --expect-workers is the workers Job's parallelism"
        );
        if master == "manager.yaml" {
            let cli = Cli::try_parse_from(
                std::iter::once("lva-loadtest".to_string()).chain(master_args.clone()),
            )
            .expect("the manager's command line");
            assert!(cli.distributed.manager);
            assert_eq!(
                Some(u64::from(cli.distributed.manager_bind.port())),
                port["port"].as_u64(),
                "the manager listens on the Service's port"
            );
        } else {
            // What the master forwards to the workers makes a run of the tool.
            let lva_args = flag(&master_args, "--lva-args").expect("--lva-args");
            let words = std::iter::once("lva-loadtest")
                .chain(lva_args.split_whitespace())
                .chain(["--host", "https://staging.example.com"]);
            Cli::try_parse_from(words).expect("--lva-args");
        }
    }
}

#[test]
fn the_helm_values_run_the_tools_workers() {
    let text = std::fs::read_to_string(k8s("locust-helm-values.yaml")).expect("values");
    let values: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let worker = &values["worker"];
    assert!(
        worker["image"]
            .as_str()
            .is_some_and(|i| i.contains("/lva-loadtest:")),
        "{worker:?}"
    );
    let words = std::iter::once("lva-loadtest".to_string()).chain(args(worker));
    let cli = Cli::try_parse_from(words).expect("the workers' arguments");
    assert!(cli.distributed.worker);
    assert_eq!(values["loadtest"]["locust_locustfile"], "locust_master.py");
}

#[test]
fn the_containerfile_builds_from_this_repository() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Containerfile")).expect("file");
    let stages: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .collect();
    assert_eq!(stages, ["build", "lva-loadtest", "locust-master"]);
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                Path::new(ROOT).join(source).exists(),
                "{source} of '{line}' is not in the repository"
            );
        }
    }
    // The images the manifests name are these stages'.
    for (manifest, image) in [
        ("workers.yaml", "lva-loadtest:"),
        ("manager.yaml", "lva-loadtest:"),
        ("locust-master.yaml", "lva-loadtest-locust-master:"),
    ] {
        let all = resources(manifest);
        let named = container(of_kind(&all, "Job"))["image"]
            .as_str()
            .unwrap_or("");
        assert!(named.contains(&format!("/{image}")), "{manifest}: {named}");
    }
    // The worker stage's default command is a worker's.
    let cmd = text
        .lines()
        .find(|l| l.starts_with("CMD [\"--worker\""))
        .expect("the worker stage's CMD");
    let words: Vec<String> = serde_json::from_str(cmd.trim_start_matches("CMD ")).expect("JSON");
    let cli =
        Cli::try_parse_from(std::iter::once("lva-loadtest".to_string()).chain(words)).expect("CMD");
    assert!(cli.distributed.worker);
}
