//! One connection's life on the server: TLS, the machine, and the loop
//! that moves its bytes and time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use syncproto::server::{ConnectionReport, ServerConnection, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until, timeout};

use super::Shared;
use super::caches::{CacheSource, Data};
use crate::io::{BoxedTransport, LINGER, Outbox, Progress, READ_CHUNK, write_or_flush};
use crate::now;
use syncproto::message::SyncerType;

/// Serves one connection; reports how it went.
pub(super) async fn serve(
    shared: &Shared,
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    close: &Notify,
) -> ConnectionReport {
    let started = Instant::now();
    let _ = stream.set_nodelay(true);
    let early = |reason: String| {
        let mut report = ConnectionReport::early(id, Some(peer), "tls_rejected", reason);
        report.duration = started.elapsed();
        report
    };
    let transport: BoxedTransport = match &shared.options.tls {
        None => Box::new(stream),
        Some((config, requirement)) => {
            let accept = tokio_rustls::TlsAcceptor::from(Arc::clone(config)).accept(stream);
            let tls = match timeout(shared.options.tls_handshake_timeout, accept).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    // rustls's own text is Debug output; say it in words.
                    let detail = error
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .map_or_else(|| error.to_string(), crate::tls::describe);
                    return early(format!("TLS handshake failed: {detail}"));
                }
                Err(_) => {
                    shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    return early("TLS handshake timed out".to_owned());
                }
            };
            let checked = match tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
            {
                Some(certificate) => requirement
                    .check(certificate)
                    .map_err(|error| error.to_string()),
                None => Err("client presented no certificate".to_owned()),
            };
            if let Err(reason) = checked {
                shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                return early(format!("client identity refused: {reason}"));
            }
            Box::new(tls)
        }
    };
    let mut report = serve_transport(shared, id, transport, close).await;
    report.peer = Some(peer);
    report.duration = started.elapsed();
    report
}

/// Runs the protocol over an established transport; reports how it went
/// (without the peer address and duration, which the caller knows).
pub(super) async fn serve_transport(
    shared: &Shared,
    id: u64,
    transport: BoxedTransport,
    close: &Notify,
) -> ConnectionReport {
    let config = shared.options.config.for_connection(id);
    let early = |reason| ConnectionReport::early(id, None, "usage", reason);
    let mut machine = match ServerConnection::new(config, now()) {
        Ok(machine) => machine,
        Err(error) => return early(format!("invalid server configuration: {error}")),
    };
    // One cache: followed from the start. By syncer type: once the hello
    // says which (`drive`).
    if let Data::One(cache) = &shared.data
        && let Err(error) = machine.follow(cache.subscribe(now().instant))
    {
        return early(format!("cannot follow the cache: {error}"));
    }
    let driven = drive(shared, id, &mut machine, transport, close).await;
    let mut report = machine.report(id);
    if let Err(error) = driven {
        report.set_io_error(&error);
    }
    report
}

