//! Helpers over the crate's synthetic datastore (`syncproto::synthetic`):
//! applying changes to a key → update map and comparing states.

use std::collections::BTreeMap;
use syncproto::message::ByteString;

use bytes::Bytes;
use syncproto::message::SerializedUpdate;
use syncproto::records::Record;

/// The synthetic snapshot the interop tests use.
pub fn snapshot(endpoints: usize, seed: u64) -> Vec<SerializedUpdate> {
    syncproto::synthetic::snapshot(endpoints, seed)
}

/// 200 changes after it, with a status flip.
pub fn changes(endpoints: usize, seed: u64) -> Vec<Record> {
    syncproto::synthetic::changes(endpoints, 200, seed)
}

/// The datastore after `snapshot` and `changes`, as key → update.
pub fn final_state(
    snapshot: &[SerializedUpdate],
    changes: &[Record],
) -> BTreeMap<ByteString, SerializedUpdate> {
    let mut state: BTreeMap<ByteString, SerializedUpdate> = snapshot
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
pub fn apply(state: &mut BTreeMap<ByteString, SerializedUpdate>, update: &SerializedUpdate) {
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
