//! TLS from the command line as the README tells it: `syncproto certs`,
//! then `serve` and `dump` with the commands it prints; and what a user
//! sees when the certificates or the two sides' settings do not fit.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{run, serve_spawned, state_file};

/// `syncproto certs --out DIR`, checked; its stdout.
fn certs(dir: &Path) -> String {
    let output = run(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The arguments of the printed command line starting `label: syncproto`.
fn printed(stdout: &str, label: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {stdout}"));
    let command = line.split_once("syncproto ").unwrap().1;
    command.split_whitespace().map(str::to_owned).collect()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/openssl-v1")
        .join(name)
}

/// The commands `certs` prints work as printed (the port and the file
/// aside): the server requires the client's CN, the client the server's.
#[test]
fn certs_then_serve_and_dump_as_printed_sync_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    let stdout = certs(&certs_dir);
    let (datastore, text) = state_file(dir.path());
    let mut serve: Vec<String> = printed(&stdout, "serve:");
    let snapshot = serve.iter().position(|arg| arg == "--snapshot").unwrap();
    serve[snapshot + 1] = datastore.to_str().unwrap().to_owned();
    let serve: Vec<&str> = serve.iter().skip(1).map(String::as_str).collect();
    let (_server, address) = serve_spawned(&serve);
    let port = address.rsplit_once(':').unwrap().1;
    let dump: Vec<String> = printed(&stdout, "dump:")
        .into_iter()
        .map(|arg| arg.replace(":5473", &format!(":{port}")))
        .chain(["--state".to_owned()])
        .collect();
    assert!(
        dump.iter().any(|arg| arg.starts_with("localhost:")),
        "{dump:?}"
    );
    let dump: Vec<&str> = dump.iter().map(String::as_str).collect();
    let output = run(&dump);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().lines().count(),
        text.lines().count()
    );
    // Key files are for their owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(certs_dir.join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // A second run does not overwrite them unless told to.
    let again = run(&["certs", "--out", certs_dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

/// Certificates TLS would refuse are refused at start, naming the file and
/// saying why, with the input-file exit code 3.
#[test]
fn unusable_certificates_are_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (datastore, _) = state_file(dir.path());
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir);
    let file = |name: &str| certs_dir.join(name).to_str().unwrap().to_owned();
    let serve = |cert: &str, key: &str, ca: &str| {
        run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--snapshot",
            datastore.to_str().unwrap(),
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-ca",
            ca,
        ])
    };
    // As `openssl x509 -req` makes them without -extfile.
    let v1 = data("server.crt");
    let output = serve(
        v1.to_str().unwrap(),
        data("server.key").to_str().unwrap(),
        data("ca.crt").to_str().unwrap(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: an X.509 version 1 certificate", v1.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("peer"), "{stderr}");
    // Another certificate's key.
    let output = serve(&file("server.crt"), &file("client.key"), &file("ca.crt"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: not the private key of the certificate in {}",
            file("client.key"),
            file("server.crt")
        )),
        "{stderr}"
    );
}

/// When the two sides do not agree, dump says what to change.
#[test]
fn tls_mismatches_between_the_sides_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (datastore, _) = state_file(dir.path());
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir);
    let file = |name: &str| certs_dir.join(name).to_str().unwrap().to_owned();
    let client_tls = [
        "--tls-cert".to_owned(),
        file("client.crt"),
        "--tls-key".to_owned(),
        file("client.key"),
        "--tls-ca".to_owned(),
        file("ca.crt"),
    ];
    let snapshot = datastore.to_str().unwrap();
    let (_tls_server, tls_address) = serve_spawned(&[
        "--snapshot",
        snapshot,
        "--tls-cert",
        &file("server.crt"),
        "--tls-key",
        &file("server.key"),
        "--tls-ca",
        &file("ca.crt"),
    ]);
    let (_plain_server, plain_address) = serve_spawned(&["--snapshot", snapshot]);
    let port = tls_address.rsplit_once(':').unwrap().1;
    let dump = |connect: &str, extra: &[&str], tls: bool| {
        let mut args = vec!["dump", "--connect", connect];
        args.extend_from_slice(extra);
        if tls {
            args.extend(client_tls.iter().map(String::as_str));
        }
        run(&args)
    };
    let fails_saying = |output: std::process::Output, words: &str| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(words), "want {words:?} in {stderr}");
    };
    // A plain client meets a TLS server.
    fails_saying(
        dump(&tls_address, &[], false),
        "if the server requires TLS, give --tls-cert",
    );
    // A TLS client meets a plain server.
    fails_saying(
        dump(&plain_address, &[], true),
        "the server closed the connection during the TLS handshake: it may not use TLS",
    );
    // The server's certificate is not for the name presented...
    fails_saying(
        dump(
            &format!("localhost:{port}"),
            &["--tls-server-name", "typha.example"],
            true,
        ),
        "is not valid for \"typha.example\": its names are localhost, 127.0.0.1",
    );
    // ... which a required CN replaces, as upstream's TyphaCN does.
    let output = dump(
        &format!("localhost:{port}"),
        &[
            "--tls-server-name",
            "typha.example",
            "--tls-peer-cn",
            "typha-server",
        ],
        true,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A CA that did not sign the server's certificate.
    let other = dir.path().join("other");
    certs(&other);
    let output = run(&[
        "dump",
        "--connect",
        &format!("localhost:{port}"),
        "--tls-cert",
        &file("client.crt"),
        "--tls-key",
        &file("client.key"),
        "--tls-ca",
        other.join("ca.crt").to_str().unwrap(),
    ]);
    fails_saying(
        output,
        "the server's certificate is not signed by the CA in",
    );
}
