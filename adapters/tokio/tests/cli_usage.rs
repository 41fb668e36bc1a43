//! The command line itself: what `--help` and the README say (and that
//! they agree), and the usage errors a new user meets first, each with
//! exit code 2.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::collections::BTreeSet;
use std::path::Path;

use cli_support::{run, serve_spawned, state_file, syncproto};

/// The commands `syncproto --help` lists (`help` aside).
fn commands() -> Vec<String> {
    let help = help(&["--help"]);
    let list = &help[help.find("Commands:\n").expect("a command list") + 10..];
    let list = &list[..list.find("\n\n").unwrap_or(list.len())];
    let commands: Vec<String> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .map(str::to_owned)
        .collect();
    for expected in ["demo", "serve", "dump", "decode", "certs"] {
        assert!(commands.iter().any(|command| command == expected), "{help}");
    }
    commands
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The README's text between two headings.
fn section<'a>(readme: &'a str, from: &str, to: &str) -> &'a str {
    let start = readme.find(from).unwrap_or_else(|| panic!("no {from:?}"));
    let end = readme[start..]
        .find(to)
        .unwrap_or_else(|| panic!("no {to:?}"));
    &readme[start..start + end]
}

/// A command's synopsis in the README's tool section: from its
/// `syncproto COMMAND` line to the next command's or the block's end.
fn synopsis<'a>(tool: &'a str, command: &str) -> &'a str {
    let head = format!("\nsyncproto {command} ");
    let start = tool
        .find(&head)
        .unwrap_or_else(|| panic!("no synopsis for {command}"));
    let rest = &tool[start + 1..];
    let end = [rest[1..].find("\nsyncproto "), rest.find("\n```")]
        .into_iter()
        .flatten()
        .min()
        .unwrap();
    &rest[..end + 1]
}

/// Every `--option` named in `text`, outside `quoted spans` (which name
/// other commands' options).
fn options(text: &str) -> BTreeSet<String> {
    let text: String = text.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    text.match_indices("--")
        .filter(|(at, _)| *at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric())
        .map(|(at, _)| {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            format!("--{name}")
        })
        .filter(|name| name.len() > 3)
        .collect()
}

