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

    /// Writing to stdout failed. A reader that went away (`| head -1`)
    /// ends the command quietly with success, as it wanted no more; any
    /// other write error is a failure (exit code 1).
    pub(crate) fn output(error: std::io::Error) -> Failure {
        match error.kind() {
            std::io::ErrorKind::BrokenPipe => Failure {
                code: 0,
                message: String::new(),
            },
            _ => Failure::runtime(format!("writing output: {error}")),
        }
    }

    /// Stopped by a signal before finishing: 128 + the signal's number, as
    /// a shell reports a process the signal killed (130 for Ctrl-C).
    pub(crate) fn interrupted(signal: crate::signals::Signal) -> Failure {
        Failure {
            code: signal.exit_code(),
            message: format!("interrupted ({})", signal.name()),
        }
    }

    /// Prints the message (if any) to stderr; returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            note(&self.message);
        }
        ExitCode::from(self.code)
    }
}

/// Prints a line to stderr, ignoring a closed stderr (a long-running
/// server must not die because nobody reads its messages).
pub(crate) fn note(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "syncproto: {message}");
}
