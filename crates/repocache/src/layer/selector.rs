//! Label and field selectors, parsed with upstream's grammar and evaluated against an object's
//! metadata.
//!
//! The parser is deliberately strict: it accepts only selectors it is sure upstream accepts and
//! evaluates the same way. Anything else is an error, and the layer then passes the request
//! to the server, whose answer (a result or a 400) is authoritative.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed `labelSelector`: every requirement must hold (a comma is AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    reqs: Vec<LabelReq>,
}

/// The fields a `fieldSelector` may name for every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

/// A parsed `fieldSelector` over `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    reqs: Vec<(Field, bool, String)>,
}

/// Not a selector this module can vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// A DNS-1123 subdomain (a label key's prefix).
fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 253
        && p.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A qualified name's name part, or a non-empty label value.
fn valid_name(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn key(k: &str) -> Result<String, Unsupported> {
    let k = k.trim();
    let ok = match k.split_once('/') {
        Some((prefix, name)) => valid_prefix(prefix) && valid_name(name),
        None => valid_name(k),
    };
    if ok {
        Ok(k.to_owned())
    } else {
        Err(Unsupported)
    }
}

fn value(v: &str) -> Result<String, Unsupported> {
    let v = v.trim();
    if valid_name(v) {
        Ok(v.to_owned())
    } else {
        Err(Unsupported)
    }
}

fn set(rest: &str) -> Result<Vec<String>, Unsupported> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or(Unsupported)?;
    inner.split(',').map(value).collect()
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, Unsupported> {
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or(Unsupported)?,
            ',' if depth == 0 => {
                out.push(s.get(start..i).ok_or(Unsupported)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Unsupported);
    }
    out.push(s.get(start..).ok_or(Unsupported)?);
    Ok(out)
}

impl LabelSelector {
    /// Parses a label selector.
    pub(crate) fn parse(s: &str) -> Result<Self, Unsupported> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let reqs = split_top(s)?
            .into_iter()
            .map(Self::requirement)
            .collect::<Result<_, _>>()?;
        Ok(Self { reqs })
    }

    fn requirement(part: &str) -> Result<LabelReq, Unsupported> {
        let part = part.trim();
        if let Some(k) = part.strip_prefix('!') {
            return Ok(LabelReq::NotExists(key(k)?));
        }
        if let Some((k, v)) = part.split_once("!=") {
            return Ok(LabelReq::NotEq(key(k)?, value(v)?));
        }
        if let Some((k, v)) = part.split_once("==") {
            return Ok(LabelReq::Eq(key(k)?, value(v)?));
        }
        if let Some((k, v)) = part.split_once('=') {
            return Ok(LabelReq::Eq(key(k)?, value(v)?));
        }
        if let Some((k, v)) = part.split_once('>') {
            let n = v.trim().parse().map_err(|_| Unsupported)?;
            return Ok(LabelReq::Gt(key(k)?, n));
        }
        if let Some((k, v)) = part.split_once('<') {
            let n = v.trim().parse().map_err(|_| Unsupported)?;
            return Ok(LabelReq::Lt(key(k)?, n));
        }
        match part.split_once(char::is_whitespace) {
            None => Ok(LabelReq::Exists(key(part)?)),
            Some((k, rest)) => {
                let rest = rest.trim_start();
                if let Some(s) = rest.strip_prefix("notin") {
                    Ok(LabelReq::NotIn(key(k)?, set(s)?))
                } else if let Some(s) = rest.strip_prefix("in") {
                    Ok(LabelReq::In(key(k)?, set(s)?))
                } else {
                    Err(Unsupported)
                }
            }
        }
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub(crate) fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

impl FieldSelector {
    /// Parses a field selector over `metadata.name` / `metadata.namespace`. Other fields
    /// (a CRD's selectable fields, or invalid ones) and escapes are the server's business.
    pub(crate) fn parse(s: &str) -> Result<Self, Unsupported> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        if s.contains('\\') || s.contains(char::is_whitespace) {
            return Err(Unsupported);
        }
        let mut reqs = Vec::new();
        for term in s.split(',') {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(Unsupported);
            };
            let field = match field {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                _ => return Err(Unsupported),
            };
            if value.contains(['=', '!']) {
                return Err(Unsupported);
            }
            reqs.push((field, eq, value.to_owned()));
        }
        Ok(Self { reqs })
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object with this metadata satisfies every requirement.
    pub(crate) fn matches(&self, meta: &ObjectMeta) -> bool {
        self.reqs.iter().all(|(field, eq, value)| {
            let actual = match field {
                Field::Name => meta.name.as_deref(),
                Field::Namespace => meta.namespace.as_deref(),
            }
            .unwrap_or("");
            (actual == value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_operators() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(m(" app = web "));
        assert!(!m("app!=web"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web,db)"));
        assert!(m("missing notin (web)"));
        assert!(!m("missing in (web)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("app=web,tier=front"));
        assert!(!m("app=web,tier=back"));
        assert!(m("app in (web),tier notin (back)"));
        assert!(m("n>3"));
        assert!(!m("n<3"));
        assert!(m("example.com/x notin (a)"));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
    }

    #[test]
    fn label_selectors_the_layer_leaves_to_the_server() {
        for s in [
            "app in web",
            "app=web,",
            "a b c",
            "app in (web",
            "app in ()",
            "=x",
            "app=-bad-",
            "app=",
            "n>x",
            "Bad/Key=1",
            "app)",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn field_selectors() {
        let meta = ObjectMeta {
            name: Some("a".into()),
            namespace: Some("ns1".into()),
            ..ObjectMeta::default()
        };
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&meta);
        assert!(m("metadata.name=a"));
        assert!(m("metadata.name==a"));
        assert!(!m("metadata.name!=a"));
        assert!(m("metadata.namespace=ns1,metadata.name!=b"));
        assert!(!m("metadata.namespace=ns2"));
        let cluster = ObjectMeta {
            name: Some("a".into()),
            ..ObjectMeta::default()
        };
        assert!(
            FieldSelector::parse("metadata.namespace=")
                .unwrap()
                .matches(&cluster)
        );
        for s in [
            "spec.url=x",
            "metadata.name",
            "metadata.name = a",
            "a\\,b=c",
        ] {
            assert!(FieldSelector::parse(s).is_err(), "{s} should not parse");
        }
    }
}
