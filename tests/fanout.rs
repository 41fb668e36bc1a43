//! The fan-out cache end to end: many in-memory clients on one cache reach
//! its state whatever the interleaving of changes and joins, encoding work
//! does not grow with clients, laggards are cut off, the log stays bounded.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use common::harness::Rng;
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::CloseReason;
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus};

fn key(index: u16) -> String {
    format!("/calico/v1/host/node-{:03}/config/Key{index}", index % 50)
}

fn upsert(index: u16, value: u32) -> SerializedUpdate {
    SerializedUpdate::upsert(key(index), format!("{{\"v\":{value}}}"), format!("{value}"))
}

fn formats(choice: u8) -> (WireFormat, bool) {
    match choice % 4 {
        0 => (WireFormat::Native, false),
        1 => (WireFormat::Native, true),
        2 => (WireFormat::Gob, false),
        _ => (WireFormat::Gob, true),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u16, u32),
    Delete(u16),
    Status(SyncStatus),
    Join(u8),
    /// Let a subset of the clients read (a bitmask over client indices).
    Read(u64),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0u16..300).prop_map(Op::Delete),
        1 => proptest::sample::select(SyncStatus::ALL.to_vec()).prop_map(Op::Status),
        2 => any::<u8>().prop_map(Op::Join),
        3 => any::<u64>().prop_map(Op::Read),
        1 => (0u16..5000).prop_map(Op::Advance),
    ]
}

