//! Shared by the integration tests and the `ten_thousand` example: a
//! realistic dataset, a server running on its own thread, and the
//! many-clients scale run. Written without unwrap/expect so that the
//! example (which is held to the crate's lints) can include it.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::server::ServerConfig;
use syncproto_mio::{ClientId, Clients, ConnectionId, Notifier, Server, ServerLoopEvent};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A seeded xorshift generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// A workload endpoint key upstream's key grammar accepts.
pub fn endpoint_key(index: usize) -> String {
    format!(
        "/calico/v1/host/node-{:03}/workload/kubernetes/ns-{}%2fpod-{index:05}/endpoint/eth0",
        index % 200,
        index % 17
    )
}

/// A workload endpoint's JSON, between 300 and 800 bytes long.
pub fn endpoint_value(rng: &mut Rng, index: usize, generation: u64) -> String {
    let target = 300 + rng.below(500) as usize;
    let mut value = format!(
        "{{\"state\":\"active\",\"name\":\"cali{index:011x}\",\"mac\":\"ee:ee:ee:ee:ee:ee\",\
         \"profile_ids\":[\"kns.ns-{}\"],\"ipv4_nets\":[\"10.{}.{}.{}/32\"],\
         \"generation\":{generation},\"labels\":{{",
        index % 17,
        index / 65536 % 256,
        index / 256 % 256,
        index % 256,
    );
    let mut label = 0;
    // Labels until the value reaches its target length (the closing
    // braces add two bytes).
    while value.len() + 2 < target {
        if label > 0 {
            value.push(',');
        }
        value.push_str(&format!("\"label-{label}\":\"v{}\"", rng.below(1_000_000)));
        label += 1;
    }
    value.push_str("}}");
    value
}

/// A snapshot of `keys` workload endpoints.
pub fn snapshot(keys: usize, seed: u64) -> Vec<SerializedUpdate> {
    let mut rng = Rng::new(seed);
    (0..keys)
        .map(|index| {
            SerializedUpdate::upsert(
                endpoint_key(index),
                endpoint_value(&mut rng, index, 0),
                format!("{}", 1000 + index),
            )
        })
        .collect()
}

/// A cache holding `updates`, in sync.
pub fn cache_with(updates: Vec<SerializedUpdate>) -> SnapshotCache {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = Instant::now();
    cache.apply(now, updates);
    cache.set_status(now, SyncStatus::InSync);
    cache
}

/// The cache's state as a client view.
pub fn expected_view(cache: &SnapshotCache) -> BTreeMap<String, Bytes> {
    cache
        .snapshot_updates()
        .into_iter()
        .filter_map(|update| update.value.map(|value| (update.key, value)))
        .collect()
}

/// The four client flavours: (format, compressed).
pub const FLAVOURS: [(WireFormat, bool); 4] = [
    (WireFormat::Native, false),
    (WireFormat::Native, true),
    (WireFormat::Gob, false),
    (WireFormat::Gob, true),
];

pub fn client_config(format: WireFormat, compressed: bool, hostname: String) -> ClientConfig {
    ClientConfig {
        hostname,
        wire_format: format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    }
}

/// What the server's event handler saw, in a form the test thread can
/// inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Accepted(ConnectionId),
    Connected(ConnectionId, String),
    Pong(ConnectionId),
    Closed {
        connection: ConnectionId,
        reason: String,
        error: bool,
    },
    AcceptFailed(String),
}

/// Counts of what the server's handler saw (cheap to read from another
/// thread).
#[derive(Debug, Default)]
pub struct Counts {
    pub accepted: AtomicU64,
    pub connected: AtomicU64,
    pub pongs: AtomicU64,
    pub closed: AtomicU64,
    pub closed_with_error: AtomicU64,
    pub accept_failed: AtomicU64,
}

/// A [`Server`] running its loop on its own thread until stopped.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub notifier: Notifier,
    pub counts: Arc<Counts>,
    /// Every event (only when asked for: 10 000 connections would make a
    /// long list).
    pub seen: Option<Arc<Mutex<Vec<Seen>>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<Server>>,
}

