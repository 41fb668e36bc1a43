//! Unit tests of the cache internals: generations, subscriptions, trimming.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::*;
use crate::codec::StreamDecoder;
use crate::message::{Message, SerializedUpdate, SyncStatus};

fn upsert(index: usize) -> SerializedUpdate {
    SerializedUpdate::upsert(
        format!("/calico/v1/config/K{index:04}"),
        format!("{index}"),
        "1",
    )
}

fn drain(
    subscription: &mut Subscription,
    flavour: Flavour,
    compressed_snapshot: bool,
) -> Vec<Pull> {
    // Only checksums read the time, and these subscriptions send none.
    drain_at(subscription, flavour, compressed_snapshot, Instant::now())
}

fn drain_at(
    subscription: &mut Subscription,
    flavour: Flavour,
    compressed_snapshot: bool,
    now: Instant,
) -> Vec<Pull> {
    let mut pulls = Vec::new();
    loop {
        match subscription.pull(flavour, compressed_snapshot, now) {
            Pull::Idle => return pulls,
            other => pulls.push(other),
        }
    }
}

const NATIVE: Flavour = Flavour {
    format: WireFormat::Native,
    compressed: false,
};

#[test]
fn a_subscription_sends_snapshot_batches_status_then_the_log() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        batch_size: 10,
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    cache.apply(now, (0..25).map(upsert));
    cache.set_status(now, SyncStatus::InSync);
    let mut subscription = cache.subscribe(now);
    assert_eq!(subscription.snapshot_len(), 25);
    cache.apply(now, [upsert(99)]);
    let pulls = drain(&mut subscription, NATIVE, false);
    // 3 batches, the end, the status, the later change.
    assert_eq!(pulls.len(), 6, "{pulls:?}");
    assert_eq!(pulls[3], Pull::EndOfSnapshot);
    let mut stream = BytesMut::from(&crate::codec::native::PREAMBLE[..]);
    for pull in &pulls {
        if let Pull::Output(output) = pull {
            stream.extend_from_slice(&output.bytes);
        }
    }
    let mut decoder = StreamDecoder::new(WireFormat::Native, usize::MAX, None);
    let messages: Vec<Message> =
        std::iter::from_fn(|| decoder.decode(&mut stream).unwrap()).collect();
    let keys: usize = messages
        .iter()
        .map(|m| match m {
            Message::Kvs(updates) => updates.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(keys, 26);
    assert_eq!(messages[3], Message::SyncStatus(SyncStatus::InSync));
}

#[test]
fn the_compressed_snapshot_is_built_once_per_generation() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    cache.apply(now, (0..100).map(upsert));
    let gob = Flavour {
        format: WireFormat::Gob,
        compressed: false,
    };
    let mut first = cache.subscribe(now);
    let mut second = cache.subscribe(now);
    let blob_a = first.pull(gob, true, now);
    let built = cache.stats().outputs_built;
    let blob_b = second.pull(gob, true, now);
    assert_eq!(blob_a, blob_b);
    assert_eq!(
        cache.stats().outputs_built,
        built,
        "second client rebuilt the snapshot"
    );
    assert_eq!(first.pull(gob, true, now), Pull::EndOfSnapshot);
}

#[test]
fn a_laggard_falls_behind_at_its_deadline_and_holds_its_changes_until_dropped() {
    let start = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        max_fall_behind: Duration::from_secs(10),
        new_client_grace: Duration::ZERO,
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    let mut laggard = cache.subscribe(start);
    // The end of the snapshot; its status, WaitForDatastore, is never sent.
    assert_eq!(drain(&mut laggard, NATIVE, false), [Pull::EndOfSnapshot]);
    assert_eq!(laggard.fall_behind_deadline(), None, "nothing waits");
    cache.apply(start, [upsert(1)]);
    let deadline = start + Duration::from_secs(10);
    assert_eq!(laggard.fall_behind_deadline(), Some(deadline));
    assert_eq!(
        laggard.fallen_behind(deadline - Duration::from_nanos(1)),
        None
    );
    assert_eq!(
        laggard.fallen_behind(deadline),
        Some(Duration::from_secs(10))
    );
    // Nothing trims a change a connection has not sent: the laggard holds
    // both until its driver closes it at the deadline and drops it.
    let later = start + Duration::from_secs(20);
    cache.apply(later, [upsert(2)]);
    cache.trim(later);
    assert_eq!(cache.stats().log_len, 2);
    drop(laggard);
    assert_eq!(cache.stats().log_len, 0);
}

#[test]
fn dropped_subscriptions_release_the_log() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    let subscription = cache.subscribe(now);
    for batch in 0..5 {
        cache.apply(now, (batch * 10..batch * 10 + 10).map(upsert));
    }
    assert_eq!(cache.stats().log_len, 5, "one log entry per batch");
    drop(subscription);
    cache.trim(now);
    assert_eq!(cache.stats().log_len, 0);
    assert_eq!(cache.stats().subscriptions, 0);
}