/// Runs a script against a fleet and checks every client converges.
fn run_script(initial: &[(u16, u32)], ops: &[Op], rebuild_after: usize) -> Fleet {
    let cache = SnapshotCache::new(CacheConfig {
        rebuild_after,
        ..CacheConfig::default()
    });
    let mut fleet = Fleet::new(cache);
    let start = fleet.clock.now().instant;
    fleet
        .cache
        .apply(start, initial.iter().map(|(k, v)| upsert(*k, *v)));
    fleet.cache.set_status(start, SyncStatus::InSync);
    for op in ops {
        let now = fleet.clock.now().instant;
        match op {
            Op::Upsert(k, v) => {
                fleet.cache.apply(now, [upsert(*k, *v)]);
            }
            Op::Delete(k) => {
                fleet
                    .cache
                    .apply(now, [SerializedUpdate::deletion(key(*k), "9")]);
            }
            Op::Status(status) => fleet.cache.set_status(now, *status),
            Op::Join(choice) => {
                let (format, compressed) = formats(*choice);
                fleet.join(format, compressed);
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
    fleet
}

fn assert_converged(fleet: &Fleet) {
    let expected = fleet.expected();
    let status = fleet.cache.status();
    for (index, member) in fleet.members.iter().enumerate() {
        assert_eq!(member.client_closed, None, "client {index}");
        assert_eq!(member.server_closed, None, "client {index}");
        assert_eq!(member.view, expected, "client {index}");
        // WaitForDatastore is never sent for the snapshot (as upstream): a
        // client that joined while the cache waited was told nothing since
        // its own initial ResyncInProgress.
        let told_nothing = status == SyncStatus::WaitForDatastore
            && member.status == Some(SyncStatus::ResyncInProgress);
        assert!(
            member.status == Some(status) || told_nothing,
            "client {index}: {:?}, cache {status}",
            member.status
        );
        assert!(member.server.is_flushed(), "client {index}");
        // Snapshot checksums (on by default) all verified, and the client
        // holds the cache's.
        assert!(
            member.checksums.iter().all(|report| report.verified),
            "client {index}: {:?}",
            member.checksums
        );
        assert_eq!(
            member.client.received_checksum(),
            Some(fleet.cache.checksum()),
            "client {index}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_client_reaches_the_cache_state(
        initial in vec((0u16..300, any::<u32>()), 0..120),
        ops in vec(op(), 0..80),
        rebuild_after in 1usize..50,
    ) {
        let fleet = run_script(&initial, &ops, rebuild_after);
        assert_converged(&fleet);
    }
}

#[test]
fn a_thousand_clients_in_both_formats_converge() {
    let mut rng = Rng::new(1000);
    let initial: Vec<(u16, u32)> = (0..500).map(|i| (i, rng.next() as u32)).collect();
    let mut ops = Vec::new();
    for round in 0..1000u32 {
        ops.push(Op::Join(rng.below(4) as u8));
        let k = rng.below(600) as u16;
        ops.push(match round % 7 {
            0 => Op::Delete(k),
            _ => Op::Upsert(k, rng.next() as u32),
        });
        if round % 50 == 0 {
            ops.push(Op::Read(rng.next()));
        }
        if round == 500 {
            ops.push(Op::Status(SyncStatus::ResyncInProgress));
        }
        if round == 700 {
            ops.push(Op::Status(SyncStatus::InSync));
        }
    }
    let fleet = run_script(&initial, &ops, 100);
    assert_eq!(fleet.members.len(), 1000);
    assert_converged(&fleet);
    fleet.cache.trim(fleet.clock.now().instant);
    let stats = fleet.cache.stats();
    assert_eq!(stats.subscriptions, 1000);
    // Every client has passed every change: only what a joiner would
    // replay after the latest generation is kept.
    assert!(stats.log_len <= 100, "log holds {} entries", stats.log_len);
}

/// The cache's readers take no lock: a writer thread applying changes while
/// reader threads pull for their clients (joining as it writes) must leave
/// every client with the writer's final state, whatever the interleaving.
#[test]
fn clients_on_other_threads_follow_a_writer_to_its_state() {
    const READERS: usize = 4;
    const CLIENTS_PER_READER: usize = 24;
    const CHANGES: u32 = 3_000;
    let cache = SnapshotCache::new(CacheConfig {
        // Freeze a generation now and then, so late joiners start from
        // different snapshots.
        rebuild_after: 200,
        ..CacheConfig::default()
    });
    let start = std::time::Instant::now();
    cache.apply(start, (0..300).map(|k| upsert(k, 0)));
    cache.set_status(start, SyncStatus::InSync);
    let written = std::sync::atomic::AtomicU32::new(0);
    let fleets = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut rng = Rng::new(7);
            for change in 1..=CHANGES {
                let now = std::time::Instant::now();
                let k = rng.below(300) as u16;
                match change % 10 {
                    0 => {
                        cache.apply(now, [SerializedUpdate::deletion(key(k), "9")]);
                    }
                    5 => cache.set_status(now, SyncStatus::ResyncInProgress),
                    6 => cache.set_status(now, SyncStatus::InSync),
                    _ => {
                        let batch = (0..1 + rng.below(5) as u16).map(|i| upsert(k + i, change));
                        cache.apply(now, batch);
                    }
                }
                written.store(change, std::sync::atomic::Ordering::Release);
            }
        });
        let readers: Vec<_> = (0..READERS)
            .map(|reader| {
                let cache = cache.clone();
                let written = &written;
                scope.spawn(move || {
                    let mut fleet = Fleet::new(cache);
                    let mut joined = 0;
                    loop {
                        let progress = written.load(std::sync::atomic::Ordering::Acquire);
                        // Join in step with the writer's progress.
                        let due =
                            (progress as usize * CLIENTS_PER_READER).div_ceil(CHANGES as usize);
                        while joined < due.max(1) {
                            let (format, compressed) = formats((joined + reader) as u8);
                            fleet.join(format, compressed);
                            joined += 1;
                        }
                        fleet.pump_all();
                        if progress == CHANGES && joined == CLIENTS_PER_READER {
                            break;
                        }
                    }
                    fleet.pump_all();
                    fleet
                })
            })
            .collect();
        writer.join().unwrap();
        readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect::<Vec<_>>()
    });
    for fleet in &fleets {
        assert_eq!(fleet.members.len(), CLIENTS_PER_READER);
        assert_converged(fleet);
    }
}

/// The cache's encoding work for a fixed script, with `clients` clients.
fn encodes_with(clients: usize, format: WireFormat, compressed: bool) -> (u64, u64) {
    let cache = SnapshotCache::new(CacheConfig::default());
    let mut fleet = Fleet::new(cache);
    let now = fleet.clock.now().instant;
    fleet.cache.apply(now, (0..400).map(|i| upsert(i, 1)));
    fleet.cache.set_status(now, SyncStatus::InSync);
    for _ in 0..clients {
        fleet.join(format, compressed);
    }
    fleet.pump_all();
    for round in 0..50u32 {
        fleet
            .cache
            .apply(now, [upsert((round * 7 % 400) as u16, round + 2)]);
        fleet.pump_all();
    }
    assert_converged(&fleet);
    let stats = fleet.cache.stats();
    (stats.updates_encoded, stats.outputs_built)
}

