//! repocache keeps an always-current, lock-free, in-process cache of Kubernetes objects.
//!
//! It sits between the API server and the code that reads objects again and again (operators,
//! their reconcilers, and the tools around them). A [`reflector`] task runs kube-runtime's
//! `watcher` (LIST + WATCH, with backoff) and feeds a [`Writer`], which applies each event to
//! persistent maps and publishes an immutable [`Snapshot`] through `arc-swap`. A [`Cache`] is the
//! read handle: [`Cache::get`], [`Cache::list`] and [`Cache::snapshot`] cost one atomic load
//! plus lookups, take no lock, do no I/O, and never reach the API server once the first sync is
//! done.
//!
//! ```text
//! API server ── LIST+WATCH ──▶ reflector ──▶ Writer ── ArcSwap::store ──▶ Snapshot ◀── Cache reads
//! ```
//!
//! # Example
//!
//! ```no_run
//! use glasskube_api::PackageRepository;
//! use kube::{Api, Client, runtime::watcher};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::try_default().await?;
//! let (repos, _handle) = repocache::reflector(
//!     Api::<PackageRepository>::all(client),
//!     watcher::Config::default(),
//! );
//! repos.wait_ready(std::time::Duration::from_secs(30)).await?;
//! if let Some(repo) = repos.get("glasskube") {
//!     println!("{}", repo.spec.url);
//! }
//! for repo in repos.snapshot().iter() {
//!     println!("{}", repo.metadata.name.as_deref().unwrap_or_default());
//! }
//! # Ok(())
//! # }
//! ```

mod bookmark;
mod cache;
mod cache_set;
mod change;
mod clock;
mod config;
pub mod controller;
#[cfg(feature = "debug")]
pub mod debug;
pub mod decode;
mod error;
#[cfg(feature = "glasskube")]
pub mod glasskube;
mod hasher;
mod index;
mod key;
pub mod layer;
pub(crate) mod line_guard;
mod live;
mod metrics;
mod ordered;
mod policy;
mod reader;
mod reflector;
mod shared;
mod snapshot;
mod state;
mod stats;
mod striped;
mod subscription;
mod writer;

pub use cache::{Cache, Feed, Local, Watched};
pub use cache_set::{CacheSet, CacheSetBuilder, KindOptions};
pub use change::Change;
pub use config::{
    CacheConfig, DEFAULT_PUBLISH_INTERVAL, DEFAULT_SUBSCRIBER_BUFFER,
    DEFAULT_SUBSCRIBER_BUFFER_CHANGES, LAST_APPLIED_ANNOTATION, MAX_PUBLISH_INTERVAL, Transform,
    drop_managed_fields,
};
pub use decode::{Decoded, InvalidObject};
pub use error::Error;
pub use index::{IndexFn, Indexer};
pub use key::ObjectKey;
pub use line_guard::{DEFAULT_MAX_LINE, LineRejection, MIN_MAX_LINE};
pub use live::CacheScope;
pub use metrics::Metrics;
pub use policy::{DEFAULT_VERSION_WAIT, Read, ReadPolicy, Source};
pub use reader::Reader;
pub use reflector::{
    DEFAULT_LIST_TIMEOUT, DEFAULT_TTL, RESYNC_TTLS, ReflectorBuilder, ReflectorHandle, reflector,
};
pub use snapshot::{Iter, Snapshot};
pub use state::CacheState;
pub use stats::{ApiReason, DELAY_BUCKETS, DecodingMode, Delays, EventType, RelistReason, Stats};
pub use subscription::Subscription;
pub use writer::{Applied, Publish, Writer};

/// The watcher event type a [`Writer`] applies (re-exported from kube-runtime).
pub use kube::runtime::watcher::Event;
