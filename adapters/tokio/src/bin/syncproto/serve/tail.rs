//! `serve --follow` on a regular file: lines appended are served as they
//! are finished; a file truncated, rewritten in place or replaced (by `mv`,
//! as editors and `kubectl … > file.tmp && mv` do) is read anew as the
//! whole datastore.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syncproto_tokio::ServerHandle;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::datastore::{Datastore, count_lines, parse_records};
use crate::failure::{Failure, note};

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(200);

/// How many of the last bytes read are kept to notice a rewrite in place
/// that left the file at least as long as before.
const TAIL: usize = 256;

/// A file being followed.
pub(super) struct Tail {
    path: PathBuf,
    file: File,
    /// Device and inode of the file read: another means it was replaced.
    identity: (u64, u64),
    /// Bytes read so far.
    offset: u64,
    /// The number of the next line.
    line: usize,
    /// The start of a line still being written.
    pending: Vec<u8>,
    /// The last bytes read, up to `offset`.
    tail: Vec<u8>,
}

/// What changed since the last look.
enum Change {
    /// Nothing, or lines appended.
    Grown,
    /// The path is gone for now (between an `rm` and a new file).
    Missing,
    /// The file at the path is another (`mv`).
    Replaced,
    /// Shorter than what was read.
    Truncated,
    /// What was read is no longer there.
    Rewritten,
}

fn failure(path: &Path, error: impl std::fmt::Display) -> Failure {
    Failure::input(format!("{}: {error}", path.display()))
}

impl Tail {
    /// Opens the file and reads what it holds, leaving a last line without
    /// its newline (perhaps still being written) for later.
    pub(super) async fn open(
        path: &Path,
    ) -> Result<(Tail, Vec<syncproto::records::Record>), Failure> {
        let mut file = File::open(path)
            .await
            .map_err(|error| failure(path, error))?;
        let identity = identity(&file)
            .await
            .map_err(|error| failure(path, error))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .await
            .map_err(|error| failure(path, error))?;
        let (records, consumed) = parse_records(path, &text, 1, true)?;
        let tail = Tail {
            path: path.to_owned(),
            file,
            identity,
            offset: text.len() as u64,
            line: count_lines(&text[..consumed]) + 1,
            pending: text[consumed..].to_vec(),
            tail: text[text.len().saturating_sub(TAIL)..].to_vec(),
        };
        Ok((tail, records))
    }

    /// Follows the file until a line is malformed (the error names it).
    pub(super) async fn follow(
        mut self,
        datastore: &mut Datastore,
        handle: &ServerHandle,
    ) -> Result<(), Failure> {
        loop {
            tokio::time::sleep(POLL).await;
            match self.look().await? {
                Change::Missing => {}
                Change::Grown => {
                    if self.read_on(datastore).await? {
                        handle.notify();
                    }
                }
                change => {
                    let how = match change {
                        Change::Replaced => "was replaced",
                        Change::Truncated => "was truncated",
                        _ => "was rewritten",
                    };
                    self = self.reload(datastore, how).await?;
                    handle.notify();
                }
            }
        }
    }

    async fn look(&mut self) -> Result<Change, Failure> {
        let metadata = match tokio::fs::metadata(&self.path).await {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Change::Missing);
            }
            Err(error) => return Err(failure(&self.path, error)),
        };
        if (metadata.dev(), metadata.ino()) != self.identity {
            return Ok(Change::Replaced);
        }
        if metadata.len() < self.offset {
            return Ok(Change::Truncated);
        }
        let mut tail = vec![0; self.tail.len()];
        self.file
            .seek(SeekFrom::Start(self.offset - tail.len() as u64))
            .await
            .map_err(|error| failure(&self.path, error))?;
        match self.file.read_exact(&mut tail).await {
            Ok(_) if tail == self.tail => Ok(Change::Grown),
            Ok(_) => Ok(Change::Rewritten),
            // Shortened between the two looks.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Ok(Change::Truncated)
            }
            Err(error) => Err(failure(&self.path, error)),
        }
    }

    /// Reads what was appended and applies its finished lines; whether any.
    async fn read_on(&mut self, datastore: &mut Datastore) -> Result<bool, Failure> {
        let mut fresh = Vec::new();
        // `look` left the position at `offset`.
        self.file
            .read_to_end(&mut fresh)
            .await
            .map_err(|error| failure(&self.path, error))?;
        if fresh.is_empty() {
            return Ok(false);
        }
        self.offset += fresh.len() as u64;
        self.tail.extend_from_slice(&fresh);
        self.tail.drain(..self.tail.len().saturating_sub(TAIL));
        self.pending.extend_from_slice(&fresh);
        let (records, consumed) = parse_records(&self.path, &self.pending, self.line, true)?;
        if consumed == 0 {
            return Ok(false);
        }
        self.line += count_lines(&self.pending[..consumed]);
        self.pending.drain(..consumed);
        datastore.apply(records);
        Ok(true)
    }

    /// Reads the file at the path anew as the whole datastore.
    async fn reload(self, datastore: &mut Datastore, how: &str) -> Result<Tail, Failure> {
        let (tail, records) = Tail::open(&self.path).await?;
        let keys = datastore.replace(records);
        note(&format!(
            "{} {how}: serving the {keys} keys it holds now",
            self.path.display()
        ));
        Ok(tail)
    }
}

async fn identity(file: &File) -> std::io::Result<(u64, u64)> {
    let metadata = file.metadata().await?;
    Ok((metadata.dev(), metadata.ino()))
}
