//! Reading a request the way the API server does (`k8s-wire`): its path (group, version,
//! plural, namespace, name, subresource), its verb, and the query parameters of a GET or LIST.
//!
//! Everything here is conservative: whatever the layer does not fully understand is reported as
//! such, and the request goes to the server, whose answer is authoritative.

use http::Method;
use k8s_wire::{ListOptions, ListVersion, Target};

/// The Kubernetes verb of a request, as the API server names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`, or the legacy `/watch/` path.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Anything else: discovery, non-resource paths, other methods.
    Other,
}

impl Verb {
    /// Every verb, in a fixed order (the order of the layer's counters).
    pub const ALL: [Verb; 9] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
        Verb::Other,
    ];

    /// The API server's name of the verb: `get`, `list`, `watch`, `create`, …; `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => "other",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl From<k8s_wire::Verb> for Verb {
    fn from(v: k8s_wire::Verb) -> Self {
        match v {
            k8s_wire::Verb::Get => Verb::Get,
            k8s_wire::Verb::List => Verb::List,
            k8s_wire::Verb::Watch => Verb::Watch,
            k8s_wire::Verb::Create => Verb::Create,
            k8s_wire::Verb::Update => Verb::Update,
            k8s_wire::Verb::Patch => Verb::Patch,
            k8s_wire::Verb::Delete => Verb::Delete,
            k8s_wire::Verb::DeleteCollection => Verb::DeleteCollection,
        }
    }
}

/// A segment the layer may use as given: no percent-encoding, nothing exotic.
fn plain(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

/// Parses a resource path (`k8s-wire`); `None` for anything else (discovery, non-resource
/// paths) and for odd spellings the layer leaves to the server (percent-encoded segments).
pub(crate) fn parse_path(path: &str) -> Option<Target<'_>> {
    let t = Target::parse(path).ok()?;
    let segs = [
        Some(t.version),
        Some(t.resource),
        t.namespace,
        t.name,
        t.subresource,
    ];
    let plain_group = t.group.is_empty() || plain(t.group);
    (plain_group && segs.into_iter().flatten().all(plain)).then_some(t)
}

/// The verb of a request for `target`, given its method and (for GET) whether it asks to watch.
pub(crate) fn verb_of(method: &Method, target: &Target<'_>, watch_param: bool) -> Verb {
    target
        .verb(method, watch_param)
        .map_or(Verb::Other, Verb::from)
}

/// The query parameters of a GET or LIST that the layer can answer: `k8s-wire`'s
/// `ListOptions` (readable through `Deref`), plus what the layer concludes from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub options: ListOptions,
    /// `watch` was given with a value that means true.
    pub watch: bool,
    /// A parameter the layer cannot honour (or a repeated one) was given.
    pub unsupported: bool,
}

impl std::ops::Deref for Params {
    type Target = ListOptions;
    fn deref(&self) -> &ListOptions {
        &self.options
    }
}

impl Params {
    /// Parses a query string. `None` when it is malformed (bad percent-encoding, not UTF-8).
    pub(crate) fn parse(query: &str) -> Option<Self> {
        let options = ListOptions::parse(query).ok()?;
        // Upstream's strconv.ParseBool; anything but a clear true is not ours to answer.
        let watch = options.watch.is_some() && options.watch() == Ok(true);
        let unsupported = options.repeated
            || (options.watch.is_some() && !watch)
            || options.allow_watch_bookmarks.is_some()
            || options.send_initial_events.is_some()
            // `timeoutSeconds` is harmless for an answer computed locally; the rest is not.
            || !options.other.is_empty();
        Some(Params {
            options,
            watch,
            unsupported,
        })
    }

    /// Whether the request carries only parameters a single-object GET may have.
    pub(crate) fn fits_get(&self) -> bool {
        !self.unsupported
            && !self.watch
            && self.options.label_selector.is_none()
            && self.options.field_selector.is_none()
            && self.options.limit.is_none()
            && self.options.continue_token.is_none()
            && self.options.resource_version_match.is_none()
    }

