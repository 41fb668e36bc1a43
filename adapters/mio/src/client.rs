//! The poll-loop client side: many client connections in one loop, each
//! keeping the datastore view its updates build.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use syncproto::CloseReason;
use syncproto::Now;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::message::{ByteString, ServerHello, SyncStatus};

use crate::io::{Flush, READ_CHUNK, READ_CHUNKS_PER_TURN, ReadOutcome, flush, read_some};
use crate::slab::Slab;
use crate::timers::{Owner, Timers};
use crate::{Disconnect, now};

/// Identifies one client of a [`Clients`] loop. Stays valid until
/// [`Clients::remove`]; an id of a removed client is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    slot: usize,
    serial: u64,
}

/// What one client has received: the datastore view its updates built,
/// the last sync status, the server's hello, and how it ended.
#[derive(Debug, Default)]
pub struct ClientState {
    view: BTreeMap<ByteString, Bytes>,
    status: Option<SyncStatus>,
    server_hello: Option<ServerHello>,
    updates_messages: u64,
    dropped_keys: u64,
    ignored_messages: u64,
    closed: Option<Disconnect>,
}

/// The state of a [`Client`] that has no slot (never seen in practice: a
/// `Client` never removes its one client).
static NO_STATE: ClientState = ClientState {
    view: BTreeMap::new(),
    status: None,
    server_hello: None,
    updates_messages: 0,
    dropped_keys: 0,
    ignored_messages: 0,
    closed: None,
};

impl ClientState {
    /// The datastore as received: every key the updates set, with its
    /// value (an update with a value inserts, one without removes).
    pub fn view(&self) -> &BTreeMap<ByteString, Bytes> {
        &self.view
    }

    /// The last sync status received (`ResyncInProgress` from the start,
    /// as upstream clients report).
    pub fn status(&self) -> Option<SyncStatus> {
        self.status
    }

    /// Whether the connection is open and the last status was `InSync`.
    pub fn is_in_sync(&self) -> bool {
        self.closed.is_none() && self.status == Some(SyncStatus::InSync)
    }

    /// The server's hello, once the handshake is done.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.server_hello.as_ref()
    }

    /// How many `KVs` messages arrived.
    pub fn updates_messages(&self) -> u64 {
        self.updates_messages
    }

    /// How many updates were dropped because their keys did not parse.
    pub fn dropped_keys(&self) -> u64 {
        self.dropped_keys
    }

    /// How many messages the client ignored (see
    /// [`ClientEvent::Ignored`]).
    pub fn ignored_messages(&self) -> u64 {
        self.ignored_messages
    }

    /// Why the connection ended, once it has.
    pub fn closed(&self) -> Option<&Disconnect> {
        self.closed.as_ref()
    }

    /// Whether the connection is still open (connecting or connected).
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

/// Counters over all clients of a [`Clients`] loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientsStats {
    /// Connections started.
    pub started: u64,
    /// Connections open now (connecting or connected).
    pub open: usize,
    /// Open connections whose last status is `InSync`.
    pub in_sync: usize,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Of those, closed because something went wrong.
    pub closed_with_error: u64,
    /// Bytes read from servers.
    pub bytes_read: u64,
    /// Bytes written to servers.
    pub bytes_written: u64,
}

/// An open connection.
struct Live {
    socket: TcpStream,
    machine: ClientConnection,
    /// The unwritten rest of the last `Bytes` the machine handed out.
    pending: Option<Bytes>,
    /// Until the non-blocking connect completes, nothing is written.
    connecting: bool,
    /// The deadline of this connection's live timer entry.
    armed: Option<Instant>,
    /// Whether it is on the list to be serviced again without an event.
    queued: bool,
}

struct Slot {
    serial: u64,
    state: ClientState,
    live: Option<Live>,
}

type Handler = Box<dyn FnMut(ClientId, &ClientEvent) + Send>;

