//! Errors a user can act on, with the exit code for each kind.

use std::fmt;
use std::process::ExitCode;

/// What went wrong, and which exit code says so.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Network, protocol or TLS trouble (exit code 1).
    pub(crate) fn runtime(message: impl fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }

    /// A bad command line (exit code 2, as clap's own errors).
    pub(crate) fn usage(message: impl fmt::Display) -> Failure {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }

    /// An unreadable or malformed input file (exit code 3).
    pub(crate) fn input(message: impl fmt::Display) -> Failure {
        Failure {
            code: 3,
            message: message.to_string(),
        }
    }

    /// A check failed: the demo's final states did not match, or dump's
    /// snapshot checksums did not verify (exit code 4).
    pub(crate) fn verification(message: impl fmt::Display) -> Failure {
        Failure {
            code: 4,
            message: message.to_string(),
        }
    }

    /// Prints the message to stderr; returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        note(&self.message);
        ExitCode::from(self.code)
    }
}

/// Prints a line to stderr, ignoring a closed stderr (a long-running
/// server must not die because nobody reads its messages).
pub(crate) fn note(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "syncproto: {message}");
}
