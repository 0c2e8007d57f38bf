//! Processes the tests start (the tool's binary, a Locust master), their output collected as
//! it comes, killed if a test ends before they do; and one lock so that the multi-process
//! tests run one at a time on a shared machine.

use super::BIN;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One distributed run at a time: each is five processes on a shared machine.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A process of the binary, its output collected as it comes; killed if the test ends
/// before it does.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    code: Option<i32>,
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut text = into.lock().unwrap_or_else(|p| p.into_inner());
            text.push_str(&line);
            text.push('\n');
        }
    })
}

impl Proc {
    /// Starts the tool's binary.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_program(name, Path::new(BIN), args, env)
    }

    /// Starts any program (a Locust master, an example built on the library).
    pub fn spawn_program(name: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(program);
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Proc::launch(name, command)
    }

    /// Starts a prepared command (a working directory of its own, say), its output piped.
    pub fn launch(name: &str, mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            readers,
            code: None,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn output(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Waits until stdout has a line containing `needle`; returns that line.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> String {
        self.wait_for_in(Self::stdout, needle, limit)
    }

    /// Waits until stderr has a line containing `needle` (Locust logs there).
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        self.wait_for_in(Self::stderr, needle, limit)
    }

    /// Waits until stdout or stderr has a line containing `needle`; returns that line.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        self.wait_for_in(|p| p.stdout() + &p.stderr(), needle, limit)
    }

    fn wait_for_in(&self, text: fn(&Proc) -> String, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = text(self).lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with '{needle}' within {limit:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code, once `wait` has seen the process end.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// Waits for the process to exit (at most `limit`); returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                let code = status.code().unwrap_or(-1);
                self.code = Some(code);
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU seconds the process has used so far (user + system), from /proc.
    pub fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name's closing parenthesis; utime and stime are the
        // 14th and 15th of the line.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        fields.iter().sum::<u64>() as f64 / ticks
    }

    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling a child process this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An example program of the crate, built beside the test binaries by `cargo test`.
pub fn example_bin(name: &str) -> std::path::PathBuf {
    super::commands::example_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The reference server on a free loopback port (fast bcrypt), and its URL.
pub fn reference_server() -> (Proc, String) {
    let server = Proc::spawn_program(
        "server",
        &super::server_bin(),
        &["--bind", "127.0.0.1:0", "--bcrypt-cost", "4"],
        &[],
    );
    let line = server.wait_for_line("listening on", Duration::from_secs(30));
    let url = line
        .rsplit(' ')
        .next()
        .expect("the server's URL")
        .to_string();
    (server, url)
}

/// The virtual environment of the Python tools the tests run (the pinned Locust and
/// kubernetes-validate of `scripts/test-requirements.txt`), made by `scripts/test_venv.sh`
/// if it is not there yet: nothing is skipped for want of it.
pub fn python_tools() -> &'static Path {
    static VENV: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("LVA_TEST_VENV")
            .map_or_else(|| root.join("target/test-venv"), std::path::PathBuf::from);
        let status = Command::new(root.join("scripts/test_venv.sh"))
            .arg(&dir)
            .status()
            .expect("run scripts/test_venv.sh");
        assert!(status.success(), "scripts/test_venv.sh failed");
        dir
    })
}

/// Every request in workers' `--request-log` files, as a histogram per request key.
pub fn logged_requests(
    paths: &[std::path::PathBuf],
) -> std::collections::BTreeMap<String, lva_loadtest::measure::Histogram> {
    let mut all = std::collections::BTreeMap::<String, lva_loadtest::measure::Histogram>::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let key = entry["key"].as_str().expect("key").to_string();
            all.entry(key)
                .or_default()
                .record(entry["us"].as_u64().expect("us"));
        }
    }
    all
}

/// Waits for a master and its workers to end: every worker with code 0; returns the
/// master's code.
pub fn master_and_workers_end(master: &mut Proc, workers: &mut [Proc]) -> i32 {
    let code = master.wait(Duration::from_secs(120));
    for w in workers.iter_mut() {
        assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.output());
    }
    code
}

/// Checks that a run of `examples/custom_user.rs` ran its class alone and merged its
/// `[study]` requests.
pub fn assert_study_run(metrics: &serde_json::Value) {
    assert_eq!(
        metrics["extra"]["user_classes"],
        serde_json::json!(["StudyUser"])
    );
    let rows = metrics["measured"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let study: u64 = rows
        .iter()
        .filter(|r| r["name"].as_str().is_some_and(|n| n.ends_with("[study]")))
        .filter_map(|r| r["times"]["count"].as_u64())
        .sum();
    assert!(study > 0, "no [study] request in {rows:?}");
}
