//! The poll loop the server and the clients share: the sockets, the slab of
//! connections (slot = mio token), the timer heap, the list of connections
//! to service again, and one turn of a connection (read in bounded chunks,
//! write until the socket would block, then let the connection settle).
//! What a connection *is* (a server or a client machine, how it closes,
//! what it reports) is the [`Connection`] the loop is generic over.

use std::io;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use syncproto::Now;

use crate::io::{Flush, READ_CHUNK, READ_CHUNKS_PER_TURN, ReadOutcome, Stream, flush, read_some};
use crate::timers::{Owner, Timers};

/// A connection's place in a loop: its slot (its mio token, past the
/// loop's fixed tokens) and its serial (slots are reused, serials never,
/// so a stale timer entry or id cannot reach a slot's next occupant).
pub(crate) type Key = Owner;

/// What a connection's turn ended with.
pub(crate) enum Settled {
    /// It stays in the loop.
    Keep,
    /// It is over (and reported): the loop drops it and its socket.
    Remove,
}

/// A connection the loop services: a protocol machine and what its owner
/// keeps about it. The loop owns the socket ([`Stream`]) and calls these
/// in this order each turn: [`ready`](Self::ready); when readable,
/// [`input`](Self::input) per chunk read and [`eof`](Self::eof); while it
/// may write, [`transmit`](Self::transmit); then always
/// [`settle`](Self::settle). When its [`deadline`](Self::deadline) passes,
/// [`fire`](Self::fire) comes first.
pub(crate) trait Connection: Sized {
    /// What all connections of one loop share (counters, event handler).
    type Shared;

    /// Whether the socket can be used yet (a client's non-blocking connect
    /// may still be under way); an error fails the turn.
    fn ready(&mut self, _stream: &Stream) -> io::Result<bool> {
        Ok(true)
    }
    /// Bytes read (report the machine's events after it).
    fn input(&mut self, shared: &mut Self::Shared, now: Now, data: &[u8]);
    /// The peer closed its side (reported once).
    fn eof(&mut self, shared: &mut Self::Shared, now: Now);
    /// The next bytes to write.
    fn transmit(&mut self, now: Now) -> Option<Bytes>;
    /// After the turn's reads and writes (`result`: whether the socket
    /// failed): report events, change state, close, reconnect.
    fn settle(
        &mut self,
        shared: &mut Self::Shared,
        now: Now,
        io: &mut Io<'_>,
        result: io::Result<()>,
    ) -> Settled;
    /// When the loop must call [`fire`](Self::fire).
    fn deadline(&self) -> Option<Instant>;
    /// Its deadline passed (the turn follows).
    fn fire(&mut self, shared: &mut Self::Shared, now: Now, io: &mut Io<'_>);
}

/// A connection's socket as [`Connection::settle`] and
/// [`Connection::fire`] see it: they may close it or open another.
pub(crate) struct Io<'a> {
    stream: &'a mut Option<Stream>,
    registry: &'a Registry,
    token: Token,
    bytes_written: &'a mut u64,
}

impl Io<'_> {
    /// The socket, if there is one.
    pub(crate) fn stream(&mut self) -> Option<&mut Stream> {
        self.stream.as_mut()
    }

    /// Writes what fits without waiting ([`Stream::write_what_fits`]),
    /// shuts down our side and drops the socket.
    pub(crate) fn close(&mut self, owed: impl FnMut() -> Option<Bytes>) {
        if let Some(mut stream) = self.stream.take() {
            stream.write_what_fits(self.bytes_written, owed);
            stream.shutdown_write();
            let _ = self.registry.deregister(&mut stream.socket);
        }
    }

    /// Makes `socket` this connection's socket (closing any other).
    pub(crate) fn open(&mut self, mut socket: TcpStream) -> io::Result<()> {
        self.close(|| None);
        self.registry.register(
            &mut socket,
            self.token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        *self.stream = Some(Stream::new(socket));
        Ok(())
    }
}

/// One connection in the loop.
struct Entry<C> {
    serial: u64,
    stream: Option<Stream>,
    conn: C,
    /// The deadline of its live timer entry.
    armed: Option<Instant>,
    /// Whether it is on the list to be serviced again without an event.
    queued: bool,
}

/// Reads both clocks, as the machines want them.
pub(crate) fn now() -> Now {
    Now::from_std(Instant::now(), SystemTime::now())
}

/// One poll instance and the connections it services.
pub(crate) struct PollLoop<C: Connection> {
    poll: Poll,
    events: Events,
    entries: Slab<Entry<C>>,
    timers: Timers,
    /// Connections whose turn was cut short by its budget: serviced again
    /// next iteration (readiness is edge-triggered, so no new event would
    /// come for them).
    again: Vec<Key>,
    next_serial: u64,
    /// Tokens below this are the owner's (a listener, a waker).
    first_token: usize,
    traffic: Traffic,
    /// What the connections share; the owner's to read.
    pub(crate) shared: C::Shared,
}

/// The read buffer all of a loop's connections share, and the byte
/// counts over all of them.
struct Traffic {
    buffer: Box<[u8]>,
    bytes_read: u64,
    bytes_written: u64,
}

