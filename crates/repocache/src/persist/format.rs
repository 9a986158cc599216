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

use std::io::Read;
use std::ops::Range;

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

/// What the preamble announces.
struct Preamble {
    header_len: u32,
    body_len: u64,
    crc: u32,
}

/// Checks the preamble of a file of `len` bytes whose first bytes are `bytes` (all of them
/// when the file is shorter than a preamble): magic, version, the header's length limit and
/// both lengths against the file's.
fn preamble(bytes: &[u8], len: u64) -> Result<Preamble, FormatError> {
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
    Ok(Preamble {
        header_len,
        body_len,
        crc: u32_at(bytes, 24),
    })
}

fn parse_header(bytes: &[u8]) -> Result<Header, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| FormatError::Header(e.to_string()))
}

/// What lies at an offset of a run of records.
enum Next {
    /// A whole record: its flags and where its JSON is.
    Record(u8, Range<usize>),
    /// Not a whole record: it needs this many bytes from the offset (5 while its own header
    /// is cut short).
    Short(usize),
}

impl Next {
    /// The record at `at` of `bytes`.
    fn at(bytes: &[u8], at: usize) -> Self {
        if bytes.len() - at < 5 {
            return Self::Short(5);
        }
        let n = u32_at(bytes, at + 1) as usize;
        let start = at + 5;
        match start.checked_add(n) {
            Some(end) if end <= bytes.len() => Self::Record(bytes[at], start..end),
            _ => Self::Short(n.saturating_add(5)),
        }
    }

    /// The error of a body that ends with this instead of a whole record.
    fn cut_off(at: u64, needed: usize) -> FormatError {
        FormatError::Body {
            at,
            why: if needed == 5 {
                "record header cut short"
            } else {
                "record longer than the body"
            },
        }
    }
}

fn count_error(at: u64) -> FormatError {
    FormatError::Body {
        at,
        why: "object count differs from the header's",
    }
}

/// Decodes a file, checking everything but what only the caller knows (kind and key: see
/// [`check`]). The records borrow from `bytes`. (The warm-start loader reads files with
/// [`Reader`], in batches, and finds the same errors.)
pub fn decode(bytes: &[u8]) -> Result<(Header, Vec<Stored<'_>>), FormatError> {
    let announced = preamble(bytes, bytes.len() as u64)?;
    let computed = crc32fast::hash(&bytes[PREAMBLE..]);
    if computed != announced.crc {
        return Err(FormatError::Checksum {
            stored: announced.crc,
            computed,
        });
    }
    let header_end = PREAMBLE + announced.header_len as usize;
    let header = parse_header(&bytes[PREAMBLE..header_end])?;
    let body = &bytes[header_end..];
    let mut records = Vec::with_capacity(usize::try_from(header.objects.min(1 << 20)).unwrap_or(0));
    let mut at = 0usize;
    while at < body.len() {
        match Next::at(body, at) {
            Next::Record(flags, json) => {
                at = json.end;
                records.push((flags, &body[json]));
            }
            Next::Short(needed) => return Err(Next::cut_off(at as u64, needed)),
        }
    }
    if records.len() as u64 != header.objects {
        return Err(count_error(at as u64));
    }
    Ok((header, records))
}

/// Why a file could not be read by a [`Reader`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not a whole warm-start file.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// One record of a [`Reader`]'s batch: its flags and where its JSON is in the batch's bytes.
pub type Span = (u8, Range<usize>);

/// Reads a warm-start file front to back in batches of whole records, so that a loader can
/// decode the records it has while it reads the rest, through buffers it reuses (a whole file
/// held at once is as large as the objects' JSON, and fresh memory is a large part of a warm
/// start's cost).
///
/// It finds what [`decode`] finds, in the same order of precedence, though it learns some of
/// it only at the end: the preamble's errors at once ([`Reader::new`]); then, from
/// [`Reader::finish`], the checksum (which covers header and body, and so comes first), the
/// header, a malformed body, the object count. Until `finish` succeeds, every record a batch
/// held is unverified: a loader publishes nothing before it.
pub struct Reader<R> {
    source: R,
    len: u64,
    crc: crc32fast::Hasher,
    stored: u32,
    header: Result<Header, FormatError>,
    body_len: u64,
    /// Body bytes read so far.
    read: u64,
    /// The start of a record the previous batch did not hold whole.
    carry: Vec<u8>,
    /// Records split so far.
    records: u64,
    /// The body's first malformed record (nothing is split after it).
    malformed: Option<FormatError>,
}

