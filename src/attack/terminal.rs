//! The terminal during a run: the progress line redrawn in place, with the cursor left on
//! the line below it so that a line something else prints lands on its own line, and the
//! tool's own messages printed around it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// A progress line is on the terminal, the cursor on the line below it.
static DRAWN: AtomicBool = AtomicBool::new(false);

pub(super) fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Draws `line` in place of the previous progress line (a terminal), or prints it.
pub(super) fn draw(line: &str) {
    let mut err = std::io::stderr().lock();
    if on_terminal() {
        let up = if DRAWN.swap(true, Ordering::Relaxed) {
            "\x1b[1A"
        } else {
            ""
        };
        let _ = write!(err, "{up}\r\x1b[2K{line}\n");
    } else {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.flush();
}

/// Prints a message of the tool's during the run, on its own line, under the progress line.
pub(super) fn say(message: &str) {
    DRAWN.store(false, Ordering::Relaxed);
    eprintln!("{message}");
}

/// From now on, what is printed goes below the last progress line, which stays.
pub(super) fn leave_line() {
    DRAWN.store(false, Ordering::Relaxed);
}
