//! How the reflector decodes what it watches: a typed fast path, and per-object decoding as the
//! fallback once an object does not decode.
//!
//! Per-object decoding ([`Decoded<K>`]) never lets one bad object fail a whole LIST or cost a
//! watch event, but it takes each object's raw text before decoding it: one extra pass over
//! every object. Nearly always every object decodes, so the reflector starts on the **fast
//! path**: kube-runtime's [`watcher`] over the kind itself (one pass per object, as
//! kube-runtime's own reflector), its events handed on as [`Decoded::Valid`].
//!
//! **When it switches.** kube's client reports an object that does not decode as an error of the
//! whole response, and the watcher then loses it:
//!
//! - a LIST page: `InitialListFailed(kube::Error::SerdeError(_))` — usually a data error, but
//!   a *syntax* one for an object nested deeper than serde_json's recursion limit (128 levels,
//!   counting the list's own two); the watcher would retry the same failing LIST forever;
//! - a watch line (a streaming list's or a watch's): kube's client first tries the line as the
//!   typed `WatchEvent`, then as a bare `Status` — which every JSON object passes, since all of
//!   `Status`'s fields are optional — so the error is `WatchFailed(kube::Error::Api(status))`
//!   with an empty status (code 0: no API server sends that); and the watcher goes on watching,
//!   without that event.
//!
//! On the first such error ([`is_decode_error`]) the fast stream is dropped and a new watcher
//! over [`Decoded<K>`] starts in its place: it relists (one more LIST, or one more streaming
//! watch), so nothing the fast stream dropped is lost, and the relist replaces the snapshot
//! atomically as any relist does (counted as the `initial` relist, or mid-watch as an `error`
//! one). The switch is logged once (`warn`) and shows in
//! [`Stats::decoding`](crate::Stats::decoding) and the `repocache_decoding_robust` gauge. The
//! error itself never reaches the reflector's error handling: it is not an API failure, does
//! not count as an `error` event and never makes the cache `Failed`. It is not counted as a
//! decode failure either: the robust relist meets the object and counts it then (once), if it
//! still does not decode. Any serde error of a LIST page or a watch line counts as such an
//! error, whatever its category: a serde error does not say whether one item or the envelope
//! failed, and a false switch costs one relist and one pass per object, where a missed one
//! costs a cache that never becomes ready. Timeouts, HTTP errors and API errors with a code are
//! not decode errors and keep the reflector's usual handling; lines that are too long, not
//! UTF-8, not a JSON object (broken JSON included), or ERROR events that are not a Status never reach kube's
//! decoder (see [`crate::line_guard`]).
//!
//! **It never goes back.** Once robust, the reflector stays robust for its life, restarts
//! included. An object that does not decode is usually a schema skew (a CRD served at a newer
//! shape than the program's type), which lasts; going back would need a relist to prove every
//! object decodes again, and one more LIST each time an object breaks again. Staying robust
//! costs one pass over each object's text, and is always correct.

use std::borrow::Cow;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DynamicResourceScope;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tracing::warn;

use super::object::Decoded;
use crate::shared::Shared;

/// The watched events, as the reflector takes them.
pub(crate) type Events<K> = BoxStream<'static, watcher::Result<Event<Decoded<K>>>>;

/// Starts a watcher for the reflector: over [`Decoded<K>`] once the cache decodes each object on
/// its own, else on the fast path with its fallback. `api` gives the client, the resource and the
/// namespace.
pub(crate) fn watch<K>(
    api: &Api<Decoded<K>>,
    config: &watcher::Config,
    shared: &Arc<Shared<K>>,
) -> Events<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    if shared.counters.decoding() == crate::stats::DecodingMode::Robust {
        return robust(api, config);
    }
    let mut typed =
        Api::<Typed<K>>::all_with(api.clone().into_client(), &K::DynamicType::default());
    if let Some(ns) = api.namespace() {
        typed = typed.constrain(ns);
    }
    FastPath {
        phase: Phase::Fast(watcher(typed, config.clone()).default_backoff().boxed()),
        api: api.clone(),
        config: config.clone(),
        shared: shared.clone(),
    }
    .boxed()
}