impl<R: Read> Reader<R> {
    /// Reads the preamble and the header of `source`, a file of `len` bytes. Errors are the
    /// preamble's (magic, version, lengths) and the file's reading; the header's own are
    /// [`Reader::finish`]'s, after the checksum's.
    pub fn new(mut source: R, len: u64) -> Result<Self, ReadError> {
        let mut first = Vec::with_capacity(PREAMBLE);
        (&mut source)
            .take(PREAMBLE as u64)
            .read_to_end(&mut first)?;
        let announced = preamble(&first, len)?;
        let mut header = Vec::with_capacity(announced.header_len as usize);
        (&mut source)
            .take(u64::from(announced.header_len))
            .read_to_end(&mut header)?;
        if header.len() < announced.header_len as usize {
            return Err(shrunk(len, PREAMBLE as u64 + header.len() as u64).into());
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        Ok(Self {
            source,
            len,
            crc,
            stored: announced.crc,
            header: parse_header(&header),
            body_len: announced.body_len,
            read: 0,
            carry: Vec::new(),
            records: 0,
            malformed: None,
        })
    }

    /// The header, if it is readable JSON of the right shape (unverified until
    /// [`Reader::finish`]).
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref().ok()
    }

    /// Reads the next batch: whole records of about `target` bytes in all (at least one
    /// record, however large) into `bytes` (cleared first; its capacity is reused), and where
    /// each one is into `records`. Returns `false`, with nothing in the batch, once the body
    /// is read or found malformed (then [`Reader::finish`] says where).
    pub fn next_batch(
        &mut self,
        bytes: &mut Vec<u8>,
        records: &mut Vec<Span>,
        target: usize,
    ) -> Result<bool, ReadError> {
        bytes.clear();
        records.clear();
        if self.malformed.is_some() {
            return Ok(false);
        }
        bytes.append(&mut self.carry);
        // The body offset of `bytes[0]`.
        let base = self.read - bytes.len() as u64;
        let mut at = 0;
        let mut want = target.max(1);
        loop {
            if bytes.len() < want {
                self.fill(bytes, want - bytes.len())?;
            }
            while at < bytes.len() {
                match Next::at(bytes, at) {
                    Next::Record(flags, json) => {
                        at = json.end;
                        records.push((flags, json));
                    }
                    Next::Short(needed) => {
                        if self.read == self.body_len {
                            // The body ends inside this record.
                            self.malformed = Some(Next::cut_off(base + at as u64, needed));
                            bytes.clear();
                            records.clear();
                            return Ok(false);
                        }
                        if records.is_empty() {
                            // Not one whole record yet: read until this one is.
                            want = want.max(at.saturating_add(needed));
                        }
                        break;
                    }
                }
            }
            if !records.is_empty() || self.read == self.body_len {
                break;
            }
        }
        self.carry.extend_from_slice(&bytes[at..]);
        bytes.truncate(at);
        self.records += records.len() as u64;
        Ok(!records.is_empty())
    }

    /// Appends up to `n` more body bytes to `bytes` (fewer at the body's end).
    fn fill(&mut self, bytes: &mut Vec<u8>, n: usize) -> Result<(), ReadError> {
        let n = (n as u64).min(self.body_len - self.read);
        let old = bytes.len();
        bytes.reserve(n as usize);
        (&mut self.source).take(n).read_to_end(bytes)?;
        let got = (bytes.len() - old) as u64;
        self.crc.update(&bytes[old..]);
        self.read += got;
        if got < n {
            // The file is shorter than its length said when it was opened.
            let at = self.len - self.body_len + self.read;
            return Err(shrunk(self.len, at).into());
        }
        Ok(())
    }

