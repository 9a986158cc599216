//! Request targets: what a resource path names (group, version, namespace, resource, name,
//! subresource) and the verb of a request for it, as apiserver's `RequestInfoFactory` reads them.

use http::Method;

/// The Kubernetes verb of a resource request, as the API server names it (audit logs, RBAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET (or HEAD) of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true` (or `1`, …), or under the legacy `/watch/` prefix.
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
}

impl Verb {
    /// Every verb, in declaration order.
    pub const ALL: [Verb; 8] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
    ];

    /// The API server's name: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`.
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
        }
    }

    /// The HTTP method a client sends for this verb (HEAD is read as GET, never built).
    pub fn method(self) -> Method {
        match self {
            Verb::Get | Verb::List | Verb::Watch => Method::GET,
            Verb::Create => Method::POST,
            Verb::Update => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete | Verb::DeleteCollection => Method::DELETE,
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a path is not a resource path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The path does not start with `/api/<version>/` or `/apis/<group>/<version>/` followed by a
    /// resource (discovery documents, `/version`, `/healthz`, …).
    #[error("not a resource path: {0:?}")]
    NotAResource(String),
    /// A segment is empty (`//`, or a trailing `/`).
    #[error("empty path segment in {0:?}")]
    EmptySegment(String),
    /// More segments than `<resource>/<name>/<subresource>`.
    #[error("too many path segments in {0:?}")]
    TooManySegments(String),
}

/// The namespace's own subresources: `/api/v1/namespaces/<ns>/status` addresses namespace `<ns>`'s
/// `status`, not a namespaced resource called `status` (apiserver's `namespaceSubresources`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// A resource path: `/api/v1/…` (the core group) or `/apis/<group>/<version>/…`, with an optional
/// `/namespaces/<ns>` and `<resource>[/<name>[/<subresource>]]`. Borrows from the path; segments
/// are taken as they appear (no percent-decoding, as the API server matches them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target<'a> {
    /// The API group; empty for the core group (`/api/v1`).
    pub group: &'a str,
    /// The API version (`v1`, `v1alpha1`).
    pub version: &'a str,
    /// The namespace of a namespaced path; `None` for a cluster-wide one.
    pub namespace: Option<&'a str>,
    /// The resource (plural): `packagerepositories`, `namespaces`.
    pub resource: &'a str,
    /// The object's name; `None` for a collection.
    pub name: Option<&'a str>,
    /// The subresource (`status`); only with a name.
    pub subresource: Option<&'a str>,
    /// The deprecated `/watch/` prefix after the version (always a watch).
    pub legacy_watch: bool,
}

impl<'a> Target<'a> {
    /// A collection target with no namespace, name or subresource.
    pub fn collection(group: &'a str, version: &'a str, resource: &'a str) -> Self {
        Target {
            group,
            version,
            namespace: None,
            resource,
            name: None,
            subresource: None,
            legacy_watch: false,
        }
    }

    /// Parses a resource path (the path alone: no query, no scheme or host).
    ///
    /// `/api/v1/namespaces/<ns>` is the namespace object `<ns>` and
    /// `/api/v1/namespaces/<ns>/status` (or `finalize`) its subresource, as upstream reads them.
    pub fn parse(path: &'a str) -> Result<Self, TargetError> {
        let not_resource = || TargetError::NotAResource(path.to_owned());
        let rest = path.strip_prefix('/').ok_or_else(not_resource)?;
        // The longest resource path: apis/<g>/<v>/watch/namespaces/<ns>/<r>/<n>/<sub>.
        let mut buf: [&str; 9] = [""; 9];
        let mut n = 0;
        for seg in rest.split('/') {
            let slot = buf
                .get_mut(n)
                .ok_or_else(|| TargetError::TooManySegments(path.to_owned()))?;
            *slot = seg;
            n += 1;
        }
        let segs = buf.get(..n).unwrap_or_default();
        let (group, version, rest) = match segs {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => return Err(not_resource()),
        };
        if segs.iter().any(|s| s.is_empty()) {
            return Err(TargetError::EmptySegment(path.to_owned()));
        }
        let (legacy_watch, rest) = match rest {
            ["watch", rest @ ..] if !rest.is_empty() => (true, rest),
            _ => (false, rest),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, sub] if NAMESPACE_SUBRESOURCES.contains(sub) => {
                return Ok(Target {
                    group,
                    version,
                    namespace: None,
                    resource: "namespaces",
                    name: Some(*ns),
                    subresource: Some(*sub),
                    legacy_watch,
                });
            }
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [r] => (*r, None, None),
            [r, n] => (*r, Some(*n), None),
            [r, n, s] => (*r, Some(*n), Some(*s)),
            _ => return Err(TargetError::TooManySegments(path.to_owned())),
        };
        Ok(Target {
            group,
            version,
            namespace,
            resource,
            name,
            subresource,
            legacy_watch,
        })
    }

    /// The path back: `parse(t.path()) == t` for every target `parse` returns.
    pub fn path(&self) -> String {
        let mut p = String::with_capacity(64);
        if self.group.is_empty() {
            p.push_str("/api/");
        } else {
            p.push_str("/apis/");
            p.push_str(self.group);
            p.push('/');
        }
        p.push_str(self.version);
        if self.legacy_watch {
            p.push_str("/watch");
        }
        if let Some(ns) = self.namespace {
            p.push_str("/namespaces/");
            p.push_str(ns);
        }
        p.push('/');
        p.push_str(self.resource);
        if let Some(name) = self.name {
            p.push('/');
            p.push_str(name);
            if let Some(sub) = self.subresource {
                p.push('/');
                p.push_str(sub);
            }
        }
        p
    }

    /// `group/version`, or `version` for the core group (an object's `apiVersion`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the path names a collection (no object name).
    pub fn is_collection(&self) -> bool {
        self.name.is_none()
    }

    /// The verb of a request with `method` for this target; `watch` is the query's `watch`
    /// flag ([`crate::ListOptions::watch`]). `None` for methods that are no Kubernetes verb.
    pub fn verb(&self, method: &Method, watch: bool) -> Option<Verb> {
        let collection = self.is_collection();
        Some(match *method {
            Method::GET | Method::HEAD if collection && (self.legacy_watch || watch) => Verb::Watch,
            Method::GET | Method::HEAD if collection => Verb::List,
            Method::GET | Method::HEAD => Verb::Get,
            Method::POST => Verb::Create,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE if collection => Verb::DeleteCollection,
            Method::DELETE => Verb::Delete,
            _ => return None,
        })
    }
}

/// `resource.group`, or `resource` alone for the core group: how upstream names a resource in
/// messages (`packagerepositories.packages.glasskube.dev "x" not found`).
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}