/// Many client connections driven by one poll loop: for agents that hold
/// several connections, load generators and tests.
///
/// [`connect`](Self::connect) starts a connection; [`run_once`](Self::run_once)
/// in a loop moves its bytes. Each client's [`ClientState`] keeps what it
/// received, also after it closed, until [`remove`](Self::remove).
pub struct Clients {
    poll: Poll,
    events: Events,
    slots: Slab<Slot>,
    timers: Timers,
    again: Vec<Owner>,
    next_serial: u64,
    read_buffer: Box<[u8]>,
    stats: ClientsStats,
    handler: Option<Handler>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("clients", &self.slots.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// An empty loop. Fails only if the poll instance cannot be created.
    pub fn new() -> io::Result<Clients> {
        Ok(Clients {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            slots: Slab::new(),
            timers: Timers::new(),
            again: Vec::new(),
            next_serial: 0,
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            stats: ClientsStats::default(),
            handler: None,
        })
    }

    /// Starts connecting to `addr` with a client configured by `config`;
    /// the hello goes out once the connection is established (during
    /// [`run_once`](Self::run_once)). Fails if the socket cannot be created
    /// (out of file descriptors or local ports) or `config` is unusable
    /// (`InvalidInput`); a refused connection is reported later, as the
    /// client's [`ClientState::closed`].
    pub fn connect(&mut self, addr: SocketAddr, config: ClientConfig) -> io::Result<ClientId> {
        let now = now();
        let mut machine = ClientConnection::new(config, now)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let mut socket = TcpStream::connect(addr)?;
        let _ = socket.set_nodelay(true);
        self.next_serial += 1;
        let serial = self.next_serial;
        let mut state = ClientState::default();
        // The machine's first event (ResyncInProgress) is state already.
        let mut stats = self.stats;
        while let Some(event) = machine.poll_event() {
            record(&mut state, &event, &mut stats);
        }
        let deadline = machine.poll_timeout();
        let slot = self.slots.insert(Slot {
            serial,
            state,
            live: None,
        });
        let token = Token(slot);
        if let Err(error) = self.poll.registry().register(
            &mut socket,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.slots.remove(slot);
            return Err(error);
        }
        self.stats = stats;
        self.stats.started += 1;
        self.stats.open += 1;
        let mut live = Live {
            socket,
            machine,
            pending: None,
            connecting: true,
            armed: None,
            queued: false,
        };
        self.timers
            .arm(&mut live.armed, Owner { slot, serial }, deadline);
        if let Some(entry) = self.slots.get_mut(slot) {
            entry.live = Some(live);
        }
        Ok(ClientId { slot, serial })
    }

    /// Sets the function called with every event of every client, before
    /// the event is applied to the client's state (so it sees updates as
    /// they arrive). It runs inside [`run_once`](Self::run_once) and
    /// [`close`](Self::close). Replaces any earlier handler.
    pub fn set_event_handler(
        &mut self,
        handler: impl FnMut(ClientId, &ClientEvent) + Send + 'static,
    ) {
        self.handler = Some(Box::new(handler));
    }

    /// What client `id` has received, `None` if it was removed.
    pub fn get(&self, id: ClientId) -> Option<&ClientState> {
        self.slots
            .get(id.slot)
            .filter(|slot| slot.serial == id.serial)
            .map(|slot| &slot.state)
    }

    /// Every client and its state.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &ClientState)> {
        self.slots.iter().map(|(index, slot)| {
            (
                ClientId {
                    slot: index,
                    serial: slot.serial,
                },
                &slot.state,
            )
        })
    }

    /// How many clients are held (open or closed, until removed).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no clients are held.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Counters over all clients, including how many are open and in sync
    /// right now (kept up to date as events arrive, so cheap to call).
    pub fn stats(&self) -> ClientsStats {
        self.stats
    }

    /// Closes client `id`'s connection from this side (its state records
    /// [`CloseReason::Local`]). Harmless if it is already closed or gone.
    pub fn close(&mut self, id: ClientId) {
        let Some(slot) = self.slots.get_mut(id.slot) else {
            return;
        };
        if slot.serial != id.serial {
            return;
        }
        if let Some(live) = slot.live.as_mut() {
            live.machine.close();
        }
        self.service_slot(id.slot, Some(id.serial), now(), false);
    }

    /// Forgets client `id`, closing its connection first if it is open,
    /// and returns its state.
    pub fn remove(&mut self, id: ClientId) -> Option<ClientState> {
        self.close(id);
        if self.slots.get(id.slot)?.serial != id.serial {
            return None;
        }
        self.slots.remove(id.slot).map(|slot| slot.state)
    }

