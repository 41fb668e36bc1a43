//! Validating a key allocates nothing when the key is accepted, and the
//! client machine's key check adds no allocation to its receive path.
//!
//! Counted with a counting global allocator. The counter is process-wide,
//! so this binary has no test harness (`harness = false`): `main` runs on
//! the only thread, checked at the start, and every count is of that
//! thread's allocations alone.

// A failed check panics, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use syncproto::Now;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::key::{DefaultKeyParser, Key, KeyError, KeyParser};
use syncproto::message::{Message, SerializedUpdate, ServerHello, SyncStatus, Timestamp};

#[path = "common/keygen.rs"]
mod keygen;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) so far.
fn allocations() -> usize {
    let stats = ALLOCATOR.stats();
    stats.allocations + stats.reallocations
}

/// How many allocations `work` makes.
fn count<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = allocations();
    let result = work();
    (allocations() - before, result)
}

/// The process's thread count, from procfs (Linux).
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Paths of every kind of key: the hand-written examples and 20 000 keys
/// generated with arbitrary names (escapes, unicode), rendered.
fn paths() -> Vec<String> {
    let mut paths: Vec<String> = keygen::valid_paths()
        .into_iter()
        .map(|(path, _)| path.to_owned())
        .collect();
    let mut runner = TestRunner::deterministic();
    let keys = keygen::keys();
    for _ in 0..20_000 {
        paths.push(keys.new_tree(&mut runner).unwrap().current().to_path());
    }
    paths
}

/// Every kind the hand-written examples cover (every kind there is, as
/// `key_model` checks) appears among the paths.
fn check_coverage(paths: &[String]) {
    let expected: BTreeSet<&str> = keygen::valid_paths()
        .iter()
        .map(|(_, key)| key.kind_name())
        .collect();
    let generated: BTreeSet<&str> = paths
        .iter()
        .map(|path| Key::parse(path).unwrap().kind_name())
        .collect();
    assert_eq!(generated, expected);
}

fn validation_allocates_nothing_for_accepted_keys(paths: &[String]) {
    let parser: &dyn KeyParser = &DefaultKeyParser;
    for path in paths {
        let (allocated, result) = count(|| black_box(Key::validate_path(black_box(path))));
        assert_eq!(result, Ok(()), "{path:?}");
        assert_eq!(allocated, 0, "Key::validate_path allocated for {path:?}");
        let (allocated, result) = count(|| black_box(parser.validate(black_box(path))));
        assert_eq!(result, Ok(()), "{path:?}");
        assert_eq!(
            allocated, 0,
            "DefaultKeyParser::validate allocated for {path:?}"
        );
    }
}

/// Parsing allocates exactly what the key keeps on the heap, the names too
/// long to be held inline ([`syncproto::key::Name`]), one allocation each,
/// as many as cloning the key makes: no intermediate strings. Returns that
/// count over all the paths.
fn parsing_allocates_only_the_long_names(paths: &[String]) -> usize {
    let mut total = 0;
    for path in paths {
        let (parsing, key) = count(|| black_box(Key::parse(black_box(path)).unwrap()));
        let (cloning, _) = count(|| black_box(key.clone()));
        assert_eq!(parsing, cloning, "Key::parse of {path:?}");
        total += parsing;
    }
    // The counter does count: some generated names are too long to be
    // held inline.
    assert!(total >= paths.len() / 10, "{total} allocations");
    total
}

/// A parser with only `parse`: its `validate` is the provided one, which
/// builds the key and drops it.
#[derive(Debug)]
struct ParseOnly;

impl KeyParser for ParseOnly {
    fn parse(&self, path: &str) -> Result<Key, KeyError> {
        Key::parse(path)
    }
}

/// A server's stream: hello, the paths as KVs in batches of 100, in sync.
fn stream(paths: &[String]) -> Vec<u8> {
    let mut encoder = StreamEncoder::new(WireFormat::Native, usize::MAX);
    let mut wire = bytes::BytesMut::new();
    let mut send = |message: Message| encoder.encode(&message, &mut wire).unwrap();
    send(Message::ServerHello(ServerHello::default()));
    for (batch, chunk) in paths.chunks(100).enumerate() {
        send(Message::Kvs(
            chunk
                .iter()
                .map(|path| SerializedUpdate::upsert(path.as_str(), "{}", batch.to_string()))
                .collect(),
        ));
    }
    send(Message::SyncStatus(SyncStatus::InSync));
    wire.to_vec()
}

/// Allocations while a client machine with `key_parser` takes the stream
/// in 64 KiB reads and its events are drained; also the updates delivered.
fn receive(wire: &[u8], key_parser: Option<Arc<dyn KeyParser>>) -> (usize, usize) {
    let now = Now::new(Instant::now(), Timestamp::ZERO);
    let config = ClientConfig {
        key_parser,
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config, now).unwrap();
    let (allocated, delivered) = count(|| {
        let mut delivered = 0;
        for read in wire.chunks(64 * 1024) {
            client.handle_input(now, read);
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Updates(updates) => delivered += updates.len(),
                    ClientEvent::Dropped { key, reason } => panic!("dropped {key}: {reason}"),
                    ClientEvent::Closed(reason) => panic!("closed: {reason}"),
                    _ => {}
                }
            }
        }
        delivered
    });
    (allocated, delivered)
}

/// `heap_names`: how many allocations parsing all the paths makes.
fn the_client_key_check_adds_no_allocation(paths: &[String], heap_names: usize) {
    let wire = stream(paths);
    let (unchecked, delivered) = receive(&wire, None);
    assert_eq!(delivered, paths.len());
    let (checked, delivered) = receive(&wire, ClientConfig::default().key_parser);
    assert_eq!(delivered, paths.len());
    assert_eq!(
        checked,
        unchecked,
        "the default key check allocated {} times for {} keys",
        checked as isize - unchecked as isize,
        paths.len()
    );
    // A check that builds each key shows up in the same count, by exactly
    // the allocations of parsing the keys.
    let (parsing, _) = receive(&wire, Some(Arc::new(ParseOnly)));
    assert_eq!(
        parsing,
        unchecked + heap_names,
        "{parsing} allocations with a parsing check, {unchecked} without"
    );
    eprintln!(
        "client receive of {} keys: {unchecked} allocations unchecked, {checked} with the \
         default check, {parsing} with a parsing check",
        paths.len()
    );
}

fn main() {
    // Only this thread allocates: the counts are its own.
    assert_eq!(threads(), Some(1), "the counts need a single thread");
    let paths = paths();
    check_coverage(&paths);
    validation_allocates_nothing_for_accepted_keys(&paths);
    let heap_names = parsing_allocates_only_the_long_names(&paths);
    eprintln!(
        "parsing {} keys: {heap_names} allocations (names too long to be held inline)",
        paths.len()
    );
    the_client_key_check_adds_no_allocation(&paths, heap_names);
    assert_eq!(threads(), Some(1));
    eprintln!("key_alloc: {} paths, all checks passed", paths.len());
}
