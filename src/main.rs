//! `lva-loadtest`: see the library's `app` module for the commands.

use lva_loadtest::exit::Exit;
use std::io::Write;

fn main() {
    let exit = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(lva_loadtest::app::main_with_args(
            std::env::args().collect(),
        )),
        Err(e) => {
            // Not a panic if stderr is closed.
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            Exit::Config
        }
    };
    // The one place the outcome becomes the process's code. Goose's threads may still
    // linger; the verdict is final.
    std::process::exit(exit.code());
}
