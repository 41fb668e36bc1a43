//! The byte transport both drivers run over: a TCP stream, plain or TLS.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Anything a connection can run over.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A transport of either kind, behind one type.
pub(crate) type BoxedTransport = Box<dyn Transport>;

/// How much one read takes at most: enough for a large snapshot message in
/// few reads, small enough per connection.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// How long a closing connection spends on each step of going away:
/// finishing the message in flight (server), shutting down its side (on
/// TLS that flushes and sends close_notify, which needs a peer that reads),
/// and waiting for the peer to close. A peer that stopped reading must not
/// hold a closing connection, or a server's graceful shutdown, for longer.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// What one [`write_or_flush`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// This many bytes of the pending output were accepted (zero only for
    /// empty output).
    Wrote(usize),
    /// Everything accepted so far has been pushed out.
    Flushed,
}

/// How much output a connection takes from its machine before writing: a
/// batch of small messages (a burst of live changes) goes out in one
/// vectored write rather than a syscall each, while a client that does
/// not read still holds at most this much here.
pub(crate) const OUTBOX_BYTES: usize = 256 * 1024;

/// The most messages in one vectored write (the platform allows at least
/// 1 024 slices; past a few dozen the syscall saving is gone).
const OUTBOX_SLICES: usize = 64;

/// Output taken from a machine and not yet written, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    messages: VecDeque<Bytes>,
    bytes: usize,
}

impl Outbox {
    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether it should take more from the machine before writing.
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < OUTBOX_BYTES && self.messages.len() < OUTBOX_SLICES
    }

    /// Queues bytes to write after what is queued.
    pub(crate) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.bytes += bytes.len();
            self.messages.push_back(bytes);
        }
    }

    /// Takes everything queued, in order.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        self.messages.drain(..).collect()
    }

    /// Forgets everything queued (the connection gave up on it).
    pub(crate) fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }

    /// Drops the first `written` bytes (they were accepted).
    fn advance(&mut self, mut written: usize) {
        self.bytes -= written.min(self.bytes);
        while written > 0 {
            let Some(front) = self.messages.front_mut() else {
                return;
            };
            if written < front.len() {
                let _ = front.split_to(written);
                return;
            }
            written -= front.len();
            self.messages.pop_front();
        }
    }
}

/// Writes some of `outbox` (as many messages as one vectored write takes)
/// or, when it is empty, flushes.
///
/// Accepted bytes are not necessarily on the wire: TLS encrypts them into
/// a buffer (up to 64 KiB with rustls) and, when the socket is full, keeps
/// them there until the next write or flush. A driver that goes quiet after
/// a message (a server awaiting an acknowledgement, say) must therefore
/// flush once its output is written, or the peer may never see the tail.
/// One function for both keeps a single `select!` branch borrowing the
/// writer.
///
/// Cancel-safe: dropping the future before it completes loses nothing (the
/// outbox only changes once the write has completed).
pub(crate) async fn write_or_flush<W>(
    writer: &mut W,
    outbox: &mut Outbox,
) -> std::io::Result<Progress>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    if outbox.is_empty() {
        return writer.flush().await.map(|()| Progress::Flushed);
    }
    let written = {
        let mut slices = [IoSlice::new(&[]); OUTBOX_SLICES];
        let count = outbox.messages.len().min(OUTBOX_SLICES);
        for (slice, message) in slices.iter_mut().zip(&outbox.messages) {
            *slice = IoSlice::new(message);
        }
        writer.write_vectored(&slices[..count]).await?
    };
    // A writer that takes nothing will never take anything: an error, not
    // progress (or the caller would retry forever).
    if written == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    outbox.advance(written);
    Ok(Progress::Wrote(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_outbox_is_written_in_order_across_partial_writes() {
        let mut outbox = Outbox::default();
        for message in [&b"one"[..], b"", b"two", b"three"] {
            outbox.push(Bytes::copy_from_slice(message));
        }
        // A pipe that takes at most four bytes a write.
        let (mut near, mut far) = tokio::io::duplex(4);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut all)
                .await
                .map(|_| all)
        });
        while !outbox.is_empty() {
            match write_or_flush(&mut near, &mut outbox).await {
                Ok(Progress::Wrote(written)) => assert!(written > 0),
                other => panic!("{other:?}"),
            }
        }
        drop(near);
        assert_eq!(
            reader.await.ok().and_then(Result::ok),
            Some(b"onetwothree".to_vec())
        );
    }
}
