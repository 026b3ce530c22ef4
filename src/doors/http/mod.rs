//! The HTTP door (SPEC §9, §10): the original product's import API, the
//! asynchronous `apiPutFiles`, the JSON contact-person messages, the import
//! history, and the operator's `/healthz` and `/metrics`.
//!
//! axum routes requests on hyper connections that this module accepts
//! itself (plain or TLS), so that each request knows the client's address:
//! logins are checked and banned exactly as at the other doors
//! ([`crate::auth`]). What the handlers ([`api`]) do with a body is what
//! every door does with an upload: a request's body is received into the
//! drop area ([`crate::drop_area::AccountArea::create_request_upload`]),
//! queued behind the account's other uploads, imported by the jobs, and
//! its report is the answer. `apiPutFiles` is a plain upload into the
//! account's folder, as SFTP would make it.
//!
//! The API is described by an OpenAPI document kept in the repository
//! (`api/openapi.json`) and served at `/api/openapi.json`; a test checks
//! the server's real answers against it.

mod api;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::sessions::{SessionCounts, SessionKey};
use crate::auth::Authenticator;
use crate::drop_area::DropArea;

/// `[http]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Whether the HTTP door opens at all.
    pub enabled: bool,
    /// Address and port (`0` picks a free port, printed at start).
    pub listen: String,
    /// PEM certificate chain and private key: HTTPS when both are set.
    pub tls_cert: String,
    pub tls_key: String,
    /// The largest request body accepted, in MiB; larger ones are answered
    /// with 413 `FILE_TOO_LARGE`.
    pub max_body_mb: u64,
    /// A request body that sends nothing for this long is given up
    /// (`UPLOAD_INCOMPLETE`), so a stalled client does not hold its upload
    /// open for ever.
    pub body_stall_secs: u64,
    /// Connections open at once from one address; more are closed on
    /// arrival.
    pub max_connections_per_address: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: "0.0.0.0:8080".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_body_mb: 1024,
            body_stall_secs: 300,
            max_connections_per_address: 50,
        }
    }
}

/// What the HTTP door's handlers share.
pub struct HttpDoor {
    pub area: Arc<DropArea>,
    pub auth: Arc<Authenticator>,
    /// The largest body accepted, in bytes.
    pub max_body: u64,
    /// How long a body may send nothing.
    pub body_stall: Duration,
    /// Basic logins being checked at once (argon2); the others wait here,
    /// on the runtime, rather than on the blocking threads imports need.
    pub password_checks: tokio::sync::Semaphore,
    connections: Arc<SessionCounts>,
    per_address: usize,
    tls: Option<TlsAcceptor>,
}

impl HttpDoor {
    pub fn new(
        area: Arc<DropArea>,
        auth: Arc<Authenticator>,
        config: &HttpConfig,
    ) -> anyhow::Result<HttpDoor> {
        let tls = match (config.tls_cert.is_empty(), config.tls_key.is_empty()) {
            (true, true) => None,
            (false, false) => {
                let mut tls = super::tls::server_config(
                    Path::new(&config.tls_cert),
                    Path::new(&config.tls_key),
                )?;
                tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some(TlsAcceptor::from(Arc::new(tls)))
            }
            _ => anyhow::bail!("[http]: tls_cert and tls_key go together"),
        };
        Ok(HttpDoor {
            area,
            auth,
            max_body: config.max_body_mb.saturating_mul(1 << 20),
            body_stall: Duration::from_secs(config.body_stall_secs.max(1)),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            connections: SessionCounts::new("http"),
            per_address: config.max_connections_per_address.max(1),
            tls,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The client's address, put into each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

/// How long a client may take to send a request's headers, and to finish
/// the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the requests under way may take to finish when the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The routes: each path of SPEC §9 and §10, and the operator's.
pub fn router(door: Arc<HttpDoor>) -> Router {
    Router::new()
        .route("/api/{file_type}", post(api::import))
        .route("/api/imports", get(api::imports))
        .route("/api/imports/{id}", get(api::one_import))
        .route(
            "/apiPutFiles/{file_name}",
            post(api::put_file).put(api::put_file),
        )
        .route(
            "/api/4PSBC/ImportContactpersoon",
            post(api::contact_messages),
        )
        .route("/api/openapi.json", get(api::openapi))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn(count_requests))
        .with_state(door)
}

/// Counts each answer by route and status, for `/metrics`.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    crate::metrics::http_request(&route, response.status().as_u16());
    response
}

/// Accepts connections until `shutdown`, then lets the requests under way
/// finish (for at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    door: Arc<HttpDoor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(door.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let peer = super::sessions::canonical(address.ip());
        let Some(counted) = door
            .connections
            .enter(SessionKey::Address(peer), door.per_address)
        else {
            tracing::warn!(%peer, "connection refused: too many connections from this address");
            continue;
        };
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(Peer(peer))));
        let watcher = graceful.watcher();
        let tls = door.tls.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT);
            // HTTP/2 has no header timeout: pings find dead peers instead.
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(60)))
                .keep_alive_timeout(Duration::from_secs(20));
            let served = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        tracing::debug!(%peer, "TLS handshake failed");
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still under way at shutdown were cut off");
    }
    Ok(())
}
