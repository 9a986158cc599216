//! Glasskube's four kinds, the names `--kind` accepts for them, and their typed caches.

use std::fmt;
use std::str::FromStr;

/// One of Glasskube's kinds (group `packages.glasskube.dev`, version `v1alpha1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `packagerepositories` (cluster-scoped).
    PackageRepository,
    /// `packages`, short `pkg` (namespaced).
    Package,
    /// `clusterpackages`, short `clpkg` (cluster-scoped).
    ClusterPackage,
    /// `packageinfos`, short `pkgi` (cluster-scoped).
    PackageInfo,
}

impl Kind {
    /// Every kind, in the order `--all` dumps them.
    pub const ALL: [Kind; 4] = [
        Kind::PackageRepository,
        Kind::Package,
        Kind::ClusterPackage,
        Kind::PackageInfo,
    ];

    /// The kind's name, e.g. `PackageRepository`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PackageRepository => "PackageRepository",
            Kind::Package => "Package",
            Kind::ClusterPackage => "ClusterPackage",
            Kind::PackageInfo => "PackageInfo",
        }
    }

    /// The resource's plural, e.g. `packagerepositories`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::PackageRepository => "packagerepositories",
            Kind::Package => "packages",
            Kind::ClusterPackage => "clusterpackages",
            Kind::PackageInfo => "packageinfos",
        }
    }

    /// The short name, if the kind has one.
    pub fn short(self) -> Option<&'static str> {
        match self {
            Kind::PackageRepository => None,
            Kind::Package => Some("pkg"),
            Kind::ClusterPackage => Some("clpkg"),
            Kind::PackageInfo => Some("pkgi"),
        }
    }

    /// Whether objects of the kind live in namespaces.
    pub fn namespaced(self) -> bool {
        self == Kind::Package
    }

    /// Every name `--kind` accepts, for error messages and `--help`.
    pub fn accepted_names() -> String {
        Kind::ALL
            .iter()
            .map(|k| match k.short() {
                Some(short) => format!("{} ({short})", k.plural()),
                None => k.plural().to_owned(),
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

/// `--kind` named no Glasskube kind.
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

    /// Accepts the plural, the singular, the kind's name, the short name, and
    /// `<plural>.packages.glasskube.dev`, case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let name = lower
            .strip_suffix(".packages.glasskube.dev")
            .unwrap_or(&lower);
        Kind::ALL
            .into_iter()
            .find(|k| {
                name == k.plural()
                    || name == k.name().to_ascii_lowercase()
                    || k.short() == Some(name)
            })
            .ok_or_else(|| UnknownKind(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses() {
        for kind in Kind::ALL {
            assert_eq!(kind.plural().parse(), Ok(kind));
            assert_eq!(kind.name().parse(), Ok(kind));
            assert_eq!(kind.name().to_ascii_lowercase().parse(), Ok(kind));
            if let Some(short) = kind.short() {
                assert_eq!(short.parse(), Ok(kind));
            }
            assert_eq!(
                format!("{}.packages.glasskube.dev", kind.plural()).parse(),
                Ok(kind)
            );
        }
        assert_eq!("PackageRepositories".parse(), Ok(Kind::PackageRepository));
        let err = "repos".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("unknown kind \"repos\""), "{err}");
        assert!(err.contains("packageinfos (pkgi)"), "{err}");
    }
}
