//! Snapshot checksums end to end (DESIGN.md §1b): whatever the script, a
//! client that received everything verifies every checksum the server
//! sends; one update dropped, replayed or altered in transit is detected;
//! checksums go only to clients that asked.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::fleet::Fleet;
use common::harness::{Clock, client_config};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::checksum::{StateChecksum, entry_digest};
use syncproto::client::{ChecksumReport, ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{ByteString, Checksum, Message, SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerConnection};

fn key(index: u8) -> String {
    // Every eighth key does not parse: the client's key parser drops it,
    // yet the server's checksum covers it.
    match index % 8 {
        7 => format!("/not/a/calico/key/{index}"),
        _ => format!("/calico/v1/host/node-{index:03}/config/Key"),
    }
}

/// The checksum of a state, computed from scratch (not incrementally).
fn checksum_of(updates: &[SerializedUpdate]) -> StateChecksum {
    let mut state = StateChecksum::default();
    for update in updates {
        if let Some(value) = update.effective_value() {
            state.replace(None, Some(entry_digest(update.key.as_bytes(), value)));
        }
    }
    state
}

#[derive(Debug, Clone)]
enum Op {
    /// An upsert; a value already held makes it a no-op write, an empty
    /// value a deletion.
    Upsert(u8, u8),
    /// A deletion, of a key that may be absent.
    Delete(u8),
    Status(SyncStatus),
    Join(u8),
    /// Let a subset of the clients read (a bitmask over client indices).
    Read(u64),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, 0u8..4).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0u8..24).prop_map(Op::Delete),
        1 => proptest::sample::select(SyncStatus::ALL.to_vec()).prop_map(Op::Status),
        2 => any::<u8>().prop_map(Op::Join),
        3 => any::<u64>().prop_map(Op::Read),
        2 => (0u16..40_000).prop_map(Op::Advance),
    ]
}

fn upsert(k: u8, v: u8) -> SerializedUpdate {
    // Value 0 is empty: a deletion on every wire.
    let value = match v {
        0 => String::new(),
        v => format!("{{\"v\":{v}}}"),
    };
    SerializedUpdate::upsert(key(k), value, "1")
}

/// A client with the default key grammar, which drops the `/not/a/calico/`
/// keys.
fn client_config_with_parser(format: WireFormat, compressed: bool) -> ClientConfig {
    ClientConfig {
        key_parser: ClientConfig::default().key_parser,
        ..client_config(format, compressed)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random scripts, both formats, compressed or not, lagging clients
    /// (coalesced batches), clients joining mid-stream: every checksum
    /// verifies, and a client that has read everything holds exactly the
    /// cache's checksum, which is the checksum of the cache's state
    /// computed from scratch.
    #[test]
    fn checksums_always_verify(
        initial in vec((0u8..24, 1u8..4), 0..30),
        ops in vec(op(), 0..60),
        interval in prop_oneof![Just(0u64), Just(1), Just(30)],
    ) {
        let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig::default()));
        fleet.server_config.checksum_interval = Some(Duration::from_secs(interval));
        let start = fleet.clock.now().instant;
        fleet.cache.apply(start, initial.iter().map(|(k, v)| upsert(*k, *v)));
        fleet.cache.set_status(start, SyncStatus::InSync);
        fleet.join_with(client_config_with_parser(WireFormat::Native, false));
        for op in &ops {
            let now = fleet.clock.now().instant;
            match op {
                Op::Upsert(k, v) => {
                    fleet.cache.apply(now, [upsert(*k, *v)]);
                }
                Op::Delete(k) => {
                    fleet.cache.apply(now, [SerializedUpdate::deletion(key(*k), "2")]);
                }
                Op::Status(status) => fleet.cache.set_status(now, *status),
                Op::Join(choice) => {
                    let format = match choice % 2 {
                        0 => WireFormat::Native,
                        _ => WireFormat::Gob,
                    };
                    let compressed = choice / 2 % 2 == 1;
                    fleet.join_with(client_config_with_parser(format, compressed));
                }
                Op::Read(mask) => {
                    for index in 0..fleet.members.len() {
                        if mask >> (index % 64) & 1 == 1 {
                            fleet.pump(index);
                        }
                    }
                }
                Op::Advance(ms) => fleet.advance(Duration::from_millis(u64::from(*ms))),
            }
        }
        fleet.pump_all();
        let expected = checksum_of(&fleet.cache.snapshot_updates());
        prop_assert_eq!(fleet.cache.checksum(), expected);
        for (index, member) in fleet.members.iter().enumerate() {
            prop_assert_eq!(&member.client_closed, &None, "client {}", index);
            for report in &member.checksums {
                prop_assert!(report.verified, "client {}: {:?}", index, report);
            }
            prop_assert_eq!(member.client.received_checksum(), Some(expected), "client {}", index);
            // The initial sync ended (an in-sync arrived): its checksum
            // followed.
            if member.status == Some(SyncStatus::InSync) {
                prop_assert!(!member.checksums.is_empty(), "client {}", index);
            }
        }
    }
}

