//! List and watch query parameters (`metav1.ListOptions` on the wire) and upstream's
//! resourceVersion rules for LIST and WATCH, as functions.

use std::fmt::Write as _;

/// Why a query string or one of its parameters is not acceptable. The messages are the API
/// server's; [`QueryError::is_invalid_list_options`] tells a 400 (a value that does not parse)
/// from a 422 (`ListOptions.meta.k8s.io "" is invalid: …`, a combination upstream forbids).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Bad percent-encoding, or a value that is not UTF-8 once decoded.
    #[error("malformed query string: {0}")]
    Malformed(String),
    /// `resourceVersion` is not an unsigned integer.
    #[error("invalid resource version: \"{0}\"")]
    InvalidResourceVersion(String),
    /// `limit` is not an integer.
    #[error("invalid limit: \"{0}\"")]
    InvalidLimit(String),
    /// `timeoutSeconds` is not an unsigned integer.
    #[error("invalid timeoutSeconds: \"{0}\"")]
    InvalidTimeout(String),
    /// A boolean parameter (`watch`, `allowWatchBookmarks`, `sendInitialEvents`) is no boolean.
    #[error("invalid {param}: \"{value}\"")]
    InvalidBool {
        /// The parameter's name.
        param: &'static str,
        /// Its value.
        value: String,
    },
    /// `resourceVersionMatch` is neither `NotOlderThan` nor `Exact`.
    #[error(
        "resourceVersionMatch: Unsupported value: \"{0}\": supported values: \"Exact\", \"NotOlderThan\""
    )]
    UnsupportedMatch(String),
    /// `resourceVersionMatch` without `resourceVersion`.
    #[error(
        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    )]
    MatchWithoutVersion,
    /// `resourceVersion` or `resourceVersionMatch` together with `continue`.
    #[error(
        "resourceVersion: Forbidden: specifying resource version is not allowed when using continue"
    )]
    VersionWithContinue,
    /// `resourceVersionMatch=Exact` with `resourceVersion=0`.
    #[error(
        "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
    )]
    ExactZero,
    /// `sendInitialEvents=true` without `resourceVersionMatch=NotOlderThan`.
    #[error(
        "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    )]
    InitialEventsNeedNotOlderThan,
    /// `sendInitialEvents=true` without `allowWatchBookmarks=true`.
    #[error(
        "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true"
    )]
    InitialEventsNeedBookmarks,
    /// `sendInitialEvents=false` with a `resourceVersionMatch` other than `NotOlderThan`.
    #[error("resourceVersionMatch: Unsupported value for watch")]
    WatchMatchUnsupported,
    /// A watch with `resourceVersionMatch` but without `sendInitialEvents`.
    #[error(
        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
    )]
    WatchMatchWithoutInitialEvents,
}

impl QueryError {
    /// Whether upstream answers this as 422 Invalid `ListOptions` (a forbidden combination)
    /// rather than 400 BadRequest (a value that does not parse).
    pub fn is_invalid_list_options(&self) -> bool {
        matches!(
            self,
            QueryError::UnsupportedMatch(_)
                | QueryError::MatchWithoutVersion
                | QueryError::VersionWithContinue
                | QueryError::ExactZero
                | QueryError::InitialEventsNeedNotOlderThan
                | QueryError::InitialEventsNeedBookmarks
                | QueryError::WatchMatchUnsupported
                | QueryError::WatchMatchWithoutInitialEvents
        )
    }
}

/// The query parameters of a request, the list/watch ones by name (`metav1.ListOptions`), the
/// rest in order. Values are kept as sent (decoded); the accessors parse them, so a verb checks
/// only what it uses. A repeated parameter keeps its last value and sets [`Self::repeated`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`NotOlderThan`, `Exact`).
    pub resource_version_match: Option<String>,
    /// `limit`.
    pub limit: Option<String>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `watch`.
    pub watch: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<String>,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<String>,
    /// Every other parameter (`dryRun`, `pretty`, `fieldManager`, …), in the order given.
    pub other: Vec<(String, String)>,
    /// Some parameter appeared more than once (its last value is kept).
    pub repeated: bool,
}

/// What a LIST's `resourceVersion` / `resourceVersionMatch` ask for (upstream's table:
/// "Semantics for get and list").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListVersion {
    /// `resourceVersion` unset: the most recent data (a consistent read).
    MostRecent,
    /// `resourceVersion=0` (with no match or `NotOlderThan`): any data, however old.
    Any,
    /// `resourceVersion=N` (with no match or `NotOlderThan`): data at least as new as `N`.
    NotOlderThan(u64),
    /// `resourceVersion=N&resourceVersionMatch=Exact`: data at exactly `N`.
    Exact(u64),
}

