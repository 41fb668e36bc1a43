//! The `syncproto` binary, run as a user would.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use cli_support::{Running, binary, dump_state, golden, run, serve, state_file};

#[test]
fn serve_then_dump_state_round_trips_a_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--typed-revisions"]);
    for state in dump_state(&address) {
        // Compared by line count first: a mismatch prints one line, not all.
        assert_eq!(state.lines().count(), text.lines().count());
        for (got, want) in state.lines().zip(text.lines()) {
            assert_eq!(got, want);
        }
    }
}

/// As a real Typha: revisions are strings, and a v3 resource's version
/// travels in `v3_resource_version`, not in its value.
#[test]
fn serve_sends_string_revisions_and_moves_resource_versions_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.jsonl");
    let resource = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/p";
    let lines = [
        serde_json::json!({"key": "/calico/v1/config/A", "value": "1", "revision": 17}),
        serde_json::json!({"key": "/calico/v1/config/B", "value": "2"}),
        serde_json::json!({
            "key": resource,
            "value": r#"{"metadata":{"name":"p","resourceVersion":"42"}}"#,
            "revision": {"go_type": "uint8", "text": "7"},
        }),
    ];
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let (_server, address) = serve(&path, &[]);
    let expected: String = [
        serde_json::json!({
            "key": resource,
            "revision": "7",
            "ttl_ns": 0,
            "v3_resource_version": "42",
            "value": r#"{"metadata":{"name":"p"}}"#,
        }),
        serde_json::json!({"key": "/calico/v1/config/A", "revision": "17", "ttl_ns": 0, "value": "1"}),
        serde_json::json!({"key": "/calico/v1/config/B", "revision": "", "ttl_ns": 0, "value": "2"}),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect();
    for state in dump_state(&address) {
        assert_eq!(state, expected);
    }
}

#[test]
fn dump_prints_the_stream_with_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--wire", "gob"]);
    let output = run(&["dump", "--connect", &address]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    // 305 updates, then in-sync; no "resync" first: that status is the
    // client machine's own on start, not something the server sent.
    assert!(lines.first().unwrap().starts_with("{\"key\""), "{stdout}");
    assert_eq!(lines.last(), Some(&r#"{"status":"in-sync"}"#));
    assert_eq!(
        lines.iter().filter(|line| line.contains("\"key\"")).count(),
        305
    );
}

#[test]
fn a_native_only_server_refuses_gob() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--wire", "native"]);
    let output = run(&["dump", "--connect", &address, "--wire", "gob"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn serve_reports_a_malformed_line_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"key\":\"/calico/v1/Ready\",\"value\":\"true\"}\n{\"key\":\n",
    )
    .unwrap();
    let output = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--snapshot",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bad.jsonl:2:"), "{stderr}");
}

/// `serve --follow` waits for a line to be finished before reading it,
/// also at startup, and a bad appended line ends the server with the input
/// error's exit status, naming the line.
#[test]
fn serve_follow_stops_with_status_3_at_a_bad_appended_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.jsonl");
    // The second line is still being written when the server starts.
    std::fs::write(
        &path,
        "{\"key\":\"/calico/v1/Ready\",\"value\":\"true\"}\n{\"key\":",
    )
    .unwrap();
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--follow", "--snapshot"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut server = Running(child);
    let started = lines.next().expect("serve exited").unwrap();
    assert!(started.contains("1 keys"), "{started}");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"\"/calico/v1/config/A\",\"value\":\"1\"}\nnot json\n")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "serve kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(status.code(), Some(3), "{stderr:?}");
    assert!(
        stderr.iter().any(|line| line.contains("follow.jsonl:3:")),
        "{stderr:?}"
    );
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let output = run(&[
        "serve",
        "--listen",
        &address,
        "--snapshot",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot listen on") && stderr.contains(&address),
        "{stderr}"
    );
}

