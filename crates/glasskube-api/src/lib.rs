//! Glasskube's custom resources (`packages.glasskube.dev/v1alpha1`) as typed kube-rs objects.
//!
//! This crate sits at the bottom of repocache's data path: the `repocache` cache watches the
//! Kubernetes API (a real cluster or the `apisim` simulated server) and stores these types, first
//! of all [`PackageRepository`]; `apisim` seeds and serves objects of the same shapes. The types
//! mirror upstream Glasskube's Go API field for field, so that decoding an object and encoding it
//! again yields the same JSON (no field is lost and none is added).
//!
//! Besides the four kinds ([`PackageRepository`], [`Package`], [`ClusterPackage`],
//! [`PackageInfo`]) the crate holds the small domain helpers everyone needs: which repository is
//! the default one, whether an object is `Ready`, which kind of authentication a repository uses,
//! and the redaction of inline credentials ([`PackageRepository::redacted`], [`redact_json`]) that
//! the project applies to every dump, log line and debug response. [`kinds`] is the one list of
//! kinds everyone iterates; [`crd`] renders their CustomResourceDefinitions, committed under
//! `deploy/crds/`.
//!
//! ```
//! use glasskube_api::{AuthKind, PackageRepository, REDACTED};
//!
//! let repo: PackageRepository = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "packages.glasskube.dev/v1alpha1",
//!     "kind": "PackageRepository",
//!     "metadata": {"name": "mirror"},
//!     "spec": {"url": "https://mirror.example.org/packages",
//!              "auth": {"bearer": {"token": "secret-token"}}}
//! }))?;
//! assert!(!repo.is_default());
//! assert_eq!(repo.is_ready(), None); // no status yet
//! assert_eq!(repo.auth_kind(), AuthKind::Bearer);
//! assert!(repo.has_inline_credentials());
//! let shown = serde_json::to_string(&repo.redacted())?;
//! assert!(shown.contains(REDACTED) && !shown.contains("secret-token"));
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod cluster_package;
pub mod condition;
pub mod crd;
pub mod kinds;
pub mod package;
pub mod package_info;
pub mod package_repository;
pub(crate) mod tight;

pub use cluster_package::{ClusterPackage, ClusterPackageSpec};
pub use condition::{Condition, HasConditions};
pub use package::{
    ObjectKeyValueSource, OwnedResourceRef, Package, PackageInfoTemplate, PackageSpec,
    PackageStatus, PackageValueSource, ValueConfiguration, ValueReference,
};
pub use package_info::{PackageInfo, PackageInfoSpec, PackageInfoStatus};
pub use package_repository::{
    AuthKind, DEFAULT_REPOSITORY_ANNOTATION, LAST_APPLIED_ANNOTATION, PackageRepository,
    PackageRepositoryAuthSpec, PackageRepositoryBasicAuthSpec, PackageRepositoryBearerAuthSpec,
    PackageRepositorySpec, PackageRepositoryStatus, REDACTED, REDACTION_MARKER_KEY,
    SecretKeySelector, mask_url_userinfo, redact_json, redaction_marker, redaction_marker_text,
};

/// API group of all Glasskube kinds.
pub const GROUP: &str = "packages.glasskube.dev";
/// API version of all Glasskube kinds served here.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` field value of all Glasskube objects (`group/version`).
pub const API_VERSION: &str = "packages.glasskube.dev/v1alpha1";

/// Schema for fields whose content is an arbitrary JSON object kept verbatim
/// (`x-kubernetes-preserve-unknown-fields`), e.g. `PackageInfo.status.manifest`.
pub(crate) fn opaque_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
