//! repocache keeps an always-current, lock-free, in-process cache of Kubernetes objects.
//!
//! It sits between the API server and the code that reads objects again and again (operators,
//! their reconcilers, and the tools around them). A [`reflector()`] task runs kube-runtime's
//! `watcher` (LIST + WATCH, with backoff) and feeds a [`Writer`], which applies each event to
//! persistent maps and publishes an immutable [`Snapshot`] through `arc-swap`. A [`Cache`] is the
//! read handle: [`Cache::get`], [`Cache::list`] and [`Cache::snapshot`] cost one atomic load
//! (for `get`, a relaxed one that checks the thread's pinned snapshot) plus lookups, take no lock, do no I/O, and never reach the API server once the first sync is
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

mod base_key;
mod bookmark;
pub mod cache;
pub mod cache_set;
mod change;
mod clock;
pub mod config;
pub mod controller;
#[cfg(feature = "debug")]
pub mod debug;
pub mod decode;
mod error;
#[cfg(feature = "glasskube")]
pub mod glasskube;
mod hasher;
pub mod index;
pub mod key;
pub mod layer;
pub(crate) mod line_guard;
mod live;
pub mod metrics;
mod ordered;
pub mod persist;
mod pin;
pub mod policy;
mod reader;
pub mod reflector;
mod shared;
pub mod snapshot;
mod state;
pub mod stats;
mod striped;
mod subscription;
mod tables;
pub mod writer;

// The names a user needs on day one; the rest live in the modules above
// (`repocache::stats::ApiReason`, `repocache::config::DEFAULT_MAX_LINE`, `repocache::layer::…`).
pub use cache::{Cache, unpin_thread};
pub use cache_set::{CacheSet, KindOptions};
pub use change::Change;
pub use config::CacheConfig;
pub use error::Error;
pub use metrics::Metrics;
pub use policy::{Read, ReadPolicy};
pub use reflector::{ReflectorBuilder, ReflectorHandle, reflector};
pub use snapshot::Snapshot;
pub use state::CacheState;
pub use stats::Stats;
pub use subscription::Subscription;
pub use writer::Writer;

/// The watcher event type a [`Writer`] applies (re-exported from kube-runtime).
pub use kube::runtime::watcher::Event;
