//! Operating a server: every refused client leaves a log line that says
//! why (and who it was); the metrics pass `promtool` and a real Prometheus
//! reads the connection count back; the probes follow the server.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package.
//! Without them those tests pass without running, unless
//! `SYNCPROTO_REQUIRE_PROMETHEUS=1` (as CI sets), when they fail.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde_json::Value;
use support::Ca;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus, SyncerType};
use syncproto::server::{ConnectionReport, ServerConfig};
use syncproto_tokio::endpoints::{self, Routes};
use syncproto_tokio::tls::{self, PeerRequirement};
use syncproto_tokio::{Client, ClientOptions, Server, ServerHandle, ServerOptions, metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

const HUNG: Duration = Duration::from_secs(30);

/// Every log line the tests' servers write, as JSON.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || CaptureWriter(Arc::clone(&writer)))
            .init();
        buffer
    })
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The "connection closed" line of the connection `report` describes.
fn close_line(report: &ConnectionReport) -> Value {
    let text = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    let peer = report.peer.unwrap().to_string();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|line| {
            line["fields"]["message"] == "connection closed" && line["fields"]["peer"] == peer
        })
        .unwrap_or_else(|| panic!("no close line for {peer} in:\n{text}"))
}

/// A server on a free port with one key, in sync; the reports of the
/// connections that end come out of the receiver.
async fn server(
    options: ServerOptions,
    cache_config: CacheConfig,
    updates: Vec<SerializedUpdate>,
) -> (
    String,
    ServerHandle,
    mpsc::UnboundedReceiver<ConnectionReport>,
) {
    logs();
    let cache = SnapshotCache::new(cache_config);
    let now = std::time::Instant::now();
    cache.apply(now, updates);
    cache.set_status(now, SyncStatus::InSync);
    let (reports, closed) = mpsc::unbounded_channel();
    let options = ServerOptions {
        on_connection_closed: Some(Arc::new(move |report: &ConnectionReport| {
            let _ = reports.send(report.clone());
        })),
        ..options
    };
    let server = Server::bind("127.0.0.1:0", cache, options).await.unwrap();
    let address = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    tokio::spawn(server.run());
    (address, handle, closed)
}

fn one_key() -> Vec<SerializedUpdate> {
    vec![SerializedUpdate::upsert("/calico/v1/config/A", "1", "1")]
}

/// Connects a client and reads until the connection ends; returns why.
async fn run_client(address: &str, config: ClientConfig, options: ClientOptions) -> String {
    let Ok(mut client) = Client::connect(address, config, options).await else {
        return "could not connect".to_owned();
    };
    timeout(HUNG, async {
        loop {
            match client.next_event().await {
                Ok(Some(ClientEvent::Closed(reason))) => return reason.to_string(),
                Ok(Some(_)) => {}
                Ok(None) => return "finished".to_owned(),
                Err(error) => return error.to_string(),
            }
        }
    })
    .await
    .unwrap()
}

fn client_config(hostname: &str) -> ClientConfig {
    ClientConfig {
        hostname: hostname.to_owned(),
        key_parser: None,
        ..ClientConfig::default()
    }
}

