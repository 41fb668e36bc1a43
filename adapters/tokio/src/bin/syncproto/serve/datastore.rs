//! The datastore `serve` serves: records from the file, made into what a
//! real Typha sends, applied to the cache the server follows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syncproto::fanout::SnapshotCache;
use syncproto::message::{ByteString, Revision, SerializedUpdate, SyncStatus};
use syncproto::records::{Record, parse_line};

use crate::failure::Failure;

/// Parses the lines of `text` (numbering from `first_line`); with
/// `complete_only`, a last line without its newline is left for later.
/// Returns the records and how many bytes were consumed.
pub(super) fn parse_records(
    name: &Path,
    text: &[u8],
    first_line: usize,
    complete_only: bool,
) -> Result<(Vec<Record>, usize), Failure> {
    let consumed = match complete_only {
        true => text
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |at| at + 1),
        false => text.len(),
    };
    let mut records = Vec::new();
    for (index, line) in text[..consumed].split(|byte| *byte == b'\n').enumerate() {
        let number = first_line + index;
        let line = std::str::from_utf8(line)
            .map_err(|_| Failure::input(format!("{}:{number}: not UTF-8", name.display())))?;
        match parse_line(line) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(error) => {
                return Err(Failure::input(format!(
                    "{}:{number}: {error}",
                    name.display()
                )));
            }
        }
    }
    Ok((records, consumed))
}

/// How many lines `text` ends (its newlines).
pub(super) fn count_lines(text: &[u8]) -> usize {
    text.iter().filter(|byte| **byte == b'\n').count()
}

/// How each update from the file is made into what a real Typha sends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prepare {
    /// Keep the file's Go revision types instead of sending strings.
    pub(super) typed_revisions: bool,
}

impl Prepare {
    fn update(self, mut update: SerializedUpdate) -> SerializedUpdate {
        if !self.typed_revisions {
            // Upstream's revisions are Go strings (`""` when unknown).
            update.revision = match &update.revision {
                Revision::Nil => Revision::String(Default::default()),
                Revision::String(_) => update.revision,
                typed => Revision::String(typed.to_string().into()),
            };
        }
        update.move_resource_version_out();
        update
    }
}

/// The served cache, and which keys it holds (to delete those a rewritten
/// file no longer has).
#[derive(Debug)]
pub(super) struct Datastore {
    cache: SnapshotCache,
    prepare: Prepare,
    live: BTreeSet<ByteString>,
    /// Whether any record set a status.
    status_set: bool,
}

impl Datastore {
    /// An empty datastore on `cache`.
    pub(super) fn new(cache: SnapshotCache, prepare: Prepare) -> Datastore {
        Datastore {
            cache,
            prepare,
            live: BTreeSet::new(),
            status_set: false,
        }
    }

    /// The cache, to serve.
    pub(super) fn cache(&self) -> &SnapshotCache {
        &self.cache
    }

    /// Whether a record has set a status yet.
    pub(super) fn status_set(&self) -> bool {
        self.status_set
    }

    /// Declares the data in sync (what loading it all means, unless the
    /// records said otherwise).
    pub(super) fn set_in_sync(&mut self) {
        self.cache
            .set_status(std::time::Instant::now(), SyncStatus::InSync);
    }

    /// Applies records in order, statuses between the updates around them.
    pub(super) fn apply(&mut self, records: Vec<Record>) {
        let now = std::time::Instant::now();
        let mut batch = Vec::new();
        for record in records {
            match record {
                Record::Update(update) => {
                    let update = self.prepare.update(update);
                    match update.value {
                        Some(_) => self.live.insert(update.key.clone()),
                        None => self.live.remove(&update.key),
                    };
                    batch.push(update);
                }
                Record::Status(status) => {
                    self.cache.apply(now, std::mem::take(&mut batch));
                    self.cache.set_status(now, status);
                    self.status_set = true;
                }
            }
        }
        self.cache.apply(now, batch);
    }

    /// Makes `records` (a whole file, read anew) the datastore: the state
    /// they leave replaces the served one, keys they do not hold are
    /// deleted, and unchanged ones are not sent again (the cache drops
    /// updates that change nothing). The status becomes the last the
    /// records set, else in-sync. Returns the number of keys.
    pub(super) fn replace(&mut self, records: Vec<Record>) -> usize {
        let mut state: BTreeMap<ByteString, SerializedUpdate> = BTreeMap::new();
        let mut status = None;
        for record in records {
            match record {
                Record::Update(update) => {
                    let update = self.prepare.update(update);
                    match update.value {
                        Some(_) => state.insert(update.key.clone(), update),
                        None => state.remove(&update.key),
                    };
                }
                Record::Status(set) => status = Some(set),
            }
        }
        let gone = self
            .live
            .iter()
            .filter(|key| !state.contains_key(*key))
            .map(|key| {
                self.prepare
                    .update(SerializedUpdate::deletion(key.clone(), Revision::Nil))
            });
        let batch: Vec<SerializedUpdate> = gone.chain(state.values().cloned()).collect();
        let now = std::time::Instant::now();
        self.cache.apply(now, batch);
        self.live = state.into_keys().collect();
        self.status_set |= status.is_some();
        let status = status.unwrap_or(SyncStatus::InSync);
        if self.cache.status() != status {
            self.cache.set_status(now, status);
        }
        self.live.len()
    }
}
