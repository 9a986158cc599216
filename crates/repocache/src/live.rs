//! Live reads: the few requests a cache makes on a caller's behalf (policy fallbacks and the
//! `Fresh` bypass), with the same selectors as the cache's watch.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{ListParams, ObjectList};
use kube::core::Request;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::decode::object::Decoded;
use crate::error::Error;

/// How a cache reaches the API server for a live read.
#[derive(Clone)]
pub(crate) struct Live {
    client: Client,
    /// The cache's namespace restriction, if any.
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
}

impl Live {
    pub(crate) fn new(
        client: Client,
        namespace: Option<String>,
        label_selector: Option<String>,
        field_selector: Option<String>,
    ) -> Self {
        Self {
            client,
            namespace,
            label_selector,
            field_selector,
        }
    }

    /// What the cache's watch covers.
    pub(crate) fn scope(&self) -> CacheScope {
        CacheScope {
            namespace: self.namespace.clone(),
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
        }
    }

    /// One GET; `Ok(None)` when the server answers 404.
    pub(crate) async fn get<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<K>, Error>
    where
        K: Resource + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let url = K::url_path(&Default::default(), namespace);
        let request = Request::new(url)
            .get(name, &Default::default())
            .map_err(|e| Error::request::<K>(kube::Error::BuildRequest(e)))?;
        match self.client.request::<K>(request).await {
            Ok(obj) => Ok(Some(obj)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(err) => Err(Error::request::<K>(err)),
        }
    }

    /// The server's current resourceVersion, from one `LIST limit=1` of the kind (its list's
    /// `metadata.resourceVersion`; upstream serves a LIST without a resourceVersion as a
    /// consistent read). `None` when it is missing or not an integer.
    pub(crate) async fn current_version<K>(&self) -> Result<Option<u64>, Error>
    where
        K: Resource,
        K::DynamicType: Default,
    {
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(default)]
            metadata: kube::core::ListMeta,
        }
        let url = K::url_path(&Default::default(), self.namespace.as_deref());
        let params = ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: Some(1),
            ..ListParams::default()
        };
        let request = Request::new(url)
            .list(&params)
            .map_err(|e| Error::request::<K>(kube::Error::BuildRequest(e)))?;
        let head = self
            .client
            .request::<Head>(request)
            .await
            .map_err(Error::request::<K>)?;
        let rv = head.metadata.resource_version;
        debug!(
            resource_version = rv.as_deref().unwrap_or(""),
            "server's current version"
        );
        Ok(rv.and_then(|rv| rv.parse().ok()))
    }

    /// One LIST with the cache's selectors; objects that do not decode are skipped.
    pub(crate) async fn list<K>(&self) -> Result<Vec<Arc<K>>, Error>
    where
        K: Resource + DeserializeOwned + Debug + Clone,
        K::DynamicType: Default,
    {
        let url = K::url_path(&Default::default(), self.namespace.as_deref());
        let params = ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            ..ListParams::default()
        };
        let request = Request::new(url)
            .list(&params)
            .map_err(|e| Error::request::<K>(kube::Error::BuildRequest(e)))?;
        let list = self
            .client
            .request::<ObjectList<Decoded<K>>>(request)
            .await
            .map_err(Error::request::<K>)?;
        let mut out = Vec::with_capacity(list.items.len());
        for item in list.items {
            match item {
                Decoded::Valid(obj) => out.push(Arc::new(obj)),
                Decoded::Invalid(bad) => warn!(
                    object = bad.metadata.name.as_deref().unwrap_or("<unnamed>"),
                    error = %bad.error,
                    "listed object does not decode; skipped"
                ),
            }
        }
        debug!(objects = out.len(), "live list");
        Ok(out)
    }
}

/// Which objects of a kind a cache holds; see [`Cache::scope`](crate::Cache::scope).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheScope {
    /// Only objects in this namespace (`None`: all namespaces, or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// Only objects matching this label selector.
    pub label_selector: Option<String>,
    /// Only objects matching this field selector.
    pub field_selector: Option<String>,
}

impl CacheScope {
    /// Whether the cache holds only the objects matching a selector.
    pub fn is_selective(&self) -> bool {
        self.label_selector.is_some() || self.field_selector.is_some()
    }
}
