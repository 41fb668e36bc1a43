//! The peers of the differential test: the Go hub and Go client
//! processes, and Rust clients on their own tasks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use syncproto::client::ClientConfig;
use syncproto::codec::WireFormat;
use syncproto::message::{ByteString, CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::records::{status_to_line, update_to_line};
use syncproto::session::{Backoff, SessionEvent};
use syncproto_tokio::{ClientOptions, ReconnectingClient};
use tokio::sync::{mpsc as async_mpsc, watch};

use super::go_peer::{go_peers, read_state};
use super::{LIMIT, SENTINEL};

/// The Go hub, driven over its stdin.
pub(crate) struct Hub {
    pub(crate) child: Child,
    pub(crate) stdin: ChildStdin,
    pub(crate) lines: mpsc::Receiver<String>,
    pub(crate) address: String,
    pub(crate) state_out: PathBuf,
}

impl Hub {
    pub(crate) fn start(dir: &Path, compress: bool) -> Hub {
        let state_out = dir.join("hub-state.jsonl");
        let binary = go_peers().unwrap().join("go-peer-new");
        let mut command = Command::new(binary);
        command.args(["hub", "--allow-legacy-clients", "--ping-interval", "20ms"]);
        command.args(["--state-out", state_out.to_str().unwrap()]);
        if compress {
            command.arg("--compress");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = forward_lines(child.stdout.take().unwrap());
        let listening = lines.recv_timeout(LIMIT).unwrap();
        let address = listening.strip_prefix("LISTENING ").unwrap().to_owned();
        Hub {
            child,
            stdin,
            lines,
            address,
            state_out,
        }
    }

    pub(crate) fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    pub(crate) fn write(&mut self, updates: &[SerializedUpdate]) {
        for update in updates {
            self.send(&update_to_line(update, true));
        }
        self.send(r#"{"cmd":"flush"}"#);
    }

    pub(crate) fn status(&mut self, status: SyncStatus) {
        self.send(&status_to_line(status));
        self.send(r#"{"cmd":"flush"}"#);
    }

    /// Finishes: returns the summary.
    pub(crate) fn finish(mut self) -> Value {
        self.send(r#"{"cmd":"finish"}"#);
        let summary = loop {
            let line = self.lines.recv_timeout(LIMIT).expect("hub summary");
            let value: Value = serde_json::from_str(&line).unwrap();
            if value.get("ok").is_some() {
                break value;
            }
        };
        assert!(self.child.wait().unwrap().success(), "hub: {summary}");
        assert_eq!(summary["ok"], true, "{summary}");
        summary
    }
}

/// Lines a child writes on `stdout`, as they come.
pub(crate) fn forward_lines(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// A Go client process (one connection; a reconnect is a new process, as a
/// Felix restarts).
pub(crate) struct GoClient {
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
    pub(crate) state_out: PathBuf,
}

impl GoClient {
    pub(crate) fn start(
        layout: &str,
        address: &str,
        state_out: PathBuf,
        compress: bool,
    ) -> GoClient {
        let binary = go_peers().unwrap().join(format!("go-peer-{layout}"));
        let mut command = Command::new(binary);
        command.args(["client", "--connect", address, "--report-key", SENTINEL]);
        command.args(["--state-out", state_out.to_str().unwrap()]);
        if compress {
            command.arg("--compress");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = forward_lines(child.stdout.take().unwrap());
        GoClient {
            child,
            lines,
            state_out,
        }
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the sentinel arrives with `value`.
    pub(crate) fn wait_for(&mut self, value: &str) {
        loop {
            let line = self.lines.recv_timeout(LIMIT).expect("Go client reports");
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_ne!(event["ok"], false, "Go client failed: {event}");
            if event["event"] == "key" && event["value"] == value {
                return;
            }
        }
    }

    /// After the server closed: the summary and the state.
    pub(crate) fn finish(mut self) -> (Value, BTreeMap<ByteString, Bytes>) {
        let line = self.lines.recv_timeout(LIMIT).expect("Go client summary");
        let summary: Value = serde_json::from_str(&line).unwrap();
        assert!(self.child.wait().unwrap().success(), "Go client: {summary}");
        let state = read_state(&self.state_out)
            .into_iter()
            .filter_map(|(key, update)| Some((key, update.value?)))
            .collect();
        (summary, state)
    }
}

/// Commands to a Rust client's task.
pub(crate) enum RustCommand {
    Reconnect,
    /// The server is about to close: end at the next lost connection.
    Finish,
}

/// A Rust client on its own task, reconnecting (its view carried across
/// reconnects by `ReconnectingClient`'s resync).
pub(crate) struct RustClient {
    pub(crate) commands: async_mpsc::UnboundedSender<RustCommand>,
    pub(crate) sentinel: watch::Receiver<Option<Bytes>>,
    pub(crate) task: tokio::task::JoinHandle<(BTreeMap<ByteString, Bytes>, Vec<ByteString>)>,
}

impl RustClient {
    pub(crate) fn start(address: &str, format: WireFormat, compress: bool) -> RustClient {
        let config = ClientConfig {
            hostname: format!("rust-{format:?}"),
            wire_format: format,
            compression: match compress {
                true => vec![CompressionAlgorithm::Snappy],
                false => Vec::new(),
            },
            ..ClientConfig::default()
        };
        let backoff = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
        };
        let mut client =
            ReconnectingClient::new(address, config, ClientOptions::default(), backoff);
        let (commands, mut receive) = async_mpsc::unbounded_channel();
        let (sentinel_tx, sentinel) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut finishing = false;
            let mut dropped = Vec::new();
            loop {
                tokio::select! {
                    command = receive.recv() => match command {
                        Some(RustCommand::Reconnect) => client.disconnect(),
                        Some(RustCommand::Finish) => finishing = true,
                        None => {}
                    },
                    event = client.next_event() => match event {
                        SessionEvent::Dropped { key, .. } => dropped.push(key),
                        SessionEvent::Reconnecting { .. } if finishing => break,
                        _ => {
                            let value = client.view().get(SENTINEL).and_then(|u| u.value.clone());
                            sentinel_tx.send_if_modified(|held| {
                                let changed = *held != value;
                                *held = value;
                                changed
                            });
                        }
                    },
                }
            }
            let view = client
                .view()
                .iter()
                .filter_map(|(key, update)| Some((key.clone(), update.value.clone()?)))
                .collect();
            (view, dropped)
        });
        RustClient {
            commands,
            sentinel,
            task,
        }
    }

    pub(crate) async fn wait_for(&mut self, value: &str) {
        let wanted = Some(Bytes::copy_from_slice(value.as_bytes()));
        tokio::time::timeout(LIMIT, self.sentinel.wait_for(|held| *held == wanted))
            .await
            .expect("Rust client reaches the sentinel")
            .unwrap();
    }
}