    /// Runs one iteration of the loop: waits until a socket is ready, a
    /// client's deadline passes or `timeout` passes (`None`: no limit
    /// besides those), then does the work that is ready. Call it in a loop.
    /// Errors come only from the poll itself; a failing connection is
    /// closed and recorded in its state instead.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let wait = if self.again.is_empty() {
            let current = Instant::now();
            self.timers
                .next_deadline()
                .map(|due| due.saturating_duration_since(current))
                .into_iter()
                .chain(timeout)
                .min()
        } else {
            Some(Duration::ZERO)
        };
        if let Err(error) = self.poll.poll(&mut self.events, wait) {
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(error),
            };
        }
        let now = now();
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            self.service_slot(event.token().0, None, now, readable);
        }
        self.events = events;
        for owner in std::mem::take(&mut self.again) {
            if let Some(live) = self
                .slots
                .get_mut(owner.slot)
                .filter(|slot| slot.serial == owner.serial)
                .and_then(|slot| slot.live.as_mut())
            {
                live.queued = false;
            }
            self.service_slot(owner.slot, Some(owner.serial), now, true);
        }
        self.fire_timers(now);
        let live = self.stats.open;
        let slots = &self.slots;
        self.timers.compact_if_needed(live, |due, owner| {
            slots
                .get(owner.slot)
                .filter(|slot| slot.serial == owner.serial)
                .and_then(|slot| slot.live.as_ref())
                .is_some_and(|live| live.armed == Some(due))
        });
        Ok(())
    }

    fn fire_timers(&mut self, now: Now) {
        while let Some((due, owner)) = self.timers.pop_due(now.instant) {
            let Some(live) = self
                .slots
                .get_mut(owner.slot)
                .filter(|slot| slot.serial == owner.serial)
                .and_then(|slot| slot.live.as_mut())
            else {
                continue;
            };
            if live.armed != Some(due) {
                continue; // stale entry
            }
            live.armed = None;
            if live
                .machine
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now.instant)
            {
                live.machine.handle_timeout(now);
            }
            // Reports a timeout's close, or re-arms for a deadline that
            // moved later.
            self.service_slot(owner.slot, Some(owner.serial), now, false);
        }
    }

    /// One turn for one client: finish connecting, read (when `readable`),
    /// write, apply its events to its state, re-arm its timer, drop the
    /// socket if it closed.
    fn service_slot(&mut self, index: usize, serial: Option<u64>, now: Now, readable: bool) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if serial.is_some_and(|serial| serial != slot.serial) {
            return;
        }
        let id = ClientId {
            slot: index,
            serial: slot.serial,
        };
        let Some(live) = slot.live.as_mut() else {
            return;
        };
        let mut sink = Sink {
            id,
            state: &mut slot.state,
            stats: &mut self.stats,
            handler: &mut self.handler,
        };
        let turn = service(live, &mut self.read_buffer, now, readable, &mut sink);
        let owner = Owner {
            slot: index,
            serial: id.serial,
        };
        match turn {
            Turn::Open { again } => {
                let deadline = live.machine.poll_timeout();
                self.timers.arm(&mut live.armed, owner, deadline);
                if again && !live.queued {
                    live.queued = true;
                    self.again.push(owner);
                }
            }
            Turn::Closed(reason) => {
                if let Some(mut live) = slot.live.take() {
                    let _ = self.poll.registry().deregister(&mut live.socket);
                }
                self.stats.open -= 1;
                self.stats.closed += 1;
                if reason.is_error() {
                    self.stats.closed_with_error += 1;
                }
                if slot.state.status == Some(SyncStatus::InSync) {
                    self.stats.in_sync -= 1;
                }
                slot.state.closed = Some(reason);
            }
        }
    }
}

/// Where a client's turn reports to.
struct Sink<'a> {
    id: ClientId,
    state: &'a mut ClientState,
    stats: &'a mut ClientsStats,
    handler: &'a mut Option<Handler>,
}

enum Turn {
    Open { again: bool },
    Closed(Disconnect),
}

