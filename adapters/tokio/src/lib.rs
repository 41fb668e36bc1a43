//! tokio driver for the [`syncproto`] Sans-IO machines.
//!
//! This crate is a placeholder until the connection state machines land: it
//! re-exports the core crate so that dependants can already name it. The
//! async client, server, TLS support and the `syncproto` command-line tool
//! will live here.

#![forbid(unsafe_code)]

pub use syncproto;