/// What goes wrong with one update in transit.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The update never arrives.
    Drop,
    /// The update arrives again later, after a newer value for its key.
    Replay,
    /// The update arrives with another value.
    Alter,
}

/// A server machine following `cache`, a client, and a tampering link
/// between them: the server's messages are decoded, `tamper` may change
/// them, and they are re-encoded for the client.
struct TamperedLink {
    clock: Clock,
    server: ServerConnection,
    client: ClientConnection,
    from_server: StreamDecoder,
    from_server_bytes: BytesMut,
    to_client: StreamEncoder,
    /// What the client would hold had nothing been tampered with, and what
    /// it holds (keys as received, the parser's drops included).
    true_state: BTreeMap<ByteString, Bytes>,
    /// The true state as of each checksum the server sent, not yet
    /// compared by the client.
    true_at_checksum: VecDeque<BTreeMap<ByteString, Bytes>>,
    received: BTreeMap<ByteString, Bytes>,
    reports: Vec<(ChecksumReport, bool)>,
}

impl TamperedLink {
    fn new(cache: &SnapshotCache, format: WireFormat) -> TamperedLink {
        let clock = Clock::new();
        let now = clock.now();
        let config = ServerConfig {
            checksum_interval: Some(Duration::ZERO),
            ..ServerConfig::default()
        };
        let mut server = ServerConnection::new(config, now).unwrap();
        server.follow(cache.subscribe(now.instant)).unwrap();
        let client = ClientConnection::new(client_config(format, false), now).unwrap();
        TamperedLink {
            clock,
            server,
            client,
            from_server: StreamDecoder::new(format, usize::MAX, None),
            from_server_bytes: BytesMut::new(),
            to_client: StreamEncoder::new(format, usize::MAX),
            true_state: BTreeMap::new(),
            true_at_checksum: VecDeque::new(),
            received: BTreeMap::new(),
            reports: Vec::new(),
        }
    }

