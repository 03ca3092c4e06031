//! The `MemoryMapper` seam: how linked bytes reach the memory the program runs in.
//!
//! The linker reserves target address space, asks for *working memory* it can write the image
//! into, and finally asks the mapper to make each segment live with its protection. In process,
//! working memory *is* target memory. A copying remote mapper hands out local buffers and ships
//! them at `initialize`; a shared-memory mapper maps the executor's pages locally. The trait is
//! shaped so that all three fit without change.

use crate::TargetRange;
use std::fmt;

/// Page protections of a segment once finalized. Never writable and executable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protection {
    ReadExecute,
    Read,
    ReadWrite,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::ReadExecute => "r-x",
            Protection::Read => "r--",
            Protection::ReadWrite => "rw-",
        })
    }
}

/// Where in the target address space a reservation may be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere the target likes.
    Anywhere,
    /// Entirely below 2 GiB, for code with 32-bit absolute relocations (-fno-pic).
    Below2GiB,
}

/// One segment to make live at `initialize`.
#[derive(Clone, Copy, Debug)]
pub struct SegmentProtection {
    pub range: TargetRange,
    pub protection: Protection,
}

/// Linker-side memory backing a target range: the linker writes the image here.
///
/// Invariant: `ptr` is valid for reads and writes of `len` bytes until the range is released,
/// and the bytes are zero when first handed out (zero-fill sections rely on it).
#[derive(Debug)]
pub struct WorkingMemory {
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: WorkingMemory is a plain description of a mapping; the linker splits it into disjoint
// slices before threads touch it.
unsafe impl Send for WorkingMemory {}
unsafe impl Sync for WorkingMemory {}

/// A mapper failure, already phrased for the user.
#[derive(Debug)]
pub struct MapError(pub String);

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// The OS-facing half of memory management. Implementations: in-process (mmap/mprotect),
/// RPC copy, shared memory.
///
/// Contract, in call order for one range:
/// 1. `reserve` returns a page-aligned target range of at least `size` bytes, or Err if the
///    target cannot provide it (no address space, nothing free below 2 GiB, executor gone).
/// 2. `prepare` returns zeroed working memory for a sub-range of a reservation. It may be called
///    for several disjoint sub-ranges. Err only if the mapper cannot provide local memory.
/// 3. `initialize` makes the segments live with their protections in the target: after it
///    returns Ok, code in the target may run. Each segment lies in a prepared range.
/// 4. `deinitialize` returns the segments' pages to the reserved, inaccessible state.
/// 5. `release` gives the reservation back. Working memory for it must not be used after.
pub trait MemoryMapper: Send + Sync {
    /// Page size of the target.
    fn page_size(&self) -> usize;
    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError>;
    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError>;
    fn initialize(&self, segments: &[SegmentProtection]) -> Result<(), MapError>;
    fn deinitialize(&self, ranges: &[TargetRange]) -> Result<(), MapError>;
    fn release(&self, range: TargetRange) -> Result<(), MapError>;
}
