//! `syncproto serve` as an operator runs it: JSON logs on stderr with a
//! line per connection, metrics and probes on their own listeners.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const HUNG: Duration = Duration::from_secs(30);

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GET over HTTP/1.1: the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(HUNG)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

#[test]
fn serve_logs_json_and_serves_metrics_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("datastore.jsonl");
    std::fs::write(
        &snapshot,
        "{\"key\":\"/calico/v1/config/A\",\"value\":\"1\"}\n{\"key\":\"/calico/v1/config/B\",\"value\":\"2\"}\n",
    )
    .unwrap();
    // Two addresses (port 0 twice would be one address, served as one).
    let free = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (metrics_at, probes_at) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_syncproto"))
        .args(["serve", "--listen", "127.0.0.1:0", "--snapshot"])
        .arg(&snapshot)
        .args([
            "--log-format",
            "json",
            "--metrics-listen",
            &metrics_at,
            "--health-listen",
            &probes_at,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Running(child);
    // Every stderr line, as it comes, to this thread.
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let next = || received.recv_timeout(HUNG).expect("serve said no more");
    let (mut metrics, mut probes, mut server) = (None, None, None);
    while server.is_none() {
        let line = next();
        if let Some(address) = line.strip_prefix("syncproto: metrics on http://") {
            metrics = Some(address.to_owned());
        } else if let Some(address) = line.strip_prefix("syncproto: probes on http://") {
            probes = Some(address.to_owned());
        } else if let Some((_, address)) = line.split_once(") on ") {
            server = Some(address.trim().to_owned());
        }
    }
    let (metrics, probes, server) = (metrics.unwrap(), probes.unwrap(), server.unwrap());
    assert_eq!(get(&probes, "/liveness").0, 200);
    assert_eq!(get(&probes, "/readiness").0, 200);
    assert_eq!(get(&metrics, "/readiness").0, 404);

    let dump = Command::new(env!("CARGO_BIN_EXE_syncproto"))
        .args([
            "dump",
            "--connect",
            &server,
            "--state",
            "--hostname",
            "ops-test",
        ])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    // The server's JSON line for that connection's end.
    let closed = loop {
        let line = next();
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if log["fields"]["message"] == "connection closed" {
            break log;
        }
    };
    assert_eq!(closed["level"], "INFO", "{closed}");
    assert_eq!(closed["fields"]["hostname"], "ops-test", "{closed}");
    assert_eq!(closed["fields"]["kvs"], 2, "{closed}");
    // The connection's span names the client once the handshake is done,
    // so every line after it does, not only the close line's own fields.
    let span = &closed["span"];
    assert_eq!(span["name"], "connection", "{closed}");
    assert_eq!(span["hostname"], "ops-test", "{closed}");
    assert_eq!(span["syncer"], "felix", "{closed}");
    // dump speaks as a modern Felix: gob with snappy.
    assert_eq!(span["wire"], "gob", "{closed}");
    assert_eq!(span["compression"], "snappy", "{closed}");
    for field in ["client_version", "client_conn_id"] {
        assert!(!span[field].is_null(), "{field} not on the span: {closed}");
        assert_eq!(span[field], closed["fields"][field], "{field}: {closed}");
    }
    let (status, text) = get(&metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.lines()
            .any(|line| line == "typha_connections_accepted_total 1"),
        "{text}"
    );
    assert!(
        text.lines().any(|line| line == "typha_cache_size 2"),
        "{text}"
    );
}

/// Starts `syncproto` with `args`; returns it and its stderr lines as they
/// come.
fn start(args: &[&str]) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_syncproto"))
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (Running(child), received)
}

/// The address in the first stderr line saying `") on ADDR"`.
fn listening(lines: &mpsc::Receiver<String>) -> String {
    loop {
        let line = lines.recv_timeout(HUNG).expect("no address announced");
        if let Some((_, address)) = line.split_once(") on ") {
            return address.trim().to_owned();
        }
    }
}

#[test]
fn relay_serves_what_its_upstream_serves() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("datastore.jsonl");
    let text: String = (0..50)
        .map(|index| {
            format!("{{\"key\":\"/calico/v1/config/K{index:02}\",\"value\":\"{index}\"}}\n")
        })
        .collect();
    std::fs::write(&snapshot, &text).unwrap();
    let snapshot = snapshot.to_str().unwrap();
    let (_serve, serve_lines) =
        start(&["serve", "--listen", "127.0.0.1:0", "--snapshot", snapshot]);
    let upstream = listening(&serve_lines);
    let probes = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (_relay, relay_lines) = start(&[
        "relay",
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &probes,
        "--health-listen",
        &probes,
    ]);
    let relay = loop {
        let line = relay_lines.recv_timeout(HUNG).expect("relay said no more");
        if let Some((_, address)) = line.split_once(") on ") {
            break address.trim().to_owned();
        }
    };
    for wire in ["gob", "native"] {
        let dump = Command::new(env!("CARGO_BIN_EXE_syncproto"))
            .args(["dump", "--connect", &relay, "--wire", wire, "--state"])
            .output()
            .unwrap();
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let state = String::from_utf8(dump.stdout).unwrap();
        assert_eq!(state.lines().count(), 50, "{wire}: {state}");
        assert!(
            state.contains(r#""key":"/calico/v1/config/K07""#),
            "{state}"
        );
    }
    let (status, text) = get(&probes, "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.lines()
            .any(|line| line == r#"syncproto_upstream_in_sync{syncer="felix"} 1"#),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line == r#"typha_cache_size{syncer="felix"} 50"#),
        "{text}"
    );
    assert_eq!(get(&probes, "/readiness").0, 200);
}
