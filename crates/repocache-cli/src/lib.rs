//! The `repocache` command's library: everything the binary does, as functions the tests call.
//!
//! - [`kinds`]: Glasskube's four kinds and the names the command accepts for them;
//! - [`source`]: where a dump comes from: a running process's debug endpoint, or a fresh cache
//!   built from a cluster (kubeconfig);
//! - [`select`]: namespace (`-n`/`-A`), label and field selectors and names, as kubectl;
//! - [`table`]: the `table`, `wide`, `json`, `yaml` and `name` outputs, and `-o` parsing;
//! - [`jsonpath`]: `-o jsonpath=TEMPLATE` (kubectl's template syntax, the subset it supports);
//! - [`verify`], [`watch`]: the `verify` and `watch` subcommands;
//! - [`relay`]: the `relay` subcommand's parts (kinds, the banner, the kubeconfig file);
//! - [`ratelimit`]: client-go's client-side token bucket (5 requests/s, burst 10 by default);
//! - [`demo`]: the newcomer's demo: the same dependency-resolving install uncached (through the
//!   token bucket) and through repocache, against an embedded apisim.

pub mod demo;
pub mod jsonpath;
pub mod kinds;
pub mod ratelimit;
pub mod relay;
pub mod select;
pub mod source;
pub mod table;
pub mod verify;
pub mod watch;

use std::time::Duration;

/// Exit code: success (and, for `verify`, cache and server in sync).
pub const EXIT_OK: i32 = 0;
/// Exit code of `verify` when it found drift.
pub const EXIT_DRIFT: i32 = 1;
/// Exit code of every error (and of clap's usage errors).
pub const EXIT_ERROR: i32 = 2;

/// Parses a Go duration as kubectl takes them (`30s`, `1m30s`, `500ms`, `1h`, `1.5h`), with
/// kube's parser ([`kube::core::Duration`]); a plain number is seconds (`--request-timeout 5`,
/// as kubectl), negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration: expected a Go duration such as 30s, 1m30s, 500ms".to_owned());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("invalid duration {text:?}: expected a non-negative duration such as 30s, 1m30s, 500ms"));
    }
    let parsed: kube::core::Duration = text.parse().map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}): expected a Go duration such as 30s, 1m30s, 500ms, 2h"
        )
    })?;
    if parsed.is_negative() {
        return Err(format!("invalid duration {text:?}: must not be negative"));
    }
    Ok(parsed.into())
}

/// Parses a duration that must be longer than zero, such as a polling interval (see
/// [`parse_duration`] for the syntax). `0`, `0s` or a duration that rounds to zero nanoseconds is
/// an error, not a busy loop (or a panic).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "invalid interval {:?} (must be longer than zero, e.g. 500ms, 1s)",
            text.trim()
        ));
    }
    Ok(duration)
}

/// A duration as people read it: `850ms`, `12.3s`, `4m10s`, `2h5m`, `3d`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}d", secs / 86_400)
    }
}

/// The redaction the command applies to every object it prints (unless `--show-secrets`):
/// Glasskube's schema-aware [`glasskube_api::redact_json`] and repocache's generic
/// [`repocache::debug::redact_credentials`]. Credentials become redaction markers
/// (`{"redacted": "<redacted>"}`); the `kubectl.kubernetes.io/last-applied-configuration`
/// annotation is removed. Tables show the markers' text ([`repocache::debug::display_markers`]).
pub fn redact(object: &mut serde_json::Value) {
    glasskube_api::redact_json(object);
    repocache::debug::redact_credentials(object);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Ok(Duration::from_millis(3_723_500))
        );
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("0ms").is_err());
        assert!(parse_interval("0.0000000001s").is_err());
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn durations_print() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_secs(250)), "4m10s");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400)), "3d");
    }
}
