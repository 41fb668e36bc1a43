//! A deterministic, cluster-shaped datastore for interop and end-to-end
//! tests: workload endpoints with JSON values of 300–800 bytes, config keys
//! with plain-text values, revisions of several Go types, TTLs, one value
//! over 256 KiB and one key no parser knows; plus a stream of later changes
//! with deletions and status changes.

use std::collections::BTreeMap;

use bytes::Bytes;
use syncproto::message::{Revision, SerializedUpdate, SyncStatus, UpdateType};
use syncproto::records::Record;

use super::harness::Rng;

/// A key upstream's grammar does not know: a client drops it.
pub const UNKNOWN_KEY: &str = "/calico/v1/unknown-kind/mystery";
/// The key holding the large value.
pub const LARGE_KEY: &str = "/calico/v1/policy/tier/default/policy/huge";

fn endpoint_key(index: usize) -> String {
    format!(
        "/calico/v1/host/node-{:03}/workload/kubernetes/ns-{}%2fpod-{index:05}/endpoint/eth0",
        index % 200,
        index % 17
    )
}

fn endpoint_value(rng: &mut Rng, index: usize) -> String {
    let labels: Vec<String> = (0..(rng.below(12) + 2))
        .map(|l| format!("\"label-{l}\":\"value-{}-{}\"", index % 31, rng.below(1000)))
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

/// The snapshot: `endpoints` workload endpoints plus the special keys.
pub fn snapshot(endpoints: usize, seed: u64) -> Vec<SerializedUpdate> {
    let mut rng = Rng::new(seed);
    let mut updates = Vec::new();
    for index in 0..endpoints {
        let value = endpoint_value(&mut rng, index);
        updates.push(SerializedUpdate {
            update_type: UpdateType::New,
            v3_resource_version: format!("{}", 1000 + index),
            ..SerializedUpdate::upsert(endpoint_key(index), value, format!("{}", 5000 + index))
        });
    }
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
    let large: String =
        std::iter::repeat_n("{\"rule\":\"allow\",\"ports\":[80,443]},", 9000).collect();
    updates.push(SerializedUpdate {
        update_type: UpdateType::New,
        ..SerializedUpdate::upsert(
            LARGE_KEY,
            format!("[{}]", large.trim_end_matches(',')),
            "900",
        )
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

/// Changes after the snapshot: updates, deletions, new keys, and a
/// resync/in-sync status flip in the middle.
pub fn changes(endpoints: usize, seed: u64) -> Vec<Record> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut records = Vec::new();
    for step in 0..200 {
        let index = rng.below(endpoints.max(1));
        let record = match step % 4 {
            0 => SerializedUpdate::deletion(
                endpoint_key(index),
                Revision::Int64(10_000 + step as i64),
            ),
            1 => SerializedUpdate::upsert(
                endpoint_key(endpoints + step),
                endpoint_value(&mut rng, step),
                format!("n{step}"),
            ),
            _ => SerializedUpdate::upsert(
                endpoint_key(index),
                endpoint_value(&mut rng, index + step),
                format!("u{step}"),
            ),
        };
        records.push(Record::Update(record));
        if step == 100 {
            records.push(Record::Status(SyncStatus::ResyncInProgress));
        }
        if step == 150 {
            records.push(Record::Status(SyncStatus::InSync));
        }
    }
    records
}

/// The datastore after `snapshot` and `changes`, as key → update.
pub fn final_state(
    snapshot: &[SerializedUpdate],
    changes: &[Record],
) -> BTreeMap<String, SerializedUpdate> {
    let mut state: BTreeMap<String, SerializedUpdate> = snapshot
        .iter()
        .map(|u| (u.key.clone(), u.clone()))
        .collect();
    for record in changes {
        if let Record::Update(update) = record {
            apply(&mut state, update);
        }
    }
    state
}

/// Applies one update to a key → update map (no value: the key goes).
pub fn apply(state: &mut BTreeMap<String, SerializedUpdate>, update: &SerializedUpdate) {
    match &update.value {
        Some(_) => {
            state.insert(update.key.clone(), update.clone());
        }
        None => {
            state.remove(&update.key);
        }
    }
}

/// What a state comparison looks at: value, revision (type and text), TTL.
pub fn comparable(update: &SerializedUpdate) -> (Option<Bytes>, Option<&'static str>, String, i64) {
    (
        update.value.clone(),
        update.revision.go_type_name(),
        update.revision.to_string(),
        update.ttl_nanos,
    )
}
