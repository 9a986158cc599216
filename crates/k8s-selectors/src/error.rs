//! Why a selector does not parse.

/// A label or field selector that does not parse. The message (`Display`) is meant for the
/// `message` of a 400 `BadRequest` `Status`, and follows upstream's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// A label selector that does not follow the grammar: an unexpected or missing token.
    #[error("{message}")]
    LabelSyntax {
        /// Upstream's message, e.g. `found ',', expected: identifier after ','`.
        message: String,
    },
    /// A label key that is not a qualified name (`[prefix/]name`).
    #[error("unable to parse requirement: invalid label key \"{key}\": {reason}")]
    InvalidLabelKey {
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A label value that is not a valid label value, or not an integer after `>` or `<`.
    #[error("unable to parse requirement: invalid label value: \"{value}\": {reason}")]
    InvalidLabelValue {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field selector term that is not `field=value`, `field==value` or `field!=value`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax {
        /// The whole selector.
        selector: String,
        /// The term that has no operator.
        term: String,
    },
    /// A field selector value with an invalid escape sequence or an unescaped `,` or `=`.
    #[error("invalid field selector: {reason}")]
    FieldValue {
        /// What is wrong with the value.
        reason: String,
    },
    /// A well-formed term over a field other than `metadata.name` and `metadata.namespace`.
    #[error("field label not supported: {field}")]
    UnknownField {
        /// The field as written.
        field: String,
    },
}