impl<C: Connection> PollLoop<C> {
    /// An empty loop; tokens below `first_token` are left to the owner.
    pub(crate) fn new(first_token: usize, shared: C::Shared) -> io::Result<Self> {
        Ok(PollLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            entries: Slab::new(),
            timers: Timers::new(),
            again: Vec::new(),
            next_serial: 0,
            first_token,
            traffic: Traffic {
                buffer: vec![0; READ_CHUNK].into_boxed_slice(),
                bytes_read: 0,
                bytes_written: 0,
            },
            shared,
        })
    }

    /// For the owner's own sources.
    pub(crate) fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Connections in the loop.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes read and written, over all connections.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        (self.traffic.bytes_read, self.traffic.bytes_written)
    }

    pub(crate) fn get(&self, key: Key) -> Option<&C> {
        self.entries
            .get(key.slot)
            .filter(|entry| entry.serial == key.serial)
            .map(|entry| &entry.conn)
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut C> {
        self.entry_mut(key).map(|entry| &mut entry.conn)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &C)> {
        self.entries.iter().map(|(slot, entry)| {
            let key = Key {
                slot,
                serial: entry.serial,
            };
            (key, &entry.conn)
        })
    }

    /// The `n`th connection (in slot order) that `wanted` picks.
    pub(crate) fn nth(&self, n: usize, mut wanted: impl FnMut(&C) -> bool) -> Option<Key> {
        self.iter()
            .filter(|(_, conn)| wanted(conn))
            .nth(n)
            .map(|(key, _)| key)
    }

    /// Adds a connection over `socket` (or none yet), made by `make` from
    /// its key, and arms its timer. Fails (handing it back) if the socket
    /// cannot be registered.
    pub(crate) fn insert(
        &mut self,
        socket: Option<TcpStream>,
        make: impl FnOnce(Key) -> C,
    ) -> Result<Key, (C, io::Error)> {
        self.next_serial += 1;
        let vacant = self.entries.vacant_entry();
        let key = Key {
            slot: vacant.key(),
            serial: self.next_serial,
        };
        let conn = make(key);
        let stream = match socket {
            None => None,
            Some(mut socket) => {
                let token = Token(key.slot + self.first_token);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(error) = self.poll.registry().register(&mut socket, token, interest) {
                    return Err((conn, error));
                }
                Some(Stream::new(socket))
            }
        };
        let deadline = conn.deadline();
        let entry = vacant.insert(Entry {
            serial: key.serial,
            stream,
            conn,
            armed: None,
            queued: false,
        });
        // The first writable event services it; until then only its
        // deadline matters.
        self.timers.arm(&mut entry.armed, key, deadline);
        Ok(key)
    }

    /// Takes a connection out of the loop, dropping its socket at once.
    pub(crate) fn remove(&mut self, key: Key) -> Option<C> {
        self.get(key)?;
        let mut entry = self.entries.remove(key.slot);
        if let Some(stream) = entry.stream.as_mut() {
            let _ = self.poll.registry().deregister(&mut stream.socket);
        }
        Some(entry.conn)
    }

    /// Waits until a socket is ready, a connection's deadline or `also`
    /// passes, or `timeout` passes (`None`: no limit besides those); does
    /// not wait when `busy` or when connections are to be serviced again.
    /// `None` when a signal interrupted the wait (the caller just loops).
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        also: Option<Instant>,
        busy: bool,
    ) -> io::Result<Option<Now>> {
        let wait = if busy || !self.again.is_empty() {
            Some(Duration::ZERO)
        } else {
            let current = Instant::now();
            [self.timers.next_deadline(), also]
                .into_iter()
                .flatten()
                .map(|due| due.saturating_duration_since(current))
                .chain(timeout)
                .min()
        };
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => Ok(Some(now())),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Services the connections the last [`poll`](Self::poll) found
    /// ready; `own` gets the owner's tokens.
    pub(crate) fn dispatch(&mut self, now: Now, mut own: impl FnMut(Token)) {
        // Take the events out so the connections can be borrowed mutably
        // while they are walked.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            match event.token().0.checked_sub(self.first_token) {
                None => own(event.token()),
                Some(slot) => {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.service(slot, None, now, readable);
                }
            }
        }
        self.events = events;
    }

    /// The rest of an iteration: the connections cut short last time, the
    /// timers that are due, and the heap's compaction.
    pub(crate) fn finish_iteration(&mut self, now: Now) {
        for key in std::mem::take(&mut self.again) {
            if let Some(entry) = self.entry_mut(key) {
                entry.queued = false;
            }
            self.service(key.slot, Some(key.serial), now, true);
        }
        while let Some((due, key)) = self.timers.pop_due(now.instant) {
            let Some(entry) = self
                .entries
                .get_mut(key.slot)
                .filter(|entry| entry.serial == key.serial && entry.armed == Some(due))
            else {
                continue; // gone, or a stale entry
            };
            entry.armed = None;
            if entry.conn.deadline().is_some_and(|at| at <= now.instant) {
                let mut io = Io {
                    stream: &mut entry.stream,
                    registry: self.poll.registry(),
                    token: Token(key.slot + self.first_token),
                    bytes_written: &mut self.traffic.bytes_written,
                };
                entry.conn.fire(&mut self.shared, now, &mut io);
            }
            // Writes what firing produced (a ping) and re-arms, also when
            // the deadline had only moved later.
            self.service(key.slot, Some(key.serial), now, false);
        }
        let live = self.entries.len();
        let entries = &self.entries;
        self.timers.compact_if_needed(live, |due, key| {
            entries
                .get(key.slot)
                .is_some_and(|entry| entry.serial == key.serial && entry.armed == Some(due))
        });
    }

    /// Applies `change` to connection `key`, then gives it a turn (to
    /// write, report or close what the change brought). `false` if it is
    /// gone.
    pub(crate) fn touch(
        &mut self,
        key: Key,
        now: Now,
        change: impl FnOnce(&mut C, &mut C::Shared),
    ) -> bool {
        let Some(entry) = self.entries.get_mut(key.slot) else {
            return false;
        };
        if entry.serial != key.serial {
            return false;
        }
        change(&mut entry.conn, &mut self.shared);
        self.service(key.slot, Some(key.serial), now, false);
        true
    }

    /// [`touch`](Self::touch) for every connection `change` returns `true`
    /// for; it also learns whether the connection is blocked on a full
    /// socket.
    pub(crate) fn touch_all(
        &mut self,
        now: Now,
        mut change: impl FnMut(&mut C, &mut C::Shared, bool) -> bool,
    ) {
        // Slots rather than an iterator: a turn may remove its connection.
        for slot in 0..self.entries.capacity() {
            let Some(entry) = self.entries.get_mut(slot) else {
                continue;
            };
            let blocked = entry.stream.as_ref().is_some_and(Stream::is_blocked);
            if change(&mut entry.conn, &mut self.shared, blocked) {
                self.service(slot, None, now, false);
            }
        }
    }

    fn entry_mut(&mut self, key: Key) -> Option<&mut Entry<C>> {
        self.entries
            .get_mut(key.slot)
            .filter(|entry| entry.serial == key.serial)
    }

    /// One turn for one connection: read what is there (when `readable`),
    /// write what it hands out, let it settle, then re-arm its timer or
    /// drop it. `serial`, when given, must match.
    fn service(&mut self, slot: usize, serial: Option<u64>, now: Now, readable: bool) {
        let Some(entry) = self.entries.get_mut(slot) else {
            return;
        };
        if serial.is_some_and(|serial| serial != entry.serial) {
            return;
        }
        let (result, again) = match entry.stream.as_mut() {
            None => (Ok(()), false),
            Some(stream) => {
                let mut again = false;
                let result = self.traffic.turn(
                    stream,
                    &mut entry.conn,
                    &mut self.shared,
                    now,
                    readable,
                    &mut again,
                );
                (result, again)
            }
        };
        let mut io = Io {
            stream: &mut entry.stream,
            registry: self.poll.registry(),
            token: Token(slot + self.first_token),
            bytes_written: &mut self.traffic.bytes_written,
        };
        let key = Key {
            slot,
            serial: entry.serial,
        };
        match entry.conn.settle(&mut self.shared, now, &mut io, result) {
            Settled::Keep => {
                let deadline = entry.conn.deadline();
                self.timers.arm(&mut entry.armed, key, deadline);
                if again && entry.stream.is_some() && !entry.queued {
                    entry.queued = true;
                    self.again.push(key);
                }
            }
            Settled::Remove => {
                self.remove(key);
            }
        }
    }
}

