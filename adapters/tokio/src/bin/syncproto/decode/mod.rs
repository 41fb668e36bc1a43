//! `syncproto decode`: decode a captured server-to-client stream.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use bytes::BytesMut;
use serde_json::{Value, json};
use syncproto::Message;
use syncproto::codec::{DEFAULT_MAX_SERVER_MESSAGE_LEN, StreamDecoder, WireFormat};
use syncproto::records::update_to_line;

use crate::failure::Failure;
use crate::options::Wire;

/// Decode a captured server-to-client byte stream (for example reassembled
/// from tcpdump), following its decoder restarts into compressed streams,
/// and print its messages as JSON lines: each update in the `serve` file
/// format, other messages as `{"type": ...}` objects. With `--stats`, print
/// only counts, bytes and throughput.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The wire format (default: told from the first byte).
    #[arg(long, value_enum)]
    wire: Option<Wire>,
    /// Print counts and throughput instead of the messages.
    #[arg(long)]
    stats: bool,
    /// The capture.
    file: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let data = std::fs::read(&args.file)
        .map_err(|error| Failure::input(format!("{}: {error}", args.file.display())))?;
    let format = match args.wire {
        Some(wire) => wire.into(),
        None => WireFormat::detect(&data)
            .ok_or_else(|| Failure::input(format!("{}: the file is empty", args.file.display())))?,
    };
    let mut decoder =
        StreamDecoder::new(format, DEFAULT_MAX_SERVER_MESSAGE_LEN, None).following_restarts();
    let mut input = BytesMut::from(&data[..]);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut messages, mut kvs) = (0u64, 0u64);
    let started = Instant::now();
    loop {
        let decoded = decoder.decode_eof(&mut input).map_err(|error| {
            let offset = data.len() - input.len();
            Failure::input(format!(
                "{}: at byte {offset}: {error}",
                args.file.display()
            ))
        })?;
        let Some(message) = decoded else { break };
        messages += 1;
        if let Message::Kvs(updates) = &message {
            kvs += updates.len() as u64;
        }
        if !args.stats {
            for line in lines(&message) {
                writeln!(out, "{line}")
                    .map_err(|error| Failure::runtime(format!("writing output: {error}")))?;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.stats {
        let summary = json!({
            "messages": messages,
            "kvs": kvs,
            "bytes": data.len(),
            "seconds": seconds,
            "mb_per_s": data.len() as f64 / 1e6 / seconds.max(1e-9),
            "kvs_per_s": kvs as f64 / seconds.max(1e-9),
        });
        writeln!(out, "{summary}")
            .map_err(|error| Failure::runtime(format!("writing output: {error}")))?;
    }
    out.flush()
        .map_err(|error| Failure::runtime(format!("writing output: {error}")))
}

/// A message as JSON lines.
fn lines(message: &Message) -> Vec<String> {
    let object = match message {
        Message::Kvs(updates) => {
            return updates
                .iter()
                .map(|update| update_to_line(update, true))
                .collect();
        }
        Message::ClientHello(hello) => json!({
            "type": "ClientHello",
            "hostname": hello.hostname,
            "info": hello.info,
            "version": hello.version,
            "syncer_type": hello.syncer_type.as_str(),
            "supports_decoder_restart": hello.supports_decoder_restart,
            "compression": hello.supported_compression_algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "supports_modern_policy_keys": hello.supports_modern_policy_keys,
            "client_conn_id": hello.client_conn_id,
            "supports_checksum": hello.supports_checksum,
        }),
        Message::ServerHello(hello) => json!({
            "type": "ServerHello",
            "version": hello.version,
            "syncer_type": hello.syncer_type.as_str(),
            "supports_node_resource_updates": hello.supports_node_resource_updates,
            "server_conn_id": hello.server_conn_id,
            "supports_checksum": hello.supports_checksum,
        }),
        Message::SyncStatus(status) => json!({"status": status.as_str()}),
        Message::Ping(ping) => json!({"type": "Ping", "timestamp": ping.timestamp.to_string()}),
        Message::Pong(pong) => json!({
            "type": "Pong",
            "ping_timestamp": pong.ping_timestamp.to_string(),
            "pong_timestamp": pong.pong_timestamp.to_string(),
        }),
        Message::DecoderRestart(restart) => json!({
            "type": "DecoderRestart",
            "message": restart.message,
            "compression": restart.compression_algorithm.as_ref().map(|a| a.as_str()),
        }),
        Message::Ack => json!({"type": "Ack"}),
        Message::Checksum(checksum) => json!({
            "type": "Checksum",
            "checksum": format!("{:#018x}", checksum.checksum),
            "kv_count": checksum.kv_count,
        }),
    };
    vec![Value::to_string(&object)]
}
