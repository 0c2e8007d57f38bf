//! `lva-target`: the reference Learning Voice Agent server.

use std::process::ExitCode;

use clap::Parser;
use lva_loadtest::target::{TargetArgs, serve_until_signal};

/// Reference server implementing the Learning Voice Agent API.
#[derive(Parser, Debug)]
#[command(name = "lva-target", version, about)]
struct Cli {
    #[command(flatten)]
    args: TargetArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lva-target: {e}");
            return ExitCode::from(2);
        }
    };
    match serve_until_signal(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lva-target: {e}");
            ExitCode::FAILURE
        }
    }
}
