//! Faults: the one [`Fault`] enum every control surface takes, and the fault state (failing and
//! slowing requests, and the signals that close, stall and restart open watches and connections).
//!
//! A fault is data: `Control::inject` applies it (one exhaustive match in server.rs), the HTTP
//! control API takes the same value as JSON at `POST /apisim/faults` (`{"fault": "closeWatches"}`,
//! `{"fault": "fail", "verb": "list", "code": 503}`), and the chaos schedule builds the same values.
//! Adding a fault is a variant here (with its entry in [`Fault::examples`]) and its arm in
//! `Control::inject`; the HTTP route and the surface test follow from them.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::errors::ApiError;

/// One fault to inject, as every control surface takes it: [`Control::inject`](crate::Control::inject),
/// `POST /apisim/faults` (this enum as JSON, tagged by `fault`, fields in camelCase) and the chaos
/// schedule. The older per-fault routes (`POST /apisim/faults/<name>`) and `Control`'s per-fault
/// methods are thin wrappers that build one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "fault",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Fault {
    /// Fail the next matching requests (see [`FailSpec`]; `code` must be 400–599).
    Fail(FailSpec),
    /// Delay matching requests (see [`LatencySpec`]).
    Latency(LatencySpec),
    /// End every open watch stream cleanly (the chunked response terminates).
    CloseWatches,
    /// Stall watches: connections stay open but nothing is sent (no events, no bookmarks) until
    /// `duration_ms` passes (`None`: until [`Fault::ReleaseWatches`]). Applies to watches opened
    /// while the stall is active too. Events are delivered after the stall ends, unless the watch
    /// fell more than `feed_capacity` events behind, in which case it is closed.
    StallWatches {
        /// How long the stall lasts, in milliseconds; `None` = until released.
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    /// End a stall.
    ReleaseWatches,
    /// Compact the history: every watch resuming from a resourceVersion before now gets
    /// 410 Expired, and every outstanding continue token expires.
    Compact,
    /// An API server restart: every connection drops (open watches included), the history and
    /// continue tokens are forgotten; the objects stay or are wiped. The counter continues.
    Restart {
        /// Keep the objects (default `true`).
        #[serde(default = "yes")]
        keep_objects: bool,
    },
    /// A line that is not JSON to every open watch (newlines in `line` become spaces).
    MalformedLine {
        /// The line; `{this is not json` when absent.
        #[serde(default)]
        line: Option<String>,
    },
    /// An arbitrary event to the open watches of `resource` (not stored, not in history).
    InjectEvent {
        /// The resource (plural, `plural.group`, singular or short name).
        resource: String,
        /// The event type (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR` or anything else).
        #[serde(rename = "type", default = "modified")]
        event_type: String,
        /// The event's object, as it is.
        object: Value,
    },
    /// A MODIFIED event whose object does not decode as the typed resource (its `spec.url` is a
    /// number, as for a broken PackageRepository) to the open watches of `resource`.
    Undecodable {
        /// The resource.
        resource: String,
    },
    /// Bytes to the open watches of `resource` exactly as given: no newline is added and they
    /// need not be UTF-8 (a line that is not UTF-8, a line longer than a client's limit, or the
    /// start of a line that never ends). In JSON, `bytes` is an array of numbers; the route
    /// `POST /apisim/faults/inject-bytes?resource=` takes them as the raw request body.
    InjectBytes {
        /// The resource.
        resource: String,
        /// The bytes (shared, not copied, on their way to the watches).
        #[serde(with = "bytes_as_numbers")]
        bytes: bytes::Bytes,
    },
    /// A watch line cut in the middle: the first half of the `event_type` event for `object`
    /// (no newline) to the open watches of `resource`, which then end, as a connection dropped
    /// mid-line would.
    CutLine {
        /// The resource.
        resource: String,
        /// The event type of the line that is cut (default `MODIFIED`).
        #[serde(rename = "type", default = "modified")]
        event_type: String,
        /// The event's object.
        object: Value,
    },
    /// Side door: create or replace `object` without notifying watches and without a history
    /// entry (a watch that silently missed an event). The resourceVersion counter still advances.
    SideDoorPut {
        /// The object (its `apiVersion` and `kind` pick the resource).
        object: Value,
    },
    /// Side door: delete without notifying watches.
    SideDoorDelete {
        /// The resource.
        resource: String,
        /// The namespace, for namespaced resources.
        #[serde(default)]
        namespace: Option<String>,
        /// The object's name.
        name: String,
    },
}

