//! `cargo xtask mutants`: mutation testing of repocache's core files with cargo-mutants, and
//! `docs/MUTANTS.md`, generated from what was measured.
//!
//! ```text
//! cargo xtask mutants [--file PATH]... [--in-place] [--report-only]
//! cargo xtask mutants --check
//! ```
//!
//! - Without arguments: every core file in [`TARGETS`], one cargo-mutants run each (its own
//!   narrowed test command), then `docs/MUTANTS.md` from every measured file. Hours on two
//!   cores: use `--file` to measure a few files at a time. Each finished run is kept as a
//!   small record in `docs/mutants/<file>.json` (committed: every mutant's name and outcome,
//!   the missed ones' changed line, the command, the commit measured), and the report is
//!   rendered from those records, so it covers everything ever measured, whichever machine
//!   measured it.
//! - `--file PATH`: only these core files (repeatable), then the report.
//! - `--in-place`: mutate the worktree itself instead of a copy (much faster: the copy's
//!   `target/` rebuilds every dependency, as copying changes every file's mtime); do not build
//!   or edit the worktree meanwhile. cargo-mutants restores each file after its mutant.
//! - `--report-only`: only rewrite `docs/MUTANTS.md` (after turning any finished run still
//!   under `target/mutants/` into its record).
//! - `--check` (CI): the small fixed subset [`CHECK_FILE`], in place, results into a temporary
//!   directory (never `docs/`); fails when a mutant is missed that [`EXPLAINED`] does not
//!   explain.
//!
//! cargo-mutants is installed with `cargo install cargo-mutants --locked` when missing. By
//! default each run copies the workspace and its `target/` to a scratch directory
//! (`--copy-target=true`), so the worktree is never mutated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

/// One core file and the tests that exercise it (narrowed, so that a mutant costs one rebuild
/// of the workspace crates and a minute of tests, not the whole suite).
pub struct Target {
    /// The file, relative to the workspace root.
    pub file: &'static str,
    /// The package whose code it is.
    pub package: &'static str,
    /// The packages whose tests run against each mutant.
    pub test_packages: &'static [&'static str],
    /// Extra `cargo test` arguments (test target selection; after a `--`, the test harness's
    /// filters: `cache_semantics::` is that module of the `integration` binary).
    pub test_args: &'static [&'static str],
    /// Seconds one mutant's tests may run before cargo-mutants stops them and counts a
    /// timeout (caught). Short where a mutant can turn the tested code into an endless loop
    /// or a linear scan (a search's bounds, a hash that answers 0) and the file's tests
    /// otherwise take seconds: each such mutant costs the whole timeout.
    pub timeout_secs: u64,
}

/// The timeout of a file whose tests take minutes.
const TIMEOUT_LONG: u64 = 300;

/// The warm-start file's tests: the `persist::` unit tests and the `warm::` integration suite
/// (warm answers, verification, corrupt files, a killed writer, concurrent writers,
/// permissions, credentials).
const WARM_SUITE: &[&str] = &[
    "--lib",
    "--test",
    "integration",
    "--",
    "persist::",
    "warm::",
];

/// The core files: the write path, the snapshot and its tables, the reflector, decoding, read policies,
/// subscriptions and their diffs, the warm-start file's format, loading and writing, and the layer's
/// routing and serving.
pub const TARGETS: &[Target] = &[
    Target {
        file: "crates/repocache/src/policy.rs",
        package: "repocache",
        test_packages: &["repocache-tests"],
        test_args: &[
            "--test",
            "integration",
            "--",
            "cache_semantics::",
            "read_your_writes::",
        ],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/ordered.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &[],
        timeout_secs: 60,
    },
    Target {
        file: "crates/repocache/src/writer.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &[],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/snapshot.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &[],
        timeout_secs: 60,
    },
    Target {
        file: "crates/repocache/src/tables.rs",
        package: "repocache",
        test_packages: &["repocache"],
        // Its own unit tests and proptest, and the index's proptests above it.
        test_args: &["--lib"],
        timeout_secs: 60,
    },
    Target {
        file: "crates/repocache/src/pin.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &["--lib"],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/base_key.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &["--lib"],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/subscription.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &[],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/change.rs",
        package: "repocache",
        test_packages: &["repocache"],
        test_args: &[],
        timeout_secs: 60,
    },
    Target {
        file: "crates/repocache/src/persist/format.rs",
        package: "repocache",
        test_packages: &["repocache"],
        // The format's own unit tests (round trip, every truncation and flipped bit, byte
        // proptests) and the loader's.
        test_args: &["--lib", "--", "persist::"],
        timeout_secs: 60,
    },
    Target {
        file: "crates/repocache/src/persist/file.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        // The atomic rewrite, permissions, moving a bad file aside.
        test_args: WARM_SUITE,
        timeout_secs: 120,
    },
    Target {
        file: "crates/repocache/src/persist/load.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        // The loader's batches and decoding threads: file order across batches and threads,
        // withheld objects, the errors' precedence (its unit tests), and every warm start.
        test_args: WARM_SUITE,
        timeout_secs: 120,
    },
    Target {
        file: "crates/repocache/src/persist.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        // The loader and writer of the warm start: the decoders' agreement, credential
        // stripping, what a load withholds, when housekeeping writes.
        test_args: WARM_SUITE,
        timeout_secs: 120,
    },
    Target {
        file: "crates/repocache/src/decode/stream.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        // `decod` picks the lib's `decode::` unit tests, the `decoding::` suite and hostile's
        // object that does not decode.
        test_args: &[
            "--lib",
            "--test",
            "integration",
            "--test",
            "hostile",
            "--",
            "decod",
        ],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/reflector.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        test_args: &[
            "--lib",
            "--test",
            "integration",
            "--",
            "reflector::",
            "outage::",
            "bookmarks::",
            "readiness::",
            "consistency::",
            // The warm start runs in the reflector's task (load, publish, rewrite).
            "warm::",
            // The TTL, 410 and outage semantics (a run without them missed 9 mutants they catch).
            "cache_semantics::",
        ],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/layer/route.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        // The lib's `layer::` unit tests and the `layer::` suite (repocache's own
        // `integration` binary has no `layer::` module: nothing of it runs).
        test_args: &["--lib", "--test", "integration", "--", "layer::"],
        timeout_secs: TIMEOUT_LONG,
    },
    Target {
        file: "crates/repocache/src/layer/serve.rs",
        package: "repocache",
        test_packages: &["repocache", "repocache-tests"],
        test_args: &[
            "--lib",
            "--test",
            "integration",
            "--",
            "layer::",
            "serve_stale::",
            "read_your_writes::",
        ],
        timeout_secs: TIMEOUT_LONG,
    },
];

/// The file `--check` measures: small, fixed, and fully caught or explained.
pub const CHECK_FILE: &str = "crates/repocache/src/policy.rs";

