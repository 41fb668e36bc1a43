//! How an operator watches the tool: logs (`--log-level`, `--log-format`,
//! `RUST_LOG`) for every command, and for long-running servers the
//! Prometheus and probe endpoints (`--metrics-listen`, `--health-listen`).

use std::io::IsTerminal;
use std::sync::Arc;

use syncproto_tokio::ServerHandle;
use syncproto_tokio::endpoints::{self, Routes};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::failure::{Failure, note};

/// The log options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// What to log: error, warn, info, debug or trace, or a `RUST_LOG`-style
    /// filter (`syncproto_tokio=debug`). Default: `RUST_LOG` if set, else
    /// info for `serve` and `relay`, warn for the other commands. Logs go to stderr.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// How log lines look: text for people, json (one object per line) for
    /// log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl LogArgs {
    /// Installs the log subscriber: `--log-level`, else `RUST_LOG`, else
    /// `default_level`.
    pub(crate) fn init(&self, default_level: &str) -> Result<(), Failure> {
        let filter = match (&self.log_level, std::env::var("RUST_LOG")) {
            (Some(level), _) => EnvFilter::try_new(level)
                .map_err(|error| Failure::usage(format!("--log-level {level:?}: {error}")))?,
            (None, Ok(env)) if !env.is_empty() => EnvFilter::try_new(&env)
                .map_err(|error| Failure::usage(format!("RUST_LOG={env:?}: {error}")))?,
            _ => EnvFilter::new(default_level),
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colours only for a person at a terminal, not for a file.
            .with_ansi(std::io::stderr().is_terminal());
        let installed = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
        installed.map_err(|error| Failure::runtime(format!("cannot install the logger: {error}")))
    }
}

/// The endpoints a long-running server offers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EndpointArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9093).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Serve the probes at http://ADDR/liveness (the server accepts
    /// connections) and /readiness (and its data is in sync), e.g.
    /// 0.0.0.0:9098. May be the same address as --metrics-listen.
    #[arg(long, value_name = "ADDR")]
    health_listen: Option<String>,
}

impl EndpointArgs {
    /// Starts the endpoints for `server`; they stop when the returned
    /// sender is dropped or set.
    pub(crate) async fn start(
        &self,
        server: &ServerHandle,
    ) -> Result<watch::Sender<bool>, Failure> {
        self.start_with(server, syncproto_tokio::metrics::registry(server))
            .await
    }

    /// Starts the endpoints for `server`, serving the metrics of
    /// `registry` (a relay's holds its upstream metrics too).
    pub(crate) async fn start_with(
        &self,
        server: &ServerHandle,
        registry: prometheus_client::registry::Registry,
    ) -> Result<watch::Sender<bool>, Failure> {
        let (stop, stopped) = watch::channel(false);
        let registry = Arc::new(registry);
        let metrics = || Arc::clone(&registry);
        let health = || endpoints::server_health(server.clone());
        let mut listeners: Vec<(&str, Routes)> = Vec::new();
        match (&self.metrics_listen, &self.health_listen) {
            (Some(metrics_at), Some(health_at)) if metrics_at == health_at => {
                let routes = Routes {
                    metrics: Some(metrics()),
                    health: Some(health()),
                };
                listeners.push((metrics_at, routes));
            }
            (metrics_at, health_at) => {
                if let Some(address) = metrics_at {
                    let routes = Routes {
                        metrics: Some(metrics()),
                        health: None,
                    };
                    listeners.push((address, routes));
                }
                if let Some(address) = health_at {
                    let routes = Routes {
                        metrics: None,
                        health: Some(health()),
                    };
                    listeners.push((address, routes));
                }
            }
        }
        for (address, routes) in listeners {
            let what = match (routes.metrics.is_some(), routes.health.is_some()) {
                (true, true) => "metrics and probes",
                (true, false) => "metrics",
                _ => "probes",
            };
            let listener = TcpListener::bind(address).await.map_err(|error| {
                Failure::runtime(format!("cannot listen on {address} for {what}: {error}"))
            })?;
            let bound = listener
                .local_addr()
                .map_or_else(|_| address.to_owned(), |bound| bound.to_string());
            note(&format!("{what} on http://{bound}"));
            tokio::spawn(endpoints::serve(listener, routes, stop.subscribe()));
        }
        drop(stopped);
        Ok(stop)
    }
}
