//! How a command ends: the tool's three exit codes, as one type.
//!
//! Everything below the commands returns an [`Exit`]; `main` turns it into the process's
//! code, once.

/// The outcome of a command, as the exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Every target met (and, for other commands, success).
    Passed,
    /// A target missed, a run interrupted, or the outputs could not be written.
    Failed,
    /// A configuration error: bad options or targets, an unreachable host. No traffic was
    /// sent, or it was stopped before it was measured.
    Config,
}

impl Exit {
    /// The process exit code: 0, 1 or 2.
    pub fn code(self) -> i32 {
        match self {
            Exit::Passed => 0,
            Exit::Failed => 1,
            Exit::Config => 2,
        }
    }

    /// Prints a configuration error (bad input, and the way out) and gives its exit.
    pub fn config_error(e: impl std::fmt::Display) -> Exit {
        errln!("error: {e}");
        Exit::Config
    }

    /// The worse of two outcomes: a configuration error over a failure over a pass.
    pub fn worst(self, other: Exit) -> Exit {
        self.max(other)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_guides() {
        assert_eq!(
            [Exit::Passed, Exit::Failed, Exit::Config].map(Exit::code),
            [0, 1, 2]
        );
        assert_eq!(Exit::Passed.worst(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Config.worst(Exit::Failed), Exit::Config);
    }
}
