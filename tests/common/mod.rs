//! Shared helpers for the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod blocking;
pub mod dataset;
pub mod fleet;
pub mod go_peer;
pub mod gob_bytes;
pub mod golden;
pub mod harness;
pub mod pieces;
pub mod sessions;
pub mod strategies;
