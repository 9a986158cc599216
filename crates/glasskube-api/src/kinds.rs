//! The one list of Glasskube's kinds.
//!
//! Everything that needs "every Glasskube kind" takes it from here: [`crate::crd::all_crds`]
//! (and so the CRDs under `deploy/crds/`, which apisim registers and validates against), and the
//! `repocache` command (the names `KIND` accepts, the scope, the typed caches it starts). Adding a
//! kind is adding its type and one line to [`visit_kinds`] (see docs/ARCHITECTURE.md, "Adding a
//! kind").
//!
//! ```
//! use glasskube_api::kinds::{GlasskubeKind, KindVisitor, visit_kinds};
//! use kube::CustomResourceExt as _;
//!
//! struct Plurals(Vec<String>);
//! impl KindVisitor for Plurals {
//!     fn visit<K: GlasskubeKind>(&mut self) {
//!         self.0.push(K::crd().spec.names.plural);
//!     }
//! }
//! let mut plurals = Plurals(Vec::new());
//! visit_kinds(&mut plurals);
//! assert_eq!(plurals.0, ["packagerepositories", "packages", "clusterpackages", "packageinfos"]);
//! ```

use std::fmt::Debug;

use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Api, Client, CustomResourceExt, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ClusterPackage, Package, PackageInfo, PackageRepository};

/// A scope a Glasskube kind can have: how to build an [`Api`] of it.
pub trait KindScope {
    /// Whether objects of this scope live in namespaces.
    const NAMESPACED: bool;

    /// An [`Api`] over `namespace` (namespaced kinds only; `None`: every namespace).
    /// Cluster-scoped kinds ignore the namespace.
    fn api<K>(client: Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = Self, DynamicType = ()>;
}

impl KindScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;

    fn api<K>(client: Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = Self, DynamicType = ()>,
    {
        match namespace {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::all(client),
        }
    }
}

impl KindScope for ClusterResourceScope {
    const NAMESPACED: bool = false;

    fn api<K>(client: Client, _namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = Self, DynamicType = ()>,
    {
        Api::all(client)
    }
}

/// What every Glasskube kind is: a typed custom resource with a CRD, serializable, and cacheable
/// by repocache. Implemented for every type with these bounds.
pub trait GlasskubeKind:
    Resource<DynamicType = (), Scope: KindScope>
    + CustomResourceExt
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// An [`Api`] of the kind: over `namespace` for a namespaced kind (`None`: every
    /// namespace), cluster-wide for a cluster-scoped one.
    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        <Self::Scope as KindScope>::api(client, namespace)
    }
}

impl<K> GlasskubeKind for K where
    K: Resource<DynamicType = (), Scope: KindScope>
        + CustomResourceExt
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static
{
}

/// Something done once per Glasskube kind, with the kind's type: see [`visit_kinds`].
pub trait KindVisitor {
    /// Called once for each kind.
    fn visit<K: GlasskubeKind>(&mut self);
}

/// Calls `visitor` with every Glasskube kind, in a fixed order (the order of [`crate::crd::all_crds`]
/// and of the command's `--all`). The one list of kinds.
pub fn visit_kinds(visitor: &mut impl KindVisitor) {
    visitor.visit::<PackageRepository>();
    visitor.visit::<Package>();
    visitor.visit::<ClusterPackage>();
    visitor.visit::<PackageInfo>();
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scopes(Vec<(String, bool)>);

    impl KindVisitor for Scopes {
        fn visit<K: GlasskubeKind>(&mut self) {
            let namespaced = <K::Scope as KindScope>::NAMESPACED;
            self.0.push((K::kind(&()).into_owned(), namespaced));
        }
    }

    #[test]
    fn scopes_agree_with_the_crds() {
        let mut scopes = Scopes(Vec::new());
        visit_kinds(&mut scopes);
        let crds = crate::crd::all_crds();
        assert_eq!(scopes.0.len(), crds.len());
        for ((kind, namespaced), crd) in scopes.0.iter().zip(&crds) {
            assert_eq!(*kind, crd.spec.names.kind);
            assert_eq!(*namespaced, crd.spec.scope == "Namespaced", "{kind}");
        }
        assert_eq!(scopes.0[1], ("Package".to_owned(), true));
    }
}
