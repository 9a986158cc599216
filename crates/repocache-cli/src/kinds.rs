//! The kinds the command knows, the names `KIND` accepts for them, and their typed caches.
//!
//! Nothing here names a kind: the table is built once from glasskube-api's one list
//! ([`glasskube_api::kinds::visit_kinds`]), each kind's names, short names and scope from its
//! CRD (`kube::CustomResourceExt::crd()`), its version from `kube::Resource`.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use glasskube_api::kinds::{GlasskubeKind, KindVisitor, visit_kinds};
use kube::Client;
use kube::runtime::watcher;
use repocache::debug::CacheView;
use repocache::persist::Persist;
use repocache::{ReflectorBuilder, ReflectorHandle};

/// Starts a cache of one kind: client, namespace (namespaced kinds; `None`: all), watcher config,
/// and where it keeps its warm-start file (if anywhere).
type StartFn =
    fn(Client, Option<&str>, watcher::Config, Option<Persist>) -> (CacheView, ReflectorHandle);

/// What the command knows of one kind.
struct KindInfo {
    kind: String,
    plural: String,
    singular: String,
    short_names: Vec<String>,
    group: String,
    version: String,
    namespaced: bool,
    start: StartFn,
}

fn start<K: GlasskubeKind>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    persist: Option<Persist>,
) -> (CacheView, ReflectorHandle) {
    let mut builder = ReflectorBuilder::new(K::api(client, namespace)).watcher_config(config);
    if let Some(persist) = persist {
        builder = builder.persist(persist);
    }
    let (cache, handle) = builder.start();
    (CacheView::new(&cache), handle)
}

struct Table(Vec<KindInfo>);

impl KindVisitor for Table {
    fn visit<K: GlasskubeKind>(&mut self) {
        let crd = K::crd();
        let names = crd.spec.names;
        self.0.push(KindInfo {
            singular: names
                .singular
                .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
            kind: names.kind,
            plural: names.plural,
            short_names: names.short_names.unwrap_or_default(),
            group: crd.spec.group,
            version: K::version(&()).into_owned(),
            namespaced: crd.spec.scope == "Namespaced",
            start: start::<K>,
        });
    }
}

static KINDS: LazyLock<Vec<KindInfo>> = LazyLock::new(|| {
    let mut table = Table(Vec::new());
    visit_kinds(&mut table);
    table.0
});

/// One of the kinds the command knows (every Glasskube kind); a small copyable handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(usize);

