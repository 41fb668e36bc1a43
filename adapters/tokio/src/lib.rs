//! tokio drivers for the [`syncproto`] Sans-IO machines, TLS as upstream
//! deployments use it, and the `syncproto` command-line tool.
//!
//! The drivers are thin: read → `handle_input`, drain transmits → write,
//! one timer from `poll_timeout`. All protocol logic stays in the core.
//!
//! - [`Client`]: one connection to a server, its events one at a time;
//!   [`ReconnectingClient`] keeps a connection up with backoff and hides the
//!   reconnects from the application (after a new snapshot it reports the
//!   keys that did not come back as deletions and suppresses updates that
//!   change nothing).
//! - [`Server`]: an accept loop on a shared
//!   [`SnapshotCache`](syncproto::fanout::SnapshotCache), one task per
//!   connection, graceful shutdown, and a connection limit enforced by
//!   shedding one random connection per second while over it, as upstream
//!   Typha does.
//! - [`tls`]: rustls configurations that check the peer's certificate
//!   against a CA and, optionally, its Common Name or URI SAN.
//! - [`relay`]: a [`Server`] fed by connections to another server, one per
//!   syncer type, that hides the upstream's reconnects from its clients.
//! - [`metrics`] and [`endpoints`] (feature `metrics`): a server's
//!   Prometheus metrics, and the HTTP endpoints serving them and the
//!   liveness and readiness probes.
//!
//! The drivers log through `tracing` (a span per server connection naming
//! its id and peer, and from the handshake on the client's hostname,
//! syncer type, version and connection id, the wire format and the
//! compression; a line when it is accepted and when it ends); the
//! application installs the subscriber.

#![forbid(unsafe_code)]

mod client;
#[cfg(test)]
mod driver_tests;
#[cfg(feature = "metrics")]
pub mod endpoints;
mod io;
#[cfg(feature = "metrics")]
pub mod metrics;
mod reconnect;
pub mod relay;
mod server;
pub mod tls;

pub use client::{Client, ClientOptions, ConnectError};
pub use reconnect::ReconnectingClient;
pub use server::{CacheSource, ReportHook, Server, ServerHandle, ServerOptions};
pub use syncproto;

use std::time::SystemTime;

use syncproto::Now;

/// Reads both clocks, for the machines' `handle_*` calls: the instant from
/// tokio's clock (which the drivers sleep on, so that tests can pause and
/// advance it), the wall time from the system's.
pub fn now() -> Now {
    Now::from_std(tokio::time::Instant::now().into_std(), SystemTime::now())
}
