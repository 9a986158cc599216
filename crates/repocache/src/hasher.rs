//! The hasher of the snapshot's lookup map and of the index maps, in a module of its own so that
//! `snapshot` and `index` both use it without importing each other.

/// The hasher of the lookup maps: foldhash, seeded per process (a fraction of SipHash's cost
/// on short keys such as object names).
pub(crate) type Hasher = foldhash::fast::RandomState;
