//! Where linked bytes live: target addresses, the `MemoryMapper` seam between the linker and
//! the OS (or a remote executor), the in-process mapper, and the slab-based `MemoryManager`
//! that serves every link of a session from one reservation.

#![deny(missing_docs)]

mod addr;
mod error;
mod free_list;
mod inprocess;
mod manager;
mod mapper;

pub use addr::{TargetAddr, TargetRange};
pub use error::MapError;
pub use free_list::FreeList;
pub use inprocess::{page_size, InProcessMapper};
pub use manager::{
    AllocAction, Finalized, InFlight, MemoryManager, PlacedSegment, SegmentRequest, SlabConfig,
    SlabStats, DEFAULT_SLAB_SIZE,
};
pub use mapper::{
    MemoryMapper, PieceWrite, Placement, Protection, SegmentProtection, TargetCall, WorkingMemory,
    LOW_PLACEMENT_FLOOR, LOW_PLACEMENT_LIMIT,
};