impl Kind {
    fn info(self) -> &'static KindInfo {
        &KINDS[self.0]
    }

    /// Every kind, in the order `--all` dumps them.
    pub fn all() -> Vec<Kind> {
        (0..KINDS.len()).map(Kind).collect()
    }

    /// The kind of the type `K`, if it is one of the command's kinds.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Option<Kind> {
        let name = K::kind(&());
        KINDS.iter().position(|k| k.kind == name).map(Kind)
    }

    /// The kind's name, e.g. `PackageRepository`.
    pub fn name(self) -> &'static str {
        &self.info().kind
    }

    /// The resource's plural, e.g. `packagerepositories`.
    pub fn plural(self) -> &'static str {
        &self.info().plural
    }

    /// The resource's singular, e.g. `packagerepository`.
    pub fn singular(self) -> &'static str {
        &self.info().singular
    }

    /// The short names, e.g. `["pkg"]`.
    pub fn short_names(self) -> &'static [String] {
        &self.info().short_names
    }

    /// The first short name, if the kind has one.
    pub fn short(self) -> Option<&'static str> {
        self.short_names().first().map(String::as_str)
    }

    /// The API group, e.g. `packages.glasskube.dev`.
    pub fn group(self) -> &'static str {
        &self.info().group
    }

    /// The API version served, e.g. `v1alpha1`.
    pub fn version(self) -> &'static str {
        &self.info().version
    }

    /// Whether objects of the kind live in namespaces.
    pub fn namespaced(self) -> bool {
        self.info().namespaced
    }

    /// Starts a (not yet synced) cache of the kind: over `namespace` for a namespaced kind
    /// (`None`: every namespace), with `config`'s selectors.
    pub fn start_cache(
        self,
        client: Client,
        namespace: Option<&str>,
        config: watcher::Config,
        persist: Option<Persist>,
    ) -> (CacheView, ReflectorHandle) {
        (self.info().start)(client, namespace, config, persist)
    }

    /// Every name `KIND` accepts, for error messages and `--help`.
    pub fn accepted_names() -> String {
        Kind::all()
            .into_iter()
            .map(|k| match k.short_names() {
                [] => k.plural().to_owned(),
                shorts => format!("{} ({})", k.plural(), shorts.join(", ")),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `KIND` named no kind the command knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kind {:?}: expected one of {}",
            self.0,
            Kind::accepted_names()
        )
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the plural, the singular, the kind's name and the short names, each optionally
    /// followed by `.<group>` (as kubectl: `packages.packages.glasskube.dev`), case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, group) = match lower.split_once('.') {
            Some((name, group)) => (name, Some(group)),
            None => (lower.as_str(), None),
        };
        Kind::all()
            .into_iter()
            .find(|k| {
                group.is_none_or(|g| g == k.group())
                    && (name == k.plural()
                        || name == k.singular()
                        || name == k.name().to_ascii_lowercase()
                        || k.short_names().iter().any(|s| s == name))
            })
            .ok_or_else(|| UnknownKind(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use glasskube_api::{ClusterPackage, Package, PackageInfo, PackageRepository};
    use kube::CustomResourceExt as _;

    use super::*;

    #[test]
    fn the_table_is_the_crds() {
        let crds = glasskube_api::crd::all_crds();
        assert_eq!(Kind::all().len(), crds.len());
        for (kind, crd) in Kind::all().into_iter().zip(&crds) {
            assert_eq!(kind.name(), crd.spec.names.kind);
            assert_eq!(kind.plural(), crd.spec.names.plural);
            assert_eq!(kind.group(), crd.spec.group);
            assert_eq!(kind.namespaced(), crd.spec.scope == "Namespaced");
        }
        assert_eq!(
            Kind::of::<PackageRepository>().map(Kind::plural),
            Some("packagerepositories")
        );
        assert!(Kind::of::<Package>().is_some_and(Kind::namespaced));
        assert!(!Kind::of::<ClusterPackage>().is_some_and(Kind::namespaced));
        assert_eq!(
            Kind::of::<PackageInfo>().and_then(Kind::short),
            Some("pkgi")
        );
        assert_eq!(PackageInfo::crd().spec.names.plural, "packageinfos");
        assert_eq!(Kind::of::<k8s_openapi::api::core::v1::Namespace>(), None);
    }

    #[test]
    fn every_name_parses() {
        for kind in Kind::all() {
            let group = kind.group();
            let mut names = vec![
                kind.plural().to_owned(),
                kind.singular().to_owned(),
                kind.name().to_owned(),
                kind.name().to_ascii_lowercase(),
            ];
            names.extend(kind.short_names().iter().cloned());
            for name in names {
                assert_eq!(name.parse(), Ok(kind), "{name}");
                assert_eq!(
                    format!("{name}.{group}").parse(),
                    Ok(kind),
                    "{name}.{group}"
                );
            }
        }
        assert_eq!(
            "PackageRepositories".parse().map(Kind::name),
            Ok("PackageRepository")
        );
        assert_eq!("pkg".parse().map(Kind::name), Ok("Package"));
        assert_eq!("clpkg".parse().map(Kind::name), Ok("ClusterPackage"));
        assert!("packages.example.com".parse::<Kind>().is_err());
        let err = "repos".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("unknown kind \"repos\""), "{err}");
        assert!(err.contains("packageinfos (pkgi)"), "{err}");
    }
}
