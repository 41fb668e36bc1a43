//! Running the `syncproto` binary from the CLI tests: starting it, reading
//! its output as it comes, signalling it, and the datastore files they use.

// Each test binary uses some of these.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use syncproto::message::{Revision, SerializedUpdate};
use syncproto::records::update_to_line;

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncproto"))
}

pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/gob")
        .join(name)
}

/// Kills the server when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `syncproto serve` on a free port; returns it and its address.
pub fn serve(snapshot: &Path, extra: &[&str]) -> (Running, String) {
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--snapshot"])
        .arg(snapshot)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some((_, address)) = line.split_once(") on ") {
            break address.trim().to_owned();
        }
    };
    // Keep draining the server's stderr so that it never writes to a
    // closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Running(child), address)
}

/// A datastore file in exactly the form `dump --state` prints: sorted by
/// key, one state line each.
pub fn state_file(dir: &Path) -> (PathBuf, String) {
    let mut updates = vec![
        SerializedUpdate::upsert("/calico/v1/config/LogSeverityScreen", "Info", "17"),
        SerializedUpdate {
            ttl_nanos: 90_000_000_000,
            ..SerializedUpdate::upsert(
                "/calico/v1/host/node-1/config/Foo",
                "bar",
                Revision::Int64(5),
            )
        },
        SerializedUpdate::upsert("/calico/v1/Ready", "true", Revision::Uint8(7)),
        SerializedUpdate::upsert(
            "/calico/v1/config/Binary",
            vec![0u8, 0xff, 0x80],
            Revision::Nil,
        ),
        SerializedUpdate {
            v3_resource_version: "123".into(),
            ..SerializedUpdate::upsert(
                "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-dns",
                "{\"spec\":{\"order\":1}}",
                "9",
            )
        },
    ];
    for index in 0..300 {
        updates.push(SerializedUpdate::upsert(
            syncproto::synthetic::endpoint_key(index),
            format!("{{\"n\":{index}}}"),
            format!("{index}"),
        ));
    }
    updates.sort_by(|a, b| a.key.cmp(&b.key));
    let text: String = updates
        .iter()
        .map(|u| update_to_line(u, false) + "\n")
        .collect();
    let path = dir.join("datastore.jsonl");
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

pub fn run(args: &[&str]) -> Output {
    binary().args(args).output().unwrap()
}

/// `dump --state`'s output over each wire format.
pub fn dump_state(address: &str) -> Vec<String> {
    ["gob", "native"]
        .into_iter()
        .map(|wire| {
            let output = run(&["dump", "--connect", address, "--wire", wire, "--state"]);
            assert!(
                output.status.success(),
                "{wire}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
        .collect()
}

/// How long a test waits for something that should come at once before
/// calling the binary hung: a guard against a stuck test, not a timing.
pub const HUNG: Duration = Duration::from_secs(60);

/// A running `syncproto` whose stdout and stderr lines arrive, as they
/// are written, on channels (so that a test can wait for a line while the
/// process runs).
pub struct Spawned {
    pub child: Running,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

/// Forwards every line of `pipe` to a channel, from a thread.
fn forward(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

/// Starts `command` with its output piped to [`Spawned`]'s channels.
pub fn spawn(mut command: Command) -> Spawned {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = forward(child.stdout.take().unwrap());
    let stderr = forward(child.stderr.take().unwrap());
    Spawned {
        child: Running(child),
        stdout,
        stderr,
    }
}

impl Spawned {
    /// Lines from `channel` up to and including the first that satisfies
    /// `wanted`; panics if the stream ends first or nothing comes for
    /// [`HUNG`].
    pub fn until(
        channel: &mpsc::Receiver<String>,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match channel.recv_timeout(HUNG) {
                Ok(line) => {
                    let done = wanted(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(error) => panic!("no {what} ({error}); got {seen:#?}"),
            }
        }
    }

    /// Stdout lines up to the first satisfying `wanted`.
    pub fn stdout_until(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        Self::until(&self.stdout, "stdout line", wanted)
    }

    /// Stderr lines up to the first satisfying `wanted`.
    pub fn stderr_until(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        Self::until(&self.stderr, "stderr line", wanted)
    }

    /// Sends a signal (`INT`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to end (it must, within [`HUNG`]); its status
    /// and the rest of its stdout and stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let rest = |channel: &mpsc::Receiver<String>| {
            let mut lines = Vec::new();
            // The channel closes when the process's end of the pipe does.
            while let Ok(line) = channel.recv_timeout(HUNG) {
                lines.push(line);
            }
            lines
        };
        let stdout = rest(&self.stdout);
        let stderr = rest(&self.stderr);
        let status = self.child.0.wait().unwrap();
        (status, stdout, stderr)
    }
}

/// `syncproto ARGS...` as a command.
pub fn syncproto(args: &[&str]) -> Command {
    let mut command = binary();
    command.args(args);
    command
}

/// A datastore of `keys` keys with values of about 200 bytes: more than a
/// pipe holds once printed, so that a reader that stops early is noticed.
pub fn big_state_file(dir: &Path, keys: usize) -> PathBuf {
    let text: String = (0..keys)
        .map(|index| {
            let update = SerializedUpdate::upsert(
                syncproto::synthetic::endpoint_key(index),
                format!("{{\"n\":{index},\"pad\":\"{}\"}}", "x".repeat(180)),
                format!("{index}"),
            );
            update_to_line(&update, false) + "\n"
        })
        .collect();
    let path = dir.join("big.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// Whether a JSON line is an update (it has a key).
pub fn is_update(line: &str) -> bool {
    line.starts_with("{\"key\"")
}

/// Writes a synthetic gob capture to `path`: one session (a snapshot of
/// `keys` endpoints with large values, in-sync, live changes, pings) and a
/// decoder restart, repeated until the file holds at least `bytes`; each
/// copy is a fresh stream, as after a reconnect. Returns the file's size
/// and how many updates it carries.
pub fn write_capture(path: &Path, keys: usize, bytes: usize) -> (u64, u64) {
    use std::io::Write;
    use syncproto::Message;
    use syncproto::codec::{StreamEncoder, WireFormat};
    use syncproto::message::DecoderRestart;

    let session = syncproto::synthetic::session(keys, keys / 5, 1);
    let mut encoder = StreamEncoder::new(WireFormat::Gob, usize::MAX);
    let mut stream = bytes::BytesMut::new();
    for message in &session {
        encoder.encode(message, &mut stream).unwrap();
    }
    let restart = Message::DecoderRestart(DecoderRestart {
        message: "next session".into(),
        compression_algorithm: None,
    });
    encoder.encode(&restart, &mut stream).unwrap();
    let kvs: usize = session
        .iter()
        .map(|message| match message {
            Message::Kvs(updates) => updates.len(),
            _ => 0,
        })
        .sum();
    let copies = bytes.div_ceil(stream.len()).max(1);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..copies {
        file.write_all(&stream).unwrap();
    }
    file.flush().unwrap();
    ((copies * stream.len()) as u64, (copies * kvs) as u64)
}

/// Starts `syncproto serve ARGS...` (listening on a free port unless the
/// arguments say where) with stdin piped; returns it and its address.
pub fn serve_spawned(args: &[&str]) -> (Spawned, String) {
    let mut command = syncproto(&["serve", "--listen", "127.0.0.1:0"]);
    command.args(args).stdin(Stdio::piped());
    let server = spawn(command);
    let started = server.stderr_until(|line| line.contains(") on "));
    let line = started.last().unwrap();
    let address = line.split_once(") on ").unwrap().1.trim().to_owned();
    (server, address)
}

/// Reads `dump --follow` lines (updates in the stream format) from
/// `dump`, applying them to `state` (key to value), until `state` equals
/// `expected`.
pub fn follow_until_state(
    dump: &Spawned,
    state: &mut std::collections::BTreeMap<String, String>,
    expected: &std::collections::BTreeMap<String, String>,
) {
    while state != expected {
        let line = dump
            .stdout
            .recv_timeout(HUNG)
            .unwrap_or_else(|error| panic!("{error}: at {state:?}, want {expected:?}"));
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        let Some(key) = record["key"].as_str() else {
            continue;
        };
        match record["value"].as_str() {
            Some(value) => state.insert(key.to_owned(), value.to_owned()),
            None => state.remove(key),
        };
    }
}