impl RunningServer {
    pub fn start(cache: SnapshotCache, config: ServerConfig, record: bool) -> io::Result<Self> {
        let mut server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), cache, config)?;
        let counts = Arc::new(Counts::default());
        let seen = record.then(|| Arc::new(Mutex::new(Vec::new())));
        let handler_counts = Arc::clone(&counts);
        let handler_seen = seen.clone();
        server.set_event_handler(move |event| {
            let counts = &handler_counts;
            let summary = match event {
                ServerLoopEvent::Accepted { connection, .. } => {
                    counts.accepted.fetch_add(1, Ordering::Relaxed);
                    Seen::Accepted(*connection)
                }
                ServerLoopEvent::Connected {
                    connection, hello, ..
                } => {
                    counts.connected.fetch_add(1, Ordering::Relaxed);
                    Seen::Connected(*connection, hello.hostname.clone())
                }
                ServerLoopEvent::Pong { connection, .. } => {
                    counts.pongs.fetch_add(1, Ordering::Relaxed);
                    Seen::Pong(*connection)
                }
                ServerLoopEvent::Closed { connection, reason } => {
                    counts.closed.fetch_add(1, Ordering::Relaxed);
                    if reason.is_error() {
                        counts.closed_with_error.fetch_add(1, Ordering::Relaxed);
                    }
                    Seen::Closed {
                        connection: *connection,
                        reason: reason.to_string(),
                        error: reason.is_error(),
                    }
                }
                ServerLoopEvent::AcceptFailed { error } => {
                    counts.accept_failed.fetch_add(1, Ordering::Relaxed);
                    Seen::AcceptFailed(error.to_string())
                }
                other => Seen::AcceptFailed(format!("unexpected event {other:?}")),
            };
            if let Some(seen) = &handler_seen {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(summary);
            }
        });
        let addr = server.local_addr();
        let notifier = server.notifier();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mio-server".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Acquire) {
                    server.run_once(Some(Duration::from_millis(100)))?;
                }
                Ok(server)
            })?;
        Ok(RunningServer {
            addr,
            notifier,
            counts,
            seen,
            stop,
            thread,
        })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .as_ref()
            .map(|seen| seen.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Stops the loop and hands the server back (for its counters).
    pub fn stop(self) -> Result<Server, Error> {
        self.stop.store(true, Ordering::Release);
        self.notifier.notify()?;
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err("the server thread panicked".into()),
        }
    }
}

/// Runs `clients` until `done` holds, failing after `limit`.
pub fn run_clients_until(
    clients: &mut Clients,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Clients) -> bool,
) -> Result<(), Error> {
    let give_up = Instant::now() + limit;
    while !done(clients) {
        if Instant::now() > give_up {
            return Err(format!("{what}: not done after {limit:?}: {:?}", clients.stats()).into());
        }
        clients.run_once(Some(Duration::from_millis(10)))?;
    }
    Ok(())
}

/// Peak and current resident set size, from `/proc/self/status`, in KiB.
pub fn memory_kib() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Raises the open-file limit to at least `wanted` (soft and, if needed,
/// hard: raising the hard limit needs root or CAP_SYS_RESOURCE). Returns
/// the soft limit in force.
pub fn raise_fd_limit(wanted: u64) -> Result<u64, Error> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft >= wanted {
        return Ok(soft);
    }
    let new_hard = hard.max(wanted);
    if let Err(error) = rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, new_hard) {
        return Err(format!(
            "this run needs {wanted} open files (two per connection plus slack) but the limit \
             is {soft} (hard limit {hard}) and raising it failed: {error}. Raising the hard \
             limit needs root or CAP_SYS_RESOURCE; as root check /proc/sys/fs/nr_open, \
             otherwise raise it beforehand (`ulimit -Hn {wanted}` in a root shell, or \
             LimitNOFILE / limits.conf) or run with fewer clients"
        )
        .into());
    }
    Ok(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0)
}

/// Parameters of a scale run.
#[derive(Debug, Clone)]
pub struct ScaleParams {
    pub clients: usize,
    pub keys: usize,
    /// Connections allowed to be connecting or syncing at once (the rest
    /// wait to be opened), so the accept queue never overflows.
    pub window: usize,
    /// Mix all four client flavours (else native, uncompressed only).
    pub mix_flavours: bool,
    pub limit: Duration,
}

/// What a scale run measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub clients: usize,
    pub keys: usize,
    pub fd_limit: u64,
    pub time_to_in_sync: Duration,
    pub time_to_live_change: Duration,
    pub peak_rss_kib: Option<u64>,
    pub rss_in_sync_kib: Option<u64>,
    pub server_bytes_written: u64,
    pub server_accepted: u64,
}

impl std::fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: Option<u64>| {
            kib.map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.0} MiB", kib as f64 / 1024.0),
            )
        };
        write!(
            f,
            "{} clients x {} keys: all InSync with the right state in {:.2?}; a live change \
             reached all in {:.2?}; peak RSS (VmHWM) {} (VmRSS {} when all in sync); fd limit \
             {}; server accepted {}, wrote {:.1} MiB",
            self.clients,
            self.keys,
            self.time_to_in_sync,
            self.time_to_live_change,
            mib(self.peak_rss_kib),
            mib(self.rss_in_sync_kib),
            self.fd_limit,
            self.server_accepted,
            self.server_bytes_written as f64 / (1024.0 * 1024.0),
        )
    }
}

