//! The HTTP endpoints a deployed server answers (feature `metrics`), as
//! upstream's Typha does: `/metrics` (Prometheus), `/liveness` and
//! `/readiness` (Kubernetes probes). One listener can serve any of them;
//! what it does not serve is a 404.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a health probe reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The process serves (`/liveness` answers 200, else 503).
    pub live: bool,
    /// It is ready for clients (`/readiness` answers 200, else 503).
    pub ready: bool,
    /// Why, in words, for whoever reads the probe's body.
    pub detail: String,
}

/// Reads the current [`Health`] (called on every probe).
pub type HealthCheck = Arc<dyn Fn() -> Health + Send + Sync>;

/// Which endpoints a listener serves.
#[derive(Clone, Default)]
pub struct Routes {
    /// `/metrics`, from this registry.
    pub metrics: Option<Arc<Registry>>,
    /// `/liveness` and `/readiness`, from this check.
    pub health: Option<HealthCheck>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("metrics", &self.metrics.is_some())
            .field("health", &self.health.is_some())
            .finish()
    }
}

/// The health of a [`Server`](crate::Server): live while it accepts
/// connections, ready when it also has its data in sync.
pub fn server_health(server: crate::ServerHandle) -> HealthCheck {
    Arc::new(move || {
        let accepting = server.is_accepting();
        let statuses: Vec<String> = server
            .caches()
            .iter()
            .map(|(syncer, cache)| match syncer {
                Some(syncer) => format!("{syncer} {}", cache.status()),
                None => cache.status().to_string(),
            })
            .collect();
        let data = match statuses.is_empty() {
            true => "none opened yet".to_owned(),
            false => statuses.join(", "),
        };
        let listener = match accepting {
            true => "accepting",
            false => "not accepting",
        };
        Health {
            live: accepting,
            ready: server.is_ready(),
            detail: format!("{listener}; data {data}"),
        }
    })
}

/// Serves `routes` on `listener` until `stop` turns true (or its sender is
/// dropped). Connections are HTTP/1.1, each on its own task.
pub async fn serve(listener: TcpListener, routes: Routes, mut stop: watch::Receiver<bool>) {
    let routes = Arc::new(routes);
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let routes = Arc::clone(&routes);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = respond(&routes, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "HTTP endpoint connection failed");
                    }
                });
            }
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

fn respond(routes: &Routes, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned());
    }
    match (request.uri().path(), &routes.metrics, &routes.health) {
        ("/metrics", Some(registry), _) => match crate::metrics::encode(registry) {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding failed\n".to_owned(),
            ),
        },
        ("/liveness", _, Some(check)) => {
            let health = check();
            probe(health.live, &health.detail)
        }
        ("/readiness", _, Some(check)) => {
            let health = check();
            probe(health.ready, &health.detail)
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn probe(ok: bool, detail: &str) -> Response<Full<Bytes>> {
    match ok {
        true => text(StatusCode::OK, format!("ok: {detail}\n")),
        false => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ok: {detail}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