fn yes() -> bool {
    true
}

/// `bytes::Bytes` as a JSON array of numbers, like `Vec<u8>`.
mod bytes_as_numbers {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(bytes.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        Vec::<u8>::deserialize(d).map(bytes::Bytes::from)
    }
}

fn modified() -> String {
    "MODIFIED".to_owned()
}

impl Fault {
    /// The fault's name: its `fault` tag in JSON (`closeWatches`, `sideDoorPut`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Fail(_) => "fail",
            Fault::Latency(_) => "latency",
            Fault::CloseWatches => "closeWatches",
            Fault::StallWatches { .. } => "stallWatches",
            Fault::ReleaseWatches => "releaseWatches",
            Fault::Compact => "compact",
            Fault::Restart { .. } => "restart",
            Fault::MalformedLine { .. } => "malformedLine",
            Fault::InjectEvent { .. } => "injectEvent",
            Fault::Undecodable { .. } => "undecodable",
            Fault::InjectBytes { .. } => "injectBytes",
            Fault::CutLine { .. } => "cutLine",
            Fault::SideDoorPut { .. } => "sideDoorPut",
            Fault::SideDoorDelete { .. } => "sideDoorDelete",
        }
    }

    /// Checks what the types cannot: a failure's `code` is an HTTP error status.
    pub fn validate(&self) -> Result<(), ApiError> {
        match self {
            Fault::Fail(spec) if !(400..=599).contains(&spec.code) => Err(ApiError::bad_request(
                "code must be an HTTP error status (400-599)",
            )),
            _ => Ok(()),
        }
    }

    /// One example of every variant, against the Glasskube `packagerepositories` resource and an
    /// object named `a`: what the surface test injects over every control surface (it checks,
    /// with an exhaustive match, that no variant is missing here).
    pub fn examples() -> Vec<Fault> {
        const RES: &str = "packagerepositories";
        let object = |name: &str, url: &str| {
            json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
                   "metadata": {"name": name}, "spec": {"url": url}})
        };
        vec![
            Fault::Fail(FailSpec::new("list", RES, 503, 1)),
            Fault::Latency(LatencySpec {
                verb: Some("list".into()),
                resource: Some(RES.into()),
                latency_ms: 1,
                count: Some(1),
            }),
            Fault::CloseWatches,
            Fault::StallWatches { duration_ms: None },
            Fault::ReleaseWatches,
            Fault::Compact,
            Fault::Restart {
                keep_objects: false,
            },
            Fault::MalformedLine { line: None },
            Fault::InjectEvent {
                resource: RES.into(),
                event_type: "ADDED".into(),
                object: object("ghost", "https://ghost.example/"),
            },
            Fault::Undecodable {
                resource: RES.into(),
            },
            Fault::InjectBytes {
                resource: RES.into(),
                bytes: bytes::Bytes::from_static(b"\xff\xfe not utf-8\n"),
            },
            Fault::CutLine {
                resource: RES.into(),
                event_type: "MODIFIED".into(),
                object: object("a", "https://cut.example/"),
            },
            Fault::SideDoorPut {
                object: object("b", "https://side.example/"),
            },
            Fault::SideDoorDelete {
                resource: RES.into(),
                namespace: None,
                name: "a".into(),
            },
        ]
    }
}

/// What injecting a [`Fault`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultOutcome {
    /// The server's resourceVersion after the fault (for `Compact` and `Restart`: the one they
    /// bumped the counter to).
    pub resource_version: u64,
    /// For faults that act on open watches: how many they reached (for `CloseWatches` and
    /// `StallWatches`, how many were open).
    pub watches: Option<usize>,
    /// For side-door faults: the object as written, or as it was before the delete.
    pub object: Option<Value>,
}

