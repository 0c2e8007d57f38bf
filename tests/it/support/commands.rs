//! Command lines as the docs and the CI files show them: split into words as a shell would,
//! recognised as one of the tool's commands, and checked with the tool's own parsers (or
//! rewritten to a short run).

#![allow(dead_code)]

use clap::Parser;
use lva_loadtest::cli::{Cli, Command};
use lva_loadtest::plan::Plan;
use lva_loadtest::user_classes::{UserClass, builtin_classes};
use lva_target::ServerArgs;
use std::path::{Path, PathBuf};

pub const BIN: &str = env!("CARGO_BIN_EXE_lva-loadtest");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Joins lines continued with a trailing backslash.
pub fn logical_lines(script: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim_end();
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

/// A shell line: its simple commands (split at `;`, `&&`, `||`, `|` and `&`) and the
/// comment it ends with.
#[derive(Debug, Default, PartialEq)]
pub struct Line {
    pub commands: Vec<Vec<String>>,
    pub comment: Option<String>,
}

/// Splits a line into words with the shell's quoting: single quotes, double quotes with
/// backslash escapes, backslash escapes outside quotes, `#` starting a word begins a
/// comment. Redirections (`>x`, `2>&1`, `>/dev/null`) are dropped. Expansions are kept as
/// written.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let mut out = Line::default();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unclosed ' in: {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err(format!("unclosed \" in: {line}")),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unclosed \" in: {line}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    word.push(ch);
                }
            }
            '#' if !in_word => {
                out.comment = Some(chars.collect::<String>().trim().to_string());
                break;
            }
            ';' | '&' | '|' => {
                // `2>&1`: part of a redirection, not a separator.
                if c == '&' && word.ends_with('>') {
                    word.push(c);
                    continue;
                }
                end_word(&mut word, &mut in_word, &mut words);
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                out.commands.push(std::mem::take(&mut words));
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut words),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut words);
    out.commands.push(words);
    for command in &mut out.commands {
        drop_redirections(command);
    }
    out.commands.retain(|c| !c.is_empty());
    Ok(out)
}

fn drop_redirections(words: &mut Vec<String>) {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for w in words.drain(..) {
        if skip_next {
            skip_next = false;
            continue;
        }
        let body = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if body.starts_with('>') || body.starts_with('<') {
            // `>` alone takes the next word as its file.
            skip_next = body.trim_start_matches(['>', '<', '&']).is_empty() && !body.contains('&');
            continue;
        }
        kept.push(w);
    }
    *words = kept;
}

/// A command of this project, as a doc or a CI file runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `cargo run --release -- ARGS`, `lva-loadtest ARGS`, `./target/release/lva-loadtest ARGS`.
    Tool(Vec<String>),
    /// `cargo run --release --example NAME -- ARGS`.
    Example { name: String, args: Vec<String> },
    /// `./scripts/run_load_tests.sh ARGS`.
    Script(Vec<String>),
    /// `lva-target ARGS`, `./target/release/lva-target ARGS`, `cargo run --bin lva-target -- ARGS`.
    Target(Vec<String>),
    /// Any other cargo command (`cargo test`, `cargo build`): the words after `cargo`.
    Cargo(Vec<String>),
}

/// Recognises the project's commands; `None` for anything else (`curl`, `sleep`...).
pub fn invocation(words: &[String]) -> Option<Invocation> {
    let (program, args) = words.split_first()?;
    let args = args.to_vec();
    let name = program.rsplit('/').next().unwrap_or(program);
    match name {
        "lva-loadtest" => Some(Invocation::Tool(args)),
        "lva-target" => Some(Invocation::Target(args)),
        "run_load_tests.sh" => Some(Invocation::Script(args)),
        "cargo" if args.first().map(String::as_str) == Some("run") => {
            let split = args.iter().position(|a| a == "--");
            let (cargo_flags, tool_args) = match split {
                Some(i) => (&args[1..i], args[i + 1..].to_vec()),
                None => (&args[1..], Vec::new()),
            };
            let value_of = |flag: &str| {
                cargo_flags
                    .iter()
                    .position(|a| a == flag)
                    .and_then(|i| cargo_flags.get(i + 1))
                    .cloned()
            };
            match (value_of("--example"), value_of("--bin").as_deref()) {
                (Some(name), _) => Some(Invocation::Example {
                    name,
                    args: tool_args,
                }),
                (None, Some("lva-target")) => Some(Invocation::Target(tool_args)),
                _ => Some(Invocation::Tool(tool_args)),
            }
        }
        "cargo" => Some(Invocation::Cargo(args)),
        _ => None,
    }
}

/// Every project command in a shell script, with its line's comment.
pub fn invocations(script: &str) -> Result<Vec<(Invocation, Option<String>)>, String> {
    let mut found = Vec::new();
    for line in logical_lines(script) {
        let parsed = parse_line(&line)?;
        for words in &parsed.commands {
            if let Some(inv) = invocation(words) {
                found.push((inv, parsed.comment.clone()));
            }
        }
    }
    Ok(found)
}

fn with_program(program: &str, args: &[String]) -> Vec<String> {
    std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .collect()
}

