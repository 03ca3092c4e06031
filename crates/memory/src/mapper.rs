//! The `MemoryMapper` seam: how linked bytes reach the memory the program runs in.
//!
//! The linker reserves target address space, asks for *working memory* it can write the image
//! into, and finally asks the mapper to make each segment live with its protection. In process,
//! working memory *is* target memory. A copying remote mapper hands out local buffers and ships
//! them at `initialize`; a shared-memory mapper maps the executor's pages locally. The trait is
//! shaped so that all three fit without change.
//!
//! Small images are *packed* instead (see `manager`): their segments share pages with other
//! units' segments of the same protection, the image is written in a linker-side buffer, and
//! `initialize_pieces` puts each segment's bytes in place, into pages that may already be live.

use crate::{MapError, TargetAddr, TargetRange};
use std::fmt;

/// Page protections of a segment once finalized. Never writable and executable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protection {
    /// Read and execute (code).
    ReadExecute,
    /// Read only (constants).
    Read,
    /// Read and write (data).
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
    /// Exactly at this address (never replacing an existing mapping).
    At(TargetAddr),
}

/// The lowest address a low placement may use: below it lie the NULL page guard and, for
/// non-PIE programs, the executable itself.
pub const LOW_PLACEMENT_FLOOR: u64 = 0x1000_0000;
/// The end of the range 32-bit sign-extended absolute addresses can name.
pub const LOW_PLACEMENT_LIMIT: u64 = 1 << 31;

/// A call the target makes when memory is finalized or deallocated, as
/// `void function(uint64_t, uint64_t)`: registering unwind tables, for instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetCall {
    /// The function, called as `void function(uint64_t, uint64_t)`.
    pub function: TargetAddr,
    /// Its two arguments.
    pub args: [u64; 2],
}

/// One segment to make live at `initialize`, or pages to make live at `initialize_pieces`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentProtection {
    /// The pages or segment.
    pub range: TargetRange,
    /// Their protection.
    pub protection: Protection,
}

/// Linker-side memory backing a target range: the linker writes the image here.
///
/// Invariant: `ptr` is valid for reads and writes of `len` bytes until the range is released,
/// and the bytes are zero when first handed out (zero-fill sections rely on it).
#[derive(Debug)]
pub struct WorkingMemory {
    /// The start of the memory.
    pub ptr: *mut u8,
    /// Its length in bytes.
    pub len: usize,
}

/// The bytes of one packed segment (a *piece*), to put in place at `initialize_pieces`.
#[derive(Clone, Copy, Debug)]
pub struct PieceWrite<'a> {
    /// Where the bytes go: `range.len == bytes.len()`, not page-aligned.
    pub range: TargetRange,
    /// The protection of the pages it lies in.
    pub protection: Protection,
    /// The bytes to put there.
    pub bytes: &'a [u8],
}

// SAFETY: WorkingMemory is a plain description of a mapping; the linker splits it into disjoint
// slices before threads touch it.
unsafe impl Send for WorkingMemory {}
unsafe impl Sync for WorkingMemory {}

/// The OS-facing half of memory management. Implementations: in-process (mmap/mprotect),
/// RPC copy, shared memory.
///
/// Contract, in call order for one range:
/// 1. `reserve` returns a page-aligned target range of at least `size` bytes placed as asked,
///    inaccessible and costing no memory until used; Err if the target cannot provide it (no
///    address space, nothing free below 2 GiB or at the address, executor gone).
/// 2. `prepare` returns zeroed working memory for a page-aligned sub-range of a reservation,
///    on the linker side. It may be called for several disjoint sub-ranges and must not wait
///    on the target. Err only if the mapper cannot provide local memory.
/// 3. `initialize` makes the segments live with their protections in the target (the bytes
///    written to working memory are then in place), then makes the `actions` calls in order:
///    after it returns Ok, code in the target may run. Each segment lies in a prepared range.
/// 4. `deinitialize` makes the `actions` calls, then returns the ranges' pages to the
///    reserved state: inaccessible, their memory given back, zero when prepared again. It is
///    also called, with no actions, for a prepared range that was never initialized (a link
///    that failed after allocating): the mapper then drops whatever working memory it holds
///    for it.
/// 5. `release` gives a whole reservation back. Working memory for it must not be used after.
///
/// Packed segments (pieces) skip `prepare`: the linker writes them in its own buffer, and
/// `initialize_pieces` places them. A page holds pieces of one protection only, and is made
/// live once, by the first `initialize_pieces` with a piece on it, and emptied once, by a
/// `deinitialize` after its last piece is freed. In between, other pieces come and go on it:
/// a piece's bytes overwrite whatever an earlier, freed piece left there.
pub trait MemoryMapper: Send + Sync {
    /// Page size of the target.
    fn page_size(&self) -> usize;
    /// Reserve address space (step 1 of the contract above).
    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError>;
    /// Working memory for part of a reservation (step 2).
    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError>;
    /// Make segments live, then make the `actions` calls (step 3).
    fn initialize(
        &self,
        segments: &[SegmentProtection],
        actions: &[TargetCall],
    ) -> Result<(), MapError>;
    /// Make `pages` (page-aligned, reserved until now) live with their protections, put every
    /// piece's bytes in place, then make the `actions` calls: after Ok, the pieces' code may
    /// run. Each piece lies in pages made live now or by an earlier call, with its protection.
    ///
    /// In process, code on pages already live may be running meanwhile: their protection must
    /// never change, not even for a moment (neither writable nor inaccessible). A remote
    /// executor runs nothing while a link is finalized, so its mapper may make pages writable
    /// for the write, provided each page ends with its protection.
    fn initialize_pieces(
        &self,
        pages: &[SegmentProtection],
        pieces: &[PieceWrite<'_>],
        actions: &[TargetCall],
    ) -> Result<(), MapError>;
    /// Make the `actions` calls, then return the ranges to reserved (step 4).
    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError>;
    /// Give a whole reservation back (step 5).
    fn release(&self, range: TargetRange) -> Result<(), MapError>;
    /// A hint between `prepare` and `initialize`: the linker is about to write `ranges`
    /// (page-aligned parts of prepared ranges) in full, but for zero fill on the last page of
    /// a range, which it leaves as it is; pages of zero fill alone are not named. Returns
    /// whether the mapper wants to be told, part by part, just before the link writes each
    /// (`before_write`): a mapper whose fresh pages are costly to fault in one at a time
    /// gets them ready then. The default does nothing and returns false.
    fn will_write(&self, ranges: &[TargetRange]) -> bool {
        let _ = ranges;
        false
    }
    /// Called, after a `will_write` that returned true and before `initialize`, just before
    /// the link writes `range`: page-aligned, inside the ranges `will_write` named, each page
    /// of them named once. The link calls it from its own worker threads, as it writes the
    /// image in parallel, several at once for disjoint ranges: a mapper that gets pages ready
    /// ahead of the link (on a thread of its own, say) can do here, on the thread about to
    /// write, what it has not done yet, so that the writer neither traps on each fresh page
    /// nor waits. The memory reads zero until written either way: this is only a hint. The
    /// default does nothing.
    fn before_write(&self, range: TargetRange) {
        let _ = range;
    }
}
