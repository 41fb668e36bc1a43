//! `syncproto dump`: connect as a client and print what arrives.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use syncproto::message::ByteString;

use serde_json::json;
use syncproto::checksum::StateChecksum;
use syncproto::client::{ChecksumCheck, ChecksumReport, ClientConfig, ClientEvent};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus, SyncerType};
use syncproto::records::{status_to_line, update_to_line};
use syncproto_tokio::{Client, ClientOptions};
use tokio::time::Instant;

use crate::failure::Failure;
use crate::options::{TlsArgs, Wire, parse_duration};

/// Connect as a client and print every update (and status change) as a
/// JSON line, in the `serve` file format, until the server is in sync and
/// `--follow` has passed. By default the client presents itself as a
/// modern upstream Felix (gob, snappy compression, modern policy keys), so
/// it works against a real upstream Typha.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server's address, `host:port`.
    #[arg(long)]
    connect: String,
    /// The wire format to speak.
    #[arg(long, value_enum, default_value_t = Wire::Gob)]
    wire: Wire,
    /// The syncer to ask for: felix, bgp, tunnel-ip-allocation, node-status.
    #[arg(long, default_value = "felix")]
    syncer: String,
    /// Keep printing for this long after the server is in sync (e.g. 30s).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    follow: Duration,
    /// Print the final state (sorted by key) instead of the stream.
    #[arg(long)]
    state: bool,
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
    /// The TLS server name (default: the host of --connect).
    #[arg(long)]
    tls_server_name: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let host = args
        .tls_server_name
        .clone()
        .unwrap_or_else(|| host_of(&args.connect).to_owned());
    let options = ClientOptions {
        tls: args.tls.client(&host)?,
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
    let mut client = Client::connect(&args.connect, config, options)
        .await
        .map_err(Failure::runtime)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut state: BTreeMap<ByteString, SerializedUpdate> = BTreeMap::new();
    let mut stop_at: Option<Instant> = None;
    let mut checksums = ChecksumTally::default();
    loop {
        let deadline = stop_at.map(|stop_at| match checksums.awaited(&client) {
            Some(in_sync_at) => stop_at.max(in_sync_at + FIRST_CHECKSUM_WAIT),
            None => stop_at,
        });
        let event = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, client.next_event()).await {
                Ok(event) => event,
                Err(_) => break,
            },
            None => client.next_event().await,
        };
        match event.map_err(|error| {
            Failure::runtime(format!("connection to {} failed: {error}", args.connect))
        })? {
            Some(ClientEvent::Updates(updates)) => {
                for update in updates {
                    if !args.state {
                        write_line(&mut out, &update_to_line(&update, true))?;
                    }
                    match &update.value {
                        Some(_) => {
                            state.insert(update.key.clone(), update);
                        }
                        None => {
                            state.remove(&update.key);
                        }
                    }
                }
            }
            Some(ClientEvent::Status(status)) => {
                if !args.state {
                    write_line(&mut out, &status_to_line(status))?;
                }
                if status == SyncStatus::InSync && stop_at.is_none() {
                    let now = Instant::now();
                    stop_at = Some(now + args.follow);
                    checksums.in_sync_at = Some(now);
                }
            }
            Some(ClientEvent::Closed(reason)) => {
                if stop_at.is_none() || reason.is_error() {
                    return Err(Failure::runtime(format!(
                        "connection to {} closed: {reason}",
                        args.connect
                    )));
                }
                break;
            }
            Some(ClientEvent::Checksum(report)) => checksums.record(&report),
            Some(_) => {}
            None => break,
        }
        let waiting_for_checksum = checksums.awaited(&client).is_some();
        if stop_at.is_some_and(|deadline| deadline <= Instant::now()) && !waiting_for_checksum {
            break;
        }
    }
    if args.state {
        for update in state.values() {
            write_line(&mut out, &update_to_line(update, false))?;
        }
    }
    out.flush()
        .map_err(|error| Failure::runtime(format!("writing output: {error}")))?;
    if args.checksum {
        return checksums.report(client.received_checksum());
    }
    Ok(())
}

/// How long `--checksum` waits past the in-sync for the server's first
/// checksum (upstream's server sends it right after that in-sync).
const FIRST_CHECKSUM_WAIT: Duration = Duration::from_secs(10);

/// What `--checksum` saw.
#[derive(Debug, Default)]
struct ChecksumTally {
    in_sync_at: Option<Instant>,
    last_server: Option<StateChecksum>,
    compared: u64,
    mismatches: u64,
}

impl ChecksumTally {
    fn record(&mut self, report: &ChecksumReport) {
        self.last_server = Some(report.server);
        self.compared += 1;
        if !report.verified {
            self.mismatches += 1;
        }
    }

    /// When the in-sync came, while the first checksum is still awaited
    /// from a server that agreed to send them.
    fn awaited(&self, client: &Client) -> Option<Instant> {
        let agreed = client
            .server_hello()
            .is_some_and(|hello| hello.supports_checksum);
        self.in_sync_at.filter(|_| agreed && self.compared == 0)
    }

    /// Prints the `--checksum` line on stderr; a failure unless verified.
    fn report(&self, own: Option<StateChecksum>) -> Result<(), Failure> {
        let hex = |checksum: &StateChecksum| format!("{:#018x}", checksum.checksum);
        let verified = self.compared > 0 && self.mismatches == 0;
        let line = json!({
            "server_checksum": self.last_server.as_ref().map(hex),
            "server_kv_count": self.last_server.map(|server| server.kv_count),
            "checksum": own.as_ref().map(hex),
            "kv_count": own.map(|own| own.kv_count),
            "verified": verified,
        });
        let _ = writeln!(std::io::stderr(), "{line}");
        match (verified, own) {
            (true, _) => Ok(()),
            (false, None) => Err(Failure::verification(
                "the server does not send snapshot checksums",
            )),
            (false, Some(_)) if self.compared == 0 => Err(Failure::verification(
                "the server sent no snapshot checksum",
            )),
            (false, Some(_)) => Err(Failure::verification(format!(
                "{} of {} snapshot checksums did not match what was received",
                self.mismatches, self.compared
            ))),
        }
    }
}

fn write_line(out: &mut impl Write, line: &str) -> Result<(), Failure> {
    writeln!(out, "{line}").map_err(|error| Failure::runtime(format!("writing output: {error}")))
}

/// The host part of `host:port` (brackets removed for IPv6).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
