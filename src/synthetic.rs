//! Deterministic, cluster-shaped datastore content, for demos, benchmarks
//! and tests: workload endpoints with JSON values of 300–800 bytes, config
//! keys with plain-text values, revisions of several Go types, TTLs, one
//! large value, one key no parser knows, and streams of later changes with
//! deletions and status flips. The same seed always gives the same data.

use crate::message::{Revision, SerializedUpdate, SyncStatus, UpdateType};
use crate::records::Record;
use crate::rng::SplitMix64 as Rng;

/// A key upstream's grammar does not know: a client drops it.
pub const UNKNOWN_KEY: &str = "/calico/v1/unknown-kind/mystery";
/// The key holding the large (about 300 KiB) value.
pub const LARGE_KEY: &str = "/calico/v1/policy/tier/default/policy/huge";

/// The key of workload endpoint number `index`.
pub fn endpoint_key(index: usize) -> String {
    format!(
        "/calico/v1/host/node-{:03}/workload/kubernetes/ns-{}%2fpod-{index:05}/endpoint/eth0",
        index % 200,
        index % 17
    )
}

/// A JSON workload-endpoint value of 300–800 bytes.
fn endpoint_value(rng: &mut Rng, index: usize) -> String {
    let labels: Vec<String> = (0..rng.below(14) + 5)
        .map(|label| {
            format!(
                "\"label-{label:02}\":\"value-{:04}-{:06}\"",
                index % 31,
                rng.below(1_000_000)
            )
        })
        .collect();
    format!(
        "{{\"state\":\"active\",\"name\":\"cali{index:011x}\",\"mac\":\"ee:ee:ee:ee:ee:ee\",\
         \"profile_ids\":[\"kns.ns-{}\",\"ksa.ns-{}.default\"],\"ipv4_nets\":[\"10.{}.{}.{}/32\"],\
         \"labels\":{{{}}}}}",
        index % 17,
        index % 17,
        index / 65536 % 256,
        index / 256 % 256,
        index % 256,
        labels.join(",")
    )
}

/// Workload endpoint number `index` on its own, with a value drawn from
/// `seed`: the same key with another seed is a changed value, for tests and
/// benchmarks that write their own change streams.
pub fn endpoint(index: usize, seed: u64) -> SerializedUpdate {
    // Mix the index in so that neighbouring endpoints differ.
    let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    SerializedUpdate::upsert(
        endpoint_key(index),
        endpoint_value(&mut rng, index),
        format!("{seed}-{index}"),
    )
}

/// `endpoints` workload endpoints, in key order, each new, with string
/// revisions.
pub fn endpoints(endpoints: usize, seed: u64) -> Vec<SerializedUpdate> {
    let mut rng = Rng::new(seed);
    let mut updates: Vec<SerializedUpdate> = (0..endpoints)
        .map(|index| SerializedUpdate {
            update_type: UpdateType::New,
            v3_resource_version: format!("{}", 1000 + index).into(),
            ..SerializedUpdate::upsert(
                endpoint_key(index),
                endpoint_value(&mut rng, index),
                format!("{}", 5000 + index),
            )
        })
        .collect();
    updates.sort_by(|a, b| a.key.cmp(&b.key));
    updates
}

/// A full snapshot: `endpoints` workload endpoints plus config keys with
/// revisions of several Go types and TTLs, one value of about 300 KiB, the
/// `Ready` flag and [`UNKNOWN_KEY`]; in key order.
pub fn snapshot(endpoint_count: usize, seed: u64) -> Vec<SerializedUpdate> {
    let mut updates = endpoints(endpoint_count, seed);
    let typed_revisions = [
        Revision::Int64(77),
        Revision::Int32(-5),
        Revision::Uint8(200),
        Revision::Uint64(u64::MAX),
        Revision::Bool(true),
        Revision::Float64(2.5),
        Revision::Int(123_456),
        Revision::Nil,
    ];
    for (index, revision) in typed_revisions.into_iter().enumerate() {
        updates.push(SerializedUpdate {
            update_type: UpdateType::New,
            ttl_nanos: if index % 2 == 0 { 0 } else { 90_000_000_000 },
            ..SerializedUpdate::upsert(
                format!("/calico/v1/config/Typed{index}"),
                format!("value {index}"),
                revision,
            )
        });
    }
    let large: Vec<&str> =
        std::iter::repeat_n("{\"rule\":\"allow\",\"ports\":[80,443]}", 9000).collect();
    updates.push(SerializedUpdate {
        update_type: UpdateType::New,
        ..SerializedUpdate::upsert(LARGE_KEY, format!("[{}]", large.join(",")), "900")
    });
    updates.push(SerializedUpdate {
        update_type: UpdateType::New,
        ..SerializedUpdate::upsert(UNKNOWN_KEY, "{}", "901")
    });
    updates.push(SerializedUpdate {
        update_type: UpdateType::New,
        ..SerializedUpdate::upsert("/calico/v1/Ready", "true", "902")
    });
    updates.sort_by(|a, b| a.key.cmp(&b.key));
    updates
}

