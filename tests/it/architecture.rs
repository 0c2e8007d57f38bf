//! The rule that keeps the module graph one way (docs/ARCHITECTURE.md): among the modules
//! of one parent (the crate's top-level modules, the files of one folder), the references
//! form no circle. A module may use its parent's items and its own children freely; what is
//! checked is every reference from one sibling to another, `use` lines, paths in code and
//! macros alike (comment lines aside). Checked in both crates of the workspace; and across
//! them, the graph runs one way too: the tool starts the reference server's program but
//! never links it, and the server knows nothing of the tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A module's path from the crate root: `["verdict", "targets"]`.
type ModPath = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a library file defines; `None` for the binaries' files.
fn module_of(file: &Path, src: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["main.rs"] {
        return None;
    }
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_string()),
    }
    Some(parts)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The path segments after every `prefix` in `code`: `crate::a::b::C` gives `[a, b, C]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        // `crate::` only as a whole word (`$crate::` counts: macros reference modules too).
        if before.is_some_and(|c| is_ident_char(c) && prefix == "crate::") {
            continue;
        }
        let mut segments = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail.find(|c: char| !is_ident_char(c)).unwrap_or(tail.len());
            if end == 0 {
                break;
            }
            segments.push(tail[..end].to_string());
            match tail[end..].strip_prefix("::") {
                Some(next) => tail = next,
                None => break,
            }
        }
        found.push(segments);
    }
    found
}

/// Every module a file refers to, resolved to the longest module path that exists.
fn references(code: &str, from: &ModPath, modules: &BTreeSet<ModPath>) -> BTreeSet<ModPath> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut targets = Vec::new();
    for segments in paths_after(&code, "crate::") {
        targets.push(segments);
    }
    // `super::` from a file is its parent module (a `mod.rs` file is its folder's module).
    for segments in paths_after(&code, "super::") {
        let mut base = from.clone();
        base.pop();
        let mut rest = segments.as_slice();
        while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
            base.pop();
            rest = tail;
        }
        base.extend(rest.iter().cloned());
        targets.push(base);
    }
    targets
        .into_iter()
        .filter_map(|mut path| {
            while !path.is_empty() && !modules.contains(&path) {
                path.pop();
            }
            (!path.is_empty()).then_some(path)
        })
        .collect()
}

/// A circle in `edges`, if there is one, as the list of modules around it.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut circle = stack[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(circle) = visit(next, edges, state, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node.as_str()) {
            let mut stack = Vec::new();
            if let Some(circle) = visit(node, edges, &mut state, &mut stack) {
                return Some(circle);
            }
        }
    }
    None
}

/// The `src` folders of the workspace's crates (the tool's and the reference server's), with
/// how many of their top-level modules at least reference a sibling: a check that the
/// references were found at all.
fn crate_sources() -> [(PathBuf, usize); 2] {
    [
        (Path::new(ROOT).join("src"), 10),
        (Path::new(ROOT).join("crates/lva-target/src"), 5),
    ]
}

/// Sibling edges of the crate in `src`, grouped by their common parent (`""` for the
/// crate's top level).
fn sibling_graphs(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut by_module = BTreeMap::new();
    for file in &files {
        if let Some(module) = module_of(file, src) {
            let code = std::fs::read_to_string(file).expect("readable source file");
            by_module.insert(module, code);
        }
    }
    let modules: BTreeSet<ModPath> = by_module.keys().cloned().collect();
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, code) in &by_module {
        for to in references(code, from, &modules) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // A reference to an ancestor's items or to one's own descendants is allowed.
            let (Some(a), Some(b)) = (from.get(common), to.get(common)) else {
                continue;
            };
            graphs
                .entry(from[..common].join("::"))
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert(b.clone());
        }
    }
    graphs
}

#[test]
fn the_module_graph_runs_one_way() {
    for (src, referencing) in crate_sources() {
        let graphs = sibling_graphs(&src);
        assert!(
            graphs.get("").is_some_and(|top| top.len() > referencing),
            "the top-level references of {} were not found: {graphs:?}",
            src.display()
        );
        let circles: Vec<String> = graphs
            .iter()
            .filter_map(|(parent, edges)| {
                let circle = find_circle(edges)?;
                let parent = if parent.is_empty() { "crate" } else { parent };
                Some(format!("in {parent}: {}", circle.join(" -> ")))
            })
            .collect();
        assert!(
            circles.is_empty(),
            "import circles in {}:\n{}",
            src.display(),
            circles.join("\n")
        );
    }
}

/// The names of the dependencies of one section (`dependencies`, `dev-dependencies`) of a
/// crate's manifest.
fn dependencies(manifest: &Path, section: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("readable manifest");
    let doc: toml::Table = text.parse().expect("a TOML manifest");
    doc.get(section)
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_crates_depend_one_way() {
    let tool = Path::new(ROOT).join("Cargo.toml");
    let server = Path::new(ROOT).join("crates/lva-target/Cargo.toml");
    // The tool runs the server's program; linking its code would rebuild the tool for every
    // change of the server. Its tests may start one in their own process.
    assert!(!dependencies(&tool, "dependencies").contains("lva-target"));
    assert!(dependencies(&tool, "dev-dependencies").contains("lva-target"));
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        assert!(!dependencies(&server, section).contains("lva-loadtest"));
    }
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("crates/lva-target"), &mut files);
    assert!(files.len() > 10, "the server's sources were not found");
    for file in files {
        let code = std::fs::read_to_string(&file).expect("readable source file");
        assert!(
            !code.contains("lva_loadtest"),
            "{} names the tool's crate",
            file.display()
        );
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            map.entry(a.to_string()).or_default().insert(b.to_string());
        }
        map
    };
    assert_eq!(
        find_circle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        find_circle(&edges(&[("a", "b"), ("a", "c"), ("b", "c")])),
        None
    );
    let modules: BTreeSet<ModPath> = [vec!["x".to_string()], vec!["x".into(), "y".into()]]
        .into_iter()
        .collect();
    let from = vec!["x".to_string(), "y".to_string()];
    assert_eq!(
        references("use super::Z;\nlet a = crate::x::y::f();", &from, &modules),
        [
            vec!["x".to_string()],
            vec!["x".to_string(), "y".to_string()]
        ]
        .into_iter()
        .collect()
    );
}
