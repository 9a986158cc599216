//! The install scenario: how Glasskube reads repositories while it resolves dependencies, run
//! against any [`Reads`] (uncached API calls, or repocache).
//!
//! Installing one package:
//! 1. LIST PackageRepositories (find the default repository and the package's repository);
//! 2. GET the package's PackageInfo (its manifest lists its dependencies);
//! 3. for every dependency of a package resolved at depth < `depth`: LIST PackageRepositories
//!    twice (the default repository; the versions on offer) and GET the dependency's
//!    repository; a dependency not yet part of this install is installed too: GET its
//!    PackageInfo, and resolve its own dependencies one level deeper.
//!
//! Each install starts afresh (like separate `glasskube install` runs).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use glasskube_api::{PackageInfo, PackageRepository};
use serde_json::Value;

use super::catalogue::{Catalogue, info_name};

/// The reads an install makes.
pub trait Reads {
    /// Every PackageRepository.
    fn list_repositories(
        &self,
    ) -> impl Future<Output = anyhow::Result<Vec<Arc<PackageRepository>>>>;
    /// One PackageRepository.
    fn get_repository(
        &self,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<Arc<PackageRepository>>>>;
    /// One PackageInfo.
    fn get_package_info(
        &self,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<Arc<PackageInfo>>>>;
}

/// One package an install put in place, and where from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// Repository name.
    pub repository: String,
    /// Repository URL.
    pub url: String,
}

/// A dependency entry of a manifest.
struct Dependency {
    name: String,
    version: String,
    repository: Option<String>,
}

fn dependencies(info: &PackageInfo) -> Vec<Dependency> {
    let deps = info
        .status
        .as_ref()
        .and_then(|s| s.manifest.as_ref())
        .and_then(|m| m.get("dependencies"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    deps.iter()
        .filter_map(|d| {
            Some(Dependency {
                name: d.get("name")?.as_str()?.to_owned(),
                version: d.get("version")?.as_str()?.to_owned(),
                repository: d
                    .get("repository")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

fn default_repository(repos: &[Arc<PackageRepository>]) -> anyhow::Result<String> {
    repos
        .iter()
        .find(|r| r.is_default())
        .and_then(|r| r.metadata.name.clone())
        .ok_or_else(|| anyhow!("no default PackageRepository"))
}

fn installed(info: &PackageInfo, repo: &PackageRepository) -> Installed {
    Installed {
        package: info.spec.name.clone(),
        version: info.spec.version.clone().unwrap_or_default(),
        repository: repo.metadata.name.clone().unwrap_or_default(),
        url: repo.spec.url.clone(),
    }
}

/// Installs package `name`@`version`, resolving dependencies `depth` levels deep; calls
/// `on_read` after every read.
pub async fn install(
    reads: &impl Reads,
    name: &str,
    version: &str,
    depth: usize,
    on_read: &(dyn Fn() + Sync),
) -> anyhow::Result<Vec<Installed>> {
    let repos = reads.list_repositories().await?;
    on_read();
    let default = default_repository(&repos)?;
    let info = reads
        .get_package_info(&info_name(name, version))
        .await?
        .with_context(|| format!("package {name} {version} not found"))?;
    on_read();
    let repo_name = info.repository_name().unwrap_or(&default).to_owned();
    let repo = repos
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(repo_name.as_str()))
        .with_context(|| format!("repository {repo_name} of {name} not found"))?;
    let mut result = vec![installed(&info, repo)];
    let mut seen = BTreeSet::from([name.to_owned()]);
    let mut queue = VecDeque::from([(info, 0usize)]);
    while let Some((info, level)) = queue.pop_front() {
        if level >= depth {
            continue;
        }
        for dep in dependencies(&info) {
            let repos = reads.list_repositories().await?;
            on_read();
            let default = default_repository(&repos)?;
            let _versions = reads.list_repositories().await?;
            on_read();
            let repo_name = dep.repository.clone().unwrap_or(default);
            let repo = reads
                .get_repository(&repo_name)
                .await?
                .with_context(|| format!("repository {repo_name} of {} not found", dep.name))?;
            on_read();
            if seen.insert(dep.name.clone()) {
                let dep_info = reads
                    .get_package_info(&info_name(&dep.name, &dep.version))
                    .await?
                    .with_context(|| format!("package {} {} not found", dep.name, dep.version))?;
                on_read();
                result.push(installed(&dep_info, &repo));
                queue.push_back((dep_info, level + 1));
            }
        }
    }
    Ok(result)
}

/// The reads an install of catalogue package `index` makes, by (verb, resource), computed
/// from the catalogue alone: what the uncached run must send to the API server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// LISTs of packagerepositories.
    pub repository_lists: u64,
    /// GETs of packagerepositories.
    pub repository_gets: u64,
    /// GETs of packageinfos.
    pub package_info_gets: u64,
}

impl Expected {
    /// All reads.
    pub fn total(&self) -> u64 {
        self.repository_lists + self.repository_gets + self.package_info_gets
    }

    /// The reads of installing the first `packages` of `catalogue`, `depth` levels deep.
    pub fn of(catalogue: &Catalogue, packages: usize, depth: usize) -> Self {
        let mut expected = Expected::default();
        for root in 0..packages.min(catalogue.packages.len()) {
            expected.repository_lists += 1;
            expected.package_info_gets += 1;
            let mut seen = BTreeSet::from([root]);
            let mut queue = VecDeque::from([(root, 0usize)]);
            while let Some((i, level)) = queue.pop_front() {
                if level >= depth {
                    continue;
                }
                for &j in &catalogue.packages[i].dependencies {
                    expected.repository_lists += 2;
                    expected.repository_gets += 1;
                    if seen.insert(j) {
                        expected.package_info_gets += 1;
                        queue.push_back((j, level + 1));
                    }
                }
            }
        }
        expected
    }
}
