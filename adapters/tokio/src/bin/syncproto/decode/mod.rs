//! `syncproto decode`: decode a captured server-to-client stream.

mod input;
mod json;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use syncproto::codec::{DEFAULT_MAX_SERVER_MESSAGE_LEN, StreamDecoder, WireFormat};
use syncproto::message::MessageRef;

use crate::failure::Failure;
use crate::options::Wire;
use crate::output::Lines;
use crate::state::State;

use input::{Chunking, Input};

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
    let mut input = Input::open(&args.file, Chunking::DEFAULT)?;
    let mut out = Lines::stdout();
    let mut state = State::default();
    let mut counts = Counts::default();
    let mode = match (args.stats, args.state) {
        (true, _) => Mode::Stats,
        (false, true) => Mode::State,
        (false, false) => Mode::Print,
    };
    let started = Instant::now();
    // The borrowing API: updates are slices of the read buffer, handed to
    // `take` and dropped; nothing is copied out of the capture except what
    // `--state` keeps. With `--stats` it only counts.
    let take = |message: MessageRef<'_>| {
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
    let waited = decode(&mut input, args.wire.map(WireFormat::from), take)?;
    counts.reading = waited;
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

/// Decodes the whole of `input` in `wire` (default: told from its first
/// byte), handing each message to `take`; returns the time spent waiting
/// for the input.
fn decode(
    input: &mut Input,
    wire: Option<WireFormat>,
    mut take: impl FnMut(MessageRef<'_>) -> Result<(), Failure>,
) -> Result<Duration, Failure> {
    // The decoder's time is the loop's less the waits for input: two
    // clock reads per chunk rather than per message (a message can take
    // less time to decode than reading the clock).
    let mut waited = Duration::ZERO;
    let mut fill = |input: &mut Input| {
        let started = Instant::now();
        let filled = input.fill();
        waited += started.elapsed();
        filled
    };
    while input.buffer.is_empty() && !input.at_end {
        fill(input)?;
    }
    if input.buffer.is_empty() {
        return Err(Failure::input(format!(
            "{}: the capture is empty",
            input.name
        )));
    }
    let format = match wire {
        Some(format) => format,
        None => WireFormat::detect(&input.buffer)
            .ok_or_else(|| Failure::input(format!("{}: not a gob or native stream", input.name)))?,
    };
    let mut decoder =
        StreamDecoder::new(format, DEFAULT_MAX_SERVER_MESSAGE_LEN, None).following_restarts();
    loop {
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
            None if input.at_end => return Ok(waited),
            None => fill(input)?,
        }
    }
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

#[cfg(test)]
#[path = "input_tests.rs"]
mod input_tests;