    /// Moves everything both ways; each message from the server goes
    /// through `tamper`, which returns what the client gets instead.
    fn pump(&mut self, tamper: &mut dyn FnMut(Message) -> Vec<Message>) {
        let now = self.clock.now();
        loop {
            let mut progressed = false;
            while let Some(bytes) = self.client.poll_transmit() {
                self.server.handle_input(now, &bytes);
                progressed = true;
            }
            while let Some(bytes) = self.server.poll_transmit(now.instant) {
                self.from_server_bytes.extend_from_slice(&bytes);
                progressed = true;
            }
            while let Some(message) = self
                .from_server
                .decode(&mut self.from_server_bytes)
                .unwrap()
            {
                match &message {
                    Message::Kvs(updates) => {
                        updates
                            .iter()
                            .for_each(|u| u.apply_to(&mut self.true_state));
                    }
                    Message::Checksum(_) => {
                        self.true_at_checksum.push_back(self.true_state.clone())
                    }
                    _ => {}
                }
                let mut out = BytesMut::new();
                for message in tamper(message) {
                    self.to_client.encode(&message, &mut out).unwrap();
                }
                self.client.handle_input(now, &out);
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                match event {
                    ClientEvent::Updates(updates) => {
                        updates.iter().for_each(|u| u.apply_to(&mut self.received));
                    }
                    ClientEvent::Checksum(report) => {
                        let truth = self.true_at_checksum.pop_front().unwrap();
                        let intact = self.received == truth;
                        self.reports.push((report, intact));
                    }
                    ClientEvent::Closed(reason) => panic!("client closed: {reason}"),
                    _ => {}
                }
            }
            while self.server.poll_event().is_some() {}
            if !progressed {
                return;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One live update dropped, replayed after a newer one, or altered:
    /// the checksum that follows it reports a mismatch. Throughout, a
    /// checksum verifies exactly when the client's state equals the
    /// server's.
    #[test]
    fn one_fault_in_transit_is_detected(
        ops in vec((0u8..6, 1u8..6), 4..40),
        target in any::<prop::sample::Index>(),
        fault in prop_oneof![Just(Fault::Drop), Just(Fault::Replay), Just(Fault::Alter)],
        gob in any::<bool>(),
    ) {
        let format = if gob { WireFormat::Gob } else { WireFormat::Native };
        let cache = SnapshotCache::new(CacheConfig::default());
        let mut link = TamperedLink::new(&cache, format);
        let start = link.clock.now().instant;
        cache.set_status(start, SyncStatus::InSync);
        link.pump(&mut |message| vec![message]);
        // Live changes, one update per batch, so one per message. The
        // faulty one is an update that changes the state (the cache sends
        // no no-op writes; keys 0..6 and values 1..6 repeat, so replays
        // find an older value).
        let target = target.index(ops.len());
        let mut last_value: BTreeMap<u8, SerializedUpdate> = BTreeMap::new();
        let mut faulted = false;
        for (index, (k, v)) in ops.iter().enumerate() {
            let update = upsert(*k, *v);
            let older = last_value.insert(*k, update.clone());
            let outcome = cache.apply(start, [update]);
            if outcome.accepted == 0 {
                continue;
            }
            let inject = index >= target && !faulted
                && !(matches!(fault, Fault::Replay) && older.is_none());
            let mut tamper = |message: Message| -> Vec<Message> {
                let Message::Kvs(updates) = &message else { return vec![message] };
                if !inject || updates.is_empty() {
                    return vec![message];
                }
                faulted = true;
                match fault {
                    Fault::Drop => vec![Message::Kvs(Vec::new())],
                    Fault::Replay => vec![message, Message::Kvs(vec![older.clone().unwrap()])],
                    Fault::Alter => {
                        let mut altered = updates.clone();
                        altered[0].value = Some(Bytes::from_static(b"{\"v\":\"tampered\"}"));
                        vec![Message::Kvs(altered)]
                    }
                }
            };
            link.pump(&mut tamper);
        }
        prop_assume!(faulted);
        let detected = link.reports.iter().any(|(report, _)| !report.verified);
        prop_assert!(detected, "{:?} went unnoticed: {:?}", fault, link.reports);
        for (report, intact) in &link.reports {
            prop_assert_eq!(report.verified, *intact, "{:?}", report);
        }
    }
}

/// A connection given its data by hand sends the checksums its caller
/// queues, and only to a client that asked for them.
#[test]
fn hand_fed_checksums_go_only_to_clients_that_asked() {
    let checksum = Checksum {
        checksum: 0x4b60_7981_3954_9d1d,
        kv_count: 1,
    };
    for asked in [true, false] {
        let clock = Clock::new();
        let now = clock.now();
        let mut server = ServerConnection::new(ServerConfig::default(), now).unwrap();
        let config = ClientConfig {
            checksums: asked.then(Default::default),
            ..client_config(WireFormat::Native, false)
        };
        let mut client = ClientConnection::new(config, now).unwrap();
        // Queued before the handshake, when the server cannot know yet.
        server
            .send_snapshot(
                [SerializedUpdate::upsert("/calico/v1/Ready", "true", "1")],
                SyncStatus::InSync,
            )
            .unwrap();
        server.send_checksum(checksum).unwrap();
        let mut events = Vec::new();
        for _ in 0..4 {
            while let Some(bytes) = client.poll_transmit() {
                server.handle_input(now, &bytes);
            }
            while let Some(bytes) = server.poll_transmit(now.instant) {
                client.handle_input(now, &bytes);
            }
            events.extend(std::iter::from_fn(|| client.poll_event()));
        }
        let hello = client.server_hello().unwrap();
        assert_eq!(hello.supports_checksum, asked);
        let reports: Vec<&ChecksumReport> = events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Checksum(report) => Some(report),
                ClientEvent::Ignored(kind) => panic!("sent unasked: {kind:?}"),
                _ => None,
            })
            .collect();
        match asked {
            true => {
                assert_eq!(reports.len(), 1);
                assert_eq!(reports[0].server, StateChecksum::from(checksum));
                assert!(!reports[0].verified, "the caller's checksum was made up");
            }
            false => assert!(reports.is_empty()),
        }
    }
}

/// A server configured without checksums does not offer them, and a
/// following connection then sends none.
#[test]
fn a_server_without_checksums_offers_none() {
    let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig::default()));
    fleet.server_config.checksum_interval = None;
    let now = fleet.clock.now().instant;
    fleet.cache.apply(now, [upsert(1, 1)]);
    fleet.cache.set_status(now, SyncStatus::InSync);
    fleet.join(WireFormat::Native, false);
    fleet.pump_all();
    let member = &fleet.members[0];
    assert_eq!(member.status, Some(SyncStatus::InSync));
    assert!(!member.client.server_hello().unwrap().supports_checksum);
    assert!(member.checksums.is_empty());
    assert_eq!(member.client.received_checksum(), None);
}