fn robust<K>(api: &Api<Decoded<K>>, config: &watcher::Config) -> Events<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    watcher(api.clone(), config.clone())
        .default_backoff()
        .boxed()
}

/// Whether a watcher error of the fast path may come from an object that does not decode as the
/// kind (see the module docs for what kube reports): any serde error of a LIST page or a watch
/// line, whatever its category. serde_json reports some object-level failures as *syntax* errors
/// (an object nested deeper than its recursion limit of 128), and an error does not say whether
/// an item or the envelope failed; per-object decoding tells them apart at the price of one
/// relist, once. Anything else — an HTTP or API error with a code, a timeout, a broken
/// connection — is not.
pub(crate) fn is_decode_error(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(kube::Error::SerdeError(_))
        | watcher::Error::WatchFailed(kube::Error::SerdeError(_)) => true,
        // A watch line that is a JSON object but not a typed event: kube's client read it as a
        // `Status` with nothing in it. An API server's own errors come as ERROR events
        // (`WatchError`) or as HTTP errors (`WatchStartFailed`), always with a code.
        watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 0,
        _ => false,
    }
}

/// The fast path's stream: typed events as [`Decoded::Valid`], until the first decode error, then
/// the per-object stream.
struct FastPath<K> {
    phase: Phase<K>,
    api: Api<Decoded<K>>,
    config: watcher::Config,
    shared: Arc<Shared<K>>,
}

enum Phase<K> {
    Fast(BoxStream<'static, watcher::Result<Event<Typed<K>>>>),
    Robust(Events<K>),
}

// Nothing in `FastPath` is ever pinned in place (both streams are boxed), so it may move.
impl<K> Unpin for FastPath<K> {}

impl<K> FastPath<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    fn switch(&mut self, err: &watcher::Error) {
        if self.shared.counters.record_robust_decoding() {
            warn!(
                error = %err,
                "an object does not decode as the cache's kind; decoding each object on its own \
                 from now on (relisting)"
            );
        }
        self.phase = Phase::Robust(robust(&self.api, &self.config));
    }
}

impl<K> Stream for FastPath<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    type Item = watcher::Result<Event<Decoded<K>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let item = match &mut this.phase {
                Phase::Robust(stream) => return stream.poll_next_unpin(cx),
                Phase::Fast(stream) => ready!(stream.poll_next_unpin(cx)),
            };
            match item {
                Some(Err(err)) if is_decode_error(&err) => this.switch(&err),
                item => return Poll::Ready(item.map(|r| r.map(valid))),
            }
        }
    }
}

fn valid<K>(event: Event<Typed<K>>) -> Event<Decoded<K>> {
    match event {
        Event::Apply(Typed(obj)) => Event::Apply(Decoded::Valid(obj)),
        Event::Delete(Typed(obj)) => Event::Delete(Decoded::Valid(obj)),
        Event::Init => Event::Init,
        Event::InitApply(Typed(obj)) => Event::InitApply(Decoded::Valid(obj)),
        Event::InitDone => Event::InitDone,
    }
}

/// `K` itself, decoded in one pass; a newtype only so that its `Api` can be built and narrowed to
/// a namespace for any `K`, as `Api<Decoded<K>>` is (a dynamic scope).
#[derive(Clone, Debug)]
struct Typed<K>(K);

/// Refuses an object whose `apiVersion` or `kind` names another kind, as `Decoded<K>` does.
impl<'de, K> Deserialize<'de> for Typed<K>
where
    K: Resource + Deserialize<'de>,
    K::DynamicType: Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::object::deserialize_checked(deserializer).map(Typed)
    }
}

impl<K: Resource> Resource for Typed<K> {
    super::object::forward_resource_type!();

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glasskube_api::PackageInfo;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::core::{ObjectList, Status, WatchEvent};

    fn serde_error(text: &str) -> serde_json::Error {
        serde_json::from_str::<ObjectList<Typed<ConfigMap>>>(text).unwrap_err()
    }

