//! What can go wrong with target memory, as values a caller can match on. Messages say what
//! happened in the memory's own terms (the system's reason is the error's `source()`); the
//! command line adds its flags as hints.

use crate::mapper::{Placement, LOW_PLACEMENT_FLOOR, LOW_PLACEMENT_LIMIT};
use crate::{TargetAddr, TargetRange};
use std::{fmt, io};

/// A memory manager or mapper failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum MapError {
    /// A system call on target memory failed.
    System {
        /// What was asked of the system (`mprotect`, `munmap`, ...).
        operation: &'static str,
        /// The range it was asked for.
        range: TargetRange,
        /// The system's error.
        source: io::Error,
    },
    /// A system call on target memory failed because the target process has as many memory
    /// mappings as the kernel allows it (`vm.max_map_count`).
    MapCountLimit {
        /// What was asked of the system.
        operation: &'static str,
        /// The range it was asked for.
        range: TargetRange,
        /// The process's mappings when the call failed.
        mappings: u64,
        /// The value of `vm.max_map_count`.
        limit: u64,
    },
    /// No address space of `size` bytes could be reserved where `placement` asks.
    Reserve {
        /// The size asked for, in bytes.
        size: usize,
        /// Where it was asked for.
        placement: Placement,
        /// The system's reason, where it gave one.
        source: Option<io::Error>,
    },
    /// The slab has no free range large enough for a link.
    SlabExhausted {
        /// The bytes the link needs.
        needed: u64,
        /// The bytes free in all.
        free: u64,
        /// The slab's size.
        capacity: u64,
        /// The largest free range.
        largest_free: u64,
    },
    /// A link needs memory below 2 GiB (32-bit absolute relocations), but the slab was
    /// already reserved above it by an earlier link.
    SlabNotLow {
        /// Where the slab lies.
        slab: TargetAddr,
    },
    /// A link needs memory below 2 GiB, but the slab was asked for at an address where it
    /// would end above it.
    SlabAddressNotLow {
        /// The address asked for.
        address: TargetAddr,
        /// The slab's size.
        size: u64,
    },
    /// The executor refused or failed a memory request, or could not be asked: its message.
    Executor(String),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::System {
                operation, range, ..
            } => write!(
                f,
                "{operation} of {:#x} bytes at {} failed",
                range.len, range.start
            ),
            MapError::MapCountLimit {
                operation,
                range,
                mappings,
                limit,
            } => write!(
                f,
                "{operation} of {:#x} bytes at {} failed: the process has {mappings} memory mappings, as many as the kernel allows (vm.max_map_count = {limit}; raise it with `sysctl -w vm.max_map_count=N`)",
                range.len, range.start
            ),
            MapError::Reserve {
                size,
                placement,
                ..
            } => match placement {
                Placement::Anywhere => write!(f, "cannot reserve {size:#x} bytes"),
                Placement::Below2GiB => write!(
                    f,
                    "cannot reserve {size:#x} bytes below 2 GiB: no free range between {LOW_PLACEMENT_FLOOR:#x} and {LOW_PLACEMENT_LIMIT:#x} is large enough"
                ),
                Placement::At(address) => write!(
                    f,
                    "cannot reserve {size:#x} bytes at {address}: the range is in use or invalid"
                ),
            },
            MapError::SlabExhausted {
                needed,
                free,
                capacity,
                largest_free,
            } => write!(
                f,
                "slab exhausted: the link needs {needed:#x} bytes, but only {free:#x} of the {capacity:#x}-byte slab are free (largest free range {largest_free:#x})"
            ),
            MapError::SlabNotLow { slab } => write!(
                f,
                "this link has 32-bit absolute relocations and needs memory below 2 GiB, but the slab was reserved at {slab} by an earlier link"
            ),
            MapError::SlabAddressNotLow { address, size } => write!(
                f,
                "this link has 32-bit absolute relocations and needs memory below 2 GiB, but a slab of {size:#x} bytes at {address} ends above it"
            ),
            MapError::Executor(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::System { source, .. } => Some(source),
            MapError::Reserve {
                source: Some(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}
