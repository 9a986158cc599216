//! Where the relay listens (a loopback TCP address or a unix socket of mode 0600) and the accept
//! loop: one HTTP/1.1 connection task per client, which a watch that falls behind can drop.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

use crate::{Inner, RelayError};

/// Where the relay listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address, e.g. `127.0.0.1:0` (port 0: any free port).
    Tcp(SocketAddr),
    /// A unix socket path (created with mode 0600; a stale socket there is replaced).
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = RelayError;

    /// `unix:/path` or `HOST:PORT` (an IP address).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(RelayError::Listen(format!("{s}: no socket path")));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| RelayError::Listen(format!("{s}: neither unix:/path nor IP:PORT")))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A bound listener.
pub(crate) enum Bound {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Bound {
    /// Binds `listen`. A TCP address must be loopback unless `remote_ok` (callers are then
    /// checked one by one).
    pub(crate) async fn bind(
        listen: &Listen,
        remote_ok: bool,
    ) -> Result<(Self, Listen), RelayError> {
        match listen {
            Listen::Tcp(addr) => {
                if !addr.ip().is_loopback() && !remote_ok {
                    return Err(RelayError::Listen(format!(
                        "{addr} is not a loopback address: without authorization the relay serves only the local user"
                    )));
                }
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| RelayError::Listen(format!("{addr}: {e}")))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| RelayError::Listen(format!("{addr}: {e}")))?;
                Ok((Bound::Tcp(listener), Listen::Tcp(local)))
            }
            Listen::Unix(path) => {
                use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
                let err =
                    |e: std::io::Error| RelayError::Listen(format!("{}: {e}", path.display()));
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        return Err(RelayError::Listen(format!(
                            "{}: exists and is not a socket",
                            path.display()
                        )));
                    }
                    std::fs::remove_file(path).map_err(err)?;
                }
                // Bound under a temporary name, restricted to the owner, then moved in place:
                // the socket is never reachable with wider permissions.
                let mut tmp = path.clone().into_os_string();
                tmp.push(format!(".{}.tmp", std::process::id()));
                let tmp = PathBuf::from(tmp);
                let _ = std::fs::remove_file(&tmp);
                let listener = tokio::net::UnixListener::bind(&tmp).map_err(err)?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
                std::fs::rename(&tmp, path).map_err(err)?;
                Ok((Bound::Unix(listener), Listen::Unix(path.clone())))
            }
        }
    }
}

/// Accepts connections until the task is aborted; `stop` ends every connection it accepted.
pub(crate) async fn serve(bound: Bound, inner: Arc<Inner>, stop: watch::Receiver<bool>) {
    loop {
        match &bound {
            Bound::Tcp(listener) => match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    debug!(%peer, "relay connection");
                    spawn_connection(stream, inner.clone(), stop.clone());
                }
                Err(err) => accept_failed(err).await,
            },
            Bound::Unix(listener) => match listener.accept().await {
                Ok((stream, _)) => spawn_connection(stream, inner.clone(), stop.clone()),
                Err(err) => accept_failed(err).await,
            },
        }
    }
}

async fn accept_failed(err: std::io::Error) {
    // Out of file descriptors and the like: wait a little rather than spin.
    warn!(error = %err, "relay accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

fn spawn_connection<S>(stream: S, inner: Arc<Inner>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = kill.clone();
        let stop = stop.clone();
        service_fn(move |req: hyper::Request<Incoming>| {
            let inner = inner.clone();
            let kill = kill.clone();
            let stop = stop.clone();
            async move { Ok::<_, Infallible>(crate::proxy::handle(inner, req, kill, stop).await) }
        })
    };
    tokio::spawn(async move {
        // With upgrades: an upgraded connection (exec, attach, port-forward) leaves this task
        // for its splice (`upgrade.rs`), which ends with the relay too.
        let connection = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    debug!(error = %err, "relay connection ended with an error");
                }
            }
            // A watch on this connection fell behind: drop the connection (and its buffers).
            () = kill.notified() => debug!("relay connection closed: its watch fell behind"),
            // The relay was dropped (or its handle went away).
            _ = stop.wait_for(|stopped| *stopped) => debug!("relay connection closed: the relay stopped"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "127.0.0.1:0".parse::<Listen>().ok(),
            Some(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))))
        );
        assert_eq!(
            "unix:/tmp/r.sock".parse::<Listen>().ok(),
            Some(Listen::Unix(PathBuf::from("/tmp/r.sock")))
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("localhost".parse::<Listen>().is_err());
    }
}
