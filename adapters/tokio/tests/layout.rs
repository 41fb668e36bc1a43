//! The project's rule that no adapter source file grows past about 600
//! lines (issue 13): past that a file holds more than one thing, and it
//! is split by what it holds.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// The most lines an adapter source file may have.
const MAX_LINES: usize = 600;

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_adapter_source_file_is_over_600_lines() {
    let adapters = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&adapters, &mut files);
    // This crate's own sources at least, so that a wrong root fails
    // rather than finds nothing.
    assert!(
        files.iter().any(|file| file.ends_with("tokio/src/lib.rs")),
        "no adapter sources under {}",
        adapters.display()
    );
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            let name = file.strip_prefix(&adapters).unwrap_or(file);
            (lines > MAX_LINES).then(|| format!("adapters/{} ({lines} lines)", name.display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "adapter source files over {MAX_LINES} lines: {long:?}"
    );
}
