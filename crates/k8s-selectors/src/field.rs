//! Field selectors: apimachinery's `fields.ParseSelector` (and `UnescapeValue`), restricted to
//! the fields every kind supports.

use std::str::FromStr;

use crate::SelectorError;

/// The fields a `fieldSelector` may name for every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

/// One term: the field, whether it must equal (`=`, `==`) or differ (`!=`), and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: Field,
    equal: bool,
    value: String,
}

/// A parsed `fieldSelector` over `metadata.name` and `metadata.namespace`: every term must hold
/// (a comma is AND). The empty selector selects everything.
///
/// As upstream: terms are split at commas not escaped with `\`; empty terms are skipped; each
/// term is split at the first `!=`, `==` or `=`; whitespace is not trimmed (it is part of the
/// field or the value); values may escape `\`, `,` and `=` with a backslash, and must not
/// contain an unescaped `,` or `=`. Other fields are [`SelectorError::UnknownField`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

impl FieldSelector {
    /// Parses a field selector with upstream's grammar; the error's message is upstream's.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable(); // upstream sorts, which decides which bad term is reported
        let mut raw = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, equal, value) =
                split_term(part).ok_or_else(|| SelectorError::FieldSyntax {
                    selector: s.to_owned(),
                    term: part.to_owned(),
                })?;
            raw.push((field, equal, unescape_value(value)?));
        }
        // Upstream's server rejects unknown fields after parsing (the kind's field label
        // conversion), so a syntax error anywhere wins over an unknown field.
        let terms = raw
            .into_iter()
            .map(|(field, equal, value)| {
                let field = match field {
                    "metadata.name" => Field::Name,
                    "metadata.namespace" => Field::Namespace,
                    other => {
                        return Err(SelectorError::UnknownField {
                            field: other.to_owned(),
                        });
                    }
                };
                Ok(Term {
                    field,
                    equal,
                    value,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { terms })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object with this name and namespace satisfies every term. An absent name or
    /// namespace (a cluster-scoped object) is the empty string, as upstream's field sets have it.
    pub fn matches(&self, name: Option<&str>, namespace: Option<&str>) -> bool {
        self.terms.iter().all(|t| {
            let actual = match t.field {
                Field::Name => name,
                Field::Namespace => namespace,
            }
            .unwrap_or("");
            (actual == t.value) == t.equal
        })
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `splitTerms`: split at commas that are not escaped; the escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or_default());
    terms
}

/// `splitTerm`: the field, whether the operator is an equality, and the raw value, split at the
/// first position where `!=`, `==` or `=` begins.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let (lhs, rest) = term.split_at_checked(i)?;
        [("!=", false), ("==", true), ("=", true)]
            .into_iter()
            .find_map(|(op, equal)| rest.strip_prefix(op).map(|rhs| (lhs, equal, rhs)))
    })
}

/// `UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; a bare `,` or `=` is an error.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::FieldValue {
                    reason: format!("invalid escape sequence: \\{c}"),
                });
            }
            out.push(c);
            escaped = false;
        } else {
            match c {
                '\\' => escaped = true,
                ',' | '=' => {
                    return Err(SelectorError::FieldValue {
                        reason: format!("unescaped character in value: '{c}'"),
                    });
                }
                _ => out.push(c),
            }
        }
    }
    if escaped {
        return Err(SelectorError::FieldValue {
            reason: "invalid escape sequence: \\".to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn m(s: &str, name: Option<&str>, namespace: Option<&str>) -> bool {
        FieldSelector::parse(s).unwrap().matches(name, namespace)
    }

    /// Every case of both former implementations (apisim's and the layer's).
    #[test]
    fn field_selectors() {
        let a = |s: &str| m(s, Some("a"), Some("ns1"));
        assert!(a(""));
        assert!(a("metadata.name=a"));
        assert!(a("metadata.name==a"));
        assert!(!a("metadata.name!=a"));
        assert!(a("metadata.namespace=ns1,metadata.name!=b"));
        assert!(!a("metadata.namespace=ns2"));
        assert!(m("metadata.namespace=", Some("a"), None), "cluster-scoped");
        assert!(!m("metadata.namespace!=", Some("a"), None));
        assert!(m("metadata.name=", None, None));
        for s in [
            "spec.url=x",
            "metadata.name",
            "metadata.name = a",
            "a\\,b=c",
        ] {
            assert!(FieldSelector::parse(s).is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn empty_terms_are_skipped_whitespace_is_data() {
        let a = |s: &str| m(s, Some("a"), Some("ns1"));
        assert!(a(","));
        assert!(a("metadata.name=a,"));
        assert!(a(",metadata.name=a,,metadata.namespace=ns1"));
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
        assert!(!a("metadata.name= a"), "the value is ' a'");
        assert!(a("metadata.name!= a"));
        for s in [" ", "metadata.name=a, ", " metadata.name=a"] {
            assert!(FieldSelector::parse(s).is_err(), "{s:?} should not parse");
        }
        assert_eq!(
            FieldSelector::parse("metadata.name =a").unwrap_err(),
            SelectorError::UnknownField {
                field: "metadata.name ".to_owned()
            }
        );
    }

    #[test]
    fn operators_split_at_the_first_one() {
        // `a!=b` is `!=`; `a=!b` is `=` with the value `!b`; `==` wins over `=`.
        assert!(m("metadata.name=!b", Some("!b"), None));
        assert!(m("metadata.name==!b", Some("!b"), None));
        assert!(m("metadata.name!=!b", Some("a"), None));
        assert!(m("metadata.name=a!b", Some("a!b"), None));
        assert!(FieldSelector::parse("metadata.name=a=b").is_err());
        assert!(FieldSelector::parse("metadata.name!=a=b").is_err());
        assert!(FieldSelector::parse("metadata.name===a").is_err());
    }

    #[test]
    fn escapes() {
        assert!(m("metadata.name=a\\,b", Some("a,b"), None));
        assert!(m("metadata.name=a\\=b", Some("a=b"), None));
        assert!(m("metadata.name=a\\\\b", Some("a\\b"), None));
        assert!(m(
            "metadata.name=a\\,b,metadata.namespace=n",
            Some("a,b"),
            Some("n")
        ));
        for s in ["metadata.name=a\\b", "metadata.name=a\\"] {
            assert!(
                matches!(
                    FieldSelector::parse(s),
                    Err(SelectorError::FieldValue { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn error_kinds_and_messages() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err();
        assert_eq!(
            err("spec.url=x"),
            SelectorError::UnknownField {
                field: "spec.url".to_owned()
            }
        );
        assert_eq!(
            err("spec.url=x").to_string(),
            "field label not supported: spec.url"
        );
        assert_eq!(
            err("metadata.name=a,bogus").to_string(),
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'"
        );
        assert_eq!(
            err("metadata.name=a\\x").to_string(),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            err("metadata.name=a=b").to_string(),
            "invalid field selector: unescaped character in value: '='"
        );
        // a syntax error anywhere wins over an unknown field
        assert!(matches!(
            err("spec.url=x,bogus"),
            SelectorError::FieldSyntax { .. }
        ));
    }

    #[test]
    fn from_str_and_is_empty() {
        assert!("".parse::<FieldSelector>().unwrap().is_empty());
        assert!(
            !"metadata.name=a"
                .parse::<FieldSelector>()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            "metadata.name=a".parse::<FieldSelector>().unwrap(),
            FieldSelector::parse("metadata.name==a").unwrap()
        );
    }
}
