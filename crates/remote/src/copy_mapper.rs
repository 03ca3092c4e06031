//! The RPC-copy mapper: links into local buffers and sends the bytes at finalize — only the
//! pages that hold something: the executor's fresh memory already reads zero, so zero-fill
//! sections (a 900 MiB `.bss`) cost nothing on the wire.

use crate::connection::{
    call, call_with_payloads, deinitialize_remote, initialize_remote, interpret, lock, map_error,
    ready, release_remote, target_map_error, SharedConnection,
};
use rjitlink_memory::{
    MapError, MemoryMapper, PieceWrite, Placement, Protection, SegmentProtection, TargetAddr,
    TargetCall, TargetRange, WorkingMemory,
};
use rjitlink_protocol::{Request, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Zero pages between two runs of pages to send that are sent rather than split at: fewer
/// runs (each a few system calls on both sides) for a few bytes more.
const ZERO_GAP_PAGES: usize = 16;

/// The most runs one `WriteRuns` names (with at most as many writable ranges): 16 bytes
/// each, far within a frame.
const RUNS_PER_REQUEST: usize = 1 << 16;

/// A transparent huge page. Buffers of at least this size start on such a boundary and are
/// advised into huge pages: the apply phase writes nearly all of a buffer, and faulting it in
/// 2 MiB at a time costs a few hundred page faults less per megabyte than 4 KiB at a time.
const HUGE_PAGE: usize = 2 << 20;

/// Links into local buffers; `initialize` sends the bytes, then the protections.
pub struct RemoteCopyMapper {
    connection: SharedConnection,
    page_size: usize,
    /// Working memory of prepared ranges not yet initialized.
    working: Mutex<Vec<Buffer>>,
    /// Set once writing into the executor's memory directly failed: the bytes go through the
    /// connection from then on.
    no_direct_writes: AtomicBool,
}

/// Iovecs per `process_vm_writev` (the kernel's limit, UIO_MAXIOV).
const IOVECS_PER_CALL: usize = 1024;

/// Write each run's bytes at its address in process `pid`, with `process_vm_writev`: one copy,
/// where sending them copies them into the socket and out again (CPython's 6.4 MB: finalize
/// 3.3 -> 2.5 ms). False if not all were written (the system or its policy does not let this
/// process write into the executor's memory): the caller sends them instead.
///
/// (Cutting the runs at the executor's 2 MiB boundaries and writing the pieces from two
/// threads, each faulting in its own huge pages there, measured no faster.)
fn write_directly(pid: u32, runs: &[Run<'_>]) -> bool {
    runs.chunks(IOVECS_PER_CALL).all(|batch| {
        let local: Vec<libc::iovec> = batch
            .iter()
            .map(|run| libc::iovec {
                iov_base: run.bytes.as_ptr() as *mut libc::c_void,
                iov_len: run.bytes.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = batch
            .iter()
            .map(|run| libc::iovec {
                iov_base: run.start.get() as *mut libc::c_void,
                iov_len: run.bytes.len(),
            })
            .collect();
        let expected: usize = batch.iter().map(|run| run.bytes.len()).sum();
        // SAFETY: the local iovecs name bytes of the runs, which live across the call; the
        // remote ones, pages of the executor's reservations it has just made writable for
        // them (`PrepareWrites` checked each run against them). The kernel checks both.
        let written = unsafe {
            libc::process_vm_writev(
                pid as libc::pid_t,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        usize::try_from(written) == Ok(expected)
    })
}

/// Whether `pid` is a child of this process that has not ended: `waitid` with `WNOWAIT`
/// looks without reaping, fails for a process that is not our child, and names no process
/// while the child runs.
fn is_live_child(pid: u32) -> bool {
    // SAFETY: siginfo_t is plain data, zeroed so that `si_pid` reads 0 unless the call sets it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid siginfo_t to fill; WNOWAIT leaves any status to be reaped by
    // its owner.
    let looked = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is valid to read for a siginfo_t that waitid filled or left zeroed.
    looked == 0 && unsafe { info.si_pid() } == 0
}

/// Linker-side memory for one prepared range: an anonymous mapping of its own, so that the
/// pages the link never touched are known without reading them (`mincore`).
struct Buffer {
    range: TargetRange,
    ptr: *mut u8,
}

// SAFETY: a buffer is a private mapping owned by the mapper; the linker writes disjoint parts.
unsafe impl Send for Buffer {}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the buffer's own mapping, no longer used.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.range.len) };
    }
}

impl RemoteCopyMapper {
    pub(crate) fn new(connection: SharedConnection, page_size: usize) -> Self {
        RemoteCopyMapper {
            connection,
            page_size,
            working: Mutex::new(Vec::new()),
            no_direct_writes: AtomicBool::new(false),
        }
    }

    /// The executor's pid, if it is this linker's own child and writing into its memory
    /// directly has not failed.
    fn direct_target(&self) -> Option<u32> {
        if self.no_direct_writes.load(Ordering::Relaxed) {
            return None;
        }
        let locked = lock(&self.connection);
        // The pid is the one the executor's hello named: written into only once it is seen
        // to be a live child of this process, so an executor program that names another
        // process (or one in a PID namespace of its own) gets its bytes sent instead.
        locked
            .own_child
            .then_some(locked.executor_pid)
            .flatten()
            .filter(|&pid| is_live_child(pid))
    }

    /// Make the `writable` pages writable in the target and write each run's bytes at its
    /// address there, in one round trip (a few, for more than `RUNS_PER_REQUEST` runs). Each
    /// run names the writable range it lies in, by index; runs come in the order of their
    /// ranges.
    ///
    /// To an executor this linker started, the bytes do not cross the connection: it is
    /// asked to make the pages ready (`PrepareWrites`, the same checks), and they are written
    /// into its memory from here; should that fail, they are sent after all.
    fn write_runs(&self, writable: &[TargetRange], runs: &[Run<'_>]) -> Result<(), MapError> {
        for (writable, runs) in batches(writable, runs, RUNS_PER_REQUEST) {
            let ranges: Vec<TargetRange> = runs
                .iter()
                .map(|run| TargetRange {
                    start: run.start,
                    len: run.bytes.len(),
                })
                .collect();
            if let Some(pid) = self.direct_target() {
                let prepare = Request::PrepareWrites {
                    writable: writable.to_vec(),
                    runs: ranges.clone(),
                };
                call(&self.connection, &prepare, |r| {
                    matches!(r, Response::Done).then_some(())
                })
                .map_err(target_map_error)?;
                if write_directly(pid, runs) {
                    continue;
                }
                self.no_direct_writes.store(true, Ordering::Relaxed);
            }
            let request = Request::WriteRuns {
                writable: writable.to_vec(),
                runs: ranges,
            };
            let payloads: Vec<&[u8]> = runs.iter().map(|run| run.bytes).collect();
            call_with_payloads(&self.connection, &request, &payloads, |r| {
                matches!(r, Response::Done).then_some(())
            })
            .map_err(target_map_error)?;
        }
        Ok(())
    }
}

/// Bytes to write at `start` in the target, which lies in the writable range `range` (an
/// index into the ranges sent with it).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run<'a> {
    range: usize,
    start: TargetAddr,
    bytes: &'a [u8],
}

/// `runs` in batches of at most `limit`, each with the writable ranges its runs lie in
/// (from its first run's to its last run's: a range whose runs straddle two batches goes
/// with both, and is made writable twice).
fn batches<'w, 'r, 'a>(
    writable: &'w [TargetRange],
    runs: &'r [Run<'a>],
    limit: usize,
) -> impl Iterator<Item = (&'w [TargetRange], &'r [Run<'a>])> {
    runs.chunks(limit).map(move |batch| {
        let first = batch.first().map_or(0, |run| run.range);
        let last = batch.last().map_or(0, |run| run.range);
        (&writable[first..=last], batch)
    })
}

/// Write `bytes` at `address` in the target: one round trip. The executor makes the pages
/// written writable (`initialize` then sets their protections). (The copy mapper sends all
/// its runs in one `WriteRuns` instead.)
pub(crate) fn write_remote(
    connection: &SharedConnection,
    address: TargetAddr,
    bytes: &[u8],
) -> Result<(), MapError> {
    let mut locked = ready(connection).map_err(target_map_error)?;
    let request = Request::Write {
        address,
        length: bytes.len() as u64,
    };
    interpret(locked.connection.call_with_payload(&request, bytes), |r| {
        matches!(r, Response::Done).then_some(())
    })
    .map_err(target_map_error)
}

/// A new private anonymous mapping of `len` bytes (it reads zero until written); from
/// `HUGE_PAGE` bytes on, aligned to a huge page and advised into huge pages, so that every
/// whole 2 MiB of it can be one.
fn map_buffer(len: usize) -> std::io::Result<*mut u8> {
    let huge = len >= HUGE_PAGE;
    // Room to align the start within, trimmed off below.
    let slack = if huge { HUGE_PAGE } else { 0 };
    let mapped_len = len
        .checked_add(slack)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
    // SAFETY: a new private anonymous mapping, ours alone.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            mapped_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    if !huge {
        return Ok(mapped as *mut u8);
    }
    let base = mapped as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let head = start - base;
    let tail = slack - head;
    // SAFETY: the head and tail are parts of the mapping just made, which nothing uses; the
    // advice changes no contents and, where huge pages are unavailable, is simply not taken.
    unsafe {
        if head > 0 {
            libc::munmap(mapped, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    Ok(start as *mut u8)
}

/// The pages `range` touches, as one range.
fn page_span(range: TargetRange, page_size: usize) -> TargetRange {
    let page = page_size as u64;
    let start = range.start.get() - range.start.get() % page;
    let end = range.end().get().next_multiple_of(page);
    TargetRange {
        start: TargetAddr(start),
        len: (end - start) as usize,
    }
}

/// The pages `range` touches, with `protection`, one page each.
pub(crate) fn pages_of(
    range: TargetRange,
    protection: Protection,
    page_size: usize,
) -> impl Iterator<Item = SegmentProtection> {
    let span = page_span(range, page_size);
    let page = page_size as u64;
    (span.start.get()..span.end().get())
        .step_by(page_size)
        .map(move |start| SegmentProtection {
            range: TargetRange {
                start: TargetAddr(start),
                len: page as usize,
            },
            protection,
        })
}

/// Whether `bytes` are all zero: 64 bytes at a time, or-ed together (which the compiler
/// vectorizes, unlike a byte-by-byte search for the first non-zero one).
fn all_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    blocks.all(|block| block.iter().fold(0, |acc, &byte| acc | byte) == 0)
        && blocks.remainder().iter().all(|&byte| byte == 0)
}

/// The byte ranges of `bytes` (which start on a page boundary) worth sending: pages that were
/// written and are not all zero, joined across short gaps.
fn nonzero_runs(bytes: &[u8], page_size: usize) -> Vec<std::ops::Range<usize>> {
    let pages = bytes.len().div_ceil(page_size);
    let mut resident = vec![1u8; pages];
    // SAFETY: `bytes` is a page-aligned part of a mapping of ours, `resident` has a byte per
    // page. On failure every page counts as resident, and is read.
    if unsafe {
        libc::mincore(
            bytes.as_ptr() as *mut libc::c_void,
            bytes.len(),
            resident.as_mut_ptr(),
        )
    } != 0
    {
        resident.fill(1);
    }
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (page, chunk) in bytes.chunks(page_size).enumerate() {
        // A page never touched is not resident: it reads zero, and reading it would map it.
        if resident[page] & 1 == 0 || all_zero(chunk) {
            continue;
        }
        let start = page * page_size;
        let end = start + chunk.len();
        match runs.last_mut() {
            Some(run) if start - run.end <= ZERO_GAP_PAGES * page_size => run.end = end,
            _ => runs.push(start..end),
        }
    }
    runs
}

impl MemoryMapper for RemoteCopyMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        call(
            &self.connection,
            &Request::Reserve {
                size: size as u64,
                placement,
                shared: false,
                nonce: b"",
            },
            |r| match r {
                Response::Reserved(range) => Some(range),
                _ => None,
            },
        )
        .map_err(target_map_error)
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        let ptr = map_buffer(range.len).map_err(|source| MapError::System {
            operation: "mmap",
            range,
            source,
        })?;
        self.working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Buffer { range, ptr });
        Ok(WorkingMemory {
            ptr,
            len: range.len,
        })
    }

    fn initialize(
        &self,
        segments: &[SegmentProtection],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        let mut working = self.working.lock().unwrap_or_else(|e| e.into_inner());
        let mut writable: Vec<TargetRange> = Vec::new();
        let mut runs: Vec<Run<'_>> = Vec::new();
        for segment in segments.iter().filter(|s| s.range.len > 0) {
            let buffer = working
                .iter()
                .find(|b| b.range.contains(segment.range))
                .ok_or_else(|| {
                    map_error(format!(
                        "segment at {} was never prepared",
                        segment.range.start
                    ))
                })?;
            let offset = (segment.range.start - buffer.range.start) as usize;
            // SAFETY: inside the buffer's mapping (checked above), written by the link, which
            // is over.
            let bytes =
                unsafe { std::slice::from_raw_parts(buffer.ptr.add(offset), segment.range.len) };
            let segment_runs = nonzero_runs(bytes, self.page_size);
            if let (Some(first), Some(last)) = (segment_runs.first(), segment_runs.last()) {
                // The zero pages between runs are made writable, not sent: the executor's
                // fresh pages read zero, and a 2 MiB block across runs can be one huge page.
                writable.push(page_span(
                    TargetRange {
                        start: segment.range.start + first.start as u64,
                        len: last.end - first.start,
                    },
                    self.page_size,
                ));
            }
            for run in segment_runs {
                runs.push(Run {
                    range: writable.len() - 1,
                    start: segment.range.start + run.start as u64,
                    bytes: &bytes[run],
                });
            }
        }
        self.write_runs(&writable, &runs)?;
        drop(runs);
        // The bytes are in place: the local copies are no longer needed.
        working.retain(|buffer| !segments.iter().any(|s| buffer.range.contains(s.range)));
        drop(working);
        initialize_remote(&self.connection, segments, actions)
    }

    /// Each piece is sent whole — zero bytes too, which may fall where a freed piece left
    /// its bytes — then every page a piece touched gets its protection back (a write made it
    /// writable; the executor runs nothing meanwhile).
    fn initialize_pieces(
        &self,
        pages: &[SegmentProtection],
        pieces: &[PieceWrite<'_>],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        let mut protections: Vec<SegmentProtection> = Vec::new();
        for piece in pieces {
            protections.extend(pages_of(piece.range, piece.protection, self.page_size));
        }
        let writable: Vec<TargetRange> = pieces
            .iter()
            .map(|piece| page_span(piece.range, self.page_size))
            .collect();
        let runs: Vec<Run<'_>> = pieces
            .iter()
            .enumerate()
            .map(|(range, piece)| Run {
                range,
                start: piece.range.start,
                bytes: piece.bytes,
            })
            .collect();
        self.write_runs(&writable, &runs)?;
        // Every page going live holds a piece: `protections` has it already.
        debug_assert!(pages.iter().all(|page| protections.contains(page)));
        initialize_remote(&self.connection, &protections, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        // A range abandoned before it was initialized still has its local buffer.
        self.working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|buffer| !ranges.iter().any(|r| r.contains(buffer.range)));
        deinitialize_remote(&self.connection, ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        release_remote(&self.connection, range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_child_is_written_into_directly() {
        assert!(
            !is_live_child(std::process::id()),
            "this process is not its own child"
        );
        assert!(!is_live_child(1), "init is not our child");
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("sleep starts");
        assert!(is_live_child(child.id()));
        child.kill().expect("the child is killed");
        // Ended but not reaped yet: not live. Poll until the kill has taken effect.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_live_child(child.id()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the killed child still runs"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.wait().expect("the child is reaped");
        assert!(!is_live_child(child.id()), "a reaped child is no one's");
    }

    #[test]
    fn only_written_nonzero_pages_are_sent() {
        let page = rjitlink_memory::page_size();
        let pages = 64;
        // SAFETY: a private anonymous mapping for the test, unmapped at the end.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as *mut u8;
        // SAFETY: the mapping above.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, pages * page) };
        assert!(nonzero_runs(bytes, page).is_empty(), "untouched");
        bytes[0] = 1;
        // Written, but zero: not sent.
        bytes[2 * page] = 0;
        // Within the gap: joined to the first run.
        bytes[3 * page + 5] = 7;
        // Beyond it: a run of its own, ending with the partial last page.
        bytes[40 * page] = 1;
        assert_eq!(
            nonzero_runs(bytes, page),
            [0..4 * page, 40 * page..41 * page]
        );
        assert_eq!(nonzero_runs(&bytes[..40 * page + 10], page).len(), 2);
        // SAFETY: unmapping the test's mapping.
        unsafe { libc::munmap(ptr as *mut libc::c_void, pages * page) };
    }

    #[test]
    fn each_batch_of_runs_carries_the_ranges_they_lie_in() {
        let range = |start: u64| TargetRange {
            start: TargetAddr(start),
            len: 0x1000,
        };
        let writable = [range(0x1000), range(0x2000), range(0x3000)];
        let run = |range: usize, start: u64| Run {
            range,
            start: TargetAddr(start),
            bytes: b"x",
        };
        let runs = [
            run(0, 0x1000),
            run(1, 0x2000),
            run(1, 0x2800),
            run(1, 0x2900),
            run(2, 0x3000),
        ];
        let two: Vec<_> = batches(&writable, &runs, 2).collect();
        assert_eq!(two.len(), 3);
        assert_eq!(two[0], (&writable[0..2], &runs[0..2]));
        // Range 1's runs straddle the first two batches: it goes with both.
        assert_eq!(two[1], (&writable[1..2], &runs[2..4]));
        assert_eq!(two[2], (&writable[2..3], &runs[4..5]));
        assert_eq!(batches(&writable, &runs, 8).count(), 1);
        assert_eq!(batches(&writable, &[], 8).count(), 0);
    }

    #[test]
    fn direct_writes_go_in_batches_the_kernel_takes_and_fail_whole() {
        // Into this process's own memory: more runs than one process_vm_writev takes.
        let page = rjitlink_memory::page_size();
        let runs_count = 2 * IOVECS_PER_CALL + 100;
        let len = (runs_count + 1) * page;
        // SAFETY: a private anonymous mapping for the test, unmapped at the end.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as *mut u8;
        assert_ne!(ptr as *mut libc::c_void, libc::MAP_FAILED);
        let sources: Vec<[u8; 3]> = (0..runs_count)
            .map(|i| [(i % 251) as u8 + 1, (i / 251) as u8 + 1, 0xee])
            .collect();
        let base = ptr as u64;
        let runs: Vec<Run<'_>> = sources
            .iter()
            .enumerate()
            .map(|(i, bytes)| Run {
                range: 0,
                start: TargetAddr(base + (i * page + i % 7) as u64),
                bytes,
            })
            .collect();
        let pid = std::process::id();
        if !write_directly(pid, &runs[..1]) {
            // A seccomp filter or policy forbids the call here: nothing to test.
            eprintln!(
                "process_vm_writev refused: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: unmapping the test's mapping.
            unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
            return;
        }
        assert!(write_directly(pid, &runs));
        // SAFETY: the mapping above, written by the calls.
        let memory = unsafe { std::slice::from_raw_parts(ptr, len) };
        for (i, bytes) in sources.iter().enumerate() {
            let at = i * page + i % 7;
            assert_eq!(&memory[at..at + 3], bytes, "run {i}");
        }
        // A run past the memory in the last batch: the write is short, which counts as
        // failed (the caller then sends the whole batch).
        // SAFETY: the mapping's last page, which no run above wrote.
        unsafe { libc::munmap(ptr.add(runs_count * page) as *mut libc::c_void, page) };
        let mut failing = runs;
        failing.push(Run {
            range: 0,
            start: TargetAddr(base + (runs_count * page) as u64),
            bytes: b"lost",
        });
        assert!(!write_directly(pid, &failing));
        // SAFETY: unmapping what is left of the test's mapping.
        unsafe { libc::munmap(ptr as *mut libc::c_void, runs_count * page) };
    }

    #[test]
    fn zero_is_found_in_every_position() {
        let mut bytes = vec![0u8; 200];
        assert!(all_zero(&bytes) && all_zero(&bytes[..0]) && all_zero(&bytes[3..131]));
        for at in 0..bytes.len() {
            bytes[at] = 0x80;
            assert!(!all_zero(&bytes), "{at}");
            assert!(all_zero(&bytes[..at]) && all_zero(&bytes[at + 1..]), "{at}");
            bytes[at] = 0;
        }
    }

    #[test]
    fn large_buffers_start_on_a_huge_page_and_send_only_what_was_written() {
        let page = rjitlink_memory::page_size();
        for len in [40 * page, HUGE_PAGE + 5 * page, 3 * HUGE_PAGE] {
            let ptr = map_buffer(len).unwrap();
            assert_eq!(ptr as usize % page, 0);
            if len >= HUGE_PAGE {
                assert_eq!(ptr as usize % HUGE_PAGE, 0, "{len}");
            }
            // SAFETY: the buffer just mapped, `len` bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
            // Its first and last bytes are its own, and zero; a write to one page of a
            // huge page leaves the others zero, and unsent.
            assert_eq!((bytes[0], bytes[len - 1]), (0, 0));
            bytes[page + 1] = 9;
            bytes[len - 1] = 1;
            let last = len / page - 1;
            assert_eq!(
                nonzero_runs(bytes, page),
                [page..2 * page, last * page..len]
            );
            // SAFETY: the buffer's own mapping, as `Buffer` unmaps it.
            assert_eq!(unsafe { libc::munmap(ptr as *mut libc::c_void, len) }, 0);
        }
    }
}