    #[test]
    fn a_list_item_that_does_not_decode_is_a_decode_error() {
        let list = r#"{"metadata":{"resourceVersion":"3"},"items":[
            {"metadata":{"name":"a"},"data":{"k":"v"}},{"metadata":{"name":"b"},"data":{"k":1}}]}"#;
        let err = watcher::Error::InitialListFailed(kube::Error::SerdeError(serde_error(list)));
        assert!(is_decode_error(&err));
        // The same list decodes per object.
        let items: ObjectList<Decoded<ConfigMap>> = serde_json::from_str(list).unwrap();
        assert!(matches!(items.items[1], Decoded::Invalid(_)));
    }

    #[test]
    fn a_watch_line_that_does_not_decode_is_a_decode_error() {
        // What kube's client does with a watch line: the typed event, else a bare Status.
        let line = r#"{"type":"MODIFIED","object":{"metadata":{"name":"b"},"data":{"k":1}}}"#;
        assert!(serde_json::from_str::<WatchEvent<Typed<ConfigMap>>>(line).is_err());
        let status: Status = serde_json::from_str(line).unwrap();
        let err = watcher::Error::WatchFailed(kube::Error::Api(status.boxed()));
        assert!(is_decode_error(&err));
    }

    #[test]
    fn an_item_nested_past_the_recursion_limit_is_a_decode_error() {
        let mut deep = String::from("1");
        for _ in 0..200 {
            deep = format!("[{deep}]");
        }
        let list = format!(
            r#"{{"metadata":{{}},"items":[{{"metadata":{{"name":"a"}},"spec":{{"name":"p"}}}},{{"metadata":{{"name":"d"}},"spec":{{"name":"p"}},"status":{{"manifest":{deep}}}}}]}}"#
        );
        let err = serde_json::from_str::<ObjectList<Typed<PackageInfo>>>(&list).unwrap_err();
        assert_eq!(err.classify(), serde_json::error::Category::Syntax, "{err}");
        assert!(is_decode_error(&watcher::Error::InitialListFailed(
            kube::Error::SerdeError(err)
        )));
        // Per object, the deep one fails alone, with its metadata.
        let items: ObjectList<Decoded<PackageInfo>> = serde_json::from_str(&list).unwrap();
        assert!(matches!(items.items[0], Decoded::Valid(_)));
        assert!(
            matches!(&items.items[1], Decoded::Invalid(bad) if bad.metadata.name.as_deref() == Some("d"))
        );
    }

    #[test]
    fn other_errors_are_not_decode_errors() {
        let gone = Status::failure("too old", "Expired").with_code(410);
        let unavailable = Status::failure("down", "ServiceUnavailable").with_code(503);
        for err in [
            watcher::Error::WatchError(gone.clone().boxed()),
            watcher::Error::WatchFailed(kube::Error::Api(unavailable.clone().boxed())),
            watcher::Error::WatchStartFailed(kube::Error::Api(gone.boxed())),
            watcher::Error::InitialListFailed(kube::Error::Api(unavailable.boxed())),
            watcher::Error::NoResourceVersion,
        ] {
            assert!(!is_decode_error(&err), "{err:?}");
        }
    }

    #[test]
    fn typed_refuses_an_object_of_another_kind() {
        let list = r#"{"metadata":{},"items":[{"apiVersion":"packages.glasskube.dev/v1alpha1","kind":"PackageInfo","metadata":{"name":"a"},"spec":{"name":"p"}},
            {"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"spec":{"name":"p"}}]}"#;
        let err = serde_json::from_str::<ObjectList<Typed<PackageInfo>>>(list).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a packages.glasskube.dev/v1alpha1 PackageInfo"),
            "{err}"
        );
        assert!(is_decode_error(&watcher::Error::InitialListFailed(
            kube::Error::SerdeError(err)
        )));
    }

    #[test]
    fn typed_decodes_as_the_kind_itself() {
        let line = r#"{"object":{"metadata":{"name":"a","resourceVersion":"4"},"data":{"k":"v"}},"type":"ADDED"}"#;
        match serde_json::from_str::<WatchEvent<Typed<ConfigMap>>>(line).unwrap() {
            WatchEvent::Added(obj) => {
                assert_eq!(obj.meta().resource_version.as_deref(), Some("4"));
                assert_eq!(obj.0.data.unwrap()["k"], "v");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Typed::<ConfigMap>::url_path(&(), Some("ns")),
            ConfigMap::url_path(&(), Some("ns"))
        );
    }
}
