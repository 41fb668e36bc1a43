//! `syncproto dump`: connect as a client and print what arrives.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use syncproto::message::ByteString;

use syncproto::client::{ClientConfig, ClientEvent};
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
        ..ClientConfig::default()
    };
    let mut client = Client::connect(&args.connect, config, options)
        .await
        .map_err(Failure::runtime)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut state: BTreeMap<ByteString, SerializedUpdate> = BTreeMap::new();
    let mut stop_at: Option<Instant> = None;
    loop {
        let event = match stop_at {
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
                    stop_at = Some(Instant::now() + args.follow);
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
            Some(_) => {}
            None => break,
        }
        if stop_at.is_some_and(|deadline| deadline <= Instant::now()) {
            break;
        }
    }
    if args.state {
        for update in state.values() {
            write_line(&mut out, &update_to_line(update, false))?;
        }
    }
    out.flush()
        .map_err(|error| Failure::runtime(format!("writing output: {error}")))
}

fn write_line(out: &mut impl Write, line: &str) -> Result<(), Failure> {
    writeln!(out, "{line}").map_err(|error| Failure::runtime(format!("writing output: {error}")))
}

/// The host part of `host:port` (brackets removed for IPv6).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
