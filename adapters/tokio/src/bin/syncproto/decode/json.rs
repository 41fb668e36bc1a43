//! How `decode` prints each message: updates in the `serve` file format,
//! other messages as `{"type": ...}` objects.

use serde_json::Value;
use syncproto::Message;
use syncproto::message::MessageRef;
use syncproto::records::update_to_line;

use crate::failure::Failure;
use crate::output::Lines;

/// Prints a message handed over by the borrowing decoder as JSON lines.
pub(super) fn print(message: &MessageRef<'_>, out: &mut Lines) -> Result<(), Failure> {
    match message {
        MessageRef::Kvs(updates) => {
            for update in *updates {
                // The line renderer takes an owned update; the copy is
                // small beside building the line.
                out.line(&update_to_line(&update.to_update(), true))?;
            }
            Ok(())
        }
        MessageRef::Other(message) => {
            for line in lines(message) {
                out.line(&line)?;
            }
            Ok(())
        }
    }
}

/// A JSON object with its members in the order written: `"type"` first,
/// as the README shows the lines (serde_json's own maps sort their keys).
macro_rules! ordered {
    ($($key:literal: $value:expr),* $(,)?) => {
        $crate::decode::json::object(&[$(($key, serde_json::json!($value))),*])
    };
}
pub(crate) use ordered;

/// The object `members` make, in their order.
pub(crate) fn object(members: &[(&str, Value)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(*key)))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// A message as JSON lines.
fn lines(message: &Message) -> Vec<String> {
    let line = match message {
        Message::Kvs(updates) => {
            return updates
                .iter()
                .map(|update| update_to_line(update, true))
                .collect();
        }
        Message::ClientHello(hello) => ordered!(
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
        ),
        Message::ServerHello(hello) => ordered!(
            "type": "ServerHello",
            "version": hello.version,
            "syncer_type": hello.syncer_type.as_str(),
            "supports_node_resource_updates": hello.supports_node_resource_updates,
            "server_conn_id": hello.server_conn_id,
            "supports_checksum": hello.supports_checksum,
        ),
        Message::SyncStatus(status) => ordered!("status": status.as_str()),
        Message::Ping(ping) => ordered!("type": "Ping", "timestamp": ping.timestamp.to_string()),
        Message::Pong(pong) => ordered!(
            "type": "Pong",
            "ping_timestamp": pong.ping_timestamp.to_string(),
            "pong_timestamp": pong.pong_timestamp.to_string(),
        ),
        Message::DecoderRestart(restart) => ordered!(
            "type": "DecoderRestart",
            "message": restart.message,
            "compression": restart.compression_algorithm.as_ref().map(|a| a.as_str()),
        ),
        Message::Ack => ordered!("type": "Ack"),
        Message::Checksum(checksum) => ordered!(
            "type": "Checksum",
            "checksum": format!("{:#018x}", checksum.checksum),
            "kv_count": checksum.kv_count,
        ),
    };
    vec![line]
}
