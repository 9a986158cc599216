//! The warm-start file format: a fixed binary preamble, a JSON header, and the objects.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"RPCACHE\n"
//!      8     4  format version (u32 LE), FORMAT_VERSION
//!     12     4  header length H (u32 LE)
//!     16     8  body length B (u64 LE)
//!     24     4  CRC-32 (IEEE) of the H + B bytes that follow (u32 LE)
//!     28     H  header: JSON, see [`Header`]
//!   28+H     B  body: per object, 1 flags byte (bit 0: credentials removed),
//!               a u32 LE length and the object's JSON
//! ```
//!
//! A file is accepted only when every byte is accounted for: the magic, the version, both
//! lengths against the file's size, the checksum, the header (its kind, apiVersion and key
//! against the cache that reads it) and the object count. Anything else is a [`FormatError`].

use serde::{Deserialize, Serialize};

/// The first 8 bytes of every warm-start file.
pub const MAGIC: &[u8; 8] = b"RPCACHE\n";

/// The version of the format this crate writes and reads; a file of another version is
/// treated as absent (and rewritten after the next verification).
pub const FORMAT_VERSION: u32 = 1;

/// Bytes before the header: magic, version, header length, body length, checksum.
pub const PREAMBLE: usize = 8 + 4 + 4 + 8 + 4;

/// The flag of an object stored without its inline credentials (never served unverified).
pub const FLAG_REDACTED: u8 = 1;

/// The longest header accepted, 64 KiB (a header is a few hundred bytes).
const MAX_HEADER: u32 = 64 * 1024;

/// What a warm-start file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The kind of the objects, e.g. `PackageRepository`.
    pub kind: String,
    /// Their apiVersion, e.g. `packages.glasskube.dev/v1alpha1`.
    pub api_version: String,
    /// The API server's identity, hashed (see [`super::key::server_id`]): which server the
    /// snapshot came from, without naming it in clear.
    pub server: String,
    /// The file's key (hex; see [`super::key::FileKey`]): the hash of the API server, the user,
    /// the kind and the scope. It never holds a credential.
    pub key: String,
    /// The snapshot's resourceVersion when it was written (informative only: a warm start
    /// never resumes a watch from it).
    pub resource_version: Option<String>,
    /// When the file was written, in milliseconds since the Unix epoch.
    pub written_at_ms: u64,
    /// How many objects the body holds.
    pub objects: u64,
    /// Whether inline credentials were kept (the opt-in [`super::Persist::keep_credentials`]).
    pub credentials: bool,
}

/// One object as stored: its flags and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// [`FLAG_REDACTED`] or 0.
    pub flags: u8,
    /// The object's JSON.
    pub json: Vec<u8>,
}

/// Why a file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than its preamble or than the lengths it announces.
    #[error("truncated: {len} bytes, {expected} expected")]
    Truncated {
        /// The file's length.
        len: u64,
        /// The length its preamble announces (or the preamble's own).
        expected: u64,
    },
    /// Longer than the lengths it announces.
    #[error("{extra} bytes after the announced end")]
    Trailing {
        /// How many bytes follow the body.
        extra: u64,
    },
    /// Not a repocache warm-start file.
    #[error("not a repocache warm-start file (bad magic)")]
    Magic,
    /// Written by another format version.
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// The checksum does not match the content (a flipped bit, a torn write).
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the content.
        computed: u32,
    },
    /// The header is not valid JSON of the expected shape.
    #[error("unreadable header: {0}")]
    Header(String),
    /// A file of another kind or apiVersion.
    #[error("holds {found}, this cache holds {expected}")]
    Kind {
        /// `apiVersion/kind` of this cache.
        expected: String,
        /// `apiVersion/kind` of the file.
        found: String,
    },
    /// A file of another API server, user or scope (its key differs from its name's).
    #[error("written for another server, user or scope (key {found})")]
    Foreign {
        /// The file's key.
        found: String,
    },
    /// The body does not hold the announced objects.
    #[error("body malformed at byte {at}: {why}")]
    Body {
        /// Offset in the body.
        at: u64,
        /// What was wrong.
        why: &'static str,
    },
}

/// Encodes a file: the preamble, `header` and `records`. `header.objects` is set from
/// `records`.
pub fn encode(header: &Header, records: &[Record]) -> Vec<u8> {
    let mut header = header.clone();
    header.objects = records.len() as u64;
    // A struct of strings and integers always serializes.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let body_len: usize = records.iter().map(|r| 1 + 4 + r.json.len()).sum();
    let mut out = Vec::with_capacity(PREAMBLE + header.len() + body_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body_len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // checksum, filled below
    out.extend_from_slice(&header);
    for record in records {
        out.push(record.flags);
        out.extend_from_slice(&(record.json.len() as u32).to_le_bytes());
        out.extend_from_slice(&record.json);
    }
    let crc = crc32fast::hash(&out[PREAMBLE..]);
    out[PREAMBLE - 4..PREAMBLE].copy_from_slice(&crc.to_le_bytes());
    out
}

/// One object as read: its flags and its JSON (borrowed from the file's bytes).
pub type Stored<'a> = (u8, &'a [u8]);