#[test]
fn a_client_in_its_grace_keeps_its_replay_but_joiners_do_not_extend_it() {
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let cache = SnapshotCache::new(CacheConfig {
        max_fall_behind: Duration::from_secs(300),
        new_client_grace: Duration::from_secs(300),
        ..CacheConfig::default()
    });
    let first = cache.subscribe(start);
    cache.apply(start, [upsert(1)]);
    // 200 s later a joiner shares the first generation and replays the
    // change.
    let second = cache.subscribe(at(200));
    assert_eq!(second.snapshot_sequence(), 0);
    // Past the limit, the change is kept for the second client, still in
    // its grace...
    cache.trim(at(400));
    assert_eq!(cache.stats().log_len, 1);
    // ...but a new joiner does not start from it (it would keep it another
    // grace period): it gets a generation that includes it.
    let third = cache.subscribe(at(400));
    assert_eq!(third.snapshot_sequence(), 1);
    // Once the second client's grace is over it has fallen behind (its
    // driver closes it), and the change goes with the last client holding
    // it.
    assert!(second.fallen_behind(at(500)).is_some());
    drop((first, second));
    assert_eq!(cache.stats().log_len, 0);
}

/// The messages in `pulls`' output, decoded.
fn decoded(pulls: &[Pull]) -> Vec<Message> {
    let mut stream = BytesMut::from(&crate::codec::native::PREAMBLE[..]);
    for pull in pulls {
        if let Pull::Output(output) = pull {
            stream.extend_from_slice(&output.bytes);
        }
    }
    let mut decoder = StreamDecoder::new(WireFormat::Native, usize::MAX, None);
    std::iter::from_fn(|| decoder.decode(&mut stream).unwrap()).collect()
}

/// The `Kvs` messages (as update counts), statuses and checksums (as entry
/// counts) in `pulls`.
fn shapes(pulls: &[Pull]) -> Vec<String> {
    decoded(pulls)
        .into_iter()
        .map(|message| match message {
            Message::Kvs(updates) => format!("kvs {}", updates.len()),
            Message::SyncStatus(status) => format!("status {status}"),
            Message::Checksum(checksum) => format!("checksum {}", checksum.kv_count),
            other => format!("{:?}", other.kind()),
        })
        .collect()
}

/// A subscription past its (empty) snapshot.
fn live_subscription(cache: &SnapshotCache, now: Instant) -> Subscription {
    let mut subscription = cache.subscribe(now);
    assert_eq!(
        drain(&mut subscription, NATIVE, false),
        [Pull::EndOfSnapshot]
    );
    subscription
}

#[test]
fn each_batch_is_one_message_for_a_client_that_keeps_up() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    let mut subscription = live_subscription(&cache, now);
    cache.apply(now, (0..30).map(upsert));
    cache.apply(now, (30..40).map(upsert));
    // Over the batch size: split into batches of 100.
    cache.apply(now, (100..350).map(upsert));
    cache.set_status(now, SyncStatus::InSync);
    let pulls = drain(&mut subscription, NATIVE, false);
    assert_eq!(
        shapes(&pulls),
        [
            "kvs 30",
            "kvs 10",
            "kvs 100",
            "kvs 100",
            "kvs 50",
            "status in-sync"
        ]
    );
}

#[test]
fn a_lagging_client_gets_whole_batches_coalesced() {
    let start = Instant::now();
    let later = start + Duration::from_millis(50);
    let cache = SnapshotCache::new(CacheConfig::default());
    let mut subscription = live_subscription(&cache, start);
    // Five batches of 40, then one 50 ms newer: the old ones are more than
    // min_batching_age behind the newest, so the client lags.
    for batch in 0..5 {
        cache.apply(start, (batch * 40..batch * 40 + 40).map(upsert));
    }
    cache.apply(later, (500..540).map(upsert));
    let pulls = drain(&mut subscription, NATIVE, false);
    // Coalesced until a message holds at least 100 (3 batches), never
    // splitting one. As upstream, a batch that is no longer behind still
    // joins a message already coalescing, and ends it.
    assert_eq!(shapes(&pulls), ["kvs 120", "kvs 120"]);
    // Caught up: each batch is its own message again.
    cache.apply(later, (600..610).map(upsert));
    cache.apply(later, (610..620).map(upsert));
    let pulls = drain(&mut subscription, NATIVE, false);
    assert_eq!(shapes(&pulls), ["kvs 10", "kvs 10"]);
}

