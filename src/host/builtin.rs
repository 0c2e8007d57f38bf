//! The built-in reference server: the workspace's `lva-target` program, run as a child
//! process of the tool so that its CPU and memory are its own, on an ephemeral loopback port
//! with a temporary database.

use super::HostError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// The reference server running as a child process, so its CPU and memory are its own.
pub struct BuiltinServer {
    child: Child,
    pub url: Url,
    pub pid: u32,
    /// The server's database file, removed when it stops.
    db: PathBuf,
}

impl BuiltinServer {
    /// Starts `lva-target` on an ephemeral loopback port and reads the address from its
    /// first line.
    pub async fn start(extra_args: &[String]) -> Result<BuiltinServer, HostError> {
        let exe = server_program()?;
        // A database file rather than memory: data the run stores then lives on disk, so
        // the server's memory trend shows leaks, not the test's own data piling up.
        let db = std::env::temp_dir().join(format!("lva-target-{}.sqlite", std::process::id()));
        let mut command = Command::new(exe);
        // The tool's own settings, each left out where the user's `--builtin-args` give
        // that option: the user's value wins (the server takes an option only once).
        let given = |option: &str| {
            extra_args
                .iter()
                .any(|a| a == option || a.starts_with(&format!("{option}=")))
        };
        let defaults = [("--bind", "127.0.0.1:0"), ("--bcrypt-cost", "4")];
        for (option, value) in defaults {
            if !given(option) {
                command.args([option, value]);
            }
        }
        // It never outlives the tool, even one killed with SIGKILL.
        if !given("--exit-with-parent") {
            command.arg("--exit-with-parent");
        }
        // Its own process group: a Ctrl-C at the terminal stops the tool, which then
        // cleans up its accounts on this server before stopping it.
        command.process_group(0);
        if !given("--db") {
            command.arg("--db").arg(&db);
            if !given("--temporary-db") {
                command.arg("--temporary-db");
            }
        }
        let mut child = command
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HostError::Builtin(format!("could not start it: {e}")))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HostError::Builtin("no output from it".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                let hint = if status.and_then(|s| s.code()) == Some(2) {
                    " (check --builtin-args)"
                } else {
                    ""
                };
                return Err(HostError::Builtin(format!(
                    "it exited before listening{hint}"
                )));
            }
            Ok(Err(e)) => return Err(HostError::Builtin(format!("reading its output: {e}"))),
            Err(_) => return Err(HostError::Builtin("it did not listen within 15 s".into())),
        };
        let url = line
            .rsplit(' ')
            .next()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| HostError::Builtin(format!("unexpected first line '{line}'")))?;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(BuiltinServer {
            child,
            url,
            pid,
            db,
        })
    }

    /// Asks it to stop (SIGTERM), and kills it if it has not within a few seconds.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        remove_database(&self.db);
    }
}

/// The environment variable that names the reference server's program, for a tool installed
/// apart from it.
pub const PROGRAM_VAR: &str = "LVA_TARGET";

/// Where the reference server's program is: `$LVA_TARGET`, else `lva-target` beside this
/// program (or one folder up, where cargo puts examples and test binaries), else on `PATH`.
fn server_program() -> Result<PathBuf, HostError> {
    if let Some(path) = std::env::var_os(PROGRAM_VAR) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HostError::Builtin(format!(
                "{PROGRAM_VAR} names {}, which is not a file",
                path.display()
            )))
        };
    }
    let name = format!("lva-target{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?.to_path_buf();
        [dir.join(&name), dir.parent()?.join(&name)]
            .into_iter()
            .find(|p| p.is_file())
    });
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
    };
    beside.or_else(on_path).ok_or_else(|| {
        HostError::Builtin(format!(
            "its program `{name}` is not beside this one, nor on PATH: build both with \
             `cargo build --release` in the project's folder (or `cargo install --path \
             crates/lva-target`), set {PROGRAM_VAR}=PATH, or test a server of your own with \
             --host URL"
        ))
    })
}

/// Removes an SQLite database file and its journal files.
fn remove_database(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}