    /// Reads what is left of the body (records the caller did not take are split and counted
    /// all the same) and checks the file: checksum, header, body, object count, in that order
    /// (as [`decode`]). Returns the header.
    pub fn finish(mut self) -> Result<Header, ReadError> {
        let (mut bytes, mut spans) = (Vec::new(), Vec::new());
        while self.next_batch(&mut bytes, &mut spans, 64 << 10)? {}
        // A malformed body stops the batches: the rest still counts for the checksum.
        while self.read < self.body_len {
            bytes.clear();
            self.fill(&mut bytes, 64 << 10)?;
        }
        let computed = self.crc.clone().finalize();
        if computed != self.stored {
            return Err(FormatError::Checksum {
                stored: self.stored,
                computed,
            }
            .into());
        }
        let header = self.header?;
        if let Some(malformed) = self.malformed {
            return Err(malformed.into());
        }
        if self.records != header.objects {
            return Err(count_error(self.body_len).into());
        }
        Ok(header)
    }
}

/// A file that turned out shorter than its length when it was opened (`at` bytes).
fn shrunk(len: u64, at: u64) -> FormatError {
    FormatError::Truncated {
        len: at,
        expected: len,
    }
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
pub(super) mod tests {
    use super::*;

    /// A header of ConfigMaps (the loader's tests use it too).
    pub(in crate::persist) fn header() -> Header {
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

    /// A file of `n` records of 0 to 60 bytes of JSON-ish text, flags alternating.
    fn many(n: usize) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                flags: (i % 2) as u8,
                json: format!("{{\"i\":\"{}\"}}", "x".repeat(i * 7 % 53)).into_bytes(),
            })
            .collect();
        encode(&header(), &records)
    }

    type Owned = (Header, Vec<(u8, Vec<u8>)>);

    /// `decode`'s answer with the records copied out.
    fn whole(bytes: &[u8]) -> Result<Owned, FormatError> {
        decode(bytes).map(|(h, r)| (h, r.into_iter().map(|(f, j)| (f, j.to_vec())).collect()))
    }

    /// A [`Reader`]'s answer for `bytes` read in batches of about `target` bytes, taking at
    /// most `take` batches (the rest is left to `finish`).
    fn streamed(bytes: &[u8], target: usize, take: usize) -> Result<Owned, FormatError> {
        let format = |e: ReadError| match e {
            ReadError::Format(f) => f,
            ReadError::Io(e) => panic!("reading a slice failed: {e}"),
        };
        let mut reader = Reader::new(bytes, bytes.len() as u64).map_err(format)?;
        let (mut buf, mut spans, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..take {
            if !reader
                .next_batch(&mut buf, &mut spans, target)
                .map_err(format)?
            {
                break;
            }
            assert!(!spans.is_empty(), "a batch without records");
            assert_eq!(
                spans.last().map(|s| s.1.end),
                Some(buf.len()),
                "a batch ends with a whole record"
            );
            out.extend(spans.iter().map(|(f, r)| (*f, buf[r.clone()].to_vec())));
        }
        let header = reader.finish().map_err(format)?;
        Ok((header, out))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Any bytes, read in batches of any size: what `decode` finds, error for error.
        #[test]
        fn a_reader_finds_what_decode_finds_in_any_bytes(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            target in 1usize..64,
        ) {
            proptest::prop_assert_eq!(streamed(&bytes, target, usize::MAX), whole(&bytes));
        }

        /// A valid file of many records, overwritten, cut or extended anywhere, read in
        /// batches of any size, all of them taken or only some: what `decode` finds.
        #[test]
        fn a_reader_finds_what_decode_finds_in_damaged_files(
            at in 0usize..2000,
            patch in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
            cut in proptest::option::of(0usize..2000),
            target in 1usize..300,
            take in 0usize..40,
        ) {
            let mut bytes = many(20);
            let at = at % bytes.len();
            for (i, b) in patch.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let expected = whole(&bytes);
            let got = streamed(&bytes, target, take);
            match (&expected, &got) {
                // Records only some batches held are not compared.
                (Ok((eh, er)), Ok((gh, gr))) => {
                    proptest::prop_assert_eq!(eh, gh);
                    proptest::prop_assert_eq!(&er[..gr.len()], &gr[..]);
                }
                _ => proptest::prop_assert_eq!(expected, got),
            }
        }

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

    /// Batches hold whole records, in order, every record once: a record larger than the
    /// batch size comes alone, the bytes of a record cut by a batch's end come with the next.
    #[test]
    fn a_reader_returns_every_record_once_in_whole_records() {
        let bytes = many(50);
        let (_, expected) = whole(&bytes).unwrap();
        for target in [1, 5, 17, 64, 100, 1 << 20] {
            let mut reader = Reader::new(&bytes[..], bytes.len() as u64).unwrap();
            let (mut buf, mut spans, mut got, mut batches) =
                (Vec::new(), Vec::new(), Vec::new(), 0);
            while reader.next_batch(&mut buf, &mut spans, target).unwrap() {
                batches += 1;
                // Whole records back to back, from the batch's first byte to its last.
                let mut at = 0;
                for (flags, json) in &spans {
                    assert_eq!(json.start, at + 5, "target {target}");
                    assert_eq!(buf[at], *flags);
                    at = json.end;
                    got.push((*flags, buf[json.clone()].to_vec()));
                }
                assert_eq!(at, buf.len(), "target {target}");
                // A batch passes its target only by its last record.
                let last = spans.last().map_or(0, |(_, j)| j.len() + 5);
                assert!(
                    buf.len() < target + last,
                    "target {target}: {} bytes",
                    buf.len()
                );
            }
            assert_eq!(got, expected, "target {target}");
            assert_eq!(reader.header().map(|h| h.objects), Some(50));
            assert_eq!(reader.finish().unwrap().objects, 50);
            if target == 1 {
                assert_eq!(batches, 50, "one record per batch");
            }
            if target == 1 << 20 {
                assert_eq!(batches, 1);
            }
        }
    }

    /// A file that is shorter than its length said when it was opened (cut while read) is
    /// truncated, not a checksum mismatch nor an I/O error.
    #[test]
    fn a_file_cut_while_read_is_truncated() {
        let bytes = many(10);
        for cut in [PREAMBLE + 3, bytes.len() / 2, bytes.len() - 1] {
            let result = Reader::new(&bytes[..cut], bytes.len() as u64).and_then(|mut reader| {
                let (mut buf, mut spans) = (Vec::new(), Vec::new());
                while reader.next_batch(&mut buf, &mut spans, 16)? {}
                reader.finish()
            });
            assert!(
                matches!(
                    result,
                    Err(ReadError::Format(FormatError::Truncated { len, expected }))
                        if len == cut as u64 && expected == bytes.len() as u64
                ),
                "cut at {cut}: {result:?}"
            );
        }
    }

    /// Files whose checksum is right but whose body is not what the header says (stray bytes,
    /// a record longer than the body, too few or too many records): a [`Reader`] refuses each
    /// as `decode` does, at the same byte, whatever its batch size and however many batches
    /// were taken before `finish`.
    #[test]
    fn a_reader_refuses_a_malformed_body_as_decode_does() {
        let record = |json: &[u8]| {
            let mut r = vec![0];
            r.extend_from_slice(&(json.len() as u32).to_le_bytes());
            r.extend_from_slice(json);
            r
        };
        let one = record(br#"{"a":1}"#);
        let two = [one.clone(), record(br#"{"bb":22}"#)].concat();
        let mut files = vec![
            file_with_body(&one, 2),
            file_with_body(&two, 1),
            file_with_body(&two, 3),
            file_with_body(&[one.clone(), vec![0, 100, 0, 0, 0, b' ']].concat(), 2),
        ];
        for stray in 1..5 {
            files.push(file_with_body(&[two.clone(), vec![0; stray]].concat(), 3));
        }
        for bytes in &files {
            let expected = whole(bytes);
            assert!(
                matches!(expected, Err(FormatError::Body { .. })),
                "{expected:?}"
            );
            for target in [1, 3, 12, 20, 1000] {
                for take in [0, 1, 2, usize::MAX] {
                    assert_eq!(
                        streamed(bytes, target, take).map(|_| ()),
                        expected.clone().map(|_| ()),
                        "target {target}, {take} batches taken"
                    );
                }
            }
        }
    }
}