/// The connection's loop: bytes in, bytes out, timers, wake-ups.
///
/// On the server's shutdown it stops the machine gracefully
/// ([`ServerConnection::stop_sending`]): what is ready is written whole,
/// then the writing side is shut and the client's last words (pongs) are
/// read until it closes, for at most [`LINGER`].
async fn drive(
    shared: &Shared,
    id: u64,
    machine: &mut ServerConnection,
    transport: BoxedTransport,
    close: &Notify,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(transport);
    let mut changes = shared.changes.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut outbox = Outbox::default();
    // Written but perhaps held by the transport (TLS buffers encrypted
    // output when the socket is full): flush before going quiet.
    let mut needs_flush = false;
    let mut stalled_since: Option<Instant> = None;
    // After end of stream a read returns at once, every time: stop asking.
    let mut read_open = true;
    // Once the machine is closed, how long the message in flight (if any)
    // may take to finish, so that the client sees it whole.
    let mut closing_deadline: Option<Instant> = None;
    // After a graceful stop, how long what was ready (the message in
    // flight) may take to go out.
    let mut stop_deadline: Option<Instant> = None;
    // Once a graceful stop has written everything: our side is shut, and
    // the client has until then to close its own.
    let mut drain_deadline: Option<Instant> = None;
    if *shutdown.borrow_and_update() {
        machine.stop_sending();
    }
    loop {
        while let Some(event) = machine.poll_event() {
            match event {
                ServerEvent::Connected {
                    hello,
                    wire_format,
                    compression,
                } => {
                    shared.counters.record_connected();
                    if let Data::BySyncer(source) = &shared.data {
                        follow_syncer(machine, source.as_ref(), &hello.syncer_type);
                    }
                    super::log::handshake_done(&hello, wire_format, compression.as_ref());
                }
                ServerEvent::Pong { round_trip } => shared.counters.record_pong(round_trip),
                ServerEvent::SnapshotSent { took } => shared.counters.record_snapshot_sent(took),
                ServerEvent::Closed(_) => {}
            }
        }
        // Take what the machine has ready, up to a batch: a burst of small
        // messages goes out in one vectored write. The machine produces
        // more only as this drains, so nothing piles up here.
        let mut took = false;
        while outbox.has_room()
            && let Some(bytes) = machine.poll_transmit(now().instant)
        {
            outbox.push(bytes);
            took = true;
        }
        if took {
            shared.counters.record_sent(&machine.take_send_stats());
        }
        if machine.is_closed() {
            let give_up = *closing_deadline.get_or_insert_with(|| Instant::now() + LINGER);
            if Instant::now() >= give_up {
                // A client that will not take the rest cannot hold the
                // connection open: it sees the message cut short instead.
                outbox.clear();
            }
        }
        if machine.is_closed() && outbox.is_empty() {
            // No longer a live connection (for the limit), even while it
            // lingers below.
            shared.lock_connections().remove(&id);
            // Close our side, then let the client's last writes (a pong in
            // flight) land before the socket goes, so that the client sees
            // a clean end of stream rather than a reset. Shutting down TLS
            // writes (what it still holds, then close_notify): a client
            // that stopped reading would hold it, and graceful shutdown,
            // forever.
            let _ = timeout(LINGER, writer.shutdown()).await;
            let linger =
                async { while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {} };
            let _ = timeout(LINGER, linger).await;
            return Ok(());
        }
        if machine.is_stopping() && drain_deadline.is_none() {
            let finish_by = *stop_deadline.get_or_insert_with(|| Instant::now() + LINGER);
            let written = machine.is_flushed() && outbox.is_empty() && !needs_flush;
            if written {
                let _ = timeout(LINGER, writer.shutdown()).await;
                drain_deadline = Some(Instant::now() + LINGER);
            } else if Instant::now() >= finish_by {
                // A client that will not take the rest cannot hold the
                // shutdown: it sees the message cut short instead.
                closing_deadline = Some(finish_by);
                machine.close();
                continue;
            }
        }
        if drain_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            // The client did not close in time: give up on it.
            machine.close();
            continue;
        }
        let writing = drain_deadline.is_none() && (!outbox.is_empty() || needs_flush);
        // A change wakes the connection only when it could send it: while
        // output waits to be written it is sent next anyway (the change is
        // seen then), and a thousand blocked connections need not wake for
        // every change.
        let idle = outbox.is_empty();
        if writing && stalled_since.is_none() {
            stalled_since = Some(Instant::now());
        }
        let deadline = closing_deadline
            .or(drain_deadline)
            .or(stop_deadline)
            .or_else(|| machine.poll_timeout().map(Instant::from_std));
        let write_deadline = stalled_since.map(|since| since + shared.options.write_timeout);
        tokio::select! {
            progress = write_or_flush(&mut writer, &mut outbox), if writing => {
                stalled_since = None;
                match progress? {
                    Progress::Wrote(written) => {
                        let compressed = machine.compression().is_some();
                        shared.counters.record_written(machine.wire_format(), compressed, written as u64);
                        needs_flush = true;
                    }
                    Progress::Flushed => needs_flush = false,
                }
            }
            _ = sleep_until(write_deadline.unwrap_or_else(far_future)), if write_deadline.is_some() => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading"));
            }
            read = reader.read(&mut buffer), if read_open => match read? {
                0 => {
                    read_open = false;
                    machine.handle_eof(now());
                }
                n => {
                    shared.counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    machine.handle_input(now(), &buffer[..n]);
                }
            },
            _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                machine.handle_timeout(now());
            }
            _ = changes.changed(), if idle => {}
            _ = close.notified() => machine.close(),
            _ = shutdown.changed() => machine.stop_sending(),
        }
    }
}

/// Makes a connection of a server by syncer type follow the cache for the
/// syncer its client asked for; closes it if there is none, or if it
/// cannot follow it (a cache batching past the connection's limit).
fn follow_syncer(machine: &mut ServerConnection, source: &dyn CacheSource, syncer: &SyncerType) {
    let followed = source
        .cache_for(syncer)
        .map(|cache| machine.follow(cache.subscribe(now().instant)));
    match followed {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            tracing::warn!(%syncer, %error, "cannot follow the syncer's cache");
            machine.close();
        }
        None => {
            tracing::warn!(%syncer, "no data for the syncer the client asked for");
            machine.close();
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
