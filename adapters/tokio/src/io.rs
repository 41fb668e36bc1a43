//! The byte transport both drivers run over: a TCP stream, plain or TLS.

use std::time::Duration;

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
    /// an empty `pending`).
    Wrote(usize),
    /// Everything accepted so far has been pushed out.
    Flushed,
}

/// Writes some of `pending` or, when nothing is pending, flushes.
///
/// Accepted bytes are not necessarily on the wire: TLS encrypts them into
/// a buffer (up to 64 KiB with rustls) and, when the socket is full, keeps
/// them there until the next write or flush. A driver that goes quiet after
/// a message (a server awaiting an acknowledgement, say) must therefore
/// flush once its output is written, or the peer may never see the tail.
/// One function for both keeps a single `select!` branch borrowing the
/// writer.
///
/// Cancel-safe: dropping the future before it completes loses nothing.
pub(crate) async fn write_or_flush<W>(
    writer: &mut W,
    pending: Option<&[u8]>,
) -> std::io::Result<Progress>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    match pending {
        Some(bytes) => match writer.write(bytes).await? {
            // A writer that takes nothing will never take anything: an
            // error, not progress (or the caller would retry forever).
            0 if !bytes.is_empty() => Err(std::io::ErrorKind::WriteZero.into()),
            written => Ok(Progress::Wrote(written)),
        },
        None => writer.flush().await.map(|()| Progress::Flushed),
    }
}
