//! mio driver for the [`syncproto`] Sans-IO machines.
//!
//! This crate is a placeholder until the connection state machines land: it
//! re-exports the core crate so that dependants can already name it. The
//! single-threaded poll-loop server and client will live here.

#![forbid(unsafe_code)]

pub use syncproto;
