//! The signals that stop a command: Ctrl-C (SIGINT) and SIGTERM (what
//! `kill` and Kubernetes send). Each command decides what stopping means:
//! `serve` shuts down gracefully, `dump` prints what it holds first.

use tokio::signal::unix::{SignalKind, signal};

use crate::failure::Failure;

/// A signal asking the command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill`'s default, and how orchestrators stop a container.
    Terminate,
}

impl Signal {
    /// The signal's name, as `kill -l` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, the shell's status for it.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Listens for SIGINT and SIGTERM from now on (the default action, dying
/// at once, is replaced for both).
pub(crate) struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    /// Installs the handlers; must be called inside the runtime.
    pub(crate) fn listen() -> Result<Stop, Failure> {
        let install = |kind| {
            signal(kind).map_err(|error| {
                Failure::runtime(format!("cannot install a signal handler: {error}"))
            })
        };
        Ok(Stop {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    pub(crate) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}
