//! A deterministic in-memory client/server pair: no sockets, a virtual
//! clock that jumps to the next deadline, and optional chunking and latency
//! on the bytes between the two machines.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use syncproto::message::ByteString;

use bytes::Bytes;
use syncproto::Now;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::message::{CompressionAlgorithm, Timestamp};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};

/// A virtual clock: monotonic and wall time advance together.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    elapsed: Duration,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn now(&self) -> Now {
        let wall = Timestamp::from_unix(
            1_700_000_000 + self.elapsed.as_secs() as i64,
            self.elapsed.subsec_nanos(),
        )
        .expect("wall clock in range");
        Now::new(self.start + self.elapsed, wall)
    }

    pub fn advance_to(&mut self, instant: Instant) {
        if let Some(later) = instant.checked_duration_since(self.start) {
            self.elapsed = self.elapsed.max(later);
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }
}

/// A seeded xorshift generator for splitting byte streams.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// How the bytes between the machines are delivered.
#[derive(Debug, Clone)]
pub struct Link {
    /// Split every transmitted buffer into pieces of at most this many
    /// bytes (`None`: deliver whole).
    pub max_chunk: Option<usize>,
    /// Delay between transmit and delivery.
    pub latency: Duration,
    /// Seed for the random split points.
    pub seed: u64,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            max_chunk: None,
            latency: Duration::ZERO,
            seed: 1,
        }
    }
}

pub struct Pair {
    pub clock: Clock,
    pub client: ClientConnection,
    pub server: ServerConnection,
    pub client_events: Vec<ClientEvent>,
    pub server_events: Vec<ServerEvent>,
    /// While set, the server's output is not taken (a client that does not
    /// read, a full socket buffer).
    pub server_output_blocked: bool,
    /// While set, what the client transmits is lost (a client whose
    /// writes never arrive).
    pub client_output_dropped: bool,
    /// Raw bytes the server wrote, in order (for counting messages).
    pub server_wrote: Vec<Bytes>,
    link: Link,
    rng: Rng,
    in_flight: VecDeque<(Instant, Direction, Bytes)>,
}

impl Pair {
    pub fn new(client: ClientConfig, server: ServerConfig, link: Link) -> Pair {
        let clock = Clock::new();
        let client = ClientConnection::new(client, clock.now()).expect("client config");
        let server = ServerConnection::new(server, clock.now()).expect("server config");
        let rng = Rng::new(link.seed);
        Pair {
            clock,
            client,
            server,
            client_events: Vec::new(),
            server_events: Vec::new(),
            server_output_blocked: false,
            client_output_dropped: false,
            server_wrote: Vec::new(),
            link,
            rng,
            in_flight: VecDeque::new(),
        }
    }

    /// Moves bytes and events until nothing more happens at the current
    /// instant.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(bytes) = self.client.poll_transmit() {
                if !self.client_output_dropped {
                    self.send(Direction::ToServer, bytes);
                }
                progressed = true;
            }
            if !self.server_output_blocked {
                let now = self.clock.now().instant;
                while let Some(bytes) = self.server.poll_transmit(now) {
                    self.server_wrote.push(bytes.clone());
                    self.send(Direction::ToClient, bytes);
                    progressed = true;
                }
            }
            let now = self.clock.now();
            while self
                .in_flight
                .front()
                .is_some_and(|(due, _, _)| *due <= now.instant)
            {
                let Some((_, direction, bytes)) = self.in_flight.pop_front() else {
                    break;
                };
                match direction {
                    Direction::ToServer => self.server.handle_input(now, &bytes),
                    Direction::ToClient => self.client.handle_input(now, &bytes),
                }
                progressed = true;
            }
            progressed |= self.drain_events();
            if !progressed {
                return;
            }
        }
    }

    fn drain_events(&mut self) -> bool {
        let before = self.client_events.len() + self.server_events.len();
        self.client_events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
        self.client_events.len() + self.server_events.len() > before
    }

    fn send(&mut self, direction: Direction, bytes: Bytes) {
        let due = self.clock.now().instant + self.link.latency;
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = match self.link.max_chunk {
                Some(max) => 1 + self.rng.below(max.min(rest.len())),
                None => rest.len(),
            };
            let piece = rest.split_to(take);
            self.in_flight.push_back((due, direction, piece));
        }
    }

    /// The earliest instant anything is scheduled: a machine deadline or a
    /// delivery.
    pub fn next_event_time(&self) -> Option<Instant> {
        [
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.in_flight.front().map(|(due, _, _)| *due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Jumps the clock to the next scheduled instant (if not later than
    /// `limit`), fires timers and pumps. Returns false when nothing is
    /// scheduled before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.pump();
        let Some(next) = self.next_event_time() else {
            return false;
        };
        if next > limit {
            return false;
        }
        self.clock.advance_to(next);
        let now = self.clock.now();
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.pump();
        true
    }

    /// Runs for `duration` of virtual time, jumping from deadline to
    /// deadline, then leaves the clock at the end of it.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.clock.now().instant + duration;
        let mut steps = 0;
        while self.step(end) {
            steps += 1;
            assert!(steps < 10_000_000, "simulation did not settle");
        }
        self.clock.advance_to(end);
        let now = self.clock.now();
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.pump();
    }

    /// Delivers everything in flight, whatever its latency, without firing
    /// timers early.
    pub fn settle(&mut self) {
        self.pump();
        while let Some((due, _, _)) = self.in_flight.front() {
            let due = *due;
            self.clock.advance_to(due);
            self.pump();
        }
        self.pump();
    }

    /// Ends the client's side: the server sees end of stream.
    pub fn client_closes_socket(&mut self) {
        let now = self.clock.now();
        self.server.handle_eof(now);
        self.pump();
    }

    /// Ends the server's side: the client sees end of stream.
    pub fn server_closes_socket(&mut self) {
        let now = self.clock.now();
        self.client.handle_eof(now);
        self.pump();
    }
}

/// A client's view of the datastore, built by applying `Updates` events.
/// A client of `format`, offering snappy when `compressed`, that keeps
/// every key (no key parser): what the fleet and limit tests connect.
pub fn client_config(format: WireFormat, compressed: bool) -> ClientConfig {
    ClientConfig {
        wire_format: format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        key_parser: None,
        ..ClientConfig::default()
    }
}

pub fn apply_updates(
    view: &mut std::collections::BTreeMap<ByteString, Bytes>,
    events: &[ClientEvent],
) {
    for event in events {
        if let ClientEvent::Updates(updates) = event {
            for update in updates {
                update.apply_to(view);
            }
        }
    }
}

/// Decodes everything a server wrote into messages, following its decoder
/// restarts into compressed streams.
pub fn decode_server_output(pair: &Pair) -> Vec<syncproto::Message> {
    let format = pair.server.wire_format().expect("format known");
    let mut decoder =
        syncproto::codec::StreamDecoder::new(format, usize::MAX, None).following_restarts();
    let mut buffer = bytes::BytesMut::new();
    let mut messages = Vec::new();
    for chunk in &pair.server_wrote {
        buffer.extend_from_slice(chunk);
        while let Some(message) = decoder.decode(&mut buffer).expect("server output decodes") {
            messages.push(message);
        }
    }
    messages
}
