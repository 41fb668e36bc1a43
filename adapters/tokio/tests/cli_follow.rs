//! `syncproto serve` on inputs that change under it or cannot be re-read:
//! a followed file truncated, rewritten in place or replaced by `mv`, and
//! the datastore from standard input; and how it stops.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use cli_support::{Spawned, follow_until_state, run, serve_spawned, spawn, syncproto};

const IN_SYNC: &str = r#"{"status":"in-sync"}"#;

/// The file's lines for `pairs` of key and value.
fn lines(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}\n", serde_json::json!({"key": key, "value": value})))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Serves `before` with `--follow`, and a `dump --follow` that has seen it.
fn follow(path: &Path, before: &[(&str, &str)]) -> (Spawned, Spawned) {
    std::fs::write(path, lines(before)).unwrap();
    let (server, address) = serve_spawned(&["--follow", "--snapshot", path.to_str().unwrap()]);
    let dump = spawn(syncproto(&[
        "dump",
        "--connect",
        &address,
        "--follow",
        "1h",
    ]));
    let mut state = BTreeMap::new();
    follow_until_state(&dump, &mut state, &map(before));
    dump.stdout_until(|line| line == IN_SYNC);
    (server, dump)
}

/// What a later client gets: the served state, key to value.
fn served(address: &str) -> BTreeMap<String, String> {
    let output = run(&["dump", "--connect", address, "--state"]);
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                record["key"].as_str().unwrap().to_owned(),
                record["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const BEFORE: &[(&str, &str)] = &[
    ("/calico/v1/config/A", "1"),
    ("/calico/v1/config/B", "2"),
    ("/calico/v1/config/C", "3"),
];

/// Truncated and written again, shorter: the new content is the datastore
/// (B deleted, A changed), not read from the old offset.
#[test]
fn a_followed_file_truncated_and_rewritten_is_served_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.jsonl");
    let (_server, dump) = follow(&path, BEFORE);
    let after = [("/calico/v1/config/A", "9")];
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(0).unwrap();
    file.write_all(lines(&after).as_bytes()).unwrap();
    follow_until_state(&dump, &mut map(BEFORE), &map(&after));
}

/// Rewritten in place to the same length (no truncation to see): the
/// changed bytes are noticed all the same.
#[test]
fn a_followed_file_rewritten_in_place_is_served_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.jsonl");
    let (_server, dump) = follow(&path, BEFORE);
    let after = [
        ("/calico/v1/config/A", "7"),
        ("/calico/v1/config/B", "8"),
        ("/calico/v1/config/D", "9"),
    ];
    assert_eq!(lines(&after).len(), lines(BEFORE).len());
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(lines(&after).as_bytes()).unwrap();
    follow_until_state(&dump, &mut map(BEFORE), &map(&after));
}

/// Replaced by `mv` (a new inode at the path): the new file is served, and
/// lines appended to it afterwards too.
#[test]
fn a_followed_file_replaced_by_mv_is_served_then_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.jsonl");
    let (server, dump) = follow(&path, BEFORE);
    let after = [("/calico/v1/config/C", "3"), ("/calico/v1/config/E", "5")];
    let fresh = dir.path().join("datastore.jsonl.tmp");
    std::fs::write(&fresh, lines(&after)).unwrap();
    std::fs::rename(&fresh, &path).unwrap();
    let mut state = map(BEFORE);
    follow_until_state(&dump, &mut state, &map(&after));
    server.stderr_until(|line| line.contains("was replaced"));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(lines(&[("/calico/v1/config/F", "6")]).as_bytes())
        .unwrap();
    let mut expected = map(&after);
    expected.insert("/calico/v1/config/F".to_owned(), "6".to_owned());
    follow_until_state(&dump, &mut state, &expected);
}

/// `--snapshot -` reads standard input to its end, then serves it.
#[test]
fn serve_reads_the_datastore_from_standard_input() {
    let mut command = syncproto(&["serve", "--listen", "127.0.0.1:0", "--snapshot", "-"]);
    command.stdin(std::process::Stdio::piped());
    let mut server = spawn(command);
    let mut stdin = server.child.0.stdin.take().unwrap();
    stdin.write_all(lines(BEFORE).as_bytes()).unwrap();
    drop(stdin);
    let started = server.stderr_until(|line| line.contains(") on "));
    let line = started.last().unwrap();
    assert!(line.contains("3 keys (3 records from stdin)"), "{line}");
    let address = line.split_once(") on ").unwrap().1.trim();
    assert_eq!(served(address), map(BEFORE));
}

/// `--snapshot - --follow`: lines are served as they come; clients are
/// told the data is in sync when the input says so.
#[test]
fn serve_follows_standard_input_line_by_line() {
    let (mut server, address) = serve_spawned(&["--follow", "--snapshot", "-"]);
    let mut stdin = server.child.0.stdin.take().unwrap();
    let dump = spawn(syncproto(&[
        "dump",
        "--connect",
        &address,
        "--follow",
        "1h",
    ]));
    stdin.write_all(lines(&BEFORE[..1]).as_bytes()).unwrap();
    stdin.write_all(b"{\"status\":\"in-sync\"}\n").unwrap();
    stdin.flush().unwrap();
    let seen = dump.stdout_until(|line| line == IN_SYNC);
    assert!(
        seen.iter().any(|line| line.contains("/calico/v1/config/A")),
        "{seen:?}"
    );
    stdin.write_all(lines(&BEFORE[1..2]).as_bytes()).unwrap();
    stdin.flush().unwrap();
    dump.stdout_until(|line| line.contains("/calico/v1/config/B"));
    drop(stdin);
    server.stderr_until(|line| line.contains("stdin ended: serving the 2 keys"));
}

/// `/dev/stdin --follow` (a pipe behind a path) is read the same way.
#[test]
fn serve_follows_a_pipe_given_by_path() {
    let (mut server, address) = serve_spawned(&["--follow", "--snapshot", "/dev/stdin"]);
    let mut stdin = server.child.0.stdin.take().unwrap();
    stdin.write_all(lines(BEFORE).as_bytes()).unwrap();
    // The end of the input is the in-sync when no line says otherwise.
    drop(stdin);
    server.stderr_until(|line| line.contains("ended: serving the 3 keys"));
    assert_eq!(served(&address), map(BEFORE));
}

/// SIGTERM (Kubernetes' way to stop a pod) and Ctrl-C both shut the
/// server down gracefully, saying so, with exit code 0.
#[test]
fn serve_shuts_down_gracefully_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.jsonl");
    std::fs::write(&path, lines(BEFORE)).unwrap();
    for (signal, name) in [("TERM", "SIGTERM"), ("INT", "SIGINT")] {
        let (server, _) = serve_spawned(&["--snapshot", path.to_str().unwrap()]);
        server.signal(signal);
        let (status, _, stderr) = server.finish();
        assert_eq!(status.code(), Some(0), "{name}: {stderr:?}");
        assert!(
            stderr
                .iter()
                .any(|line| line.contains(&format!("shutting down ({name})"))),
            "{stderr:?}"
        );
    }
}
