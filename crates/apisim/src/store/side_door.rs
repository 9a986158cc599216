//! Past the API (fault injection): raw lines, bytes and cut lines on the watch feed, and object
//! writes without an event or a history entry.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::{meta_mut, meta_str, now_rfc3339, set_rv, valid_name};
use super::{Feed, Store};
use crate::errors::ApiError;
use crate::resources::ResId;

impl Store {
    /// Send a raw line to open watches (fault injection).
    pub fn send_raw(&self, res: Option<ResId>, line: String) -> usize {
        self.feed
            .send(Feed::Raw {
                res,
                line,
                cut: false,
            })
            .unwrap_or(0)
    }

    /// Send bytes as they are to open watches of `res` (fault injection).
    pub fn send_bytes(&self, res: ResId, bytes: bytes::Bytes) -> usize {
        self.feed.send(Feed::Bytes { res, bytes }).unwrap_or(0)
    }

    /// Send the first part of a line to open watches of `res`, then end them (fault injection).
    pub fn send_cut(&self, res: ResId, line: String) -> usize {
        self.feed
            .send(Feed::Raw {
                res: Some(res),
                line,
                cut: true,
            })
            .unwrap_or(0)
    }

    /// Side door: create or replace an object without an event or history entry.
    pub fn side_put(&self, res: ResId, mut obj: Value) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                "Invalid value",
            ));
        }
        let ns = meta_str(&obj, "namespace").map(String::from);
        if def.namespaced && ns.is_none() {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.namespace",
                "Required value",
            ));
        }
        let key = Self::key(&def, ns.as_deref(), &name);
        let mut inner = self.inner.lock();
        let prev = inner.objects.get(res).and_then(|m| m.get(&key)).cloned();
        let uid = match prev.as_ref().and_then(|p| meta_str(p, "uid")) {
            Some(u) => u.to_string(),
            None => inner.uid(),
        };
        let rv = inner.bump();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(def.api_version()));
            o.insert("kind".into(), Value::String(def.kind.clone()));
        }
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), Value::String(uid));
        m.entry("creationTimestamp")
            .or_insert_with(|| Value::String(now_rfc3339()));
        m.entry("generation").or_insert(json!(1));
        if !def.namespaced {
            m.remove("namespace");
        }
        set_rv(&mut obj, rv);
        if let Some(o) = inner.objects.get_mut(res) {
            o.insert(key, Arc::new(obj.clone()));
        }
        Ok(obj)
    }

    /// Side door: delete without an event or history entry.
    pub fn side_delete(&self, res: ResId, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let key = Self::key(&def, ns, name);
        let mut inner = self.inner.lock();
        let gone = inner
            .objects
            .get_mut(res)
            .and_then(|m| m.remove(&key))
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        inner.bump();
        Ok(Arc::unwrap_or_clone(gone))
    }
}
