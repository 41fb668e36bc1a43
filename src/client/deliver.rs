//! What a `KVs` message's updates go through on their way to the
//! application: the received-state checksum (over what the server sent),
//! then the optional legacy policy key upgrade, then the key check, which
//! drops what it rejects with a [`ClientEvent::Dropped`] event.
//!
//! There are two ways out, one per delivery API: owned updates queued as a
//! [`ClientEvent::Updates`], or updates borrowed from the decoder's buffer
//! handed to a callback as a [`ClientEventRef::Updates`]. Both run the same
//! steps in the same order, so both APIs report the same events.

use std::collections::VecDeque;

use super::checksum::ReceivedState;
use super::config::ClientConfig;
use super::event::{ClientEvent, ClientEventRef};
use crate::key::KeyParser;
use crate::message::{SerializedUpdate, SerializedUpdateRef};
use crate::rewrite::may_be_legacy_policy_key;

/// The parts of a connection delivery reads and writes, borrowed apart
/// from its decoder (which holds the bytes borrowed updates point into).
pub(super) struct Delivery<'c> {
    pub(super) config: &'c ClientConfig,
    pub(super) received: &'c mut Option<ReceivedState>,
    pub(super) events: &'c mut VecDeque<ClientEvent>,
}

impl Delivery<'_> {
    /// Queues one message's updates as a [`ClientEvent::Updates`], minus
    /// those whose keys are rejected (each reported before it).
    pub(super) fn queue(self, mut updates: Vec<SerializedUpdate>) {
        if let Some(received) = self.received.as_mut() {
            received.apply(updates.iter().map(SerializedUpdate::borrowed));
        }
        if self.config.upgrade_legacy_policy_keys {
            updates = updates
                .into_iter()
                .map(SerializedUpdate::upgrade_legacy_policy_key)
                .collect();
        }
        if let Some(parser) = &self.config.key_parser {
            updates.retain(|update| passes_key_check(parser.as_ref(), self.events, &update.key));
        }
        self.events.push_back(ClientEvent::Updates(updates));
    }

    /// Hands one message's updates, borrowed, to `on_event`, after every
    /// event queued before them (rejected keys' `Dropped` included).
    ///
    /// With neither an upgrade nor a key check configured, the decoder's
    /// slice goes out as it is: nothing is allocated. Otherwise one vector
    /// per message holds the kept updates, and an upgraded policy update
    /// (its key and value rewritten) is the only one copied.
    pub(super) fn hand_over(
        self,
        updates: &[SerializedUpdateRef<'_>],
        on_event: &mut dyn FnMut(ClientEventRef<'_>),
    ) {
        if let Some(received) = self.received.as_mut() {
            received.apply(updates.iter().copied());
        }
        let upgrade = self.config.upgrade_legacy_policy_keys;
        if !upgrade && self.config.key_parser.is_none() {
            hand_over_queued(self.events, on_event);
            on_event(ClientEventRef::Updates(updates));
            return;
        }
        // The rewritten updates, by position: they must live while the
        // kept updates borrow them.
        let upgraded: Vec<Option<SerializedUpdate>> = match upgrade {
            true => updates
                .iter()
                .map(|update| {
                    may_be_legacy_policy_key(update.key)
                        .then(|| update.to_update().upgrade_legacy_policy_key())
                })
                .collect(),
            false => Vec::new(),
        };
        let mut kept = Vec::with_capacity(updates.len());
        for (index, update) in updates.iter().enumerate() {
            let update = match upgraded.get(index) {
                Some(Some(rewritten)) => rewritten.borrowed(),
                _ => *update,
            };
            if let Some(parser) = &self.config.key_parser
                && !passes_key_check(parser.as_ref(), self.events, update.key)
            {
                continue;
            }
            kept.push(update);
        }
        hand_over_queued(self.events, on_event);
        on_event(ClientEventRef::Updates(&kept));
    }
}

/// Whether `parser` lets `key` through; a rejected key is queued as a
/// [`ClientEvent::Dropped`] with the reason, for both delivery APIs alike.
fn passes_key_check(parser: &dyn KeyParser, events: &mut VecDeque<ClientEvent>, key: &str) -> bool {
    match parser.validate(key) {
        Ok(()) => true,
        Err(reason) => {
            events.push_back(ClientEvent::Dropped {
                key: key.into(),
                reason,
            });
            false
        }
    }
}

/// Hands every queued event to `on_event`, in order, emptying the queue.
pub(super) fn hand_over_queued(
    events: &mut VecDeque<ClientEvent>,
    on_event: &mut dyn FnMut(ClientEventRef<'_>),
) {
    for event in events.drain(..) {
        on_event(ClientEventRef::Other(event));
    }
}
