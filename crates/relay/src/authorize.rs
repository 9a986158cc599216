//! Who may read what through the relay: callers authenticated with a TokenReview and each cached
//! read checked with a SubjectAccessReview against the upstream API server, decisions cached for a
//! short time.
//!
//! The relay lists and watches with its own identity, so a cached read must not show a caller
//! what the API server would not show them. [`Authorizer::authenticate`] asks the API server who
//! a bearer token belongs to (a `TokenReview`), [`Authorizer::authorize`] whether that user may
//! make one read (a `SubjectAccessReview`: verb, group, version, resource, namespace, name). Both
//! decisions — allowed and denied — are cached for [`AuthorizeConfig::decision_ttl`] (10 s by
//! default) in bounded maps ([`AuthorizeConfig::max_entries`] each); a review that fails (the API
//! server unreachable or refusing the relay's own requests) is never cached. Tokens are cached
//! under their SHA-256, never in clear, and neither tokens nor usernames are logged or shown by
//! `Debug`. A denied caller gets what the API server itself would answer ([`Denied::into_response`]):
//! the same 401 or 403 `Status`, never data.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), repocache_relay::authorize::Denied> {
//! use repocache_relay::authorize::{AuthorizeConfig, Authorizer, ResourceAttributes};
//! let authorizer = Authorizer::new(client, AuthorizeConfig::default());
//! let user = authorizer.authenticate("caller's bearer token").await?;
//! let read = ResourceAttributes {
//!     verb: "list".into(),
//!     group: "packages.glasskube.dev".into(),
//!     version: "v1alpha1".into(),
//!     resource: "packagerepositories".into(),
//!     namespace: None,
//!     name: None,
//! };
//! authorizer.authorize(&user, &read).await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1 as authz;
use k8s_wire::{ForbiddenTarget, Reason, Status, StatusDetails};
use kube::api::{Api, PostParams};

/// How long a decision is kept when [`AuthorizeConfig::default`] is used.
pub const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(10);
/// How many decisions of each kind (token reviews, access reviews) are kept by default.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// How the [`Authorizer`] caches decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeConfig {
    /// How long a decision (allowed or denied) is reused before the API server is asked again
    /// (default 10 s; zero: never cached). A revoked token or permission takes effect after at
    /// most this long.
    pub decision_ttl: Duration,
    /// The most token decisions, and the most access decisions, kept (default 4096; zero: never
    /// cached). When full, expired decisions go first, then the oldest.
    pub max_entries: usize,
}

impl Default for AuthorizeConfig {
    fn default() -> Self {
        AuthorizeConfig {
            decision_ttl: DEFAULT_DECISION_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// A user, as a TokenReview names it. `Debug` shows the groups only (usernames are not logged).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// The username.
    pub username: String,
    /// The user's uid (may be empty).
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes the authenticator attached.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserInfo")
            .field("username", &"<redacted>")
            .field("uid", &"<redacted>")
            .field("groups", &self.groups)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One read, as a SubjectAccessReview's `resourceAttributes` describe it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceAttributes {
    /// `get`, `list` or `watch`.
    pub verb: String,
    /// The API group (empty for the core group).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource (plural).
    pub resource: String,
    /// The namespace of a namespaced request; `None` at the cluster scope.
    pub namespace: Option<String>,
    /// The object's name (a GET); `None` for a LIST or WATCH.
    pub name: Option<String>,
}

/// Why a caller may not make a read. `Display` and `Debug` name no token and no username.
#[derive(thiserror::Error)]
pub enum Denied {
    /// No bearer token, or one the API server does not know (401).
    #[error("unauthenticated: no bearer token, or one the API server does not accept")]
    Unauthenticated,
    /// The API server says the user may not make this read (403).
    #[error("forbidden: {} {} in group {:?}", read.verb, read.resource, read.group)]
    Forbidden {
        /// The user's name (in the 403's message, as upstream writes it; never logged).
        username: String,
        /// The read that was denied.
        read: ResourceAttributes,
        /// The reviewer's reason, if it gave one (appended to the message, as upstream does).
        reason: String,
    },
    /// The decision could not be made: the review request failed (503).
    #[error("authorization review failed: {0}")]
    Unavailable(String),
}

impl fmt::Debug for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Unauthenticated => f.write_str("Unauthenticated"),
            Denied::Forbidden { read, reason, .. } => f
                .debug_struct("Forbidden")
                .field("username", &"<redacted>")
                .field("read", read)
                .field("reason", reason)
                .finish(),
            Denied::Unavailable(why) => f.debug_tuple("Unavailable").field(why).finish(),
        }
    }
}

