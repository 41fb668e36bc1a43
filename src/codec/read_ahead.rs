//! Touching a message a little ahead of its parser.
//!
//! Where an update starts depends on the previous update's value length, so
//! on a buffer that is not in cache (a capture file, one large read) every
//! update waits out a full memory round trip before its first byte arrives:
//! a chain of dependent cache misses. Touching the next few cache lines
//! first breaks the chain, because those loads depend on nothing and the CPU
//! overlaps them. On a 64 MB capture this made native decoding about 25%
//! faster; on buffers already in cache it costs a few nanoseconds per update.

/// Touches up to [`ReadAhead::WINDOW`] bytes ahead of a parser, one byte per
/// cache line, never the same line twice.
///
/// Create one per message with the unparsed bytes, then call
/// [`touch`](ReadAhead::touch) with what is still unparsed before each
/// element. The window is small so that skipping a large value does not
/// drag the value itself through the cache.
pub(crate) struct ReadAhead {
    /// How many bytes at the end of the message are still untouched.
    untouched: usize,
}

impl ReadAhead {
    const WINDOW: usize = 2048;
    const LINE: usize = 64;

    /// Starts with all of `unparsed` untouched.
    pub(crate) fn new(unparsed: &[u8]) -> ReadAhead {
        ReadAhead {
            untouched: unparsed.len(),
        }
    }

    /// Touches whatever is still untouched of the first [`Self::WINDOW`]
    /// bytes of `unparsed`, a suffix of the slice this was created with.
    pub(crate) fn touch(&mut self, unparsed: &[u8]) {
        let start = unparsed.len().saturating_sub(self.untouched);
        let end = unparsed.len().min(Self::WINDOW);
        if start >= end {
            return;
        }
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
    use super::ReadAhead;

    #[test]
    fn touches_each_window_once_and_follows_the_parser() {
        let message = vec![7u8; 10_000];
        let mut read_ahead = ReadAhead::new(&message);
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
}