/// Parses `args` as `lva-loadtest` does and, for a load run, resolves its plan with
/// `classes` (scenario, tags, durations, host, targets): what the tool checks before any
/// traffic. `--help` and `--version` pass.
pub fn check_tool_args(args: &[String], classes: Vec<UserClass>) -> Result<(), String> {
    let cli = match Cli::try_parse_from(with_program("lva-loadtest", args)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    match cli.command {
        Some(Command::Validate(v)) => v.targets.resolve().map(|_| ()).map_err(|e| e.to_string()),
        Some(Command::LocustClasses(a)) => {
            lva_loadtest::distributed::declare::declare(&a, &classes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Some(Command::Merge(m)) => m.targets.resolve().map(|_| ()).map_err(|e| e.to_string()),
        Some(Command::Capacity(c)) => lva_loadtest::app::capacity_plan(&c).and_then(|(_, run)| {
            Plan::resolve(&run, classes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        None if cli.run.list_presets => Ok(()),
        None => Plan::resolve(&cli.run, classes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// `lva-target`'s own command line.
#[derive(Parser)]
struct TargetCli {
    #[command(flatten)]
    args: ServerArgs,
}

pub fn check_target_args(args: &[String]) -> Result<(), String> {
    match TargetCli::try_parse_from(with_program("lva-target", args)) {
        Ok(cli) => cli
            .args
            .into_config()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) if !e.use_stderr() => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// What `scripts/run_load_tests.sh` passes to the tool for `args`: the script runs with a
/// stand-in for the binary that records its arguments. `Err` holds the script's refusal.
pub fn script_translation(args: &[String]) -> Result<Vec<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let recorder = dir.path().join("record-args");
    let out = dir.path().join("args");
    std::fs::write(
        &recorder,
        "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$RECORD_ARGS_TO\"\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let output = std::process::Command::new(Path::new(ROOT).join("scripts/run_load_tests.sh"))
        .args(args)
        .env("LVA_LOADTEST_BIN", &recorder)
        .env("RECORD_ARGS_TO", &out)
        .output()
        .map_err(|e| format!("cannot run the script: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "run_load_tests.sh {} exited {:?}: {}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let recorded = std::fs::read(&out).map_err(|e| format!("the script ran no tool: {e}"))?;
    Ok(recorded
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect())
}

/// Checks a project command's flags and values without running it. Examples are checked
/// with the built-in classes plus `extra_classes` (the example's own).
pub fn check(inv: &Invocation, extra_classes: &[UserClass]) -> Result<(), String> {
    match inv {
        Invocation::Tool(args) => check_tool_args(args, builtin_classes()),
        Invocation::Example { name, args } => {
            if !Path::new(ROOT)
                .join("examples")
                .join(format!("{name}.rs"))
                .exists()
            {
                return Err(format!("there is no example {name}"));
            }
            let mut classes = builtin_classes();
            classes.extend(extra_classes.iter().cloned());
            check_tool_args(args, classes)
        }
        Invocation::Script(args) => check_tool_args(&script_translation(args)?, builtin_classes()),
        Invocation::Target(args) => check_target_args(args),
        Invocation::Cargo(_) => Ok(()),
    }
}

/// The built example `name`, beside this test's own profile directory
/// (`target/release/examples/NAME` under `cargo test --release`, which builds examples).
pub fn example_bin(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no profile directory above the test binary")?;
    let bin = profile_dir.join("examples").join(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is not built: `cargo test --release` builds the examples, or run `cargo build --release --example {name}`",
            bin.display()
        ))
    }
}

/// The exit code a doc's comment announces with "exit code N"; 0 otherwise.
pub fn expected_exit_code(comment: Option<&str>) -> i32 {
    comment
        .and_then(|c| c.split("exit code ").nth(1))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Sets `flag` to `value` in `args` (long or short form), adding it when absent; a
/// `--` (Goose's options) stays last.
pub fn set_option(args: &mut Vec<String>, long: &str, short: Option<&str>, value: &str) {
    let is_flag = |a: &String| a == long || short.is_some_and(|s| a == s);
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    if let Some(i) = args[..end].iter().position(is_flag)
        && i + 1 < end
    {
        args[i + 1] = value.to_string();
        return;
    }
    if let Some(i) = args[..end]
        .iter()
        .position(|a| a.starts_with(&format!("{long}=")))
    {
        args[i] = format!("{long}={value}");
        return;
    }
    args.insert(end, value.to_string());
    args.insert(end, long.to_string());
}

#[test]
fn lines_split_like_a_shell() {
    let line = parse_line(
        r#"./x --a "b c" 'd e' f\ g >/dev/null 2>&1 && curl -fsS u & # note: exit code 1"#,
    )
    .expect("parses");
    assert_eq!(
        line.commands,
        vec![
            vec!["./x", "--a", "b c", "d e", "f g"],
            vec!["curl", "-fsS", "u"]
        ]
    );
    assert_eq!(expected_exit_code(line.comment.as_deref()), 1);
    assert_eq!(
        logical_lines("a \\\n  b\nc"),
        vec!["a    b".to_string(), "c".to_string()]
    );
    let mut args = vec!["-d".to_string(), "1m".to_string(), "--".to_string()];
    set_option(&mut args, "--duration", Some("-d"), "5s");
    set_option(&mut args, "--output", Some("-o"), "/tmp/x");
    assert_eq!(args, ["-d", "5s", "--output", "/tmp/x", "--"]);
    assert_eq!(
        invocation(
            &[
                "cargo",
                "run",
                "--release",
                "--example",
                "e",
                "--",
                "--tags",
                "t"
            ]
            .map(String::from)
        ),
        Some(Invocation::Example {
            name: "e".into(),
            args: vec!["--tags".into(), "t".into()]
        })
    );
}
