//! [`FileKey`]: which file a cache reads and writes: one per API server, user identity, kind and
//! scope (namespace and selectors), named by a hash so that no part of it (a user name, a
//! token someone passed as an identity) is ever in a file name in clear.

use std::fmt;

use sha2::{Digest, Sha256};

/// The identity of an API server as a warm-start file's header records it: SHA-256 of
/// `server`, hex (never the server's name in clear).
pub fn server_id(server: &str) -> String {
    Sha256::digest(server.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The identity of one warm-start file. Built by the reflector from its
/// [`Persist`](super::Persist) (server and user identity), its kind and its scope.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey {
    /// The kind, lowercased: the readable part of the file name.
    kind: String,
    /// SHA-256 over every part, hex.
    hash: String,
}

impl FileKey {
    /// The key of (server, user, apiVersion/kind, namespace, label selector, field selector).
    /// Each part is length-prefixed before hashing, so no two different tuples collide by
    /// concatenation.
    pub fn new(
        server: &str,
        user: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Self {
        let mut hasher = Sha256::new();
        let parts = [
            Some(server),
            Some(user),
            Some(api_version),
            Some(kind),
            namespace,
            label_selector,
            field_selector,
        ];
        for part in parts {
            match part {
                Some(part) => {
                    hasher.update([1]);
                    hasher.update((part.len() as u64).to_le_bytes());
                    hasher.update(part.as_bytes());
                }
                None => hasher.update([0]),
            }
        }
        let digest = hasher.finalize();
        let hash = digest.iter().map(|b| format!("{b:02x}")).collect();
        let kind = kind
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Self { kind, hash }
    }

    /// The hash (64 hex digits), stored in the file's header too.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The file's name: `<kind>-<first 32 hex digits>.snap`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.snap", self.kind, &self.hash[..32])
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_matters_and_nothing_is_in_clear() {
        let base = ["https://10.0.0.1:6443", "alice", "v1", "ConfigMap"];
        let key = |s: &str, u: &str, ns: Option<&str>, l: Option<&str>, f: Option<&str>| {
            FileKey::new(s, u, base[2], base[3], ns, l, f)
        };
        let a = key(base[0], base[1], None, None, None);
        let variants = [
            key("https://10.0.0.2:6443", base[1], None, None, None),
            key(base[0], "bob", None, None, None),
            key(base[0], base[1], Some("default"), None, None),
            key(base[0], base[1], None, Some("app=x"), None),
            key(base[0], base[1], None, None, Some("metadata.name=x")),
            // Concatenation does not collide.
            key(base[0], "", Some("alice"), None, None),
        ];
        for v in &variants {
            assert_ne!(a, *v);
            assert_ne!(a.file_name(), v.file_name());
        }
        assert_eq!(a, key(base[0], base[1], None, None, None));
        let name = a.file_name();
        assert!(name.starts_with("configmap-") && name.ends_with(".snap"));
        assert!(!name.contains("alice") && !name.contains("10.0.0.1"));
        assert_eq!(a.hash().len(), 64);
    }
}
