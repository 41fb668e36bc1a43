//! The names upstream registers its message types under with gob.
//!
//! Upstream keeps the pre-monorepo package path on purpose, so these names
//! never change with code moves; an interface value names its concrete type
//! with one of them.

use crate::message::MessageKind;

/// The name `MsgChecksum` (upstream's newest generation) is registered
/// under. Upstream's design record gives the type but not the registration;
/// this follows the rule every other message follows (DESIGN.md §1b), and
/// is the one place to change should upstream register it otherwise.
pub const CHECKSUM_NAME: &str = "github.com/projectcalico/typha/pkg/syncproto.MsgChecksum";

/// Every message kind with its registered name.
const REGISTERED: [(MessageKind, &str); 9] = [
    (
        MessageKind::ClientHello,
        "github.com/projectcalico/typha/pkg/syncproto.MsgClientHello",
    ),
    (
        MessageKind::ServerHello,
        "github.com/projectcalico/typha/pkg/syncproto.MsgServerHello",
    ),
    (
        MessageKind::Kvs,
        "github.com/projectcalico/typha/pkg/syncproto.MsgKVs",
    ),
    (
        MessageKind::SyncStatus,
        "github.com/projectcalico/typha/pkg/syncproto.MsgSyncStatus",
    ),
    (
        MessageKind::Ping,
        "github.com/projectcalico/typha/pkg/syncproto.MsgPing",
    ),
    (
        MessageKind::Pong,
        "github.com/projectcalico/typha/pkg/syncproto.MsgPong",
    ),
    (
        MessageKind::DecoderRestart,
        "github.com/projectcalico/typha/pkg/syncproto.MsgDecoderRestart",
    ),
    (
        MessageKind::Ack,
        "github.com/projectcalico/typha/pkg/syncproto.MsgACK",
    ),
    (MessageKind::Checksum, CHECKSUM_NAME),
];

/// The name gob carries for a message of this kind.
pub(crate) fn registered_name(kind: MessageKind) -> &'static str {
    REGISTERED
        .iter()
        .find(|(registered, _)| *registered == kind)
        .map_or("", |(_, name)| name)
}

/// The message kind registered under `name`, if any.
pub(crate) fn message_kind_for_name(name: &str) -> Option<MessageKind> {
    REGISTERED
        .iter()
        .find(|(_, registered)| *registered == name)
        .map(|(kind, _)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_use_the_pre_monorepo_path() {
        for (kind, name) in REGISTERED {
            assert_eq!(message_kind_for_name(registered_name(kind)), Some(kind));
            assert_eq!(
                name,
                format!(
                    "github.com/projectcalico/typha/pkg/syncproto.{}",
                    kind.go_name()
                )
            );
        }
        assert_eq!(message_kind_for_name("syncproto.MsgPing"), None);
    }
}
