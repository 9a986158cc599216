//! The API writes (create, update, delete) and the seed: system metadata, preconditions,
//! finalizers, and the commit that makes a write, its resourceVersion and its event one step.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::{finalizers, meta_mut, meta_str, now_rfc3339, set_rv, spec_part, valid_name};
use super::{EventType, Inner, ObjKey, Store, WatchRecord};
use crate::errors::{ApiError, Reason};
use crate::resources::{ResId, ResourceDef};

/// Preconditions for a write (from DeleteOptions or the object itself).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl Store {
    /// Commits one write: the next resourceVersion, the stored object (or, for `Deleted`, its
    /// removal) and the watch event — one step under the lock, as etcd's revision and its event
    /// are. Returns the object as written.
    fn commit(
        &self,
        inner: &mut Inner,
        res: ResId,
        key: ObjKey,
        mut object: Value,
        kind: EventType,
        prev: Option<Value>,
    ) -> Value {
        let rv = inner.bump();
        set_rv(&mut object, rv);
        if let Some(objects) = inner.objects.get_mut(res) {
            if kind == EventType::Deleted {
                objects.remove(&key);
            } else {
                objects.insert(key, Arc::new(object.clone()));
            }
        }
        self.emit(
            inner,
            WatchRecord {
                rv,
                res,
                kind,
                object: object.clone(),
                prev,
            },
        );
        object
    }

    /// Insert a seed object as is (keeps status), filling in system metadata. No event.
    pub fn seed(&self, res: ResId, mut obj: Value) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain is required",
            ));
        }
        let ns = if def.namespaced {
            Some(meta_str(&obj, "namespace").unwrap_or("default").to_string())
        } else {
            None
        };
        let key = Self::key(&def, ns.as_deref(), &name);
        let uid = inner.uid();
        let rv = inner.bump();
        let m = meta_mut(&mut obj);
        if let Some(ns) = ns {
            m.insert("namespace".into(), Value::String(ns));
        } else {
            m.remove("namespace");
        }
        m.entry("uid").or_insert(Value::String(uid));
        m.entry("creationTimestamp")
            .or_insert_with(|| Value::String(now_rfc3339()));
        m.entry("generation").or_insert(json!(1));
        set_rv(&mut obj, rv);
        if let Some(o) = inner.objects.get_mut(res) {
            o.insert(key, Arc::new(obj.clone()));
        }
        inner.compacted_rv = inner.rv;
        Ok(obj)
    }

    /// Create (POST). `ns` is the namespace from the URL.
    pub fn create(
        &self,
        res: ResId,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let given = meta_str(&obj, "name").unwrap_or_default().to_string();
        let name = if given.is_empty() {
            match meta_str(&obj, "generateName") {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix = inner.generate_suffix();
                    format!("{prefix}{suffix}")
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        } else {
            given
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let ns = if def.namespaced {
            let body_ns = meta_str(&obj, "namespace").filter(|s| !s.is_empty());
            match (ns, body_ns) {
                (Some(u), Some(b)) if u != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(u), _) => Some(u.to_string()),
                (None, Some(b)) => Some(b.to_string()),
                (None, None) => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        &name,
                        "metadata.namespace",
                        "Required value",
                    ));
                }
            }
        } else {
            None
        };
        let key = Self::key(&def, ns.as_deref(), &name);
        if inner.objects.get(res).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let uid = inner.uid();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(def.api_version()));
            o.insert("kind".into(), Value::String(def.kind.clone()));
            if def.status_subresource {
                o.remove("status");
            }
        }
        let m = meta_mut(&mut obj);
        m.insert("name".into(), Value::String(name));
        match ns {
            Some(ns) => m.insert("namespace".into(), Value::String(ns)),
            None => m.remove("namespace"),
        };
        m.insert("uid".into(), Value::String(uid));
        m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
        ] {
            m.remove(f);
        }
        if dry_run {
            return Ok(obj);
        }
        Ok(self.commit(&mut inner, res, key, obj, EventType::Added, None))
    }

    /// Update (PUT / PATCH, main resource or `status`): `f` computes the desired object from the
    /// current one; system metadata, status (or everything but status) are then carried over.
    pub fn update_with(
        &self,
        res: ResId,
        ns: Option<&str>,
        name: &str,
        status_only: bool,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let key = Self::key(&def, ns, name);
        let cur = Self::existing(&inner, &def, res, &key, name)?;
        let new = f(&cur)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if let Some(av) = new.get("apiVersion").and_then(Value::as_str)
            && av != def.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        if let Some(k) = new.get("kind").and_then(Value::as_str)
            && k != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        let new_name = meta_str(&new, "name").unwrap_or(name);
        if new_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(bns) = meta_str(&new, "namespace").filter(|s| !s.is_empty())
            && Some(bns) != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let cur_rv = meta_str(&cur, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty())
            && rv != cur_rv
        {
            return Err(ApiError::conflict(&def.group, &def.plural, name));
        }
        let cur_uid = meta_str(&cur, "uid").unwrap_or_default().to_string();
        if let Some(uid) = meta_str(&new, "uid").filter(|s| !s.is_empty())
            && uid != cur_uid
        {
            return Err(ApiError::new(
                Reason::Conflict,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_uid}"
                ),
            )
            .with_details(json!({"name": name, "group": def.group, "kind": def.plural})));
        }

        let mut result = if status_only {
            let mut r = cur.clone();
            if let Some(o) = r.as_object_mut() {
                match new.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            r
        } else {
            let mut r = new;
            if let Some(o) = r.as_object_mut() {
                o.insert("apiVersion".into(), Value::String(def.api_version()));
                o.insert("kind".into(), Value::String(def.kind.clone()));
                if def.status_subresource {
                    match cur.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
            }
            // System metadata cannot be changed by an update.
            let cur_meta = cur.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let m = meta_mut(&mut r);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                match cur_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            r
        };

        // No new finalizers while deleting.
        let deleting = cur.pointer("/metadata/deletionTimestamp").is_some();
        let new_fins = finalizers(&result);
        if deleting {
            let old_fins = finalizers(&cur);
            if let Some(f) = new_fins.iter().find(|f| !old_fins.contains(f)) {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{f}\"]"
                    ),
                ));
            }
        }
        if !status_only
            && spec_part(&result, def.status_subresource) != spec_part(&cur, def.status_subresource)
        {
            let g = cur
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut result).insert("generation".into(), json!(g + 1));
        }
        if result == cur {
            // A no-op write: etcd skips it, no new resourceVersion, no event.
            return Ok(cur);
        }
        if dry_run {
            return Ok(result);
        }
        Ok(if deleting && new_fins.is_empty() {
            self.commit(&mut inner, res, key, result, EventType::Deleted, None)
        } else {
            self.commit(&mut inner, res, key, result, EventType::Modified, Some(cur))
        })
    }

    /// Delete (DELETE). With finalizers, marks the object deleting and returns it.
    pub fn delete(
        &self,
        res: ResId,
        ns: Option<&str>,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let key = Self::key(&def, ns, name);
        let cur = Self::existing(&inner, &def, res, &key, name)?;
        Self::check_preconditions(&def, &cur, name, pre)?;
        let fins = finalizers(&cur);
        if !fins.is_empty() {
            if cur.pointer("/metadata/deletionTimestamp").is_some() || dry_run {
                return Ok(cur);
            }
            let mut marked = cur.clone();
            let m = meta_mut(&mut marked);
            m.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(self.commit(&mut inner, res, key, marked, EventType::Modified, Some(cur)));
        }
        if dry_run {
            return Ok(cur);
        }
        Ok(self.commit(&mut inner, res, key, cur, EventType::Deleted, None))
    }

    fn check_preconditions(
        def: &ResourceDef,
        cur: &Value,
        name: &str,
        pre: &Preconditions,
    ) -> Result<(), ApiError> {
        let details = json!({"name": name, "group": def.group, "kind": def.plural});
        let cur_uid = meta_str(cur, "uid").unwrap_or_default();
        if let Some(uid) = &pre.uid
            && uid != cur_uid
        {
            return Err(ApiError::new(
                Reason::Conflict,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_uid}"
                ),
            )
            .with_details(details));
        }
        let cur_rv = meta_str(cur, "resourceVersion").unwrap_or_default();
        if let Some(rv) = &pre.resource_version
            && rv != cur_rv
        {
            return Err(ApiError::new(Reason::Conflict, format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {cur_rv}")).with_details(details));
        }
        Ok(())
    }
}
