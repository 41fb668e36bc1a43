//! `syncproto decode`: decode a captured server-to-client stream.

mod json;

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use syncproto::codec::{DEFAULT_MAX_SERVER_MESSAGE_LEN, StreamDecoder, WireFormat};
use syncproto::message::MessageRef;

use crate::failure::Failure;
use crate::options::Wire;
use crate::output::Lines;
use crate::state::State;

/// Decode a captured server-to-client byte stream.
///
/// Reads a capture (`dump --capture`, or reassembled from tcpdump),
/// following its decoder restarts into compressed streams, and prints its
/// messages as JSON lines: each update in the `serve` file format, other
/// messages as `{"type": ...}` objects. With `--state`, prints the state
/// the stream leaves instead; with `--stats`, only counts, bytes,
/// throughput and the process's peak memory. The capture is read as it is
/// decoded, so memory stays bounded by the largest message, not the
/// capture's size.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The wire format (default: told from the first byte).
    #[arg(long, value_enum)]
    wire: Option<Wire>,
    /// Print counts and throughput instead of the messages.
    #[arg(long, conflicts_with = "state")]
    stats: bool,
    /// Print the final state (sorted by key), as `dump --state` does.
    #[arg(long)]
    state: bool,
    /// The capture; `-` reads standard input.
    file: PathBuf,
}

/// The least room made in the buffer for each read, which fills all the
/// room there is. The buffer grows (doubling) until what is left of a
/// message and this much fit, and keeps that size: 1 MiB (native) to 2 MiB
/// (gob) on the captures of `benches/compare_go.sh`, whose snapshots carry
/// 950 KB messages. Few system calls, and a buffer about the size of a
/// core's second-level cache.
const READ_CHUNK: usize = 256 * 1024;

/// Where the capture comes from.
enum Source {
    File(File),
    Stdin(std::io::Stdin),
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::File(file) => file.as_fd(),
            // Read through its descriptor, never through `Stdin`'s own
            // buffer, which therefore stays empty.
            Source::Stdin(stdin) => stdin.as_fd(),
        }
    }
}

/// The capture being read, a chunk at a time.
struct Input {
    name: String,
    source: Source,
    buffer: BytesMut,
    /// Bytes read so far.
    read: u64,
    at_end: bool,
}

impl Input {
    fn open(path: &Path) -> Result<Input, Failure> {
        let (name, source) = if path == Path::new("-") {
            ("stdin".to_owned(), Source::Stdin(std::io::stdin()))
        } else {
            let name = path.display().to_string();
            let file =
                File::open(path).map_err(|error| Failure::input(format!("{name}: {error}")))?;
            (name, Source::File(file))
        };
        Ok(Input {
            name,
            source,
            buffer: BytesMut::new(),
            read: 0,
            at_end: false,
        })
    }

    /// Reads the next chunk, with one read of the source, into a buffer
    /// that starts with what the decoder left of an incomplete message.
    fn fill(&mut self) -> Result<(), Failure> {
        // The buffer goes through a `Vec` (no copy while nothing else holds
        // it: what is left of it moves to the front) so that the chunk is
        // read into its spare capacity as it is: `BytesMut`'s would have to
        // be zeroed first, a write of every byte of the capture before the
        // kernel writes it again. std's `read_to_end` reads into spare
        // capacity too, but in reads that start at 8 KiB on every call and
        // double: six system calls for each 256 KiB (1 476 for the 64 MB
        // capture of `benches/compare_go.sh`).
        let mut vec = Vec::from(std::mem::take(&mut self.buffer));
        // A no-op while the room is there; otherwise the buffer doubles.
        vec.reserve(READ_CHUNK);
        let read = loop {
            match rustix::io::read(&self.source, rustix::buffer::spare_capacity(&mut vec)) {
                Err(rustix::io::Errno::INTR) => continue,
                result => break result,
            }
        }
        .map_err(|errno| {
            let error = std::io::Error::from(errno);
            Failure::input(format!("{}: {error}", self.name))
        })?;
        self.buffer = BytesMut::from(Bytes::from(vec));
        self.read += read as u64;
        self.at_end = read == 0;
        Ok(())
    }

