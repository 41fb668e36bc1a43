//! JSON lines on stdout: buffered, flushed when a command has said
//! something complete (so that `dump --follow 1h | jq` shows each update
//! as it arrives), and quiet when the reader goes away (`| head -1`).

use std::io::{BufWriter, Stdout, Write};

use crate::failure::Failure;

/// Stdout, for lines.
pub(crate) struct Lines {
    out: BufWriter<Stdout>,
}

impl Lines {
    /// Lines to stdout.
    pub(crate) fn stdout() -> Lines {
        Lines {
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        }
    }

    /// Writes one line (buffered until [`flush`](Self::flush)).
    pub(crate) fn line(&mut self, line: &str) -> Result<(), Failure> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(Failure::output)
    }

    /// Hands everything written so far to the reader.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        self.out.flush().map_err(Failure::output)
    }
}
