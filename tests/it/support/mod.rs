//! Helpers for the tool's integration tests: the tool's command lines and binaries, the
//! processes they run (the tool, the reference server, Locust), reading a run's metrics
//! JSON, the commands of the docs, and a headless browser.

pub mod browser;
pub mod commands;
pub mod process;
mod run;

pub use run::{Run, file_ending, free_port, http_get, metrics_in, run};

use serde_json::Value;

/// The measured row of request `key` ("METHOD name", e.g. `WS end→summary`) in a run's
/// metrics JSON.
pub fn request_row(metrics: &Value, key: &str) -> Option<Value> {
    metrics["measured"]["requests"]
        .as_array()?
        .iter()
        .find(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            ) == key
        })
        .cloned()
}

/// An open-model run's metrics JSON: `schedule` as given, `planned` arrivals all started,
/// and the Arrivals check passed.
pub fn assert_arrivals_started(metrics: &Value, schedule: &str, planned: u64) {
    let open = &metrics["open_model"];
    assert_eq!(open["schedule"], schedule, "{open}");
    assert_eq!(open["planned_arrivals"], planned, "{open}");
    assert_eq!(open["started_arrivals"], planned, "{open}");
    assert_eq!(metrics["targets"]["arrivals"]["passed"], true, "{open}");
}

/// The entries of `dir`, sorted (none when it cannot be read).
pub fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The tool's binary, as the integration tests run it.
pub const BIN: &str = env!("CARGO_BIN_EXE_lva-loadtest");

/// The reference server's binary, beside the tool's, where the tool finds it: `cargo test`
/// builds both (they are the workspace's default members).
pub fn server_bin() -> std::path::PathBuf {
    let bin = std::path::Path::new(BIN).with_file_name("lva-target");
    assert!(
        bin.is_file(),
        "{} is not built: `cargo test --release` in the project's root builds it",
        bin.display()
    );
    bin
}

/// A command line of the tool, built from its parts so the tests read as what they run:
/// `Args::custom(4, 4, "6s").tags("health")` is a 6-second custom run of 4 users started
/// at 4 a second doing health checks.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<String>);

impl Args {
    /// A run of a preset, with its own users, spawn rate and duration.
    pub fn preset(name: &str) -> Args {
        Args::default().with(&["--scenario", name])
    }

    /// A custom run: `users` users started at `spawn_rate` a second, for `duration`.
    pub fn custom(users: u32, spawn_rate: u32, duration: &str) -> Args {
        Args::preset("custom")
            .users(users)
            .spawn_rate(spawn_rate)
            .duration(duration)
    }

    pub fn users(self, users: u32) -> Args {
        self.with(&["--users", &users.to_string()])
    }

    pub fn spawn_rate(self, per_second: u32) -> Args {
        self.with(&["--spawn-rate", &per_second.to_string()])
    }

    pub fn duration(self, duration: &str) -> Args {
        self.with(&["--duration", duration])
    }

    pub fn tags(self, tags: &str) -> Args {
        self.with(&["--tags", tags])
    }

    pub fn exclude_tags(self, tags: &str) -> Args {
        self.with(&["--exclude-tags", tags])
    }

    /// Options for the built-in reference server (`--builtin-args`).
    pub fn builtin(self, options: &str) -> Args {
        self.with(&["--builtin-args", options])
    }

    /// Any other words, as they are.
    pub fn with(mut self, words: &[&str]) -> Args {
        self.0.extend(words.iter().map(|w| w.to_string()));
        self
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// A plain HTTP file server (Python's `http.server`) on an ephemeral port of 127.0.0.1,
/// serving an empty folder: HTML pages, 404 for every API path, 501 for POST. Stopped
/// when dropped.
pub struct FileServer {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl FileServer {
    pub fn start() -> FileServer {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        let stdout = child.stdout.take().expect("stdout");
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let line = std::io::BufReader::new(stdout)
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("no port in the file server's first line: {line:?}");
        };
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
