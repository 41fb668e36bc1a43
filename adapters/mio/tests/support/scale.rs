//! The many-clients scale run shared by `tests/ten_thousand.rs` and the
//! `ten_thousand` example: descriptor limits, placing the clients in this
//! process or a child, timings and memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use syncproto::client::ClientEvent;
use syncproto::fanout::SnapshotCache;
use syncproto::message::SerializedUpdate;
use syncproto::server::ServerConfig;
use syncproto_mio::{ClientId, Clients};

use super::{
    Error, FLAVOURS, RunningServer, cache_with, client_config, expected_view, run_clients_until,
    snapshot,
};

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

/// Raises the open-file limit toward `wanted`: the soft limit up to the
/// hard one, and the hard limit too if this process may (root with
/// CAP_SYS_RESOURCE). Returns the soft limit now in force and, if it is
/// still short, why.
pub fn raise_fd_limit(wanted: u64) -> Result<(u64, Option<String>), Error> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft >= wanted {
        return Ok((soft, None));
    }
    let shortfall = match rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, hard.max(wanted)) {
        Ok(()) => None,
        Err(error) => {
            // At least take the soft limit up to the hard one.
            rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)?;
            Some(format!(
                "wanted {wanted} open files, but the hard limit is {hard} and raising it \
                 failed ({error}): that needs CAP_SYS_RESOURCE (root in a sandbox may lack \
                 it; see CapEff in /proc/self/status). Raise it beforehand with \
                 `ulimit -Hn {wanted}` as a privileged user, LimitNOFILE= or limits.conf"
            ))
        }
    };
    Ok((rlimit::getrlimit(rlimit::Resource::NOFILE)?.0, shortfall))
}

/// Descriptors a process needs besides its connections: listener, poll
/// instances, waker, stdio, the test harness, pipes to a child.
const FD_SLACK: u64 = 256;

/// Where the clients of a scale run live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In this process, beside the server: needs two descriptors per
    /// connection.
    ThisProcess,
    /// In a child process (this executable, relaunched): each process
    /// needs one descriptor per connection.
    ChildProcess,
    /// In this process if the descriptor limit can be raised far enough,
    /// else in a child.
    Auto,
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
    pub placement: Placement,
}

/// What a scale run measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub clients: usize,
    pub keys: usize,
    pub placement: Placement,
    /// Why the clients ran in a child process, if they did.
    pub placement_note: Option<String>,
    pub server_fd_limit: u64,
    pub client_fd_limit: u64,
    /// From the first connect until every client was in sync with the
    /// right state.
    pub time_to_in_sync: Duration,
    /// From applying one change to the cache until every client had it.
    pub time_to_live_change: Duration,
    /// VmHWM of the server's process (with the clients too when they
    /// share it).
    pub server_peak_rss_kib: Option<u64>,
    /// VmHWM of the clients' process, when it is a child.
    pub client_peak_rss_kib: Option<u64>,
    pub server_bytes_written: u64,
    pub server_accepted: u64,
    /// Connections the server saw end in an error (resets) when the
    /// clients went away.
    pub server_closes_with_error: u64,
}

impl std::fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: Option<u64>| {
            kib.map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.0} MiB", kib as f64 / 1024.0),
            )
        };
        writeln!(
            f,
            "{} clients x {} keys, clients in {}:",
            self.clients,
            self.keys,
            match self.placement {
                Placement::ChildProcess => "a child process",
                _ => "the server's process",
            }
        )?;
        if let Some(note) = &self.placement_note {
            writeln!(f, "  (why: {note})")?;
        }
        writeln!(
            f,
            "  all InSync with the right state in {:.2?}; a live change reached all in {:.2?}",
            self.time_to_in_sync, self.time_to_live_change
        )?;
        writeln!(
            f,
            "  peak RSS (VmHWM): server process {}, client process {}",
            mib(self.server_peak_rss_kib),
            match self.placement {
                Placement::ChildProcess => mib(self.client_peak_rss_kib),
                _ => "(same process)".to_owned(),
            }
        )?;
        write!(
            f,
            "  fd limits: server process {}, client process {}; server accepted {}, wrote \
             {:.1} MiB; {} of the final closes were resets",
            self.server_fd_limit,
            self.client_fd_limit,
            self.server_accepted,
            self.server_bytes_written as f64 / (1024.0 * 1024.0),
            self.server_closes_with_error,
        )
    }
}

/// The run's snapshot seed: the child rebuilds the same data to check its
/// views against.
const SEED: u64 = 7;
/// The environment variable that makes a relaunched executable the client
/// side of a scale run: `addr clients keys window mix limit_secs`.
pub const CHILD_ENV: &str = "SYNCPROTO_MIO_SCALE_CHILD";
/// Lines the child prints for the parent start with this.
const CHILD_PREFIX: &str = "scale-child:";

