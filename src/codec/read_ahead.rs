//! Touching a message a little ahead of its parser.
//!
//! Where an update starts depends on the previous update's value length, so
//! on a buffer that is not in cache (a capture file, one large read) every
//! update waits out a full memory round trip before its first byte arrives:
//! a chain of dependent cache misses. Touching the next few cache lines
//! first breaks the chain, because those loads depend on nothing and the CPU
//! overlaps them. On a 64 MB capture read in one piece this made native
//! decoding about 25% faster.
//!
//! Input that arrives in pieces (a socket, a file read a chunk at a time)
//! is in cache already, the kernel having just copied it there, and the
//! touch is then only work: about 12% of the instructions of `syncproto
//! decode` on a capture read 256 KiB at a time (BENCHMARKS.md). So the
//! decoders touch ahead only when what they are given is [`Buffered::Bulk`].

/// How much input a decoder was handed at once, which tells whether it is
/// likely in cache: what [`ReadAhead`] needs to know to be worth its loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buffered {
    /// No more than a core's cache holds: input that arrived in pieces,
    /// copied in just before it is decoded.
    Fresh,
    /// More than that: most of it is in memory, not in cache.
    Bulk,
}

impl Buffered {
    /// Above this many buffered bytes input counts as [`Buffered::Bulk`]:
    /// the size of a core's second-level cache on current server parts
    /// (1 MiB on the AMD EPYC this project measures on; Intel's are 1 to
    /// 2 MiB). A read of 256 KiB with a partial message in front stays
    /// below it; a whole capture read at once is far above it.
    const BULK_ABOVE: usize = 1024 * 1024;

    /// Classifies a decoder's input by its length: call with everything
    /// buffered when the decoder is called, not just the message.
    pub(crate) fn of(len: usize) -> Buffered {
        if len > Self::BULK_ABOVE {
            Buffered::Bulk
        } else {
            Buffered::Fresh
        }
    }
}

/// Touches up to [`ReadAhead::WINDOW`] bytes ahead of a parser, one byte per
/// cache line, never the same line twice.
///
/// Create one per message with the unparsed bytes and how the input was
/// [`Buffered`], then call [`touch`](ReadAhead::touch) with what is still
/// unparsed before each element; on [`Buffered::Fresh`] input that does
/// nothing. The window is small so that skipping a large value does not
/// drag the value itself through the cache.
pub(crate) struct ReadAhead {
    /// How many bytes at the end of the message are still untouched.
    untouched: usize,
}

impl ReadAhead {
    const WINDOW: usize = 2048;
    const LINE: usize = 64;

    /// Starts with all of `unparsed` untouched if the input is
    /// [`Buffered::Bulk`], with none of it (nothing to do) if it is fresh.
    pub(crate) fn new(unparsed: &[u8], buffered: Buffered) -> ReadAhead {
        ReadAhead {
            untouched: match buffered {
                Buffered::Bulk => unparsed.len(),
                Buffered::Fresh => 0,
            },
        }
    }

    /// Touches whatever is still untouched of the first [`Self::WINDOW`]
    /// bytes of `unparsed`, a suffix of the slice this was created with.
    ///
    /// Inlined down to the check, so that fresh input costs a compare per
    /// element rather than a call.
    #[inline(always)]
    pub(crate) fn touch(&mut self, unparsed: &[u8]) {
        let start = unparsed.len().saturating_sub(self.untouched);
        let end = unparsed.len().min(Self::WINDOW);
        if start < end {
            self.touch_lines(unparsed, start, end);
        }
    }

    /// The loads themselves, out of line: one byte of each cache line in
    /// `unparsed[start..end]`.
    #[inline(never)]
    fn touch_lines(&mut self, unparsed: &[u8], start: usize, end: usize) {
        let sink = unparsed[start..end]
            .iter()
            .step_by(Self::LINE)
            .fold(0u8, |sink, byte| sink ^ byte);
        // Without this the loads have no use and the compiler drops them.
        std::hint::black_box(sink);
        self.untouched = unparsed.len() - end;
    }
}

#[cfg(test)]
mod tests {
    use super::{Buffered, ReadAhead};

    #[test]
    fn touches_each_window_once_and_follows_the_parser() {
        let message = vec![7u8; 10_000];
        let mut read_ahead = ReadAhead::new(&message, Buffered::Bulk);
        read_ahead.touch(&message);
        assert_eq!(read_ahead.untouched, message.len() - ReadAhead::WINDOW);
        // The parser moved on: the window slides, touching only the new lines.
        read_ahead.touch(&message[100..]);
        assert_eq!(
            read_ahead.untouched,
            message.len() - 100 - ReadAhead::WINDOW
        );
        // The parser skipped past the window (a large value).
        read_ahead.touch(&message[9_000..]);
        assert_eq!(read_ahead.untouched, 0);
        read_ahead.touch(&message[9_999..]);
        read_ahead.touch(&[]);
        assert_eq!(read_ahead.untouched, 0);
    }

    #[test]
    fn fresh_input_is_never_touched() {
        let message = vec![7u8; 10_000];
        let mut read_ahead = ReadAhead::new(&message, Buffered::Fresh);
        assert_eq!(read_ahead.untouched, 0);
        read_ahead.touch(&message);
        read_ahead.touch(&message[100..]);
        assert_eq!(read_ahead.untouched, 0);
    }

    #[test]
    fn input_is_bulk_only_above_a_cache_size() {
        assert_eq!(Buffered::of(0), Buffered::Fresh);
        assert_eq!(Buffered::of(256 * 1024 + 64 * 1024), Buffered::Fresh);
        assert_eq!(Buffered::of(Buffered::BULK_ABOVE), Buffered::Fresh);
        assert_eq!(Buffered::of(Buffered::BULK_ABOVE + 1), Buffered::Bulk);
        assert_eq!(Buffered::of(64 << 20), Buffered::Bulk);
    }
}
