//! `syncproto relay`: a fan-out server in front of another (an upstream
//! Typha, or another relay), serving its data to agents in both wire
//! formats (see [`syncproto_tokio::relay`]).

use std::path::PathBuf;
use std::time::Duration;

use syncproto::server::ServerConfig;
use syncproto_tokio::relay::{Relay, RelayMetrics, RelayOptions};
use syncproto_tokio::{ClientOptions, ServerOptions};

use crate::failure::{Failure, note};
use crate::observe::EndpointArgs;
use crate::options::{TlsArgs, Wire, WireChoice, host_of};
use crate::signals::Stop;

/// Relay another server (an upstream Typha, or another relay) to many
/// agents.
///
/// One upstream connection per syncer type the agents ask for, opened on
/// first demand and kept; agents of both wire formats on one port. While
/// the upstream reconnects the agents stay connected: they see
/// ResyncInProgress, then only what changed, then in-sync. Keys and values
/// are forwarded as received; the upstream's snapshot checksums are
/// checked and the relay sends its own. Runs until interrupted (SIGINT or
/// SIGTERM: graceful).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The upstream server, `host:port` (an upstream Typha listens on 5473).
    #[arg(long)]
    upstream: String,
    /// Address to listen on for agents, e.g. 0.0.0.0:5473.
    #[arg(long, default_value = "127.0.0.1:5473")]
    listen: String,
    /// Which wire format agents may speak: auto tells gob and native apart.
    #[arg(long, value_enum, default_value_t = WireChoice::Auto)]
    wire: WireChoice,
    /// The wire format to speak upstream (a Typha speaks gob).
    #[arg(long, value_enum, default_value_t = Wire::Gob)]
    upstream_wire: Wire,
    /// The TLS server name to present upstream (default: the host of
    /// --upstream).
    #[arg(long)]
    upstream_tls_server_name: Option<String>,
    #[command(flatten)]
    upstream_tls: UpstreamTlsArgs,
    /// Serve agents without modern policy key support (v3.2.5's); such an
    /// agent is disconnected if a modern policy key is about to reach it.
    #[arg(long)]
    allow_legacy_clients: bool,
    /// Above this many agents, shed one (at random) per second, as
    /// upstream Typha does.
    #[arg(long)]
    max_connections: Option<usize>,
    /// TLS towards the agents (the relay's own certificate).
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    endpoints: EndpointArgs,
}

/// TLS towards the upstream server (the relay's client certificate), as a
/// Felix presents it to Typha.
#[derive(Debug, Clone, Default, clap::Args)]
struct UpstreamTlsArgs {
    /// The relay's client certificate (PEM); enables TLS upstream.
    #[arg(long, requires_all = ["upstream_tls_key", "upstream_tls_ca"])]
    upstream_tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "upstream_tls_cert")]
    upstream_tls_key: Option<PathBuf>,
    /// The CA (PEM) the upstream's certificate must be signed by.
    #[arg(long, requires = "upstream_tls_cert")]
    upstream_tls_ca: Option<PathBuf>,
    /// Require this Common Name in the upstream's certificate (instead of
    /// its host name; Typha's is usually typha-server).
    #[arg(long, requires = "upstream_tls_cert")]
    upstream_tls_peer_cn: Option<String>,
    /// Require this URI SAN in the upstream's certificate.
    #[arg(long, requires = "upstream_tls_cert")]
    upstream_tls_peer_uri_san: Option<String>,
}

impl UpstreamTlsArgs {
    /// The same settings in the shape the other commands use.
    fn as_tls(&self) -> TlsArgs {
        TlsArgs {
            tls_cert: self.upstream_tls_cert.clone(),
            tls_key: self.upstream_tls_key.clone(),
            tls_ca: self.upstream_tls_ca.clone(),
            tls_peer_cn: self.upstream_tls_peer_cn.clone(),
            tls_peer_uri_san: self.upstream_tls_peer_uri_san.clone(),
        }
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let mut stop = Stop::listen()?;
    let host = args
        .upstream_tls_server_name
        .clone()
        .unwrap_or_else(|| host_of(&args.upstream).to_owned());
    let mut options = RelayOptions::new(&args.upstream);
    options.upstream_client.wire_format = args.upstream_wire.into();
    if let Ok(hostname) = std::env::var("HOSTNAME") {
        // As a Felix names itself to Typha: the pod's name, in a cluster.
        options.upstream_client.hostname = hostname;
    }
    options.upstream_options = ClientOptions {
        tls: args.upstream_tls.as_tls().client(&host)?,
        ..ClientOptions::default()
    };
    options.server = ServerOptions {
        config: ServerConfig {
            wire_format: args.wire.format(),
            require_modern_policy_keys: !args.allow_legacy_clients,
            ..ServerConfig::default()
        },
        max_connections: args.max_connections,
        shed_interval: Duration::from_secs(1),
        tls: args.tls.server()?,
        ..ServerOptions::default()
    };
    let relay = Relay::bind(&args.listen, options)
        .await
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let address = relay
        .local_addr()
        .map_err(|error| Failure::runtime(format!("cannot listen on {}: {error}", args.listen)))?;
    let handle = relay.handle();
    let _endpoints = args
        .endpoints
        .start_with(handle.server(), RelayMetrics::registry(&handle))
        .await?;
    note(&format!(
        "relaying {} ({}) on {address}",
        args.upstream,
        match args.upstream_wire {
            Wire::Gob => "gob",
            Wire::Native => "native",
        }
    ));
    let stopper = handle.clone();
    tokio::spawn(async move {
        let signal = stop.next().await;
        note(&format!("shutting down ({})", signal.name()));
        stopper.shutdown();
    });
    relay
        .run()
        .await
        .map_err(|error| Failure::runtime(format!("relay failed: {error}")))
}
