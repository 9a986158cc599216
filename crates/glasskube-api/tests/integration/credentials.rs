//! Auth kind, inline-credential detection and redaction (typed and raw JSON) of
//! PackageRepository, on the repository's fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use glasskube_api::{
    AuthKind, LAST_APPLIED_ANNOTATION, PackageRepository, REDACTED, redact_json, redaction_marker,
};
use serde::Deserialize;
use serde_json::{Value, json};

const REPOS: &str = apisim::seed::REPOSITORIES_YAML;
const SECRETS: [&str; 3] = [
    "deploy",
    "s3cr3t-inline-password",
    "inline-bearer-token-0123456789",
];

fn raw(name: &str) -> Value {
    serde_yaml::Deserializer::from_str(REPOS)
        .map(|de| serde_json::to_value(serde_yaml::Value::deserialize(de).unwrap()).unwrap())
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no fixture repository {name}"))
}

fn repo(name: &str) -> PackageRepository {
    serde_json::from_value(raw(name)).unwrap()
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} leaked into {text}");
    }
}

#[test]
fn auth_kind() {
    assert_eq!(repo("glasskube").auth_kind(), AuthKind::None);
    assert_eq!(repo("private-basic").auth_kind(), AuthKind::Basic);
    assert_eq!(repo("inline-basic").auth_kind(), AuthKind::Basic);
    assert_eq!(repo("team-bearer").auth_kind(), AuthKind::Bearer);
    assert_eq!(repo("team-bearer-ref").auth_kind(), AuthKind::Bearer);
    assert_eq!(AuthKind::Bearer.to_string(), "bearer");

    let mut empty_auth = repo("glasskube");
    empty_auth.spec.auth = Some(Default::default());
    assert_eq!(empty_auth.auth_kind(), AuthKind::None);
}

#[test]
fn inline_credentials_detection() {
    assert!(!repo("glasskube").has_inline_credentials());
    assert!(
        !repo("private-basic").has_inline_credentials(),
        "secret refs are not inline"
    );
    assert!(repo("inline-basic").has_inline_credentials());
    assert!(repo("team-bearer").has_inline_credentials());
    assert!(!repo("team-bearer-ref").has_inline_credentials());

    // A username alone counts; empty strings do not.
    let mut r = repo("inline-basic");
    r.spec
        .auth
        .as_mut()
        .unwrap()
        .basic
        .as_mut()
        .unwrap()
        .password = None;
    assert!(r.has_inline_credentials());
    r.spec
        .auth
        .as_mut()
        .unwrap()
        .basic
        .as_mut()
        .unwrap()
        .username = Some(String::new());
    assert!(!r.has_inline_credentials());
}

#[test]
fn typed_redaction_replaces_inline_values() {
    let r = repo("inline-basic").redacted();
    let basic = r.spec.auth.as_ref().unwrap().basic.as_ref().unwrap();
    assert_eq!(basic.username.as_deref(), Some(REDACTED));
    assert_eq!(basic.password.as_deref(), Some(REDACTED));
    assert_no_secret(&serde_json::to_string(&r).unwrap());

    let mut b = repo("team-bearer");
    b.redact_credentials();
    let bearer = b.spec.auth.as_ref().unwrap().bearer.as_ref().unwrap();
    assert_eq!(bearer.token.as_deref(), Some(REDACTED));
    assert_eq!(
        b.spec.url,
        repo("team-bearer").spec.url,
        "only credentials change"
    );
    assert_eq!(b.status, repo("team-bearer").status);
}

#[test]
fn redaction_leaves_secret_refs_and_plain_repos_alone() {
    for name in ["glasskube", "private-basic", "team-bearer-ref"] {
        assert_eq!(repo(name).redacted(), repo(name), "{name}");
        let mut v = raw(name);
        assert_eq!(redact_json(&mut v), 0, "{name}");
        assert_eq!(v, raw(name), "{name}");
    }
    // Mixed: inline password and a username secret ref.
    let mut mixed = repo("private-basic");
    let basic = mixed.spec.auth.as_mut().unwrap().basic.as_mut().unwrap();
    basic.password = Some("hunter2".into());
    basic.password_secret_ref = None;
    let redacted = mixed.redacted();
    let basic = redacted.spec.auth.as_ref().unwrap().basic.as_ref().unwrap();
    assert_eq!(basic.password.as_deref(), Some(REDACTED));
    assert_eq!(basic.username, None);
    let user_ref = basic.username_secret_ref.as_ref().unwrap();
    assert_eq!(
        (user_ref.name.as_str(), user_ref.key.as_str()),
        ("private-repo-auth", "username")
    );
}