async fn next_report(closed: &mut mpsc::UnboundedReceiver<ConnectionReport>) -> ConnectionReport {
    timeout(HUNG, closed.recv()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_for_a_syncer_not_served_is_logged_with_what_it_asked() {
    let options = ServerOptions {
        config: ServerConfig {
            syncer_types: vec![SyncerType::Felix],
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let (address, _handle, mut closed) = server(options, CacheConfig::default(), one_key()).await;
    let config = ClientConfig {
        syncer_type: SyncerType::Bgp,
        ..client_config("bgp-asker")
    };
    run_client(&address, config, ClientOptions::default()).await;
    let report = next_report(&mut closed).await;
    let line = close_line(&report);
    assert_eq!(line["level"], "WARN", "{line}");
    let fields = &line["fields"];
    assert_eq!(fields["hostname"], "bgp-asker", "{line}");
    assert_eq!(fields["syncer"], "bgp", "{line}");
    assert_eq!(fields["kind"], "protocol", "{line}");
    assert!(
        fields["reason"]
            .as_str()
            .unwrap()
            .contains("bgp is not served"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_speaking_the_other_wire_format_is_logged() {
    let options = ServerOptions {
        config: ServerConfig {
            wire_format: Some(WireFormat::Native),
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let (address, handle, mut closed) = server(options, CacheConfig::default(), one_key()).await;
    let config = ClientConfig {
        wire_format: WireFormat::Gob,
        ..client_config("gob-speaker")
    };
    run_client(&address, config, ClientOptions::default()).await;
    let report = next_report(&mut closed).await;
    let line = close_line(&report);
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["kind"], "protocol", "{line}");
    let reason = line["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains("bad preamble"), "{line}");
    assert_eq!(handle.stats().decode_errors.get("bad_preamble"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_large_for_the_message_limit_is_logged() {
    const LIMIT: usize = 64 * 1024;
    let options = ServerOptions {
        config: ServerConfig {
            max_server_message_len: LIMIT,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let cache_config = CacheConfig {
        max_message_len: LIMIT,
        ..CacheConfig::default()
    };
    let huge = vec![SerializedUpdate::upsert(
        "/calico/v1/config/Huge",
        "x".repeat(100 * 1024),
        "1",
    )];
    let (address, _handle, mut closed) = server(options, cache_config, huge).await;
    run_client(
        &address,
        client_config("small-limit"),
        ClientOptions::default(),
    )
    .await;
    let report = next_report(&mut closed).await;
    let line = close_line(&report);
    assert_eq!(line["fields"]["kind"], "usage", "{line}");
    assert_eq!(line["fields"]["hostname"], "small-limit", "{line}");
    let reason = line["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains("exceeds the 65536-byte"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_says_hello_is_logged() {
    let options = ServerOptions {
        config: ServerConfig {
            handshake_timeout: Duration::from_millis(200),
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let (address, _handle, mut closed) = server(options, CacheConfig::default(), one_key()).await;
    let mut silent = TcpStream::connect(&address).await.unwrap();
    // The server gives up on it and closes: the end of stream arrives.
    let mut rest = Vec::new();
    timeout(HUNG, silent.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let report = next_report(&mut closed).await;
    let line = close_line(&report);
    assert_eq!(line["fields"]["kind"], "handshake_timeout", "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_logged() {
    let ca = Ca::new("cluster CA");
    let stranger = Ca::new("some other CA");
    let config = tls::server_config(ca.leaf("typha", None), &[ca.der()]).unwrap();
    let options = ServerOptions {
        tls: Some((config, PeerRequirement::default())),
        ..ServerOptions::default()
    };
    let (address, handle, mut closed) = server(options, CacheConfig::default(), one_key()).await;
    let client_tls = tls::client_config(
        Some(stranger.leaf("felix", None)),
        &[ca.der()],
        PeerRequirement::default(),
    )
    .unwrap();
    let client_options = ClientOptions {
        tls: Some((client_tls, ServerName::try_from("localhost").unwrap())),
        ..ClientOptions::default()
    };
    run_client(&address, client_config("stranger"), client_options).await;
    let report = next_report(&mut closed).await;
    let line = close_line(&report);
    assert_eq!(line["fields"]["kind"], "tls_rejected", "{line}");
    let reason = line["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains("TLS handshake failed"), "{line}");
    // In words, not rustls's Debug text.
    assert!(reason.contains("the peer's certificate"), "{line}");
    assert_eq!(handle.stats().tls_rejected, 1);
}

/// `n` clients, each read until in sync and kept open.
async fn synced_clients(address: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for index in 0..n {
        let config = ClientConfig {
            wire_format: [WireFormat::Native, WireFormat::Gob][index % 2],
            ..client_config(&format!("client-{index}"))
        };
        let mut client = Client::connect(address, config, ClientOptions::default())
            .await
            .unwrap();
        timeout(HUNG, async {
            loop {
                match client.next_event().await.unwrap() {
                    Some(ClientEvent::Status(SyncStatus::InSync)) => return,
                    Some(ClientEvent::Closed(reason)) => panic!("closed: {reason}"),
                    Some(_) => {}
                    None => panic!("finished"),
                }
            }
        })
        .await
        .unwrap();
        clients.push(client);
    }
    clients
}

/// The value of the unlabelled sample `name` in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn required(tool: &str) -> bool {
    let present = Command::new(tool).arg("--version").output().is_ok();
    let required = std::env::var("SYNCPROTO_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
    assert!(
        present || !required,
        "SYNCPROTO_REQUIRE_PROMETHEUS=1 but `{tool}` is missing"
    );
    if !present {
        eprintln!("skipping: `{tool}` is not installed (Debian's prometheus package)");
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_what_happened_and_pass_promtool() {
    let updates: Vec<SerializedUpdate> = (0..250)
        .map(|index| SerializedUpdate::upsert(format!("/calico/v1/config/K{index}"), "v", "1"))
        .collect();
    let (address, handle, _closed) =
        server(ServerOptions::default(), CacheConfig::default(), updates).await;
    let clients = synced_clients(&address, 3).await;
    let text = metrics::encode(&metrics::registry(&handle)).unwrap();
    assert_eq!(
        sample(&text, "typha_connections_active"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(sample(&text, "typha_connections_streaming"), Some(3.0));
    assert_eq!(sample(&text, "typha_connections_accepted_total"), Some(3.0));
    assert_eq!(sample(&text, "typha_cache_size"), Some(250.0));
    // Three compressed snapshots (the clients offer snappy), each of 250
    // updates in one batch (compressed batches hold up to 1 000).
    assert_eq!(sample(&text, "typha_kvs_per_msg_count"), Some(3.0));
    assert_eq!(
        sample(&text, r#"typha_kvs_per_msg_bucket{le="200.0"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"typha_kvs_per_msg_bucket{le="500.0"}"#),
        Some(3.0)
    );
    assert_eq!(sample(&text, "typha_kvs_per_msg_sum"), Some(750.0));
    assert_eq!(sample(&text, "syncproto_kvs_sent_total"), Some(750.0));
    assert_eq!(
        sample(&text, "typha_client_snapshot_send_secs_count"),
        Some(3.0)
    );
    assert!(text.contains(r#"syncproto_bytes_written_total{wire="gob",compression="snappy"}"#));
    drop(clients);
    if !required("promtool") {
        return;
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    // promtool reads the classic text format, in which a HELP line names
    // the sample; OpenMetrics names the counter's family, its sample adds
    // `_total`. That mismatch is all promtool may report: every counter
    // parsed, and nothing else is wrong.
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    assert!(counters.len() > 10, "{text}");
    for problem in report.lines().filter(|line| !line.trim().is_empty()) {
        let counter = problem
            .strip_suffix("_total no help text")
            .unwrap_or_else(|| panic!("promtool: {problem}\n{report}"));
        assert!(counters.contains(&counter), "promtool: {problem}");
    }
}

/// A GET over HTTP/1.1: the status code and the body.
async fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(HUNG, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// Serves `routes` on a free port; returns the address and the stop switch.
async fn endpoints(routes: Routes) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(endpoints::serve(listener, routes, stopped));
    (address, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_follow_the_server() {
    let cache = SnapshotCache::new(CacheConfig::default());
    let server = Server::bind("127.0.0.1:0", cache, ServerOptions::default())
        .await
        .unwrap();
    let handle = server.handle();
    let routes = Routes {
        metrics: None,
        health: Some(endpoints::server_health(handle.clone())),
    };
    let (address, _stop) = endpoints(routes).await;
    // Bound: the kernel queues connections for `run` to take, so it is
    // live; its data is not in sync yet, so it is not ready.
    assert_eq!(get(&address, "/liveness").await.0, 200);
    let running = tokio::spawn(server.run());
    let (status, body) = get(&address, "/readiness").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("wait-for-ready"), "{body}");
    handle.set_status(SyncStatus::InSync);
    assert_eq!(get(&address, "/readiness").await.0, 200);
    // What this listener does not serve.
    assert_eq!(get(&address, "/metrics").await.0, 404);
    handle.shutdown();
    timeout(HUNG, running).await.unwrap().unwrap().unwrap();
    assert_eq!(get(&address, "/liveness").await.0, 503);
    assert_eq!(get(&address, "/readiness").await.0, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_connection_count() {
    if !required("prometheus") {
        return;
    }
    let (address, handle, _closed) =
        server(ServerOptions::default(), CacheConfig::default(), one_key()).await;
    let routes = Routes {
        metrics: Some(Arc::new(metrics::registry(&handle))),
        health: None,
    };
    let (metrics_address, _stop) = endpoints(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: syncproto\n    static_configs:\n      - targets: ['{metrics_address}']\n"
        ),
    )
    .unwrap();
    let web = free_port().await;
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _clients = synced_clients(&address, 2).await;
    let seen = timeout(Duration::from_secs(60), async {
        loop {
            if let Some(value) = query(&web, "typha_connections_active").await
                && value == 2.0
            {
                return value;
            }
            // Prometheus scrapes once a second; ask again shortly.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert_eq!(
        seen,
        Ok(2.0),
        "Prometheus never read two active connections"
    );
}

async fn free_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// An instant query's single value, once Prometheus answers with one.
async fn query(prometheus: &str, expression: &str) -> Option<f64> {
    let Ok(mut stream) = TcpStream::connect(prometheus).await else {
        return None;
    };
    let request = format!(
        "GET /api/v1/query?query={expression} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let answer: Value = serde_json::from_str(body).ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}
