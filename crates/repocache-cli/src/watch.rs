//! `repocache watch` against a debug endpoint: one line per change, found by diffing consecutive
//! snapshots (by generation, then by resourceVersion per object). Against a cluster the command
//! follows the cache's subscription instead (`CacheView::changes`), which loses nothing.

use std::collections::BTreeMap;
use std::io::Write;

use repocache::debug::ViewChange;
use serde_json::Value;

use crate::verify::versions;

/// A change between two snapshots: the same record a local cache's subscription gives
/// (`CacheView::changes`), so that both ways print through [`print()`].
pub type Change = ViewChange;

/// Prints one change as `repocache watch` shows it.
pub fn print(out: &mut dyn Write, change: &Change) -> std::io::Result<()> {
    if change.event == "resynced" {
        writeln!(
            out,
            "# fell behind the cache; the lines that follow catch up"
        )
    } else {
        writeln!(
            out,
            "{:<8} {}   resourceVersion={}",
            change.event, change.key, change.resource_version
        )
    }
}

/// The changes from `before` to `after` (key → resourceVersion), in key order.
pub fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, rv) in after {
        match before.get(key) {
            None => changes.push(Change {
                event: "added",
                key: key.clone(),
                resource_version: rv.clone(),
            }),
            Some(old) if old != rv => changes.push(Change {
                event: "updated",
                key: key.clone(),
                resource_version: rv.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, rv) in before {
        if !after.contains_key(key) {
            changes.push(Change {
                event: "deleted",
                key: key.clone(),
                resource_version: rv.clone(),
            });
        }
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

/// Follows a cache: remembers its last objects and prints what changed.
#[derive(Debug, Default)]
pub struct Follower {
    generation: Option<u64>,
    known: BTreeMap<String, String>,
}

impl Follower {
    /// Starts from these objects (printed as nothing: they are the starting point).
    pub fn new(generation: u64, objects: &[Value]) -> Self {
        Self {
            generation: Some(generation),
            known: versions(objects),
        }
    }

    /// Whether a snapshot of `generation` may hold news.
    pub fn is_new(&self, generation: u64) -> bool {
        self.generation != Some(generation)
    }

    /// Takes the snapshot of `generation` and prints one line per change.
    pub fn update(
        &mut self,
        out: &mut dyn Write,
        generation: u64,
        objects: &[Value],
    ) -> std::io::Result<usize> {
        let now = versions(objects);
        let changes = diff(&self.known, &now);
        for change in &changes {
            print(out, change)?;
        }
        out.flush()?;
        self.known = now;
        self.generation = Some(generation);
        Ok(changes.len())
    }

    /// Objects known now.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no object is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn diff_reports_added_updated_and_deleted() {
        let before = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = map(&[("a", "1"), ("b", "7"), ("d", "8")]);
        let changes = diff(&before, &after);
        let events: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.event, c.key.as_str(), c.resource_version.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("updated", "b", "7"),
                ("deleted", "c", "3"),
                ("added", "d", "8")
            ]
        );
    }

    #[test]
    fn print_writes_a_change_line_and_a_resync_notice() {
        let mut out = Vec::new();
        let change = |event: &'static str, key: &str, rv: &str| Change {
            event,
            key: key.to_owned(),
            resource_version: rv.to_owned(),
        };
        print(&mut out, &change("updated", "ns/a", "7")).unwrap();
        print(&mut out, &change("resynced", "", "")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "updated  ns/a   resourceVersion=7\n\
             # fell behind the cache; the lines that follow catch up\n"
        );
    }
}