/// `count` changes to a datastore of `endpoint_count` endpoints: updates,
/// deletions and new endpoints, with a resync/in-sync status flip in the
/// middle.
pub fn changes(endpoint_count: usize, count: usize, seed: u64) -> Vec<Record> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut records = Vec::new();
    for step in 0..count {
        let index = rng.below(endpoint_count.max(1));
        let update = match step % 4 {
            0 => SerializedUpdate::deletion(
                endpoint_key(index),
                Revision::Int64(10_000 + step as i64),
            ),
            1 => SerializedUpdate {
                update_type: UpdateType::New,
                ..SerializedUpdate::upsert(
                    endpoint_key(endpoint_count + step),
                    endpoint_value(&mut rng, step),
                    format!("n{step}"),
                )
            },
            _ => SerializedUpdate::upsert(
                endpoint_key(index),
                endpoint_value(&mut rng, index + step),
                format!("u{step}"),
            ),
        };
        records.push(Record::Update(update));
        if step == count / 2 {
            records.push(Record::Status(SyncStatus::ResyncInProgress));
        }
        if step == count * 3 / 4 {
            records.push(Record::Status(SyncStatus::InSync));
        }
    }
    records
}

/// A server-to-client session as a benchmark would replay it: the hello,
/// the snapshot of `endpoint_count` endpoints (plus a few values of 100 KiB
/// and more) in batches of 100, in-sync, then `change_count` live changes
/// (one message each, with deletions) and a ping every 50 messages.
pub fn session(endpoint_count: usize, change_count: usize, seed: u64) -> Vec<crate::Message> {
    use crate::Message;
    use crate::message::{Ping, ServerHello, Timestamp};

    let mut snapshot = snapshot(endpoint_count, seed);
    for index in 0..4 {
        let size = 100 * 1024 + index * 37 * 1024;
        snapshot.push(SerializedUpdate {
            update_type: UpdateType::New,
            ..SerializedUpdate::upsert(
                format!("/calico/v1/policy/tier/default/policy/large-{index}"),
                format!("[{}]", "{\"rule\":\"allow\"}".repeat(size / 16)),
                format!("{}", 7000 + index),
            )
        });
    }
    snapshot.sort_by(|a, b| a.key.cmp(&b.key));
    let mut messages = vec![Message::ServerHello(ServerHello {
        version: "synthetic".into(),
        ..ServerHello::default()
    })];
    messages.extend(
        snapshot
            .chunks(100)
            .map(|batch| Message::Kvs(batch.to_vec())),
    );
    messages.push(Message::SyncStatus(SyncStatus::InSync));
    let mut pings = 0;
    for record in changes(endpoint_count, change_count, seed) {
        messages.push(match record {
            Record::Update(update) => Message::Kvs(vec![update]),
            Record::Status(status) => Message::SyncStatus(status),
        });
        if messages.len() % 50 == 0 {
            pings += 1;
            let timestamp =
                Timestamp::from_unix(1_700_000_000 + pings, 0).unwrap_or(Timestamp::ZERO);
            messages.push(Message::Ping(Ping { timestamp }));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_sorted_and_realistic() {
        let first = snapshot(1000, 7);
        assert_eq!(first, snapshot(1000, 7));
        assert_ne!(first, snapshot(1000, 8));
        assert!(first.windows(2).all(|pair| pair[0].key < pair[1].key));
        let endpoint_sizes: Vec<usize> = endpoints(1000, 7)
            .iter()
            .map(|u| u.value.as_ref().map_or(0, |v| v.len()))
            .collect();
        assert!(
            endpoint_sizes.iter().all(|len| (300..=800).contains(len)),
            "{endpoint_sizes:?}"
        );
        let large = first.iter().find(|u| u.key == LARGE_KEY).unwrap();
        assert!(large.value.as_ref().unwrap().len() >= 256 * 1024);
        assert!(
            first
                .iter()
                .all(|u| crate::key::Key::parse(&u.key).is_ok() || u.key == UNKNOWN_KEY)
        );
        let changes = changes(1000, 200, 7);
        assert_eq!(
            changes
                .iter()
                .filter(|r| matches!(r, Record::Status(_)))
                .count(),
            2
        );
    }
}
