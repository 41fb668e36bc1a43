//! One client connection on tokio.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use syncproto::checksum::StateChecksum;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent, ClientEventRef};
use syncproto::message::ServerHello;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};

use crate::io::{BoxedTransport, LINGER, Outbox, Progress, READ_CHUNK, write_or_flush};
use crate::now;

/// What [`ClientOptions::on_read`] calls with each chunk read.
pub(crate) type ReadHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How a [`Client`] connects.
#[derive(Clone)]
pub struct ClientOptions {
    /// Give up connecting (TCP and TLS handshake together) after this long.
    pub connect_timeout: Duration,
    /// Fail the connection when a write makes no progress for this long
    /// (upstream Felix: 10 s).
    pub write_timeout: Duration,
    /// TLS, if the server requires it: the configuration (see
    /// [`tls::client_config`](crate::tls::client_config)) and the name to
    /// present for SNI and, when no CN or URI SAN is required, to verify.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Called with every chunk of bytes read from the server, in order,
    /// before the machine sees them (after TLS decryption): the raw stream,
    /// for recording a capture.
    pub on_read: Option<ReadHook>,
    /// The socket's receive buffer (`SO_RCVBUF`, set before connecting),
    /// or `None` for the system's, which Linux grows with the connection
    /// (up to `net.ipv4.tcp_rmem`'s maximum, 32 MiB here). Many clients in
    /// one place that read slower than the server writes (the demo's 1 000
    /// on one machine) can otherwise queue gigabytes in the kernel, past
    /// `net.ipv4.tcp_mem`: the kernel then drops segments and the
    /// connections stall in retransmission timeouts.
    pub receive_buffer: Option<u32>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            tls: None,
            on_read: None,
            receive_buffer: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("on_read", &self.on_read.is_some())
            .field("receive_buffer", &self.receive_buffer)
            .finish()
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection failed (refused, unreachable, …).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address dialled.
        address: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// Connecting (or the TLS handshake) took longer than allowed.
    #[error("connecting to {address} timed out after {after:?}")]
    Timeout {
        /// The address dialled.
        address: String,
        /// The timeout.
        after: Duration,
    },
    /// The TLS handshake failed (certificate mismatch, unknown CA, …).
    #[error("TLS handshake with {address} failed: {source}")]
    Tls {
        /// The address dialled.
        address: String,
        /// What rustls reported.
        source: std::io::Error,
    },
    /// The client configuration is unusable.
    #[error("invalid client configuration: {0}")]
    Config(#[from] syncproto::UsageError),
}

/// A client connection driven on tokio: [`connect`](Self::connect), then
/// call [`next_event`](Self::next_event) in a loop; it reads, writes and
/// fires timers as needed between events.
pub struct Client {
    reader: ReadHalf<BoxedTransport>,
    writer: WriteHalf<BoxedTransport>,
    machine: ClientConnection,
    buffer: Box<[u8]>,
    pending: Outbox,
    /// Written but perhaps held by the transport (TLS buffers encrypted
    /// output when the socket is full): flush before going quiet, or an
    /// acknowledgement the server waits for may never leave.
    needs_flush: bool,
    write_timeout: Duration,
    /// Since when output has waited without any of it being taken.
    stalled_since: Option<Instant>,
    bytes_read: u64,
    on_read: Option<ReadHook>,
    finished: bool,
    /// A write failed: the server is likely gone. What it sent before
    /// going is still read (its close included) before this is reported.
    write_error: Option<std::io::Error>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("machine", &self.machine)
            .field("bytes_read", &self.bytes_read)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `address` (`host:port`), performs the TLS handshake if
    /// configured, and starts the protocol (the hello is sent with the
    /// first [`next_event`](Self::next_event) call).
    pub async fn connect(
        address: &str,
        config: ClientConfig,
        options: ClientOptions,
    ) -> Result<Client, ConnectError> {
        let setup = async {
            let stream = tcp_connect(address, options.receive_buffer)
                .await
                .map_err(|source| ConnectError::Connect {
                    address: address.to_owned(),
                    source,
                })?;
            // Small messages (pongs, acks) must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let transport: BoxedTransport = match &options.tls {
                None => Box::new(stream),
                Some((tls, name)) => Box::new(
                    tokio_rustls::TlsConnector::from(Arc::clone(tls))
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|source| ConnectError::Tls {
                            address: address.to_owned(),
                            source,
                        })?,
                ),
            };
            Ok::<_, ConnectError>(transport)
        };
        let transport = timeout(options.connect_timeout, setup)
            .await
            .map_err(|_| ConnectError::Timeout {
                address: address.to_owned(),
                after: options.connect_timeout,
            })??;
        Client::over(transport, config, &options)
    }

    /// Starts the protocol over an established transport: what
    /// [`connect`](Self::connect) does once the transport is up (and what
    /// tests do with in-memory transports).
    pub(crate) fn over(
        transport: BoxedTransport,
        config: ClientConfig,
        options: &ClientOptions,
    ) -> Result<Client, ConnectError> {
        let machine = ClientConnection::new(config, now())?;
        let (reader, writer) = tokio::io::split(transport);
        Ok(Client {
            reader,
            writer,
            machine,
            buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            pending: Outbox::default(),
            needs_flush: false,
            write_timeout: options.write_timeout,
            stalled_since: None,
            bytes_read: 0,
            on_read: options.on_read.clone(),
            finished: false,
            write_error: None,
        })
    }

    /// The next event, driving the connection until there is one.
    /// `Ok(None)` once the final [`ClientEvent::Closed`] has been returned;
    /// an `Err` is a socket error (the connection is then over).
    pub async fn next_event(&mut self) -> std::io::Result<Option<ClientEvent>> {
        loop {
            if let Some(event) = self.machine.poll_event() {
                if matches!(event, ClientEvent::Closed(_)) {
                    self.finish().await;
                }
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            self.drive(None).await?;
        }
    }

    /// Like [`next_event`](Self::next_event), but hands `on_event` every
    /// event of the next read at once, each `KVs` message's updates
    /// borrowed from the bytes read rather than copied out of them (see
    /// [`ClientConnection::handle_input_borrowed`]): for applications that
    /// apply each update and let it go. Drives the connection until at
    /// least one event was handed over; `Ok(false)` once the final
    /// [`ClientEvent::Closed`] has been, and on every call after it.
    pub async fn next_events_borrowed(
        &mut self,
        mut on_event: impl FnMut(ClientEventRef<'_>) + Send,
    ) -> std::io::Result<bool> {
        loop {
            let mut handed_over = false;
            let mut closed = false;
            // Events queued by the machine's other calls (an end of
            // stream, a timeout, a close) come first.
            while let Some(event) = self.machine.poll_event() {
                handed_over = true;
                closed |= matches!(event, ClientEvent::Closed(_));
                on_event(ClientEventRef::Other(event));
            }
            if !handed_over && !self.finished {
                let mut watch = |event: ClientEventRef<'_>| {
                    handed_over = true;
                    closed |= matches!(event, ClientEventRef::Other(ClientEvent::Closed(_)));
                    on_event(event);
                };
                self.drive(Some(&mut watch)).await?;
            }
            if closed {
                self.finish().await;
            }
            if handed_over || self.finished {
                return Ok(handed_over);
            }
        }
    }

    /// After the final event: writes what the machine still owes, then
    /// shuts the connection down.
    async fn finish(&mut self) {
        self.finished = true;
        // After a clean end of stream the machine still hands out what it
        // owes (a pong to a last ping): the server may still be reading.
        // Write it, then shut down; on TLS that writes too (close_notify,
        // and anything held). A server that stopped reading must not hold
        // us here: LINGER bounds both.
        let owed = self
            .pending
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| self.machine.poll_transmit()))
            .collect::<Vec<_>>();
        let writable = self.write_error.is_none();
        let writer = &mut self.writer;
        let finish = async move {
            if writable {
                for bytes in owed {
                    writer.write_all(&bytes).await?;
                }
            }
            writer.shutdown().await
        };
        let _ = timeout(LINGER, finish).await;
    }

    /// One pass of driving the connection: queues what the machine wants
    /// sent, then waits for the first of a write's progress, a read, or a
    /// deadline, and feeds it to the machine. What is read goes to
    /// `on_event` borrowed when given, to the machine's queue otherwise.
    async fn drive(
        &mut self,
        on_event: Option<&mut (dyn FnMut(ClientEventRef<'_>) + Send)>,
    ) -> std::io::Result<()> {
        while self.pending.has_room()
            && let Some(bytes) = self.machine.poll_transmit()
        {
            self.pending.push(bytes);
        }
        let deadline = self.machine.poll_timeout().map(Instant::from_std);
        // After a write failed, writing again would fail at once, round
        // and round: only read on, for what the server said last.
        if self.write_error.is_some() {
            self.pending.clear();
        }
        let writing = self.write_error.is_none() && (!self.pending.is_empty() || self.needs_flush);
        // Measured from the last progress, not from this pass: passes
        // come as often as the server sends, and a write stuck behind
        // a steady stream of pings would otherwise never time out.
        self.stalled_since = match (writing, self.stalled_since) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, since) => since,
        };
        let write_deadline = self.stalled_since.map(|since| since + self.write_timeout);
        tokio::select! {
            progress = write_or_flush(&mut self.writer, &mut self.pending), if writing => {
                match progress {
                    Ok(Progress::Wrote(_)) => {
                        self.stalled_since = None;
                        self.needs_flush = true;
                    }
                    Ok(Progress::Flushed) => {
                        self.stalled_since = None;
                        self.needs_flush = false;
                    }
                    Err(error) => {
                        self.write_error = Some(error);
                        return Ok(());
                    }
                }
            }
            _ = sleep_until(write_deadline.unwrap_or_else(far_future)), if write_deadline.is_some() => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write made no progress"));
            }
            read = self.reader.read(&mut self.buffer) => match read.map_err(|error| self.write_error.take().unwrap_or(error))? {
                0 => self.machine.handle_eof(now()),
                n => {
                    self.bytes_read += n as u64;
                    if let Some(on_read) = &self.on_read {
                        on_read(&self.buffer[..n]);
                    }
                    let read = &self.buffer[..n];
                    match on_event {
                        Some(on_event) => self.machine.handle_input_borrowed(now(), read, on_event),
                        None => self.machine.handle_input(now(), read),
                    }
                }
            },
            _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                self.machine.handle_timeout(now());
            }
        }
        Ok(())
    }

    /// Closes the connection: [`next_event`](Self::next_event) returns
    /// the events already received, then the final `Closed` event.
    pub fn close(&mut self) {
        self.machine.close();
    }

    /// Bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The server's hello, once connected.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.machine.server_hello()
    }

    /// The snapshot checksum of everything received so far, when both
    /// sides negotiated checksums (see
    /// [`ClientConnection::received_checksum`](syncproto::client::ClientConnection::received_checksum)).
    pub fn received_checksum(&self) -> Option<StateChecksum> {
        self.machine.received_checksum()
    }
}

/// A TCP connection to `address`, with a receive buffer of
/// `receive_buffer` bytes if given (set before connecting: the window
/// scale is agreed in the handshake). Like [`TcpStream::connect`], each
/// address the name resolves to is tried in turn; the last error is
/// returned.
async fn tcp_connect(address: &str, receive_buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let Some(size) = receive_buffer else {
        return TcpStream::connect(address).await;
    };
    let mut last_error = None;
    for resolved in tokio::net::lookup_host(address).await? {
        let socket = match resolved {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_recv_buffer_size(size)?;
        match socket.connect(resolved).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
