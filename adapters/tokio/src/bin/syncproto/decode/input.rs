//! The capture `decode` reads, read on a second thread while the first
//! decodes.
//!
//! Reading a file is the kernel copying the page cache into our buffer,
//! about a third of a single-threaded decode's time; on a second core it
//! overlaps with the decoding. The reader thread fills chunks, each a
//! `Vec` with free room (headroom) in front of what it reads, and hands
//! them over in order; the decoder thread copies only what is left of the
//! previous chunk (the start of a message, no more than the largest
//! message) into that room, so the capture's bytes are never copied in
//! user space, and hands the old chunk back to be filled again: nothing is
//! allocated per chunk.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::{Buf, Bytes, BytesMut};

use crate::failure::Failure;

/// How the capture is read: the sizes are what measured best on the
/// 64 MB capture of `benches/compare_go.sh` (BENCHMARKS.md); the tests
/// use small ones to put chunk boundaries everywhere.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunking {
    /// Bytes read into each chunk (the last may hold fewer).
    pub(super) chunk: usize,
    /// Room in front of each chunk for what is left of the previous one;
    /// a longer leftover (a message larger than this) is joined to the
    /// chunk by copying instead.
    pub(super) headroom: usize,
    /// Chunks in flight: being decoded, filled, or waiting in between.
    pub(super) buffers: usize,
}

impl Chunking {
    /// What `decode` uses.
    pub(super) const DEFAULT: Chunking = Chunking {
        chunk: 256 * 1024,
        headroom: 64 * 1024,
        buffers: 3,
    };

    /// A chunk's allocation: what the pool keeps.
    fn capacity(self) -> usize {
        self.headroom + self.chunk
    }
}

/// What the reader thread hands over: a filled chunk (the headroom, then
/// what was read; only the headroom at the end of the input) or the error
/// that ended the reading.
type Filled = io::Result<Vec<u8>>;

/// The capture being read, a chunk at a time.
pub(super) struct Input {
    /// The capture's name in messages (`stdin` or the path).
    pub(super) name: String,
    /// The bytes read and not yet taken off by the decoder.
    pub(super) buffer: BytesMut,
    /// Bytes read so far.
    pub(super) read: u64,
    /// The input has ended (`buffer` holds all that is left of it).
    pub(super) at_end: bool,
    chunking: Chunking,
    filled: Receiver<Filled>,
    /// The pool: chunks handed back for the reader thread to fill.
    empty: SyncSender<Vec<u8>>,
}

impl Input {
    /// Opens the capture (`-`: standard input) and starts reading it.
    pub(super) fn open(path: &Path, chunking: Chunking) -> Result<Input, Failure> {
        if path == Path::new("-") {
            return Ok(Input::start("stdin".to_owned(), io::stdin(), chunking));
        }
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| Failure::input(format!("{name}: {error}")))?;
        Ok(Input::start(name, file, chunking))
    }

    /// Starts reading `reader` on a thread of its own.
    ///
    /// The thread is not joined: it ends once the input does, or at its
    /// next chunk after the `Input` is dropped; a thread blocked reading
    /// a terminal ends with the process.
    pub(super) fn start(
        name: String,
        reader: impl Read + Send + 'static,
        chunking: Chunking,
    ) -> Input {
        let buffers = chunking.buffers.max(1);
        let (empty, to_fill) = sync_channel(buffers);
        let (done, filled) = sync_channel(buffers);
        for _ in 0..buffers {
            // Cannot fail: the channel has room for every buffer.
            let _ = empty.try_send(Vec::with_capacity(chunking.capacity()));
        }
        let for_thread = done.clone();
        let spawned = std::thread::Builder::new()
            .name("decode-input".to_owned())
            .spawn(move || read_chunks(reader, chunking, &to_fill, &for_thread));
        if let Err(error) = spawned {
            // Reported by the first `fill`, as a failed read would be.
            let _ = done.try_send(Err(error));
        }
        Input {
            name,
            buffer: BytesMut::new(),
            read: 0,
            at_end: false,
            chunking,
            filled,
            empty,
        }
    }

    /// Appends the next chunk to the buffer (what the decoder left of an
    /// incomplete message stays in front of it).
    pub(super) fn fill(&mut self) -> Result<(), Failure> {
        let chunk = match self.filled.recv() {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(error)) => return Err(Failure::input(format!("{}: {error}", self.name))),
            // The reader thread hands over an end or an error before it
            // leaves, so this is a thread that could not start or died.
            Err(_) => {
                return Err(Failure::input(format!(
                    "{}: the reading thread stopped",
                    self.name
                )));
            }
        };
        let headroom = self.chunking.headroom;
        let new = chunk.len() - headroom;
        self.read += new as u64;
        if new == 0 {
            self.at_end = true;
            self.recycle(chunk);
            return Ok(());
        }
        let left = self.buffer.len();
        if left <= headroom {
            // The usual case: the leftover goes into the room in front of
            // the new chunk, which becomes the buffer.
            let mut next = BytesMut::from(Bytes::from(chunk));
            next[headroom - left..headroom].copy_from_slice(&self.buffer);
            next.advance(headroom - left);
            let mut old = std::mem::replace(&mut self.buffer, next);
            old.clear();
            self.recycle(Vec::from(old));
        } else {
            // A message longer than the headroom (rare): the chunk is
            // copied onto the end of it.
            self.buffer.extend_from_slice(&chunk[headroom..]);
            self.recycle(chunk);
        }
        Ok(())
    }

    /// Bytes taken off by the decoder so far.
    pub(super) fn consumed(&self) -> u64 {
        self.read - self.buffer.len() as u64
    }

    /// Hands a chunk back to the pool, as allocated: one that grew
    /// (holding a long message) or was replaced by a copy (the decoder
    /// shared it) is allocated afresh, so the pool keeps its size.
    fn recycle(&mut self, mut chunk: Vec<u8>) {
        if chunk.capacity() != self.chunking.capacity() {
            chunk = Vec::with_capacity(self.chunking.capacity());
        }
        // Full only if the reader thread has gone (it takes every buffer
        // it is given); the chunk is then no longer needed.
        let _ = self.empty.try_send(chunk);
    }
}

/// The reader thread: fills each chunk the pool hands over and sends it
/// on, until the input ends or fails, or the decoder goes away.
fn read_chunks(
    mut reader: impl Read,
    chunking: Chunking,
    to_fill: &Receiver<Vec<u8>>,
    done: &SyncSender<Filled>,
) {
    while let Ok(mut chunk) = to_fill.recv() {
        chunk.clear();
        chunk.resize(chunking.headroom, 0);
        // `read_to_end` reads into the spare capacity as it is (a plain
        // `read` would need it initialised: a write of every byte before
        // the kernel writes it again), and `take` stops it at the chunk
        // (it also retries short reads from a pipe and interruptions).
        let read = (&mut reader)
            .take(chunking.chunk as u64)
            .read_to_end(&mut chunk);
        let last = !matches!(read, Ok(count) if count > 0);
        if done.send(read.map(|_| chunk)).is_err() || last {
            return;
        }
    }
}
