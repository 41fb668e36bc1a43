//! `dump --capture FILE`: the raw bytes received, for `syncproto decode`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::failure::Failure;

/// What the client calls with each chunk it reads.
type ReadHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A capture file being written from the client's read path.
#[derive(Clone)]
pub(super) struct Capture {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: BufWriter<File>,
    /// The first write error: the read path cannot return one, so it is
    /// kept for [`Capture::finish`].
    error: Option<std::io::Error>,
}

impl Capture {
    /// Creates (or truncates) the file.
    pub(super) fn create(path: &Path) -> Result<Capture, Failure> {
        let file = File::create(path)
            .map_err(|error| Failure::runtime(format!("{}: {error}", path.display())))?;
        Ok(Capture {
            path: path.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                file: BufWriter::with_capacity(256 * 1024, file),
                error: None,
            })),
        })
    }

    /// The hook for [`ClientOptions::on_read`](syncproto_tokio::ClientOptions::on_read).
    pub(super) fn tap(&self) -> ReadHook {
        let inner = Arc::clone(&self.inner);
        Arc::new(move |bytes: &[u8]| {
            let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.error.is_none()
                && let Err(error) = inner.file.write_all(bytes)
            {
                inner.error = Some(error);
            }
        })
    }

    /// Flushes the file; the first write error, if any.
    pub(super) fn finish(&self) -> Result<(), Failure> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let flushed = inner.file.flush();
        match inner.error.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(error) => Err(Failure::runtime(format!(
                "writing the capture {}: {error}",
                self.path.display()
            ))),
        }
    }
}
