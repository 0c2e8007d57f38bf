//! A finished run of the tool and what it left: its files, its metrics JSON.

use super::{Args, BIN, files_in, request_row};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file of `dir` whose name ends with `suffix`.
pub fn file_ending(dir: &Path, suffix: &str) -> Option<PathBuf> {
    files_in(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

/// The metrics JSON a run wrote into `dir`, parsed; `context` (what the run printed) is shown
/// when there is none.
pub fn metrics_in(dir: &Path, context: &str) -> Value {
    let path = file_ending(dir, "_metrics.json").unwrap_or_else(|| {
        panic!(
            "no metrics JSON among {:?}; the run printed:\n{context}",
            files_in(dir)
        )
    });
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The tool run to its end with its outputs in a folder of its own.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

/// Runs the tool with `args`, its outputs in a new temporary folder.
pub fn run(args: &Args) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    // A subcommand (`capacity`) comes first, its options after it.
    let words = args.words();
    let (command, options) = match words.first() {
        Some(first) if !first.starts_with('-') => (&words[..1], &words[1..]),
        _ => (&words[..0], words),
    };
    let output = Command::new(BIN)
        .args(command)
        .arg("--output")
        .arg(dir.path())
        .args(options)
        .output()
        .expect("run lva-loadtest");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        dir,
    }
}

impl Run {
    /// What the run printed, both streams.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn files(&self) -> Vec<PathBuf> {
        files_in(self.dir.path())
    }

    pub fn file_ending(&self, suffix: &str) -> Option<PathBuf> {
        file_ending(self.dir.path(), suffix)
    }

    /// The file whose name ends with `suffix`, which the run must have written.
    pub fn file(&self, suffix: &str) -> PathBuf {
        self.file_ending(suffix).unwrap_or_else(|| {
            panic!(
                "no {suffix} file among {:?}; the run printed:\n{}",
                self.files(),
                self.output()
            )
        })
    }

    /// The tool's own HTML report (not Goose's, not one `validate` wrote).
    pub fn report(&self) -> PathBuf {
        self.files()
            .into_iter()
            .find(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".html") && !name.contains("_goose") && !name.contains("_validated")
            })
            .unwrap_or_else(|| panic!("no HTML report; the run printed:\n{}", self.output()))
    }

    /// The metrics JSON the run wrote.
    pub fn metrics(&self) -> Value {
        metrics_in(self.dir.path(), &self.output())
    }

    /// Request key ("METHOD name") → its measured row.
    pub fn request(&self, key: &str) -> Option<Value> {
        request_row(&self.metrics(), key)
    }

    /// The keys ("METHOD name") of every measured request.
    pub fn keys(&self) -> Vec<String> {
        self.metrics()["measured"]["requests"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            r["method"].as_str().unwrap_or(""),
                            r["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0: the body is all that follows the headers).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}