/// Missed mutants that are explained: (file, the end of the mutant's name as cargo-mutants
/// prints it, `line:col: description`, and one sentence why it is equivalent).
pub const EXPLAINED: &[(&str, &str, &str)] = &[
    (LOAD, "35:32: replace << with >>", LOAD_COST),
    (
        LOAD,
        "104:9: replace Shared<'_>::failed -> bool with false",
        LOAD_FAILED,
    ),
    (LOAD, "263:61: replace / with % in load", LOAD_COST),
    (LOAD, "263:61: replace / with * in load", LOAD_COST),
    (LOAD, "277:60: replace * with + in load", LOAD_COST),
    (
        PERSIST,
        "376:32: replace / with % in Store<K>::decode_all",
        PERSIST_THREADS,
    ),
    (
        PERSIST,
        "376:32: replace / with * in Store<K>::decode_all",
        PERSIST_THREADS,
    ),
    (
        PERSIST,
        "376:51: replace + with * in Store<K>::decode_all",
        PERSIST_THREADS,
    ),
    (
        PERSIST,
        "391:20: replace <= with > in Store<K>::decode_all",
        "Swaps the one-thread path and the shared-counter path: each decodes every record and returns them in file order (the shared path with no helper thread is the calling thread alone), so only the cost differs.",
    ),
    (
        PERSIST,
        "451:31: replace * with + in Store<K>::decode_all",
        PERSIST_UNREACHABLE,
    ),
    (
        PERSIST,
        "451:31: replace * with / in Store<K>::decode_all",
        PERSIST_UNREACHABLE,
    ),
    (
        PERSIST,
        "613:48: replace < with <= in Persister<K>::tick",
        "Differs only for a tick exactly one rewrite interval after the last write, to the nanosecond: writing then or at the next tick is the same contract (at most one write per interval).",
    ),
    (
        WRITER,
        "733:5: replace is_short_decimal -> bool with false",
        IS_NEWER_FAST_PATH,
    ),
    (
        WRITER,
        "735:26: replace || with && in is_short_decimal",
        IS_NEWER_FAST_PATH,
    ),
    (
        "crates/repocache/src/pin.rs",
        "86:9: delete match arm Ok(Some(out)) in read_current",
        "Every read then answers through arc-swap's guard after the pinned read ran and was \
         dropped: the same answer from the same current snapshot (the pin still pins and is \
         still re-pinned on every publish, which the pin tests check); only the cost differs, \
         which the benchmark's `Cache::get` against `Reader::get` rows show.",
    ),
    (
        WRITER,
        "310:9: replace Writer<K>::recording -> bool with true",
        RECORDING,
    ),
    (
        WRITER,
        "310:46: replace && with || in Writer<K>::recording",
        RECORDING,
    ),
    (
        WRITER,
        "310:42: replace > with >= in Writer<K>::recording",
        RECORDING,
    ),
    (
        WRITER,
        "310:68: replace < with <= in Writer<K>::recording",
        RECORDING,
    ),
    (
        WRITER,
        "629:42: replace > with >= in Writer<K>::publish",
        "Sends the batch also when nobody subscribed, where the broadcast channel drops it \
         (the send's error is ignored) and a later subscriber starts from the current \
         snapshot anyway: nothing observable changes.",
    ),
    (
        WRITER,
        "597:40: replace < with <= in Writer<K>::publish_due",
        "Only differs at the instant now == due to the nanosecond, which a real monotonic clock \
         cannot be made to hit in a test; publishing at that instant or the next is the same \
         contract (no publish sooner than the interval).",
    ),
    (
        STREAM,
        "216:9: replace <impl Resource for Typed<K>>::meta_mut -> &mut ObjectMeta with Box::leak(Box::new(Default::default()))",
        "Nothing calls meta_mut on the fast path's Typed<K>: kube-runtime's watcher only reads \
         an object's metadata, and the reflector gets the object unwrapped (Decoded::Valid), \
         so the method exists only because the Resource trait requires it.",
    ),
    (
        SERVE,
        "174:17: delete match arm CacheState::Starting in Registered<K>::fresh",
        "The arm only matters when the state was read as Starting and the cache became ready \
         between that load and is_ready(); without it that one request is counted Stale \
         instead of NotReady, and both pass it through to the server unchanged.",
    ),
    (
        SERVE,
        "212:84: replace < with <= in Registered<K>::hold",
        "Only differs at the nanosecond where a held snapshot's age equals the continue TTL \
         exactly, which a monotonic clock cannot be made to hit in a test; dropping it at that \
         instant or the next is the same contract.",
    ),
    (
        SERVE,
        "470:13: replace || with && in <impl Serve for Registered<K>>::observe_write",
        "Also hands back a wait when the wait is zero or the snapshot already holds the write; \
         wait_for_version then returns at once (the version is there, or a zero wait ends), so \
         the write's response and the reads after it are the same, at the cost of one boxed \
         future.",
    ),
    (
        REFLECTOR,
        "740:69: replace < with <= in Task<K>::on_ttl",
        "Only differs at the instant the back-off ends (a retry then, or at the next tick), which \
         a monotonic clock cannot be made to hit in a test; both retry once the back-off has \
         passed.",
    ),
    (
        REFLECTOR,
        "740:69: replace < with == in Task<K>::on_ttl",
        "The TTL timer fires before a back-off is due only when a manual refresh began while the \
         timer was set for the TTL: the mutant then abandons that refresh's LIST at the TTL \
         instead of one TTL after the refresh, a retry sooner and never a missed one (the same \
         requests, the same states), a timing difference no test asserts.",
    ),
    (
        REFLECTOR,
        "785:13: replace || with && in Task<K>::apply_bookmark",
        REFLECTOR_BOOKMARK,
    ),
    (
        REFLECTOR,
        "786:13: replace || with && in Task<K>::apply_bookmark",
        REFLECTOR_BOOKMARK,
    ),
    (
        REFLECTOR,
        "935:9: replace Task<K>::recover with ()",
        "recover() changes the state only of a synced cache that is Stale or Failed with no \
         relist forced and a fresh snapshot: on_error degrades only a stale, unsynced or already \
         degraded cache, and the TTL and a rejected line force a relist whose completion sets \
         Ready itself (on_relisted), so the case arises only when an error lands between a TTL \
         deadline and the timer firing and a confirmation follows before the timer does, a race \
         no test can make happen on purpose.",
    ),
    (
        REFLECTOR,
        "948:9: replace Task<K>::is_fresh -> bool with true",
        "is_fresh() turns false only when the TTL deadline has passed, and then the TTL timer has \
         made the cache Stale and forced a relist (degraded by 'not Ready', set Ready again by \
         on_relisted), so answering true changes on_error and recover() only in the race between \
         the deadline and the timer firing, which no test can make happen on purpose (a \
         cargo-mutants re-run with the whole integration and hostile suites missed it; an \
         earlier hand check that reported it caught had seen two load-induced failures).",
    ),
    (
        REFLECTOR,
        "890:13: delete ! in Task<K>::on_error",
        REFLECTOR_BLIP,
    ),
    (
        REFLECTOR,
        "890:76: delete ! in Task<K>::on_error",
        REFLECTOR_BLIP,
    ),
    (
        SNAPSHOT,
        "287:29: replace > with == in Index<K>::fold_if_due",
        SNAPSHOT_FOLD_AT,
    ),
    (
        SNAPSHOT,
        "287:29: replace > with >= in Index<K>::fold_if_due",
        SNAPSHOT_FOLD_AT,
    ),
    (
        SNAPSHOT,
        "161:9: replace Table<K, S>::is_empty -> bool with false",
        "Table::is_empty only lets a lookup skip probing an empty delta and a change skip \
         folding an empty one: probing an empty delta finds nothing (the lookup goes on to the \
         base) and folding one changes nothing (a new empty delta), so every answer and state is \
         the same; only the cost differs.",
    ),
    (
        FILE,
        "37:60: replace & with | in ensure_dir",
        FILE_MODE_CHECK,
    ),
    (
        FILE,
        "37:60: replace & with ^ in ensure_dir",
        FILE_MODE_CHECK,
    ),
    (
        FILE,
        "85:5: replace sync_dir -> io::Result<()> with Ok(())",
        "Flushing the directory makes the rename survive a power loss or a kernel crash; a test's process can be killed (killed_mid_write_leaves_the_old_file does) but not the machine, and the page cache serves the renamed file either way, so no test can observe it.",
    ),
    (
        FILE,
        "113:40: replace > with >= in remove_stale_tmp",
        "Differs only for a temporary file exactly STALE_TMP old, to the nanosecond of its modification time: removing it at that instant or the next is the same contract.",
    ),
];

