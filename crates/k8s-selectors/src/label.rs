//! Label selectors: a port of apimachinery's `labels.Parse` (lexer, parser, `NewRequirement`
//! validation) and `Requirement.Matches`.

use std::str::FromStr;

use crate::SelectorError;

/// One label requirement; a selector is their conjunction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value`, `key==value` (upstream treats the value as a one-element set).
    Equals(String, String),
    /// `key!=value`: also true when the label is absent.
    NotEquals(String, String),
    /// `key in (a, b)`: the label is present and its value is in the set.
    In(String, Vec<String>),
    /// `key notin (a, b)`: the label is absent, or its value is not in the set.
    NotIn(String, Vec<String>),
    /// `key`
    Exists(String),
    /// `!key`
    DoesNotExist(String),
    /// `key>n`: the label is present and is an integer greater than `n`.
    GreaterThan(String, i64),
    /// `key<n`: the label is present and is an integer less than `n`.
    LessThan(String, i64),
}

impl Requirement {
    fn matches<'a>(&self, label: &impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Self::Equals(k, v) => label(k) == Some(v.as_str()),
            Self::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Self::In(k, vs) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::NotIn(k, vs) => label(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Self::Exists(k) => label(k).is_some(),
            Self::DoesNotExist(k) => label(k).is_none(),
            Self::GreaterThan(k, n) => label(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Self::LessThan(k, n) => label(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

/// A parsed `labelSelector`: every requirement must hold (a comma is AND). The empty selector
/// (an empty or all-whitespace string) selects everything.
///
/// Accepted, as upstream: `key=value`, `key==value`, `key!=value`, `key in (v1, v2)`,
/// `key notin (v1, v2)`, `key` (exists), `!key` (does not exist), `key>n`, `key<n`; whitespace
/// (space, tab, CR, LF) between tokens is ignored; keys are qualified names with an optional
/// DNS-1123 subdomain prefix, values are label values (possibly empty: `key=` and `key in ()`
/// select the empty value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a label selector with upstream's grammar; the error's message is upstream's.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(s);
        Ok(Self {
            reqs: parser.parse()?,
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object whose labels are looked up by `label` (the value of a key, `None` when
    /// the object has no such label) satisfies every requirement.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| r.matches(&label))
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---- lexer (apimachinery `labels.Lexer`) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Where a token is read: `in` and `notin` are operators after a key but identifiers where a
/// key or a value is expected (`in in (in)` is valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// Upstream's whitespace: nothing else (not even other ASCII or Unicode spaces) separates tokens.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Reads bytes like upstream's lexer, including its use of 0 as "end of input".
struct Lexer<'s> {
    s: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn read(&mut self) -> u8 {
        match self.s.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Token, &'s str) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::EndOfString, "");
        }
        self.unread();
        if is_special(ch) {
            self.special()
        } else {
            self.identifier_or_keyword()
        }
    }

    fn identifier_or_keyword(&mut self) -> (Token, &'s str) {
        let start = self.pos;
        let mut end = start;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            end = self.pos;
        }
        // Delimiters are ASCII, so `start..end` lies on character boundaries.
        let lit = self.s.get(start..end).unwrap_or_default();
        let tok = match lit {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        (tok, lit)
    }

    /// The longest special-symbol token: every special byte is a token alone, `==` and `!=`
    /// are the only two-byte ones.
    fn special(&mut self) -> (Token, &'s str) {
        let first = self.read();
        let single = match first {
            b'=' => (Token::Equals, "="),
            b'!' => (Token::DoesNotExist, "!"),
            b'(' => (Token::OpenPar, "("),
            b')' => (Token::ClosedPar, ")"),
            b',' => (Token::Comma, ","),
            b'>' => (Token::GreaterThan, ">"),
            _ => (Token::LessThan, "<"),
        };
        match (first, self.read()) {
            (b'=', b'=') => (Token::DoubleEquals, "=="),
            (b'!', b'=') => (Token::NotEquals, "!="),
            // upstream consumes a 0 byte here without giving it back
            (_, 0) => single,
            _ => {
                self.unread();
                single
            }
        }
    }
}

// ---- parser (apimachinery `labels.Parser`) ----

struct Parser<'s> {
    items: Vec<(Token, &'s str)>,
    position: usize,
}

/// An error inside one requirement: upstream prefixes those with "unable to parse requirement".
fn in_requirement(message: String) -> SelectorError {
    SelectorError::LabelSyntax {
        message: format!("unable to parse requirement: {message}"),
    }
}

impl<'s> Parser<'s> {
    fn new(s: &'s str) -> Self {
        let mut lexer = Lexer { s, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.0 == Token::EndOfString {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn item(&self, at: usize, context: Context) -> (Token, &'s str) {
        let (tok, lit) = self
            .items
            .get(at)
            .copied()
            .unwrap_or((Token::EndOfString, ""));
        match (context, tok) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn lookahead(&self, context: Context) -> (Token, &'s str) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, &'s str) {
        self.position += 1;
        self.item(self.position - 1, context)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    reqs.push(self.requirement()?);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(reqs),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError::LabelSyntax {
                                    message: format!(
                                        "found '{l2}', expected: identifier after ','"
                                    ),
                                });
                            }
                        }
                        _ => {
                            return Err(SelectorError::LabelSyntax {
                                message: format!("found '{l}', expected: ',' or 'end of string'"),
                            });
                        }
                    }
                }
                Token::EndOfString => return Ok(reqs),
                _ => {
                    return Err(SelectorError::LabelSyntax {
                        message: format!(
                            "found '{lit}', expected: !, identifier, or 'end of string'"
                        ),
                    });
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        // parseKeyAndInferOperator
        let mut not = false;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            not = true;
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(in_requirement(format!(
                "found '{lit}', expected: identifier"
            )));
        }
        let key = validate_key(lit)?;
        if not {
            return Ok(Requirement::DoesNotExist(key));
        }
        if matches!(
            self.lookahead(Context::Values).0,
            Token::EndOfString | Token::Comma
        ) {
            return Ok(Requirement::Exists(key));
        }
        // parseOperator
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        match tok {
            Token::In => Ok(Requirement::In(key, self.set()?)),
            Token::NotIn => Ok(Requirement::NotIn(key, self.set()?)),
            Token::Equals | Token::DoubleEquals => {
                Ok(Requirement::Equals(key, validate_value(self.exact()?)?))
            }
            Token::NotEquals => Ok(Requirement::NotEquals(key, validate_value(self.exact()?)?)),
            Token::GreaterThan => Ok(Requirement::GreaterThan(key, integer(self.exact()?)?)),
            Token::LessThan => Ok(Requirement::LessThan(key, integer(self.exact()?)?)),
            _ => Err(in_requirement(format!(
                "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
            ))),
        }
    }

    /// parseExactValue: one identifier, or nothing (the empty value) before `,` or the end.
    fn exact(&mut self) -> Result<&'s str, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok("");
        }
        match self.consume(Context::Values) {
            (Token::Identifier, lit) => Ok(lit),
            (_, lit) => Err(in_requirement(format!(
                "found '{lit}', expected: identifier"
            ))),
        }
    }

    /// parseValues and parseIdentifiersList: `(a, b)`, where empty members (`()`, `(a,)`,
    /// `(,a)`, `(a,,b)`) are the empty value.
    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(in_requirement(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        let raw = match tok {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(in_requirement(format!("found '{lit}', expected: ')'")));
                }
                values
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                vec![""]
            }
            _ => {
                return Err(in_requirement(format!(
                    "found '{lit}', expected: ',', ')' or identifier"
                )));
            }
        };
        let mut values = Vec::with_capacity(raw.len());
        for v in raw {
            let v = validate_value(v)?;
            if !values.contains(&v) {
                values.push(v);
            }
        }
        Ok(values)
    }

    fn identifiers(&mut self) -> Result<Vec<&'s str>, SelectorError> {
        let mut values = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(in_requirement(format!(
                                "found '{lit2}', expected: ',' or ')'"
                            )));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(""); // "(,"
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.push(""); // ",)"
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.push(""); // ",,"
                        }
                        _ => {}
                    }
                }
                _ => {
                    return Err(in_requirement(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }
}

// ---- validation (apimachinery `validation.IsQualifiedName`, `IsValidLabelValue`) ----

const QUALIFIED_NAME_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const NAME_CHARS: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn qualified_name_chars(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn dns1123_subdomain(p: &str) -> bool {
    p.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    })
}

