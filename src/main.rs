//! `lva-loadtest`: see the library's `app` module for the commands.

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(lva_loadtest::app::EXIT_CONFIG);
        }
    };
    let code = runtime.block_on(lva_loadtest::app::main_with_args(
        std::env::args().collect(),
    ));
    // Goose's threads may still linger; the verdict is final.
    std::process::exit(code);
}