/// Decodes a file, checking everything but what only the caller knows (kind and key: see
/// [`check`]). The records borrow from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<(Header, Vec<Stored<'_>>), FormatError> {
    let len = bytes.len() as u64;
    if bytes.len() < PREAMBLE {
        // A prefix of the magic is a truncated file; anything else is foreign.
        if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            return Err(FormatError::Magic);
        }
        return Err(FormatError::Truncated {
            len,
            expected: PREAMBLE as u64,
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(FormatError::Magic);
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::Version { found: version });
    }
    let header_len = u32_at(bytes, 12);
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    let stored = u32_at(bytes, 24);
    if header_len > MAX_HEADER {
        return Err(FormatError::Header(format!("{header_len} bytes long")));
    }
    let expected = (PREAMBLE as u64)
        .saturating_add(u64::from(header_len))
        .saturating_add(body_len);
    if len < expected {
        return Err(FormatError::Truncated { len, expected });
    }
    if len > expected {
        return Err(FormatError::Trailing {
            extra: len - expected,
        });
    }
    let computed = crc32fast::hash(&bytes[PREAMBLE..]);
    if computed != stored {
        return Err(FormatError::Checksum { stored, computed });
    }
    let header_end = PREAMBLE + header_len as usize;
    let header: Header = serde_json::from_slice(&bytes[PREAMBLE..header_end])
        .map_err(|e| FormatError::Header(e.to_string()))?;
    let body = &bytes[header_end..];
    let mut records = Vec::with_capacity(usize::try_from(header.objects.min(1 << 20)).unwrap_or(0));
    let mut at = 0usize;
    while at < body.len() {
        if body.len() - at < 5 {
            return Err(FormatError::Body {
                at: at as u64,
                why: "record header cut short",
            });
        }
        let flags = body[at];
        let n = u32_at(body, at + 1) as usize;
        let start = at + 5;
        let Some(json) = start.checked_add(n).and_then(|end| body.get(start..end)) else {
            return Err(FormatError::Body {
                at: at as u64,
                why: "record longer than the body",
            });
        };
        records.push((flags, json));
        at = start + n;
    }
    if records.len() as u64 != header.objects {
        return Err(FormatError::Body {
            at: at as u64,
            why: "object count differs from the header's",
        });
    }
    Ok((header, records))
}

