//! A Sans-IO implementation of the Calico Felix⇄Typha sync protocol.
//!
//! A fan-out server (upstream: Typha) streams a datastore snapshot and then
//! live updates to many agents (upstream: Felix) over TCP. This crate holds
//! the protocol itself, with no I/O: the [`message`] model, and the wire
//! formats in [`codec`] — Go's gob (for upstream peers) and a compact native
//! postcard encoding — and the datastore [`key`] model that gives each
//! update's key path and value a type. Drivers for tokio and mio live in
//! companion crates.
//!
//! ```
//! use bytes::BytesMut;
//! use syncproto::codec::native::{NativeDecoder, NativeEncoder};
//! use syncproto::message::{Message, SerializedUpdate, SyncStatus};
//!
//! // Server side: encode a batch and a status into a write buffer.
//! let mut encoder = NativeEncoder::for_server();
//! let mut wire = BytesMut::new();
//! let update = SerializedUpdate::upsert("/calico/v1/config/LogSeverityScreen", "Info", "17");
//! encoder.encode(&Message::Kvs(vec![update.clone()]), &mut wire)?;
//! encoder.encode(&Message::SyncStatus(SyncStatus::InSync), &mut wire)?;
//!
//! // Client side: feed whatever arrived; complete messages come out.
//! let mut decoder = NativeDecoder::for_client();
//! let mut received = BytesMut::from(&wire[..]);
//! assert_eq!(decoder.decode(&mut received)?, Some(Message::Kvs(vec![update])));
//! assert_eq!(decoder.decode(&mut received)?, Some(Message::SyncStatus(SyncStatus::InSync)));
//! assert_eq!(decoder.decode(&mut received)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checksum;
pub mod client;
mod close;
pub mod codec;
pub mod error;
pub mod fanout;
mod gofmt;
pub mod key;
pub mod message;
pub mod metrics;
#[cfg(feature = "records")]
pub mod records;
pub mod rewrite;
mod rng;
pub mod server;
pub mod session;
#[cfg(feature = "synthetic")]
pub mod synthetic;
mod time;

pub use close::{CloseReason, TimeoutKind};
pub use error::{DecodeError, ProtocolError, UsageError};
pub use message::Message;
pub use time::Now;
