//! `syncproto decode` on captures as a user has them: large ones read as a
//! stream in bounded memory, from stdin, empty ones, and into a pipe that
//! closes early.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::process::Stdio;

use cli_support::{golden, run, syncproto, write_capture};

/// A 64 MB capture decodes with the whole process's peak memory far below
/// the capture's size: the input is read as it is decoded, not loaded
/// (before: about twice the capture).
#[test]
fn decode_streams_a_64_mb_capture_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.gob");
    let (bytes, kvs) = write_capture(&path, 10_000, 64 << 20);
    let output = run(&["decode", "--stats", path.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["bytes"].as_u64(), Some(bytes), "{stats}");
    assert_eq!(stats["kvs"].as_u64(), Some(kvs), "{stats}");
    let peak = stats["peak_rss_bytes"]
        .as_u64()
        .expect("Linux reports VmHWM");
    assert!(
        peak < bytes / 2,
        "peak RSS {peak} for a {bytes}-byte capture"
    );
    // Rates are rounded to what a run can tell.
    assert!(stats["kvs_per_s"].is_u64(), "{stats}");
    let mb_per_s = stats["mb_per_s"].as_f64().unwrap();
    assert_eq!((mb_per_s * 10.0).round() / 10.0, mb_per_s, "{stats}");
}

/// `decode -` reads standard input, as it would read the file.
#[test]
fn decode_reads_standard_input() {
    let capture = golden("compressed_session.new.bin");
    let from_file = run(&["decode", capture.to_str().unwrap()]);
    assert!(from_file.status.success());
    let from_stdin = syncproto(&["decode", "-"])
        .stdin(std::fs::File::open(&capture).unwrap())
        .output()
        .unwrap();
    assert!(
        from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );
    assert!(!from_file.stdout.is_empty());
    assert_eq!(from_stdin.stdout, from_file.stdout);
}

/// A pipe holds 64 KiB, so a capture larger than that arrives in reads
/// shorter than the buffer's room, most ending mid-message; the state is
/// the same as from the file.
#[test]
fn decode_reads_a_capture_through_a_pipe_in_short_reads() {
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("piped.gob");
    write_capture(&path, 2_000, 1 << 20);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4 * 65536, "{} bytes", bytes.len());
    let from_file = run(&["decode", "--state", path.to_str().unwrap()]);
    assert!(from_file.status.success());
    let mut child = syncproto(&["decode", "--state", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for piece in bytes.chunks(4_001) {
            stdin.write_all(piece).unwrap();
        }
    });
    let from_pipe = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        from_pipe.status.success(),
        "{}",
        String::from_utf8_lossy(&from_pipe.stderr)
    );
    assert!(!from_file.stdout.is_empty());
    assert_eq!(from_pipe.stdout, from_file.stdout);
}

/// An empty capture is an input error (exit code 3), whether the wire
/// format is given or told from the first byte.
#[test]
fn an_empty_capture_exits_3_with_or_without_wire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    let path = path.to_str().unwrap();
    for args in [vec!["decode", path], vec!["decode", "--wire", "gob", path]] {
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("the capture is empty"), "{stderr}");
    }
}

/// `decode | head -1`: the reader leaves after one line with far more than
/// a pipe holds still to come; decode ends quietly with 0.
#[test]
fn decode_into_a_pipe_closed_early_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.gob");
    write_capture(&path, 2_000, 1 << 20);
    let output = std::process::Command::new("bash")
        .args([
            "-c",
            r#"set -o pipefail; "$0" decode "$1" | head -n 1"#,
            env!("CARGO_BIN_EXE_syncproto"),
            path.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
}
