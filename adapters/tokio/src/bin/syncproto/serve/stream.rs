//! `serve --snapshot -` (standard input) and other inputs that cannot be
//! re-read: pipes, FIFOs, `/dev/stdin`. Without `--follow` the input is
//! read to its end, then served; with it, lines are served as they come,
//! and the data is in sync when a status line says so or the input ends.

use std::path::Path;

use syncproto_tokio::ServerHandle;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::datastore::{Datastore, count_lines, parse_records};
use crate::failure::{Failure, note};

/// An input read once, front to back.
pub(super) struct Stream {
    name: std::path::PathBuf,
    reader: Box<dyn AsyncRead + Unpin + Send>,
}

impl Stream {
    /// Standard input.
    pub(super) fn stdin() -> Stream {
        Stream {
            name: "stdin".into(),
            reader: Box::new(tokio::io::stdin()),
        }
    }

    /// A path that is not a regular file (a pipe, a FIFO, `/dev/stdin`).
    pub(super) async fn open(path: &Path) -> Result<Stream, Failure> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| Failure::input(format!("{}: {error}", path.display())))?;
        Ok(Stream {
            name: path.to_owned(),
            reader: Box::new(file),
        })
    }

    /// The input's name, for messages.
    pub(super) fn name(&self) -> &Path {
        &self.name
    }

    fn failure(&self, error: std::io::Error) -> Failure {
        Failure::input(format!("{}: {error}", self.name.display()))
    }

    /// Reads the whole input and applies it.
    pub(super) async fn load(mut self, datastore: &mut Datastore) -> Result<usize, Failure> {
        let mut text = Vec::new();
        self.reader
            .read_to_end(&mut text)
            .await
            .map_err(|error| self.failure(error))?;
        let (records, _) = parse_records(&self.name, &text, 1, false)?;
        let loaded = records.len();
        datastore.apply(records);
        Ok(loaded)
    }

    /// Applies each line as it is finished, until the input ends; then the
    /// data is in sync unless a status line said otherwise.
    pub(super) async fn follow(
        mut self,
        datastore: &mut Datastore,
        handle: &ServerHandle,
    ) -> Result<(), Failure> {
        let mut pending = Vec::new();
        let mut line = 1;
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let read = self
                .reader
                .read(&mut chunk)
                .await
                .map_err(|error| self.failure(error))?;
            let ended = read == 0;
            pending.extend_from_slice(&chunk[..read]);
            // At the end, a last line without its newline is complete.
            let (records, consumed) = parse_records(&self.name, &pending, line, !ended)?;
            line += count_lines(&pending[..consumed]);
            pending.drain(..consumed);
            if !records.is_empty() {
                datastore.apply(records);
                handle.notify();
            }
            if ended {
                break;
            }
        }
        if !datastore.status_set() {
            datastore.set_in_sync();
            handle.notify();
        }
        note(&format!(
            "{} ended: serving the {} keys it left",
            self.name.display(),
            datastore.cache().stats().keys
        ));
        Ok(())
    }
}
