//! Generated shared objects loaded for the dynamic loader's own work: a unit's thread-local
//! storage lives in a module the loader owns (it gives every thread its copy), and the words
//! only the loader can compute (module ids, offsets from the thread pointer, TLS descriptors)
//! come back to the linker as a table of resolved words.

/// Where the words to read back lie in a module's image: `count` 8-byte words from `offset`,
/// an offset into the image as given (which the module maps at the same offsets from its base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordTable {
    /// The table's offset in the image, in bytes.
    pub offset: u64,
    /// How many 8-byte words it has.
    pub count: u64,
}

/// A module loaded by [`Executor::load_module`](crate::Executor::load_module); opaque, valid
/// until unloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle(pub u64);

/// A loaded module and its table's words as the loader left them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedModule {
    /// The handle to unload it by.
    pub handle: ModuleHandle,
    /// The table's words, as the loader left them.
    pub words: Vec<u64>,
}