impl Traffic {
    /// Reads (when `readable`, until the socket would block or the turn's
    /// chunks are spent) and writes (until the connection has nothing
    /// more, the socket would block or the budget is spent). Sets `again`
    /// when a budget cut the turn short.
    fn turn<C: Connection>(
        &mut self,
        stream: &mut Stream,
        conn: &mut C,
        shared: &mut C::Shared,
        now: Now,
        readable: bool,
        again: &mut bool,
    ) -> io::Result<()> {
        if !conn.ready(stream)? {
            return Ok(());
        }
        if readable && stream.read_open {
            for chunk in 0.. {
                if chunk == READ_CHUNKS_PER_TURN {
                    *again = true;
                    break;
                }
                match read_some(&mut stream.socket, &mut self.buffer)? {
                    ReadOutcome::Data(n) => {
                        self.bytes_read += n as u64;
                        conn.input(shared, now, self.buffer.get(..n).unwrap_or_default());
                    }
                    ReadOutcome::Eof => {
                        stream.read_open = false;
                        conn.eof(shared, now);
                        break;
                    }
                    ReadOutcome::WouldBlock => break,
                }
            }
        }
        if stream.write_open {
            let written = flush(
                &mut stream.socket,
                &mut stream.pending,
                &mut self.bytes_written,
                || conn.transmit(now),
            )?;
            if written == Flush::Budget {
                *again = true;
            }
        }
        Ok(())
    }
}
