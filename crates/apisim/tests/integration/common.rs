//! Test helpers: a tiny raw HTTP client (one connection per request) and a line reader for watches.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

pub const PR: &str = "/apis/packages.glasskube.dev/v1alpha1/packagerepositories";
pub const T: Duration = Duration::from_secs(10);

pub fn repo(name: &str, url: &str) -> Value {
    serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageRepository",
        "metadata": {"name": name},
        "spec": {"url": url}
    })
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    sender.send_request(req).await.unwrap()
}

/// One request; the whole body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Resp {
    tokio::time::timeout(T, async {
        let r = send(addr, method, path, content_type, body.to_vec()).await;
        let (parts, body) = r.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
    .expect("request timed out")
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    call(addr, Method::GET, path, None, b"").await
}

pub async fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Resp {
    call(
        addr,
        Method::POST,
        path,
        Some("application/json"),
        v.to_string().as_bytes(),
    )
    .await
}

/// An open watch: read events line by line.
pub struct Watch {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buf: Vec<u8>,
    ended: bool,
}

pub enum Line {
    Event(Value),
    Raw(String),
    End,
}

impl Watch {
    pub async fn open(addr: SocketAddr, path: &str) -> Watch {
        let r = tokio::time::timeout(T, send(addr, Method::GET, path, None, Vec::new()))
            .await
            .expect("watch open timed out");
        let (parts, body) = r.into_parts();
        Watch {
            status: parts.status,
            headers: parts.headers,
            body,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// Next line, or `Line::End` when the stream ends (cleanly or not). Panics after `T`.
    pub async fn next_line(&mut self) -> Line {
        self.next_line_within(T)
            .await
            .expect("no watch line within the timeout")
    }

    /// Next line within `d`; `None` if nothing arrived in time.
    pub async fn next_line_within(&mut self, d: Duration) -> Option<Line> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let s = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                return Some(match serde_json::from_str::<Value>(&s) {
                    Ok(v) => Line::Event(v),
                    Err(_) => Line::Raw(s),
                });
            }
            if self.ended {
                return Some(Line::End);
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Next event (JSON line), skipping bookmarks unless `bookmarks` is true.
    pub async fn next_event(&mut self, bookmarks: bool) -> Value {
        loop {
            match self.next_line().await {
                Line::Event(v) if !bookmarks && v["type"] == "BOOKMARK" => continue,
                Line::Event(v) => return v,
                Line::Raw(s) => panic!("unexpected raw line {s:?}"),
                Line::End => panic!("watch ended unexpectedly"),
            }
        }
    }

    /// Bytes received after the last complete line (a line cut in the middle).
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }

    /// Wait for the end of the stream, skipping bookmarks; panics on other lines.
    pub async fn expect_end(&mut self) {
        loop {
            match self.next_line().await {
                Line::End => return,
                Line::Event(v) if v["type"] == "BOOKMARK" => continue,
                Line::Event(v) => panic!("expected end of stream, got {v}"),
                Line::Raw(s) => panic!("expected end of stream, got {s:?}"),
            }
        }
    }
}

pub fn name_of(ev: &Value) -> &str {
    ev["object"]["metadata"]["name"].as_str().unwrap_or("")
}

pub fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

pub use repocache_test_support::eventually;
