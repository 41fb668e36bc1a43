//! `dump --checksum`: what the server's snapshot checksums said.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use syncproto::checksum::StateChecksum;
use syncproto::client::ChecksumReport;
use syncproto_tokio::Client;
use tokio::time::Instant;

use crate::failure::Failure;

/// How long `--checksum` waits past the in-sync for the server's first
/// checksum (upstream's server sends it right after that in-sync).
pub(super) const FIRST_CHECKSUM_WAIT: Duration = Duration::from_secs(10);

/// The line `--checksum` prints at exit. A struct rather than a JSON map:
/// its fields come out in this order, the README's, where a map's keys
/// would come out sorted.
#[derive(Debug, Serialize)]
struct ChecksumLine {
    /// The last checksum the server sent (`0x` and 16 hex digits).
    server_checksum: Option<String>,
    server_kv_count: Option<i64>,
    /// This client's checksum of its final state.
    checksum: Option<String>,
    kv_count: Option<i64>,
    verified: bool,
}

/// What `--checksum` saw.
#[derive(Debug, Default)]
pub(super) struct ChecksumTally {
    pub(super) in_sync_at: Option<Instant>,
    last_server: Option<StateChecksum>,
    compared: u64,
    mismatches: u64,
}

impl ChecksumTally {
    pub(super) fn record(&mut self, report: &ChecksumReport) {
        self.last_server = Some(report.server);
        self.compared += 1;
        if !report.verified {
            self.mismatches += 1;
        }
    }

    /// When the in-sync came, while the first checksum is still awaited
    /// from a server that agreed to send them.
    pub(super) fn awaited(&self, client: &Client) -> Option<Instant> {
        let agreed = client
            .server_hello()
            .is_some_and(|hello| hello.supports_checksum);
        self.in_sync_at.filter(|_| agreed && self.compared == 0)
    }

    /// Prints the `--checksum` line on stderr; a failure unless verified.
    pub(super) fn report(&self, own: Option<StateChecksum>) -> Result<(), Failure> {
        let hex = |checksum: &StateChecksum| format!("{:#018x}", checksum.checksum);
        let verified = self.compared > 0 && self.mismatches == 0;
        let line = ChecksumLine {
            server_checksum: self.last_server.as_ref().map(hex),
            server_kv_count: self.last_server.map(|server| server.kv_count),
            checksum: own.as_ref().map(hex),
            kv_count: own.map(|own| own.kv_count),
            verified,
        };
        if let Ok(line) = serde_json::to_string(&line) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
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
