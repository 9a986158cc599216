//! Reading a request the way the API server does (`k8s-wire`): its path (group, version,
//! plural, namespace, name, subresource), its verb, and the query parameters of a GET or LIST.
//!
//! Everything here is conservative: whatever the layer does not fully understand is reported as
//! such, and the request goes to the server, whose answer is authoritative.

use http::Method;
use k8s_wire::{ListOptions, ListVersion, Target};

/// The Kubernetes verb of a resource request (`k8s-wire`'s): what the layer's figures count
/// by. Requests that are not resource requests (discovery, other paths and methods) have none;
/// the figures count them as verb `other`.
pub use k8s_wire::Verb;

/// The slot of a verb in the layer's counter tables: [`Verb::ALL`]'s order, then `other`.
pub(crate) fn verb_slot(verb: Option<Verb>) -> usize {
    verb.and_then(|v| Verb::ALL.iter().position(|x| *x == v))
        .unwrap_or(Verb::ALL.len())
}

/// The name the figures give a verb: the API server's (`get`, `list`, …), or `other`.
pub(crate) fn verb_name(verb: Option<Verb>) -> &'static str {
    verb.map_or("other", Verb::as_str)
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

/// The verb of a request for `target`, given its method and (for GET) whether it asks to watch;
/// `None` for a method no verb has.
pub(crate) fn verb_of(method: &Method, target: &Target<'_>, watch_param: bool) -> Option<Verb> {
    target.verb(method, watch_param)
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
    fn watch_and_the_parameters_the_layer_cannot_honour() {
        let p = |q: &str| Params::parse(q).unwrap();
        assert!(p("watch=true").watch);
        assert!(
            !p("watch=true").unsupported,
            "a watch is a verb, not a bad parameter"
        );
        // Anything but a clear true is a watch the layer does not understand.
        for q in ["watch=false", "watch=0", "watch=maybe"] {
            assert!(!p(q).watch, "{q}");
            assert!(p(q).unsupported, "{q}");
        }
        for q in [
            "allowWatchBookmarks=true",
            "sendInitialEvents=true",
            "pretty=true",
        ] {
            assert!(p(q).unsupported, "{q}");
        }
        assert!(!p("timeoutSeconds=5").unsupported);
    }

    #[test]
    fn only_what_a_single_object_get_may_carry_fits_a_get() {
        let p = |q: &str| Params::parse(q).unwrap();
        assert!(p("").fits_get());
        assert!(p("resourceVersion=0&timeoutSeconds=5").fits_get());
        for q in [
            "pretty=true",
            "watch=true",
            "labelSelector=a",
            "fieldSelector=metadata.name%3Da",
            "limit=1",
            "continue=x",
            "resourceVersionMatch=NotOlderThan",
        ] {
            assert!(!p(q).fits_get(), "{q}");
        }
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