#[test]
fn encoding_work_does_not_grow_with_clients() {
    for (format, compressed) in [
        (WireFormat::Native, false),
        (WireFormat::Native, true),
        (WireFormat::Gob, false),
        (WireFormat::Gob, true),
    ] {
        let one = encodes_with(1, format, compressed);
        let hundred = encodes_with(100, format, compressed);
        assert_eq!(one, hundred, "{format:?} compressed {compressed}");
        // 400 snapshot updates and 50 changes, each encoded once.
        assert_eq!(one.0, 450, "{format:?} compressed {compressed}");
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_limit() {
    let config = CacheConfig {
        max_fall_behind: Duration::from_secs(300),
        new_client_grace: Duration::from_secs(300),
        ..CacheConfig::default()
    };
    let mut fleet = Fleet::new(SnapshotCache::new(config));
    let now = fleet.clock.now().instant;
    fleet.cache.apply(now, (0..10).map(|i| upsert(i, 1)));
    fleet.cache.set_status(now, SyncStatus::InSync);
    let reader = fleet.join(WireFormat::Native, false);
    let laggard = fleet.join(WireFormat::Gob, false);
    fleet.pump_all();
    fleet.members[laggard].stalled = true;
    // Changes keep coming for ten minutes; the laggard reads nothing.
    for minute in 0..10u32 {
        let now = fleet.clock.now().instant;
        fleet.cache.apply(now, [upsert(1, minute + 10)]);
        fleet.advance(Duration::from_secs(60));
    }
    let laggard = &fleet.members[laggard];
    assert_eq!(
        laggard.server_closed,
        Some(CloseReason::FellBehind {
            limit: Duration::from_secs(300)
        })
    );
    let reader = &fleet.members[reader];
    assert_eq!(reader.server_closed, None);
    assert_eq!(reader.client_closed, None);
    assert_eq!(reader.view, fleet.expected());
    // The laggard no longer holds the log back: of the ten changes it
    // missed, only those a joiner would replay are kept.
    fleet.cache.trim(fleet.clock.now().instant);
    assert!(
        fleet.cache.stats().log_len < 10,
        "{:?}",
        fleet.cache.stats()
    );
    assert_eq!(fleet.cache.stats().subscriptions, 1);
}

#[test]
fn the_log_is_trimmed_once_every_client_has_passed() {
    let config = CacheConfig {
        rebuild_after: 10,
        ..CacheConfig::default()
    };
    let mut fleet = Fleet::new(SnapshotCache::new(config));
    let now = fleet.clock.now().instant;
    fleet.cache.set_status(now, SyncStatus::InSync);
    let slow = fleet.join(WireFormat::Native, false);
    fleet.join(WireFormat::Gob, true);
    fleet.pump_all();
    fleet.members[slow].stalled = true;
    for round in 0..200u32 {
        fleet.cache.apply(now, [upsert((round % 20) as u16, round)]);
        fleet.pump_all();
    }
    // The stalled client still needs every change since it stalled.
    assert_eq!(fleet.cache.stats().log_len, 200);
    fleet.members[slow].stalled = false;
    fleet.pump_all();
    fleet.cache.trim(now);
    // Now only what a joiner would replay after the latest generation.
    assert!(
        fleet.cache.stats().log_len <= 10,
        "{:?}",
        fleet.cache.stats()
    );
    assert_converged(&fleet);
}

#[test]
fn a_lagging_client_gets_changes_batched() {
    let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig::default()));
    let now = fleet.clock.now().instant;
    fleet.cache.set_status(now, SyncStatus::InSync);
    let lagging = fleet.join(WireFormat::Native, false);
    let keeping_up = fleet.join(WireFormat::Native, false);
    fleet.pump_all();
    let before = (
        fleet.members[lagging].updates_events,
        fleet.members[keeping_up].updates_events,
    );
    fleet.members[lagging].stalled = true;
    // 250 change batches of one update each, 1 ms apart.
    for round in 0..250u32 {
        let now = fleet.clock.now().instant;
        fleet.cache.apply(now, [upsert(round as u16, round)]);
        fleet.pump(keeping_up);
        fleet.advance(Duration::from_millis(1));
    }
    fleet.members[lagging].stalled = false;
    fleet.pump_all();
    assert_converged(&fleet);
    // One message per batch while keeping up.
    assert_eq!(fleet.members[keeping_up].updates_events - before.1, 250);
    // Behind: the batches at least 10 ms (min_batching_age) older than the
    // newest (0..=239) are coalesced 100 to a message, the last run taking
    // in the first batch that is no longer behind (240, as upstream); the
    // nine after it go one by one.
    assert_eq!(fleet.members[lagging].updates_events - before.0, 3 + 9);
}

