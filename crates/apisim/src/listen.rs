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
        let task = tokio::spawn(accept_loop(listener, router, shared.clone(), token.clone()));
        let url = format!("http://{addr}");
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Client(e.to_string()))?;
        let client = kube::Client::try_from(kube::Config::new(uri))
            .map_err(|e| Error::Client(e.to_string()))?;
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

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    token: CancellationToken,
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
                let svc = TowerToHyperService::new(router.clone());
                let token = token.clone();
                let mut drop_rx = shared.faults.drop_connections.subscribe();
                drop_rx.borrow_and_update();
                conns.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        r = conn => {
                            if let Err(e) = r {
                                tracing::debug!(%peer, error = %e, "connection ended with error");
                            }
                        }
                        _ = token.cancelled() => {}
                        _ = drop_rx.changed() => tracing::debug!(%peer, "connection dropped (restart fault)"),
                    }
                });
            }
        }
    }
    // Dropping the listener and aborting the connection tasks closes every socket.
    drop(listener);
    conns.shutdown().await;
}