/// A server whose checksums keep disagreeing with what it sent: the
/// session reports each mismatch and, at the third in a row, asks for the
/// connection to be dropped so that the next one resyncs.
#[test]
fn a_session_drops_a_connection_after_three_mismatches_in_a_row() {
    use syncproto::session::{Backoff, Session, SessionEvent};
    let clock = Clock::new();
    let now = clock.now();
    let mut server = ServerConnection::new(ServerConfig::default(), now).unwrap();
    let mut client = ClientConnection::new(ClientConfig::default(), now).unwrap();
    let mut session = Session::new(Backoff::default(), 1);
    session.connection_started();
    server
        .send_snapshot([upsert(1, 1)], SyncStatus::InSync)
        .unwrap();
    let bogus = Checksum {
        checksum: 1,
        kv_count: 1,
    };
    for value in 2..6 {
        server.send_updates(vec![upsert(1, value)]).unwrap();
        server.send_checksum(bogus).unwrap();
    }
    let mut mismatches_before_drop = None;
    let mut mismatches = 0;
    for _ in 0..8 {
        while let Some(bytes) = client.poll_transmit() {
            server.handle_input(now, &bytes);
        }
        while let Some(bytes) = server.poll_transmit(now.instant) {
            client.handle_input(now, &bytes);
        }
        while let Some(event) = client.poll_event() {
            if matches!(&event, ClientEvent::Checksum(report) if !report.verified) {
                mismatches += 1;
            }
            session.handle_event(event);
            if session.take_forced_resync() {
                mismatches_before_drop = Some(mismatches);
                client.close();
            }
        }
    }
    assert_eq!(mismatches_before_drop, Some(3));
    assert!(client.is_closed());
    assert_eq!(session.forced_resyncs(), 1);
    let reasons: Vec<String> = std::iter::from_fn(|| session.poll_event())
        .filter_map(|event| match event {
            SessionEvent::Reconnecting { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("3 snapshot checksum mismatches in a row"),
        "{reasons:?}"
    );
}