const WRITER: &str = "crates/repocache/src/writer.rs";

const IS_NEWER_FAST_PATH: &str = "is_short_decimal only picks the comparison without parsing; whatever it answers, the versions are then compared by parsing them, which gives the same answer for every pair (the proptest the_unparsed_comparison_agrees_with_parsing checks the two paths agree): only the cost differs.";

const SERVE: &str = "crates/repocache/src/layer/serve.rs";

const SERVE_WALKS: &str = "tests/tests/integration/layer.rs: walks_begun_on_different_snapshots_each_finish_on_their_own (a walk's snapshot stays held while another walk begins on a newer one)";

const SERVE_PASS: &str = "tests/tests/integration/layer.rs: requests_the_layer_cannot_answer_as_the_server_would_pass_through";

const RECORDING: &str = "Writer::recording only chooses between recording each change as it is staged and letting subscribers diff the snapshots (a batch without changes); both bring every subscriber's view to every published snapshot, the documented contract, so only the cost differs (a diff per publish instead of a record per change).";

const FILE: &str = "crates/repocache/src/persist/file.rs";

const FILE_MODE_CHECK: &str = "ensure_dir reads the directory's mode only to skip a chmod it does not need: with the mutant the mode always looks wrong and the directory is set to 0700 every time, which it was already (files_are_private_and_the_name_hides_the_identity checks the mode either way); only the cost differs.";

const FILE_STALE: &str = "crates/repocache/src/persist/file.rs: a_write_removes_a_crashed_writers_old_temporary_file_and_nothing_else (unit test: an 11-minute-old temporary file is removed, a young one and another file's stay; applied by hand)";

const FILE_READ: &str = "crates/repocache/src/persist/file.rs: absent_files_read_as_none_and_bad_ones_move_aside_whole (unit test: a directory is an error, not an absent file; applied by hand)";

const CHANGE: &str = "crates/repocache/src/change.rs";

const CHANGE_GENERATION: &str = "crates/repocache/src/change.rs: a_diff_tags_every_change_with_its_generation (unit test; applied by hand)";

const CHANGE_LIMIT: &str = "crates/repocache/src/change.rs: a_diff_of_exactly_the_limit_is_given_and_one_more_is_not (unit test: a diff of exactly the limit with an unchanged object after it; applied by hand)";

const LOAD: &str = "crates/repocache/src/persist/load.rs";

const LOAD_COST: &str = "Changes only the loader's cost: the batch size (a zero target reads one record per batch), how many threads decode (one per 1,000 objects and core, the calling thread always), or how many batches may be in memory at once (threads + 2 equals threads * 2 on two threads, the only count the test machine has); every record is decoded once and the objects come back in file order whatever these are (objects_come_back_in_file_order_across_batches_and_threads).";

const LOAD_FAILED: &str = "Shared::failed only spares work after the first error: with it always false the threads decode every remaining batch and the reader reads on, but the first error is kept (the error slot takes the first) and returned before any object, so the load's result is the same; only the cost differs.";

const LOAD_BUFFERS: &str = "crates/repocache/src/persist/load.rs: objects_come_back_in_file_order_across_batches_and_threads (unit test: the buffers allocated are counted and held to two per decoding thread and fewer than the batches; applied by hand)";

const PERSIST: &str = "crates/repocache/src/persist.rs";

const PERSIST_THREADS: &str = "Changes only how many threads decode (at most one per core, and the calling thread always): every record is decoded once and the result is in file order whatever the count, so only the cost differs.";

const PERSIST_UNREACHABLE: &str = "The record index of the 'not decoded' error, which cannot happen: every chunk is claimed from the shared counter and decoded unless a worker failed, and a failure returns before the chunks are gathered.";

const PERSIST_STRIP: &str = "crates/repocache/src/persist.rs: every_inline_credential_alone_is_removed_and_flags_its_object (unit test: one credential per object, so one removal no longer hides another's lost flag; a Secret's data and stringData; applied by hand)";

const PERSIST_DEBUG: &str = "crates/repocache/src/persist.rs: persist_debug_shows_the_directory_and_never_the_identity (unit test; applied by hand)";

const PERSIST_WITHHELD: &str = "crates/repocache/src/persist.rs: a_load_withholds_and_counts_the_objects_stored_without_their_credentials (unit test; applied by hand)";

const PERSIST_TICK: &str = "crates/repocache/src/persist.rs: ticks_write_only_verified_snapshots_and_at_most_once_per_interval (unit test: no write before verification, none within the interval; applied by hand)";

const FORMAT: &str = "crates/repocache/src/persist/format.rs";

const FORMAT_HEADER_LIMIT: &str = "crates/repocache/src/persist/format.rs: a_header_up_to_the_limit_is_read_and_a_longer_one_is_not (unit test: a 64 KiB header is read, one byte more refused; applied by hand)";

const FORMAT_PREAMBLE_ONLY: &str = "crates/repocache/src/persist/format.rs: a_file_of_only_a_preamble_is_an_unreadable_header (unit test: the mutant called it truncated, 28 bytes of 28 expected; applied by hand)";

const FORMAT_TRAILING: &str = "crates/repocache/src/persist/format.rs: wrong_version_kind_and_key (unit test, now with five trailing bytes: the mutant counted 1; applied by hand)";

const FORMAT_BODY: &str = "crates/repocache/src/persist/format.rs: a_malformed_body_is_refused_with_where_and_what (unit test: stray bytes after the last record, an empty record; applied by hand)";

