//! `syncproto dump`: connect as a client and print what arrives.

mod capture;
mod checksum;
mod tls_hint;

use std::path::PathBuf;
use std::time::Duration;

use syncproto::client::{ChecksumCheck, ClientConfig, ClientEvent};
use syncproto::message::{CompressionAlgorithm, SyncStatus, SyncerType};
use syncproto::records::{status_to_line, update_to_line};
use syncproto_tokio::{Client, ClientOptions};
use tokio::time::{Instant, sleep_until};

use self::capture::Capture;
use self::checksum::{ChecksumTally, FIRST_CHECKSUM_WAIT};
use crate::failure::Failure;
use crate::options::{TlsArgs, Wire, host_of};
use crate::output::Lines;
use crate::signals::{Signal, Stop};
use crate::state::State;
use crate::values;

/// Connect as a client and print what the server sends, as JSON lines.
///
/// Prints every update (and every status the server sends) as a JSON
/// line, in the `serve` file format, until the server is in sync and
/// `--follow` has passed. Each line is written as it arrives. By default the client presents itself as a modern upstream
/// Felix (gob, snappy compression, modern policy keys), so it works
/// against a real upstream Typha.
///
/// Ctrl-C (or SIGTERM) stops it: the lines received are already out; with
/// `--state`, the state is printed if the server was in sync; exit code
/// 130 (143 for SIGTERM).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server's address, host:port.
    #[arg(long, value_name = "HOST:PORT", value_parser = values::address)]
    connect: String,
    /// The wire format to speak.
    #[arg(long, value_enum, default_value_t = Wire::Gob)]
    wire: Wire,
    /// The syncer to ask for: felix, bgp, tunnel-ip-allocation, node-status.
    #[arg(long, default_value = "felix")]
    syncer: String,
    /// Keep printing for this long after the server is in sync (e.g. 30s,
    /// 1m30s, 1h).
    #[arg(long, value_name = "DURATION", value_parser = values::duration, default_value = "0s", allow_hyphen_values = true)]
    follow: Duration,
    /// Give up (exit code 1) unless the server is in sync this long after
    /// starting, connecting included. Default: wait as long as it takes.
    #[arg(long, value_name = "DURATION", value_parser = values::duration, allow_hyphen_values = true)]
    timeout: Option<Duration>,
    /// Print the final state (sorted by key) instead of the stream.
    #[arg(long)]
    state: bool,
    /// Also write the raw bytes received (after TLS) to FILE, for
    /// `syncproto decode`.
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Ask the server for snapshot checksums and check each against what
    /// was received; at exit print one JSON line on stderr with the last
    /// checksum the server sent and this client's own for its final state
    /// (`{"server_checksum":"0x…","server_kv_count":N,"checksum":"0x…",
    /// "kv_count":N,"verified":…}`). `verified` is true when the server
    /// sent at least one checksum and every one matched what had arrived
    /// before it; otherwise the exit code is 4. Waits up to 10 s past the
    /// in-sync for the server's first checksum.
    #[arg(long)]
    checksum: bool,
    /// The host name to send in the hello.
    #[arg(long, default_value = "syncproto-dump")]
    hostname: String,
    /// The TLS server name to present and, unless --tls-peer-cn or
    /// --tls-peer-uri-san is given, to verify (default: the host of
    /// --connect).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// What one run of `dump` holds.
struct Dump {
    args: Args,
    out: Lines,
    state: State,
    /// When to stop, once the server is in sync.
    stop_at: Option<Instant>,
    checksums: ChecksumTally,
    updates: u64,
    /// The client machine reports a resync of its own on start, before the
    /// server has said anything: not a line the server sent.
    first_event: bool,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let mut stop = Stop::listen()?;
    let give_up_at = args.timeout.map(|timeout| Instant::now() + timeout);
    let host = args
        .tls_server_name
        .clone()
        .unwrap_or_else(|| host_of(&args.connect).to_owned());
    let capture = args.capture.as_deref().map(Capture::create).transpose()?;
    let options = ClientOptions {
        tls: args.tls.client(&host)?,
        on_read: capture.as_ref().map(Capture::tap),
        ..ClientOptions::default()
    };
    let config = ClientConfig {
        hostname: args.hostname.clone(),
        info: "syncproto dump".to_owned(),
        syncer_type: SyncerType::from_wire(&args.syncer),
        wire_format: args.wire.into(),
        compression: vec![CompressionAlgorithm::Snappy],
        // A dump shows everything the server sends.
        key_parser: None,
        checksums: args.checksum.then(ChecksumCheck::default),
        ..ClientConfig::default()
    };
    let mut dump = Dump {
        args,
        out: Lines::stdout(),
        state: State::default(),
        stop_at: None,
        checksums: ChecksumTally::default(),
        updates: 0,
        first_event: true,
    };
    let connected = tokio::select! {
        connected = Client::connect(&dump.args.connect, config, options) => connected,
        signal = stop.next() => return Err(Failure::interrupted(signal)),
        () = sleep_or_never(give_up_at) => return Err(dump.not_in_sync()),
    };
    let mut client = connected
        .map_err(|error| Failure::runtime(tls_hint::connect_error(&error, &dump.args.tls)))?;
    let result = dump.follow(&mut client, &mut stop, give_up_at).await;
    if result.is_ok() {
        close(&mut client).await;
    }
    let captured = capture.as_ref().map_or(Ok(()), Capture::finish);
    let result = result.and(captured);
    if dump.args.checksum && result.is_ok() {
        return dump.checksums.report(client.received_checksum());
    }
    result
}

