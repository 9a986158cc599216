//! Property: for random PackageRepositories with credentials in every place they can hide
//! (inline `spec.auth` basic and bearer, the URL's userinfo, kubectl's last-applied annotation,
//! an unknown nested field), no output path contains any credential byte string unless
//! secrets were asked for: the CLI's renderers (`table`, `wide`, `json`, `yaml`, `name`), the
//! debug endpoint's JSON (with Glasskube's redaction and with the generic default), the
//! `Debug` output of a cached object and of the redacted display form, and the tracing output
//! of the cache while it takes the objects in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use glasskube_api::{LAST_APPLIED_ANNOTATION, PackageRepository};
use proptest::prelude::*;
use repocache::debug::{CacheView, DebugServer, Redactor};
use repocache::{CacheConfig, Event, Writer};
use repocache_cli::table::{Output, write_dump};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OUTPUTS: [Output; 5] = [
    Output::Table,
    Output::Wide,
    Output::Json,
    Output::Yaml,
    Output::Name,
];

/// A credential: a prefix no other text contains, then characters that JSON, YAML and `Debug`
/// print as they are (so a leak shows as the same bytes), URL userinfo-safe.
fn credential() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~!$&()*+,;=-]{6,24}".prop_map(|s| format!("Qz7{s}"))
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    basic: Option<(Option<String>, Option<String>)>,
    bearer: Option<String>,
    url_userinfo: Option<(String, Option<String>)>,
    nested: Option<String>,
    applied: bool,
}

impl Case {
    fn secrets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some((user, password)) = &self.basic {
            out.extend(user.as_deref());
            out.extend(password.as_deref());
        }
        out.extend(self.bearer.as_deref());
        if let Some((user, password)) = &self.url_userinfo {
            out.push(user);
            out.extend(password.as_deref());
        }
        out.extend(self.nested.as_deref());
        out
    }

    /// The object as the server holds it.
    fn object(&self) -> Value {
        let url = match &self.url_userinfo {
            Some((user, Some(password))) => {
                format!("https://{user}:{password}@mirror.example/{}", self.name)
            }
            Some((user, None)) => format!("https://{user}@mirror.example/{}", self.name),
            None => format!("https://mirror.example/{}", self.name),
        };
        let mut spec = json!({"url": url});
        let mut auth = json!({});
        if let Some((user, password)) = &self.basic {
            auth["basic"] = json!({"username": user, "password": password});
        }
        if let Some(token) = &self.bearer {
            auth["bearer"] = json!({"token": token});
        }
        if auth.as_object().is_some_and(|a| !a.is_empty()) {
            spec["auth"] = auth;
        }
        if let Some(nested) = &self.nested {
            // Unknown to the typed object, kept in the annotation (as kubectl keeps it).
            spec["mirror"] = json!({"settings": [{"password": nested}]});
        }
        let mut object = json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": self.name, "resourceVersion": "1", "annotations": {"team": "a"}},
            "spec": spec,
        });
        if self.applied {
            let applied = object.to_string();
            object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = json!(applied);
        }
        object
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        "[a-z][a-z0-9]{0,10}",
        proptest::option::of((
            proptest::option::of(credential()),
            proptest::option::of(credential()),
        )),
        proptest::option::of(credential()),
        proptest::option::of((credential(), proptest::option::of(credential()))),
        proptest::option::of(credential()),
        any::<bool>(),
    )
        .prop_map(
            |(name, basic, bearer, url_userinfo, nested, applied)| Case {
                name,
                basic,
                bearer,
                url_userinfo,
                nested,
                applied,
            },
        )
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what}: {secret:?} leaked:\n{text}");
    }
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

fn check(cases: &[Case]) {
    let secrets: Vec<&str> = cases.iter().flat_map(Case::secrets).collect();
    let objects: Vec<PackageRepository> = cases
        .iter()
        .map(|c| serde_json::from_value(c.object()).unwrap())
        .collect();

    // The cache takes the objects in, with every tracing event captured.
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let fill = |config: CacheConfig<PackageRepository>| {
        let mut writer = Writer::with_config(config);
        writer.apply(Event::Init);
        for object in &objects {
            writer.apply(Event::InitApply(object.clone()));
        }
        writer.apply(Event::InitDone);
        writer
    };
    let (default_writer, raw_writer) = tracing::subscriber::with_default(subscriber, || {
        (
            fill(CacheConfig::new()),
            fill(CacheConfig::new().no_transform()),
        )
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_clean("tracing output", &logs, &secrets);

    // Debug of what a default cache holds, and of the display form.
    let default_cache = default_writer.cache();
    assert_clean(
        "Debug of cached objects",
        &format!("{:?}", default_cache.list()),
        &secrets,
    );
    for object in &objects {
        assert_clean(
            "Debug of redacted()",
            &format!("{:?}", object.redacted()),
            &secrets,
        );
        assert_clean("Debug of the spec", &format!("{:?}", object.spec), &secrets);
    }

    // Every renderer, on a cache that keeps objects byte-equal (the worst case) and on a default
    // one, with the command's redaction and with the generic default alone.
    let raw_cache = raw_writer.cache();
    let glasskube: Redactor = Arc::new(repocache_cli::redact);
    let generic: Redactor = Arc::new(repocache::debug::redact_credentials);
    for cache in [&raw_cache, &default_cache] {
        let view = CacheView::new(cache);
        for redactor in [&glasskube, &generic] {
            let report = view.report(true, Some(redactor));
            for output in OUTPUTS {
                let mut out = Vec::new();
                write_dump(&mut out, std::slice::from_ref(&report), output).unwrap();
                let text = String::from_utf8(out).unwrap();
                assert_clean(&format!("dump -o {output:?}"), &text, &secrets);
            }
        }
        // Asked for, the secrets are there (so the checks above can fail).
        let report = view.report(true, None);
        let mut out = Vec::new();
        write_dump(&mut out, std::slice::from_ref(&report), Output::Json).unwrap();
        let text = String::from_utf8(out).unwrap();
        let typed_secrets = cases.iter().flat_map(|c| {
            let mut c = c.clone();
            c.nested = None; // unknown fields do not survive decoding
            c.secrets()
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        for secret in typed_secrets {
            assert!(
                text.contains(&secret),
                "{secret} missing from the unredacted dump"
            );
        }
    }

    // The debug endpoint's JSON.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for glasskube_hook in [true, false] {
            let mut builder = DebugServer::builder().cache(&raw_cache);
            if glasskube_hook {
                builder = builder.redact(repocache_cli::redact);
            }
            let debug = builder.start().await.unwrap();
            let body = get(debug.local_addr(), "/debug/caches?objects=true").await;
            assert!(body.starts_with("HTTP/1.1 200"), "{body}");
            assert_clean("/debug/caches", &body, &secrets);
            debug.shutdown().await;
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_output_path_shows_a_credential(cases in proptest::collection::vec(case(), 1..4)) {
        let mut cases = cases;
        // Distinct names (the cache is keyed by name).
        for (i, case) in cases.iter_mut().enumerate() {
            case.name = format!("{}-{i}", case.name);
        }
        check(&cases);
    }
}
