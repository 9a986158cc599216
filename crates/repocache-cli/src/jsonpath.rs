//! `-o jsonpath=TEMPLATE`: kubectl's template syntax over [`jsonpath_rust`] (RFC 9535 JSONPath,
//! the crate kube itself uses for kubeconfig auth providers).
//!
//! Supported, as kubectl: text outside braces is printed as it is; each `{EXPR}` is a JSONPath
//! expression relative to the printed object (`{.items[*].metadata.name}`,
//! `{.metadata.labels.app}`, `{.items[0].spec.url}`, `{.items[?(@.spec.default==true)].metadata.name}`);
//! `{$}` is the whole object; `{"text"}` or `{'text'}` prints a literal (`{"\n"}`, `{"\t"}`).
//! Several results are joined with a space; strings print bare, other values as JSON; a path
//! that matches nothing prints nothing. Not supported (an error says so): `{range}`/`{end}`,
//! `{..name}`-style recursive descent is passed to the crate as `$..name` (RFC 9535 semantics).

use std::fmt;

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

/// A parsed `-o jsonpath=` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Path(String),
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Template {
    /// Parses kubectl's `{…}` template syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("jsonpath {text:?}: unclosed '{{'"))?;
            let expr = after[..close].trim();
            rest = &after[close + 1..];
            parts.push(Self::expression(text, expr)?);
        }
        if rest.contains('}') {
            return Err(format!("jsonpath {text:?}: unmatched '}}'"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err(
                "jsonpath: empty template (e.g. -o jsonpath='{.items[*].metadata.name}')"
                    .to_owned(),
            );
        }
        Ok(Self {
            parts,
            source: text.to_owned(),
        })
    }

    fn expression(text: &str, expr: &str) -> Result<Part, String> {
        if let Some(literal) = expr
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .or_else(|| expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')))
        {
            let unescaped = literal
                .replace("\\n", "\n")
                .replace("\\t", "\t")
                .replace("\\r", "\r");
            return Ok(Part::Text(unescaped));
        }
        let word = expr.split_whitespace().next().unwrap_or("");
        if matches!(word, "range" | "end") {
            return Err(format!(
                "jsonpath {text:?}: {{{word}}} is not supported; use -o json and jq, or a path such as {{.items[*].metadata.name}}"
            ));
        }
        let path = if expr.starts_with('$') {
            expr.to_owned()
        } else if expr.starts_with('.') || expr.starts_with('[') {
            format!("${expr}")
        } else if expr.is_empty() {
            return Err(format!("jsonpath {text:?}: empty {{}}"));
        } else {
            format!("$.{expr}")
        };
        // Parse once now, so that a bad path is an input error before anything is fetched.
        Value::Null
            .query(&path)
            .map_err(|e| format!("jsonpath {text:?}: {e}"))?;
        Ok(Part::Path(path))
    }

    /// Renders the template against `value` (kubectl prints no newline at the end).
    pub fn render(&self, value: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(path) => {
                    let found = value
                        .query(path)
                        .map_err(|e| format!("jsonpath {:?}: {e}", self.source))?;
                    let shown: Vec<String> = found
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    out.push_str(&shown.join(" "));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"default": true, "n": 1}},
            {"metadata": {"name": "b"}, "spec": {"default": false, "n": 2}},
        ]})
    }

    fn render(template: &str, value: &Value) -> String {
        Template::parse(template).unwrap().render(value).unwrap()
    }

    #[test]
    fn kubectl_templates_render() {
        let list = list();
        assert_eq!(render("{.items[*].metadata.name}", &list), "a b");
        assert_eq!(render("{.items[0].metadata.labels.app}", &list), "x");
        assert_eq!(render("{.items[*].spec.n}", &list), "1 2");
        assert_eq!(
            render("{.items[?(@.spec.default==true)].metadata.name}", &list),
            "a"
        );
        assert_eq!(
            render("names: {.items[*].metadata.name}{\"\\n\"}", &list),
            "names: a b\n"
        );
        assert_eq!(render("{$.kind}", &list), "List");
        assert_eq!(render("{.items[5].metadata.name}", &list), "");
        assert_eq!(
            render("{.items[1].spec}", &list),
            r#"{"default":false,"n":2}"#
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Template::parse("{.items").unwrap_err().contains("unclosed"));
        assert!(Template::parse("").unwrap_err().contains("empty"));
        assert!(
            Template::parse("{range .items[*]}{.metadata.name}{end}")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Template::parse("{.items[}").is_err());
    }
}
