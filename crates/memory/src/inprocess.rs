//! The in-process mapper: target memory is this process's memory, managed with mmap/mprotect.

use crate::mapper::{MapError, MemoryMapper, Placement, Protection, SegmentProtection};
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
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        InProcessMapper {
            page_size: usize::try_from(page_size).unwrap_or(4096),
        }
    }
}

fn os_error(what: &str, range: TargetRange) -> MapError {
    MapError(format!(
        "{what} of {:#x} bytes at {} failed: {}",
        range.len,
        range.start,
        io::Error::last_os_error()
    ))
}

impl MemoryMapper for InProcessMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let len = size.max(1).next_multiple_of(self.page_size);
        // The image is written right after reservation, so map it read-write now: pages cost
        // nothing until touched (MAP_NORESERVE), and `initialize` narrows the protections.
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        if placement == Placement::Below2GiB {
            flags |= libc::MAP_32BIT;
        }
        // SAFETY: an anonymous mapping at an address of the kernel's choosing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MapError(format!(
                "cannot reserve {len:#x} bytes of memory{}: {}",
                if placement == Placement::Below2GiB {
                    " below 2 GiB"
                } else {
                    ""
                },
                io::Error::last_os_error()
            )));
        }
        Ok(TargetRange {
            start: TargetAddr(ptr as u64),
            len,
        })
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        Ok(WorkingMemory {
            ptr: range.start.get() as *mut u8,
            len: range.len,
        })
    }

    fn initialize(&self, segments: &[SegmentProtection]) -> Result<(), MapError> {
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
        Ok(())
    }

    fn deinitialize(&self, ranges: &[TargetRange]) -> Result<(), MapError> {
        for range in ranges {
            // MADV_DONTNEED drops the pages so the memory really goes back to the system.
            // SAFETY: the range lies inside a mapping this mapper created.
            let rc = unsafe {
                let ptr = range.start.get() as *mut libc::c_void;
                libc::mprotect(ptr, range.len, libc::PROT_READ | libc::PROT_WRITE)
                    | libc::madvise(ptr, range.len, libc::MADV_DONTNEED)
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