impl Dump {
    /// Reads events until done, interrupted or failed.
    async fn follow(
        &mut self,
        client: &mut Client,
        stop: &mut Stop,
        give_up_at: Option<Instant>,
    ) -> Result<(), Failure> {
        loop {
            let deadline = match self.stop_at {
                None => give_up_at,
                Some(stop_at) => Some(match self.checksums.awaited(client) {
                    Some(in_sync_at) => stop_at.max(in_sync_at + FIRST_CHECKSUM_WAIT),
                    None => stop_at,
                }),
            };
            let event = tokio::select! {
                event = client.next_event() => event,
                signal = stop.next() => return self.interrupted(signal),
                () = sleep_or_never(deadline) => match self.stop_at {
                    None => return Err(self.not_in_sync()),
                    Some(_) => break,
                },
            };
            let event = event.map_err(|error| {
                Failure::runtime(format!(
                    "connection to {} failed: {}",
                    self.args.connect,
                    tls_hint::io_error(&error)
                ))
            })?;
            let Some(event) = event else { break };
            if let ClientEvent::Closed(reason) = &event {
                if self.stop_at.is_none() || reason.is_error() {
                    let hint = tls_hint::closed(client, &self.args.tls);
                    return Err(Failure::runtime(format!(
                        "connection to {} closed: {reason}{hint}",
                        self.args.connect
                    )));
                }
                break;
            }
            self.observe(event)?;
            self.out.flush()?;
            let waiting_for_checksum = self.checksums.awaited(client).is_some();
            if self.stop_at.is_some_and(|at| at <= Instant::now()) && !waiting_for_checksum {
                break;
            }
        }
        self.print_state()?;
        self.out.flush()
    }

    /// Takes in one event (the final close excepted).
    fn observe(&mut self, event: ClientEvent) -> Result<(), Failure> {
        let first = std::mem::replace(&mut self.first_event, false);
        match event {
            ClientEvent::Updates(updates) => {
                self.updates += updates.len() as u64;
                for update in updates {
                    if !self.args.state {
                        self.out.line(&update_to_line(&update, true))?;
                    }
                    self.state.apply(update);
                }
            }
            ClientEvent::Status(SyncStatus::ResyncInProgress) if first => {}
            ClientEvent::Status(status) => {
                if !self.args.state {
                    self.out.line(&status_to_line(status))?;
                }
                if status == SyncStatus::InSync && self.stop_at.is_none() {
                    let now = Instant::now();
                    self.stop_at = Some(now + self.args.follow);
                    self.checksums.in_sync_at = Some(now);
                    tracing::info!(
                        keys = self.state.len(),
                        "in sync with {}; following for {}",
                        self.args.connect,
                        humantime::format_duration(self.args.follow)
                    );
                }
            }
            ClientEvent::Checksum(report) => self.checksums.record(&report),
            _ => {}
        }
        Ok(())
    }

    /// With `--state`, once the server was in sync: the state, by key.
    fn print_state(&mut self) -> Result<(), Failure> {
        if self.args.state && self.stop_at.is_some() {
            self.state.print(&mut self.out)?;
        }
        Ok(())
    }

    /// Stops at a signal: what was received is printed, and the exit code
    /// says the signal.
    fn interrupted(&mut self, signal: Signal) -> Result<(), Failure> {
        self.print_state()?;
        self.out.flush()?;
        Err(Failure::interrupted(signal))
    }

    fn not_in_sync(&self) -> Failure {
        let waited = self.args.timeout.unwrap_or_default();
        Failure::runtime(format!(
            "{} was not in sync after {} ({} updates received; --timeout)",
            self.args.connect,
            humantime::format_duration(waited),
            self.updates
        ))
    }
}

/// Ends the connection as a client should, so that the server sees a
/// clean close (TLS's close_notify included) rather than a dropped socket;
/// a server that does not finish within `LINGER` is left.
async fn close(client: &mut Client) {
    const LINGER: Duration = Duration::from_secs(2);
    client.close();
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(Some(_)) = client.next_event().await {}
    })
    .await;
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
