//! repocache's end-to-end test harness: the chaos harness ([`chaos`], behind the `chaos` binary
//! and `cargo xtask chaos`) and [`cached_versions`]. The helpers every suite shares (an apisim
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
