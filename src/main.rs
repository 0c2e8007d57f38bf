//! `lva-loadtest`: see the library's `app` module for the commands.

fn main() {
    let args = std::env::args().collect();
    let exit = lva_loadtest::app::run(args, lva_loadtest::user_classes::builtin_classes());
    // The one place the outcome becomes the process's code. Goose's threads may still
    // linger; the verdict is final.
    std::process::exit(exit.code());
}
