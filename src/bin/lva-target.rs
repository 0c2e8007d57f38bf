//! `lva-target`: the reference Learning Voice Agent server.

use clap::Parser;
use lva_loadtest::reference_server::{self, ServerArgs};
use std::process::ExitCode;

/// The reference Learning Voice Agent API server: SQLite storage, bcrypt passwords, signed
/// JWTs, per-client rate limits, GDPR export and deletion, WebSocket sessions, and faults and
/// flaws on options, for testing load tests against.
#[derive(Parser, Debug)]
#[command(name = "lva-target", version)]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    reference_server::main(Cli::parse().args).await.into()
}
