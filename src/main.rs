//! `lva-loadtest`: see the library's `app` module for the commands.

use lva_loadtest::exit::Exit;
use std::io::Write;

fn main() {
    let exit = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(lva_loadtest::attack::coalesce_timers)
        .build()
    {
        // The command runs as a task on the runtime's workers, as the simulated users do:
        // the main thread only waits for it, so nothing the run does wakes it (a future
        // given to `block_on` runs on the main thread, and each of its wake-ups would cross
        // threads).
        Ok(runtime) => runtime.block_on(async {
            let command = lva_loadtest::app::main_with_args(std::env::args().collect());
            match tokio::spawn(command).await {
                Ok(exit) => exit,
                // A panic stays a panic, as it was on the main thread.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "error: the command's task was cancelled: {e}"
                    );
                    Exit::Failed
                }
            }
        }),
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