#[test]
fn debug_output_masks_credentials() {
    for name in ["inline-basic", "team-bearer"] {
        let text = format!("{:?}", repo(name));
        assert_no_secret(&text);
        assert!(text.contains(REDACTED), "{text}");
    }
    assert!(format!("{:?}", repo("private-basic")).contains("private-repo-auth"));
}

#[test]
fn json_redaction() {
    let marker = redaction_marker(REDACTED);
    let mut v = raw("inline-basic");
    assert_eq!(redact_json(&mut v), 2);
    assert_eq!(v["spec"]["auth"]["basic"]["username"], marker);
    assert_eq!(v["spec"]["auth"]["basic"]["password"], marker);
    assert_eq!(v["spec"]["url"], raw("inline-basic")["spec"]["url"]);
    // Redacting twice changes nothing.
    let once = v.clone();
    assert_eq!(redact_json(&mut v), 0);
    assert_eq!(v, once);
    // The typed display form puts the placeholder text where the JSON form puts a marker.
    let mut display = serde_json::to_value(repo("inline-basic").redacted()).unwrap();
    display["spec"]["auth"]["basic"]["username"] = marker.clone();
    display["spec"]["auth"]["basic"]["password"] = marker.clone();
    assert_eq!(v, display);

    let mut v = raw("team-bearer");
    assert_eq!(redact_json(&mut v), 1);
    assert_eq!(v["spec"]["auth"]["bearer"]["token"], marker);
    assert_no_secret(&v.to_string());
}

#[test]
fn url_userinfo_and_last_applied_annotation_are_redacted() {
    let mut v = raw("inline-basic");
    let applied = v.to_string();
    v["spec"]["url"] = json!("https://deploy:s3cr3t-inline-password@mirror.example/packages");
    v["metadata"]["annotations"] = json!({
        LAST_APPLIED_ANNOTATION: applied,
        "team": "platform",
    });
    let typed: PackageRepository = serde_json::from_value(v.clone()).unwrap();
    // The spec's Debug masks the URL's userinfo; ObjectMeta's Debug (k8s-openapi's) prints the
    // annotation, which is why the cache drops it by default and logs use `redacted()`.
    assert_no_secret(&format!("{:?}", typed.spec));
    let display = typed.redacted();
    assert_no_secret(&format!("{display:?}"));
    assert_eq!(
        display.spec.url,
        "https://<redacted>@mirror.example/packages"
    );
    assert_no_secret(&serde_json::to_string(&display).unwrap());
    assert_eq!(display.metadata.annotations.unwrap().len(), 1);

    assert_eq!(redact_json(&mut v), 4);
    assert_no_secret(&v.to_string());
    assert_eq!(
        v["spec"]["url"],
        redaction_marker("https://<redacted>@mirror.example/packages")
    );
    assert_eq!(v["metadata"]["annotations"], json!({"team": "platform"}));
}

#[test]
fn json_redaction_of_lists_events_and_odd_shapes() {
    let mut list = json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageRepositoryList",
        "metadata": {},
        "items": [raw("inline-basic"), raw("private-basic"), raw("team-bearer")]
    });
    assert_eq!(redact_json(&mut list), 3);
    assert_no_secret(&list.to_string());
    assert_eq!(list["items"][1], raw("private-basic"));

    let mut event = json!({"type": "ADDED", "object": raw("team-bearer")});
    assert_eq!(redact_json(&mut event), 1);
    assert_no_secret(&event.to_string());

    // Non-string credential values are replaced too; null/empty and garbage shapes are kept.
    let mut odd = json!({"spec": {"auth": {"basic": {"password": 42, "username": ""},
                                           "bearer": {"token": null}}}});
    assert_eq!(redact_json(&mut odd), 1);
    assert_eq!(
        odd["spec"]["auth"]["basic"]["password"],
        redaction_marker(REDACTED)
    );
    assert_eq!(odd["spec"]["auth"]["basic"]["username"], "");
    for mut garbage in [
        json!(null),
        json!("x"),
        json!([1]),
        json!({"spec": {"auth": "x"}}),
        json!({"spec": {"auth": {"basic": [1]}}}),
    ] {
        let before = garbage.clone();
        assert_eq!(redact_json(&mut garbage), 0);
        assert_eq!(garbage, before);
    }
}
