//! The ordered view of a snapshot's objects: a persistent vector sorted by (namespace, name),
//! whose entries borrow the objects that the snapshot's lookup map owns.
//!
//! Every entry of the vector is also an entry of the lookup map of the same snapshot (or of the
//! writer's working state): the map holds the object's reference count, the vector only its
//! pointer. Copying a vector node on a persistent update (one per event) is then a plain copy of
//! 64 pointers instead of 64 reference-count increments — and later as many decrements — on the
//! objects readers are reading, whose cache lines each of those writes would take away from the
//! readers' cores.

// The one module of the workspace with `unsafe` code: one bitwise copy of an `Arc`, whose
// soundness rests on the invariant documented on `Borrowed`.
#![allow(unsafe_code)]

use std::mem::ManuallyDrop;
use std::sync::Arc;

/// Objects sorted by (namespace, name), for deterministic iteration that does not allocate.
pub(crate) type Ordered<K> = imbl::Vector<Borrowed<K>>;

/// An object's `Arc` as the ordered vector holds it: without a reference count of its own.
///
/// Invariant (kept by the [`Writer`](crate::Writer), the only code that builds an [`Ordered`]):
/// every `Borrowed` in a vector points to an object that the lookup map stored beside that
/// vector (in the same snapshot, or in the writer's working state) owns. The object therefore
/// outlives every `Borrowed` that can be reached: a snapshot drops its vector and its map
/// together, and the writer takes an entry out of its working vector before (or as) its map
/// lets go of the object.
#[repr(transparent)]
pub(crate) struct Borrowed<K>(ManuallyDrop<Arc<K>>);

impl<K> Borrowed<K> {
    /// Borrows `obj`, which the map beside the vector this entry goes into owns.
    pub(crate) fn of(obj: &Arc<K>) -> Self {
        // SAFETY: a bitwise copy of the `Arc` that is never dropped (`ManuallyDrop`) takes no
        // reference count and gives none back; it is only read while the owning map holds the
        // object (see the type's invariant).
        Self(ManuallyDrop::new(unsafe { std::ptr::read(obj) }))
    }

    /// The object's `Arc`, to read or to clone (a clone takes a reference count of its own).
    pub(crate) fn get(&self) -> &Arc<K> {
        &self.0
    }
}

impl<K> Clone for Borrowed<K> {
    fn clone(&self) -> Self {
        Self::of(self.get())
    }
}
