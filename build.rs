//! Makes the version of Goose this build is linked with known to the reports
//! (`LVA_GOOSE_VERSION`), read from Cargo.lock; "unknown" when there is no lock file (a
//! build as another crate's dependency).

// Cargo reads a build script's directives from its stdout: println! is the interface here.
#![allow(clippy::disallowed_macros)]

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .and_then(|dir| std::fs::read_to_string(std::path::Path::new(&dir).join("Cargo.lock")).ok())
        .unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|entry| entry.lines().any(|l| l.trim() == "name = \"goose\""))
        .and_then(|entry| {
            entry
                .lines()
                .find_map(|l| l.trim().strip_prefix("version = "))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LVA_GOOSE_VERSION={version}");
}
