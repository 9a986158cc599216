//! Label and field selectors, parsed with upstream's grammar and matched against JSON objects.

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
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

/// A parsed `labelSelector`: all requirements must hold (comma = AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

/// A parsed `fieldSelector` over `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(FieldKey, bool, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldKey {
    Name,
    Namespace,
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return false;
    }
    valid_label_value(name) && !name.is_empty()
}

fn valid_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Split at commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '('"))?;
    let mut vals = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_label_value(v) {
            return Err(format!("invalid label value: \"{v}\""));
        }
        vals.push(v.to_string());
    }
    Ok(vals)
}

impl LabelSelector {
    /// Parse a label selector; the error is the message for a 400 BadRequest.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for part in split_top(s)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "unable to parse requirement: empty requirement in '{s}'"
                ));
            }
            reqs.push(Self::parse_req(part)?);
        }
        Ok(LabelSelector { reqs })
    }

    fn parse_req(part: &str) -> Result<LabelReq, String> {
        let check_key = |k: &str| -> Result<String, String> {
            let k = k.trim();
            if valid_label_key(k) {
                Ok(k.to_string())
            } else {
                Err(format!("invalid label key \"{k}\""))
            }
        };
        let check_val = |v: &str| -> Result<String, String> {
            let v = v.trim();
            if valid_label_value(v) {
                Ok(v.to_string())
            } else {
                Err(format!("invalid label value: \"{v}\""))
            }
        };
        if let Some(k) = part.strip_prefix('!') {
            return Ok(LabelReq::NotExists(check_key(k)?));
        }
        if let Some((k, v)) = part.split_once("!=") {
            return Ok(LabelReq::NotEq(check_key(k)?, check_val(v)?));
        }
        if let Some((k, v)) = part.split_once("==") {
            return Ok(LabelReq::Eq(check_key(k)?, check_val(v)?));
        }
        if let Some((k, v)) = part.split_once('=') {
            return Ok(LabelReq::Eq(check_key(k)?, check_val(v)?));
        }
        for (op, gt) in [('>', true), ('<', false)] {
            if let Some((k, v)) = part.split_once(op) {
                let n: i64 = v.trim().parse().map_err(|_| {
                    format!(
                        "for 'gt', 'lt' operators, the value must be an integer: \"{}\"",
                        v.trim()
                    )
                })?;
                let k = check_key(k)?;
                return Ok(if gt {
                    LabelReq::Gt(k, n)
                } else {
                    LabelReq::Lt(k, n)
                });
            }
        }
        // `key in (…)`, `key notin (…)`, or bare `key`
        let mut words = part.splitn(2, char::is_whitespace);
        let key = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim();
        if rest.is_empty() {
            if key.contains('(') || key.contains(')') {
                return Err(format!("unable to parse requirement: '{part}'"));
            }
            return Ok(LabelReq::Exists(check_key(key)?));
        }
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(LabelReq::NotIn(check_key(key)?, parse_set(set)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(LabelReq::In(check_key(key)?, parse_set(set)?));
        }
        Err(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `obj`'s `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
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
    /// Parse a field selector; the error is the message for a 400 BadRequest.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { reqs });
        }
        for part in s.split(',') {
            let part = part.trim();
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let key = match field.trim() {
                "metadata.name" => FieldKey::Name,
                "metadata.namespace" => FieldKey::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            reqs.push((key, eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `obj` satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(key, eq, value)| {
            let path = match key {
                FieldKey::Name => "/metadata/name",
                FieldKey::Namespace => "/metadata/namespace",
            };
            let actual = obj.pointer(path).and_then(Value::as_str).unwrap_or("");
            (actual == value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns1", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
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
    }

    #[test]
    fn label_errors() {
        for bad in [
            "app in web",
            "app=web,",
            "a b c",
            "app in (web",
            "=x",
            "app=-bad-",
            "n>x",
            "Bad/Key=1",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=a"));
        assert!(m("metadata.name==a"));
        assert!(!m("metadata.name!=a"));
        assert!(m("metadata.namespace=ns1,metadata.name!=b"));
        assert!(!m("metadata.namespace=ns2"));
        assert!(FieldSelector::parse("spec.url=x").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