/// Opens `params.clients` connections to one server in this process,
/// waits for every one to be in sync with the cache's state, sends a live
/// change to all, then closes them all and checks the server dropped
/// every connection.
pub fn scale_run(params: &ScaleParams) -> Result<ScaleReport, Error> {
    // Two descriptors per connection (both ends live here), plus slack
    // for the listener, the poll instances, stdio and the test harness.
    let fd_limit = raise_fd_limit(2 * params.clients as u64 + 1024)?;
    let cache = cache_with(snapshot(params.keys, 7));
    let mut expected = expected_view(&cache);
    let server = RunningServer::start(cache.clone(), ServerConfig::default(), false)?;
    let mut clients = Clients::new()?;
    // Counts clients that saw the live change, as it arrives.
    let changed_key = endpoint_key(0);
    let saw_change = Arc::new(AtomicU64::new(0));
    let handler_saw = Arc::clone(&saw_change);
    let handler_key = changed_key.clone();
    clients.set_event_handler(move |_: ClientId, event: &ClientEvent| {
        if let ClientEvent::Updates(updates) = event
            && updates
                .iter()
                .any(|update| update.key == handler_key && update.revision.to_string() == "live")
        {
            handler_saw.fetch_add(1, Ordering::Relaxed);
        }
    });

    let start = Instant::now();
    let give_up = start + params.limit;
    let mut ids = Vec::with_capacity(params.clients);
    while clients.stats().in_sync < params.clients {
        let stats = clients.stats();
        if stats.closed > 0 {
            let failures: Vec<String> = clients
                .iter()
                .filter_map(|(_, state)| state.closed().map(ToString::to_string))
                .take(5)
                .collect();
            return Err(format!("{} clients closed early: {failures:?}", stats.closed).into());
        }
        if Instant::now() > give_up {
            return Err(format!("not all in sync after {:?}: {stats:?}", params.limit).into());
        }
        while ids.len() < params.clients && ids.len() - stats_in_sync(&clients) < params.window {
            let index = ids.len();
            let (format, compressed) = if params.mix_flavours {
                FLAVOURS[index % FLAVOURS.len()]
            } else {
                FLAVOURS[0]
            };
            let config = client_config(format, compressed, format!("node-{index}"));
            ids.push(clients.connect(server.addr, config)?);
        }
        clients.run_once(Some(Duration::from_millis(5)))?;
    }
    let time_to_in_sync = start.elapsed();
    let (_, rss_in_sync_kib) = memory_kib();
    for (id, state) in clients.iter() {
        if state.view() != &expected {
            return Err(format!("client {id:?}: view differs from the cache's state").into());
        }
        if state.dropped_keys() != 0 {
            return Err(format!("client {id:?} dropped keys").into());
        }
    }

    // A live change reaches everyone.
    let change_start = Instant::now();
    let mut rng = Rng::new(99);
    let update =
        SerializedUpdate::upsert(changed_key.clone(), endpoint_value(&mut rng, 0, 1), "live");
    if let Some(value) = &update.value {
        expected.insert(changed_key, value.clone());
    }
    cache.apply(Instant::now(), [update]);
    server.notifier.notify()?;
    run_clients_until(&mut clients, params.limit, "live change", |_| {
        saw_change.load(Ordering::Relaxed) >= params.clients as u64
    })?;
    let time_to_live_change = change_start.elapsed();
    for (id, state) in clients.iter() {
        if state.view() != &expected || !state.is_in_sync() {
            return Err(format!("client {id:?}: wrong state after the live change").into());
        }
    }
    let (peak_rss_kib, _) = memory_kib();

    // Closing every client makes the server drop every connection.
    drop(clients);
    let closing = Instant::now();
    while server.counts.closed.load(Ordering::Relaxed) < params.clients as u64 {
        if closing.elapsed() > params.limit {
            return Err("the server did not drop every closed connection".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let server = server.stop()?;
    if server.connection_count() != 0 {
        return Err(format!("{} connections left", server.connection_count()).into());
    }
    let stats = server.stats();
    Ok(ScaleReport {
        clients: params.clients,
        keys: params.keys,
        fd_limit,
        time_to_in_sync,
        time_to_live_change,
        peak_rss_kib,
        rss_in_sync_kib,
        server_bytes_written: stats.bytes_written,
        server_accepted: stats.accepted,
    })
}

fn stats_in_sync(clients: &Clients) -> usize {
    clients.stats().in_sync
}
