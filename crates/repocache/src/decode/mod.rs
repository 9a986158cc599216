//! Decoding what the reflector watches, one concept in three steps:
//!
//! - `object`: [`Decoded<K>`](Decoded), a watched object that may or may not decode as
//!   `K` (the typed object, or its metadata plus the error);
//! - `stream`: the reflector's watch stream: the typed fast path, and the switch to
//!   `Decoded<K>` on the first object that does not decode;
//! - `feed`: between the watcher and the writer: unwraps `Decoded`, counts and logs each bad
//!   object once, and applies what it can.
//!
//! What a watch line must be before it is decoded at all is the line guard's business
//! (`line_guard`).

pub(crate) mod feed;
pub(crate) mod object;
pub(crate) mod stream;

pub use object::{Decoded, InvalidObject};