    /// The `limit`: `Ok(0)` for none (or a non-positive one, which upstream ignores too), `Err`
    /// when it does not parse (the server's 400 is the answer then).
    pub(crate) fn limit(&self) -> Result<usize, ()> {
        let n = self.options.limit().map_err(|_| ())?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// What the `resourceVersion` / `resourceVersionMatch` pair asks for (upstream's rules,
    /// `k8s-wire`); `Exact` and whatever upstream rejects are the server's business.
    pub(crate) fn version(&self) -> VersionNeed {
        match self.options.list_version() {
            Ok(ListVersion::MostRecent) => VersionNeed::Latest,
            Ok(ListVersion::Any) => VersionNeed::Any,
            Ok(ListVersion::NotOlderThan(n)) => VersionNeed::NotOlderThan(n),
            Ok(ListVersion::Exact(_)) | Err(_) => VersionNeed::Unsupported,
        }
    }
}

/// The freshness a request's `resourceVersion` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionNeed {
    /// No resourceVersion: the most recent data (served from a fresh snapshot).
    Latest,
    /// `resourceVersion=0`: any version.
    Any,
    /// A version at least this new.
    NotOlderThan(u64),
    /// Something a snapshot cannot honour (`Exact`, invalid combinations).
    Unsupported,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/apis/packages.glasskube.dev/v1alpha1/packagerepositories").unwrap();
        assert_eq!(t.group, "packages.glasskube.dev");
        assert_eq!(t.resource, "packagerepositories");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = parse_path("/apis/g/v1/namespaces/ns/things/a").unwrap();
        assert_eq!((t.namespace, t.name), (Some("ns"), Some("a")));
        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.group, t.resource, t.name),
            ("", "namespaces", Some("kube-system"))
        );
        let t = parse_path("/apis/g/v1/things/a/status").unwrap();
        assert_eq!(t.subresource, Some("status"));
        let t = parse_path("/apis/g/v1/watch/namespaces/ns/things").unwrap();
        assert!(t.legacy_watch);
        assert_eq!(t.namespace, Some("ns"));
        for bad in [
            "/apis/g/v1",
            "/apis",
            "/version",
            "/apis/g/v1/things/",
            "/apis/g/v1/things/a%2Fb",
            "/apis/g/v1/a/b/c/d",
            "apis/g/v1/things",
        ] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        let p = Params::parse("labelSelector=app+in+%28a%2Cb%29&limit=2&timeoutSeconds=5").unwrap();
        assert_eq!(p.label_selector.as_deref(), Some("app in (a,b)"));
        assert_eq!(p.limit(), Ok(2));
        assert!(!p.unsupported);
        assert!(Params::parse("pretty=true").unwrap().unsupported);
        assert!(Params::parse("limit=1&limit=2").unwrap().unsupported);
        assert!(Params::parse("watch=true").unwrap().watch);
        assert!(Params::parse("a=%zz").is_none());
        assert_eq!(Params::parse("").unwrap(), Params::default());
    }

    #[test]
    fn versions() {
        let v = |q: &str| Params::parse(q).unwrap().version();
        assert_eq!(v(""), VersionNeed::Latest);
        assert_eq!(v("resourceVersion="), VersionNeed::Latest);
        assert_eq!(v("resourceVersion=0"), VersionNeed::Any);
        assert_eq!(
            v("resourceVersion=0&resourceVersionMatch=NotOlderThan"),
            VersionNeed::Any
        );
        assert_eq!(v("resourceVersion=12"), VersionNeed::NotOlderThan(12));
        assert_eq!(
            v("resourceVersion=12&resourceVersionMatch=Exact"),
            VersionNeed::Unsupported
        );
        assert_eq!(v("resourceVersionMatch=Exact"), VersionNeed::Unsupported);
        assert_eq!(v("continue=x&resourceVersion=1"), VersionNeed::Unsupported);
        assert_eq!(v("continue=x"), VersionNeed::Latest);
    }
}
