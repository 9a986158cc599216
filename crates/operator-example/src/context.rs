//! [`Context`]: what every reconcile and mapper call shares — the client, the caches, the
//! settings — and what they record (reconciles per package, the packages a repository change
//! requeued), for tests and for the log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use glasskube_api::{ClusterPackage, Package, PackageRepository};
use kube::{Client, Resource};
use parking_lot::Mutex;
use repocache::Cache;

use crate::config::Config;

/// The two kinds the operator reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackageKind {
    /// A namespaced `Package`.
    Package,
    /// A cluster-scoped `ClusterPackage`.
    ClusterPackage,
}

impl PackageKind {
    /// `"Package"` or `"ClusterPackage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Package => "Package",
            Self::ClusterPackage => "ClusterPackage",
        }
    }
}

/// One package, of either kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageRef {
    /// Which kind.
    pub kind: PackageKind,
    /// The namespace (Packages only).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl PackageRef {
    /// A Package's reference.
    pub fn package(namespace: &str, name: &str) -> Self {
        Self {
            kind: PackageKind::Package,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A ClusterPackage's reference.
    pub fn cluster_package(name: &str) -> Self {
        Self {
            kind: PackageKind::ClusterPackage,
            namespace: None,
            name: name.to_owned(),
        }
    }

    /// The reference of `obj`, an object of kind `kind`.
    pub fn of<K: Resource>(kind: PackageKind, obj: &K) -> Self {
        Self {
            kind,
            namespace: obj.meta().namespace.clone(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }

    /// `namespace/name`, or `name` for a ClusterPackage.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.key())
    }
}

/// How one reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The condition was already as computed: nothing written.
    Unchanged,
    /// The condition was written (one status patch).
    Written,
    /// The patch met a newer version of the package (409): the watch brings that version and
    /// triggers the next reconcile.
    Conflict,
    /// The reconcile failed; the error policy retries it.
    Failed,
}

/// What the operator recorded about one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageRecord {
    /// Reconciles started.
    pub reconciles: u64,
    /// Status patches that succeeded.
    pub writes: u64,
    /// How the last finished reconcile ended.
    pub last: Option<Outcome>,
    /// Whether a reconcile of the package is running now.
    pub running: bool,
}

impl PackageRecord {
    /// Whether the package is settled: not being reconciled, and its last reconcile found the
    /// condition current (so every write's own watch event has come back and been reconciled).
    pub fn is_settled(&self) -> bool {
        !self.running && self.last == Some(Outcome::Unchanged)
    }
}

/// One call of a controller's repository mapper: a PackageRepository changed, and these
/// packages were requeued because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapperEmission {
    /// The controller whose mapper ran (it requeues packages of this kind only).
    pub controller: PackageKind,
    /// The repository that changed.
    pub repository: String,
    /// Its resourceVersion after the change.
    pub resource_version: Option<String>,
    /// Whether it is marked default now.
    pub is_default: bool,
    /// Whether it was marked default before the change (as far as the mapper saw).
    pub was_default: bool,
    /// The packages requeued.
    pub requeued: BTreeSet<PackageRef>,
}

/// Shared by every reconcile and mapper call of both controllers.
pub struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) repos: Cache<PackageRepository>,
    pub(crate) packages: Cache<Package>,
    pub(crate) cluster_packages: Cache<ClusterPackage>,
    records: Mutex<BTreeMap<PackageRef, PackageRecord>>,
    emissions: Mutex<Vec<MapperEmission>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("repos", &self.repos)
            .field("packages", &self.packages)
            .field("cluster_packages", &self.cluster_packages)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        client: Client,
        config: Config,
        repos: Cache<PackageRepository>,
        packages: Cache<Package>,
        cluster_packages: Cache<ClusterPackage>,
    ) -> Self {
        Self {
            client,
            config,
            repos,
            packages,
            cluster_packages,
            records: Mutex::new(BTreeMap::new()),
            emissions: Mutex::new(Vec::new()),
        }
    }

    /// The settings the operator runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The PackageRepository cache (indexed by URL and default-ness).
    pub fn repositories(&self) -> &Cache<PackageRepository> {
        &self.repos
    }

    /// The Package cache (indexed by repository).
    pub fn packages(&self) -> &Cache<Package> {
        &self.packages
    }

    /// The ClusterPackage cache (indexed by repository).
    pub fn cluster_packages(&self) -> &Cache<ClusterPackage> {
        &self.cluster_packages
    }

    /// Every package reconciled so far and what happened to it.
    pub fn records(&self) -> BTreeMap<PackageRef, PackageRecord> {
        self.records.lock().clone()
    }

    /// The number of reconciles started per package.
    pub fn reconcile_counts(&self) -> BTreeMap<PackageRef, u64> {
        self.records
            .lock()
            .iter()
            .map(|(k, r)| (k.clone(), r.reconciles))
            .collect()
    }

    /// Every mapper call so far, oldest first.
    pub fn mapper_emissions(&self) -> Vec<MapperEmission> {
        self.emissions.lock().clone()
    }

    pub(crate) fn reconcile_started(&self, package: &PackageRef) {
        let mut records = self.records.lock();
        let record = records.entry(package.clone()).or_default();
        record.reconciles += 1;
        record.running = true;
    }

    pub(crate) fn reconcile_ended(&self, package: &PackageRef, outcome: Outcome) {
        let mut records = self.records.lock();
        let record = records.entry(package.clone()).or_default();
        record.last = Some(outcome);
        record.running = false;
        if outcome == Outcome::Written {
            record.writes += 1;
        }
    }

    pub(crate) fn mapped(&self, emission: MapperEmission) {
        self.emissions.lock().push(emission);
    }
}