const SNAPSHOT: &str = "crates/repocache/src/snapshot.rs";

const REFLECTOR: &str = "crates/repocache/src/reflector.rs";

const SNAPSHOT_FOLD_AT: &str = "The delta grows by at most one entry a change and its bound moves only at a fold, so it reaches the bound before it passes it: folding at the bound instead of one past it moves one fold by one change, a cost knob; every lookup answers the same (the proptest checks lookups against a plain map either way).";

const REFLECTOR_BOOKMARK: &str = "With the stream drained and no publish armed, a bookmark can be pending only outside a relist, or while the relist that follows a 410 or a watch error runs (synced, not forced): restart() takes the old stream's bookmark and a new stream yields Init before any line, so 'forced' and 'not synced once' never hold with one pending; in the second case it is one the old watch sent behind every event it handed over, so applying it (the mutants may) confirms what the snapshot does reflect, as waiting for the relist would.";

const REFLECTOR_BACKOFF: &str = "tests/tests/integration/reflector.rs: a_slow_forced_relist_is_retried_with_back_off_until_it_lands (2 s of 5-s LISTs: 6 LISTs until one lands; without back-off 282 to 1,225, never abandoning a hung LIST: 1; each mutant applied by hand)";

const REFLECTOR_BLIP: &str = "On a synced cache within its TTL the mutant's Failed is undone in the same turn of the reflector's task, before it yields: the batch that carried the error ends with publish_due(), whose recover() finds the cache synced, not forced and fresh and sets Ready again; a reader on another thread could see Failed only in those microseconds, which no test can hit on purpose (tests/tests/integration/outage.rs: a_watch_error_while_ready_and_fresh_leaves_the_cache_ready checks the state a reader sees and fails once recovery is gone too).";

const REFLECTOR_DEGRADED: &str = "tests/tests/integration/outage.rs: a_failing_relist_after_a_rejected_line_is_failed_since_the_cache_went_stale (a rejected line, then relists answering 500: Failed since the moment it went Stale, through the retries; applied by hand)";

const REFLECTOR_EXPIRED_LIST: &str = "tests/tests/integration/reflector.rs: a_list_answered_410_is_listed_again_not_reported_failed (a LIST answered 410 is listed again, never Failed; applied by hand)";

const REFLECTOR_EXPIRED_EVENT: &str = "tests/tests/integration/cache_semantics.rs: expired_resume_relists_with_reason_expired and restart_with_lost_history_recovers_the_servers_state (outside the run's narrowed test command; applied by hand)";

const REFLECTOR_REJECTED: &str = "tests/tests/hostile.rs: a_watch_line_that_is_not_json_costs_that_line_and_a_relist and six more rejected-line tests (outside the run's narrowed test command; applied by hand)";

const REFLECTOR_FRESH: &str = "tests/tests/integration/cache_semantics.rs: api_outage_longer_than_the_ttl_serves_the_last_snapshot_and_recovers (outside the run's narrowed test command; confirmed by a cargo-mutants re-run with the whole integration suite)";

const REFLECTOR_TIMED: &str = "tests/tests/integration/reflector.rs: every_watch_event_is_timed_until_it_is_visible (three watch events, three event_to_visible observations; applied by hand)";

const REFLECTOR_PUBLISHED: &str = "tests/tests/integration/bookmarks.rs: a_bookmark_never_vouches_for_a_change_not_yet_published (with publishes deferred, version() passed the unpublished change's resourceVersion; applied by hand)";

const STREAM: &str = "crates/repocache/src/decode/stream.rs";

const ROUTE: &str = "crates/repocache/src/layer/route.rs";

const ROUTE_PARSE_WATCH: &str = "crates/repocache/src/layer/route.rs: watch_and_the_parameters_the_layer_cannot_honour (unit test: `watch=false` is no watch and not ours to answer; `watch=true` is a watch, not a bad parameter)";

const ROUTE_PARSE: &str = "crates/repocache/src/layer/route.rs: watch_and_the_parameters_the_layer_cannot_honour (unit test: `allowWatchBookmarks`, `sendInitialEvents` alone are unsupported)";

const ROUTE_GET: &str = "crates/repocache/src/layer/route.rs: only_what_a_single_object_get_may_carry_fits_a_get (unit test: each list parameter alone does not fit a GET)";

