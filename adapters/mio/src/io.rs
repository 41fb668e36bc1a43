//! Socket reads and writes shared by the server and client loops.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

/// Bytes read per `read` call: one shared buffer per loop, so a connection
/// costs no read buffer of its own.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Chunks read from one connection per turn before the others get theirs;
/// a connection cut off by this is serviced again on the next iteration.
pub(crate) const READ_CHUNKS_PER_TURN: usize = 16;
/// Bytes written to one connection per turn, for the same fairness.
pub(crate) const WRITE_BUDGET_PER_TURN: usize = 1 << 20;
/// How long a closing connection spends on each step of going away:
/// finishing the message in flight, then waiting for the peer to close its
/// side. A peer that stopped reading must not hold a closing connection,
/// or a server's graceful shutdown, for longer. (The tokio driver's.)
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// A connection's socket and what the loop knows about it.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) socket: TcpStream,
    /// The unwritten rest of the last `Bytes` the machine handed out.
    pub(crate) pending: Option<Bytes>,
    /// No end of stream read yet: readiness is edge-triggered, and after
    /// the end a read returns at once, every time, so the loop stops
    /// reading.
    pub(crate) read_open: bool,
    /// Our writing side is not shut down yet.
    pub(crate) write_open: bool,
}

impl Stream {
    pub(crate) fn new(socket: TcpStream) -> Stream {
        Stream {
            socket,
            pending: None,
            read_open: true,
            write_open: true,
        }
    }

    /// Whether part of a message waits for the socket to take it.
    pub(crate) fn is_blocked(&self) -> bool {
        self.pending.is_some()
    }

    /// Shuts down our writing side (the peer reads the end of stream after
    /// what was written); nothing is written after. Harmless twice.
    pub(crate) fn shutdown_write(&mut self) {
        if std::mem::replace(&mut self.write_open, false) {
            // Fails only on a socket that is already gone.
            let _ = self.socket.shutdown(Shutdown::Write);
        }
        self.pending = None;
    }

    /// Writes what is pending, then what `next` hands out, without waiting:
    /// for a connection on its way out (a client's owed pongs), where what
    /// the socket will not take at once is not worth waiting for.
    pub(crate) fn write_what_fits(
        &mut self,
        written_total: &mut u64,
        next: impl FnMut() -> Option<Bytes>,
    ) {
        if self.write_open {
            let _ = flush(&mut self.socket, &mut self.pending, written_total, next);
        }
    }
}

/// How a write turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// The machine has nothing more to send.
    Done,
    /// The socket is full; a writable event will come.
    Blocked,
    /// The turn's budget ran out with more to send: service again soon.
    Budget,
}

/// Writes `pending` (the unwritten rest of an earlier `Bytes`), then what
/// `next` hands out, until `next` returns `None`, the socket would block or
/// the budget is spent. Whatever could not be written stays in `pending`:
/// at most one `Bytes` is ever held, and nothing is pulled from the machine
/// while it is.
pub(crate) fn flush<W: Write>(
    socket: &mut W,
    pending: &mut Option<Bytes>,
    written_total: &mut u64,
    mut next: impl FnMut() -> Option<Bytes>,
) -> io::Result<Flush> {
    let mut written = 0;
    loop {
        if written >= WRITE_BUDGET_PER_TURN {
            return Ok(Flush::Budget);
        }
        let mut bytes = match pending.take().or_else(&mut next) {
            Some(bytes) => bytes,
            None => return Ok(Flush::Done),
        };
        while !bytes.is_empty() {
            match socket.write(&bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    bytes.advance(n);
                    written += n;
                    *written_total += n as u64;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    *pending = Some(bytes);
                    return Ok(Flush::Blocked);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// What one read gave.
pub(crate) enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
}

/// One read, retrying on interruption.
pub(crate) fn read_some<R: Read>(socket: &mut R, buffer: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        match socket.read(buffer) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                return Ok(ReadOutcome::WouldBlock);
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use bytes::Bytes;

    use super::{Flush, flush};

    /// Accepts `room` bytes, then would block.
    struct Pipe {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Pipe {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = data.len().min(self.room).min(3);
            self.room -= n;
            self.got.extend_from_slice(&data[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_the_remainder_and_pull_nothing_more() {
        let mut pipe = Pipe {
            room: 7,
            got: Vec::new(),
        };
        let mut queue = vec![Bytes::from_static(b"world"), Bytes::from_static(b"hello ")];
        let mut pending = None;
        let mut total = 0;
        let outcome = flush(&mut pipe, &mut pending, &mut total, || queue.pop()).unwrap();
        assert_eq!(outcome, Flush::Blocked);
        assert_eq!(pending.as_deref(), Some(&b"orld"[..]));
        assert!(queue.is_empty());
        pipe.room = 100;
        let outcome = flush(&mut pipe, &mut pending, &mut total, || queue.pop()).unwrap();
        assert_eq!(outcome, Flush::Done);
        assert_eq!(pipe.got, b"hello world");
        assert_eq!(total, 11);
        assert!(pending.is_none());
    }
}
