//! The docs cannot drift from the tool: every command in a `bash runnable` block of the
//! README, `docs/` and `ci/` runs (load runs shortened) and exits as the doc says;
//! every other project command in a `bash` block parses against the tool's options; every
//! relative link leads to a file. docs/README.md describes the convention.

use crate::support::commands::{BIN, Invocation, ROOT};
use clap::Parser;
use lva_loadtest::cli::Cli;
use lva_loadtest::plan::Plan;
use lva_loadtest::user_classes::{UserClass, builtin_classes};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a shortened run may take, start-up and report writing included.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A fenced code block of a Markdown file.
struct Block {
    file: PathBuf,
    /// The line of the opening fence, from 1.
    line: usize,
    info: String,
    body: String,
}

impl Block {
    fn is_bash(&self) -> bool {
        matches!(self.info.split_whitespace().next(), Some("bash" | "sh"))
    }

    fn is_runnable(&self) -> bool {
        self.is_bash() && self.info.split_whitespace().any(|w| w == "runnable")
    }

    fn place(&self) -> String {
        format!(
            "{}:{}",
            self.file.strip_prefix(ROOT).unwrap_or(&self.file).display(),
            self.line
        )
    }
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut files = vec![root.join("README.md"), root.join("ci/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).expect("read doc");
    let mut found = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (None, true) => {
                let info = line.trim_start().trim_start_matches('`').trim().to_string();
                open = Some((i + 1, info, String::new()));
            }
            (Some(_), true) => {
                if let Some((line, info, body)) = open.take() {
                    found.push(Block {
                        file: file.to_path_buf(),
                        line,
                        info,
                        body,
                    });
                }
            }
            (Some((_, _, body)), false) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, false) => {}
        }
    }
    assert!(
        open.is_none(),
        "{}: a code block is never closed",
        file.display()
    );
    found
}

fn all_blocks() -> Vec<Block> {
    doc_files().iter().flat_map(|f| blocks(f)).collect()
}

/// How long a shortened load run lasts: 5 s, or 20 s when the rate-limit user runs, so
/// that the limiter has engaged before the rate-limiting target is judged. `None` when
/// `args` (the tool's own) do not start a load test (list, help, validate).
fn shortened_duration(args: &[String], classes: Vec<UserClass>) -> Option<&'static str> {
    let words = std::iter::once("lva-loadtest".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(words).ok()?;
    if cli.command.is_some() || cli.run.list_presets {
        return None;
    }
    match Plan::resolve(&cli.run, classes) {
        Ok(plan) if plan.facts().rate_limit_traffic => Some("20s"),
        // A plan that does not resolve is run as it is: its error is what the doc shows.
        _ => Some("5s"),
    }
}

fn with_example_classes() -> Vec<UserClass> {
    let mut classes = builtin_classes();
    classes.push(crate::custom_user::study_user());
    classes
}

/// The program to run for a documented command, with its arguments shortened; `None` for a
/// command the check skips (`cargo test`, `cargo build`).
fn runnable(inv: &Invocation, output: &Path) -> Result<Option<Command>, String> {
    let shorten = |args: &[String], duration: Option<&str>| {
        let mut args = args.to_vec();
        if let Some(duration) = duration {
            let out = output.to_string_lossy();
            crate::support::commands::set_option(&mut args, "--duration", Some("-d"), duration);
            crate::support::commands::set_option(&mut args, "--output", Some("-o"), &out);
        }
        args
    };
    let command = |program: PathBuf, args: Vec<String>| {
        let mut c = Command::new(program);
        c.args(args).current_dir(ROOT);
        c
    };
    Ok(Some(match inv {
        Invocation::Tool(args) => command(
            BIN.into(),
            shorten(args, shortened_duration(args, builtin_classes())),
        ),
        Invocation::Example { name, args } => command(
            crate::support::commands::example_bin(name)?,
            shorten(args, shortened_duration(args, with_example_classes())),
        ),
        Invocation::Script(args) => {
            let translated = crate::support::commands::script_translation(args)?;
            let mut c = command(
                Path::new(ROOT).join("scripts/run_load_tests.sh"),
                shorten(args, shortened_duration(&translated, builtin_classes())),
            );
            c.env("LVA_LOADTEST_BIN", BIN);
            c
        }
        Invocation::Target(_) => {
            return Err("a server runs until stopped: do not mark it runnable".into());
        }
        Invocation::Cargo(_) => return Ok(None),
    }))
}

/// Runs `command` to its end, within [`RUN_LIMIT`]; returns its exit code and output.
fn run_bounded(mut command: Command) -> Result<(i32, String), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = dir.path().join("output");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(status) => Ok((status.code().unwrap_or(-1), output)),
        None => Err(format!(
            "still running after {}s:\n{output}",
            RUN_LIMIT.as_secs()
        )),
    }
}

/// A documented command, ready to run.
struct Job {
    place: String,
    shown: String,
    command: Command,
    expected: i32,
    /// Holds the run's output directory until the run is over.
    _output: tempfile::TempDir,
}

