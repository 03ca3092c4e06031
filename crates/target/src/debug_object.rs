//! Objects for a debugger: an in-memory ELF file per linked input that carries DWARF, which the
//! target publishes through gdb's JIT interface so that a debugger attached to it, now or
//! later, finds the linked code's functions, lines and variables.

/// An ELF image a debugger can read as it is (gdb reads it from the target's memory with BFD):
/// for rjitlink, a copy of an input object whose sections' addresses are where they were
/// loaded. The target keeps its own copy while it is registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugObject {
    /// What messages call it: the input's `path` or `archive(member)`.
    pub name: String,
    /// The ELF file, whole.
    pub image: Vec<u8>,
}

/// A debug object registered by
/// [`Executor::register_debug_objects`](crate::Executor::register_debug_objects); opaque,
/// valid until unregistered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DebugObjectHandle(pub u64);

/// The smallest image a target accepts: an ELF64 file header.
pub const MIN_DEBUG_OBJECT_SIZE: usize = 64;

/// Err with the reason unless `image` can be an ELF file (its magic and a whole ELF64 header):
/// what every target checks before it publishes an image, so that a debugger is never handed
/// something else.
pub fn check_debug_image(image: &[u8]) -> Result<(), &'static str> {
    if image.len() < MIN_DEBUG_OBJECT_SIZE {
        return Err("shorter than an ELF header");
    }
    if !image.starts_with(b"\x7fELF") {
        return Err("not an ELF file");
    }
    Ok(())
}
