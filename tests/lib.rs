//! repocache's end-to-end test harness: the chaos harness ([`chaos`], behind the `chaos` binary
//! and `cargo xtask chaos`), [`cached_versions`], and the `PackageRepository` shorthands the
//! suites write and read with ([`repository`], [`url_of`]). The helpers every suite shares (an apisim
//! seeded with the fixtures, waiting on conditions, request-count baselines, quiet tracing) live
//! in `repocache-test-support`.

pub mod chaos;

/// The (name, resourceVersion) of every object in the cache's current snapshot, in its order:
/// what to compare with the server's objects to tell the cache converged.
pub fn cached_versions<K: kube::Resource>(cache: &repocache::Cache<K>) -> Vec<(String, String)> {
    cache
        .snapshot()
        .iter()
        .map(|o| {
            let meta = o.meta();
            (
                meta.name.clone().unwrap_or_default(),
                meta.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// A minimal `PackageRepository` manifest named `name` pointing at `url`, to create or replace
/// through apisim's control.
pub fn repository(name: &str, url: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageRepository",
        "metadata": {"name": name},
        "spec": {"url": url},
    })
}

/// The URL the cache holds for the repository `name`, if it holds it.
pub fn url_of(
    cache: &repocache::Cache<glasskube_api::PackageRepository>,
    name: &str,
) -> Option<String> {
    cache.get(name).map(|r| r.spec.url.clone())
}
