//! `repocache verify`: compares what a cache holds with a live LIST and reports each drift.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use anyhow::{Context as _, bail};
use kube::Client;
use serde_json::Value;

use crate::kinds::Kind;
use crate::select::Selection;
use crate::table::align;

/// One difference between a cache and the server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drift {
    /// On the server, not in the cache.
    Missing {
        /// `name` or `namespace/name`.
        key: String,
        /// The server's resourceVersion.
        live_rv: String,
    },
    /// In the cache, no longer on the server.
    Extra {
        /// `name` or `namespace/name`.
        key: String,
        /// The cache's resourceVersion.
        cache_rv: String,
    },
    /// In both, at different resourceVersions.
    Mismatch {
        /// `name` or `namespace/name`.
        key: String,
        /// The cache's resourceVersion.
        cache_rv: String,
        /// The server's resourceVersion.
        live_rv: String,
    },
}

impl Drift {
    fn row(&self) -> Vec<String> {
        let (what, key, cache, live) = match self {
            Drift::Missing { key, live_rv } => ("missing", key, "-", live_rv.as_str()),
            Drift::Extra { key, cache_rv } => ("extra", key, cache_rv.as_str(), "-"),
            Drift::Mismatch {
                key,
                cache_rv,
                live_rv,
            } => ("resourceVersion", key, cache_rv.as_str(), live_rv.as_str()),
        };
        vec![
            what.to_owned(),
            key.clone(),
            cache.to_owned(),
            live.to_owned(),
        ]
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Missing { key, live_rv } => {
                write!(f, "missing from the cache: {key} (server rv {live_rv})")
            }
            Drift::Extra { key, cache_rv } => {
                write!(f, "extra in the cache: {key} (cache rv {cache_rv})")
            }
            Drift::Mismatch {
                key,
                cache_rv,
                live_rv,
            } => write!(f, "{key}: cache rv {cache_rv}, server rv {live_rv}"),
        }
    }
}

/// `namespace/name` (or `name`) → resourceVersion of each object.
pub fn versions(objects: &[Value]) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|o| {
            let field = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("");
            let key = match field("/metadata/namespace") {
                "" => field("/metadata/name").to_owned(),
                ns => format!("{ns}/{}", field("/metadata/name")),
            };
            (key, field("/metadata/resourceVersion").to_owned())
        })
        .collect()
}