/// What the relay answers when it cannot reach a decision.
const UNAVAILABLE_MESSAGE: &str =
    "the relay could not review the request with the API server; please try again";

impl Denied {
    /// The HTTP status code of the answer: 401, 403 or 503.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Denied::Unauthenticated => StatusCode::UNAUTHORIZED,
            Denied::Forbidden { .. } => StatusCode::FORBIDDEN,
            Denied::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `Status` body of the answer.
    pub fn status(&self) -> Status {
        match self {
            Denied::Unauthenticated => Status::unauthorized(),
            Denied::Forbidden {
                username,
                read,
                reason,
            } => {
                let target = ForbiddenTarget {
                    group: &read.group,
                    resource: &read.resource,
                    subresource: None,
                    namespace: read.namespace.as_deref(),
                    name: read.name.as_deref(),
                };
                let mut status = Status::forbidden(username, &read.verb, &target);
                if !reason.is_empty() {
                    status.message = format!("{}: {reason}", status.message);
                }
                status
            }
            Denied::Unavailable(_) => {
                Status::failure(Reason::ServiceUnavailable, UNAVAILABLE_MESSAGE).with_details(
                    StatusDetails {
                        retry_after_seconds: Some(1),
                        ..StatusDetails::default()
                    },
                )
            }
        }
    }

    /// The HTTP response the API server itself would give (status code + a `k8s_wire::Status`
    /// JSON body; a 403's message like upstream's: `<resource>.<group> "<name>" is forbidden:
    /// User "<user>" cannot get resource "<resource>" in API group "<group>" in the namespace
    /// "<ns>"`). An unavailable review is a 503 with `Retry-After: 1`.
    pub fn into_response(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from(self.status().to_json()));
        *response.status_mut() = self.status_code();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, Denied::Unavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A bounded map of decisions, each valid for `ttl` after it was made. Time is passed in, so the
/// expiry is tested without waiting.
struct Decisions<K, V> {
    map: HashMap<K, (V, Instant)>,
    ttl: Duration,
    max: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Decisions<K, V> {
    fn new(config: &AuthorizeConfig) -> Self {
        Decisions {
            map: HashMap::new(),
            ttl: config.decision_ttl,
            max: config.max_entries,
        }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        let (value, made) = self.map.get(key)?;
        (now.saturating_duration_since(*made) < self.ttl).then(|| value.clone())
    }

    fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.ttl.is_zero() || self.max == 0 {
            return;
        }
        if self.map.len() >= self.max && !self.map.contains_key(&key) {
            let ttl = self.ttl;
            self.map
                .retain(|_, (_, made)| now.saturating_duration_since(*made) < ttl);
            if self.map.len() >= self.max
                && let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, made))| *made)
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(key, (value, now));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A token's SHA-256: the key of its cached decision (the token itself is never kept).
type TokenHash = [u8; 32];

fn token_hash(token: &str) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A cached access decision: allowed, or denied with the reviewer's reason.
type Access = Result<(), String>;

struct Inner {
    client: kube::Client,
    config: AuthorizeConfig,
    /// Token decisions: the user, or `None` for a token the API server does not accept.
    tokens: Mutex<Decisions<TokenHash, Option<UserInfo>>>,
    access: Mutex<Decisions<(UserInfo, ResourceAttributes), Access>>,
}

/// Authenticates callers and authorizes their reads against the API server, with the decisions
/// cached (see the [module documentation](self)). Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("config", &self.inner.config)
            .field("cached_tokens", &lock(&self.inner.tokens).len())
            .field("cached_access", &lock(&self.inner.access).len())
            .finish()
    }
}