/// Mutants a run missed and a test added since catches: (file, the mutant's description, the
/// test). Kept in the report so that the history of each gap stays visible.
pub const NOW_CAUGHT: &[(&str, &str, &str)] = &[
    (
        SNAPSHOT,
        "130:9: replace Entry<K>::has_long_key -> bool with true",
        "crates/repocache/src/snapshot.rs: a_long_key_answers_for_no_other_key_in_the_delta_or_the_base (unit test: 200 long keys in the delta, then in the base, each found as itself, 1,800 absent ones found as nothing; applied by hand)",
    ),
    (
        LOAD,
        "189:28: replace < with <= in Shared<'_>::produce",
        LOAD_BUFFERS,
    ),
    (
        LOAD,
        "190:29: replace += with *= in Shared<'_>::produce",
        LOAD_BUFFERS,
    ),
    (
        PERSIST,
        "161:48: replace == with != in strip_inline_credentials",
        PERSIST_STRIP,
    ),
    (
        PERSIST,
        "164:17: replace |= with &= in strip_inline_credentials",
        PERSIST_STRIP,
    ),
    (
        PERSIST,
        "165:17: replace |= with &= in strip_inline_credentials",
        PERSIST_STRIP,
    ),
    (
        PERSIST,
        "172:21: replace |= with &= in strip_inline_credentials",
        PERSIST_STRIP,
    ),
    (
        PERSIST,
        "173:21: replace |= with &= in strip_inline_credentials",
        PERSIST_STRIP,
    ),
    (
        PERSIST,
        "98:9: replace <impl fmt::Debug for Persist>::fmt -> fmt::Result with Ok(Default::default())",
        PERSIST_DEBUG,
    ),
    (
        PERSIST,
        "495:48: replace - with + in Store<K>::try_load",
        PERSIST_WITHHELD,
    ),
    (
        PERSIST,
        "495:48: replace - with / in Store<K>::try_load",
        PERSIST_WITHHELD,
    ),
    (
        PERSIST,
        "611:13: replace || with && in Persister<K>::tick",
        PERSIST_TICK,
    ),
    (
        PERSIST,
        "613:48: replace < with == in Persister<K>::tick",
        PERSIST_TICK,
    ),
    (
        PERSIST,
        "337:9: replace Store<K>::rewrite_interval -> Duration with Default::default()",
        PERSIST_TICK,
    ),
    (
        WRITER,
        "520:9: replace Writer<K>::warm with ()",
        "tests/tests/integration/warm.rs: warm_answers_before_verification_and_is_ready_only_after_one_list and seven more warm:: tests (outside the run's narrowed test command; applied by hand)",
    ),
    (
        SERVE,
        "142:44: replace != with == in Registered<K>::has_own_writes",
        "tests/tests/integration/read_your_writes.rs: after_a_write_with_an_opaque_version_reads_pass_through_until_the_snapshot_has_it",
    ),
    (
        SERVE,
        "205:57: replace == with != in Registered<K>::hold",
        SERVE_WALKS,
    ),
    (
        SERVE,
        "212:42: replace != with == in Registered<K>::hold",
        SERVE_WALKS,
    ),
    (
        SERVE,
        "212:84: replace < with == in Registered<K>::hold",
        SERVE_WALKS,
    ),
    (
        SERVE,
        "212:84: replace < with > in Registered<K>::hold",
        SERVE_WALKS,
    ),
    (
        SERVE,
        "489:13: delete match arm (false, Some(_), _) |(true, None, Verb::Get) in <impl Serve for Registered<K>>::plan",
        SERVE_PASS,
    ),
    (
        SERVE,
        "521:39: replace || with && in <impl Serve for Registered<K>>::plan",
        SERVE_PASS,
    ),
    (
        SERVE,
        "542:65: replace && with || in <impl Serve for Registered<K>>::plan",
        SERVE_PASS,
    ),
    (
        "crates/repocache/src/subscription.rs",
        "65:9: replace Subscription<K>::generation -> u64 with 0",
        "crates/repocache/tests/integration/subscriptions.rs: a_new_subscriber_gets_the_current_state_then_changes_including_deletes (asserts generation() after each drain)",
    ),
    (
        "crates/repocache/src/subscription.rs",
        "65:9: replace Subscription<K>::generation -> u64 with 1",
        "crates/repocache/tests/integration/subscriptions.rs: a_new_subscriber_gets_the_current_state_then_changes_including_deletes (generation() is 4 after three changes)",
    ),
    (
        ROUTE,
        "78:45: replace && with || in Params::parse",
        ROUTE_PARSE_WATCH,
    ),
    (ROUTE, "80:44: delete ! in Params::parse", ROUTE_PARSE_WATCH),
    (
        ROUTE,
        "81:13: replace || with && in Params::parse",
        ROUTE_PARSE,
    ),
    (
        ROUTE,
        "82:13: replace || with && in Params::parse",
        ROUTE_PARSE,
    ),
    (
        ROUTE,
        "94:9: replace Params::fits_get -> bool with true",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "95:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "96:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "97:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "98:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "99:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        ROUTE,
        "100:13: replace && with || in Params::fits_get",
        ROUTE_GET,
    ),
    (
        STREAM,
        "175:35: replace match guard is_decode_error(&err) with true in <impl Stream for FastPath<K>>::poll_next",
        "tests/tests/integration/decoding.rs: an_api_error_on_the_fast_path_is_no_reason_to_switch (a LIST answering 500 once leaves decoding Fast; checked by hand: Robust on the mutant)",
    ),
    (
        REFLECTOR,
        "731:9: replace Task<K>::reforce_after -> Duration with Default::default()",
        REFLECTOR_BACKOFF,
    ),
    (
        REFLECTOR,
        "733:31: replace << with >> in Task<K>::reforce_after",
        REFLECTOR_BACKOFF,
    ),
    (
        REFLECTOR,
        "740:69: replace < with > in Task<K>::on_ttl",
        REFLECTOR_BACKOFF,
    ),
    (
        REFLECTOR,
        "783:13: replace || with && in Task<K>::apply_bookmark",
        REFLECTOR_PUBLISHED,
    ),
    (
        REFLECTOR,
        "784:13: replace || with && in Task<K>::apply_bookmark",
        REFLECTOR_PUBLISHED,
    ),
    (
        REFLECTOR,
        "819:13: delete match arm Applied::Changed in Task<K>::handle",
        REFLECTOR_TIMED,
    ),
    (
        REFLECTOR,
        "865:16: delete ! in Task<K>::on_error",
        REFLECTOR_REJECTED,
    ),
    (
        REFLECTOR,
        "890:34: delete ! in Task<K>::on_error",
        REFLECTOR_DEGRADED,
    ),
    (
        REFLECTOR,
        "890:31: replace || with && in Task<K>::on_error",
        REFLECTOR_DEGRADED,
    ),
    (
        REFLECTOR,
        "890:73: replace || with && in Task<K>::on_error",
        REFLECTOR_DEGRADED,
    ),
    (
        REFLECTOR,
        "893:17: delete match arm CacheState::Failed{since, ..} in Task<K>::on_error",
        REFLECTOR_DEGRADED,
    ),
    (
        REFLECTOR,
        "894:17: delete match arm CacheState::Stale{since, ..} in Task<K>::on_error",
        REFLECTOR_DEGRADED,
    ),
    (
        REFLECTOR,
        "922:9: replace Task<K>::published with ()",
        "tests/tests/integration/cache_semantics.rs: metrics_report_each_family_with_the_values_produced (no event_to_visible observations; outside the run's narrowed test command; applied by hand), and reflector.rs: every_watch_event_is_timed_until_it_is_visible",
    ),
    (
        REFLECTOR,
        "948:9: replace Task<K>::is_fresh -> bool with false",
        REFLECTOR_FRESH,
    ),
    (
        REFLECTOR,
        "964:5: replace is_expired -> bool with false",
        REFLECTOR_EXPIRED_EVENT,
    ),
    (
        REFLECTOR,
        "965:9: delete match arm watcher::Error::WatchError(status) in is_expired",
        REFLECTOR_EXPIRED_EVENT,
    ),
    (
        REFLECTOR,
        "965:59: replace == with != in is_expired",
        REFLECTOR_EXPIRED_EVENT,
    ),
    (
        REFLECTOR,
        "966:9: delete match arm watcher::Error::InitialListFailed(kube::Error::Api(status)) | watcher::Error::WatchStartFailed(kube::Error::Api(status)) | watcher::Error::WatchFailed(kube::Error::Api(status)) in is_expired",
        REFLECTOR_EXPIRED_LIST,
    ),
    (
        REFLECTOR,
        "968:80: replace == with != in is_expired",
        REFLECTOR_EXPIRED_LIST,
    ),
    (
        CHANGE,
        "89:9: replace Change<K>::generation -> u64 with 0",
        CHANGE_GENERATION,
    ),
    (
        CHANGE,
        "89:9: replace Change<K>::generation -> u64 with 1",
        CHANGE_GENERATION,
    ),
    (
        CHANGE,
        "164:26: replace > with == in diff_at_most",
        CHANGE_LIMIT,
    ),
    (
        CHANGE,
        "164:26: replace > with >= in diff_at_most",
        CHANGE_LIMIT,
    ),
    (FORMAT, "35:28: replace * with +", FORMAT_HEADER_LIMIT),
    (
        FORMAT,
        "184:19: replace > with == in decode",
        FORMAT_HEADER_LIMIT,
    ),
    (
        FORMAT,
        "184:19: replace > with >= in decode",
        FORMAT_HEADER_LIMIT,
    ),
    (
        FORMAT,
        "164:20: replace < with <= in decode",
        FORMAT_PREAMBLE_ONLY,
    ),
    (
        FORMAT,
        "195:24: replace - with / in decode",
        FORMAT_TRAILING,
    ),
    (FORMAT, "209:28: replace < with == in decode", FORMAT_BODY),
    (FORMAT, "209:28: replace < with <= in decode", FORMAT_BODY),
    (FORMAT, "209:23: replace - with + in decode", FORMAT_BODY),
    (FILE, "99:5: replace remove_stale_tmp with ()", FILE_STALE),
    (
        FILE,
        "113:40: replace > with == in remove_stale_tmp",
        FILE_STALE,
    ),
    (
        FILE,
        "124:19: replace match guard e.kind() == io::ErrorKind::NotFound with true in read",
        FILE_READ,
    ),
];

