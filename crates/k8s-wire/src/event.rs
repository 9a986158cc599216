//! Watch events on the wire: one JSON object per line, `{"type":…,"object":…}`.

use serde::{Deserialize, Serialize};

/// The `type` of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    /// An object was created (or entered the watch's selector).
    Added,
    /// An object changed.
    Modified,
    /// An object was deleted (or left the watch's selector).
    Deleted,
    /// A progress marker: the object carries only `metadata.resourceVersion` (and annotations).
    Bookmark,
    /// The watch failed: the object is a `Status`.
    Error,
}

impl EventType {
    /// The wire spelling: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        }
    }
}

/// A watch line that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("invalid watch event line: {0}")]
pub struct EventError(#[from] serde_json::Error);

/// One watch event, generic over the object's type (`serde_json::Value`, a typed kind, or a
/// struct that reads only what it needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent<T> {
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The object (a `Status` for [`EventType::Error`]).
    pub object: T,
}

impl<T: for<'de> Deserialize<'de>> WatchEvent<T> {
    /// Decodes one line (with or without its trailing newline).
    pub fn decode(line: &[u8]) -> Result<Self, EventError> {
        Ok(serde_json::from_slice(line)?)
    }
}

/// Encodes one watch line, `{"type":…,"object":…}\n`, in that order, as the API server writes it
/// (Go encodes struct fields in declaration order). Clients rely on it: serde's adjacently
/// tagged enums (kube's `WatchEvent`) decode the object directly only when the type comes first.
/// `event_type` is a string so that a test server can send types no client knows.
pub fn encode_line(event_type: &str, object: &serde_json::Value) -> String {
    let mut s = String::with_capacity(32);
    s.push_str("{\"type\":");
    s.push_str(&serde_json::Value::from(event_type).to_string());
    s.push_str(",\"object\":");
    s.push_str(&object.to_string());
    s.push_str("}\n");
    s
}
