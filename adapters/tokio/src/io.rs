//! The byte transport both drivers run over: a TCP stream, plain or TLS.

use tokio::io::{AsyncRead, AsyncWrite};

/// Anything a connection can run over.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A transport of either kind, behind one type.
pub(crate) type BoxedTransport = Box<dyn Transport>;

/// How much one read takes at most: enough for a large snapshot message in
/// few reads, small enough per connection.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