#[test]
fn no_op_updates_are_squashed_end_to_end() {
    let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig::default()));
    let now = fleet.clock.now().instant;
    fleet.cache.set_status(now, SyncStatus::InSync);
    let client = fleet.join(WireFormat::Gob, false);
    fleet.pump_all();
    let before = fleet.members[client].updates_events;
    let first = fleet.cache.apply(now, [upsert(1, 5)]);
    fleet.pump_all();
    // Same value, new revision: nothing a client holds changes.
    let mut again = upsert(1, 5);
    again.revision = "6".into();
    let second = fleet.cache.apply(now, [again]);
    fleet.pump_all();
    // A deletion always passes, even twice.
    let deletes = fleet.cache.apply(
        now,
        [
            SerializedUpdate::deletion(key(1), "7"),
            SerializedUpdate::deletion(key(1), "8"),
        ],
    );
    fleet.pump_all();
    assert_eq!((first.accepted, first.skipped), (1, 0));
    assert_eq!((second.accepted, second.skipped), (0, 1));
    assert_eq!((deletes.accepted, deletes.skipped), (2, 0));
    assert_eq!(fleet.cache.stats().no_ops_skipped, 1);
    // One message for the upsert, one batch for the two deletions.
    assert_eq!(fleet.members[client].updates_events - before, 2);
    assert_converged(&fleet);
}

#[test]
fn a_joiner_replaying_old_changes_is_not_cut_off_during_its_grace() {
    // Upstream's limits: 300 s behind, after a 300 s grace.
    let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig::default()));
    let start = fleet.clock.now().instant;
    fleet.cache.apply(start, (0..10).map(|i| upsert(i, 1)));
    fleet.cache.set_status(start, SyncStatus::InSync);
    // A client that never reads holds the log from here on.
    let early = fleet.join(WireFormat::Native, false);
    fleet.members[early].stalled = true;
    fleet.advance(Duration::from_secs(1));
    fleet.cache.apply(fleet.clock.now().instant, [upsert(1, 2)]);
    // Nearly the limit later, a client joins: it shares the early client's
    // generation and replays that change, already 289 s old. It reads
    // nothing for a few seconds (a large snapshot, a slow start).
    fleet.advance(Duration::from_secs(289));
    let joiner = fleet.join(WireFormat::Gob, false);
    fleet.members[joiner].stalled = true;
    fleet.advance(Duration::from_secs(12));
    // The change is now past the limit. The early client, past its grace,
    // is cut off; the joiner is 12 s into its grace and must keep it.
    fleet.cache.trim(fleet.clock.now().instant);
    fleet.members[joiner].stalled = false;
    fleet.pump_all();
    assert_eq!(
        fleet.members[early].server_closed,
        Some(CloseReason::FellBehind {
            limit: Duration::from_secs(300)
        })
    );
    let joiner = &fleet.members[joiner];
    assert_eq!(joiner.server_closed, None);
    assert_eq!(joiner.client_closed, None);
    assert_eq!(joiner.view, fleet.expected());
    assert_eq!(joiner.status, Some(SyncStatus::InSync));
}

#[test]
fn a_driver_sleeping_until_each_deadline_sees_a_laggard_closed() {
    let limit = Duration::from_secs(30);
    let mut fleet = Fleet::new(SnapshotCache::new(CacheConfig {
        max_fall_behind: limit,
        new_client_grace: Duration::ZERO,
        ..CacheConfig::default()
    }));
    let now = fleet.clock.now().instant;
    fleet.cache.set_status(now, SyncStatus::InSync);
    let laggard = fleet.join(WireFormat::Native, false);
    fleet.pump(laggard);
    assert_eq!(fleet.members[laggard].status, Some(SyncStatus::InSync));
    // A change the client never reads.
    fleet.cache.apply(now, [upsert(1, 1)]);
    // A simulator: jump to each deadline the server asks for, and nowhere
    // else. Pings (every ~10 s) come first, then the fall-behind deadline,
    // which must close the connection when it is reached.
    let server = &mut fleet.members[laggard].server;
    let mut deadlines = 0;
    while let Some(deadline) = server.poll_timeout() {
        assert!(deadlines < 10, "still open after {deadlines} deadlines");
        fleet.clock.advance_to(deadline);
        server.handle_timeout(fleet.clock.now());
        deadlines += 1;
    }
    assert_eq!(
        server.close_reason(),
        Some(&CloseReason::FellBehind { limit })
    );
}
