//! `syncproto demo`: a self-contained run of server and clients.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use syncproto::message::ByteString;

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use syncproto::checksum::StateChecksum;
use syncproto::client::{ChecksumCheck, ClientConfig, ClientEvent, ClientEventRef};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::records::Record;
use syncproto::synthetic;
use syncproto_tokio::relay::{Relay, RelayHandle, RelayOptions};
use syncproto_tokio::{Client, ClientOptions, Server, ServerHandle, ServerOptions};

use crate::failure::Failure;

/// The update that tells a client the demo's changes are all out.
const DONE_KEY: &str = "/calico/v1/config/SyncprotoDemoDone";

/// Each client's socket receive buffer. Left to grow (to 32 MiB a socket
/// here), a thousand clients that read slower than the server writes
/// queue more than the kernel allows for all TCP (`net.ipv4.tcp_mem`), and
/// it drops segments: connections then sit out retransmission timeouts,
/// the demo idling with the CPUs free. 256 KiB is four of the clients' 64
/// KiB reads, plenty on loopback.
const RECEIVE_BUFFER: u32 = 256 * 1024;

/// Run a server and many clients on loopback, and check that every client
/// ends with the server's state.
///
/// Starts a server on loopback with a synthetic cluster-like datastore,
/// connects clients (half gob, half native; half compressed), stream live
/// updates while they sync, then print a summary and verify that every
/// client ended with exactly the server's state: each client's snapshot
/// checksum of everything it received (a 64-bit digest of every key and
/// value) against the server's, and the first --full-views clients' whole
/// copies key by key.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workload endpoints in the datastore (a few config keys, a 300 KiB
    /// policy and a key no parser knows come on top).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Clients to connect (at least one).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Live changes to stream while the clients sync.
    #[arg(long, default_value_t = 1_000)]
    updates: usize,
    /// Seed for the synthetic datastore.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Put a relay between the server and the clients: the clients connect
    /// to the relay, which takes its data from the server over gob, as it
    /// would from an upstream Typha.
    #[arg(long)]
    relay: bool,
    /// Give up (exit code 1) if the clients are not done after this long.
    #[arg(long, value_name = "DURATION", value_parser = crate::values::duration, default_value = "2m", allow_hyphen_values = true)]
    timeout: Duration,
    /// Clients (the first ones, so every flavour) that also keep a whole
    /// copy of the datastore, compared key by key with the server's at the
    /// end; the others keep only the checksum (--full-views 1000 with 1000
    /// clients keeps a copy in every one: about 8 MiB each with the
    /// defaults).
    #[arg(long, value_name = "N", default_value_t = 4)]
    full_views: u32,
}

/// What one client saw.
#[derive(Default)]
struct Report {
    /// From the client's start (the demo's, give or take the spawning) to
    /// the server's hello: how long the connect storm kept it waiting.
    time_to_connect: Option<Duration>,
    time_to_sync: Option<Duration>,
    kvs: u64,
    bytes: u64,
    /// The whole datastore as received, for the clients that keep it
    /// (`None` for the others: a copy each is what made a 1 000-client
    /// demo need 8 GiB).
    view: Option<BTreeMap<ByteString, Bytes>>,
    /// The client's checksum of everything it received, done marker
    /// included (the server's covers the marker too).
    checksum: Option<StateChecksum>,
    /// The server's checksums this client checked on the way, and how many
    /// of them disagreed with what it had received.
    checksums_checked: u64,
    checksum_mismatches: u64,
    saw_done_marker: bool,
}

impl Report {
    /// Takes in one event the client reported `elapsed` after it started;
    /// a close is the client's failure, described. Updates are borrowed:
    /// only a kept view copies them.
    fn observe(&mut self, event: ClientEventRef<'_>, elapsed: Duration) -> Result<(), String> {
        let event = match event {
            ClientEventRef::Updates(updates) => {
                self.kvs += updates.len() as u64;
                for update in updates {
                    self.saw_done_marker |= update.key == DONE_KEY;
                    if let Some(view) = &mut self.view {
                        update.to_update().apply_to(view);
                    }
                }
                return Ok(());
            }
            ClientEventRef::Other(event) => event,
        };
        match event {
            ClientEvent::Checksum(report) => {
                self.checksums_checked += 1;
                self.checksum_mismatches += u64::from(!report.verified);
            }
            ClientEvent::Connected(_) => self.time_to_connect = Some(elapsed),
            ClientEvent::Status(SyncStatus::InSync) if self.time_to_sync.is_none() => {
                self.time_to_sync = Some(elapsed);
            }
            ClientEvent::Closed(reason) => return Err(format!("disconnected: {reason}")),
            _ => {}
        }
        Ok(())
    }

