//! apisim is an embedded, simulated Kubernetes API server. It speaks the real list/watch wire
//! protocol over HTTP (discovery, GET/LIST/WATCH/POST/PUT/PATCH/DELETE, the `status` subresource,
//! resourceVersions, pagination, selectors, bookmarks, streaming lists, `Status` errors; for a
//! registered core `Pod`, `exec` over WebSocket with built-in commands), so that
//! kube-rs clients, kube-runtime's `watcher` and kubectl can talk to it unchanged. In repocache's
//! data path it stands where kube-apiserver stands: the reflector's LIST and WATCH requests, the
//! bypass reads and the CLI's requests all go to it in the demo, the tests and the benchmarks,
//! because no real API server can run on our machines. On top of the protocol it records every
//! request (for asserting "no second LIST" and the like) and injects faults (closed, stalled or
//! corrupted watches, failing or slow requests, compaction, restarts, silently missed events).
//!
//! Start one with [`Server::start`]; the returned [`ServerHandle`] carries the URL, a ready
//! `kube::Client`, a kubeconfig writer and (through [`Control`]) accounting and faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apisim::Error> {
//! let yaml = "apiVersion: packages.glasskube.dev/v1alpha1\nkind: PackageRepository\nmetadata: {name: glasskube}\nspec: {url: https://example.org}\n";
//! let server = apisim::Server::start(apisim::ServerConfig::default().with_seed_yaml(yaml)?).await?;
//! let client = server.client();
//! # let _ = client;
//! assert_eq!(server.count("list", "packagerepositories"), 0);
//! # Ok(()) }
//! ```

pub mod accounting;
pub mod discovery;
pub mod errors;
pub mod faults;
mod handlers;
mod listen;
mod openapi;
pub mod policy;
pub mod resources;
pub mod seed;
mod server;
mod store;
mod validation;
pub mod watch;

pub use accounting::{RequestRecord, VERB_CONTROL, VERB_DISCOVERY};
pub use errors::{ApiError, Error, Reason};
pub use faults::{FailSpec, Fault, FaultOutcome, LatencySpec};
pub use listen::Server;
pub use policy::Policy;
pub use resources::{CrdError, ResourceDef};
pub use seed::load_seed_yaml;
pub use server::{Control, ServerConfig, ServerHandle, StateSummary};
pub use store::EventType;
