//! [`BaseKey`]: an object's (namespace, name) as the snapshot's flat table stores it — inline
//! when short, so that a lookup compares names without a dependent load from another
//! allocation (at 10,000 objects and more, the table's entries, the names and the objects are
//! each a cache miss of their own).

/// The bytes a key can hold inline: namespace and name together. 45 makes a table entry (hash,
/// key, object pointer, flag) exactly one 64-byte cache line; most Kubernetes names are
/// shorter (the longest a name may be is 253).
const INLINE: usize = 45;
/// `ns_len` of a key without a namespace (a cluster-scoped object).
const NO_NAMESPACE: u8 = u8::MAX;

/// A key as the base table stores it: the namespace's bytes followed by the name's, inline, or
/// (`name_len == 0`, never a real name's length) a mark that the key was too long to inline
/// and is compared through the object's own metadata. 47 bytes, no allocation.
#[derive(Clone, Copy)]
pub(crate) struct BaseKey {
    ns_len: u8,
    name_len: u8,
    bytes: [u8; INLINE],
}

impl BaseKey {
    /// The stored form of (namespace, name).
    pub(crate) fn new(namespace: Option<&str>, name: &str) -> Self {
        let ns = namespace.map_or(&[][..], str::as_bytes);
        let total = ns.len() + name.len();
        let (Ok(ns_len), Ok(name_len)) = (u8::try_from(ns.len()), u8::try_from(name.len())) else {
            return Self::LONG;
        };
        if total > INLINE || ns_len == NO_NAMESPACE || name_len == 0 {
            return Self::LONG;
        }
        let mut bytes = [0; INLINE];
        bytes[..ns.len()].copy_from_slice(ns);
        bytes[ns.len()..total].copy_from_slice(name.as_bytes());
        Self {
            ns_len: if namespace.is_some() {
                ns_len
            } else {
                NO_NAMESPACE
            },
            name_len,
            bytes,
        }
    }

    /// A key too long to inline.
    const LONG: Self = Self {
        ns_len: 0,
        name_len: 0,
        bytes: [0; INLINE],
    };

    /// Whether this is the key of (namespace, name): `Some` when the stored bytes decide,
    /// `None` for a key too long to inline (compare the object's metadata instead).
    #[inline(always)]
    pub(crate) fn matches(&self, namespace: Option<&str>, name: &str) -> Option<bool> {
        if self.name_len == 0 {
            return None;
        }
        let (ns, ns_len) = match namespace {
            Some(ns) => (ns.as_bytes(), ns.len()),
            None => (&[][..], usize::from(NO_NAMESPACE)),
        };
        if usize::from(self.ns_len) != ns_len || usize::from(self.name_len) != name.len() {
            return Some(false);
        }
        // No namespace (a cluster-scoped object, the common case) compares nothing: comparing
        // the empty slice would still call `memcmp(.., .., 0)` with its dangling pointer (`&[]`
        // points at address 1), and glibc's AVX-512 `memcmp` (`__memcmp_evex_movbe`, chosen on
        // Intel since Skylake-X and AMD since Zen 4) reads it with a masked load whose
        // suppressed page fault costs a microcode assist: measured at ~80 ns per lookup, four
        // times the rest of a `get` (docs/ARCHITECTURE.md, "The read path, step by step").
        let ns_matches = ns.is_empty() || self.bytes.get(..ns.len()) == Some(ns);
        Some(ns_matches && self.bytes.get(ns.len()..ns.len() + name.len()) == Some(name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_match_exactly_their_namespace_and_name() {
        let cluster = BaseKey::new(None, "glasskube");
        assert_eq!(cluster.matches(None, "glasskube"), Some(true));
        assert_eq!(cluster.matches(None, "glasskub"), Some(false));
        assert_eq!(cluster.matches(None, "glasskubf"), Some(false));
        assert_eq!(cluster.matches(Some(""), "glasskube"), Some(false));
        let namespaced = BaseKey::new(Some("ns"), "name");
        assert_eq!(namespaced.matches(Some("ns"), "name"), Some(true));
        // The boundary between namespace and name is part of the key.
        assert_eq!(namespaced.matches(Some("nsn"), "ame"), Some(false));
        assert_eq!(namespaced.matches(Some("n"), "sname"), Some(false));
        assert_eq!(namespaced.matches(None, "name"), Some(false));
        assert_eq!(namespaced.matches(Some("ns"), "namf"), Some(false));
        // A namespace of the same length that differs (the namespace's bytes are compared
        // whenever there is one).
        assert_eq!(namespaced.matches(Some("nt"), "name"), Some(false));
        assert_eq!(namespaced.matches(Some("ms"), "name"), Some(false));
        let empty_ns = BaseKey::new(Some(""), "a");
        assert_eq!(empty_ns.matches(Some(""), "a"), Some(true));
        assert_eq!(empty_ns.matches(None, "a"), Some(false));
    }

    #[test]
    fn keys_too_long_to_inline_defer_to_the_object() {
        let name = "n".repeat(INLINE);
        assert_eq!(BaseKey::new(None, &name).matches(None, &name), Some(true));
        assert_eq!(
            BaseKey::new(Some("x"), &name).matches(Some("x"), &name),
            None
        );
        let long = "l".repeat(300);
        assert_eq!(BaseKey::new(None, &long).matches(None, "l"), None);
        assert_eq!(
            BaseKey::new(Some(&long), "a").matches(Some(&long), "a"),
            None
        );
    }
}
