//! `syncproto serve`: serve a datastore from a JSON-lines file.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{Revision, SerializedUpdate, SyncStatus};
use syncproto::records::{Record, parse_line};
use syncproto::server::ServerConfig;
use syncproto_tokio::{Server, ServerHandle, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::failure::{Failure, note};
use crate::observe::EndpointArgs;
use crate::options::{TlsArgs, Wire};
use crate::values;

/// Serve a datastore read from a JSON-lines file (one update per line:
/// `key`, `value` as text or null (or `value_base64`), optional `revision`,
/// `ttl_ns`, `type` new|updated|deleted; or a `{"status": ...}` line).
/// Unless the file sets a status, the datastore is in-sync once loaded.
/// As a real Typha does, revisions are sent as strings and a v3 resource's
/// `metadata.resourceVersion` is moved out of its value into
/// `v3_resource_version`. Runs until interrupted.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, e.g. 0.0.0.0:5473.
    #[arg(long, value_name = "HOST:PORT", value_parser = values::address, default_value = "127.0.0.1:5473")]
    listen: String,
    /// The JSON-lines file holding the datastore.
    #[arg(long)]
    snapshot: PathBuf,
    /// Keep reading lines appended to the file and serve them as updates
    /// (each once its newline is written); a malformed one stops the
    /// server with exit status 3.
    #[arg(long)]
    follow: bool,
    /// Which wire format to accept: auto tells gob and native clients apart.
    #[arg(long, value_enum, default_value_t = WireChoice::Auto)]
    wire: WireChoice,
    /// Send revisions with the Go types the file gives them (a JSON integer
    /// as an int64, a missing one as nil), as senders older than upstream's
    /// string revisions did, instead of as strings (a missing one as "").
    #[arg(long)]
    typed_revisions: bool,
    /// Serve clients that do not support modern policy keys (v3.2.5's, for
    /// one) instead of refusing them as upstream's Typha does; such a
    /// client is disconnected if a modern policy key is about to reach it.
    #[arg(long)]
    allow_legacy_clients: bool,
    /// Send snapshot checksums to clients that ask for them (upstream's
    /// newest generation): right after the in-sync that ends a client's
    /// initial sync, then after changes at most once per this interval
    /// (0s: after every batch of changes).
    #[arg(long, value_name = "DURATION", value_parser = values::duration, default_value = "30s", allow_hyphen_values = true)]
    checksum_interval: Duration,
    /// Never offer snapshot checksums.
    #[arg(long, conflicts_with = "checksum_interval")]
    no_checksums: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    endpoints: EndpointArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WireChoice {
    Auto,
    Gob,
    Native,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let text = tokio::fs::read(&args.snapshot)
        .await
        .map_err(|error| Failure::input(format!("{}: {error}", args.snapshot.display())))?;
    // When following, a last line without its newline may still be being
    // written: leave it for the follower, as it would any later line.
    let (records, consumed) = parse_records(&args.snapshot, &text, 1, args.follow)?;
    let cache = SnapshotCache::new(CacheConfig::default());
    let loaded = records.len();
    let prepare = Prepare {
        typed_revisions: args.typed_revisions,
    };
    let set_status = apply(&cache, records, prepare);
    if !set_status {
        cache.set_status(std::time::Instant::now(), SyncStatus::InSync);
    }
    let options = ServerOptions {
        config: ServerConfig {
            wire_format: match args.wire {
                WireChoice::Auto => None,
                WireChoice::Gob => Some(Wire::Gob.into()),
                WireChoice::Native => Some(Wire::Native.into()),
            },
            require_modern_policy_keys: !args.allow_legacy_clients,
            checksum_interval: (!args.no_checksums).then_some(args.checksum_interval),
            ..ServerConfig::default()
        },
        tls: args.tls.server()?,
        ..ServerOptions::default()
    };
    let server = Server::bind(&args.listen, cache, options)
        .await
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let address = server
        .local_addr()
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let handle = server.handle();
    let _endpoints = args.endpoints.start(&handle).await?;
    note(&format!(
        "serving {} keys ({loaded} records from {}) on {address}",
        handle.cache().stats().keys,
        args.snapshot.display()
    ));
    let follower = args.follow.then(|| {
        let handle = handle.clone();
        let path = args.snapshot.clone();
        let next_line = text[..consumed]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
            + 1;
        tokio::spawn(async move {
            let followed = follow(&path, consumed as u64, next_line, &handle, prepare).await;
            // A bad line stops the server; the failure is its exit status.
            handle.shutdown();
            followed
        })
    });
    let stopper = handle.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            note("shutting down");
            stopper.shutdown();
        }
    });
    let served = server
        .run()
        .await
        .map_err(|error| Failure::runtime(format!("server failed: {error}")));
    if let Some(follower) = follower {
        // Aborting a follower that already failed keeps its result.
        follower.abort();
        if let Ok(Err(failure)) = follower.await {
            return Err(failure);
        }
    }
    served
}

/// Parses the lines of `text` (numbering from `first_line`); with
/// `complete_only`, a last line without its newline is left for later.
/// Returns the records and how many bytes were consumed.
fn parse_records(
    path: &Path,
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
            .map_err(|_| Failure::input(format!("{}:{number}: not UTF-8", path.display())))?;
        match parse_line(line) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(error) => {
                return Err(Failure::input(format!(
                    "{}:{number}: {error}",
                    path.display()
                )));
            }
        }
    }
    Ok((records, consumed))
}

/// How each update from the file is made into what a real Typha sends.
#[derive(Debug, Clone, Copy)]
struct Prepare {
    typed_revisions: bool,
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

/// Applies records to the cache in order; whether any set a status.
fn apply(cache: &SnapshotCache, records: Vec<Record>, prepare: Prepare) -> bool {
    let now = std::time::Instant::now();
    let mut set_status = false;
    let mut batch = Vec::new();
    for record in records {
        match record {
            Record::Update(update) => batch.push(prepare.update(update)),
            Record::Status(status) => {
                cache.apply(now, std::mem::take(&mut batch));
                cache.set_status(now, status);
                set_status = true;
            }
        }
    }
    cache.apply(now, batch);
    set_status
}

/// Tails the file from `offset`, serving each complete new line.
async fn follow(
    path: &Path,
    mut offset: u64,
    mut line: usize,
    handle: &ServerHandle,
    prepare: Prepare,
) -> Result<(), Failure> {
    let mut pending = Vec::new();
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|error| Failure::input(format!("{}: {error}", path.display())))?;
    loop {
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|error| Failure::input(format!("{}: {error}", path.display())))?;
        let mut fresh = Vec::new();
        let read = file
            .read_to_end(&mut fresh)
            .await
            .map_err(|error| Failure::input(format!("{}: {error}", path.display())))?;
        offset += read as u64;
        pending.extend_from_slice(&fresh);
        let complete = pending
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |at| at + 1);
        if complete > 0 {
            let (records, _) = parse_records(path, &pending[..complete], line, true)?;
            line += pending[..complete]
                .iter()
                .filter(|byte| **byte == b'\n')
                .count();
            pending.drain(..complete);
            apply(handle.cache(), records, prepare);
            handle.notify();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
