//! Reading the deployment files in `deploy/` for the deploy tests: the
//! Kubernetes manifests as YAML (`manifest`), the relay's flags as its
//! `--help` describes them (`relay_args`), and the Dockerfile's stages
//! (`dockerfile`).

// Each helper is used by some of the tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

pub mod dockerfile;
pub mod manifest;
pub mod relay_args;

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A file's text; panics naming the file when it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}
