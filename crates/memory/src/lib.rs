//! Where linked bytes live: target addresses, protections, the `MemoryMapper` seam between the
//! linker and the OS (or a remote executor), and the in-process mapper.

mod addr;
mod inprocess;
mod mapper;

pub use addr::{TargetAddr, TargetRange};
pub use inprocess::InProcessMapper;
pub use mapper::{MapError, MemoryMapper, Placement, Protection, SegmentProtection, WorkingMemory};
