//! Presets for Glasskube's kinds: the indexes an operator needs and the default repository.
//!
//! [`package_repositories`] caches PackageRepositories indexed by normalized URL ([`BY_URL`])
//! and by the default-repository annotation ([`BY_DEFAULT`]); [`packages`] and
//! [`cluster_packages`] index packages by the repository they use ([`BY_REPOSITORY`]; an empty
//! `repositoryName` is indexed under [`DEFAULT_REPOSITORY`]). [`RepositoryLookup`] answers
//! "which repository is the default" from a snapshot, with a typed error when several are marked.

use std::sync::Arc;

use glasskube_api::{ClusterPackage, Package, PackageRepository};

use crate::cache::Cache;
use crate::cache_set::KindOptions;
use crate::snapshot::Snapshot;

/// Errors of the Glasskube lookups (the generic [`crate::Error`] knows no Glasskube kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More than one PackageRepository is marked as the default repository.
    #[error("several default repositories are marked: {}", names.join(", "))]
    SeveralDefaults {
        /// The names of every repository marked default.
        names: Vec<String>,
    },
}

/// Index of PackageRepositories by [`normalize_url`] of `spec.url`.
pub const BY_URL: &str = "url";
/// Index of PackageRepositories marked default: the value `"true"`.
pub const BY_DEFAULT: &str = "default";
/// Index of Packages and ClusterPackages by `spec.packageInfo.repositoryName`.
pub const BY_REPOSITORY: &str = "repository";
/// The [`BY_REPOSITORY`] value of packages that name no repository (they use the default).
pub const DEFAULT_REPOSITORY: &str = "";

/// A URL in the form the [`BY_URL`] index keys by: scheme and host lowercased, the default
/// port for the scheme dropped, trailing slashes and any fragment removed.
///
/// `HTTPS://Packages.Example.com:443/glasskube/` and `https://packages.example.com/glasskube`
/// normalize alike.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let url = url.split('#').next().unwrap_or(url);
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), url),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(port) = default_port
        && authority.ends_with(port)
    {
        authority.truncate(authority.len() - port.len());
    }
    let path = path.trim_end_matches('/');
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

/// PackageRepositories, indexed by [`BY_URL`] and [`BY_DEFAULT`].
pub fn package_repositories() -> KindOptions<PackageRepository> {
    KindOptions::new().configure_cache(|c| {
        c.index_by(BY_URL, |r: &PackageRepository| {
            vec![normalize_url(&r.spec.url)]
        })
        .index_by(BY_DEFAULT, |r: &PackageRepository| {
            if r.is_default() {
                vec!["true".to_owned()]
            } else {
                Vec::new()
            }
        })
    })
}

/// Packages, indexed by [`BY_REPOSITORY`].
pub fn packages() -> KindOptions<Package> {
    KindOptions::new().configure_cache(|c| {
        c.index_by(BY_REPOSITORY, |p: &Package| {
            vec![p.repository_name().unwrap_or(DEFAULT_REPOSITORY).to_owned()]
        })
    })
}

/// ClusterPackages, indexed by [`BY_REPOSITORY`].
pub fn cluster_packages() -> KindOptions<ClusterPackage> {
    KindOptions::new().configure_cache(|c| {
        c.index_by(BY_REPOSITORY, |p: &ClusterPackage| {
            vec![p.repository_name().unwrap_or(DEFAULT_REPOSITORY).to_owned()]
        })
    })
}

/// Repository lookups on a PackageRepository snapshot or cache.
pub trait RepositoryLookup {
    /// The repository marked with the default-repository annotation; `Ok(None)` when none is,
    /// [`Error::SeveralDefaults`] when more than one is.
    fn default_repository(&self) -> Result<Option<Arc<PackageRepository>>, Error>;

    /// The repositories whose URL normalizes to the same as `url`.
    fn by_url(&self, url: &str) -> Vec<Arc<PackageRepository>>;

    /// The repository a package names, or the default repository when it names none.
    fn resolve(
        &self,
        repository_name: Option<&str>,
    ) -> Result<Option<Arc<PackageRepository>>, Error>;
}

impl RepositoryLookup for Snapshot<PackageRepository> {
    fn default_repository(&self) -> Result<Option<Arc<PackageRepository>>, Error> {
        let marked: Vec<&Arc<PackageRepository>> = match self.by_index(BY_DEFAULT, "true") {
            Some(objects) => objects.collect(),
            // A cache built without the preset: look at every object.
            None => self.iter().filter(|r| r.is_default()).collect(),
        };
        match marked.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(Arc::clone(one))),
            several => Err(Error::SeveralDefaults {
                names: several
                    .iter()
                    .map(|r| r.metadata.name.clone().unwrap_or_default())
                    .collect(),
            }),
        }
    }

    fn by_url(&self, url: &str) -> Vec<Arc<PackageRepository>> {
        let url = normalize_url(url);
        match self.by_index(BY_URL, &url) {
            Some(objects) => objects.cloned().collect(),
            None => self
                .iter()
                .filter(|r| normalize_url(&r.spec.url) == url)
                .cloned()
                .collect(),
        }
    }

    fn resolve(
        &self,
        repository_name: Option<&str>,
    ) -> Result<Option<Arc<PackageRepository>>, Error> {
        match repository_name.filter(|n| !n.is_empty()) {
            Some(name) => Ok(self.get(name).cloned()),
            None => self.default_repository(),
        }
    }
}

impl<F> RepositoryLookup for Cache<PackageRepository, F> {
    fn default_repository(&self) -> Result<Option<Arc<PackageRepository>>, Error> {
        self.snapshot().default_repository()
    }

    fn by_url(&self, url: &str) -> Vec<Arc<PackageRepository>> {
        self.snapshot().by_url(url)
    }

    fn resolve(
        &self,
        repository_name: Option<&str>,
    ) -> Result<Option<Arc<PackageRepository>>, Error> {
        self.snapshot().resolve(repository_name)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn urls_normalize_alike() {
        let same = [
            "https://packages.example.com/glasskube",
            "HTTPS://Packages.Example.com:443/glasskube/",
            "https://packages.example.com/glasskube//",
            "https://packages.example.com/glasskube#frag",
        ];
        for url in same {
            assert_eq!(
                normalize_url(url),
                "https://packages.example.com/glasskube",
                "{url}"
            );
        }
        assert_eq!(normalize_url("http://h:80/"), "http://h");
        assert_eq!(normalize_url("http://h:8080/x"), "http://h:8080/x");
        assert_ne!(normalize_url("https://h/a"), normalize_url("https://h/b"));
        assert_eq!(
            normalize_url("https://h/A"),
            "https://h/A",
            "paths keep their case"
        );
    }
}