#[test]
fn dump_reports_a_refused_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let output = run(&["dump", "--connect", &address]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn decode_reads_a_captured_compressed_session() {
    let capture = golden("compressed_session.new.bin");
    let expected: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(golden("compressed_session.new.json")).unwrap(),
    )
    .unwrap();
    let kvs: usize = expected
        .iter()
        .filter_map(|m| m["KVs"].as_array().map(Vec::len))
        .sum();
    let output = run(&["decode", capture.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.contains("\"key\""))
            .count(),
        kvs
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.contains("DecoderRestart"))
            .count(),
        2
    );
    // Messages other than updates and statuses name their type first, as
    // the README shows them.
    for line in stdout.lines() {
        assert!(
            ["{\"key\":", "{\"status\":", "{\"type\":"]
                .iter()
                .any(|start| line.starts_with(start)),
            "{line}"
        );
    }

    let output = run(&["decode", "--stats", capture.to_str().unwrap()]);
    assert!(output.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["messages"].as_u64(), Some(expected.len() as u64));
    assert_eq!(stats["kvs"].as_u64(), Some(kvs as u64));
}

#[test]
fn decode_reports_a_truncated_capture() {
    let dir = tempfile::tempdir().unwrap();
    let capture = std::fs::read(golden("server_session.new.bin")).unwrap();
    let path = dir.path().join("cut.bin");
    std::fs::write(&path, &capture[..capture.len() - 3]).unwrap();
    let output = run(&["decode", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("stream ended mid"));
}

/// A small demo verifies, `full_views` of its 8 clients compared key by key
/// (the others by their checksums).
fn assert_demo_verifies(updates: &str, full_views: &str) {
    let output = run(&[
        "demo",
        "--keys",
        "300",
        "--clients",
        "8",
        "--updates",
        updates,
        "--full-views",
        full_views,
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verified:"), "{stdout}");
    assert!(
        stdout.contains(&format!("{full_views} clients' whole copies match")),
        "{stdout}"
    );
    assert!(stdout.contains("8 (8 reached in-sync)"), "{stdout}");
    // The summary explains its numbers: why the key counts differ, and
    // what the pong count means.
    assert!(stdout.contains("took the datastore from"), "{stdout}");
    assert!(
        stdout.contains("pings answered (the server pings"),
        "{stdout}"
    );
}

#[test]
fn a_small_demo_verifies() {
    assert_demo_verifies("100", "4");
}

/// Without live changes the done marker is in place before most clients
/// connect, so they meet it inside their snapshot and must read on to
/// in-sync.
#[test]
fn a_demo_without_live_changes_verifies() {
    assert_demo_verifies("0", "8");
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let output = run(&["--help"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    for command in ["demo", "serve", "dump", "decode", "certs"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    assert!(stdout.contains("Exit codes"), "{stdout}");
}

/// The JSON line `dump --checksum` printed on stderr (a failure's message
/// follows it).
fn checksum_line(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|line| line.starts_with('{'))
        .expect("a checksum line");
    let want = readme_example("{\"server_checksum\"");
    assert!(
        same_layout(&shape(line), &want),
        "the checksum line is not laid out as README.md documents it ({want:?}): {line}"
    );
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {stderr}"))
}

/// A flat JSON object's keys in the order written, each with the kind of
/// its value: `"` a string, `0` a number (the README writes `N`), `b` a
/// boolean, `-` null (which may stand for either kind of value the README
/// shows: the tool prints null when it has no checksum).
fn shape(line: &str) -> Vec<(String, char)> {
    let inner = line
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not one JSON object: {line}"));
    // No value of this line holds a comma or a colon.
    inner
        .split(',')
        .map(|member| {
            let (key, value) = member
                .split_once(':')
                .unwrap_or_else(|| panic!("{member:?} in {line}"));
            let key = key.trim().trim_matches('"').to_owned();
            let value = value.trim();
            let kind = match value {
                "true" | "false" => 'b',
                "null" => '-',
                "N" => '0',
                _ if value.starts_with('"') => '"',
                _ if value.parse::<i64>().is_ok() => '0',
                _ => panic!("{key}: {value:?} in {line}"),
            };
            (key, kind)
        })
        .collect()
}

/// The shape of the example line of README.md that starts with `start`
/// (up to its first `}`: no example nests objects).
fn readme_example(start: &str) -> Vec<(String, char)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let example = readme
        .lines()
        .find_map(|line| {
            let from = &line[line.find(start)?..];
            Some(&from[..=from.find('}')?])
        })
        .unwrap_or_else(|| panic!("README.md shows no line starting {start}"));
    shape(example)
}

/// Whether the tool's line has the README's keys in the README's order,
/// each value of the kind shown (null standing for a missing checksum).
fn same_layout(got: &[(String, char)], want: &[(String, char)]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((key, kind), (want_key, want_kind))| {
                key == want_key && (kind == want_kind || *kind == '-')
            })
}

/// The snapshot checksum of `dump --state` output, computed from scratch.
fn checksum_of_state(state: &str) -> String {
    let mut checksum = syncproto::checksum::StateChecksum::default();
    for line in state.lines() {
        let Some(syncproto::records::Record::Update(update)) =
            syncproto::records::parse_line(line).unwrap()
        else {
            panic!("not an update: {line}");
        };
        let value = update.effective_value().expect("live keys only");
        let digest = syncproto::checksum::entry_digest(update.key.as_bytes(), value);
        checksum.replace(None, Some(digest));
    }
    format!("{:#018x}", checksum.checksum)
}

#[test]
fn dump_checksum_verifies_against_serve_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--checksum-interval", "0s"]);
    for wire in ["gob", "native"] {
        let output = run(&[
            "dump",
            "--connect",
            &address,
            "--wire",
            wire,
            "--state",
            "--checksum",
        ]);
        assert!(
            output.status.success(),
            "{wire}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = checksum_line(&output);
        let state = String::from_utf8(output.stdout).unwrap();
        let keys = text.lines().count() as u64;
        assert_eq!(line["verified"], true, "{wire}: {line}");
        assert_eq!(line["kv_count"].as_u64(), Some(keys), "{wire}");
        assert_eq!(line["server_kv_count"].as_u64(), Some(keys), "{wire}");
        assert_eq!(line["checksum"], line["server_checksum"], "{wire}");
        assert_eq!(line["checksum"], checksum_of_state(&state), "{wire}");
        let hex = line["checksum"].as_str().unwrap();
        assert!(hex.len() == 18 && hex.starts_with("0x"), "{hex}");
    }
}

#[test]
fn dump_checksum_fails_against_a_server_without_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let (_server, address) = serve(&path, &["--no-checksums"]);
    let output = run(&["dump", "--connect", &address, "--checksum"]);
    assert_eq!(output.status.code(), Some(4));
    let line = checksum_line(&output);
    assert_eq!(line["verified"], false, "{line}");
    assert_eq!(line["server_checksum"], serde_json::Value::Null, "{line}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not send snapshot checksums"),
        "{stderr}"
    );
}

#[test]
fn decode_shows_checksum_messages() {
    let vector =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/native/checksum.bin");
    let output = run(&["decode", "--wire", "native", vector.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let line: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"type": "Checksum", "checksum": "0x4b60798139549d1d", "kv_count": 1})
    );
    // `type` first, the members in the README's order.
    let want = readme_example("{\"type\":\"Checksum\"");
    assert!(
        same_layout(&shape(&text), &want),
        "decode's line is not laid out as README.md documents it ({want:?}): {text}"
    );
}

/// Malformed lines are explained in the file format's words, not in the
/// implementation's type names or Go-ish grammar.
#[test]
fn serve_explains_malformed_lines_in_the_formats_words() {
    let dir = tempfile::tempdir().unwrap();
    for (line, want) in [
        ("\"just a string\"", "expected a JSON object with a \"key\""),
        (
            r#"{"key":"/calico/v1/Ready","value":"1","revision":{"go_type":"int8","text":"300"}}"#,
            "\"300\" is not a valid int8",
        ),
    ] {
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let output = run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--snapshot",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
        assert!(!stderr.contains("RawRecord"), "{stderr}");
    }
}