impl FaultOutcome {
    /// The JSON answer of the HTTP control API:
    /// `{"ok": true, "resourceVersion": "<rv>", "watches": n, "object": {...}}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"ok": true, "resourceVersion": self.resource_version.to_string()});
        if let Some(n) = self.watches {
            v["watches"] = json!(n);
        }
        if let Some(o) = &self.object {
            v["object"] = o.clone();
        }
        v
    }
}

/// Fail the next `count` requests matching (`verb`, `resource`) with `code`.
///
/// JSON body of `POST /apisim/faults/fail`. `verb`/`resource` absent = any resource request
/// (discovery and control requests are only matched when `verb` names them explicitly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailSpec {
    /// Kubernetes verb to match (`get`, `list`, `watch`, …); `None` = any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource to match (`packagerepositories`, `packagerepositories/status`); `None` = any.
    #[serde(default)]
    pub resource: Option<String>,
    /// HTTP status to answer with (429, 500, 503, 504, …).
    pub code: u16,
    /// How many matching requests to fail (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `Retry-After` seconds (sent as header and `details.retryAfterSeconds`); default 1 for 429.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// Status message; a code-specific default when absent.
    #[serde(default)]
    pub message: Option<String>,
    /// Answer with an HTML error page (`text/html`, as a proxy or load balancer in front of the
    /// API server would) instead of a `Status` object.
    #[serde(default)]
    pub html: bool,
}

fn one() -> u32 {
    1
}

impl FailSpec {
    /// Fail the next `count` requests matching `verb`/`resource` (use `"*"` or `""` for any).
    pub fn new(verb: &str, resource: &str, code: u16, count: u32) -> Self {
        let any = |s: &str| (!s.is_empty() && s != "*").then(|| s.to_string());
        FailSpec {
            verb: any(verb),
            resource: any(resource),
            code,
            count,
            retry_after_seconds: None,
            message: None,
            html: false,
        }
    }

    /// Answer with an HTML error page instead of a `Status` object.
    pub fn html_page(mut self) -> Self {
        self.html = true;
        self
    }
}

/// A failure taken from the injector for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// The error (its code, message and `Retry-After`).
    pub error: ApiError,
    /// Render it as an HTML page instead of a `Status` object.
    pub html: bool,
}

/// Delay matching requests. JSON body of `POST /apisim/faults/latency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySpec {
    /// Kubernetes verb to match; `None` = any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource to match; `None` = any.
    #[serde(default)]
    pub resource: Option<String>,
    /// Added latency in milliseconds.
    pub latency_ms: u64,
    /// Apply to this many requests, then drop the rule; `None` = until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

/// The stall state of watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stall {
    pub active: bool,
    pub until: Option<Instant>,
}

impl Stall {
    pub fn stalled_now(&self) -> bool {
        self.active && self.until.is_none_or(|u| Instant::now() < u)
    }
}

/// All fault state.
pub(crate) struct Faults {
    fails: Mutex<Vec<FailSpec>>,
    latencies: Mutex<Vec<LatencySpec>>,
    /// Stall signal for watches.
    pub stall: watch::Sender<Stall>,
    /// Bumped to close every open watch stream.
    pub close_watches: watch::Sender<u64>,
    /// Bumped to drop every open connection (restart).
    pub drop_connections: watch::Sender<u64>,
}

fn matches(
    verb: &Option<String>,
    resource: &Option<String>,
    req_verb: &str,
    req_resource: &str,
    is_resource_request: bool,
) -> bool {
    if !is_resource_request && verb.is_none() {
        return false;
    }
    verb.as_deref().is_none_or(|v| v == req_verb)
        && resource.as_deref().is_none_or(|r| r == req_resource)
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fails: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            stall: watch::channel(Stall::default()).0,
            close_watches: watch::channel(0).0,
            drop_connections: watch::channel(0).0,
        }
    }
}

impl Faults {
    pub fn add_fail(&self, spec: FailSpec) {
        if spec.count > 0 {
            self.fails.lock().push(spec);
        }
    }

    pub fn add_latency(&self, spec: LatencySpec) {
        if spec.count != Some(0) {
            self.latencies.lock().push(spec);
        }
    }

