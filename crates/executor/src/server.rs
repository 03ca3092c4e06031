//! The executor service: serves one linker over a connection, doing the target operations in
//! this process.
//!
//! No frame a client sends can crash the service: every frame is checked, and every address a
//! request names is checked against memory the service owns before anything touches it —
//! memory requests must lie in its reservations, calls (finalize actions, the program's entry,
//! init and fini functions) must go to code it holds or to a function of a loaded library, and
//! their pointer arguments and copy relocations must lie in its live segments. A request that
//! fails a check is refused with a message, and the connection goes on. What the client has
//! the dynamic loader load (a library, a generated object) and the code it links and has
//! called can of course do anything: that is what an authenticated client is for, and why
//! TCP clients must prove that they know the token. If that code kills this process, the
//! listener tells the linker by which signal.

use crate::error::ServeError;
use crate::interpose::interpose;
use crate::relay;
use crate::target::{call_finalizers, call_initializers, run_program, symbol_info, Libraries};
use rjitlink_memory::{
    InProcessMapper, MemoryMapper, Placement, Protection, SegmentProtection, TargetAddr,
    TargetCall, TargetRange,
};
use rjitlink_protocol::{Connection, Request, Response, Transport, PROTOCOL_VERSION};
use rjitlink_target::{
    full_message, DebugObject, DebugObjectHandle, Interposition, ModuleHandle, Program, SymbolKind,
    WordTable,
};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;
use std::time::Duration;

/// How long a spawned executor's linker may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reservation granted: far beyond any slab, far below the 128 TiB of a user
/// address space, so that sizes from the wire cannot overflow the arithmetic on them.
const MAX_RESERVATION: u64 = 1 << 46;

/// The most bytes of debug objects one connection may have registered at once: far beyond the
/// DWARF of any program, far below what would exhaust the machine, so that sizes from the
/// wire are bounded before anything is allocated for them.
const MAX_DEBUG_BYTES: u64 = 16 << 30;

/// From this many bytes in one `WriteRuns` on, the runs are advised into transparent huge
/// pages: enough to fill one, and a 2 MiB page faulted in once costs far less than 512 small
/// ones. (Only whole 2 MiB blocks inside the runs' pages can become one.)
const HUGE_PAGE_WORTH: u64 = 2 << 20;

/// The nonce a shared reservation's file holds for the linker: long enough to be
/// unguessable, short enough to fit the page after the range.
const NONCE_LENGTHS: std::ops::RangeInclusive<usize> = 16..=64;

/// Where the program's standard streams go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgramIo {
    /// This process's own, which a spawned executor inherited from its linker.
    Inherited,
    /// Over the connection (TCP): the program runs in a child whose streams this process
    /// relays to and from the linker (`relay`).
    OverConnection,
}

/// What this executor says of itself in its hello.
pub(crate) fn executor_info() -> rjitlink_protocol::auth::ExecutorInfo {
    rjitlink_protocol::auth::ExecutorInfo {
        version: PROTOCOL_VERSION,
        page_size: rjitlink_memory::page_size() as u64,
        pid: std::process::id(),
        capabilities: rjitlink_protocol::CAPABILITY_SHARED_MEMORY,
    }
}

/// The target state one connection works on.
struct Service {
    mapper: InProcessMapper,
    libraries: Libraries,
    reservations: Vec<TargetRange>,
    /// Reservations backed by a memory file the linker maps too.
    shared: Vec<(TargetRange, OwnedFd)>,
    /// Segments made live by `Initialize` and not deinitialized since, with their protection:
    /// the memory that calls may run and pointers may point into.
    live: Vec<SegmentProtection>,
    /// The debug objects this connection registered, by handle, with their sizes: only these
    /// may be unregistered.
    debug_objects: BTreeMap<u64, u64>,
    /// The sum of their sizes, at most `MAX_DEBUG_BYTES`.
    debug_bytes: u64,
}

/// Whether `[start, start + len)` lies inside `range`, with no wrap-around however large the
/// numbers (they come from the wire).
fn inside(range: TargetRange, start: u64, len: u64) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    start >= range.start.get() && end <= range.start.get().saturating_add(range.len as u64)
}

