//! The final state a stream leaves, as `dump --state` and `decode --state`
//! print it: one line per live key, sorted by key, in the `serve` file
//! format (so that `serve` can serve it again).

use std::collections::BTreeMap;

use syncproto::message::{ByteString, SerializedUpdate};
use syncproto::records::update_to_line;

use crate::failure::Failure;
use crate::output::Lines;

/// Live keys and their latest update.
#[derive(Debug, Default)]
pub(crate) struct State {
    keys: BTreeMap<ByteString, SerializedUpdate>,
}

impl State {
    /// Applies one update: a value sets the key, none deletes it.
    pub(crate) fn apply(&mut self, update: SerializedUpdate) {
        match &update.value {
            Some(_) => {
                self.keys.insert(update.key.clone(), update);
            }
            None => {
                self.keys.remove(&update.key);
            }
        }
    }

    /// How many keys are live.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Prints every key's line, sorted by key.
    pub(crate) fn print(&self, out: &mut Lines) -> Result<(), Failure> {
        for update in self.keys.values() {
            out.line(&update_to_line(update, false))?;
        }
        Ok(())
    }
}