/// Checks that a decoded header belongs to the cache that reads it.
pub fn check(
    header: &Header,
    api_version: &str,
    kind: &str,
    server: &str,
    key: &str,
) -> Result<(), FormatError> {
    if header.kind != kind || header.api_version != api_version {
        return Err(FormatError::Kind {
            expected: format!("{api_version}/{kind}"),
            found: format!("{}/{}", header.api_version, header.kind),
        });
    }
    if header.key != key || header.server != server {
        return Err(FormatError::Foreign {
            found: header.key.clone(),
        });
    }
    Ok(())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            server: "srv".into(),
            key: "abc".into(),
            resource_version: Some("42".into()),
            written_at_ms: 1,
            objects: 0,
            credentials: false,
        }
    }

    fn sample() -> Vec<u8> {
        encode(
            &header(),
            &[
                Record {
                    flags: 0,
                    json: br#"{"a":1}"#.to_vec(),
                },
                Record {
                    flags: FLAG_REDACTED,
                    json: br#"{"b":2}"#.to_vec(),
                },
            ],
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Any bytes: an error or a file, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(&bytes);
        }

        /// A valid file with bytes overwritten anywhere: rejected unless nothing changed.
        #[test]
        fn overwritten_bytes_are_rejected(
            at in 0usize..1000,
            patch in proptest::collection::vec(proptest::num::u8::ANY, 1..8),
        ) {
            let good = sample();
            let mut bad = good.clone();
            let at = at % bad.len();
            for (i, b) in patch.iter().enumerate() {
                if let Some(slot) = bad.get_mut(at + i) {
                    *slot = *b;
                }
            }
            proptest::prop_assert_eq!(decode(&bad).is_ok(), bad == good);
        }

        /// A valid file cut anywhere, or with bytes appended: rejected.
        #[test]
        fn cut_or_extended_files_are_rejected(
            cut in 0usize..1000,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 1..8),
        ) {
            let good = sample();
            proptest::prop_assert!(decode(&good[..cut % good.len()]).is_err());
            let mut longer = good.clone();
            longer.extend_from_slice(&tail);
            proptest::prop_assert!(decode(&longer).is_err());
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let (h, records) = decode(&bytes).unwrap();
        assert_eq!(h.objects, 2);
        assert_eq!(h.resource_version.as_deref(), Some("42"));
        assert_eq!(
            records,
            vec![(0, &br#"{"a":1}"#[..]), (1, &br#"{"b":2}"#[..])]
        );
        check(&h, "v1", "ConfigMap", "srv", "abc").unwrap();
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let bytes = sample();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    decode(&b).is_err(),
                    "bit {bit} of byte {i} flipped accepted"
                );
            }
        }
    }

    #[test]
    fn wrong_version_kind_and_key() {
        let mut bytes = sample();
        bytes[8] = 2;
        assert_eq!(decode(&bytes), Err(FormatError::Version { found: 2 }));
        let s = sample();
        let (h, _) = decode(&s).unwrap();
        assert!(matches!(
            check(&h, "v1", "Secret", "srv", "abc"),
            Err(FormatError::Kind { .. })
        ));
        assert!(matches!(
            check(&h, "v1", "ConfigMap", "srv", "abd"),
            Err(FormatError::Foreign { .. })
        ));
        assert!(matches!(
            check(&h, "v1", "ConfigMap", "other", "abc"),
            Err(FormatError::Foreign { .. })
        ));
        let mut trailing = sample();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(FormatError::Trailing { extra: 1 }));
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&trailing), Err(FormatError::Trailing { extra: 5 }));
        assert_eq!(decode(b"{\"kind\":1}"), Err(FormatError::Magic));
    }

    /// A header of exactly 64 KiB ([`MAX_HEADER`]) is read; one byte more is refused before it
    /// is parsed (a whole file with a good checksum, so nothing else rejects it).
    #[test]
    fn a_header_up_to_the_limit_is_read_and_a_longer_one_is_not() {
        const LIMIT: u32 = 64 << 10;
        let with_version = |len: usize| Header {
            resource_version: Some("9".repeat(len)),
            ..header()
        };
        let base = serde_json::to_vec(&with_version(0)).unwrap().len();
        let longest = LIMIT as usize - base;
        let bytes = encode(&with_version(longest), &[]);
        assert_eq!(u32_at(&bytes, 12), LIMIT);
        let (read, records) = decode(&bytes).unwrap();
        assert_eq!(read.resource_version.map(|v| v.len()), Some(longest));
        assert!(records.is_empty());
        assert_eq!(
            decode(&encode(&with_version(longest + 1), &[])),
            Err(FormatError::Header(format!("{} bytes long", LIMIT + 1)))
        );
    }

    /// A whole file (lengths and checksum right) around `body`, whose header announces
    /// `objects` objects.
    fn file_with_body(body: &[u8], objects: u64) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            objects,
            ..header()
        })
        .unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        let mut content = header;
        content.extend_from_slice(body);
        out.extend_from_slice(&crc32fast::hash(&content).to_le_bytes());
        out.extend_from_slice(&content);
        out
    }

    /// A body that does not hold its records whole is refused with where and what, even
    /// when its checksum is right; an empty record is a record (its object fails later, to
    /// decode as the kind).
    #[test]
    fn a_malformed_body_is_refused_with_where_and_what() {
        let record = |json: &[u8]| {
            let mut r = vec![0];
            r.extend_from_slice(&(json.len() as u32).to_le_bytes());
            r.extend_from_slice(json);
            r
        };
        let one = record(br#"{"a":1}"#);
        for stray in 1..5 {
            let mut body = one.clone();
            body.extend_from_slice(&[0; 4][..stray]);
            assert_eq!(
                decode(&file_with_body(&body, 2)),
                Err(FormatError::Body {
                    at: one.len() as u64,
                    why: "record header cut short"
                }),
                "{stray} stray bytes"
            );
        }
        let mut long = vec![0];
        long.extend_from_slice(&100u32.to_le_bytes());
        long.extend_from_slice(&[b' '; 10]);
        assert_eq!(
            decode(&file_with_body(&long, 1)),
            Err(FormatError::Body {
                at: 0,
                why: "record longer than the body"
            })
        );
        let empty = [one.clone(), record(b"")].concat();
        let bytes = file_with_body(&empty, 2);
        let (_, records) = decode(&bytes).unwrap();
        assert_eq!(records, vec![(0, &br#"{"a":1}"#[..]), (0, &b""[..])]);
        assert_eq!(
            decode(&file_with_body(&one, 2)),
            Err(FormatError::Body {
                at: one.len() as u64,
                why: "object count differs from the header's"
            })
        );
    }

    /// A file of nothing but a whole preamble (empty header and body, their checksum right) is
    /// an unreadable header, not "truncated: 28 bytes, 28 expected".
    #[test]
    fn a_file_of_only_a_preamble_is_an_unreadable_header() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
        assert_eq!(bytes.len(), PREAMBLE);
        assert!(matches!(decode(&bytes), Err(FormatError::Header(_))));
    }
}