fn service(
    live: &mut Live,
    buffer: &mut [u8],
    now: Now,
    readable: bool,
    sink: &mut Sink<'_>,
) -> Turn {
    let mut again = false;
    let mut failure = None;
    if live.connecting {
        match connect_finished(&live.socket) {
            Ok(true) => live.connecting = false,
            Ok(false) => {}
            Err(error) => failure = Some(error),
        }
    }
    if !live.connecting && failure.is_none() {
        if readable {
            let mut chunks = 0;
            loop {
                if chunks == READ_CHUNKS_PER_TURN {
                    again = true;
                    break;
                }
                match read_some(&mut live.socket, buffer) {
                    Ok(ReadOutcome::Data(n)) => {
                        sink.stats.bytes_read += n as u64;
                        live.machine
                            .handle_input(now, buffer.get(..n).unwrap_or_default());
                        chunks += 1;
                    }
                    Ok(ReadOutcome::Eof) => {
                        live.machine.handle_eof(now);
                        break;
                    }
                    Ok(ReadOutcome::WouldBlock) => break,
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
                // Applied after every chunk: events never pile up.
                if let Some(reason) = drain_events(live, sink) {
                    return Turn::Closed(Disconnect::Closed(reason));
                }
            }
        }
        if failure.is_none() {
            let machine = &mut live.machine;
            match flush(
                &mut live.socket,
                &mut live.pending,
                &mut sink.stats.bytes_written,
                || machine.poll_transmit(),
            ) {
                Ok(Flush::Budget) => again = true,
                Ok(Flush::Done | Flush::Blocked) => {}
                Err(error) => failure = Some(error),
            }
        }
    }
    // Also reports a close from a timeout or a local close, which can
    // happen while still connecting.
    if let Some(reason) = drain_events(live, sink) {
        return Turn::Closed(Disconnect::Closed(reason));
    }
    match failure {
        Some(error) => Turn::Closed(Disconnect::Io(error)),
        None => Turn::Open { again },
    }
}

/// Whether a non-blocking connect has completed (mio's recipe: a pending
/// socket error means it failed; a peer address means it succeeded).
fn connect_finished(socket: &TcpStream) -> io::Result<bool> {
    if let Some(error) = socket.take_error()? {
        return Err(error);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(error) => Err(error),
    }
}

/// Applies a client's pending events to its state; the close reason if it
/// closed.
fn drain_events(live: &mut Live, sink: &mut Sink<'_>) -> Option<CloseReason> {
    while let Some(event) = live.machine.poll_event() {
        if let Some(handler) = sink.handler.as_mut() {
            handler(sink.id, &event);
        }
        if let ClientEvent::Closed(reason) = event {
            return Some(reason);
        }
        record(sink.state, &event, sink.stats);
    }
    None
}

/// Applies one event to a client's state.
fn record(state: &mut ClientState, event: &ClientEvent, stats: &mut ClientsStats) {
    match event {
        ClientEvent::Updates(updates) => {
            state.updates_messages += 1;
            for update in updates {
                update.apply_to(&mut state.view);
            }
        }
        ClientEvent::Status(status) => {
            let was = state.status == Some(SyncStatus::InSync);
            let is = *status == SyncStatus::InSync;
            match (was, is) {
                (false, true) => stats.in_sync += 1,
                (true, false) => stats.in_sync -= 1,
                _ => {}
            }
            state.status = Some(*status);
        }
        ClientEvent::Connected(hello) => state.server_hello = Some(hello.clone()),
        ClientEvent::Dropped { .. } => state.dropped_keys += 1,
        ClientEvent::Ignored(_) => state.ignored_messages += 1,
        // Handled by the caller, which drops the connection.
        ClientEvent::Closed(_) => {}
    }
}

/// One client connection in its own poll loop: the simple case of
/// [`Clients`].
#[derive(Debug)]
pub struct Client {
    clients: Clients,
    id: ClientId,
}

impl Client {
    /// Starts connecting to `addr`; see [`Clients::connect`].
    pub fn connect(addr: SocketAddr, config: ClientConfig) -> io::Result<Client> {
        let mut clients = Clients::new()?;
        let id = clients.connect(addr, config)?;
        Ok(Client { clients, id })
    }

    /// Runs one iteration of the loop; see [`Clients::run_once`].
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.clients.run_once(timeout)
    }

    /// What the client has received so far, and how it ended.
    pub fn state(&self) -> &ClientState {
        self.clients.get(self.id).unwrap_or(&NO_STATE)
    }

    /// Sets the function called with every event as it arrives; see
    /// [`Clients::set_event_handler`].
    pub fn set_event_handler(&mut self, mut handler: impl FnMut(&ClientEvent) + Send + 'static) {
        self.clients
            .set_event_handler(move |_, event| handler(event));
    }

    /// Closes the connection from this side; see [`Clients::close`].
    pub fn close(&mut self) {
        self.clients.close(self.id);
    }

    /// Byte counters; see [`Clients::stats`].
    pub fn stats(&self) -> ClientsStats {
        self.clients.stats()
    }
}
