//! Connection upgrades through the relay, raw: an upstream that answers 101 and then speaks its
//! own protocol on the connection; the relay answers 101 with the upstream's headers and splices
//! the two connections (bytes both ways; closing either side closes the other). A refused
//! upgrade comes back as the upstream answered it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use repocache_relay::Relay;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::common::T;

/// What the upstream saw: the `Authorization` header of each upgrade request, and one message
/// per upgraded connection whose client half ended (EOF).
struct Upstream {
    url: String,
    authorization: Arc<Mutex<Vec<Option<String>>>>,
    eof: mpsc::UnboundedReceiver<()>,
}

/// `/echo`: 101 `Upgrade: test-echo`, then "hello\n", then every chunk read back upper-cased
/// until EOF. `/close-first`: 101, "bye\n", then closes. Anything else: 403 with a body.
async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let authorization = Arc::new(Mutex::new(Vec::new()));
    let (eof_tx, eof) = mpsc::unbounded_channel();
    let seen = authorization.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let eof_tx = eof_tx.clone();
            let service = service_fn(move |mut req: Request<Incoming>| {
                let seen = seen.clone();
                let eof_tx = eof_tx.clone();
                async move {
                    seen.lock().unwrap().push(
                        req.headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned()),
                    );
                    let path = req.uri().path().to_owned();
                    if path != "/echo" && path != "/close-first" {
                        let mut refused = Response::new(Full::new(Bytes::from_static(
                            b"{\"kind\":\"Status\",\"code\":403}",
                        )));
                        *refused.status_mut() = StatusCode::FORBIDDEN;
                        return Ok::<_, Infallible>(refused);
                    }
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(on.await.unwrap());
                        if path == "/close-first" {
                            io.write_all(b"bye\n").await.unwrap();
                            io.shutdown().await.unwrap();
                            return;
                        }
                        io.write_all(b"hello\n").await.unwrap();
                        let mut buf = [0u8; 1024];
                        loop {
                            let n = io.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                let _ = eof_tx.send(());
                                return;
                            }
                            let upper = buf[..n].to_ascii_uppercase();
                            if io.write_all(&upper).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut switching = Response::new(Full::new(Bytes::new()));
                    *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    let h = switching.headers_mut();
                    h.insert("connection", "Upgrade".parse().unwrap());
                    h.insert("upgrade", "test-echo".parse().unwrap());
                    h.insert("x-upstream", "yes".parse().unwrap());
                    Ok(switching)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    Upstream {
        url,
        authorization,
        eof,
    }
}

/// A relay (no cached kinds) in front of `upstream`.
async fn relay(upstream: &Upstream) -> Relay {
    let mut config = kube::Config::new(upstream.url.parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    Relay::builder(client).start().await.unwrap()
}

/// Sends an upgrade request for `path` to the relay; returns the connection and the response
/// head (everything up to the blank line, lower-cased).
async fn open(relay: &Relay, path: &str) -> (TcpStream, String) {
    let addr = relay
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\nAuthorization: Bearer caller-secret\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(T, stream.read(&mut byte))
            .await
            .expect("no response head in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed inside the response head: {head:?}");
        head.push(byte[0]);
    }
    (
        stream,
        String::from_utf8(head).unwrap().to_ascii_lowercase(),
    )
}

/// Reads exactly `n` bytes.
async fn read_exactly(stream: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(T, stream.read_exact(&mut buf))
        .await
        .expect("no bytes in time")
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// Waits for the end of the stream (a read of 0 bytes, or a reset).
async fn read_eof(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, stream.read(&mut buf))
        .await
        .expect("the connection was not closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "bytes after the end: {:?}", &buf[..n]);
}

#[tokio::test]
async fn an_upgrade_is_spliced_both_ways_and_closing_either_side_closes_the_other() {
    repocache_test_support::init_tracing();
    let mut up = upstream().await;
    let relay = relay(&up).await;

    // 101 with the upstream's headers, then bytes both ways.
    let (mut conn, head) = open(&relay, "/echo").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: test-echo\r\n"), "{head}");
    assert!(head.contains("x-upstream: yes\r\n"), "{head}");
    assert_eq!(read_exactly(&mut conn, 6).await, "hello\n");
    conn.write_all(b"ping\n").await.unwrap();
    assert_eq!(read_exactly(&mut conn, 5).await, "PING\n");
    conn.write_all(b"two ").await.unwrap();
    conn.write_all(b"chunks\n").await.unwrap();
    assert_eq!(read_exactly(&mut conn, 11).await, "TWO CHUNKS\n");
    // The caller closes its side: the upstream sees the end, and closes its own, which the
    // caller sees.
    conn.shutdown().await.unwrap();
    tokio::time::timeout(T, up.eof.recv())
        .await
        .expect("the upstream never saw the caller's end")
        .unwrap();
    read_eof(&mut conn).await;

    // The upstream closes first: the caller gets what it sent, then the end.
    let (mut conn, head) = open(&relay, "/close-first").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert_eq!(read_exactly(&mut conn, 4).await, "bye\n");
    read_eof(&mut conn).await;

    // A refused upgrade comes back as the upstream answered it.
    let (mut conn, head) = open(&relay, "/refused").await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let body = "{\"kind\":\"Status\",\"code\":403}";
    assert!(
        head.contains(&format!("content-length: {}\r\n", body.len())),
        "{head}"
    );
    assert_eq!(read_exactly(&mut conn, body.len()).await, body);
    drop(conn);

    // Without --authorize the caller's credentials never go upstream (the relay's own do).
    let seen = up.authorization.lock().unwrap().clone();
    assert_eq!(seen, vec![None, None, None]);

    // An open upgraded connection ends when the relay stops.
    let (mut conn, _) = open(&relay, "/echo").await;
    assert_eq!(read_exactly(&mut conn, 6).await, "hello\n");
    drop(relay);
    read_eof(&mut conn).await;
    tokio::time::timeout(T, up.eof.recv())
        .await
        .expect("the upstream connection stayed open after the relay stopped")
        .unwrap();
}

/// Allows every cached read (this relay caches nothing; only its authorize mode matters here).
struct AllowAll;

impl repocache_relay::CallerCheck for AllowAll {
    fn check<'a>(
        &'a self,
        _bearer_token: Option<&'a str>,
        _read: repocache_relay::gate::Read<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), http::Response<Bytes>>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn with_authorize_an_upgrade_carries_the_callers_own_token() {
    repocache_test_support::init_tracing();
    let up = upstream().await;
    let mut config = kube::Config::new(up.url.parse().unwrap());
    config.default_retry = false;
    let relay = Relay::builder(kube::Client::try_from(config).unwrap())
        .authorize(AllowAll)
        .start()
        .await
        .unwrap();
    let (mut conn, head) = open(&relay, "/echo").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert_eq!(read_exactly(&mut conn, 6).await, "hello\n");
    let seen = up.authorization.lock().unwrap().clone();
    assert_eq!(seen, vec![Some("Bearer caller-secret".to_owned())]);
}