/// Every difference between the cache's objects and the server's, in key order.
pub fn compare(cache: &[Value], live: &[Value]) -> Vec<Drift> {
    let cache = versions(cache);
    let live = versions(live);
    let mut drifts = Vec::new();
    for (key, live_rv) in &live {
        match cache.get(key) {
            None => drifts.push(Drift::Missing {
                key: key.clone(),
                live_rv: live_rv.clone(),
            }),
            Some(cache_rv) if cache_rv != live_rv => drifts.push(Drift::Mismatch {
                key: key.clone(),
                cache_rv: cache_rv.clone(),
                live_rv: live_rv.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, cache_rv) in &cache {
        if !live.contains_key(key) {
            drifts.push(Drift::Extra {
                key: key.clone(),
                cache_rv: cache_rv.clone(),
            });
        }
    }
    drifts.sort_by(|a, b| drift_key(a).cmp(drift_key(b)));
    drifts
}

fn drift_key(d: &Drift) -> &str {
    match d {
        Drift::Missing { key, .. } | Drift::Extra { key, .. } | Drift::Mismatch { key, .. } => key,
    }
}

/// A live, paginated LIST of `kind` in `selection`'s namespace (or all) with its selectors:
/// the objects (of its names, if any) and the list's resourceVersion.
///
/// With `at`, the LIST is of the state at exactly that resourceVersion
/// (`resourceVersionMatch=Exact`; the later pages follow the first one's snapshot); `Ok(None)`
/// when the server cannot serve it (410 Gone: older than its history, which on apisim is every
/// resourceVersion but the current one; 504: newer than its own). Without `at`: the latest state.
pub async fn live_list(
    client: &Client,
    kind: Kind,
    selection: &Selection,
    at: Option<&str>,
) -> anyhow::Result<Option<(Vec<Value>, String)>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let scope = match selection.namespace_for(kind) {
        Some(ns) => format!("namespaces/{}/", percent_encode(ns)),
        None => String::new(),
    };
    let mut selectors = String::new();
    if let Some(labels) = &selection.labels {
        selectors.push_str("&labelSelector=");
        selectors.push_str(&percent_encode(labels));
    }
    if let Some(fields) = &selection.fields {
        selectors.push_str("&fieldSelector=");
        selectors.push_str(&percent_encode(fields));
    }
    loop {
        let mut path = format!(
            "/apis/{}/{}/{scope}{}?limit=500{selectors}",
            kind.group(),
            kind.version(),
            kind.plural()
        );
        match (&token, at) {
            (Some(t), _) => {
                path.push_str("&continue=");
                path.push_str(&percent_encode(t));
            }
            (None, Some(rv)) => {
                path.push_str("&resourceVersionMatch=Exact&resourceVersion=");
                path.push_str(&percent_encode(rv));
            }
            (None, None) => {}
        }
        let request = http::Request::get(&path)
            .body(Vec::new())
            .context("cannot build the LIST request")?;
        let page: Result<Value, kube::Error> = client.request(request).await;
        if at.is_some()
            && token.is_none()
            && let Err(kube::Error::Api(status)) = &page
            && (status.code == 410 || status.code == 504)
        {
            return Ok(None);
        }
        let page = page.map_err(|e| match &e {
            kube::Error::Api(status) => anyhow::anyhow!(
                "the live LIST of {} failed: {} ({})",
                kind.plural(),
                status.message,
                status.code
            ),
            _ => anyhow::anyhow!(
                "the live LIST of {} failed: {}",
                kind.plural(),
                crate::source::unreachable(&e, "the server", "--kubeconfig or --context")
            ),
        })?;
        if let Some(Value::Array(page_items)) = page.get("items") {
            items.extend(page_items.iter().cloned());
        }
        let rv = page
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            items.retain(|o| selection.matches(kind, o));
            return Ok(Some((items, rv)));
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How a cache was compared with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// With a LIST at the cache's own resourceVersion: every difference is drift (an event the
    /// cache missed), none is lag.
    AtSameVersion,
    /// With the latest LIST, because the server keeps no state at the cache's resourceVersion
    /// (or the cache has none): a difference that persists over `--grace` is reported.
    Latest,
}

/// Prints the outcome of one comparison; returns whether the cache was in sync.
pub fn report(
    out: &mut dyn Write,
    kind: Kind,
    cache_rv: Option<&str>,
    cache_len: usize,
    live_rv: &str,
    drifts: &[Drift],
    compared: Compared,
) -> anyhow::Result<bool> {
    if compared == Compared::AtSameVersion {
        if drifts.is_empty() {
            writeln!(
                out,
                "in sync: {cache_len} {} in the cache match a live LIST at the same resourceVersion {live_rv}",
                kind.plural(),
            )?;
            return Ok(true);
        }
        write_drifts(out, drifts)?;
        writeln!(
            out,
            "drift: {} {} differ between the cache and a live LIST at the same resourceVersion {live_rv} (events the cache missed, not lag)",
            drifts.len(),
            kind.plural(),
        )?;
        return Ok(false);
    }
    if drifts.is_empty() {
        writeln!(
            out,
            "in sync: {cache_len} {} in the cache (resourceVersion {}) match a live LIST (resourceVersion {live_rv})",
            kind.plural(),
            cache_rv.unwrap_or("-"),
        )?;
        return Ok(true);
    }
    write_drifts(out, drifts)?;
    writeln!(
        out,
        "drift: {} {} differ between the cache (resourceVersion {}) and a live LIST (resourceVersion {live_rv})",
        drifts.len(),
        kind.plural(),
        cache_rv.unwrap_or("-"),
    )?;
    Ok(false)
}

fn write_drifts(out: &mut dyn Write, drifts: &[Drift]) -> std::io::Result<()> {
    let mut rows = vec![vec![
        "DRIFT".to_owned(),
        "NAME".to_owned(),
        "CACHE RV".to_owned(),
        "SERVER RV".to_owned(),
    ]];
    rows.extend(drifts.iter().map(Drift::row));
    out.write_all(align(&rows).as_bytes())
}

/// Fails when the cache has no objects to compare (the endpoint was asked without objects).
pub fn objects_of(report: &repocache::debug::CacheReport) -> anyhow::Result<&[Value]> {
    match &report.objects {
        Some(objects) => Ok(objects),
        None => bail!("the {} report carries no objects", report.kind),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(name: &str, rv: &str) -> Value {
        json!({"metadata": {"name": name, "resourceVersion": rv}})
    }

    #[test]
    fn finds_missing_extra_and_mismatched_objects() {
        let cache = [obj("a", "1"), obj("b", "2"), obj("c", "3")];
        let live = [obj("a", "1"), obj("b", "5"), obj("d", "6")];
        assert_eq!(
            compare(&cache, &live),
            vec![
                Drift::Mismatch {
                    key: "b".into(),
                    cache_rv: "2".into(),
                    live_rv: "5".into()
                },
                Drift::Extra {
                    key: "c".into(),
                    cache_rv: "3".into()
                },
                Drift::Missing {
                    key: "d".into(),
                    live_rv: "6".into()
                },
            ]
        );
        assert!(compare(&live, &live).is_empty());
    }

    #[test]
    fn continue_tokens_are_encoded() {
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