fn help(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "{args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Every option each command's `--help` lists is in the README's synopsis
/// of it, and every option the synopsis names exists (the global log
/// options are described once, for all commands).
#[test]
fn readme_and_help_name_the_same_options_for_every_command() {
    let readme = readme();
    let tool = section(&readme, "## The tool", "## TLS");
    for command in commands() {
        let command = command.as_str();
        let mut listed = options(&help(&[command, "--help"]));
        for global in ["--help", "--log-level", "--log-format"] {
            listed.remove(global);
        }
        let documented = options(synopsis(tool, command));
        assert_eq!(
            listed, documented,
            "{command}: --help (left) and README (right) differ"
        );
    }
    assert!(tool.contains("--log-level") && tool.contains("--log-format"));
    assert!(tool.contains("cargo install --path adapters/tokio"));
}

/// The README documents every command `--help` lists; `-h` and
/// `--help` start with the same line, and both list the exit codes the
/// README lists.
#[test]
fn help_and_readme_list_the_commands_and_the_exit_codes() {
    let long = help(&["--help"]);
    let short = help(&["-h"]);
    assert_eq!(long.lines().next(), short.lines().next());
    let readme = readme();
    for command in commands() {
        assert!(
            readme.contains(&format!("\nsyncproto {command} ")),
            "README lacks {command}"
        );
    }
    let codes = &long[long.find("Exit codes:").expect("exit codes in --help")..];
    assert!(short.contains(codes.trim_end()), "{short}");
    assert!(readme.contains(codes.trim_end()), "README lacks:\n{codes}");
}

/// The README's TLS commands are the ones `certs` prints, and its openssl
/// recipe, run as written, makes certificates that `serve` and `dump`
/// accept and that work together.
#[test]
fn the_readme_tls_recipes_work_as_written() {
    let readme = readme();
    let tls = section(&readme, "## TLS", "## Operating it");
    let dir = tempfile::tempdir().unwrap();
    let certs = syncproto(&["certs", "--out", "certs"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(certs.status.success());
    let printed = String::from_utf8(certs.stdout).unwrap();
    for label in ["serve:", "dump:"] {
        let line = printed
            .lines()
            .find(|line| line.starts_with(label))
            .unwrap();
        let command = line[label.len()..].trim();
        assert!(
            tls.contains(&format!("\n{command}\n")),
            "README lacks {command}"
        );
    }
    // The openssl recipe, in a directory of its own.
    let openssl = dir.path().join("openssl");
    std::fs::create_dir(&openssl).unwrap();
    let block = &tls[tls.find("With `openssl`").unwrap()..];
    let script = &block[block.find("```sh\n").unwrap() + 6..];
    let script = &script[..script.find("```").unwrap()];
    let ran = std::process::Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(&openssl)
        .output()
        .expect("bash");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let file = |name: &str| {
        openssl
            .join("certs")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (datastore, text) = state_file(dir.path());
    let (_server, address) = serve_spawned(&[
        "--snapshot",
        datastore.to_str().unwrap(),
        "--tls-cert",
        &file("server.crt"),
        "--tls-key",
        &file("server.key"),
        "--tls-ca",
        &file("ca.crt"),
        "--tls-peer-cn",
        "typha-client",
        "--typed-revisions",
    ]);
    let port = address.rsplit_once(':').unwrap().1;
    let output = run(&[
        "dump",
        "--connect",
        &format!("localhost:{port}"),
        "--state",
        "--tls-cert",
        &file("client.crt"),
        "--tls-key",
        &file("client.key"),
        "--tls-ca",
        &file("ca.crt"),
        "--tls-peer-cn",
        "typha-server",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let state = String::from_utf8(output.stdout).unwrap();
    assert_eq!(state.lines().count(), text.lines().count());
    assert!(state == text, "the state differs from the file served");
}

fn usage_error(args: &[&str], words: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(words),
        "{args:?}: want {words:?} in {stderr}"
    );
}

/// A malformed address is a usage error, before anything is tried.
#[test]
fn malformed_addresses_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    let snapshot = path.to_str().unwrap();
    usage_error(&["dump", "--connect", "localhost"], "has no port");
    usage_error(
        &["dump", "--connect", "localhost:99999"],
        "is not a port number",
    );
    usage_error(&["dump", "--connect", "::1:5473"], "is not a host");
    usage_error(
        &["serve", "--listen", "5473", "--snapshot", snapshot],
        "has no port",
    );
    usage_error(
        &["serve", "--listen", "0.0.0.0:x", "--snapshot", snapshot],
        "not a port",
    );
}

/// Durations take humantime's forms, need a unit, and cannot be negative.
#[test]
fn durations_need_a_unit_and_take_fractions_and_compounds() {
    usage_error(
        &["dump", "--connect", "h:1", "--follow", "10"],
        "write 10s for seconds",
    );
    usage_error(
        &["dump", "--connect", "h:1", "--follow", "-1s"],
        "cannot be negative",
    );
    usage_error(
        &["dump", "--connect", "h:1", "--timeout", "soon"],
        "is not a duration",
    );
    usage_error(&["demo", "--timeout", "120"], "write 120s");
    // Accepted forms reach the command: a closed port is then the failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    for duration in ["1.5s", "1m30s", "500ms", "0"] {
        let output = run(&["dump", "--connect", &address, "--follow", duration]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{duration}: {stderr}");
        assert!(stderr.contains("cannot connect"), "{duration}: {stderr}");
    }
}

/// A demo of no clients would verify nothing: refused.
#[test]
fn a_demo_without_clients_exits_2() {
    usage_error(&["demo", "--clients", "0"], "--clients");
}

/// `serve --checksum-interval` parses durations the same way.
#[test]
fn serve_durations_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = state_file(dir.path());
    usage_error(
        &[
            "serve",
            "--snapshot",
            path.to_str().unwrap(),
            "--checksum-interval",
            "30",
        ],
        "write 30s",
    );
}
