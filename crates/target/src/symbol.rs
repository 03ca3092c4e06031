//! What the linker learns about, and asks of, the symbols of libraries loaded in the target.

use rjitlink_memory::TargetAddr;

/// What kind of object an external symbol names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    /// A function (or an IFUNC).
    Function,
    /// A data object.
    Data,
    /// Anything else.
    Other,
}

/// What the target's loader knows about a symbol of a loaded library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolInfo {
    /// What it is.
    pub kind: SymbolKind,
    /// Its size in bytes (0 where the library does not say).
    pub size: u64,
}

/// A copy relocation: library data the linked code reads directly (PC32 or 32-bit absolute)
/// gets a copy in the linked image, and the libraries are redirected to use that copy. The
/// data moves from `original` to `copy`; swapped, the same operation moves it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interposition {
    /// The symbol's name, for messages.
    pub name: Vec<u8>,
    /// Where the data lives now: the library's definition (or an earlier unit's copy).
    pub original: TargetAddr,
    /// Where it moves to: the linked image's copy (or, handing it back, where it came from).
    pub copy: TargetAddr,
    /// The data's size in bytes.
    pub size: u64,
}