fn key_problem(k: &str) -> Option<&'static str> {
    let mut parts = k.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            return Some(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            );
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("prefix part must be non-empty");
        }
        if prefix.len() > DNS1123_SUBDOMAIN_MAX {
            return Some("prefix part must be no more than 253 characters");
        }
        if !dns1123_subdomain(prefix) {
            return Some(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty");
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Some("name part must be no more than 63 characters");
    }
    if !qualified_name_chars(name) {
        return Some(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        );
    }
    None
}

fn validate_key(k: &str) -> Result<String, SelectorError> {
    match key_problem(k) {
        None => Ok(k.to_owned()),
        Some(reason) => Err(SelectorError::InvalidLabelKey {
            key: k.to_owned(),
            reason,
        }),
    }
}

fn validate_value(v: &str) -> Result<String, SelectorError> {
    let reason = if v.is_empty() {
        return Ok(String::new());
    } else if v.len() > QUALIFIED_NAME_MAX {
        "must be no more than 63 characters"
    } else if !qualified_name_chars(v) {
        NAME_CHARS
    } else {
        return Ok(v.to_owned());
    };
    Err(SelectorError::InvalidLabelValue {
        value: v.to_owned(),
        reason,
    })
}

/// The operand of `>` / `<`: an integer (`strconv.ParseInt(v, 10, 64)`) that is also a valid
/// label value, so no sign.
fn integer(v: &str) -> Result<i64, SelectorError> {
    let n = v
        .parse::<i64>()
        .map_err(|_| SelectorError::InvalidLabelValue {
            value: v.to_owned(),
            reason: "for 'Gt', 'Lt' operators, the value must be an integer",
        })?;
    validate_value(v)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn matcher(l: &BTreeMap<String, String>) -> impl Fn(&str) -> bool + '_ {
        |s: &str| {
            LabelSelector::parse(s)
                .unwrap()
                .matches(|k| l.get(k).map(String::as_str))
        }
    }

    fn none(_: &str) -> Option<&'static str> {
        None
    }

    /// Every case of both former implementations (apisim's and the layer's).
    #[test]
    fn label_operators() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let m = matcher(&l);
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
        assert!(!LabelSelector::parse("app").unwrap().matches(none));
        assert!(LabelSelector::parse("!app").unwrap().matches(none));
    }

    #[test]
    fn label_errors() {
        for s in [
            "app in web",
            "app=web,",
            "a b c",
            "app in (web",
            "=x",
            "app=-bad-",
            "n>x",
            "Bad/Key=1",
            "app)",
            "!!",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn empty_values_are_upstream_values() {
        // `key=` and `key in ()` select the empty value (parseExactValue / parseValues).
        let l = labels(&[("app", ""), ("tier", "front")]);
        let m = matcher(&l);
        assert!(m("app="));
        assert!(m("app=="));
        assert!(!m("tier="));
        assert!(m("tier!="));
        assert!(!m("missing="));
        assert!(m("missing!="));
        assert!(m("app in ()"));
        assert!(!m("tier in ()"));
        assert!(m("app in (,x)"));
        assert!(m("app in (x,)"));
        assert!(m("app in (x,,y)"));
        assert!(!m("app notin ()"));
        assert!(m("app=,tier=front"));
    }

    #[test]
    fn whitespace_is_only_space_tab_cr_lf() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let m = matcher(&l);
        assert!(m("   "));
        assert!(m("\tapp\r\n=\nweb , tier"));
        assert!(m("app in(web)"));
        assert!(m("app notin(db)"));
        assert!(m("app=web,!missing"));
        for s in [
            "app=web\u{a0}",
            "\u{a0}app=web",
            "app=\u{b}web",
            "app = web x",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn keywords_are_identifiers_where_keys_and_values_go() {
        let l = labels(&[("in", "notin"), ("notin", "in")]);
        let m = matcher(&l);
        assert!(m("in in (notin)"));
        assert!(m("notin notin (notin)"));
        assert!(m("in=notin"));
        assert!(m("!missing,in"));
    }

    #[test]
    fn key_validation_is_qualified_name() {
        for ok in [
            "a",
            "A_b.c-9",
            "example.com/Name",
            "a-b.c-d/x",
            &format!("{}/x", "a".repeat(253)),
            &"x".repeat(63),
        ] {
            assert!(LabelSelector::parse(ok).is_ok(), "{ok} should parse");
        }
        for bad in [
            "-x.com/a",
            "a..b/c",
            "x-.com/a",
            "/a",
            "a/",
            "a/b/c",
            "_a",
            "a_",
            &format!("{}/x", "a".repeat(254)),
            &"x".repeat(64),
        ] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert!(
                matches!(err, SelectorError::InvalidLabelKey { .. }),
                "{bad}: {err:?}"
            );
        }
        assert!(LabelSelector::parse(&format!("a={}", "v".repeat(63))).is_ok());
        assert!(matches!(
            LabelSelector::parse(&format!("a={}", "v".repeat(64))),
            Err(SelectorError::InvalidLabelValue { .. })
        ));
    }

    #[test]
    fn gt_lt_need_an_unsigned_integer_label_value() {
        let l = labels(&[("n", "5"), ("s", "x"), ("neg", "-3")]);
        let m = matcher(&l);
        assert!(m("n>4"));
        assert!(!m("n>5"));
        assert!(m("n<6"));
        assert!(m("n>04"));
        assert!(!m("s>1"), "not an integer label never matches");
        assert!(!m("s<1"));
        assert!(!m("missing<1"), "an absent label never matches");
        assert!(m("neg<0"), "the object's label is parsed like ParseInt");
        for bad in ["n>-5", "n>+5", "n>", "n<x", "n>99999999999999999999"] {
            assert!(
                matches!(
                    LabelSelector::parse(bad),
                    Err(SelectorError::InvalidLabelValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_follow_upstream() {
        let msg = |s: &str| LabelSelector::parse(s).unwrap_err().to_string();
        assert_eq!(msg("app=web,"), "found '', expected: identifier after ','");
        assert_eq!(
            msg("app in web"),
            "unable to parse requirement: found 'web' expected: '('"
        );
        assert_eq!(
            msg("a b c"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            msg("=x"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            msg("!!"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            msg("app)"),
            "unable to parse requirement: found ')', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(msg("!app=x"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            msg("app in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            msg("n>x"),
            "unable to parse requirement: invalid label value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(msg("Bad/Key=1").starts_with(
            "unable to parse requirement: invalid label key \"Bad/Key\": prefix part"
        ));
        assert!(
            msg("app=-bad-")
                .starts_with("unable to parse requirement: invalid label value: \"-bad-\"")
        );
    }

    #[test]
    fn from_str_and_is_empty() {
        assert!("".parse::<LabelSelector>().unwrap().is_empty());
        assert!(" \t".parse::<LabelSelector>().unwrap().is_empty());
        assert!(!"a".parse::<LabelSelector>().unwrap().is_empty());
        assert_eq!(
            "a=b".parse::<LabelSelector>().unwrap(),
            LabelSelector::parse("a == b").unwrap()
        );
    }
}
