//! The differential test's script: what the random cases are made of, and
//! the model of the datastore they write.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus};

/// Keys every client generation parses (no modern policy keys, which a
/// v3.2.5 client would drop), including unicode and a long one.
pub(crate) fn key_pool() -> Vec<String> {
    vec![
        "/calico/v1/config/LogSeverityScreen".into(),
        "/calico/v1/config/Ünïcødé-名前".into(),
        format!("/calico/v1/config/{}", "L".repeat(3000)),
        "/calico/v1/host/node-1/config/MTU".into(),
        "/calico/v1/host/node-1/workload/kubernetes/ns-a%2fpod-a/endpoint/eth0".into(),
        "/calico/v1/host/node-2/workload/kubernetes/ns-b%2fpod-b/endpoint/eth0".into(),
        "/calico/v1/Ready".into(),
        "/calico/v1/policy/tier/default/policy/allow-dns".into(),
        "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/gnp-1".into(),
    ]
}

/// What one change writes.
#[derive(Clone)]
pub(crate) enum Change {
    Text(u8),
    Unicode,
    Binary(Vec<u8>),
    /// A value of `kib` KiB.
    Large(u16),
    /// An empty value: a deletion on every wire.
    Empty,
    Delete,
    /// The key's current value again (a no-op for the servers to squash),
    /// or a text value if it has none.
    Same,
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Text(n) => write!(f, "Text({n})"),
            Change::Unicode => f.write_str("Unicode"),
            Change::Binary(bytes) => write!(f, "Binary({bytes:02x?})"),
            Change::Large(kib) => write!(f, "Large({kib} KiB)"),
            Change::Empty => f.write_str("Empty"),
            Change::Delete => f.write_str("Delete"),
            Change::Same => f.write_str("Same"),
        }
    }
}

/// The clients of each server, by slot.
pub(crate) const GO_NEW: usize = 0;
pub(crate) const GO_V325: usize = 1;
pub(crate) const RUST_GOB: usize = 2;
pub(crate) const RUST_NATIVE: usize = 3;

#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// One batch of changes (one flush of the Go hub, one `apply`).
    Write(Vec<(usize, Change)>),
    Status(SyncStatus),
    /// A client drops its connection and connects again.
    Reconnect(usize),
    /// Let this many milliseconds pass.
    Pause(u8),
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) steps: Vec<Step>,
    pub(crate) hub_compresses: bool,
    pub(crate) go_client_compresses: bool,
    pub(crate) rust_client_compresses: bool,
}

pub(crate) fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => any::<u8>().prop_map(Change::Text),
        1 => Just(Change::Unicode),
        1 => vec(any::<u8>(), 1..12).prop_map(Change::Binary),
        1 => (64u16..300).prop_map(Change::Large),
        1 => Just(Change::Empty),
        2 => Just(Change::Delete),
        2 => Just(Change::Same),
    ]
}

pub(crate) fn step(keys: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => vec((0..keys, change()), 1..6).prop_map(Step::Write),
        2 => prop_oneof![
            Just(SyncStatus::InSync),
            Just(SyncStatus::ResyncInProgress),
            Just(SyncStatus::WaitForDatastore),
        ]
        .prop_map(Step::Status),
        1 => (0usize..4).prop_map(Step::Reconnect),
        2 => (0u8..40).prop_map(Step::Pause),
    ]
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    (
        vec(step(key_pool().len()), 0..30),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(steps, hub_compresses, go_client_compresses, rust_client_compresses)| Case {
                steps,
                hub_compresses,
                go_client_compresses,
                rust_client_compresses,
            },
        )
}

/// The script's datastore, and the updates each step writes.
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) state: BTreeMap<ByteString, Bytes>,
    pub(crate) revision: u64,
}

impl Model {
    /// The updates a write step sends, applied to the model.
    pub(crate) fn write(
        &mut self,
        keys: &[String],
        changes: &[(usize, Change)],
    ) -> Vec<SerializedUpdate> {
        changes
            .iter()
            .map(|(index, change)| {
                self.revision += 1;
                let key = ByteString::from(keys[*index].as_str());
                let revision = format!("r{}", self.revision);
                let value: Option<Bytes> = match change {
                    Change::Text(n) => Some(format!("{{\"text\":{n}}}").into()),
                    Change::Unicode => Some("Grüße, 世界 — ✓".into()),
                    Change::Binary(bytes) => Some(Bytes::from([&[0xff], &bytes[..]].concat())),
                    Change::Large(kib) => Some(Bytes::from(
                        (0..usize::from(*kib) * 1024)
                            .map(|i| b'a' + (i % 26) as u8)
                            .collect::<Vec<u8>>(),
                    )),
                    Change::Empty => Some(Bytes::new()),
                    Change::Delete => None,
                    Change::Same => Some(
                        self.state
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| Bytes::from_static(b"same")),
                    ),
                };
                match value.as_ref().filter(|value| !value.is_empty()) {
                    Some(value) => self.state.insert(key.clone(), value.clone()),
                    None => self.state.remove(&key),
                };
                match value {
                    Some(value) => SerializedUpdate::upsert(key, value, revision),
                    None => SerializedUpdate::deletion(key, revision),
                }
            })
            .collect()
    }
}
