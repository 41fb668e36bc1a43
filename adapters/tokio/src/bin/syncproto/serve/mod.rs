//! `syncproto serve`: serve a datastore from a JSON-lines file.

mod datastore;
mod stream;
mod tail;

use std::path::{Path, PathBuf};
use std::time::Duration;

use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::server::ServerConfig;
use syncproto_tokio::{Server, ServerHandle, ServerOptions};

use self::datastore::{Datastore, Prepare};
use self::stream::Stream;
use self::tail::Tail;
use crate::failure::{Failure, note};
use crate::observe::EndpointArgs;
use crate::options::{TlsArgs, WireChoice};
use crate::signals::Stop;
use crate::values;

/// Serve a datastore read from a JSON-lines file, as a Typha would
///
/// Each line is an update or a status (only "key" is required):
///   {"key": "/calico/v1/config/LogSeverityScreen", "value": "Info",
///    "revision": "17", "ttl_ns": 0, "type": "new", "v3_resource_version": ""}
///   {"status": "in-sync"}              (or "resync", "wait-for-ready")
/// "value" is text, or null to delete the key (an empty value deletes it
/// too); "value_base64" carries bytes that are not text instead. "revision"
/// is a string, a JSON integer (a Go int64) or {"go_type": "uint8", "text":
/// "7"}. "type" is new (the default), updated, deleted or unknown. The
/// datastore is in sync once the file is loaded, unless a status line says
/// otherwise. `dump --state` prints a server's state in this format.
///
/// As a real Typha: revisions go out as strings (--typed-revisions keeps
/// the file's Go types), a v3 resource's metadata.resourceVersion moves out
/// of its value into v3_resource_version, and clients without modern policy
/// keys are refused (--allow-legacy-clients serves them). Clients that ask
/// get snapshot checksums after their initial sync.
///
/// With --follow, lines appended to the file are served as they are
/// finished, and a file truncated, rewritten or replaced (mv) is read anew
/// as the whole datastore: keys it no longer holds are deleted. `--snapshot
/// -` reads standard input (as does a pipe or FIFO): without --follow to
/// its end; with it, lines are served as they come, and clients are told
/// the data is in sync at a status line or at the input's end.
///
/// Runs until Ctrl-C or SIGTERM, then shuts down gracefully (exit code 0).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// Address to listen on (0.0.0.0:5473 for every interface).
    #[arg(long, value_name = "HOST:PORT", value_parser = values::address, default_value = "127.0.0.1:5473")]
    listen: String,
    /// The JSON-lines file holding the datastore; - for standard input.
    #[arg(long, value_name = "FILE")]
    snapshot: PathBuf,
    /// Keep serving lines appended to the file (each once its newline is
    /// written), and the file anew when it is replaced or rewritten; a
    /// malformed line stops the server with exit code 3.
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

/// Where the datastore comes from, and what follows it once served.
enum Follower {
    /// Nothing: the input was read once.
    None,
    /// A regular file, watched.
    File(Tail),
    /// A pipe or standard input, read on.
    Stream(Stream),
}

/// Reads the input as far as serving starts; returns the number of
/// records read and what follows the rest.
async fn load(
    path: &Path,
    follow: bool,
    datastore: &mut Datastore,
) -> Result<(usize, Follower), Failure> {
    let stream = match path == Path::new("-") {
        true => Stream::stdin(),
        false => {
            let regular = tokio::fs::metadata(path)
                .await
                .map_err(|error| Failure::input(format!("{}: {error}", path.display())))?
                .is_file();
            if regular && follow {
                // A last line without its newline may still be being
                // written: the follower reads it once finished.
                let (tail, records) = Tail::open(path).await?;
                let loaded = records.len();
                datastore.apply(records);
                return Ok((loaded, Follower::File(tail)));
            }
            Stream::open(path).await?
        }
    };
    if follow {
        note(&format!(
            "reading {} as it comes: clients are told the data is in sync at a \
             {{\"status\":\"in-sync\"}} line or at its end",
            stream.name().display()
        ));
        return Ok((0, Follower::Stream(stream)));
    }
    Ok((stream.load(datastore).await?, Follower::None))
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let cache = SnapshotCache::new(CacheConfig::default());
    let prepare = Prepare {
        typed_revisions: args.typed_revisions,
    };
    let mut datastore = Datastore::new(cache.clone(), prepare);
    let (loaded, follower) = load(&args.snapshot, args.follow, &mut datastore).await?;
    if !datastore.status_set() && !matches!(follower, Follower::Stream(_)) {
        datastore.set_in_sync();
    }
    let options = ServerOptions {
        config: ServerConfig {
            wire_format: args.wire.format(),
            require_modern_policy_keys: !args.allow_legacy_clients,
            checksum_interval: (!args.no_checksums).then_some(args.checksum_interval),
            ..ServerConfig::default()
        },
        tls: args.tls.server()?,
        ..ServerOptions::default()
    };
    let server = Server::bind(&args.listen, cache.clone(), options)
        .await
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let address = server
        .local_addr()
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let handle = server.handle();
    let _endpoints = args.endpoints.start(&handle).await?;
    let name = match args.snapshot.to_str() {
        Some("-") => "stdin".to_owned(),
        _ => args.snapshot.display().to_string(),
    };
    // Only now, but before saying the server is up: until then Ctrl-C
    // keeps its default (ending a load from a terminal or a pipe that
    // never ends, for one).
    let mut stop = Stop::listen()?;
    note(&format!(
        "serving {} keys ({loaded} records from {name}) on {address}",
        cache.stats().keys,
    ));
    let follower = spawn_follower(follower, datastore, &handle);
    let stopper = handle.clone();
    tokio::spawn(async move {
        let signal = stop.next().await;
        note(&format!("shutting down ({})", signal.name()));
        stopper.shutdown();
    });
    let served = server
        .run()
        .await
        .map_err(|error| Failure::runtime(format!("server failed: {error}")));
    // Aborting a follower that already failed keeps its result.
    follower.abort();
    if let Ok(Err(failure)) = follower.await {
        return Err(failure);
    }
    served
}

/// Runs the follower (at once done if there is none); a bad line stops the server, and the
/// failure becomes its exit status.
fn spawn_follower(
    follower: Follower,
    mut datastore: Datastore,
    handle: &ServerHandle,
) -> tokio::task::JoinHandle<Result<(), Failure>> {
    let handle = handle.clone();
    let task = async move {
        let followed = match follower {
            Follower::None => Ok(()),
            Follower::File(tail) => tail.follow(&mut datastore, &handle).await,
            Follower::Stream(stream) => stream.follow(&mut datastore, &handle).await,
        };
        if followed.is_err() {
            handle.shutdown();
        }
        followed
    };
    tokio::spawn(task)
}