    /// Bytes taken off by the decoder so far.
    fn consumed(&self) -> u64 {
        self.read - self.buffer.len() as u64
    }
}

/// What `--stats` counts.
#[derive(Debug, Default)]
struct Counts {
    messages: u64,
    kvs: u64,
    /// Time spent reading the capture, which the decoder's time leaves
    /// out.
    reading: Duration,
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let mut input = Input::open(&args.file)?;
    while input.buffer.is_empty() && !input.at_end {
        input.fill()?;
    }
    if input.buffer.is_empty() {
        return Err(Failure::input(format!(
            "{}: the capture is empty",
            input.name
        )));
    }
    let format = match args.wire {
        Some(wire) => wire.into(),
        None => WireFormat::detect(&input.buffer)
            .ok_or_else(|| Failure::input(format!("{}: not a gob or native stream", input.name)))?,
    };
    let mut decoder =
        StreamDecoder::new(format, DEFAULT_MAX_SERVER_MESSAGE_LEN, None).following_restarts();
    let mut out = Lines::stdout();
    let mut state = State::default();
    let mut counts = Counts::default();
    let mode = match (args.stats, args.state) {
        (true, _) => Mode::Stats,
        (false, true) => Mode::State,
        (false, false) => Mode::Print,
    };
    // The decoder's time is the loop's less the reads: two clock reads per
    // chunk rather than per message (a message can take less time to
    // decode than reading the clock). With `--stats` the callback only
    // counts.
    let started = Instant::now();
    loop {
        // The borrowing API: updates are slices of the read buffer, handed
        // to `take` and dropped; nothing is copied out of the capture
        // except what `--state` keeps.
        let mut take = |message: MessageRef<'_>| {
            counts.messages += 1;
            if let MessageRef::Kvs(updates) = &message {
                counts.kvs += updates.len() as u64;
            }
            match mode {
                Mode::Stats => Ok(()),
                Mode::State => {
                    if let MessageRef::Kvs(updates) = message {
                        for update in updates {
                            state.apply(update.to_update());
                        }
                    }
                    Ok(())
                }
                Mode::Print => json::print(&message, &mut out),
            }
        };
        let decoded = match input.at_end {
            true => decoder.decode_eof_borrowed(&mut input.buffer, &mut take),
            false => decoder.decode_borrowed(&mut input.buffer, &mut take),
        };
        let decoded = decoded.map_err(|error| {
            Failure::input(format!(
                "{}: at byte {}: {error}",
                input.name,
                input.consumed()
            ))
        })?;
        match decoded {
            Some(taken) => taken?,
            None if input.at_end => break,
            None => {
                let started = Instant::now();
                input.fill()?;
                counts.reading += started.elapsed();
            }
        }
    }
    if args.state {
        state.print(&mut out)?;
    }
    if args.stats {
        let seconds = started
            .elapsed()
            .saturating_sub(counts.reading)
            .as_secs_f64();
        out.line(&stats_line(&counts, input.read, seconds))?;
    }
    out.flush()
}

/// What is done with each message.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Count it (`--stats`).
    Stats,
    /// Apply its updates to the final state (`--state`).
    State,
    /// Print it as JSON lines.
    Print,
}

/// The `--stats` line, rounded to what the measurement can tell; rates are
/// per second of decoding.
fn stats_line(counts: &Counts, bytes: u64, seconds: f64) -> String {
    let per_second = |amount: f64| amount / seconds.max(1e-9);
    json::ordered!(
        "messages": counts.messages,
        "kvs": counts.kvs,
        "bytes": bytes,
        "seconds": (seconds * 1e3).round() / 1e3,
        "mb_per_s": (per_second(bytes as f64 / 1e6) * 10.0).round() / 10.0,
        "kvs_per_s": per_second(counts.kvs as f64).round() as u64,
        // The whole process's, reading included: what streaming bounds.
        "peak_rss_bytes": crate::memory::peak_resident_bytes(),
    )
}
