//! The in-process mapper: target memory is this process's memory, managed with mmap/mprotect.
//!
//! Whole-page allocations are private anonymous memory, written in place before their
//! protections are set. Packed pieces share pages with code that may be running in another
//! thread, so no page's protection may change once live (never taken away from under running
//! code, and no mapping ever writable and executable): code and read-only pages of packed chunks
//! are mapped from a memory file instead, and pieces are written through a second view of
//! that file, the *alias*, which is inaccessible except while a piece is being written, and
//! never executable. While a piece is written, the page it lands on is writable through the
//! alias and executable through the code view: two mappings of one page, as in every JIT that
//! keeps W^X per mapping; the alias's address is nowhere else. Packed data pages stay private
//! anonymous memory (they are writable anyway), so that a forked child's writes to them stay
//! its own.

use crate::mapper::{
    MemoryMapper, PieceWrite, Placement, Protection, SegmentProtection, TargetCall,
    LOW_PLACEMENT_FLOOR, LOW_PLACEMENT_LIMIT,
};
use crate::MapError;
use crate::{TargetAddr, TargetRange, WorkingMemory};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// Maps target memory into the current process. Working memory and target memory coincide,
/// except for packed pieces (see the module's comment).
#[derive(Debug)]
pub struct InProcessMapper {
    page_size: usize,
    /// The reservations made by this mapper.
    reservations: Mutex<Vec<Reservation>>,
}

#[derive(Debug)]
struct Reservation {
    range: TargetRange,
    /// The memory file behind its packed code and read-only pages, from the first such page.
    file: Option<PackFile>,
}

/// A memory file as large as a reservation: byte `i` of the file backs the reservation's
/// byte `i` where a packed code or read-only page is live.
#[derive(Debug)]
struct PackFile {
    fd: OwnedFd,
    /// A view of the whole file, `PROT_NONE` except for the pages being written.
    alias: *mut u8,
    len: usize,
}

// SAFETY: the alias is a mapping owned by the file; writes through it happen under the
// mapper's lock.
unsafe impl Send for PackFile {}

impl Drop for PackFile {
    fn drop(&mut self) {
        // SAFETY: the alias is this file's own mapping, no longer used.
        unsafe { libc::munmap(self.alias as *mut libc::c_void, self.len) };
    }
}

impl PackFile {
    fn new(len: usize) -> io::Result<PackFile> {
        // SAFETY: plain system calls; the descriptor is owned from here on, and the alias is
        // a new mapping of it.
        unsafe {
            let fd = libc::memfd_create(c"rjitlink-code".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = high_descriptor(OwnedFd::from_raw_fd(fd));
            if libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) != 0 {
                return Err(io::Error::last_os_error());
            }
            let alias = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            if alias == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            Ok(PackFile {
                fd,
                alias: alias as *mut u8,
                len,
            })
        }
    }

