//! Dense ids for the things the linker tracks, so side tables are flat `Vec`s.

use std::fmt;

/// An object file taking part in the link (a command-line object or a loaded archive member).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u32);

/// A global (or weak) symbol name in the link's symbol table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalId(pub u32);

/// A slot in the global offset table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GotSlot(pub u32);

/// A PLT stub: an indirect jump through a GOT slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PltStub(pub u32);

macro_rules! id_impls {
    ($($ty:ident => $prefix:literal),*) => {$(
        impl $ty {
            pub fn index(self) -> usize {
                self.0 as usize
            }
            pub fn from_index(index: usize) -> Self {
                $ty(u32::try_from(index).expect(concat!("too many ids for ", $prefix)))
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }
    )*};
}

id_impls!(ObjectId => "object", GlobalId => "global", GotSlot => "got", PltStub => "plt");

/// Byte offset from the start of the linked image (all segments are one allocation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Debug)]
pub struct ImageOffset(pub u64);

impl ImageOffset {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Byte offset in the unit's thread-local block (the same in every thread's copy).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Debug)]
pub struct TlsOffset(pub u64);

impl TlsOffset {
    pub fn get(self) -> u64 {
        self.0
    }
}
