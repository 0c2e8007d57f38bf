//! `lva-target`: the reference Learning Voice Agent server.

use clap::Parser;
use std::process::ExitCode;

/// The reference Learning Voice Agent API server: SQLite storage, bcrypt passwords, signed
/// JWTs, per-client rate limits, GDPR export and deletion, WebSocket sessions, and faults and
/// flaws on options, for testing load tests against.
#[derive(Parser, Debug)]
#[command(name = "lva-target", version)]
struct Cli {
    #[command(flatten)]
    args: lva_target::ServerArgs,
}

fn main() -> ExitCode {
    // clap's own errors exit with 2, as a bad option should.
    lva_target::run(Cli::parse().args).into()
}