#[test]
fn coalescing_stops_at_a_status_change() {
    let start = Instant::now();
    let later = start + Duration::from_secs(1);
    let cache = SnapshotCache::new(CacheConfig::default());
    let mut subscription = live_subscription(&cache, start);
    cache.apply(start, (0..10).map(upsert));
    cache.set_status(start, SyncStatus::InSync);
    cache.apply(start, (10..20).map(upsert));
    cache.apply(later, (20..30).map(upsert));
    let pulls = drain(&mut subscription, NATIVE, false);
    assert_eq!(
        shapes(&pulls),
        ["kvs 10", "status in-sync", "kvs 20"],
        "the status splits the run; the last two batches coalesce"
    );
}

#[test]
fn wait_for_datastore_is_never_sent() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(now, (0..3).map(upsert));
    let mut subscription = cache.subscribe(now);
    cache.set_status(now, SyncStatus::ResyncInProgress);
    cache.set_status(now, SyncStatus::WaitForDatastore);
    cache.set_status(now, SyncStatus::InSync);
    let pulls = drain(&mut subscription, NATIVE, false);
    assert_eq!(
        shapes(&pulls),
        [
            "kvs 3",
            "status resync",
            "status wait-for-ready",
            "status in-sync"
        ],
        "only the snapshot's own WaitForDatastore is skipped (a later change to it is news)"
    );
}

#[test]
fn an_empty_value_deletes_the_key() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(now, [upsert(1), upsert(2)]);
    let mut emptied = upsert(1);
    emptied.value = Some(bytes::Bytes::new());
    let outcome = cache.apply(now, [emptied]);
    assert_eq!(outcome.accepted, 1);
    let keys: Vec<_> = cache
        .snapshot_updates()
        .into_iter()
        .map(|update| update.key)
        .collect();
    assert_eq!(keys, [upsert(2).key]);
}

/// The checksum of a state holding `upsert(index)` for each index.
fn checksum_of(indexes: impl IntoIterator<Item = usize>) -> crate::checksum::StateChecksum {
    let mut state = crate::checksum::StateChecksum::default();
    for index in indexes {
        let update = upsert(index);
        let value = update.value.as_deref().unwrap_or_default();
        state.replace(
            None,
            Some(crate::checksum::entry_digest(update.key.as_bytes(), value)),
        );
    }
    state
}

/// The checksums in `pulls`, in order.
fn checksums(pulls: &[Pull]) -> Vec<crate::checksum::StateChecksum> {
    decoded(pulls)
        .into_iter()
        .filter_map(|message| match message {
            Message::Checksum(checksum) => Some(checksum.into()),
            _ => None,
        })
        .collect()
}

#[test]
fn checksums_follow_the_initial_sync_then_changes_at_most_once_per_interval() {
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(start, (0..3).map(upsert));
    cache.set_status(start, SyncStatus::InSync);
    let mut subscription = cache.subscribe(start);
    subscription.send_checksums(Duration::from_secs(30));
    let pulls = drain_at(&mut subscription, NATIVE, false, start);
    assert_eq!(shapes(&pulls), ["kvs 3", "status in-sync", "checksum 3"]);
    assert_eq!(checksums(&pulls), [checksum_of(0..3)]);
    assert_eq!(cache.checksum(), checksum_of(0..3));
    // Within the interval: changes only.
    cache.apply(at(10), [upsert(3)]);
    assert_eq!(
        shapes(&drain_at(&mut subscription, NATIVE, false, at(10))),
        ["kvs 1"]
    );
    // Past it: the change, then the state after it.
    cache.apply(at(40), [upsert(4)]);
    let pulls = drain_at(&mut subscription, NATIVE, false, at(40));
    assert_eq!(shapes(&pulls), ["kvs 1", "checksum 5"]);
    assert_eq!(checksums(&pulls), [checksum_of(0..5)]);
}

#[test]
fn a_lagging_clients_checksum_describes_what_it_was_just_sent() {
    let start = Instant::now();
    let later = start + Duration::from_secs(100);
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.set_status(start, SyncStatus::InSync);
    let mut subscription = cache.subscribe(start);
    subscription.send_checksums(Duration::from_secs(30));
    drain_at(&mut subscription, NATIVE, false, start);
    // Three old batches coalesce into one message; a newer one waits.
    for batch in 0..3 {
        cache.apply(start, (batch * 40..batch * 40 + 40).map(upsert));
    }
    cache.apply(later, (500..540).map(upsert));
    let mut pulls = Vec::new();
    while pulls.len() < 2 {
        pulls.push(subscription.pull(NATIVE, false, later));
    }
    assert_eq!(shapes(&pulls), ["kvs 120", "checksum 120"]);
    assert_eq!(checksums(&pulls), [checksum_of(0..120)]);
    assert_ne!(cache.checksum(), checksum_of(0..120));
}