    /// Write `bytes` at `offset` in the file through the alias, which is writable only
    /// meanwhile.
    fn write(&self, offset: usize, bytes: &[u8], page: usize) -> io::Result<()> {
        let start = offset - offset % page;
        let len = (offset + bytes.len()).next_multiple_of(page) - start;
        // SAFETY: `[start, start + len)` lies in the alias (the piece lies in the
        // reservation); nothing else uses these alias pages meanwhile (the mapper's lock).
        unsafe {
            let pages = self.alias.add(start) as *mut libc::c_void;
            if libc::mprotect(pages, len, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                return Err(io::Error::last_os_error());
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.alias.add(offset), bytes.len());
            if libc::mprotect(pages, len, libc::PROT_NONE) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl Default for InProcessMapper {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessMapper {
    /// A mapper for this process's memory.
    pub fn new() -> Self {
        InProcessMapper {
            page_size: page_size(),
            reservations: Mutex::new(Vec::new()),
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
    let source = io::Error::last_os_error();
    // ENOMEM from mmap or mprotect usually means the kernel's limit on mappings, which one
    // more mapping (or splitting one) would pass: say so, it is what the user can change.
    if source.raw_os_error() == Some(libc::ENOMEM) {
        if let Some((mappings, limit)) = mappings_at_limit() {
            return MapError::MapCountLimit {
                operation,
                range,
                mappings,
                limit,
            };
        }
    }
    MapError::System {
        operation,
        range,
        source,
    }
}

/// This process's mappings and `vm.max_map_count`, if the former are (within the two a split
/// adds) at the latter.
fn mappings_at_limit() -> Option<(u64, u64)> {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    let limit: u64 = limit.trim().parse().ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mappings = maps.lines().count() as u64;
    (mappings + 2 >= limit).then_some((mappings, limit))
}

/// `fd` moved to a high descriptor (close-on-exec), as the executor does with its own (see
/// `rjitlink_executor`'s start state), so that a program run in this process gets 3 from its
/// first `open`, as natively: from 1000, or 16 below a lower descriptor limit. Kept where it is
/// if that is no higher.
fn high_descriptor(fd: OwnedFd) -> OwnedFd {
    let mut limit = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: getrlimit fills `limit` or fails.
    let soft = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } {
        // SAFETY: filled by the successful call.
        0 => unsafe { limit.assume_init() }.rlim_cur,
        _ => 0,
    };
    let floor = 1000.min(libc::c_int::try_from(soft.saturating_sub(16)).unwrap_or(1000));
    if fd.as_raw_fd() >= floor {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor for the same file, or fails.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) } {
        -1 => fd,
        // SAFETY: a new descriptor, ours alone; `fd` is closed as it drops.
        high => unsafe { OwnedFd::from_raw_fd(high) },
    }
}

fn protection_flags(protection: Protection) -> libc::c_int {
    match protection {
        Protection::ReadExecute => libc::PROT_READ | libc::PROT_EXEC,
        Protection::Read => libc::PROT_READ,
        Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
    }
}

/// From this size on, working memory is advised into transparent huge pages (see `prepare`).
const HUGE_PAGE_WORTH: usize = 4 << 20;

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

impl InProcessMapper {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Reservation>> {
        self.reservations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reservation holding `range`, and its memory file, made now if it has none yet.
    fn pack_file<'a>(
        &self,
        reservations: &'a mut [Reservation],
        range: TargetRange,
    ) -> Result<(TargetRange, &'a PackFile), MapError> {
        let reservation = reservations
            .iter_mut()
            .find(|r| r.range.contains(range))
            .ok_or_else(|| {
                MapError::Executor(format!("{} is not in a reservation", range.start))
            })?;
        if reservation.file.is_none() {
            let file = PackFile::new(reservation.range.len).map_err(|source| MapError::System {
                operation: "set up the memory file of",
                range: reservation.range,
                source,
            })?;
            reservation.file = Some(file);
        }
        let file = reservation.file.as_ref().expect("made above");
        Ok((reservation.range, file))
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
        let range = TargetRange {
            start: TargetAddr(address),
            len,
        };
        self.lock().push(Reservation { range, file: None });
        Ok(range)
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
        if range.len >= HUGE_PAGE_WORTH {
            // A large image is written whole by the apply phase: in 2 MiB pages it takes a
            // few hundred page faults instead of one per 4 KiB page. Only advice: where the
            // kernel has no huge pages (or THP is off) the range simply stays in small pages.
            // SAFETY: advice on our own mapping; it changes no contents.
            unsafe {
                libc::madvise(
                    range.start.get() as *mut libc::c_void,
                    range.len,
                    libc::MADV_HUGEPAGE,
                )
            };
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
            let prot = protection_flags(segment.protection);
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

    fn initialize_pieces(
        &self,
        pages: &[SegmentProtection],
        pieces: &[PieceWrite<'_>],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        let mut reservations = self.lock();
        for run in pages {
            let ptr = run.range.start.get() as *mut libc::c_void;
            let prot = protection_flags(run.protection);
            let rc = match run.protection {
                // SAFETY: reserved pages of ours that nothing uses yet.
                Protection::ReadWrite => unsafe { libc::mprotect(ptr, run.range.len, prot) },
                _ => {
                    let (reservation, file) = self.pack_file(&mut reservations, run.range)?;
                    let offset = run.range.start - reservation.start;
                    // SAFETY: the pages lie in our reservation and nothing uses them yet:
                    // MAP_FIXED replaces only them, with the file's pages at the same offsets.
                    let mapped = unsafe {
                        libc::mmap(
                            ptr,
                            run.range.len,
                            prot,
                            libc::MAP_SHARED | libc::MAP_FIXED,
                            file.fd.as_raw_fd(),
                            offset as libc::off_t,
                        )
                    };
                    if mapped == libc::MAP_FAILED {
                        -1
                    } else {
                        0
                    }
                }
            };
            if rc != 0 {
                return Err(os_error("map", run.range));
            }
        }
        for piece in pieces {
            match piece.protection {
                // SAFETY: a piece of live, writable memory of ours: disjoint from every other
                // piece, so no running code uses its bytes.
                Protection::ReadWrite => unsafe {
                    std::ptr::copy_nonoverlapping(
                        piece.bytes.as_ptr(),
                        piece.range.start.get() as *mut u8,
                        piece.bytes.len(),
                    )
                },
                _ => {
                    let (reservation, file) = self.pack_file(&mut reservations, piece.range)?;
                    let offset = (piece.range.start - reservation.start) as usize;
                    file.write(offset, piece.bytes, self.page_size)
                        .map_err(|source| MapError::System {
                            operation: "write through the alias",
                            range: piece.range,
                            source,
                        })?;
                }
            }
        }
        drop(reservations);
        // SAFETY: as in `initialize`.
        unsafe { call_actions(actions) };
        Ok(())
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        // SAFETY: as in `initialize`.
        unsafe { call_actions(actions) };
        let reservations = self.lock();
        for range in ranges {
            let packed = reservations
                .iter()
                .find(|r| r.range.contains(*range))
                .and_then(|r| Some((r.range, r.file.as_ref()?)));
            if let Some((reservation, file)) = packed {
                // The range may be backed by the memory file: free the file's pages (nothing
                // to do where it never was), and put private, inaccessible memory back in
                // place, as reserved.
                let offset = (range.start - reservation.start) as libc::off_t;
                // SAFETY: a range of our own memory file; then a MAP_FIXED mapping over a
                // range of our reservation.
                let ok = unsafe {
                    libc::fallocate(
                        file.fd.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        offset,
                        range.len as libc::off_t,
                    ) == 0
                        && libc::mmap(
                            range.start.get() as *mut libc::c_void,
                            range.len,
                            libc::PROT_NONE,
                            libc::MAP_PRIVATE
                                | libc::MAP_ANONYMOUS
                                | libc::MAP_NORESERVE
                                | libc::MAP_FIXED,
                            -1,
                            0,
                        ) != libc::MAP_FAILED
                };
                if !ok {
                    return Err(os_error("deinitialize", *range));
                }
                continue;
            }
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
        // Its memory file (and the alias) go with it.
        self.lock().retain(|reservation| reservation.range != range);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process that uses up its mappings.
    const EXHAUST: &str = "RJITLINK_TEST_EXHAUST_MAPPINGS";
    const NAME: &str = "inprocess::tests::running_out_of_mappings_names_the_limit";

    fn max_map_count() -> usize {
        let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap();
        limit.trim().parse().unwrap()
    }

    #[test]
    fn running_out_of_mappings_names_the_limit() {
        let limit = max_map_count();
        if limit > 1 << 21 {
            eprintln!("vm.max_map_count is {limit}: too many mappings to use up in a test");
            return;
        }
        if std::env::var_os(EXHAUST).is_some() {
            // In a process of its own: every second page of one reservation made accessible,
            // each a mapping of its own, until the kernel refuses one more.
            let mapper = InProcessMapper::new();
            let page = mapper.page_size();
            let range = mapper
                .reserve(page * 2 * (limit + 2), Placement::Anywhere)
                .unwrap();
            for i in 0..=limit {
                let one = TargetRange {
                    start: range.start + (2 * i * page) as u64,
                    len: page,
                };
                if let Err(error) = mapper.prepare(one) {
                    println!("{error}");
                    return;
                }
            }
            panic!("the kernel never refused a mapping");
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(EXHAUST, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!(
                "as many as the kernel allows (vm.max_map_count = {limit}"
            )),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
