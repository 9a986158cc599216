//! The ordered view of a snapshot's objects: a persistent vector sorted by (namespace, name),
//! for deterministic iteration that does not allocate.
//!
//! Every entry holds a reference count of its own on its object, like the lookup map beside
//! it. The vector once held bare pointers borrowed from the map (to save the reference-count
//! traffic of copying a vector node on a persistent update); that made the vector's memory
//! safety depend on the map and the vector agreeing about every object — which user code (a
//! panicking indexer, a `Resource::meta()` that answers differently on successive calls) could
//! break from safe code. See docs/ARCHITECTURE.md, "Deterministic order without allocation".

use std::sync::Arc;

/// Objects sorted by (namespace, name), for deterministic iteration that does not allocate.
pub(crate) type Ordered<K> = imbl::Vector<Arc<K>>;
