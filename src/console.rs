//! The tool's lines on the console. `println!` panics when stdout is closed (the output piped
//! into `head`, a terminal gone), which would end a run that is still measuring and lose its
//! files; [`outln!`] and [`errln!`] write the same lines and drop the ones nobody can read.
//!
//! During a run, a progress line (one run's or the manager's) is redrawn in place on a
//! terminal, with the cursor left on the line below it so that a line something else prints
//! lands on its own line, and the tool's own messages printed around it.

/// `println!` that drops the line when stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that drops the line when stderr is closed.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// A progress line is on the terminal, the cursor on the line below it.
static DRAWN: AtomicBool = AtomicBool::new(false);

pub(crate) fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Draws `line` in place of the previous progress line (a terminal), or prints it.
pub(crate) fn draw(line: &str) {
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
pub(crate) fn say(message: &str) {
    DRAWN.store(false, Ordering::Relaxed);
    errln!("{message}");
}

/// From now on, what is printed goes below the last progress line, which stays.
pub(crate) fn leave_line() {
    DRAWN.store(false, Ordering::Relaxed);
}

/// Keeps stdout writable for the whole process while it is a pipe. A pipe whose reader is
/// gone (`| head`, or `| tee log` killed by the same Ctrl-C that stops the run) makes every
/// later write fail, and `println!` in a dependency (Goose prints when its users are
/// launched) would panic and lose the run. Here fd 1 becomes a pipe of our own, always read:
/// a thread passes its bytes on to the real stdout while that is open and drops them after.
/// Terminals and files are left as they are: their writes do not fail that way.
pub struct StdoutRelay {
    thread: std::thread::JoinHandle<()>,
}

/// Starts the relay when stdout is a pipe or a socket; `None` otherwise or when it cannot
/// be set up (stdout is then used as it is).
pub fn relay_stdout() -> Option<StdoutRelay> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: fstat fills the zeroed buffer it is given, for a descriptor number.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(1, &mut stat) } != 0 {
        return None;
    }
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return None;
    }
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let (from, into) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // SAFETY: duplicating fd 1 to a new descriptor we then own.
    let original = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if original < 0 {
        return None;
    }
    let original = unsafe { OwnedFd::from_raw_fd(original) };
    let thread = std::thread::Builder::new()
        .name("stdout-relay".into())
        .spawn(move || pass_on(std::fs::File::from(from), std::fs::File::from(original)))
        .ok()?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = out.flush();
    // SAFETY: fd 1 now writes into our pipe; `into` closes its own copy when dropped. If
    // this fails, the thread sees the end of the pipe at once and stdout is unchanged.
    unsafe { libc::dup2(into.as_raw_fd(), 1) };
    Some(StdoutRelay { thread })
}

/// Copies the pipe to the real stdout until the pipe ends, dropping what cannot be written.
fn pass_on(mut from: std::fs::File, mut to: std::fs::File) {
    use std::io::Read;
    let mut buffer = [0u8; 8192];
    let mut open = true;
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => open = open && to.write_all(&buffer[..n]).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl StdoutRelay {
    /// Passes on everything written so far, then points stdout at /dev/null: call it last.
    /// Waits at most 2 s (a child process that inherited stdout would hold the pipe open).
    pub fn finish(self) {
        let _ = std::io::stdout().lock().flush();
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: replaces fd 1 with /dev/null; the pipe's last writer closes with it.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}
