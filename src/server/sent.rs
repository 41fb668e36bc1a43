//! What a server connection has sent, counted as it hands output out, for
//! drivers to add into their metrics: messages, updates per `KVs` message,
//! checksums.

use crate::fanout::Carries;
use crate::message::Message;
use crate::metrics::{Histogram, KVS_PER_MESSAGE_BOUNDS};

/// Counts of what a connection sent (see
/// [`ServerConnection::take_send_stats`](super::ServerConnection::take_send_stats)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendStats {
    /// Messages of every kind.
    pub messages: u64,
    /// `KVs` messages.
    pub kvs_messages: u64,
    /// Updates in them.
    pub kvs: u64,
    /// Updates per `KVs` message (upstream's `typha_kvs_per_msg`).
    pub kvs_per_message: Histogram,
    /// Snapshot checksums.
    pub checksums: u64,
}

impl Default for SendStats {
    fn default() -> SendStats {
        SendStats {
            messages: 0,
            kvs_messages: 0,
            kvs: 0,
            kvs_per_message: Histogram::new(KVS_PER_MESSAGE_BOUNDS),
            checksums: 0,
        }
    }
}

impl SendStats {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &SendStats) {
        self.messages += other.messages;
        self.kvs_messages += other.kvs_messages;
        self.kvs += other.kvs;
        self.kvs_per_message.merge(&other.kvs_per_message);
        self.checksums += other.checksums;
    }

    /// Counts one message the connection encoded itself.
    pub(crate) fn record_message(&mut self, message: &Message) {
        self.messages += 1;
        match message {
            Message::Kvs(updates) => self.record_kvs(updates.len() as u64, 1),
            Message::Checksum(_) => self.checksums += 1,
            _ => {}
        }
    }

    /// Counts the messages in pre-encoded output.
    pub(crate) fn record_output(&mut self, carries: &Carries) {
        match carries {
            Carries::Kvs(count) => {
                self.messages += 1;
                self.record_kvs(u64::from(*count), 1);
            }
            Carries::Snapshot(counts) => {
                // The batches, then the restart that ends them.
                self.messages += counts.len() as u64 + 1;
                for count in counts.iter() {
                    self.record_kvs(u64::from(*count), 1);
                }
            }
            Carries::Other(kind) => {
                self.messages += 1;
                if *kind == crate::message::MessageKind::Checksum {
                    self.checksums += 1;
                }
            }
        }
    }

    fn record_kvs(&mut self, count: u64, messages: u64) {
        self.kvs_messages += messages;
        self.kvs += count * messages;
        self.kvs_per_message.observe_many(count, messages);
    }
}
