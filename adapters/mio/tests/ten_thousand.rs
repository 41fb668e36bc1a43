//! Scale: 10 000 concurrent client connections on loopback to one server,
//! every one reaching InSync with the cache's state, then following a live
//! change; and a smaller run with the clients in the server's process.
//!
//! Both ends of 10 000 connections in one process need over 20 000 file
//! descriptors. When the hard limit cannot be raised that far (raising it
//! needs CAP_SYS_RESOURCE), the clients run in a child process (this test
//! binary, relaunched) and the server's process still holds all 10 000.
//! The 10 000 run takes about 20 s in a debug build on two cores; the same
//! run in release mode, with its timings printed, is the `ten_thousand`
//! example: `cargo run --release -p syncproto-mio --example ten_thousand`.
//! The runs print what they measured (`-- --nocapture` to see it).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use support::{Placement, ScaleParams, scale_child_main, scale_run};

/// Relaunches this test binary to run only `test` (which then sees the
/// child environment variable and acts as the client side).
fn relaunch(test: &'static str) -> impl Fn() -> Command {
    move || {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        command
    }
}

/// One scale run at a time: they would share the descriptor limit and the
/// two cores, and each one's timings would measure the others.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(test: &'static str, params: ScaleParams) {
    if let Some(result) = scale_child_main() {
        result.unwrap_or_else(|error| panic!("client side: {error}"));
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let report = scale_run(&params, &relaunch(test)).unwrap_or_else(|error| panic!("{error}"));
    println!("{report}");
}

#[test]
fn ten_thousand_clients_reach_in_sync() {
    run(
        "ten_thousand_clients_reach_in_sync",
        ScaleParams {
            clients: 10_000,
            keys: 100,
            window: 1000,
            mix_flavours: true,
            limit: Duration::from_secs(300),
            placement: Placement::Auto,
        },
    );
}

#[test]
fn a_thousand_clients_in_the_servers_process() {
    run(
        "a_thousand_clients_in_the_servers_process",
        ScaleParams {
            clients: 1000,
            keys: 100,
            window: 500,
            mix_flavours: true,
            limit: Duration::from_secs(120),
            placement: Placement::ThisProcess,
        },
    );
}

#[test]
fn a_thousand_clients_in_a_child_process() {
    run(
        "a_thousand_clients_in_a_child_process",
        ScaleParams {
            clients: 1000,
            keys: 100,
            window: 1000,
            mix_flavours: true,
            limit: Duration::from_secs(120),
            placement: Placement::ChildProcess,
        },
    );
}
