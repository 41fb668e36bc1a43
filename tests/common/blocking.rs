//! Minimal blocking drivers that run the machines over `std::net` sockets,
//! for the live interop tests (the real drivers live in the adapter crates).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use syncproto::Now;
use syncproto::client::{ClientConnection, ClientEvent};
use syncproto::message::Timestamp;
use syncproto::server::{ServerConnection, ServerEvent};

pub fn now() -> Now {
    Now::new(
        Instant::now(),
        Timestamp::from_system_time(SystemTime::now()).expect("clock in range"),
    )
}

/// Reads whatever is available within a short wait: `Some(n)` bytes, or
/// `None` at end of stream.
fn read_some(stream: &mut TcpStream, buffer: &mut [u8]) -> Option<usize> {
    match stream.read(buffer) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Some(0)
        }
        Err(error) if error.kind() == ErrorKind::ConnectionReset => None,
        Err(error) => panic!("read: {error}"),
    }
}

/// Runs a client until it closes (the server ends the stream) or `limit`
/// passes; returns every event.
pub fn run_client(
    stream: &mut TcpStream,
    client: &mut ClientConnection,
    limit: Duration,
) -> Vec<ClientEvent> {
    stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    let give_up = Instant::now() + limit;
    let mut events = Vec::new();
    let mut buffer = vec![0u8; 256 * 1024];
    while !client.is_closed() {
        assert!(
            Instant::now() < give_up,
            "client did not finish in {limit:?}"
        );
        while let Some(bytes) = client.poll_transmit() {
            stream.write_all(&bytes).expect("write");
        }
        match read_some(stream, &mut buffer) {
            Some(0) => {}
            Some(n) => client.handle_input(now(), &buffer[..n]),
            None => client.handle_eof(now()),
        }
        if client
            .poll_timeout()
            .is_some_and(|due| due <= Instant::now())
        {
            client.handle_timeout(now());
        }
        events.extend(std::iter::from_fn(|| client.poll_event()));
    }
    events.extend(std::iter::from_fn(|| client.poll_event()));
    events
}

/// Runs a server until `done` says to stop, then half-closes the socket and
/// waits for the client to close its side; returns every event. `on_event`
/// sees each event as it happens (to give the snapshot on `Connected`).
pub fn run_server(
    stream: &mut TcpStream,
    server: &mut ServerConnection,
    limit: Duration,
    mut on_event: impl FnMut(&mut ServerConnection, &ServerEvent),
    mut done: impl FnMut(&ServerConnection, &[ServerEvent]) -> bool,
) -> Vec<ServerEvent> {
    stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    let give_up = Instant::now() + limit;
    let mut events = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut closing = false;
    loop {
        assert!(
            Instant::now() < give_up,
            "server did not finish in {limit:?}: {events:?}"
        );
        while let Some(bytes) = server.poll_transmit(Instant::now()) {
            stream.write_all(&bytes).expect("write");
        }
        if !closing && !server.is_closed() && done(server, &events) {
            stream.shutdown(Shutdown::Write).expect("shutdown");
            closing = true;
        }
        match read_some(stream, &mut buffer) {
            Some(0) => {}
            Some(n) => server.handle_input(now(), &buffer[..n]),
            None => {
                server.handle_eof(now());
                events.extend(std::iter::from_fn(|| server.poll_event()));
                return events;
            }
        }
        if server
            .poll_timeout()
            .is_some_and(|due| due <= Instant::now())
        {
            server.handle_timeout(now());
        }
        while let Some(event) = server.poll_event() {
            on_event(server, &event);
            events.push(event);
        }
        assert!(
            !server.is_closed() || closing,
            "server closed early: {events:?}"
        );
    }
}
