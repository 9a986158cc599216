//! What `get`, `watch` and `verify` look at: a namespace (or all), label and field selectors,
//! and names, as kubectl's `-n`/`-A`, `-l`, `--field-selector` and `NAME…`.
//!
//! From a cluster the namespace and the selectors go to the server (the cache lists and watches
//! only what they select); from an `--endpoint` the same filters apply to the endpoint's objects
//! on the client side. Both use [`k8s_selectors`], the parser apisim and repocache use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_selectors::{FieldSelector, LabelSelector};
use repocache::debug::CacheReport;
use serde_json::Value;

use crate::kinds::Kind;

/// The objects a command selects.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The namespace of namespaced kinds; `None`: every namespace (`-A`). Cluster-scoped kinds
    /// ignore it, as kubectl does.
    pub namespace: Option<String>,
    /// `-l`, as typed (validated).
    pub labels: Option<String>,
    /// `--field-selector`, as typed (validated).
    pub fields: Option<String>,
    /// `NAME…`: only these objects (empty: all).
    pub names: Vec<String>,
    label_selector: Option<LabelSelector>,
    field_selector: Option<FieldSelector>,
}

impl Selection {
    /// A selection; fails with one line when a selector does not parse.
    pub fn new(
        namespace: Option<String>,
        labels: Option<String>,
        fields: Option<String>,
        names: Vec<String>,
    ) -> anyhow::Result<Self> {
        let label_selector = labels
            .as_deref()
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid label selector (-l): {e}"))?;
        let field_selector = fields
            .as_deref()
            .map(FieldSelector::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid field selector (--field-selector): {e}"))?;
        Ok(Self {
            namespace,
            labels,
            fields,
            names,
            label_selector,
            field_selector,
        })
    }

    /// The namespace that applies to `kind` (`None` for cluster-scoped kinds and `-A`).
    pub fn namespace_for(&self, kind: Kind) -> Option<&str> {
        if kind.namespaced() {
            self.namespace.as_deref()
        } else {
            None
        }
    }

    /// Whether `object` (of `kind`) is selected.
    pub fn matches(&self, kind: Kind, object: &Value) -> bool {
        let field = |p: &str| object.pointer(p).and_then(Value::as_str);
        self.matches_parts(
            kind,
            field("/metadata/name"),
            field("/metadata/namespace"),
            |key| {
                object
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
            },
        )
    }

    /// Whether an object (of `kind`) with this metadata is selected: the same answer as
    /// [`matches`](Self::matches) on the object's JSON, before it is serialized.
    pub fn matches_meta(&self, kind: Kind, meta: &ObjectMeta) -> bool {
        self.matches_parts(
            kind,
            meta.name.as_deref(),
            meta.namespace.as_deref(),
            |key| {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .map(String::as_str)
            },
        )
    }

    fn matches_parts<'a>(
        &self,
        kind: Kind,
        name: Option<&str>,
        namespace: Option<&str>,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> bool {
        if let Some(wanted) = self.namespace_for(kind)
            && namespace != Some(wanted)
        {
            return false;
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| Some(n.as_str()) == name) {
            return false;
        }
        if let Some(labels) = &self.label_selector
            && !labels.matches(label)
        {
            return false;
        }
        if let Some(fields) = &self.field_selector
            && !fields.matches(name, namespace)
        {
            return false;
        }
        true
    }

    /// Keeps the selected objects of each report (its header still describes the whole cache).
    pub fn filter(&self, reports: &mut [CacheReport]) {
        for report in reports {
            let Ok(kind) = report.kind.parse::<Kind>() else {
                continue;
            };
            if let Some(objects) = &mut report.objects {
                objects.retain(|o| self.matches(kind, o));
            }
        }
    }

    /// The `NAME`s no report holds: kubectl's `NotFound`, one message each.
    pub fn missing(&self, kind: Kind, reports: &[CacheReport]) -> Vec<String> {
        self.names
            .iter()
            .filter(|name| {
                !reports
                    .iter()
                    .flat_map(|r| r.objects.iter().flatten())
                    .any(|o| {
                        o.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str())
                    })
            })
            .map(|name| match self.namespace_for(kind) {
                Some(ns) => format!(
                    "{}.{} {name:?} not found in namespace {ns:?}",
                    kind.plural(),
                    glasskube_api::GROUP
                ),
                None => format!(
                    "{}.{} {name:?} not found",
                    kind.plural(),
                    glasskube_api::GROUP
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use glasskube_api::{Package, PackageInfo};
    use serde_json::json;

    use super::*;

    fn pkg() -> Kind {
        Kind::of::<Package>().unwrap()
    }

    fn pkgi() -> Kind {
        Kind::of::<PackageInfo>().unwrap()
    }

    #[test]
    fn namespace_labels_fields_and_names_select() {
        let a = json!({"metadata": {"name": "a", "namespace": "x", "labels": {"tier": "web"}}});
        let b = json!({"metadata": {"name": "b", "namespace": "y"}});
        let sel = Selection::new(Some("x".into()), None, None, vec![]).unwrap();
        assert!(sel.matches(pkg(), &a) && !sel.matches(pkg(), &b));
        // Cluster-scoped kinds ignore the namespace.
        assert!(sel.matches(pkgi(), &b));
        let sel = Selection::new(None, Some("tier=web".into()), None, vec![]).unwrap();
        assert!(sel.matches(pkg(), &a) && !sel.matches(pkg(), &b));
        let sel = Selection::new(None, None, Some("metadata.name!=a".into()), vec![]).unwrap();
        assert!(!sel.matches(pkg(), &a) && sel.matches(pkg(), &b));
        let sel = Selection::new(None, None, None, vec!["b".into()]).unwrap();
        assert!(!sel.matches(pkg(), &a) && sel.matches(pkg(), &b));
        assert!(Selection::new(None, Some("a in (".into()), None, vec![]).is_err());
        assert!(Selection::new(None, None, Some("spec.x=1".into()), vec![]).is_err());
    }
}
