//! An example operator built on repocache: two kube-runtime controllers (Packages and
//! ClusterPackages) that read Glasskube's kinds from in-process caches instead of the API
//! server.
//!
//! In the data path it sits where a user's operator sits, at the reading end: repocache's
//! reflectors LIST and WATCH PackageRepositories, Packages and ClusterPackages once each (a
//! [`repocache::CacheSet`] with the [`repocache::glasskube`] presets); each controller's primary
//! objects come from its cache through [`repocache::controller::store_bridge`] (no second watch
//! per kind), and a PackageRepository change reaches the controllers through
//! [`repocache::controller::changed_objects`], mapped to exactly the packages that use the
//! repository by the package cache's `BY_REPOSITORY` index. The reconciler resolves a package's
//! repository (or the default repository) from the repository cache and writes one status
//! condition, `RepositoryReady`, with a merge patch on the `status` subresource — the only
//! request it ever makes, and only when the condition changed.
//!
//! ```text
//! API server ── LIST+WATCH ──▶ repocache caches ──▶ store_bridge / changed_objects ──▶ Controller
//!      ▲                                                                                 │
//!      └───────────────────────── PATCH …/status (when the condition changed) ◀── reconcile
//! ```
//!
//! Start it with [`run`] (until a shutdown future resolves) or [`Operator::start`] (tests hold
//! the handle and read [`Operator::context`]). `docs/OPERATOR.md` walks through the key lines.

pub mod condition;
pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod operator;
pub mod reconcile;

pub use condition::{CONDITION_TYPE, DesiredCondition, desired_condition, reason};
pub use config::Config;
pub use context::{Context, MapperEmission, Outcome, PackageKind, PackageRecord, PackageRef};
pub use error::Error;
pub use operator::{Operator, run};
pub use reconcile::{ManagedPackage, RepositoryMapper, error_policy, reconcile};
