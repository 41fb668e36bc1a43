//! `syncproto dump` run as a user would: lines as they arrive, stopped by
//! Ctrl-C or SIGTERM, giving up after --timeout, into a closed pipe, and
//! recording a capture that `decode` reads back.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::io::Write;

use cli_support::{Spawned, big_state_file, is_update, run, serve, spawn, state_file, syncproto};

const IN_SYNC: &str = r#"{"status":"in-sync"}"#;

/// Each line is out as soon as it arrives: with `--follow 1h` the process
/// is still running when the snapshot, the in-sync and then a change
/// appended to the served file reach the reader of its stdout.
#[test]
fn dump_prints_each_line_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--follow"]);
    let dump = spawn(syncproto(&[
        "dump",
        "--connect",
        &address,
        "--follow",
        "1h",
    ]));
    let snapshot = dump.stdout_until(|line| line == IN_SYNC);
    assert_eq!(
        snapshot.iter().filter(|line| is_update(line)).count(),
        text.lines().count()
    );
    // The client's own resync on start is not a line the server sent.
    assert!(is_update(&snapshot[0]), "{:?}", snapshot[0]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, r#"{{"key":"/calico/v1/config/Late","value":"1"}}"#).unwrap();
    let later = dump.stdout_until(|line| line.contains("/calico/v1/config/Late"));
    assert_eq!(later.len(), 1, "{later:?}");
}

/// Ctrl-C: exit code 130, and with `--state` the state received is printed
/// first (the server was in sync).
#[test]
fn ctrl_c_stops_dump_with_130_after_printing_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--typed-revisions"]);
    let dump = spawn(syncproto(&[
        "dump",
        "--connect",
        &address,
        "--state",
        "--follow",
        "1h",
        "--log-level",
        "info",
    ]));
    dump.stderr_until(|line| line.contains("in sync with"));
    dump.signal("INT");
    let (status, stdout, stderr) = dump.finish();
    assert_eq!(status.code(), Some(130), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|line| line.contains("interrupted (SIGINT)")),
        "{stderr:?}"
    );
    assert_eq!(stdout.len(), text.lines().count());
    for (got, want) in stdout.iter().zip(text.lines()) {
        assert_eq!(got, want);
    }
}

/// SIGTERM stops it the same way, with 143.
#[test]
fn sigterm_stops_dump_with_143() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let (_server, address) = serve(&path, &[]);
    let dump = spawn(syncproto(&[
        "dump",
        "--connect",
        &address,
        "--follow",
        "1h",
    ]));
    dump.stdout_until(|line| line == IN_SYNC);
    dump.signal("TERM");
    let (status, _, stderr) = dump.finish();
    assert_eq!(status.code(), Some(143), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|line| line.contains("interrupted (SIGTERM)")),
        "{stderr:?}"
    );
}

/// A server that never gets in sync: `--timeout` gives up with exit code 1
/// and says so, after printing what did arrive.
#[test]
fn dump_gives_up_at_its_timeout_when_the_server_is_never_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waiting.jsonl");
    std::fs::write(
        &path,
        "{\"status\":\"wait-for-ready\"}\n{\"key\":\"/calico/v1/config/A\",\"value\":\"1\"}\n",
    )
    .unwrap();
    let (_server, address) = serve(&path, &[]);
    let output = run(&["dump", "--connect", &address, "--timeout", "1s"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was not in sync after 1s"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("/calico/v1/config/A"), "{stdout}");
}

/// `dump | head -1`: the reader goes away after one line while dump still
/// has far more than a pipe holds to write; dump ends quietly with 0.
#[test]
fn dump_into_a_pipe_closed_early_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = big_state_file(dir.path(), 3000);
    let (_server, address) = serve(&path, &[]);
    let output = std::process::Command::new("bash")
        .args([
            "-c",
            r#"set -o pipefail; "$0" dump --connect "$1" | head -n 1"#,
            env!("CARGO_BIN_EXE_syncproto"),
            &address,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
}

/// `dump --capture` records the raw stream; `decode` reads it back to the
/// same updates and the same final state.
#[test]
fn dump_capture_decodes_to_what_dump_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--typed-revisions"]);
    for wire in ["gob", "native"] {
        let capture = dir.path().join(format!("{wire}.bin"));
        let capture = capture.to_str().unwrap();
        let dumped = run(&[
            "dump",
            "--connect",
            &address,
            "--wire",
            wire,
            "--capture",
            capture,
        ]);
        assert!(
            dumped.status.success(),
            "{}",
            String::from_utf8_lossy(&dumped.stderr)
        );
        let decoded = run(&["decode", capture]);
        assert!(
            decoded.status.success(),
            "{}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        let updates = |output: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(output)
                .lines()
                .filter(|line| is_update(line))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(updates(&decoded.stdout), updates(&dumped.stdout), "{wire}");
        let state = run(&["decode", "--state", capture]);
        assert!(
            state.status.success(),
            "{}",
            String::from_utf8_lossy(&state.stderr)
        );
        assert_eq!(String::from_utf8(state.stdout).unwrap(), text, "{wire}");
    }
}

/// Without `--follow`, dump ends by itself at the in-sync, its last line.
#[test]
fn dump_without_follow_ends_at_the_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let (_server, address) = serve(&path, &[]);
    let dump: Spawned = spawn(syncproto(&["dump", "--connect", &address]));
    let (status, stdout, _) = dump.finish();
    assert!(status.success());
    assert_eq!(stdout.last().map(String::as_str), Some(IN_SYNC));
}
