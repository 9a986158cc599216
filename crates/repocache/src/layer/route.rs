//! Reading a request the way the API server does: its path (group, version, plural, namespace,
//! name, subresource), its verb, and the query parameters of a GET or LIST.
//!
//! Everything here is conservative: whatever the layer does not fully understand is reported as
//! such, and the request goes to the server, whose answer is authoritative.

use http::Method;

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

/// A resource path: `/api/v1/…` (the core group) or `/apis/<group>/<version>/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub plural: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
    /// The deprecated `/watch/` path prefix.
    pub legacy_watch: bool,
}

/// A segment the layer may use as given: no percent-encoding, nothing exotic.
fn plain(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

/// Parses a resource path; `None` for anything else (discovery, non-resource paths, odd
/// spellings such as percent-encoded or empty segments).
pub(crate) fn parse_path(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    if !segs.iter().all(|s| plain(s)) {
        return None;
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Target {
        group,
        version,
        plural,
        namespace,
        name,
        subresource,
        legacy_watch,
    })
}

/// The verb of a request for `target`, given its method and (for GET) whether it asks to watch.
pub(crate) fn verb_of(method: &Method, target: &Target<'_>, watch_param: bool) -> Verb {
    let collection = target.name.is_none();
    match *method {
        Method::GET | Method::HEAD if collection && (target.legacy_watch || watch_param) => {
            Verb::Watch
        }
        Method::GET | Method::HEAD if collection => Verb::List,
        Method::GET | Method::HEAD => Verb::Get,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if collection => Verb::DeleteCollection,
        Method::DELETE => Verb::Delete,
        _ => Verb::Other,
    }
}

/// The query parameters of a GET or LIST that the layer can answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<String>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    /// `watch` was given with a value that means true.
    pub watch: bool,
    /// A parameter the layer cannot honour (or a repeated one) was given.
    pub unsupported: bool,
}

impl Params {
    /// Parses a query string. `None` when it is malformed (bad percent-encoding, not UTF-8).
    pub(crate) fn parse(query: &str) -> Option<Self> {
        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            let slot = match key.as_str() {
                "labelSelector" => &mut params.label_selector,
                "fieldSelector" => &mut params.field_selector,
                "limit" => &mut params.limit,
                "continue" => &mut params.continue_token,
                "resourceVersion" => &mut params.resource_version,
                "resourceVersionMatch" => &mut params.resource_version_match,
                "watch" => {
                    // Upstream's strconv.ParseBool; anything unclear is not ours to answer.
                    match value.as_str() {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => params.watch = true,
                        _ => params.unsupported = true,
                    }
                    continue;
                }
                // Harmless for an answer computed locally.
                "timeoutSeconds" => continue,
                _ => {
                    params.unsupported = true;
                    continue;
                }
            };
            if slot.is_some() {
                params.unsupported = true;
            }
            *slot = Some(value);
        }
        Some(params)
    }

    /// Whether the request carries only parameters a single-object GET may have.
    pub(crate) fn fits_get(&self) -> bool {
        !self.unsupported
            && !self.watch
            && self.label_selector.is_none()
            && self.field_selector.is_none()
            && self.limit.is_none()
            && self.continue_token.is_none()
            && self.resource_version_match.is_none()
    }

    /// The `limit`: `Ok(0)` for none (or a non-positive one, which upstream ignores too), `Err`
    /// when it does not parse (the server's 400 is the answer then).
    pub(crate) fn limit(&self) -> Result<usize, ()> {
        match self.limit.as_deref() {
            None | Some("") => Ok(0),
            Some(l) => {
                let n: i64 = l.parse().map_err(|_| ())?;
                Ok(usize::try_from(n).unwrap_or(0))
            }
        }
    }

    /// What the `resourceVersion` / `resourceVersionMatch` pair asks for.
    pub(crate) fn version(&self) -> VersionNeed {
        let rv = self.resource_version.as_deref().filter(|v| !v.is_empty());
        let rvm = self
            .resource_version_match
            .as_deref()
            .filter(|v| !v.is_empty());
        if self.continue_token.is_some() && (rv.is_some() || rvm.is_some()) {
            // Upstream rejects this combination; let it say so.
            return VersionNeed::Unsupported;
        }
        match (rv, rvm) {
            (None, None) => VersionNeed::Latest,
            (Some("0"), None | Some("NotOlderThan")) => VersionNeed::Any,
            (Some(rv), None | Some("NotOlderThan")) => match rv.parse::<u64>() {
                Ok(n) => VersionNeed::NotOlderThan(n),
                Err(_) => VersionNeed::Unsupported,
            },
            // Exact, or a match without a version, or an unknown match: the server's business.
            _ => VersionNeed::Unsupported,
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

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/apis/packages.glasskube.dev/v1alpha1/packagerepositories").unwrap();
        assert_eq!(t.group, "packages.glasskube.dev");
        assert_eq!(t.plural, "packagerepositories");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = parse_path("/apis/g/v1/namespaces/ns/things/a").unwrap();
        assert_eq!((t.namespace, t.name), (Some("ns"), Some("a")));
        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.group, t.plural, t.name),
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