/// The one change the run sends live, after every client is in sync.
fn live_change() -> SerializedUpdate {
    SerializedUpdate {
        revision: "live".into(),
        ..syncproto::synthetic::endpoint(0, 99)
    }
}

/// Opens `params.clients` connections to one server, waits for every one
/// to be in sync with the cache's state, sends a live change to all, then
/// closes them all and checks the server dropped every connection.
/// `relaunch` gives the command that re-runs this executable so that it
/// calls [`scale_child_main`] (used when the clients go in a child).
pub fn scale_run(
    params: &ScaleParams,
    relaunch: &dyn Fn() -> Command,
) -> Result<ScaleReport, Error> {
    let clients = params.clients as u64;
    let (mut fd_limit, shortfall) = raise_fd_limit(2 * clients + FD_SLACK)?;
    let (placement, note) = match (params.placement, shortfall) {
        (Placement::ThisProcess, Some(why)) => return Err(why.into()),
        (Placement::ThisProcess, None) | (Placement::Auto, None) => (Placement::ThisProcess, None),
        (Placement::ChildProcess, _) => (Placement::ChildProcess, None),
        (Placement::Auto, Some(why)) => (Placement::ChildProcess, Some(why)),
    };
    if placement == Placement::ChildProcess {
        fd_limit = raise_fd_limit(clients + FD_SLACK)?.0;
        if fd_limit < clients + FD_SLACK {
            return Err(format!(
                "even one descriptor per connection does not fit: limit {fd_limit}"
            )
            .into());
        }
    }
    let cache = cache_with(snapshot(params.keys, SEED));
    let server = RunningServer::start(cache.clone(), ServerConfig::default(), false)?;
    let client_side = match placement {
        Placement::ChildProcess => run_child(params, &server, &cache, relaunch)?,
        _ => {
            let mut run = ClientRun::start(server.addr, params)?;
            let in_sync = run.until_in_sync(params)?;
            cache.apply(Instant::now(), [live_change()]);
            server.notifier.notify()?;
            let live = run.until_changed(params)?;
            ClientSide {
                time_to_in_sync: in_sync,
                time_to_live_change: live,
                peak_rss_kib: None,
                fd_limit,
            }
        }
    };
    let (server_peak_rss_kib, _) = memory_kib();

    // Closing every client (the child exited, or the loop was dropped)
    // makes the server drop every connection.
    let closing = Instant::now();
    while server.counts.closed.load(Ordering::Relaxed) < clients {
        if closing.elapsed() > params.limit {
            return Err("the server did not drop every closed connection".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let errors = server.counts.closed_with_error.load(Ordering::Relaxed);
    let server = server.stop()?;
    if server.connection_count() != 0 {
        return Err(format!("{} connections left", server.connection_count()).into());
    }
    let stats = server.stats();
    if stats.accepted != clients {
        return Err(format!("accepted {} connections, not {clients}", stats.accepted).into());
    }
    Ok(ScaleReport {
        clients: params.clients,
        keys: params.keys,
        placement,
        placement_note: note,
        server_fd_limit: fd_limit,
        client_fd_limit: client_side.fd_limit,
        time_to_in_sync: client_side.time_to_in_sync,
        time_to_live_change: client_side.time_to_live_change,
        server_peak_rss_kib,
        client_peak_rss_kib: client_side.peak_rss_kib,
        server_bytes_written: stats.bytes_written,
        server_accepted: stats.accepted,
        // A client process exiting with a ping still unread in its socket
        // resets the connection rather than closing it: counted, not failed.
        server_closes_with_error: errors,
    })
}

/// What the client side measured.
struct ClientSide {
    time_to_in_sync: Duration,
    time_to_live_change: Duration,
    peak_rss_kib: Option<u64>,
    fd_limit: u64,
}

/// Runs the clients in a child process and relays its phases: once it
/// reports every client in sync, the live change is applied.
fn run_child(
    params: &ScaleParams,
    server: &RunningServer,
    cache: &SnapshotCache,
    relaunch: &dyn Fn() -> Command,
) -> Result<ClientSide, Error> {
    let spec = format!(
        "{} {} {} {} {} {}",
        server.addr,
        params.clients,
        params.keys,
        params.window,
        params.mix_flavours,
        params.limit.as_secs()
    );
    let mut child = relaunch()
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the child")?;
    let mut in_sync = None;
    let mut done = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        // The test harness may have printed part of a line before ours.
        let Some((_, message)) = line.split_once(CHILD_PREFIX) else {
            continue;
        };
        let fields: Vec<&str> = message.split_whitespace().collect();
        match fields.as_slice() {
            ["in-sync", secs] => {
                in_sync = Some(Duration::from_secs_f64(secs.parse()?));
                cache.apply(Instant::now(), [live_change()]);
                server.notifier.notify()?;
            }
            ["done", secs, peak, fd_limit] => {
                done = Some((
                    Duration::from_secs_f64(secs.parse()?),
                    peak.parse().ok(),
                    fd_limit.parse()?,
                ));
            }
            _ => return Err(format!("unexpected line from the child: {line}").into()),
        }
    }
    let status = child.wait()?;
    match (in_sync, done) {
        (Some(time_to_in_sync), Some((time_to_live_change, peak_rss_kib, fd_limit)))
            if status.success() =>
        {
            Ok(ClientSide {
                time_to_in_sync,
                time_to_live_change,
                peak_rss_kib,
                fd_limit,
            })
        }
        _ => Err(format!("the client process failed ({status}); its stderr is above").into()),
    }
}

/// The client side of a scale run, when this process was relaunched as
/// one: `Some(result)` if [`CHILD_ENV`] is set (the caller should then do
/// nothing else), `None` otherwise.
pub fn scale_child_main() -> Option<Result<(), Error>> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    Some(child_side(&spec))
}

fn child_side(spec: &str) -> Result<(), Error> {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let [addr, clients, keys, window, mix, limit] = fields.as_slice() else {
        return Err(format!("bad {CHILD_ENV}: {spec}").into());
    };
    let addr: SocketAddr = addr.parse()?;
    let params = ScaleParams {
        clients: clients.parse()?,
        keys: keys.parse()?,
        window: window.parse()?,
        mix_flavours: mix.parse()?,
        limit: Duration::from_secs(limit.parse()?),
        placement: Placement::ChildProcess,
    };
    let (fd_limit, shortfall) = raise_fd_limit(params.clients as u64 + FD_SLACK)?;
    if let Some(why) = shortfall {
        return Err(why.into());
    }
    let mut run = ClientRun::start(addr, &params)?;
    let in_sync = run.until_in_sync(&params)?;
    println!("\n{CHILD_PREFIX}in-sync {}", in_sync.as_secs_f64());
    let live = run.until_changed(&params)?;
    let (peak, _) = memory_kib();
    println!(
        "\n{CHILD_PREFIX}done {} {} {fd_limit}",
        live.as_secs_f64(),
        peak.map_or_else(|| "?".to_owned(), |kib| kib.to_string())
    );
    Ok(())
}

/// The clients of a scale run, and what they should end up holding (from a
/// replica of the server's cache built from the same seed).
struct ClientRun {
    addr: SocketAddr,
    clients: Clients,
    replica: SnapshotCache,
    saw_change: Arc<AtomicU64>,
}

impl ClientRun {
    fn start(addr: SocketAddr, params: &ScaleParams) -> Result<ClientRun, Error> {
        let mut clients = Clients::new()?;
        // Counts clients that saw the live change, as it arrives, so that
        // waiting for it does not compare 10 000 views every iteration.
        let saw_change = Arc::new(AtomicU64::new(0));
        let handler_saw = Arc::clone(&saw_change);
        let change = live_change();
        clients.set_event_handler(move |_: ClientId, event: &ClientEvent| {
            if let ClientEvent::Updates(updates) = event
                && updates
                    .iter()
                    .any(|update| update.key == change.key && update.revision == change.revision)
            {
                handler_saw.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(ClientRun {
            addr,
            clients,
            replica: cache_with(snapshot(params.keys, SEED)),
            saw_change,
        })
    }

    /// Connects every client (at most `window` connecting or syncing at
    /// once) and runs until all are in sync; checks their views.
    fn until_in_sync(&mut self, params: &ScaleParams) -> Result<Duration, Error> {
        let start = Instant::now();
        let give_up = start + params.limit;
        let mut opened = 0;
        let clients = &mut self.clients;
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
            while opened < params.clients && opened - stats.in_sync < params.window {
                let (format, compressed) = if params.mix_flavours {
                    FLAVOURS[opened % FLAVOURS.len()]
                } else {
                    FLAVOURS[0]
                };
                let config = client_config(format, compressed, format!("node-{opened}"));
                clients.connect(self.addr, config)?;
                opened += 1;
            }
            clients.run_once(Some(Duration::from_millis(5)))?;
        }
        let elapsed = start.elapsed();
        self.check_views()?;
        Ok(elapsed)
    }

    /// Runs until every client has the live change; checks their views.
    fn until_changed(&mut self, params: &ScaleParams) -> Result<Duration, Error> {
        let start = Instant::now();
        self.replica.apply(start, [live_change()]);
        let expected = params.clients as u64;
        let saw_change = Arc::clone(&self.saw_change);
        run_clients_until(&mut self.clients, params.limit, "live change", |_| {
            saw_change.load(Ordering::Relaxed) >= expected
        })?;
        let elapsed = start.elapsed();
        self.check_views()?;
        Ok(elapsed)
    }

    fn check_views(&self) -> Result<(), Error> {
        let expected = expected_view(&self.replica);
        for (id, state) in self.clients.iter() {
            if state.view() != &expected || !state.is_in_sync() || state.dropped_keys() != 0 {
                return Err(format!("client {id:?}: wrong state").into());
            }
        }
        Ok(())
    }
}
