//! The Go reference peer (`interop/go`) as the live tests run it: built
//! once per test binary (both field layouts), spawned as a child process,
//! its summary line and state files read back.
//!
//! Needs Go (Debian's `golang-go`). Without it [`go_peers`] says so and
//! returns `None`, and the tests pass without running, unless
//! `SYNCPROTO_REQUIRE_GO=1` (as CI sets), when they fail.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use syncproto::message::{ByteString, SerializedUpdate};
use syncproto::records::{Record, parse_line};

/// Builds both layouts of the Go peer once; `None` when Go is missing and
/// not required.
pub fn go_peers() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let required = std::env::var("SYNCPROTO_REQUIRE_GO").is_ok_and(|v| v == "1");
            if Command::new("go").arg("version").output().is_err() {
                assert!(
                    !required,
                    "SYNCPROTO_REQUIRE_GO=1 but `go` is not installed"
                );
                eprintln!("skipping Go interop: `go` is not installed");
                return None;
            }
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-peer");
            // This module serves the core's tests and the adapters': find
            // the repository root above whichever crate is being tested.
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|dir| dir.join("interop/go/build.sh"))
                .find(|script| script.exists())
                .expect("interop/go/build.sh above the crate");
            let status = Command::new(script)
                .arg(&out)
                .status()
                .expect("run build.sh");
            assert!(status.success(), "building the Go peer failed");
            Some(out)
        })
        .as_deref()
}

/// Test files in a fresh directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("interop")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write_records(path: &Path, lines: impl Iterator<Item = String>) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// A state file written by the Go peer, as key → update.
pub fn read_state(path: &Path) -> BTreeMap<ByteString, SerializedUpdate> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| match parse_line(line).unwrap() {
            Some(Record::Update(update)) => Some((update.key.clone(), update)),
            Some(Record::Status(_)) => panic!("status in a state file"),
            None => None,
        })
        .collect()
}

pub fn spawn(peer: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let binary = go_peers().unwrap().join(peer);
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the Go peer");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// [`spawn`] with stdin piped too (the hub mode reads its commands there).
pub fn spawn_with_stdin(peer: &str, args: &[&str]) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let binary = go_peers().unwrap().join(peer);
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the Go peer");
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdin, stdout)
}

/// Reads the `LISTENING <host:port>` line the server and hub modes print
/// first, and returns the address.
pub fn listening(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("LISTENING line: {line:?}"))
        .to_owned()
}

/// Starts `go-peer-<layout> server` on the dataset in `dir`
/// (`snapshot.jsonl`, `updates.jsonl`), its final state going to
/// `dir/server-state.jsonl`, with `extra` flags (and `--compress` when
/// `compress`); returns it, its stdout and the address it listens on.
pub fn spawn_go_server(
    layout: &str,
    dir: &Path,
    extra: &[&str],
    compress: bool,
) -> (Child, BufReader<ChildStdout>, String) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let mut args = vec![
        "server".to_owned(),
        "--snapshot".to_owned(),
        path("snapshot.jsonl"),
        "--updates".to_owned(),
        path("updates.jsonl"),
        "--state-out".to_owned(),
        path("server-state.jsonl"),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    if compress {
        args.push("--compress".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (child, mut stdout) = spawn(&format!("go-peer-{layout}"), &args);
    let address = listening(&mut stdout);
    (child, stdout, address)
}

pub fn summary(child: &mut Child, mut stdout: BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    let summary: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("summary: {line:?}"));
    assert!(
        status.success() && summary["ok"] == true,
        "Go peer failed: {summary}"
    );
    summary
}