#[test]
fn runnable_commands_run_as_documented() {
    let blocks: Vec<Block> = all_blocks()
        .into_iter()
        .filter(Block::is_runnable)
        .collect();
    assert!(
        blocks.iter().any(|b| b.file.ends_with("README.md")),
        "the README's first commands are not marked runnable"
    );
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for block in &blocks {
        let found = crate::support::commands::invocations(&block.body)
            .unwrap_or_else(|e| panic!("{}: {e}", block.place()));
        for (inv, comment) in found {
            if !seen.insert(format!("{inv:?}")) {
                continue;
            }
            let output = tempfile::tempdir().expect("temp dir");
            match runnable(&inv, output.path()) {
                Ok(Some(command)) => jobs.push(Job {
                    place: block.place(),
                    shown: format!("{command:?}"),
                    command,
                    expected: crate::support::commands::expected_exit_code(comment.as_deref()),
                    _output: output,
                }),
                Ok(None) => {}
                Err(e) => failures.push(format!("{}: {inv:?}: {e}", block.place())),
            }
        }
    }
    let ran = jobs.len();
    // The runs are light (a few users against their own server each): run them together.
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                scope.spawn(move || {
                    let result = run_bounded(job.command);
                    (job.place, job.shown, job.expected, result)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    assert_eq!(results.len(), ran, "a run's thread panicked");
    for (place, shown, expected, result) in results {
        match result {
            Ok((code, _)) if code == expected => {}
            Ok((code, log)) => failures.push(format!(
                "{place}: {shown} exited {code}, the doc says {expected}:\n{log}"
            )),
            Err(e) => failures.push(format!("{place}: {shown}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 5, "only {ran} runnable commands in the docs");
}

#[test]
fn every_project_command_in_the_docs_parses() {
    let extra = [crate::custom_user::study_user()];
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in all_blocks().iter().filter(|b| b.is_bash()) {
        let found = crate::support::commands::invocations(&block.body)
            .unwrap_or_else(|e| panic!("{}: {e}", block.place()));
        for (inv, _) in found {
            checked += 1;
            if let Err(e) = crate::support::commands::check(&inv, &extra) {
                failures.push(format!("{}: {inv:?}: {e}", block.place()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 10, "only {checked} commands in the docs");
}

/// `[text](target)` targets of a Markdown text.
fn link_targets(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|t| t.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn relative_links_lead_to_files() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        for target in link_targets(&text) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().unwrap_or(Path::new(ROOT)).join(path);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert_eq!(
        link_targets("see [a](docs/A.md#x) and [b](https://b.example) (c)"),
        ["docs/A.md#x", "https://b.example"]
    );
}

/// The paths `text` names in backticks: spans of path characters that hold a `/` (not at
/// their start) or end in a file extension (`src/plan/limits.rs`, `html/svg.rs`, `src/probes/<probe>.rs`).
fn named_paths(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./<>".contains(c);
    text.split('`')
        .skip(1)
        .step_by(2)
        // A span from `/` is a route of the API (`/health`), not a file.
        .filter(|span| !span.starts_with('/') && span.chars().all(is_path_char))
        .filter(|span| {
            span.contains('/')
                || [".rs", ".md", ".toml", ".css", ".py", ".sh"]
                    .iter()
                    .any(|ext| span.ends_with(ext))
        })
        .map(str::to_string)
        .collect()
}

/// True when `path` (below `base`) exists; a `<name>` segment stands for any file of the
/// folder with the same ending (`src/probes/<probe>.rs`: some `.rs` file in `src/probes/`).
fn exists_below(base: &Path, path: &str) -> bool {
    let Some((folder, file)) = path.rsplit_once('/').filter(|(_, f)| f.starts_with('<')) else {
        return base.join(path).exists();
    };
    let ending = file.rsplit_once('>').map_or("", |(_, e)| e);
    std::fs::read_dir(base.join(folder)).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(ending))
    })
}

/// Where a path named in ARCHITECTURE.md leads: from the project's root, or (a short one,
/// like `csv.rs` after `src/report/console.rs`) from the folder of the last path named
/// from the root on the same line or one of that folder's parents. `None` when nowhere.
fn resolve_named(path: &str, last_full: Option<&str>) -> Option<PathBuf> {
    let root = Path::new(ROOT);
    if exists_below(root, path) {
        return Some(root.join(path));
    }
    let last_full = last_full?;
    let mut folder = match last_full.strip_suffix('/') {
        Some(dir) => Some(Path::new(dir)),
        None => Path::new(last_full).parent(),
    };
    while let Some(dir) = folder.filter(|d| !d.as_os_str().is_empty()) {
        if exists_below(&root.join(dir), path) {
            return Some(root.join(dir).join(path));
        }
        folder = dir.parent();
    }
    None
}

#[test]
fn every_path_the_architecture_names_exists() {
    let file = Path::new(ROOT).join("docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(&file).expect("read docs/ARCHITECTURE.md");
    let mut missing = Vec::new();
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        let mut last_full: Option<String> = None;
        for path in named_paths(line) {
            checked += 1;
            match resolve_named(&path, last_full.as_deref()) {
                Some(found) if found == Path::new(ROOT).join(&path) => last_full = Some(path),
                Some(_) => {}
                None => missing.push(format!("docs/ARCHITECTURE.md:{}: `{path}`", i + 1)),
            }
        }
    }
    // The flow's drawing names each step's module below `src/` (`plan/`, `conclude.rs`).
    for block in blocks(&file).iter().filter(|b| b.info.is_empty()) {
        for word in block
            .body
            .split(|c: char| c.is_whitespace() || "(),".contains(c))
        {
            if word.ends_with(".rs") || word.ends_with('/') {
                checked += 1;
                if !Path::new(ROOT).join("src").join(word).exists() {
                    missing.push(format!("{}: `{word}` is not in src/", block.place()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named in docs/ARCHITECTURE.md that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(
        checked >= 40,
        "only {checked} paths found in ARCHITECTURE.md"
    );
    assert_eq!(
        named_paths("`a/b.rs`, `Probe::check`, `html/`, `/health`, `x y`, `clippy.toml`"),
        ["a/b.rs", "html/", "clippy.toml"]
    );
}
