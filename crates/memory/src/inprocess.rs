//! The in-process mapper: target memory is this process's memory, managed with mmap/mprotect.

use crate::mapper::{
    MemoryMapper, Placement, Protection, SegmentProtection, TargetCall, LOW_PLACEMENT_FLOOR,
    LOW_PLACEMENT_LIMIT,
};
use crate::MapError;
use crate::{TargetAddr, TargetRange, WorkingMemory};
use std::io;

/// Maps target memory into the current process. Working memory and target memory coincide.
#[derive(Debug)]
pub struct InProcessMapper {
    page_size: usize,
}

impl Default for InProcessMapper {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessMapper {
    pub fn new() -> Self {
        InProcessMapper {
            page_size: page_size(),
        }
    }
}

/// The page size of this process.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page_size).unwrap_or(4096)
}

fn os_error(operation: &'static str, range: TargetRange) -> MapError {
    MapError::System {
        operation,
        range,
        source: io::Error::last_os_error(),
    }
}

/// Map `len` inaccessible bytes, exactly at `hint` if given (never replacing a mapping).
fn map_reserved(len: usize, hint: Option<u64>) -> Option<u64> {
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    if hint.is_some() {
        flags |= libc::MAP_FIXED_NOREPLACE;
    }
    let address = hint.unwrap_or(0) as *mut libc::c_void;
    // SAFETY: an anonymous mapping that never replaces an existing one.
    let ptr = unsafe { libc::mmap(address, len, libc::PROT_NONE, flags, -1, 0) };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    if hint.is_some_and(|hint| hint != ptr as u64) {
        // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and treat the address as a hint.
        // SAFETY: unmapping what we just mapped.
        unsafe { libc::munmap(ptr, len) };
        return None;
    }
    Some(ptr as u64)
}

/// Reserve `len` bytes wholly inside `[LOW_PLACEMENT_FLOOR, LOW_PLACEMENT_LIMIT)`: try
/// candidate addresses from the top of the range down, each only where nothing is mapped.
pub fn reserve_low(len: usize, page_size: usize) -> Option<u64> {
    let len64 = len as u64;
    let highest_start = LOW_PLACEMENT_LIMIT.checked_sub(len64)?;
    if highest_start < LOW_PLACEMENT_FLOOR {
        return None;
    }
    let step = (64u64 << 20).max(page_size as u64);
    let mut candidate = highest_start - highest_start % page_size as u64;
    loop {
        if let Some(address) = map_reserved(len, Some(candidate)) {
            return Some(address);
        }
        candidate = candidate.checked_sub(step)?;
        if candidate < LOW_PLACEMENT_FLOOR {
            return None;
        }
    }
}

/// Call each action as `void f(uint64_t, uint64_t)`.
///
/// # Safety
/// Every action's function must be a function of that type in this process.
pub unsafe fn call_actions(actions: &[TargetCall]) {
    for action in actions {
        let function: extern "C" fn(u64, u64) = std::mem::transmute(action.function.get());
        function(action.args[0], action.args[1]);
    }
}

impl MemoryMapper for InProcessMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let len = size.max(1).next_multiple_of(self.page_size);
        let address = match placement {
            Placement::Anywhere => map_reserved(len, None),
            Placement::Below2GiB => reserve_low(len, self.page_size),
            Placement::At(address) => map_reserved(len, Some(address.get())),
        };
        let Some(address) = address else {
            // Below 2 GiB many candidates were tried: the last one's errno would mislead.
            let source = match placement {
                Placement::Below2GiB => None,
                _ => Some(io::Error::last_os_error()),
            };
            return Err(MapError::Reserve {
                size: len,
                placement,
                source,
            });
        };
        Ok(TargetRange {
            start: TargetAddr(address),
            len,
        })
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        // SAFETY: the range lies inside a reservation of this mapper.
        let rc = unsafe {
            libc::mprotect(
                range.start.get() as *mut libc::c_void,
                range.len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(os_error("mprotect", range));
        }
        Ok(WorkingMemory {
            ptr: range.start.get() as *mut u8,
            len: range.len,
        })
    }

    fn initialize(
        &self,
        segments: &[SegmentProtection],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        for segment in segments {
            let prot = match segment.protection {
                Protection::ReadExecute => libc::PROT_READ | libc::PROT_EXEC,
                Protection::Read => libc::PROT_READ,
                Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            };
            if segment.range.len == 0 {
                continue;
            }
            // SAFETY: the range lies inside a mapping this mapper created.
            let rc = unsafe {
                libc::mprotect(
                    segment.range.start.get() as *mut libc::c_void,
                    segment.range.len,
                    prot,
                )
            };
            if rc != 0 {
                return Err(os_error("mprotect", segment.range));
            }
        }
        // SAFETY: actions name functions of the documented type (the caller's contract).
        unsafe { call_actions(actions) };
        Ok(())
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        // SAFETY: as in `initialize`.
        unsafe { call_actions(actions) };
        for range in ranges {
            let ptr = range.start.get() as *mut libc::c_void;
            // MADV_DONTNEED gives the pages back (they read as zero afterwards); PROT_NONE
            // makes stray uses of freed code fault instead of running stale bytes.
            // SAFETY: the range lies inside a mapping this mapper created.
            let rc = unsafe {
                libc::madvise(ptr, range.len, libc::MADV_DONTNEED)
                    | libc::mprotect(ptr, range.len, libc::PROT_NONE)
            };
            if rc != 0 {
                return Err(os_error("deinitialize", *range));
            }
        }
        Ok(())
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        // SAFETY: the range is a whole reservation made by `reserve`.
        let rc = unsafe { libc::munmap(range.start.get() as *mut libc::c_void, range.len) };
        if rc != 0 {
            return Err(os_error("munmap", range));
        }
        Ok(())
    }
}
