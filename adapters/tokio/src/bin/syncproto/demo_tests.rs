//! The demo's unit tests: a client's report and its verdict.

use super::*;

fn upsert(key: &str) -> SerializedUpdate {
    SerializedUpdate::upsert(key, "v", "1")
}

impl Report {
    /// `observe` of an owned event, its updates borrowed as a client
    /// hands them over.
    fn observe_owned(&mut self, event: ClientEvent, elapsed: Duration) -> Result<(), String> {
        match event {
            ClientEvent::Updates(updates) => {
                let borrowed: Vec<_> = updates.iter().map(SerializedUpdate::borrowed).collect();
                self.observe(ClientEventRef::Updates(&borrowed), elapsed)
            }
            other => self.observe(ClientEventRef::Other(other), elapsed),
        }
    }
}

#[test]
fn a_done_marker_inside_the_snapshot_waits_for_in_sync() {
    let mut report = Report {
        view: Some(BTreeMap::new()),
        ..Report::default()
    };
    let second = Duration::from_secs(1);
    report
        .observe_owned(
            ClientEvent::Updates(vec![upsert(DONE_KEY), upsert("/a")]),
            second,
        )
        .unwrap();
    assert!(!report.is_complete());
    report
        .observe_owned(ClientEvent::Updates(vec![upsert("/b")]), second)
        .unwrap();
    report
        .observe_owned(ClientEvent::Status(SyncStatus::InSync), 2 * second)
        .unwrap();
    assert!(report.is_complete());
    let report = report.finish(10, None);
    assert_eq!(report.time_to_sync, Some(2 * second));
    assert_eq!(report.kvs, 3);
    let keys: Vec<&str> = report
        .view
        .iter()
        .flat_map(BTreeMap::keys)
        .map(|key| &key[..])
        .collect();
    assert_eq!(keys, ["/a", "/b"]);
}

#[test]
fn a_client_without_a_view_counts_the_servers_checksums() {
    let mut report = Report::default();
    let server = StateChecksum {
        checksum: 7,
        kv_count: 1,
    };
    for local in [server, StateChecksum::default()] {
        let checked = syncproto::client::ChecksumReport {
            server,
            local,
            verified: local == server,
            consecutive_mismatches: u32::from(local != server),
            received_at: std::time::Instant::now(),
        };
        report
            .observe_owned(ClientEvent::Checksum(checked), Duration::ZERO)
            .unwrap();
    }
    report
        .observe_owned(ClientEvent::Updates(vec![upsert("/a")]), Duration::ZERO)
        .unwrap();
    let report = report.finish(10, Some(server));
    assert!(report.view.is_none());
    assert_eq!(
        (report.checksums_checked, report.checksum_mismatches),
        (2, 1)
    );
    assert_eq!(report.checksum, Some(server));
}

#[test]
fn a_client_holds_the_state_only_if_checksum_and_view_agree() {
    let server = StateChecksum {
        checksum: 7,
        kv_count: 1,
    };
    let expected: BTreeMap<ByteString, Bytes> = [(ByteString::from("/a"), Bytes::from("v"))].into();
    let good = Report {
        checksum: Some(server),
        ..Report::default()
    };
    assert!(good.holds(Some(server), &expected));
    // No server checksum, or none from the client: nothing proven.
    assert!(!good.holds(None, &expected));
    let unchecked = Report::default();
    assert!(!unchecked.holds(Some(server), &expected));
    let other = StateChecksum {
        checksum: 8,
        ..server
    };
    assert!(!good.holds(Some(other), &expected));
    let mismatched_on_the_way = Report {
        checksum_mismatches: 1,
        checksum: Some(server),
        ..Report::default()
    };
    assert!(!mismatched_on_the_way.holds(Some(server), &expected));
    let with_view = |view: BTreeMap<ByteString, Bytes>| Report {
        checksum: Some(server),
        view: Some(view),
        ..Report::default()
    };
    assert!(with_view(expected.clone()).holds(Some(server), &expected));
    assert!(!with_view(BTreeMap::new()).holds(Some(server), &expected));
}

#[test]
fn in_sync_alone_is_not_complete() {
    let mut report = Report::default();
    report
        .observe_owned(ClientEvent::Status(SyncStatus::InSync), Duration::ZERO)
        .unwrap();
    report
        .observe_owned(ClientEvent::Updates(vec![upsert("/a")]), Duration::ZERO)
        .unwrap();
    assert!(!report.is_complete());
    report
        .observe_owned(ClientEvent::Updates(vec![upsert(DONE_KEY)]), Duration::ZERO)
        .unwrap();
    assert!(report.is_complete());
}
