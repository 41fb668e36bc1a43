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
    let mut pulls = Vec::new();
    loop {
        match subscription.pull(flavour, compressed_snapshot) {
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
        if let Pull::Frame(frame) = pull {
            stream.extend_from_slice(&frame.bytes);
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
    let blob_a = first.pull(gob, true);
    let built = cache.stats().frames_built;
    let blob_b = second.pull(gob, true);
    assert_eq!(blob_a, blob_b);
    assert_eq!(
        cache.stats().frames_built,
        built,
        "second client rebuilt the snapshot"
    );
    assert_eq!(first.pull(gob, true), Pull::EndOfSnapshot);
}

#[test]
fn a_subscription_whose_changes_were_trimmed_is_told_so() {
    let start = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        max_fall_behind: Duration::from_secs(10),
        new_client_grace: Duration::ZERO,
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    let mut laggard = cache.subscribe(start);
    assert_eq!(drain(&mut laggard, NATIVE, false).len(), 2); // end, status
    cache.apply(start, [upsert(1)]);
    assert_eq!(laggard.fallen_behind(start + Duration::from_secs(5)), None);
    assert!(
        laggard
            .fallen_behind(start + Duration::from_secs(11))
            .is_some()
    );
    // Later, the first change ages out of the log.
    let later = start + Duration::from_secs(20);
    cache.apply(later, [upsert(2)]);
    cache.trim(later);
    assert_eq!(laggard.pull(NATIVE, false), Pull::Trimmed);
}

#[test]
fn dropped_subscriptions_release_the_log() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig {
        rebuild_after: 0,
        ..CacheConfig::default()
    });
    let subscription = cache.subscribe(now);
    cache.apply(now, (0..50).map(upsert));
    assert_eq!(cache.stats().log_len, 50);
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
    let _first = cache.subscribe(start);
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
    // Once the second client's grace is over, the change goes.
    cache.trim(at(500));
    assert_eq!(cache.stats().log_len, 0);
}
