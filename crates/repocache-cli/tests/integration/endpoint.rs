//! The debug endpoint's connection handling: no remote access without a token, a header-read
//! timeout, a request body limit and a connection cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use glasskube_api::PackageRepository;
use repocache::Writer;
use repocache::debug::{DebugError, DebugHandle, DebugServer};
use repocache_test_support::PATIENCE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::run::{assert_one_error_line, repocache};

/// Everything the server sends until it closes the connection (panics after PATIENCE).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("the server did not close the connection");
    // A reset counts as closed too.
    let _ = read;
    String::from_utf8_lossy(&raw).into_owned()
}

async fn request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn healthz(addr: SocketAddr) -> String {
    request(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
}

async fn endpoint(
    configure: impl FnOnce(repocache::debug::DebugServerBuilder) -> repocache::debug::DebugServerBuilder,
) -> DebugHandle {
    let cache = Writer::<PackageRepository>::new().cache();
    configure(DebugServer::builder().cache(&cache))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn remote_access_needs_a_token() {
    let cache = Writer::<PackageRepository>::new().cache();
    let err = DebugServer::builder()
        .cache(&cache)
        .allow_remote(true)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, DebugError::RemoteWithoutToken), "{err}");
    assert!(err.to_string().contains("token"), "{err}");
    // With a token it starts (on loopback here: tests never listen beyond 127.0.0.0/8).
    let handle = DebugServer::builder()
        .cache(&cache)
        .allow_remote(true)
        .token("t0k3n")
        .start()
        .await
        .unwrap();
    assert!(
        healthz(handle.local_addr())
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() {
    let debug = endpoint(|b| b.header_read_timeout(Duration::from_millis(300))).await;
    let addr = debug.local_addr();
    // Half a request, then nothing: the server must close the connection without answering
    // a request (hyper may say 408 first).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /debug/caches HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A client that trickles its headers (one byte every 20 ms, never ending them) is cut off
    // as well: the timeout covers the whole head, not the gap between bytes.
    let trickle = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = trickle.into_split();
    let dripping = tokio::spawn(async move {
        writer
            .write_all(b"GET /debug/caches HTTP/1.1\r\nX-Slow: ")
            .await?;
        loop {
            writer.write_all(b"a").await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, reader.read_to_end(&mut raw))
        .await
        .expect("the server did not cut off the trickling client")
        .ok();
    let answer = String::from_utf8_lossy(&raw);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    dripping.abort();
    // A connection that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let answer = read_until_closed(&mut silent).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A prompt client is served. Its head is one write right after connecting, but a machine
    // that stalls this process for 300 ms in between would get it cut off as well: the test
    // waits for a prompt client to be served (PATIENCE backstop), not for the first one.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer = healthz(addr).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a prompt client is never served: {answer}"
        );
    }
}

#[tokio::test]
async fn a_request_body_beyond_the_limit_gets_413() {
    let debug = endpoint(|b| b.max_request_body(1024)).await;
    let addr = debug.local_addr();
    let big = vec![b'x'; 4096];
    let mut raw = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n".to_vec();
    raw.extend_from_slice(&big);
    let answer = request(addr, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Chunked, without a length up front: counted as it arrives.
    let mut chunked = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&big[..1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = request(addr, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Within the limit: served.
    let answer = request(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_connection_beyond_the_cap_gets_503_and_a_freed_slot_is_reused() {
    let debug = endpoint(|b| {
        b.max_connections(2)
            .header_read_timeout(Duration::from_secs(120))
    })
    .await;
    let addr = debug.local_addr();
    // Two connections hold both slots (a keep-alive request each proves they were accepted).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    let answer = healthz(addr).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    // Closing one frees its slot (once the server has seen the close).
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer = healthz(addr).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_demo_refuses_remote_access_without_a_token() {
    let run = repocache(&["demo", "--debug-addr", "127.0.0.1:0", "--allow-remote"]).await;
    assert_one_error_line(
        &run,
        "--allow-remote needs a token: pass --token or set REPOCACHE_TOKEN",
    );
}

#[tokio::test]
async fn error_messages_mask_the_userinfo_of_an_endpoint_url() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://admin:endpoint-pw-Vb27@127.0.0.1:{port}");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_repocache"))
        .args(["dump", "--endpoint", &url])
        .env_remove("REPOCACHE_TOKEN")
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("http://<redacted>@127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("endpoint-pw-Vb27") && !stderr.contains("admin"),
        "{stderr}"
    );
}