    pub fn clear(&self) {
        self.fails.lock().clear();
        self.latencies.lock().clear();
        self.release();
    }

    /// Consume a failure for this request, if one matches.
    pub fn take_failure(
        &self,
        verb: &str,
        resource: &str,
        is_resource_request: bool,
    ) -> Option<Injected> {
        let mut fails = self.fails.lock();
        let idx = fails
            .iter()
            .position(|f| matches(&f.verb, &f.resource, verb, resource, is_resource_request))?;
        let f = fails.get_mut(idx)?;
        f.count = f.count.saturating_sub(1);
        let retry = f.retry_after_seconds.or((f.code == 429).then_some(1));
        let error = ApiError::injected(f.code, f.message.clone(), retry);
        let html = f.html;
        if f.count == 0 {
            fails.remove(idx);
        }
        Some(Injected { error, html })
    }

    /// Total latency to add to this request (consuming counted rules).
    pub fn take_latency(&self, verb: &str, resource: &str, is_resource_request: bool) -> Duration {
        let mut total = 0u64;
        let mut lats = self.latencies.lock();
        for l in lats.iter_mut() {
            if matches(&l.verb, &l.resource, verb, resource, is_resource_request) {
                total = total.saturating_add(l.latency_ms);
                if let Some(c) = l.count.as_mut() {
                    *c = c.saturating_sub(1);
                }
            }
        }
        lats.retain(|l| l.count != Some(0));
        Duration::from_millis(total)
    }

    pub fn pending_failures(&self) -> Vec<FailSpec> {
        self.fails.lock().clone()
    }

    pub fn latencies(&self) -> Vec<LatencySpec> {
        self.latencies.lock().clone()
    }

    pub fn stall_watches(&self, duration: Option<Duration>) {
        let until = duration.map(|d| Instant::now() + d);
        self.stall.send_replace(Stall {
            active: true,
            until,
        });
    }

    pub fn release(&self) {
        self.stall.send_replace(Stall::default());
    }

    pub fn close_watches(&self) {
        self.close_watches.send_modify(|g| *g += 1);
    }

    pub fn drop_connections(&self) {
        self.drop_connections.send_modify(|g| *g += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_n_then_stop() {
        let f = Faults::default();
        f.add_fail(FailSpec::new("list", "packagerepositories", 503, 2));
        assert!(f.take_failure("get", "packagerepositories", true).is_none());
        assert_eq!(
            f.take_failure("list", "packagerepositories", true)
                .map(|e| e.error.code),
            Some(503)
        );
        assert_eq!(
            f.take_failure("list", "packagerepositories", true)
                .map(|e| e.error.code),
            Some(503)
        );
        assert!(
            f.take_failure("list", "packagerepositories", true)
                .is_none()
        );
    }

    #[test]
    fn wildcard_skips_non_resource_requests() {
        let f = Faults::default();
        f.add_fail(FailSpec::new("*", "*", 500, 1));
        assert!(f.take_failure("discovery", "", false).is_none());
        assert!(f.take_failure("watch", "packages", true).is_some());
        let e = {
            f.add_fail(FailSpec::new("", "", 429, 1));
            f.take_failure("get", "x", true).unwrap()
        };
        assert_eq!(e.error.retry_after, Some(1));
        assert!(!e.html);
        f.add_fail(FailSpec::new("list", "", 502, 1).html_page());
        assert!(f.take_failure("list", "x", true).unwrap().html);
    }

    #[test]
    fn latency_counts_down() {
        let f = Faults::default();
        f.add_latency(LatencySpec {
            verb: Some("get".into()),
            resource: None,
            latency_ms: 50,
            count: Some(1),
        });
        assert_eq!(f.take_latency("list", "a", true), Duration::ZERO);
        assert_eq!(f.take_latency("get", "a", true), Duration::from_millis(50));
        assert_eq!(f.take_latency("get", "a", true), Duration::ZERO);
    }

    #[test]
    fn stall_expires() {
        let s = Stall {
            active: true,
            until: Some(Instant::now()),
        };
        assert!(!s.stalled_now());
        assert!(
            Stall {
                active: true,
                until: None
            }
            .stalled_now()
        );
    }
}