/// A shared reservation: `size` bytes, mapped from a new memory file that also holds `nonce`
/// at the start of the page after them. Returns the range and the file.
fn reserve_shared(
    mapper: &InProcessMapper,
    size: usize,
    placement: Placement,
    nonce: &[u8],
) -> Result<(TargetRange, OwnedFd), String> {
    let range = mapper.reserve(size, placement).map_err(|e| e.to_string())?;
    let page = mapper.page_size();
    let Some(file_size) = range
        .len
        .checked_add(page)
        .and_then(|size| libc::off_t::try_from(size).ok())
    else {
        let _ = mapper.release(range);
        return Err("reservation too large for a memory file".into());
    };
    // SAFETY: plain system calls on a descriptor we own; the MAP_FIXED mapping replaces only
    // the reservation we just made.
    unsafe {
        let fd = libc::memfd_create(c"rjitlink-slab".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            let _ = mapper.release(range);
            return Err(format!(
                "memfd_create failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        let fd = crate::start_state::out_of_the_programs_way(OwnedFd::from_raw_fd(fd));
        let mapped = libc::ftruncate(fd.as_raw_fd(), file_size) == 0
            && libc::pwrite(
                fd.as_raw_fd(),
                nonce.as_ptr() as *const c_void,
                nonce.len(),
                range.len as libc::off_t,
            ) == nonce.len() as isize
            && libc::mmap(
                range.start.get() as *mut c_void,
                range.len,
                libc::PROT_NONE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            ) != libc::MAP_FAILED;
        if !mapped {
            let error = std::io::Error::last_os_error();
            let _ = mapper.release(range);
            return Err(format!("cannot set up shared memory: {error}"));
        }
        Ok((range, fd))
    }
}

/// Map `range` from the memory file `fd` at `offset` again: back to the shared, inaccessible
/// reservation (`private` None), or as a private copy-on-write mapping with that protection.
fn remap_shared(
    range: TargetRange,
    fd: i32,
    offset: u64,
    private: Option<Protection>,
) -> Result<(), String> {
    let (prot, flags) = match private {
        None => (libc::PROT_NONE, libc::MAP_SHARED),
        Some(Protection::ReadExecute) => (libc::PROT_READ | libc::PROT_EXEC, libc::MAP_PRIVATE),
        Some(Protection::Read) => (libc::PROT_READ, libc::MAP_PRIVATE),
        Some(Protection::ReadWrite) => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE),
    };
    if range.len == 0 {
        return Ok(());
    }
    // SAFETY: the range lies in a shared reservation of this service (checked by the caller),
    // so MAP_FIXED replaces only our own mapping.
    let mapped = unsafe {
        libc::mmap(
            range.start.get() as *mut c_void,
            range.len,
            prot,
            flags | libc::MAP_FIXED,
            fd,
            offset as libc::off_t,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(format!(
            "cannot remap shared memory at {}: {}",
            range.start,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The live segment that holds `[address, address + len)`, among `live`.
fn live_segment(live: &[SegmentProtection], address: u64, len: u64) -> Option<&SegmentProtection> {
    live.iter()
        .find(|segment| inside(segment.range, address, len))
}

/// Whether live segments of `protection` cover `[address, address + len)` together: a packed
/// unit's memory is live page by page, and a copied object may cross from one page to the next.
fn covered_by(live: &[SegmentProtection], address: u64, len: u64, protection: Protection) -> bool {
    let Some(end) = address.checked_add(len) else {
        return false;
    };
    let mut at = address;
    while at < end {
        let Some(segment) = live_segment(live, at, 1).filter(|s| s.protection == protection) else {
            return false;
        };
        at = segment.range.start.get() + segment.range.len as u64;
    }
    len > 0
}

/// Err unless `address` may be called: it lies in live executable memory of this service
/// (linked code), or a loaded library has a function starting exactly there (what the
/// linker looked up, such as `__register_frame` or `__cxa_finalize`). `what` names it.
fn check_function(live: &[SegmentProtection], address: u64, what: &str) -> Result<(), String> {
    if live_segment(live, address, 1)
        .is_some_and(|segment| segment.protection == Protection::ReadExecute)
    {
        return Ok(());
    }
    if symbol_info(TargetAddr(address)).is_some_and(|info| info.kind == SymbolKind::Function) {
        return Ok(());
    }
    Err(format!(
        "refused: {what} {address:#x} is neither code this executor holds nor a function of a loaded library"
    ))
}

/// Err unless the calls in `actions` go to functions (`check_function`) and each argument
/// is 0 or points into live memory of this service: every action the linker makes takes a
/// pointer into the image (an unwind table, a `__dso_handle`, an IFUNC's resolver and slot).
fn check_actions(live: &[SegmentProtection], actions: &[TargetCall]) -> Result<(), String> {
    for action in actions {
        check_function(live, action.function.get(), "a call to")?;
        for &argument in &action.args {
            if argument != 0 && live_segment(live, argument, 1).is_none() {
                return Err(format!(
                    "refused: the call to {} has the argument {argument:#x}, which points outside the memory this executor holds",
                    action.function
                ));
            }
        }
    }
    Ok(())
}

impl Service {
    fn new() -> Service {
        Service {
            mapper: InProcessMapper::new(),
            libraries: Libraries::default(),
            reservations: Vec::new(),
            shared: Vec::new(),
            live: Vec::new(),
            debug_objects: BTreeMap::new(),
            debug_bytes: 0,
        }
    }

    /// The sizes of announced debug objects, checked before their bytes are read: their sum
    /// and what this connection holds already stay within `MAX_DEBUG_BYTES`. Err says why
    /// not.
    fn debug_object_sizes(&self, objects: &[(String, u64)]) -> Result<Vec<usize>, String> {
        let mut total = self.debug_bytes;
        let mut sizes = Vec::with_capacity(objects.len());
        for (name, size) in objects {
            total = total
                .checked_add(*size)
                .filter(|&total| total <= MAX_DEBUG_BYTES)
                .ok_or_else(|| {
                    format!(
                        "debug objects of more than {MAX_DEBUG_BYTES} bytes in all (at {name}, of {size} bytes)"
                    )
                })?;
            // Within MAX_DEBUG_BYTES, so within usize.
            sizes.push(*size as usize);
        }
        Ok(sizes)
    }

    /// Register debug objects whose bytes `connection` holds next: answered there. Err
    /// (ending the connection, as the bytes cannot be skipped) if their sizes are refused.
    fn register_debug_objects(
        &mut self,
        connection: &mut Connection,
        id: u64,
        objects: Vec<(String, u64)>,
    ) -> Result<(), ServeError> {
        let sizes = match self.debug_object_sizes(&objects) {
            Ok(sizes) => sizes,
            Err(message) => {
                let message = format!("refused: {message}");
                connection.respond(id, &Response::Failed(message.as_bytes()))?;
                return Err(ServeError::RefusedDebugObjects(message));
            }
        };
        let mut received = Vec::with_capacity(sizes.len());
        for ((name, _), size) in objects.into_iter().zip(sizes) {
            let mut image = vec![0u8; size];
            connection.read_payload(&mut image)?;
            received.push(DebugObject { name, image });
        }
        let sizes: Vec<u64> = received.iter().map(|o| o.image.len() as u64).collect();
        match crate::debugger::register(received) {
            Ok(handles) => {
                for (handle, size) in handles.iter().zip(sizes) {
                    self.debug_objects.insert(handle.0, size);
                    self.debug_bytes += size;
                }
                let handles = handles.into_iter().map(|handle| handle.0).collect();
                connection.respond(id, &Response::DebugObjects { handles })?;
            }
            Err(error) => {
                let message = full_message(&error);
                connection.respond(id, &Response::Failed(message.as_bytes()))?;
            }
        }
        Ok(())
    }

    /// Unregister debug objects of this connection. Err (unregistering none) if a handle is
    /// not one it registered and has not unregistered, or appears twice.
    fn unregister_debug_objects(&mut self, handles: &[u64]) -> Result<(), String> {
        for (index, handle) in handles.iter().enumerate() {
            if !self.debug_objects.contains_key(handle) || handles[..index].contains(handle) {
                return Err(format!(
                    "no debug object with handle {handle} is registered"
                ));
            }
        }
        let handles: Vec<DebugObjectHandle> =
            handles.iter().copied().map(DebugObjectHandle).collect();
        crate::debugger::unregister(&handles).map_err(|e| full_message(&e))?;
        for handle in handles {
            if let Some(size) = self.debug_objects.remove(&handle.0) {
                self.debug_bytes -= size;
            }
        }
        Ok(())
    }

    /// The memory file and offset behind `range`, if it lies in a shared reservation.
    fn shared_file(&self, range: TargetRange) -> Option<(i32, u64)> {
        self.shared
            .iter()
            .find(|(s, _)| inside(*s, range.start.get(), range.len as u64))
            .map(|(s, fd)| (fd.as_raw_fd(), range.start - s.start))
    }

    /// Err unless `[start, start + len)` lies inside one reservation.
    fn check_range(&self, start: TargetAddr, len: usize) -> Result<(), String> {
        if self
            .reservations
            .iter()
            .any(|r| inside(*r, start.get(), len as u64))
        {
            Ok(())
        } else {
            Err(format!(
                "{start}..{:#x} is not inside memory reserved by this executor",
                start.get().saturating_add(len as u64)
            ))
        }
    }

    /// A reservation's size from the wire, checked.
    fn reservation_size(size: u64) -> Result<usize, String> {
        if size > MAX_RESERVATION {
            return Err(format!(
                "refused: a reservation of {size} bytes is larger than this executor grants ({MAX_RESERVATION} bytes)"
            ));
        }
        usize::try_from(size).map_err(|_| "size too large".into())
    }

    /// The memory a `Write` of `length` bytes at `address` fills, made writable, if it lies in
    /// a reservation of this service.
    fn writable(&mut self, address: TargetAddr, length: u64) -> Result<&mut [u8], String> {
        let length = usize::try_from(length).map_err(|_| "write too long")?;
        self.check_range(address, length)?;
        self.mapper
            .prepare(self.pages(address, length))
            .map_err(|e| e.to_string())?;
        // SAFETY: checked to lie in our reservation, and made writable just above; nothing
        // else refers to it while the payload is read.
        Ok(unsafe { std::slice::from_raw_parts_mut(address.get() as *mut u8, length) })
    }

    /// The pages `[address, address + length)` touches; it lies in a reservation (checked by
    /// the caller), so nothing overflows.
    fn pages(&self, address: TargetAddr, length: usize) -> TargetRange {
        let page = self.mapper.page_size() as u64;
        let start = address.get() & !(page - 1);
        let end = (address.get() + length as u64).next_multiple_of(page);
        TargetRange {
            start: TargetAddr(start),
            len: (end - start) as usize,
        }
    }

    /// Make the `writable` pages of a `WriteRuns` writable, once every range is checked:
    /// each writable range lies in a reservation of this service, each run in writable
    /// pages, and their total length is a number. Err, before any page is touched, says why
    /// not. When the runs hold enough bytes, the pages are advised into huge pages first —
    /// all of them before a byte arrives, so that a 2 MiB block across runs can be one.
    ///
    /// The writable ranges are merged into disjoint spans of pages first (packed pieces
    /// share pages), and each run is looked up among them by binary search: however many
    /// ranges and runs a request names, checking them takes n log n steps.
    fn prepare_runs(
        &mut self,
        writable: &[TargetRange],
        runs: &[TargetRange],
    ) -> Result<(), String> {
        let mut spans: Vec<TargetRange> = Vec::with_capacity(writable.len());
        for range in writable {
            self.check_range(range.start, range.len)?;
            if range.len > 0 {
                spans.push(self.pages(range.start, range.len));
            }
        }
        spans.sort_unstable_by_key(|span| span.start);
        let mut merged: Vec<TargetRange> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                // Inside reservations: the ends do not overflow.
                Some(last) if span.start <= last.end() => {
                    last.len = last.len.max((span.end() - last.start) as usize);
                }
                _ => merged.push(span),
            }
        }
        let mut total = 0u64;
        for run in runs {
            let before = merged.partition_point(|span| span.start <= run.start);
            let held = before > 0 && inside(merged[before - 1], run.start.get(), run.len as u64);
            // An empty run writes nothing anywhere, wherever it says.
            if !held && run.len > 0 {
                return Err(format!(
                    "refused: the run at {} of {} bytes lies outside the pages the write makes writable",
                    run.start, run.len
                ));
            }
            // Each run lies in a reservation of at most MAX_RESERVATION bytes, but there may
            // be many of them.
            total = total
                .checked_add(run.len as u64)
                .ok_or("refused: the runs to write add up to more bytes than there are")?;
        }
        for span in merged {
            self.mapper.prepare(span).map_err(|e| e.to_string())?;
            if total >= HUGE_PAGE_WORTH {
                // Only advice: where huge pages are unavailable the pages stay small.
                // SAFETY: pages of our own reservation; advice changes no contents.
                unsafe {
                    libc::madvise(
                        span.start.get() as *mut c_void,
                        span.len,
                        libc::MADV_HUGEPAGE,
                    )
                };
            }
        }
        Ok(())
    }

    /// Read the bytes of a `WriteRuns` from `connection` into place, answering there. Err
    /// (ending the connection, as the bytes that follow cannot be skipped) if a run is
    /// refused, or the connection fails.
    fn write_runs(
        &mut self,
        connection: &mut Connection,
        id: u64,
        writable: &[TargetRange],
        runs: &[TargetRange],
    ) -> Result<(), ServeError> {
        if let Err(message) = self.prepare_runs(writable, runs) {
            connection.respond(id, &Response::Failed(message.as_bytes()))?;
            return Err(ServeError::RefusedWrite(message));
        }
        // An empty run has no bytes, and was not checked: nothing is made of it.
        for run in runs.iter().filter(|run| run.len > 0) {
            // SAFETY: checked to lie in our reservations and made writable by `prepare_runs`;
            // nothing else refers to it while the payload is read.
            let destination =
                unsafe { std::slice::from_raw_parts_mut(run.start.get() as *mut u8, run.len) };
            connection.read_payload(destination)?;
        }
        connection.respond(id, &Response::Done)?;
        Ok(())
    }

    /// A shared reservation, answered (with its file over a Unix socket) on `connection`.
    fn reserve_shared(
        &mut self,
        connection: &mut Connection,
        id: u64,
        size: u64,
        placement: Placement,
        nonce: &[u8],
    ) -> Result<(), ServeError> {
        let reserved = Service::reservation_size(size).and_then(|size| {
            if !NONCE_LENGTHS.contains(&nonce.len()) {
                return Err(format!(
                    "refused: a shared reservation's nonce must have {} to {} bytes",
                    NONCE_LENGTHS.start(),
                    NONCE_LENGTHS.end()
                ));
            }
            reserve_shared(&self.mapper, size, placement, nonce)
        });
        match reserved {
            Ok((range, fd)) => {
                connection.respond(
                    id,
                    &Response::ReservedShared {
                        range,
                        fd: fd.as_raw_fd() as u32,
                    },
                )?;
                if let Some(socket) = connection.transport().unix_socket() {
                    rjitlink_protocol::send_fd(socket, fd.as_raw_fd())?;
                }
                self.reservations.push(range);
                self.shared.push((range, fd));
            }
            Err(message) => connection.respond(id, &Response::Failed(message.as_bytes()))?,
        }
        Ok(())
    }

    fn handle(&mut self, request: Request<'_>) -> Result<Response<'static>, String> {
        let map_error = |e: rjitlink_memory::MapError| e.to_string();
        Ok(match request {
            Request::Hello { .. } | Request::Authenticate { .. } => {
                return Err("unexpected hello".into())
            }
            Request::Reserve {
                size,
                placement,
                shared: false,
                nonce: _,
            } => {
                let size = Service::reservation_size(size)?;
                let range = self.mapper.reserve(size, placement).map_err(map_error)?;
                self.reservations.push(range);
                Response::Reserved(range)
            }
            // WriteRuns without the bytes: the linker writes them itself. A refusal leaves the
            // connection as it was (no bytes follow to skip).
            Request::PrepareWrites { writable, runs } => {
                self.prepare_runs(&writable, &runs)?;
                Response::Done
            }
            Request::Initialize { segments, actions } => {
                for segment in &segments {
                    self.check_range(segment.range.start, segment.range.len)?;
                }
                // The actions run once the segments are live: check them against that.
                let mut live = self.live.clone();
                for segment in segments.iter().filter(|s| s.range.len > 0) {
                    // A page of small units' pieces is set again after each write into it
                    // (copy mode): one entry, however often.
                    if !live.contains(segment) {
                        live.push(*segment);
                    }
                }
                check_actions(&live, &actions)?;
                // Writable data in shared memory becomes a private copy-on-write mapping of
                // the same pages: the program's writes, and those of children it forks, must
                // stay the program's own (a MAP_SHARED page stays shared across fork). So does
                // code as it goes live: a debugger writes its breakpoints into it, which the
                // kernel allows only in a private mapping. (Code already live is private, and
                // holds pieces written since: it only gets its protection back.)
                let (private, rest): (Vec<SegmentProtection>, Vec<SegmentProtection>) =
                    segments.iter().partition(|segment| {
                        let remapped = match segment.protection {
                            Protection::ReadWrite => true,
                            Protection::ReadExecute => !self.live.contains(segment),
                            Protection::Read => false,
                        };
                        remapped && self.shared_file(segment.range).is_some()
                    });
                for segment in private {
                    let (fd, offset) = self.shared_file(segment.range).expect("partitioned");
                    remap_shared(segment.range, fd, offset, Some(segment.protection))?;
                }
                self.mapper.initialize(&rest, &[]).map_err(map_error)?;
                self.live = live;
                // Checked above to call code this service holds or a library function,
                // with pointers into its live memory.
                self.mapper.initialize(&[], &actions).map_err(map_error)?;
                Response::Done
            }
            Request::Deinitialize { ranges, actions } => {
                for range in &ranges {
                    self.check_range(range.start, range.len)?;
                }
                check_actions(&self.live, &actions)?;
                let (shared, private): (Vec<TargetRange>, Vec<TargetRange>) = ranges
                    .iter()
                    .partition(|range| self.shared_file(**range).is_some());
                self.mapper
                    .deinitialize(&private, &actions)
                    .map_err(map_error)?;
                self.live.retain(|segment| {
                    !ranges
                        .iter()
                        .any(|r| inside(*r, segment.range.start.get(), segment.range.len as u64))
                });
                for range in shared {
                    // Back to the shared, inaccessible reservation, dropping private copies;
                    // punching the range out of the memory file frees its pages (the linker's
                    // view then reads zero).
                    let (fd, offset) = self.shared_file(range).expect("partitioned");
                    remap_shared(range, fd, offset, None)?;
                    // SAFETY: a range of our own memory file.
                    let rc = unsafe {
                        libc::fallocate(
                            fd,
                            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                            offset as libc::off_t,
                            range.len as libc::off_t,
                        )
                    };
                    if rc != 0 {
                        return Err(format!(
                            "cannot free shared memory: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                }
                Response::Done
            }
            Request::Release { range } => {
                let index = self
                    .reservations
                    .iter()
                    .position(|r| *r == range)
                    .ok_or("release of a range that is not a reservation")?;
                self.mapper.release(range).map_err(map_error)?;
                self.reservations.swap_remove(index);
                self.live.retain(|segment| {
                    !inside(range, segment.range.start.get(), segment.range.len as u64)
                });
                // Closing the memory file frees it once the linker unmaps its view.
                self.shared.retain(|(r, _)| *r != range);
                Response::Done
            }
            Request::LoadLibrary { path } => {
                let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
                self.libraries.load(path).map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::LoadLibraryImage { name, image } => {
                let name = String::from_utf8_lossy(name);
                self.libraries
                    .load_image(&name, image)
                    .map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::LoadModule {
                name,
                image,
                table_offset,
                table_count,
            } => {
                let name = String::from_utf8_lossy(name);
                let table = WordTable {
                    offset: table_offset,
                    count: table_count,
                };
                // The full message: a static TLS failure keeps its hint for the user.
                let module = self
                    .libraries
                    .load_module(&name, image, table)
                    .map_err(|e| full_message(&e))?;
                Response::Module {
                    handle: module.handle.0,
                    words: module.words,
                }
            }
            // Libraries unloads only handles it gave out and has not unloaded: a client
            // cannot make this process dlclose anything else.
            Request::UnloadModule { handle } => {
                self.libraries
                    .unload_module(ModuleHandle(handle))
                    .map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::UnregisterDebugObjects { handles } => {
                self.unregister_debug_objects(&handles)?;
                Response::Done
            }
            Request::Lookup { names } => Response::Addresses(self.libraries.lookup(names)),
            Request::SymbolInfo { addresses } => Response::SymbolInfos(
                addresses
                    .into_iter()
                    .map(|address| {
                        symbol_info(address).map(|info| {
                            let kind = match info.kind {
                                SymbolKind::Function => 0,
                                SymbolKind::Data => 1,
                                SymbolKind::Other => 2,
                            };
                            (kind, info.size)
                        })
                    })
                    .collect(),
            ),
            Request::Interpose { copies } => {
                let copies: Vec<Interposition> = copies
                    .into_iter()
                    .map(|c| Interposition {
                        name: c.name.to_vec(),
                        original: c.original,
                        copy: c.copy,
                        size: c.size,
                    })
                    .collect();
                for copy in &copies {
                    self.check_copy(copy)?;
                }
                interpose(&copies).map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::PerfMap { lines } => {
                crate::perf::append_perf_map(
                    lines
                        .iter()
                        .map(|line| (line.address, line.size, line.name)),
                )
                .map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::JitDump {
                directory,
                functions,
            } => {
                // The code is read from this process's memory: only live code it holds.
                for function in &functions {
                    if !covered_by(
                        &self.live,
                        function.address.get(),
                        function.size,
                        Protection::ReadExecute,
                    ) {
                        return Err(format!(
                            "refused: the jitdump's function {} at {} ({} bytes) is not live code this executor holds",
                            String::from_utf8_lossy(function.name),
                            function.address,
                            function.size
                        ));
                    }
                }
                let functions: Vec<rjitlink_target::JitFunction<'_>> = functions
                    .into_iter()
                    .map(|function| rjitlink_target::JitFunction {
                        address: function.address,
                        size: function.size,
                        name: function.name,
                        lines: function.lines,
                    })
                    .collect();
                let directory = (!directory.is_empty())
                    .then(|| std::path::Path::new(std::ffi::OsStr::from_bytes(directory)));
                crate::perf::append_jitdump(directory, &functions, |address, size| {
                    // SAFETY: checked above to lie in live code of this service.
                    unsafe { std::slice::from_raw_parts(address.get() as *const u8, size as usize) }
                })
                .map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::RunInitializers { functions } => {
                for function in &functions {
                    check_function(&self.live, function.get(), "the init function")?;
                }
                // SAFETY: checked above to be code this service holds or a library function.
                unsafe { call_initializers(&functions) };
                flush_stdio();
                Response::Done
            }
            Request::RunFinalizers { functions } => {
                for function in &functions {
                    check_function(&self.live, function.get(), "the fini function")?;
                }
                // SAFETY: as above.
                unsafe { call_finalizers(&functions) };
                flush_stdio();
                Response::Done
            }
            Request::Input { .. } | Request::InputClosed | Request::OutputClosed { .. } => {
                return Err("no program is running".into())
            }
            Request::Reserve { shared: true, .. }
            | Request::Write { .. }
            | Request::WriteRuns { .. }
            | Request::RegisterDebugObjects { .. }
            | Request::Run(_)
            | Request::Shutdown => {
                unreachable!("handled by the caller")
            }
        })
    }

    /// Err unless `copy` moves a data object between a loaded library and writable live memory
    /// of this service, either way, or between two places of the latter: what a copy
    /// relocation is, and its undo (a freed unit hands the data back to the library, or to an
    /// earlier unit's copy).
    fn check_copy(&self, copy: &Interposition) -> Result<(), String> {
        let name = String::from_utf8_lossy(&copy.name);
        if !self.holds_copyable(copy.original, copy.size) {
            return Err(format!(
                "refused: the copy of `{name}` names {} as its original, which is not a data object of {} bytes in a loaded library, nor writable memory this executor holds",
                copy.original, copy.size
            ));
        }
        if !self.holds_copyable(copy.copy, copy.size) {
            return Err(format!(
                "refused: the copy of `{name}` at {} ({} bytes) is not in writable memory this executor holds, nor a data object of a loaded library",
                copy.copy, copy.size
            ));
        }
        Ok(())
    }

    /// Whether `size` bytes at `address` are writable live memory of this service, or a data
    /// object of at least that size in a loaded library (outside memory it reserved).
    fn holds_copyable(&self, address: TargetAddr, size: u64) -> bool {
        let held = covered_by(&self.live, address.get(), size, Protection::ReadWrite);
        let library_data = || {
            !self
                .reservations
                .iter()
                .any(|r| inside(*r, address.get(), 1))
                && symbol_info(address)
                    .is_some_and(|info| info.kind == SymbolKind::Data && size <= info.size)
        };
        held || library_data()
    }

    /// Err unless the program's entry, init and fini functions may be called.
    fn check_program(&self, program: &Program) -> Result<(), String> {
        check_function(&self.live, program.entry.get(), "the entry")?;
        for &init in &program.init {
            check_function(&self.live, init.get(), "the init function")?;
        }
        for &fini in &program.fini {
            check_function(&self.live, fini.get(), "the fini function")?;
        }
        if let Some(arg) = program.args.iter().find(|arg| arg.contains(&0)) {
            return Err(format!(
                "refused: the program argument {:?} holds a NUL byte",
                String::from_utf8_lossy(arg)
            ));
        }
        Ok(())
    }
}

/// Flush every stdio stream of this process: what a unit's functions printed reaches its
/// destination before the linker hears they are done, as it would from a program that runs
/// to its exit.
fn flush_stdio() {
    // SAFETY: flushing every stdio stream is always allowed.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// The connection and request id to answer when the running program exits.
static EXIT_REPORT: Mutex<Option<(Connection, u64)>> = Mutex::new(None);

extern "C" fn report_exit(status: c_int, _: *mut c_void) {
    // SAFETY: flushing every stdio stream is always allowed; the report must come after the
    // program's output.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let mut report = EXIT_REPORT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((connection, id)) = report.as_mut() {
        let _ = connection.respond(*id, &Response::Exited(status));
    }
}

/// Send a crash report to the linker, which symbolizes and prints it; the executor dies of
/// the signal next (see `crash`).
fn send_crash(report: &rjitlink_target::CrashReport) {
    let mut exit_report = EXIT_REPORT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((connection, id)) = exit_report.as_mut() {
        let _ = connection.respond(*id, &Response::Crashed(report.clone()));
    }
}

/// The linker's hello: its request id and nonce. A linker of another protocol version is told
/// both versions and refused.
pub(crate) fn receive_hello(connection: &mut Connection) -> Result<(u64, Vec<u8>), ServeError> {
    let (id, version, nonce) = match connection.next_request()? {
        None => return Err(ServeError::ClosedBeforeHello),
        Some((id, Request::Hello { version, nonce })) => (id, version, nonce.to_vec()),
        Some(_) => return Err(ServeError::NotHello),
    };
    if version != PROTOCOL_VERSION {
        let error = ServeError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        };
        connection.respond(id, &Response::Failed(error.to_string().as_bytes()))?;
        return Err(error);
    }
    Ok((id, nonce))
}

/// Serve the linker that spawned this process, which needs no authentication: handshake,
/// then requests until the linker shuts down or closes. A `Run` request does not return: the
/// program's exit is this process's exit, reported to the linker first.
pub fn serve(stream: Box<dyn Transport>) -> Result<(), ServeError> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut connection = Connection::new(stream);
    connection.set_max_frame(rjitlink_protocol::MAX_HANDSHAKE_FRAME);
    let (id, _) = receive_hello(&mut connection)?;
    let info = executor_info();
    connection.respond(
        id,
        &Response::Hello {
            version: info.version,
            page_size: info.page_size,
            pid: info.pid,
            capabilities: info.capabilities,
            proof: b"",
        },
    )?;
    connection.transport().set_read_timeout(None)?;
    connection.set_max_frame(rjitlink_protocol::MAX_FRAME);
    serve_requests(connection, ProgramIo::Inherited)
}

/// Serve an authenticated (or spawning) linker's requests until it shuts down or closes.
pub(crate) fn serve_requests(mut connection: Connection, io: ProgramIo) -> Result<(), ServeError> {
    let mut service = Service::new();
    loop {
        let Some((id, request)) = connection.next_request()? else {
            return Ok(());
        };
        match request {
            Request::Shutdown => {
                connection.respond(id, &Response::Done)?;
                return Ok(());
            }
            Request::Reserve {
                size,
                placement,
                shared: true,
                nonce,
            } => {
                let nonce = nonce.to_vec();
                service.reserve_shared(&mut connection, id, size, placement, &nonce)?;
            }
            Request::Run(run) => {
                let program = Program {
                    entry: run.entry,
                    init: run.init,
                    fini: run.fini,
                    args: run.args.iter().map(|a| a.to_vec()).collect(),
                    crash_report: run.crash_report,
                };
                if let Err(message) = service.check_program(&program) {
                    connection.respond(id, &Response::Failed(message.as_bytes()))?;
                    continue;
                }
                if io == ProgramIo::OverConnection {
                    return relay::run(connection, id, &program);
                }
                *EXIT_REPORT.lock().unwrap_or_else(|e| e.into_inner()) = Some((connection, id));
                match run_program(&program, Some(report_exit), Box::new(send_crash)) {
                    Ok(never) => match never {},
                    Err(e) => {
                        let mut report = EXIT_REPORT.lock().unwrap_or_else(|e| e.into_inner());
                        let (connection, id) = report.as_mut().expect("stored above");
                        let message = full_message(&e);
                        connection.respond(*id, &Response::Failed(message.as_bytes()))?;
                        return Ok(());
                    }
                }
            }
            Request::RegisterDebugObjects { objects } => {
                // Owned: the names borrow from the frame, which reading the bytes reuses.
                let objects: Vec<(String, u64)> = objects
                    .iter()
                    .map(|o| (String::from_utf8_lossy(o.name).into_owned(), o.size))
                    .collect();
                service.register_debug_objects(&mut connection, id, objects)?;
            }
            Request::Write { address, length } => match service.writable(address, length) {
                Ok(destination) => {
                    connection.read_payload(destination)?;
                    connection.respond(id, &Response::Done)?;
                }
                Err(message) => {
                    // The payload that follows cannot be trusted to be skipped: close.
                    connection.respond(id, &Response::Failed(message.as_bytes()))?;
                    return Err(ServeError::RefusedWrite(message));
                }
            },
            Request::WriteRuns { writable, runs } => {
                service.write_runs(&mut connection, id, &writable, &runs)?
            }
            request => {
                let response = service.handle(request);
                match response {
                    Ok(response) => connection.respond(id, &response)?,
                    Err(message) => {
                        connection.respond(id, &Response::Failed(message.as_bytes()))?
                    }
                }
            }
        }
    }
}

/// Serve the linker that spawned this process, on the socket at file descriptor `fd`.
///
/// The executor is part of the spawning linker's run: it dies with it (PR_SET_PDEATHSIG), so
/// that a killed linker leaves no process holding its memory. `parent` is the linker's pid,
/// to catch a linker that died before that was set.
pub fn serve_inherited_socket(fd: i32, parent: u32) -> Result<(), ServeError> {
    // SAFETY: prctl and getppid have no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent {
            return Err(ServeError::ParentGone);
        }
    }
    // SAFETY: the spawning linker passes a socket at this descriptor, owned by us from now on.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = crate::start_state::out_of_the_programs_way(socket);
    // Close-on-exec (a moved descriptor is already), so as not to leak into the program's own
    // children. SAFETY: setting a flag of our own descriptor.
    unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    serve(Box::new(std::os::unix::net::UnixStream::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: u64, len: usize, protection: Protection) -> SegmentProtection {
        SegmentProtection {
            range: TargetRange {
                start: TargetAddr(start),
                len,
            },
            protection,
        }
    }

    #[test]
    fn ranges_from_the_wire_never_wrap() {
        let range = TargetRange {
            start: TargetAddr(0x1000),
            len: 0x1000,
        };
        assert!(inside(range, 0x1000, 0x1000));
        assert!(!inside(range, 0x1000, 0x1001));
        assert!(!inside(range, u64::MAX, 2));
        assert!(!inside(range, 0xfff, 1));
    }

    #[test]
    fn copies_may_cross_from_one_live_page_to_the_next() {
        let live = [
            segment(0x10000, 0x1000, Protection::ReadWrite),
            segment(0x11000, 0x1000, Protection::ReadWrite),
            segment(0x12000, 0x1000, Protection::ReadExecute),
        ];
        assert!(covered_by(&live, 0x10fd0, 64, Protection::ReadWrite));
        // Into code, past the end, wrapping, empty.
        assert!(!covered_by(&live, 0x11fd0, 64, Protection::ReadWrite));
        assert!(!covered_by(&live, 0x10000, 0x3001, Protection::ReadWrite));
        assert!(!covered_by(&live, u64::MAX - 8, 64, Protection::ReadWrite));
        assert!(!covered_by(&live, 0x10000, 0, Protection::ReadWrite));
    }

    /// A service on one end of a socket pair, in a thread of this process (so that its
    /// memory can be read here), and the linker's end.
    fn service_in_a_thread() -> (Connection, std::thread::JoinHandle<Result<(), ServeError>>) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let service = std::thread::spawn(move || {
            serve_requests(Connection::new(Box::new(theirs)), ProgramIo::Inherited)
        });
        (Connection::new(Box::new(ours)), service)
    }

    fn reserve(linker: &mut Connection, size: usize) -> TargetRange {
        let request = Request::Reserve {
            size: size as u64,
            placement: Placement::Anywhere,
            shared: false,
            nonce: b"",
        };
        match linker.call(&request) {
            Ok(Response::Reserved(range)) => range,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_land_in_place_and_the_pages_between_them_read_zero() {
        let page = rjitlink_memory::page_size();
        let (mut linker, service) = service_in_a_thread();
        let reservation = reserve(&mut linker, 64 * page);
        let at = |offset: usize, len: usize| TargetRange {
            start: reservation.start + offset as u64,
            len,
        };
        let last = vec![7u8; page];
        let write = Request::WriteRuns {
            writable: vec![at(page, 40 * page)],
            runs: vec![at(page + 3, 5), at(30 * page, page)],
        };
        let answer = linker.call_with_payloads(&write, &[b"hello", &last]);
        assert_eq!(answer.unwrap(), Response::Done);
        // Pieces that share a page name it twice, in any order; an empty run has no place.
        let write = Request::WriteRuns {
            writable: vec![at(50 * page + 8, 8), at(50 * page, 8)],
            runs: vec![at(50 * page + 8, 2), at(50 * page, 2), at(0, 0)],
        };
        let answer = linker.call_with_payloads(&write, &[b"ab", b"cd"]);
        assert_eq!(answer.unwrap(), Response::Done);
        // SAFETY: the service's memory is this process's, made writable by the write.
        let memory = unsafe {
            std::slice::from_raw_parts(
                (reservation.start.get() as usize + page) as *const u8,
                40 * page,
            )
        };
        assert_eq!(&memory[3..8], b"hello");
        assert_eq!(&memory[29 * page..30 * page], &last[..]);
        assert!(memory[8..29 * page].iter().all(|&byte| byte == 0));
        assert!(memory[30 * page..].iter().all(|&byte| byte == 0));
        // SAFETY: as above.
        let piece = unsafe {
            std::slice::from_raw_parts(
                (reservation.start.get() as usize + 50 * page) as *const u8,
                10,
            )
        };
        assert_eq!(piece, b"cd\0\0\0\0\0\0ab");
        linker.call(&Request::Shutdown).unwrap();
        service.join().unwrap().unwrap();
    }

    #[test]
    fn runs_outside_writable_pages_or_reservations_are_refused_and_end_the_connection() {
        let page = rjitlink_memory::page_size();
        let wild = TargetRange {
            start: TargetAddr(u64::MAX - 8),
            len: 64,
        };
        for case in 0..3 {
            let (mut linker, service) = service_in_a_thread();
            let reservation = reserve(&mut linker, 16 * page);
            let at = |offset: usize, len: usize| TargetRange {
                start: reservation.start + offset as u64,
                len,
            };
            let (writable, runs, expected) = match case {
                // A run past the writable pages; writable pages past the reservation; a
                // range that wraps around.
                0 => (
                    at(0, page),
                    at(page - 1, 2),
                    "outside the pages the write makes writable",
                ),
                1 => (
                    at(8 * page, 9 * page),
                    at(8 * page, 2),
                    "not inside memory reserved",
                ),
                _ => (
                    wild,
                    TargetRange { len: 2, ..wild },
                    "not inside memory reserved",
                ),
            };
            let write = Request::WriteRuns {
                writable: vec![writable],
                runs: vec![runs],
            };
            match linker.call_with_payloads(&write, &[b"xy"]) {
                Ok(Response::Failed(message)) => {
                    let message = String::from_utf8_lossy(message);
                    assert!(message.contains(expected), "{case}: {message}");
                }
                other => panic!("{case}: {other:?}"),
            }
            assert!(matches!(
                service.join().unwrap(),
                Err(ServeError::RefusedWrite(_))
            ));
        }
    }

    #[test]
    fn prepared_writes_make_the_pages_writable_and_refusals_keep_the_connection() {
        let page = rjitlink_memory::page_size();
        let (mut linker, service) = service_in_a_thread();
        let reservation = reserve(&mut linker, 16 * page);
        let at = |offset: usize, len: usize| TargetRange {
            start: reservation.start + offset as u64,
            len,
        };
        let wild = TargetRange {
            start: TargetAddr(u64::MAX - 8),
            len: 64,
        };
        // Refused as WriteRuns is, before any page is touched: a run past the writable
        // pages, writable pages past the reservation, a range that wraps around.
        for (writable, run, expected) in [
            (
                at(0, page),
                at(page - 1, 2),
                "outside the pages the write makes writable",
            ),
            (
                at(8 * page, 9 * page),
                at(8 * page, 2),
                "not inside memory reserved",
            ),
            (
                wild,
                TargetRange { len: 2, ..wild },
                "not inside memory reserved",
            ),
        ] {
            let prepare = Request::PrepareWrites {
                writable: vec![writable],
                runs: vec![run],
            };
            match linker.call(&prepare) {
                Ok(Response::Failed(message)) => {
                    let message = String::from_utf8_lossy(message);
                    assert!(message.contains(expected), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        // The connection goes on: pages prepared are writable, and read zero.
        let prepare = Request::PrepareWrites {
            writable: vec![at(2 * page, 2 * page)],
            runs: vec![at(2 * page + 5, page)],
        };
        assert_eq!(linker.call(&prepare).unwrap(), Response::Done);
        let start = (reservation.start.get() as usize + 2 * page) as *mut u8;
        // SAFETY: the service's memory is this process's, made writable by the request.
        let memory = unsafe { std::slice::from_raw_parts_mut(start, 2 * page) };
        assert!(memory.iter().all(|&byte| byte == 0));
        memory[5..page + 5].fill(9);
        linker.call(&Request::Shutdown).unwrap();
        service.join().unwrap().unwrap();
    }

    #[test]
    fn a_short_payload_ends_the_connection() {
        let page = rjitlink_memory::page_size();
        let (mut linker, service) = service_in_a_thread();
        let reservation = reserve(&mut linker, 16 * page);
        let write = Request::WriteRuns {
            writable: vec![TargetRange {
                start: reservation.start,
                len: page,
            }],
            runs: vec![TargetRange {
                start: reservation.start,
                len: page,
            }],
        };
        // Half the bytes announced, then the linker is gone.
        linker.send_request(&write).unwrap();
        use std::io::Write;
        let mut stream = linker.transport().unix_socket().unwrap();
        stream.write_all(&vec![1u8; page / 2]).unwrap();
        drop(linker);
        assert!(matches!(
            service.join().unwrap(),
            Err(ServeError::Protocol(
                rjitlink_protocol::ProtocolError::Closed
            ))
        ));
    }

    #[test]
    fn wild_actions_are_refused() {
        let live = [
            segment(0x10000, 0x1000, Protection::ReadExecute),
            segment(0x11000, 0x1000, Protection::ReadWrite),
        ];
        let call = |function, args| TargetCall {
            function: TargetAddr(function),
            args,
        };
        assert!(check_actions(&live, &[call(0x10010, [0x11000, 0])]).is_ok());
        // Code in data, wild code, a wild pointer argument.
        assert!(check_actions(&live, &[call(0x11000, [0, 0])]).is_err());
        assert!(check_actions(&live, &[call(0xdead_0000, [0, 0])]).is_err());
        let refused = check_actions(&live, &[call(0x10010, [0x11000, 8])]).unwrap_err();
        assert!(refused.contains("0x8, which points outside"), "{refused}");
        // A library function is callable (libc's own `getpid`, found by the loader).
        let getpid = libc::getpid as *const () as u64;
        assert!(check_function(&live, getpid, "a call to").is_ok());
        assert!(check_function(&live, getpid + 1, "a call to").is_err());
    }
}
