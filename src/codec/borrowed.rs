//! What the decoders share between their owning and borrowing APIs.
//!
//! Both APIs run the same parser: it reads a `KVs` message's updates as
//! [`SerializedUpdateRef`]s borrowing the frame (or, in gob, the messages
//! a value spans), and decodes any other message whole. The borrowing API
//! hands those to the caller's callback as they are; the owning API
//! detaches them (`codec::retain`). So both decode every input alike, and
//! fail alike, by construction.

use crate::message::{Message, MessageRef, SerializedUpdateRef};

/// One decoded message, as the parser leaves it.
#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    /// A `KVs` message's updates, borrowing what was decoded.
    Kvs(Vec<SerializedUpdateRef<'a>>),
    /// Any other message.
    Other(Message),
}

impl Decoded<'_> {
    /// Hands this message to `on_message` as a [`MessageRef`].
    pub(crate) fn visit<R>(self, on_message: impl FnOnce(MessageRef<'_>) -> R) -> R {
        match self {
            Decoded::Kvs(updates) => on_message(MessageRef::Kvs(&updates)),
            Decoded::Other(message) => on_message(MessageRef::Other(message)),
        }
    }
}

/// A caller's `FnOnce` callback as the `FnMut` the decoders' loops pass
/// around: called at most once, and `None` if called again (never: each
/// decode hands over at most one message).
pub(crate) fn once<R>(
    on_message: impl FnOnce(MessageRef<'_>) -> R,
) -> impl FnMut(MessageRef<'_>) -> Option<R> {
    let mut on_message = Some(on_message);
    move |message| on_message.take().map(|on_message| on_message(message))
}
