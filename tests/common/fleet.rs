//! Many in-memory client/server pairs on one snapshot cache, sharing a
//! virtual clock: the fan-out test bench.

use std::collections::BTreeMap;
use std::time::Duration;
use syncproto::message::ByteString;

use bytes::Bytes;
use syncproto::CloseReason;
use syncproto::client::{ChecksumReport, ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::SnapshotCache;
use syncproto::message::SyncStatus;
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};

use super::harness::{Clock, client_config};

pub struct Member {
    pub client: ClientConnection,
    pub server: ServerConnection,
    pub view: BTreeMap<ByteString, Bytes>,
    pub status: Option<SyncStatus>,
    pub updates_events: usize,
    /// Every snapshot checksum comparison the client reported.
    pub checksums: Vec<ChecksumReport>,
    pub client_closed: Option<CloseReason>,
    pub server_closed: Option<CloseReason>,
    /// While set, this client's server side is not read (a stalled client).
    pub stalled: bool,
}

pub struct Fleet {
    pub clock: Clock,
    pub cache: SnapshotCache,
    pub members: Vec<Member>,
    pub server_config: ServerConfig,
}

impl Fleet {
    pub fn new(cache: SnapshotCache) -> Fleet {
        Fleet {
            clock: Clock::new(),
            cache,
            members: Vec::new(),
            server_config: ServerConfig {
                // The tests are about data: a stalled client must be cut
                // off by the cache's fall-behind limit, not by pongs.
                ping_interval: Duration::from_secs(10),
                pong_timeout: Duration::from_secs(24 * 3600),
                ..ServerConfig::default()
            },
        }
    }

    /// Connects a client speaking `format` (compressed or not); its server
    /// side follows the cache from the moment it is accepted.
    pub fn join(&mut self, format: WireFormat, compressed: bool) -> usize {
        self.join_with(client_config(format, compressed))
    }

    /// Connects a client configured as `config`.
    pub fn join_with(&mut self, config: ClientConfig) -> usize {
        let now = self.clock.now();
        let client = ClientConnection::new(config, now).expect("client config");
        let mut server =
            ServerConnection::new(self.server_config.clone(), now).expect("server config");
        server
            .follow(self.cache.subscribe(now.instant))
            .expect("follow");
        self.members.push(Member {
            client,
            server,
            view: BTreeMap::new(),
            status: None,
            updates_events: 0,
            checksums: Vec::new(),
            client_closed: None,
            server_closed: None,
            stalled: false,
        });
        self.members.len() - 1
    }

    /// Moves bytes for one member until it is quiet.
    pub fn pump(&mut self, index: usize) {
        let now = self.clock.now();
        let member = &mut self.members[index];
        loop {
            let mut progressed = false;
            while let Some(bytes) = member.client.poll_transmit() {
                member.server.handle_input(now, &bytes);
                progressed = true;
            }
            if !member.stalled {
                while let Some(bytes) = member.server.poll_transmit(now.instant) {
                    member.client.handle_input(now, &bytes);
                    progressed = true;
                }
            }
            while let Some(event) = member.client.poll_event() {
                progressed = true;
                match event {
                    ClientEvent::Updates(updates) => {
                        member.updates_events += 1;
                        for update in updates {
                            update.apply_to(&mut member.view);
                        }
                    }
                    ClientEvent::Status(status) => member.status = Some(status),
                    ClientEvent::Checksum(report) => member.checksums.push(report),
                    ClientEvent::Closed(reason) => member.client_closed = Some(reason),
                    _ => {}
                }
            }
            while let Some(event) = member.server.poll_event() {
                progressed = true;
                if let ServerEvent::Closed(reason) = event {
                    member.server_closed = Some(reason);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    pub fn pump_all(&mut self) {
        for index in 0..self.members.len() {
            self.pump(index);
        }
    }

    /// Advances the clock a second at a time, firing every machine's
    /// timers and moving bytes after each step.
    pub fn advance(&mut self, by: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let step = left.min(Duration::from_secs(1));
            left -= step;
            self.clock.advance(step);
            let now = self.clock.now();
            for member in &mut self.members {
                member.client.handle_timeout(now);
                member.server.handle_timeout(now);
            }
            self.pump_all();
        }
    }

    /// The cache's current state as key → value.
    pub fn expected(&self) -> BTreeMap<ByteString, Bytes> {
        self.cache
            .snapshot_updates()
            .into_iter()
            .filter_map(|update| Some((update.key, update.value?)))
            .collect()
    }
}