/// Where a WATCH starts (upstream's table: "Semantics for watch").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// `resourceVersion` unset or `0`, no `sendInitialEvents`: the current state as synthetic
    /// `ADDED` events, then the changes after it.
    StateThenChanges,
    /// `sendInitialEvents=false` with `resourceVersion` unset or `0`: changes from now on.
    ChangesFromNow,
    /// `resourceVersion=N` (not `0`) without `sendInitialEvents=true`: the changes after `N`.
    ChangesAfter(u64),
    /// `sendInitialEvents=true` (a streaming list): the state at least as new as the given
    /// version as `ADDED` events, a bookmark marked `k8s.io/initial-events-end`, then changes.
    InitialEvents {
        /// `resourceVersion`, if given.
        not_older_than: Option<u64>,
    },
}

const NOT_OLDER_THAN: &str = "NotOlderThan";
const EXACT: &str = "Exact";

/// A boolean parameter as Go's `strconv.ParseBool` reads it: `1 t T TRUE true True` and
/// `0 f F FALSE false False`.
pub fn parse_bool(param: &'static str, value: &str) -> Result<bool, QueryError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(QueryError::InvalidBool {
            param,
            value: value.to_owned(),
        }),
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl ListOptions {
    /// Parses a query string (`application/x-www-form-urlencoded`, without the `?`).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut o = ListOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            let slot = match key.as_str() {
                "labelSelector" => &mut o.label_selector,
                "fieldSelector" => &mut o.field_selector,
                "resourceVersion" => &mut o.resource_version,
                "resourceVersionMatch" => &mut o.resource_version_match,
                "limit" => &mut o.limit,
                "continue" => &mut o.continue_token,
                "watch" => &mut o.watch,
                "allowWatchBookmarks" => &mut o.allow_watch_bookmarks,
                "timeoutSeconds" => &mut o.timeout_seconds,
                "sendInitialEvents" => &mut o.send_initial_events,
                _ => {
                    if o.other.iter().any(|(k, _)| *k == key) {
                        o.repeated = true;
                    }
                    o.other.push((key, value));
                    continue;
                }
            };
            if slot.is_some() {
                o.repeated = true;
            }
            *slot = Some(value);
        }
        Ok(o)
    }

    /// The query string back, as client-go's `url.Values.Encode` writes it: parameters sorted by
    /// name, values escaped with `QueryEscape` (space as `+`). `parse(o.to_query()) == o` for
    /// every `o` without repeated parameters.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("allowWatchBookmarks", &self.allow_watch_bookmarks),
            ("continue", &self.continue_token),
            ("fieldSelector", &self.field_selector),
            ("labelSelector", &self.label_selector),
            ("limit", &self.limit),
            ("resourceVersion", &self.resource_version),
            ("resourceVersionMatch", &self.resource_version_match),
            ("sendInitialEvents", &self.send_initial_events),
            ("timeoutSeconds", &self.timeout_seconds),
            ("watch", &self.watch),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect();
        pairs.extend(self.other.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        pairs.sort_by_key(|&(k, _)| k);
        let mut out = String::new();
        for (k, v) in pairs {
            if !out.is_empty() {
                out.push('&');
            }
            encode_into(&mut out, k);
            out.push('=');
            encode_into(&mut out, v);
        }
        out
    }

    /// The last value of any parameter by its wire name (`dryRun`, `limit`, …).
    pub fn get(&self, key: &str) -> Option<&str> {
        let known = match key {
            "labelSelector" => &self.label_selector,
            "fieldSelector" => &self.field_selector,
            "resourceVersion" => &self.resource_version,
            "resourceVersionMatch" => &self.resource_version_match,
            "limit" => &self.limit,
            "continue" => &self.continue_token,
            "watch" => &self.watch,
            "allowWatchBookmarks" => &self.allow_watch_bookmarks,
            "timeoutSeconds" => &self.timeout_seconds,
            "sendInitialEvents" => &self.send_initial_events,
            _ => {
                return self
                    .other
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str());
            }
        };
        known.as_deref()
    }

    /// `resourceVersion` as a number; `None` when unset or empty.
    pub fn resource_version(&self) -> Result<Option<u64>, QueryError> {
        match nonempty(&self.resource_version) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| QueryError::InvalidResourceVersion(s.to_owned())),
        }
    }

    /// `limit`: 0 for none; a negative limit is ignored (0), as upstream ignores it.
    pub fn limit(&self) -> Result<u64, QueryError> {
        match nonempty(&self.limit) {
            None => Ok(0),
            Some(l) => {
                let n: i64 = l
                    .parse()
                    .map_err(|_| QueryError::InvalidLimit(l.to_owned()))?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }
    }

    /// `continue`, if given and not empty.
    pub fn continue_token(&self) -> Option<&str> {
        nonempty(&self.continue_token)
    }

    /// `timeoutSeconds`; `None` when unset, empty or `0` (the server's default applies).
    pub fn timeout_seconds(&self) -> Result<Option<u64>, QueryError> {
        match nonempty(&self.timeout_seconds) {
            None | Some("0") => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| QueryError::InvalidTimeout(t.to_owned())),
        }
    }

    /// `watch`: false when unset.
    pub fn watch(&self) -> Result<bool, QueryError> {
        self.watch
            .as_deref()
            .map_or(Ok(false), |v| parse_bool("watch", v))
    }

    /// `allowWatchBookmarks`: false when unset.
    pub fn allow_watch_bookmarks(&self) -> Result<bool, QueryError> {
        self.allow_watch_bookmarks
            .as_deref()
            .map_or(Ok(false), |v| parse_bool("allowWatchBookmarks", v))
    }

    /// `sendInitialEvents`: `None` when unset or empty.
    pub fn send_initial_events(&self) -> Result<Option<bool>, QueryError> {
        nonempty(&self.send_initial_events)
            .map(|v| parse_bool("sendInitialEvents", v))
            .transpose()
    }

    /// What a LIST asks for, checked as upstream validates `ListOptions` (in this order: the
    /// version parses, the match is known, a match needs a version, `continue` excludes both,
    /// `Exact` excludes `0`). With a continue token the version comes from the token:
    /// [`ListVersion::MostRecent`] stands for it.
    pub fn list_version(&self) -> Result<ListVersion, QueryError> {
        let rv = self.resource_version()?;
        let rvm = nonempty(&self.resource_version_match);
        if let Some(m) = rvm
            && m != NOT_OLDER_THAN
            && m != EXACT
        {
            return Err(QueryError::UnsupportedMatch(m.to_owned()));
        }
        if rvm.is_some() && rv.is_none() {
            return Err(QueryError::MatchWithoutVersion);
        }
        if self.continue_token().is_some() && (rv.is_some() || rvm.is_some()) {
            return Err(QueryError::VersionWithContinue);
        }
        Ok(match (rv, rvm) {
            (None, _) => ListVersion::MostRecent,
            (Some(0), Some(EXACT)) => return Err(QueryError::ExactZero),
            (Some(n), Some(EXACT)) => ListVersion::Exact(n),
            (Some(0), _) => ListVersion::Any,
            (Some(n), _) => ListVersion::NotOlderThan(n),
        })
    }

    /// Where a WATCH starts, checked as upstream validates a watch's `ListOptions`. A boolean
    /// that does not parse counts as false here (`allowWatchBookmarks=yes` asks for none).
    pub fn watch_start(&self) -> Result<WatchStart, QueryError> {
        let rv = self.resource_version()?;
        let rvm = nonempty(&self.resource_version_match);
        let bookmarks = self.allow_watch_bookmarks().unwrap_or(false);
        let send_initial = self.send_initial_events().unwrap_or(Some(false));
        Ok(match send_initial {
            Some(true) => {
                if rvm != Some(NOT_OLDER_THAN) {
                    return Err(QueryError::InitialEventsNeedNotOlderThan);
                }
                if !bookmarks {
                    return Err(QueryError::InitialEventsNeedBookmarks);
                }
                WatchStart::InitialEvents { not_older_than: rv }
            }
            Some(false) => {
                if rvm.is_some_and(|m| m != NOT_OLDER_THAN) {
                    return Err(QueryError::WatchMatchUnsupported);
                }
                match rv {
                    None | Some(0) => WatchStart::ChangesFromNow,
                    Some(n) => WatchStart::ChangesAfter(n),
                }
            }
            None => {
                if rvm.is_some() {
                    return Err(QueryError::WatchMatchWithoutInitialEvents);
                }
                match rv {
                    None | Some(0) => WatchStart::StateThenChanges,
                    Some(n) => WatchStart::ChangesAfter(n),
                }
            }
        })
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn decode(s: &str) -> Result<String, QueryError> {
    let malformed = || QueryError::Malformed(s.to_owned());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(malformed)?;
                let hex = std::str::from_utf8(hex).map_err(|_| malformed())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`, the rest `%XX`.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}
