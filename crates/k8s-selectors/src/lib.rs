//! Kubernetes label and field selectors: upstream's grammar, validation and matching, in one
//! place. Both sides of repocache's data path evaluate `labelSelector` and `fieldSelector` with
//! this crate: apisim (the simulated API server) filters its LIST and WATCH answers with it and
//! turns a [`SelectorError`] into a 400 `BadRequest` `Status`, and repocache's client layer
//! (`CacheLayer`) filters the LISTs it answers from a cache with it and passes any request whose
//! selector does not parse through to the server. Because both use the same parser and the
//! same matching, the layer's answers and the server's cannot drift apart.
//!
//! The grammar and the semantics follow kubernetes apimachinery: [`LabelSelector`] is
//! `labels.Parse` (a port of its lexer and recursive-descent parser, with `IsQualifiedName` and
//! `IsValidLabelValue` for keys and values) and `Requirement.Matches`; [`FieldSelector`] is
//! `fields.ParseSelector` (terms split at unescaped commas, `\,` `\=` `\\` escapes) restricted to
//! the fields every kind supports, `metadata.name` and `metadata.namespace`. Matching takes
//! plain strings, so the crate depends on neither serde_json nor kube.
//!
//! Beside the selectors, [`url::mask_userinfo`] masks the credentials of a URL: the one
//! implementation glasskube-api and repocache both use (this is the one crate of ours both may
//! depend on).
//!
//! ```
//! use k8s_selectors::{FieldSelector, LabelSelector};
//!
//! let labels = LabelSelector::parse("app in (web, api), tier!=db, !legacy").unwrap();
//! let get = |key: &str| match key {
//!     "app" => Some("web"),
//!     _ => None,
//! };
//! assert!(labels.matches(get));
//!
//! let fields = FieldSelector::parse("metadata.namespace=prod").unwrap();
//! assert!(fields.matches(Some("a"), Some("prod")));
//! assert!(!fields.matches(Some("a"), None));
//! ```

mod error;
mod field;
mod label;
pub mod url;

pub use error::SelectorError;
pub use field::FieldSelector;
pub use label::LabelSelector;
