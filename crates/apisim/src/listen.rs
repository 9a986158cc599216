//! Starting the server: bind 127.0.0.1, load the seed, build the router over
//! `handlers::dispatch`, and accept connections until the handle is dropped.
//!
//! This is the top of apisim's module graph: `listen` -> `handlers` -> `watch` -> `server`
//! (configuration, shared state, `Control`, `ServerHandle`) -> `store`, `faults`, `accounting`.
//! It lives apart from `server` so that the handlers may use the shared state without a cycle.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::accounting::Accounting;
use crate::errors::Error;
use crate::faults::Faults;
use crate::resources::Registry;
use crate::server::{Control, ServerConfig, ServerHandle, Shared};
use crate::store::{Store, meta_str};

/// The simulated API server.
pub struct Server;

impl Server {
    /// Bind 127.0.0.1, load the seed, and serve until the returned handle is dropped or shut down.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, Error> {
        let registry = Registry::new(config.resources.clone());
        let store = Store::new(
            registry,
            config.history_size,
            config.feed_capacity,
            config.continue_ttl,
        );
        for obj in &config.seed {
            let av = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
            let res = store.registry.find_kind(av, kind).ok_or_else(|| {
                Error::UnknownKind(format!(
                    "{av}/{kind} {}",
                    meta_str(obj, "name").unwrap_or("?")
                ))
            })?;
            store.seed(res, obj.clone()).map_err(Error::Seed)?;
        }
        let tls = if config.tls {
            Some(tls_acceptor()?)
        } else {
            None
        };
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store,
            accounting: Accounting::default(),
            faults: Faults::default(),
            config,
            open_watches: Arc::new(AtomicUsize::new(0)),
            addr,
        });
        let router = Router::new()
            .fallback(crate::handlers::dispatch)
            .with_state(shared.clone());
        let token = CancellationToken::new();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            shared.clone(),
            token.clone(),
            tls,
        ));
        let url = format!("{scheme}://{addr}");
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Client(e.to_string()))?;
        let mut client_config = kube::Config::new(uri);
        client_config.accept_invalid_certs = shared.config.tls;
        let client =
            kube::Client::try_from(client_config).map_err(|e| Error::Client(e.to_string()))?;
        tracing::info!(%url, "apisim listening");
        Ok(ServerHandle {
            control: Control { shared },
            url,
            addr,
            client,
            token,
            task: Some(task),
        })
    }
}

/// apisim's self-signed test certificate (ECDSA P-256, for `127.0.0.1` and `localhost`, valid
/// until 2126) and its key: test data, not a secret.
const TLS_CERT: &[u8] = include_bytes!("tls/cert.pem");
const TLS_KEY: &[u8] = include_bytes!("tls/key.pem");

fn tls_acceptor() -> Result<TlsAcceptor, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| Error::Io(std::io::Error::other(format!("TLS: {e}")));
    let cert = CertificateDer::from_pem_slice(TLS_CERT).map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(TLS_KEY).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection (plain or TLS) until it ends, the server stops or a restart drops it.
async fn serve_connection<IO>(
    io: IO,
    router: Router,
    token: CancellationToken,
    mut drop_rx: tokio::sync::watch::Receiver<u64>,
    peer: std::net::SocketAddr,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(router);
    // With upgrades: `pods/{name}/exec` switches to WebSocket (handlers/exec.rs).
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
        _ = token.cancelled() => {}
        _ = drop_rx.changed() => tracing::debug!(%peer, "connection dropped (restart fault)"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    token: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let token = token.clone();
                let mut drop_rx = shared.faults.drop_connections.subscribe();
                drop_rx.borrow_and_update();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve_connection(stream, router, token, drop_rx, peer).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => serve_connection(s, router, token, drop_rx, peer).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        },
                    }
                });
            }
        }
    }
    // Dropping the listener and aborting the connection tasks closes every socket.
    drop(listener);
    conns.shutdown().await;
}