/// The caches hold plain data, so a panic elsewhere cannot leave them inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Authorizer {
    /// `client`: a client whose identity may create TokenReviews and SubjectAccessReviews.
    pub fn new(client: kube::Client, config: AuthorizeConfig) -> Self {
        Authorizer {
            inner: Arc::new(Inner {
                client,
                config,
                tokens: Mutex::new(Decisions::new(&config)),
                access: Mutex::new(Decisions::new(&config)),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> AuthorizeConfig {
        self.inner.config
    }

    /// TokenReview of a bearer token (cached for decision_ttl, keyed by a hash of the token, never
    /// the token itself). An empty token is [`Denied::Unauthenticated`] without a review.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<UserInfo, Denied> {
        if bearer_token.is_empty() {
            return Err(Denied::Unauthenticated);
        }
        let key = token_hash(bearer_token);
        if let Some(decision) = lock(&self.inner.tokens).get(&key, Instant::now()) {
            return decision.ok_or(Denied::Unauthenticated);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(bearer_token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.inner.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("TokenReview", &e))?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Some(UserInfo {
                username: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => None,
        }
        .filter(|u| !u.username.is_empty());
        tracing::debug!(authenticated = user.is_some(), "token reviewed");
        lock(&self.inner.tokens).insert(key, user.clone(), Instant::now());
        user.ok_or(Denied::Unauthenticated)
    }

    /// SubjectAccessReview of one cached read (cached for decision_ttl).
    pub async fn authorize(
        &self,
        user: &UserInfo,
        read: &ResourceAttributes,
    ) -> Result<(), Denied> {
        let key = (user.clone(), read.clone());
        let cached = lock(&self.inner.access).get(&key, Instant::now());
        let decision = match cached {
            Some(decision) => decision,
            None => {
                let decision = self.review_access(user, read).await?;
                lock(&self.inner.access).insert(key, decision.clone(), Instant::now());
                decision
            }
        };
        decision.map_err(|reason| Denied::Forbidden {
            username: user.username.clone(),
            read: read.clone(),
            reason,
        })
    }

    async fn review_access(
        &self,
        user: &UserInfo,
        read: &ResourceAttributes,
    ) -> Result<Access, Denied> {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let review = authz::SubjectAccessReview {
            spec: authz::SubjectAccessReviewSpec {
                user: some(&user.username),
                uid: some(&user.uid),
                groups: Some(user.groups.clone()).filter(|g| !g.is_empty()),
                extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
                resource_attributes: Some(authz::ResourceAttributes {
                    verb: some(&read.verb),
                    group: Some(read.group.clone()),
                    version: some(&read.version),
                    resource: some(&read.resource),
                    namespace: read.namespace.clone(),
                    name: read.name.clone(),
                    ..authz::ResourceAttributes::default()
                }),
                non_resource_attributes: None,
            },
            ..authz::SubjectAccessReview::default()
        };
        let answer = Api::<authz::SubjectAccessReview>::all(self.inner.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("SubjectAccessReview", &e))?;
        let status = answer.status.unwrap_or_default();
        tracing::debug!(
            verb = %read.verb,
            resource = %read.resource,
            allowed = status.allowed,
            "access reviewed"
        );
        if status.allowed && status.denied != Some(true) {
            Ok(Ok(()))
        } else {
            Ok(Err(status.reason.unwrap_or_default()))
        }
    }
}

fn unavailable(what: &str, e: &kube::Error) -> Denied {
    tracing::warn!(error = %e, "{what} failed; the read is refused with 503");
    Denied::Unavailable(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ttl_secs: u64, max: usize) -> AuthorizeConfig {
        AuthorizeConfig {
            decision_ttl: Duration::from_secs(ttl_secs),
            max_entries: max,
        }
    }

    /// The relay serves from boxed `Send` futures: no lock may be held across a review.
    #[allow(dead_code)]
    fn reviews_are_send(a: &Authorizer, user: &UserInfo, read: &ResourceAttributes) {
        fn send<T: Send>(_: T) {}
        send(a.authenticate("token"));
        send(a.authorize(user, read));
        send(a.clone());
    }

    #[test]
    fn decisions_expire_after_the_ttl() {
        let mut d = Decisions::new(&config(10, 8));
        let t0 = Instant::now();
        d.insert("k", 1, t0);
        assert_eq!(d.get(&"k", t0), Some(1));
        assert_eq!(d.get(&"k", t0 + Duration::from_millis(9_999)), Some(1));
        assert_eq!(d.get(&"k", t0 + Duration::from_secs(10)), None);
        assert_eq!(d.get(&"other", t0), None);
        // A new decision starts a new TTL.
        d.insert("k", 2, t0 + Duration::from_secs(10));
        assert_eq!(d.get(&"k", t0 + Duration::from_secs(19)), Some(2));
    }

    #[test]
    fn decisions_are_bounded_expired_first_then_oldest() {
        let mut d = Decisions::new(&config(10, 3));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        d.insert(1, (), t0);
        d.insert(2, (), t0 + s(5));
        d.insert(3, (), t0 + s(6));
        // Full: 1 has expired at t0+11 and goes; 2 and 3 stay.
        d.insert(4, (), t0 + s(11));
        assert_eq!(d.len(), 3);
        let now = t0 + s(11);
        assert!(d.get(&1, now).is_none() && d.get(&2, now).is_some() && d.get(&3, now).is_some());
        // Full, nothing expired: the oldest (2) goes.
        d.insert(5, (), t0 + s(12));
        let now = t0 + s(12);
        assert_eq!(d.len(), 3);
        assert!(d.get(&2, now).is_none());
        assert!(d.get(&3, now).is_some() && d.get(&4, now).is_some() && d.get(&5, now).is_some());
        // Replacing a key that is there evicts nothing.
        d.insert(5, (), t0 + s(13));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn zero_ttl_or_size_caches_nothing() {
        let t0 = Instant::now();
        for c in [config(0, 8), config(10, 0)] {
            let mut d = Decisions::new(&c);
            d.insert("k", 1, t0);
            assert_eq!(d.get(&"k", t0), None);
            assert_eq!(d.len(), 0);
        }
    }

    #[test]
    fn tokens_are_kept_as_their_sha256() {
        let h = token_hash("abc");
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf], "{h:02x?}");
        assert_ne!(token_hash("abd"), h);
    }

    #[test]
    fn debug_and_display_show_no_username() {
        let user = UserInfo {
            username: "alice-the-secret".into(),
            uid: "uid-secret".into(),
            groups: vec!["readers".into()],
            extra: BTreeMap::new(),
        };
        let denied = Denied::Forbidden {
            username: user.username.clone(),
            read: ResourceAttributes {
                verb: "list".into(),
                group: "g".into(),
                version: "v1".into(),
                resource: "things".into(),
                namespace: None,
                name: None,
            },
            reason: String::new(),
        };
        let shown = format!("{user:?} {denied:?} {denied}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("readers") && shown.contains("things"),
            "{shown}"
        );
    }

    #[test]
    fn responses_carry_upstreams_codes_and_status_bodies() {
        let r = Denied::Unauthenticated.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            r.body(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
        let read = ResourceAttributes {
            verb: "get".into(),
            group: "packages.glasskube.dev".into(),
            version: "v1alpha1".into(),
            resource: "packages".into(),
            namespace: Some("team-a".into()),
            name: Some("cert-manager".into()),
        };
        let forbidden = |reason: &str| Denied::Forbidden {
            username: "bob".into(),
            read: read.clone(),
            reason: reason.into(),
        };
        let r = forbidden("").into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let s = Status::from_json(r.body()).unwrap();
        assert_eq!(
            s.message,
            r#"packages.packages.glasskube.dev "cert-manager" is forbidden: User "bob" cannot get resource "packages" in API group "packages.glasskube.dev" in the namespace "team-a""#
        );
        assert_eq!((s.reason, s.code), (Reason::Forbidden, 403));
        let with_reason =
            Status::from_json(forbidden("no RBAC rule").into_response().body()).unwrap();
        assert_eq!(with_reason.message, format!("{}: no RBAC rule", s.message));
        let r = Denied::Unavailable("boom".into()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let s = Status::from_json(r.body()).unwrap();
        assert_eq!((s.reason, s.code), (Reason::ServiceUnavailable, 503));
        assert!(
            !s.message.contains("boom"),
            "the cause is logged, not answered"
        );
    }
}