    /// Whether the client holds everything: the done marker can come inside
    /// the snapshot (a client that connects late) with the rest of the
    /// snapshot still to follow, so only the marker and in-sync together
    /// say so.
    fn is_complete(&self) -> bool {
        self.saw_done_marker && self.time_to_sync.is_some()
    }

    /// Whether the client ended with the server's state: its checksum of
    /// everything it received is the server's final `checksum` (a client
    /// without one, where checksums were not negotiated, proves nothing),
    /// every checksum the server sent on the way agreed with what it had
    /// received, and a kept view is `expected` exactly.
    fn holds(
        &self,
        checksum: Option<StateChecksum>,
        expected: &BTreeMap<ByteString, Bytes>,
    ) -> bool {
        checksum.is_some()
            && self.checksum == checksum
            && self.checksum_mismatches == 0
            && self.view.as_ref().is_none_or(|view| view == expected)
    }

    /// The client's final figures: `checksum` is its checksum of all it
    /// received; a kept view loses the demo's marker.
    fn finish(mut self, bytes_read: u64, checksum: Option<StateChecksum>) -> Report {
        self.bytes = bytes_read;
        self.checksum = checksum;
        if let Some(view) = &mut self.view {
            view.remove(DONE_KEY);
        }
        self
    }
}

fn flavour(index: usize) -> (WireFormat, bool) {
    match index % 4 {
        0 => (WireFormat::Native, false),
        1 => (WireFormat::Gob, false),
        2 => (WireFormat::Native, true),
        _ => (WireFormat::Gob, true),
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let cache = SnapshotCache::new(CacheConfig::default());
    let snapshot = synthetic::snapshot(args.keys, args.seed);
    let snapshot_bytes: usize = snapshot
        .iter()
        .map(|u| u.key.len() + u.value.as_ref().map_or(0, Bytes::len))
        .sum();
    cache.apply(Instant::now(), snapshot);
    cache.set_status(Instant::now(), SyncStatus::InSync);
    let server = Server::bind("127.0.0.1:0", cache, patient(args.timeout))
        .await
        .map_err(|error| Failure::runtime(format!("cannot listen on loopback: {error}")))?;
    let address = server
        .local_addr()
        .map_err(|error| Failure::runtime(format!("cannot listen on loopback: {error}")))?
        .to_string();
    let handle = server.handle();
    let server_task = tokio::spawn(server.run());
    let keys = handle.cache().map_or(0, |cache| cache.stats().keys);
    println!(
        "serving {keys} keys ({:.1} MB) on {address}; connecting {} clients (gob and native, half compressed) while {} live changes stream",
        snapshot_bytes as f64 / 1e6,
        args.clients,
        args.updates
    );
    let relay = match args.relay {
        true => Some(start_relay(&address, args.timeout).await?),
        false => None,
    };
    let address = relay
        .as_ref()
        .map_or(address, |(address, _, _)| address.clone());

    let clients = args.clients as usize;
    let progress = ProgressBar::new(clients as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} clients in sync ({elapsed})")
    {
        progress.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for index in 0..clients {
        let address = address.clone();
        let progress = progress.clone();
        let full_view = index < args.full_views as usize;
        let read_timeout = args.timeout;
        tasks.push(tokio::spawn(async move {
            run_client(index, full_view, read_timeout, &address, &progress).await
        }));
    }
    stream_changes(&handle, &args).await;
    let reports = tokio::time::timeout(args.timeout, async {
        let mut reports = Vec::with_capacity(tasks.len());
        for task in tasks {
            reports.push(task.await);
        }
        reports
    })
    .await
    .map_err(|_| {
        Failure::runtime(format!(
            "the clients were not done after {} (--timeout)",
            humantime::format_duration(args.timeout)
        ))
    })?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    if let Some((_, relay, relay_task)) = relay {
        for (syncer, status) in relay.upstreams() {
            println!(
                "relay: upstream {syncer}: {} changes, {} checksums verified, {} mismatched, {} reconnects",
                status.updates,
                status.checksums_verified,
                status.checksum_mismatches,
                status.reconnects
            );
        }
        relay.shutdown();
        let _ = relay_task.await;
    }
    handle.shutdown();
    let _ = server_task.await;

    let mut results = Vec::with_capacity(reports.len());
    for (index, report) in reports.into_iter().enumerate() {
        match report {
            Ok(Ok(report)) => results.push(report),
            Ok(Err(failure)) => return Err(failure),
            Err(error) => return Err(Failure::runtime(format!("client {index} crashed: {error}"))),
        }
    }
    summarize(&handle, &results, elapsed, args.updates, keys)
}

/// A relay of the server at `upstream`, on loopback: its address, handle
/// and task.
async fn start_relay(
    upstream: &str,
    timeout: Duration,
) -> Result<
    (
        String,
        RelayHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    Failure,
> {
    let options = RelayOptions {
        server: patient(timeout),
        ..RelayOptions::new(upstream)
    };
    let relay = Relay::bind("127.0.0.1:0", options)
        .await
        .map_err(|error| Failure::runtime(format!("cannot listen on loopback: {error}")))?;
    let address = relay
        .local_addr()
        .map_err(|error| Failure::runtime(format!("cannot listen on loopback: {error}")))?
        .to_string();
    println!("relaying it (gob upstream) on {address}; the clients connect there");
    let handle = relay.handle();
    Ok((address, handle, tokio::spawn(relay.run())))
}

/// Server options whose per-connection deadlines (the client's hello, its
/// acknowledgements and pongs, the socket taking writes) are the demo's
/// own `timeout`. A thousand clients on a loaded machine can each wait
/// past the defaults (10 s for the hello) for their turn on the CPU, and
/// runs failed so; the demo is bounded by --timeout instead, and its
/// times to connect and to in-sync show the waits.
fn patient(timeout: Duration) -> ServerOptions {
    let defaults = ServerOptions::default();
    ServerOptions {
        config: syncproto::server::ServerConfig {
            handshake_timeout: timeout,
            ack_timeout: timeout,
            pong_timeout: timeout,
            ..defaults.config
        },
        write_timeout: timeout,
        ..defaults
    }
}

/// Streams the synthetic changes in small batches, then the done marker.
async fn stream_changes(handle: &ServerHandle, args: &Args) {
    let changes = synthetic::changes(args.keys, args.updates, args.seed);
    for chunk in changes.chunks(20) {
        for record in chunk {
            match record {
                Record::Update(update) => {
                    handle.apply([update.clone()]);
                }
                Record::Status(status) => handle.set_status(*status),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.apply([SerializedUpdate::upsert(DONE_KEY, "done", "done")]);
}

/// One client: connect, follow, stop at the done marker; keep a whole copy
/// of the datastore if `full_view`.
async fn run_client(
    index: usize,
    full_view: bool,
    read_timeout: Duration,
    address: &str,
    progress: &ProgressBar,
) -> Result<Report, Failure> {
    let (wire_format, compressed) = flavour(index);
    let config = ClientConfig {
        hostname: format!("demo-client-{index}"),
        wire_format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        // The demo compares whole states, so it keeps every key.
        key_parser: None,
        // Every client's state is verified by its checksum.
        checksums: Some(ChecksumCheck::default()),
        // A thousand clients on a loaded machine can each wait longer than
        // upstream's 30 s for their next whole message (runs failed so):
        // --timeout bounds the demo instead (as `patient` does for the
        // server), and the summary shows the waits.
        read_timeout,
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let options = ClientOptions {
        receive_buffer: Some(RECEIVE_BUFFER),
        ..ClientOptions::default()
    };
    let mut client = Client::connect(address, config, options)
        .await
        .map_err(Failure::runtime)?;
    let mut report = Report {
        view: full_view.then(BTreeMap::new),
        ..Report::default()
    };
    // Each read's events at once, the updates borrowed from what was
    // read: the clients check them and let them go (the kept views copy).
    let mut failure = None;
    while !report.is_complete() && failure.is_none() {
        let more = client
            .next_events_borrowed(|event| {
                // Past the end (the rest of the read) nothing counts.
                if failure.is_some() || report.is_complete() {
                    return;
                }
                let was_in_sync = report.time_to_sync.is_some();
                match report.observe(event, started.elapsed()) {
                    Ok(()) if !was_in_sync && report.time_to_sync.is_some() => progress.inc(1),
                    Ok(()) => {}
                    Err(error) => failure = Some(error),
                }
            })
            .await
            .map_err(|error| Failure::runtime(format!("client {index}: {error}")))?;
        if !more && failure.is_none() && !report.is_complete() {
            return Err(Failure::runtime(format!("client {index} finished early")));
        }
    }
    if let Some(error) = failure {
        return Err(Failure::runtime(format!("client {index} {error}")));
    }
    Ok(report.finish(client.bytes_read(), client.received_checksum()))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn summarize(
    handle: &ServerHandle,
    results: &[Report],
    elapsed: Duration,
    updates: usize,
    keys_at_start: usize,
) -> Result<(), Failure> {
    let cache = handle.cache();
    // The server's checksum covers the done marker, as the clients' do.
    let expected_checksum = cache.map(|cache| cache.checksum());
    let mut expected: BTreeMap<ByteString, Bytes> = cache
        .map(|cache| cache.snapshot_updates())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| Some((u.key, u.value?)))
        .collect();
    expected.remove(DONE_KEY);
    let mut sync_times: Vec<Duration> = results.iter().filter_map(|r| r.time_to_sync).collect();
    sync_times.sort_unstable();
    let mut connect_times: Vec<Duration> =
        results.iter().filter_map(|r| r.time_to_connect).collect();
    connect_times.sort_unstable();
    let kvs: u64 = results.iter().map(|r| r.kvs).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let mismatched: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.holds(expected_checksum, &expected))
        .map(|(index, _)| index)
        .collect();
    let full_views = results.iter().filter(|r| r.view.is_some()).count();
    let checksums_checked: u64 = results.iter().map(|r| r.checksums_checked).sum();
    let stats = handle.stats();
    println!(
        "clients:           {} ({} reached in-sync)",
        results.len(),
        sync_times.len()
    );
    println!(
        "time to connect:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (to the server's hello)",
        millis(percentile(&connect_times, 0.5)),
        millis(percentile(&connect_times, 0.99)),
        millis(connect_times.last().copied().unwrap_or_default())
    );
    println!(
        "time to in-sync:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis(percentile(&sync_times, 0.5)),
        millis(percentile(&sync_times, 0.99)),
        millis(sync_times.last().copied().unwrap_or_default())
    );
    println!(
        "live changes:      {updates} applied while the clients synced (new keys and deletions \
         took the datastore from {keys_at_start} to {} keys)",
        expected.len()
    );
    println!("updates delivered: {kvs} KVs across all clients");
    println!("bytes received:    {:.1} MB", bytes as f64 / 1e6);
    println!(
        "throughput:        {:.0} KVs/s, {:.1} MB/s over {:.2} s",
        kvs as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "server:            {} handshakes, {} pings answered (the server pings each client \
         every {} s, so a short run sees few or none)",
        stats.handshakes,
        stats.pongs,
        syncproto::server::ServerConfig::default()
            .ping_interval
            .as_secs()
    );
    if let Some(peak) = crate::memory::peak_resident_bytes() {
        // Server and clients share this process, so this is the whole demo's peak.
        println!(
            "peak memory:       {:.1} MiB resident (server and clients together)",
            peak as f64 / (1024.0 * 1024.0)
        );
    }
    println!(
        "checksums:         {checksums_checked} sent by the server and checked by the clients on the way"
    );
    if mismatched.is_empty() {
        println!(
            "verified:          every client holds the server's final {} keys: its checksum of \
             everything it received matches the server's ({:#018x}), and {full_views} clients' \
             whole copies match key by key",
            expected.len(),
            expected_checksum.map_or(0, |checksum| checksum.checksum)
        );
        Ok(())
    } else {
        Err(Failure::verification(format!(
            "{} of {} clients do not hold the server's state (clients {:?})",
            mismatched.len(),
            results.len(),
            &mismatched[..mismatched.len().min(10)]
        )))
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[path = "demo_tests.rs"]
mod tests;