/// The hand-made mutants of issue 15 and what catches each (kept in the generated report).
const HAND_MADE: &str = "\
## Hand-made mutants (issue 15)

Three mutants that survived every suite before issue 15, each applied on a scratch change
(never committed) and run against `cargo test -p repocache-tests --test chaos` (4 seeds):

| mutant | caught by | failing line |
|---|---|---|
| the writer ignores every watch `Apply` and `Delete` (only relists update the cache) | chaos: the cache without a TTL (`all/no-ttl`) must converge by watch events after the final sweep of writes | `all/no-ttl: cache did not converge within 30s: lost [\"repo-00\", …]` |
| `Cache::get()` starts a background live GET | `reads_after_ready_make_no_requests` (settles first: `Baseline::settle`), and chaos (a reader on the runtime; the server must see no GET) | `reads reached the API server` (left 3, right 2); chaos: `the server saw 1 GET requests for single packagerepositories: a read reached the API server` |
| a relist is published half-way (its first half alone, then whole) | chaos: every snapshot a subscriber saw whole must equal a state the server went through | `all/list: published snapshot 13 of 46 (and 5 more) is no state the server went through (part of a relist?)` |
";

struct Args {
    check: bool,
    report_only: bool,
    in_place: bool,
    files: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        check: false,
        report_only: false,
        in_place: false,
        files: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" => out.check = true,
            "--report-only" => out.report_only = true,
            "--in-place" => out.in_place = true,
            "--file" => {
                let file = it.next().ok_or("--file needs a path")?;
                if !TARGETS.iter().any(|t| t.file == file) {
                    return Err(format!(
                        "--file {file}: not a core file (one of: {})",
                        TARGETS
                            .iter()
                            .map(|t| t.file)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                out.files.push(file.clone());
            }
            other => return Err(format!("unexpected argument `{other}` to mutants")),
        }
    }
    if out.check && (out.report_only || !out.files.is_empty()) {
        return Err("--check takes no other argument".into());
    }
    Ok(out)
}

/// `cargo xtask mutants …`.
pub fn main(args: &[String], root: &Path) -> ExitCode {
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => return crate::usage_error(&e),
    };
    let started = Instant::now();
    let result = if args.check {
        check(root)
    } else {
        run(root, &args)
    };
    match result {
        Ok(()) => {
            println!("xtask mutants: done in {:.0?}", started.elapsed());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask mutants: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    let out_root = root.join("target").join("mutants");
    if !args.report_only {
        ensure_cargo_mutants()?;
        let targets: Vec<&Target> = TARGETS
            .iter()
            .filter(|t| args.files.is_empty() || args.files.iter().any(|f| f == t.file))
            .collect();
        for target in targets {
            measure(
                root,
                target,
                &out_root.join(slug(target.file)),
                args.in_place,
            )?;
        }
    }
    let imported = import_runs(root, &out_root)?;
    if imported > 0 {
        println!("kept {imported} finished runs as records under docs/mutants/");
    }
    let measured = load_all(root)?;
    let doc = render(&measured);
    let path = root.join("docs").join("MUTANTS.md");
    std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote docs/MUTANTS.md ({} files measured)", measured.len());
    let unexplained: usize = measured.iter().map(|m| m.unexplained().len()).sum();
    if unexplained > 0 {
        println!("{unexplained} missed mutants are not explained yet (see docs/MUTANTS.md)");
    }
    Ok(())
}

fn check(root: &Path) -> anyhow::Result<()> {
    ensure_cargo_mutants()?;
    let target = TARGETS
        .iter()
        .find(|t| t.file == CHECK_FILE)
        .context("the check file is not a target")?;
    let scratch =
        std::env::temp_dir().join(format!("repocache-mutants-check-{}", std::process::id()));
    // In place: a copy of `target/` rebuilds every dependency and takes gigabytes of disk;
    // CI runs on a fresh clone nobody edits meanwhile.
    measure(root, target, &scratch, true)?;
    let measured = load(&scratch, target.file)?;
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "{}: {} mutants, {} caught, {} missed ({} explained), {} timeouts, {} unviable",
        measured.file,
        measured.mutants.len(),
        measured.count(Outcome::Caught),
        measured.count(Outcome::Missed),
        measured.count(Outcome::Missed) - measured.unexplained().len(),
        measured.count(Outcome::Timeout),
        measured.count(Outcome::Unviable),
    );
    let unexplained = measured.unexplained();
    if !unexplained.is_empty() {
        for m in &unexplained {
            eprintln!("missed: {}", m.name);
        }
        bail!(
            "{} mutants of {} survived the tests unexplained",
            unexplained.len(),
            measured.file
        );
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Installs cargo-mutants when `cargo mutants --version` does not answer.
fn ensure_cargo_mutants() -> anyhow::Result<()> {
    let present = cargo()
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("cargo-mutants is missing: cargo install cargo-mutants --locked");
    let status = cargo()
        .args(["install", "cargo-mutants", "--locked"])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-mutants --locked failed ({status})");
    }
    Ok(())
}

/// The directory name of a file's results: `crates-repocache-src-writer`.
fn slug(file: &str) -> String {
    file.trim_end_matches(".rs").replace('/', "-")
}

/// The command that measures one file.
fn command(root: &Path, target: &Target, out: &Path, in_place: bool) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(root).args([
        "mutants",
        "--package",
        target.package,
        "--file",
        target.file,
        if in_place {
            "--in-place"
        } else {
            "--copy-target=true"
        },
        "--no-shuffle",
        // cargo-mutants' baseline runs the mutated package's tests with the test arguments,
        // which name targets of other packages; the tests pass unmutated in CI anyway.
        "--baseline=skip",
        "--timeout",
    ]);
    cmd.arg(target.timeout_secs.to_string()).arg("--output");
    cmd.arg(out);
    for p in target.test_packages {
        cmd.args(["--test-package", p]);
    }
    for a in target.test_args {
        cmd.arg(format!("--cargo-test-arg={a}"));
    }
    cmd
}

fn shown(cmd: &Command) -> String {
    let mut s = String::from("cargo");
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn measure(root: &Path, target: &Target, out: &Path, in_place: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = command(root, target, out, in_place);
    let line = shown(&cmd).replace(&*root.to_string_lossy(), ".");
    println!("==> {line}");
    let started = Instant::now();
    let status = cmd.status().context("running cargo mutants")?;
    // 0: all caught; 2: some missed; 3: some timed out. Anything else: no result.
    match status.code() {
        Some(0 | 2 | 3) => {}
        _ => bail!("cargo mutants failed on {} ({status})", target.file),
    }
    let version = cargo()
        .args(["mutants", "--version"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let meta = serde_json::json!({
        "file": target.file,
        "command": line,
        "seconds": started.elapsed().as_secs(),
        "version": version,
        "commit": commit,
    });
    std::fs::write(out.join("run.json"), meta.to_string())?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Caught,
    Missed,
    Timeout,
    Unviable,
}

struct Mutant {
    /// As cargo-mutants names it: `file:line:col: replace … with …`.
    name: String,
    /// The changed line of its diff (`+ …`).
    diff_line: String,
    outcome: Outcome,
}

struct Measured {
    file: String,
    command: String,
    seconds: u64,
    version: String,
    /// The commit measured (empty when unknown).
    commit: String,
    mutants: Vec<Mutant>,
}

impl Measured {
    fn count(&self, outcome: Outcome) -> usize {
        self.mutants.iter().filter(|m| m.outcome == outcome).count()
    }

    fn unexplained(&self) -> Vec<&Mutant> {
        self.mutants
            .iter()
            .filter(|m| {
                m.outcome == Outcome::Missed
                    && explanation(&self.file, &m.name).is_none()
                    && caught_since(&self.file, &m.name).is_none()
            })
            .collect()
    }
}

fn explanation(file: &str, name: &str) -> Option<&'static str> {
    EXPLAINED
        .iter()
        .find(|(f, n, _)| *f == file && name.ends_with(n))
        .map(|(_, _, why)| *why)
}

/// The test added since a run that catches this missed mutant, if any.
fn caught_since(file: &str, name: &str) -> Option<&'static str> {
    NOW_CAUGHT
        .iter()
        .find(|(f, n, _)| *f == file && name.ends_with(n))
        .map(|(_, _, test)| *test)
}

/// Where a file's record is kept: `docs/mutants/<slug>.json`.
fn record_path(root: &Path, file: &str) -> PathBuf {
    root.join("docs")
        .join("mutants")
        .join(format!("{}.json", slug(file)))
}

/// Turns every finished run under `out_root` into its record (replacing an older record of
/// that file). A run is finished once `run.json` is written: a run still going (or killed) is
/// no measurement. Returns how many were kept.
fn import_runs(root: &Path, out_root: &Path) -> anyhow::Result<usize> {
    let mut kept = 0;
    for target in TARGETS {
        let dir = out_root.join(slug(target.file));
        if !dir.join("run.json").exists() {
            continue;
        }
        let measured = load(&dir, target.file)?;
        save_record(root, &measured)?;
        kept += 1;
    }
    Ok(kept)
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Caught => "caught",
        Outcome::Missed => "missed",
        Outcome::Timeout => "timeout",
        Outcome::Unviable => "unviable",
    }
}

fn save_record(root: &Path, m: &Measured) -> anyhow::Result<()> {
    let mutants: Vec<Value> = m
        .mutants
        .iter()
        .map(|x| {
            let mut v = serde_json::json!({"name": x.name, "outcome": outcome_name(x.outcome)});
            if x.outcome == Outcome::Missed {
                v["diff"] = Value::String(x.diff_line.clone());
            }
            v
        })
        .collect();
    let record = serde_json::json!({
        "file": m.file,
        "command": m.command,
        "seconds": m.seconds,
        "version": m.version,
        "commit": m.commit,
        "mutants": mutants,
    });
    let path = record_path(root, &m.file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(&record)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Every core file's record, in [`TARGETS`] order (files never measured are left out).
fn load_all(root: &Path) -> anyhow::Result<Vec<Measured>> {
    let mut out = Vec::new();
    for target in TARGETS {
        let path = record_path(root, target.file);
        if path.exists() {
            out.push(load_record(&path, target.file)?);
        }
    }
    Ok(out)
}

/// Reads a record. Its `unnamed` counts stand for mutants whose names the record does not
/// keep (records rebuilt from an earlier report, which listed only the missed ones).
fn load_record(path: &Path, file: &str) -> anyhow::Result<Measured> {
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let parse = |name: &str| -> anyhow::Result<Outcome> {
        Ok(match name {
            "caught" => Outcome::Caught,
            "missed" => Outcome::Missed,
            "timeout" => Outcome::Timeout,
            "unviable" => Outcome::Unviable,
            other => bail!("{}: unknown outcome {other:?}", path.display()),
        })
    };
    let mut mutants = Vec::new();
    for m in record["mutants"].as_array().into_iter().flatten() {
        mutants.push(Mutant {
            name: m["name"].as_str().unwrap_or_default().to_owned(),
            diff_line: m["diff"].as_str().unwrap_or_default().to_owned(),
            outcome: parse(m["outcome"].as_str().unwrap_or_default())?,
        });
    }
    for (outcome, n) in record["unnamed"].as_object().into_iter().flatten() {
        let outcome = parse(outcome)?;
        for _ in 0..n.as_u64().unwrap_or(0) {
            mutants.push(Mutant {
                name: String::new(),
                diff_line: String::new(),
                outcome,
            });
        }
    }
    Ok(Measured {
        file: file.to_owned(),
        command: record["command"].as_str().unwrap_or("?").to_owned(),
        seconds: record["seconds"].as_u64().unwrap_or(0),
        version: record["version"].as_str().unwrap_or("?").to_owned(),
        commit: record["commit"].as_str().unwrap_or_default().to_owned(),
        mutants,
    })
}

/// Reads one file's results: `mutants.out/outcomes.json` (outcome and diff of every mutant)
/// and `run.json` (how it was run).
fn load(dir: &Path, file: &str) -> anyhow::Result<Measured> {
    let run: Value = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let mutants_out = dir.join("mutants.out");
    let path = mutants_out.join("outcomes.json");
    if !path.exists() && run != Value::Null {
        // cargo-mutants found no mutant in the file ("No mutants found"): measured, none.
        return Ok(Measured {
            file: file.to_owned(),
            command: run["command"].as_str().unwrap_or("?").to_owned(),
            seconds: run["seconds"].as_u64().unwrap_or(0),
            version: run["version"].as_str().unwrap_or("?").to_owned(),
            commit: run["commit"].as_str().unwrap_or_default().to_owned(),
            mutants: Vec::new(),
        });
    }
    let outcomes: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let mut mutants = Vec::new();
    for o in outcomes["outcomes"].as_array().into_iter().flatten() {
        let Some(m) = o["scenario"].get("Mutant") else {
            continue;
        };
        let outcome = match o["summary"].as_str().unwrap_or_default() {
            "CaughtMutant" => Outcome::Caught,
            "MissedMutant" => Outcome::Missed,
            "Timeout" => Outcome::Timeout,
            "Unviable" => Outcome::Unviable,
            other => bail!("{}: unknown outcome {other:?}", path.display()),
        };
        let name = mutant_name(m);
        let diff = o["diff_path"]
            .as_str()
            .and_then(|p| std::fs::read_to_string(mutants_out.join(p)).ok())
            .or_else(|| m["diff"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let diff_line = diff
            .lines()
            .find(|l| l.starts_with('+') && !l.starts_with("+++"))
            .map(|l| l.trim_start_matches('+').trim().to_owned())
            .unwrap_or_default();
        mutants.push(Mutant {
            name,
            diff_line,
            outcome,
        });
    }
    Ok(Measured {
        file: file.to_owned(),
        command: run["command"].as_str().unwrap_or("?").to_owned(),
        seconds: run["seconds"].as_u64().unwrap_or(0),
        version: run["version"].as_str().unwrap_or("?").to_owned(),
        commit: run["commit"].as_str().unwrap_or_default().to_owned(),
        mutants,
    })
}

/// `file:line:col: replace … with …`, as cargo-mutants prints it.
fn mutant_name(m: &Value) -> String {
    if let Some(name) = m["name"].as_str() {
        return name.to_owned();
    }
    let file = m["file"].as_str().unwrap_or("?");
    let line = &m["span"]["start"]["line"];
    let column = &m["span"]["start"]["column"];
    let function = m["function"]["function_name"].as_str().unwrap_or("?");
    let replacement = m["replacement"].as_str().unwrap_or("?");
    format!("{file}:{line}:{column}: replace {function} with {replacement}")
}

fn render(measured: &[Measured]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Mutation testing\n\n\
         Generated by `cargo xtask mutants` (do not edit by hand): cargo-mutants' results for \
         repocache's core files, each run with the narrowed test command shown. A **missed** \
         mutant is a change to the product that no test noticed; each is listed with its \
         changed line and either one sentence why it is equivalent, the test added since that \
         catches it, or **unexplained** (a test is missing). Target: at least 90% caught per \
         file, none unexplained. *Caught of viable* counts timeouts as caught; *without \
         equivalents* leaves the explained-equivalent mutants out of the denominator; *with \
         tests added since* also counts the missed mutants that a test added after the run \
         catches (checked by hand or by a partial re-run). A file with 0 mutants holds \
         nothing cargo-mutants can change (type aliases only).\n\n\
         `cargo xtask mutants --file PATH` measures one core file and keeps the run as a \
         record in `docs/mutants/` (this report is rendered from those records); \
         `cargo xtask mutants --check` runs the fixed subset \
         (`{CHECK_FILE}`) for CI.\n"
    );
    let _ = writeln!(s, "## Scores\n");
    let _ = writeln!(
        s,
        "| file | mutants | caught | missed | of which explained | timeout | unviable | caught of viable | without equivalents | with tests added since |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in measured {
        let viable = m.mutants.len() - m.count(Outcome::Unviable);
        // A timeout changed something the tests observe (they hung): counted as caught.
        let caught = m.count(Outcome::Caught) + m.count(Outcome::Timeout);
        let score = if viable == 0 {
            "n/a".to_owned()
        } else {
            format!("{:.0}%", 100.0 * caught as f64 / viable as f64)
        };
        let equivalent = m
            .mutants
            .iter()
            .filter(|x| x.outcome == Outcome::Missed && explanation(&m.file, &x.name).is_some())
            .count();
        let strict = if viable == equivalent {
            "n/a".to_owned()
        } else {
            format!(
                "{:.0}%",
                100.0 * caught as f64 / (viable - equivalent) as f64
            )
        };
        let since = m
            .mutants
            .iter()
            .filter(|x| {
                x.outcome == Outcome::Missed
                    && explanation(&m.file, &x.name).is_none()
                    && caught_since(&m.file, &x.name).is_some()
            })
            .count();
        let now = if viable == equivalent {
            "n/a".to_owned()
        } else {
            format!(
                "{:.0}%",
                100.0 * (caught + since) as f64 / (viable - equivalent) as f64
            )
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} | {score} | {strict} | {now} |",
            m.file,
            m.mutants.len(),
            m.count(Outcome::Caught),
            m.count(Outcome::Missed),
            m.count(Outcome::Missed) - m.unexplained().len(),
            m.count(Outcome::Timeout),
            m.count(Outcome::Unviable),
        );
    }
    let not_measured: Vec<&str> = TARGETS
        .iter()
        .map(|t| t.file)
        .filter(|f| !measured.iter().any(|m| m.file == *f))
        .collect();
    if !not_measured.is_empty() {
        let _ = writeln!(
            s,
            "\nNot yet measured (run `cargo xtask mutants --file PATH`): {}.",
            not_measured
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(s, "\n## Missed mutants\n");
    let mut any = false;
    for m in measured {
        for mutant in m.mutants.iter().filter(|x| x.outcome == Outcome::Missed) {
            any = true;
            let why = match (
                explanation(&m.file, &mutant.name),
                caught_since(&m.file, &mutant.name),
            ) {
                (Some(w), _) => format!("equivalent: {w}"),
                (None, Some(test)) => format!(
                    "caught since by {test} (checked after the measured run, by hand or by a partial re-run; the file not fully re-measured since)"
                ),
                (None, None) => "**unexplained**: no test notices it yet".to_owned(),
            };
            let _ = writeln!(
                s,
                "- `{}`\n  - diff: `{}`\n  - {why}",
                mutant.name, mutant.diff_line
            );
        }
    }
    if !any {
        let _ = writeln!(
            s,
            "None: every viable mutant of the measured files is caught."
        );
    }
    let _ = writeln!(
        s,
        "\n## Missed by an earlier run, caught by a test added since\n"
    );
    for (file, name, test) in NOW_CAUGHT {
        let now = measured
            .iter()
            .find(|m| m.file == *file)
            .and_then(|m| m.mutants.iter().find(|x| x.name.ends_with(name)))
            .map_or("not measured since", |x| match x.outcome {
                Outcome::Caught => "caught now",
                Outcome::Missed => "missed in the measured run, the test added since",
                Outcome::Timeout => "times out now",
                Outcome::Unviable => "unviable now",
            });
        let _ = writeln!(s, "- `{file}`: `{name}` ({now}): {test}");
    }
    let _ = writeln!(s, "\n## How each file was measured\n");
    let mut by_file: BTreeMap<&str, &Measured> = BTreeMap::new();
    for m in measured {
        by_file.insert(&m.file, m);
    }
    for (file, m) in by_file {
        let _ = writeln!(
            s,
            "- `{file}`: `{}` ({} s, {}{})",
            m.command,
            m.seconds,
            m.version,
            if m.commit.is_empty() {
                String::new()
            } else {
                format!(", at {}", m.commit.chars().take(7).collect::<String>())
            }
        );
    }
    let _ = writeln!(s, "\n{HAND_MADE}");
    s
}
