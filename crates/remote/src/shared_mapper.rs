//! The shared-memory mapper: the executor backs its reservation with a memory file and hands
//! it over; the linker maps the same pages and writes code and data straight into them.
//! Finalizing sends only protections — no section content crosses the connection.
//!
//! The linker maps no file but the executor's memory file, and checks that it is one before
//! writing anything: over TCP, where it is opened by its /proc path, that path must name a
//! memory file of the executor's before it is opened; every file must then be an unlinked
//! in-memory file of exactly the size asked for; and a nonce of the linker's choosing, which
//! only the executor was told, must be in it just past the range.

use crate::connection::{
    deinitialize_remote, initialize_remote, lock, map_error, ready, refused, release_remote,
    target_map_error, ReservedAhead, SharedConnection, SharedReservation,
};
use crate::copy_mapper::{pages_of, write_remote};
use rjitlink_memory::{
    MapError, MemoryMapper, PieceWrite, Placement, Protection, SegmentProtection, TargetAddr,
    TargetCall, TargetRange, WorkingMemory,
};
use rjitlink_protocol::{receive_fd, Request, Response};
use rjitlink_target::TargetError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, SendError, Sender};
use std::sync::{Arc, Mutex};

/// The name the executor gives its memory files (`memfd_create`); /proc shows it as
/// `/memfd:rjitlink-slab (deleted)`.
const MEMORY_FILE_PREFIX: &[u8] = b"/memfd:rjitlink-slab";

/// Bytes of the nonce the linker asks the executor to write past a shared range.
const NONCE_LEN: usize = 16;

/// Open the executor's memory file `fd` by its /proc path: it is on this machine, but no Unix
/// socket carries descriptors (TCP). What the path names is checked first, so that nothing
/// else is opened — not a device, a FIFO or a file on disk of whatever process has that pid.
fn open_executor_memory(pid: u32, fd: u32) -> Result<OwnedFd, String> {
    let path = format!("/proc/{pid}/fd/{fd}");
    let target = std::fs::read_link(&path)
        .map_err(|e| format!("cannot open the executor's memory: {e} (not on this machine?)"))?;
    if !target
        .as_os_str()
        .as_bytes()
        .starts_with(MEMORY_FILE_PREFIX)
    {
        return Err(format!(
            "{path} is not the executor's memory file (another machine, or another process?)"
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("cannot open the executor's memory: {e}"))
}

/// Err unless `fd` is a memory file of `len` bytes: an in-memory file (tmpfs or hugetlbfs),
/// regular, linked nowhere, named as the executor names its own.
fn check_memory_file(fd: &OwnedFd, len: usize) -> Result<(), String> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    let mut statfs = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstat and fstatfs fill the structures for a descriptor we own.
    let (stat, statfs) = unsafe {
        if libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) != 0
            || libc::fstatfs(fd.as_raw_fd(), statfs.as_mut_ptr()) != 0
        {
            return Err(format!(
                "cannot examine the executor's memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        (stat.assume_init(), statfs.assume_init())
    };
    let name = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|path| path.as_os_str().as_bytes().starts_with(MEMORY_FILE_PREFIX))
        .unwrap_or(false);
    let in_memory = matches!(statfs.f_type, TMPFS_MAGIC | HUGETLBFS_MAGIC);
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG || stat.st_nlink != 0 || !in_memory || !name {
        return Err("the file the executor named is not its memory file".into());
    }
    if u64::try_from(stat.st_size) != Ok(len as u64) {
        return Err(format!(
            "the executor's memory file has {} bytes, not the {len} expected",
            stat.st_size
        ));
    }
    Ok(())
}

/// The linker's view of one shared reservation.
struct View {
    range: TargetRange,
    /// Where the same pages are mapped here, with the nonce page after them; None once the
    /// view was given up (see `initialize`), until a range of it is needed again.
    local: Option<*mut u8>,
    local_len: usize,
    /// The executor's number for the memory file and the nonce past the range: to open the
    /// file again by its /proc path, and check it, when the view is needed after all.
    fd_number: u32,
    nonce: [u8; NONCE_LEN],
}

// SAFETY: a view is a description of a mapping; the linker writes disjoint parts of it.
unsafe impl Send for View {}

/// The views, and the ranges being linked into them.
struct Views {
    views: Vec<View>,
    /// Ranges prepared and neither initialized nor given back: their working memory is in
    /// use, so the view holding them stays.
    linking: Vec<TargetRange>,
}

/// From this size of an image on, the views are given up once it is initialized and nothing
/// else is being linked. The image's pages then belong to the executor alone: this process
/// unmaps them in a thread of its own while the linker goes on (1,600 page-table entries for
/// CPython: 0.3 ms), instead of as it exits; and when the executor ends (its linker exiting
/// ends it), the memory file's pages are freed there (another 0.3-0.5 ms), not by whichever
/// of the two let go of the file last. A later link maps the file again.
const GIVE_UP_WORTH: usize = 1 << 20;

/// From this size of the pages the link writes on, they are faulted in ahead of its writes
/// (see `will_write`).
const POPULATE_WORTH: usize = 1 << 20;

/// Pages faulted in per system call, by the populating thread or a link worker (a chunk):
/// the thread checks between calls whether to stop.
const POPULATE_CHUNK: usize = 64 << 10;

/// Mappings (address, length) of views given up.
type Mappings = Vec<(usize, usize)>;

/// The pages a link writes, in steps of `POPULATE_CHUNK`, each faulted in once: by the
/// populating thread, which takes them in order, or by a link worker about to write into one
/// the thread has not reached (`before_write`), which then takes it itself.
struct Chunks {
    /// Each chunk's target address, sorted, its address in a view and its length.
    chunks: Vec<(TargetAddr, usize, usize)>,
    /// Set for each chunk once someone has taken it.
    taken: Vec<AtomicBool>,
}

impl Chunks {
    /// Fault in chunk `index` unless someone took it already. False if faulting in failed (a
    /// kernel before 5.14, or no memory: the link's writes fault the pages in).
    fn take(&self, index: usize) -> bool {
        if self.taken[index].swap(true, Ordering::Relaxed) {
            return true;
        }
        let (_, address, len) = self.chunks[index];
        // SAFETY: advice on pages of a view, which stays mapped while the populating thread
        // runs and while a range of it is being linked; it changes no contents (they read
        // zero until written).
        unsafe { libc::madvise(address as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) == 0 }
    }

    /// Fault in the chunks `range` touches that nobody took yet, in order, up to the first
    /// failure.
    fn take_range(&self, range: TargetRange) {
        let first = self
            .chunks
            .partition_point(|&(start, _, len)| start + len as u64 <= range.start);
        for index in first..self.chunks.len() {
            if self.chunks[index].0 >= range.end() || !self.take(index) {
                return;
            }
        }
    }
}

/// A thread faulting in pages of a view ahead of the link's writes. Done, it waits for the
/// views to unmap once the image is live (`unmap_then_end`), so that giving them up starts
/// no thread of its own.
struct Populating {
    chunks: Arc<Chunks>,
    stop: Arc<AtomicBool>,
    /// Dropped, the thread ends without unmapping anything.
    unmap: Sender<Mappings>,
    thread: std::thread::JoinHandle<()>,
}

impl Populating {
    /// Stop it and wait until it has (at most one chunk): the view may go after.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.unmap);
        let _ = self.thread.join();
    }

    /// Stop it, and have it unmap `mappings` then, without waiting for it.
    fn unmap_then_end(self, mappings: Mappings) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(SendError(mappings)) = self.unmap.send(mappings) {
            // It is gone already (it never ends otherwise): unmap here.
            let _ = self.thread.join();
            unmap(&mappings);
        }
    }
}

/// Maps the executor's reservations here too: the linker writes the image in place.
pub struct SharedMemoryMapper {
    connection: SharedConnection,
    page_size: usize,
    views: Mutex<Views>,
    populating: Mutex<Option<Populating>>,
}

/// Unmap views given up.
fn unmap(mappings: &[(usize, usize)]) {
    for &(address, len) in mappings {
        // SAFETY: mappings of views given up: nothing refers to them any more (no populating
        // thread runs in them).
        unsafe { libc::munmap(address as *mut libc::c_void, len) };
    }
}

/// Unmap `mappings` off this thread: by the populating thread once it has stopped, or by a
/// thread of their own (here if none can start).
fn unmap_later(mappings: Mappings, populating: Option<Populating>) {
    if let Some(populating) = populating {
        return populating.unmap_then_end(mappings);
    }
    let moved = mappings.clone();
    if crate::spawned::start_quiet_thread("rjitlink-unmap", 64 << 10, move || unmap(&moved))
        .is_err()
    {
        unmap(&mappings);
    }
}

/// Fault in the chunks no link worker took, in order, until done or told to stop.
fn populate(chunks: &Chunks, stop: &AtomicBool) {
    for index in 0..chunks.chunks.len() {
        if stop.load(Ordering::Relaxed) || !chunks.take(index) {
            return;
        }
    }
}

impl SharedMemoryMapper {
    pub(crate) fn new(connection: SharedConnection, page_size: usize) -> Self {
        SharedMemoryMapper {
            connection,
            page_size,
            views: Mutex::new(Views {
                views: Vec::new(),
                linking: Vec::new(),
            }),
            populating: Mutex::new(None),
        }
    }

    /// The populating thread, if one was started (stopped and joined by the caller, before
    /// a view goes).
    fn take_populating(&self) -> Option<Populating> {
        self.populating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn lock_views(&self) -> std::sync::MutexGuard<'_, Views> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check that `fd` is the executor's memory file for `range`, map it, and check, by the
    /// nonce past the range, that it is the very file the executor made for this request.
    /// Returns where it is mapped, with the nonce page: `range.len` + a page.
    fn map_file(&self, range: TargetRange, fd: &OwnedFd, nonce: &[u8]) -> Result<*mut u8, String> {
        let page = self.page_size;
        if !range.start.get().is_multiple_of(page as u64) || !range.len.is_multiple_of(page) {
            return Err(format!(
                "the executor's range {} is not page-aligned",
                range.start
            ));
        }
        let local_len = range
            .len
            .checked_add(page)
            .ok_or("the executor's range is too large")?;
        check_memory_file(fd, local_len)?;
        // SAFETY: a shared mapping of a memory file of at least `local_len` bytes.
        let local = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                local_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if local == libc::MAP_FAILED {
            return Err(format!(
                "cannot map the executor's memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        let local = local as *mut u8;
        // SAFETY: the nonce lies in the mapped page after the range.
        let found = unsafe { std::slice::from_raw_parts(local.add(range.len), nonce.len()) };
        if found != nonce {
            // SAFETY: unmapping what we just mapped.
            unsafe { libc::munmap(local as *mut libc::c_void, local_len) };
            return Err("the mapped memory is not the executor's (another machine?)".into());
        }
        Ok(local)
    }

    /// Where `range` is mapped here, mapping its view again if it was given up.
    fn local(&self, views: &mut Views, range: TargetRange) -> Result<*mut u8, MapError> {
        let view = views
            .views
            .iter_mut()
            .find(|v| v.range.contains(range))
            .ok_or_else(|| map_error(format!("{} is not in a shared reservation", range.start)))?;
        let local = match view.local {
            Some(local) => local,
            None => {
                let pid = lock(&self.connection).executor_pid;
                let local = pid
                    .ok_or_else(|| "the executor's pid is not known".to_string())
                    .and_then(|pid| open_executor_memory(pid, view.fd_number))
                    .and_then(|fd| self.map_file(view.range, &fd, &view.nonce))
                    .map_err(|message| {
                        map_error(format!("cannot map the executor's memory again: {message}"))
                    })?;
                view.local = Some(local);
                local
            }
        };
        // SAFETY: inside the view's mapping (the view contains `range`).
        Ok(unsafe { local.add((range.start - view.range.start) as usize) })
    }
}

impl SharedMemoryMapper {
    /// Ask for a shared reservation of `size` bytes placed as `placement` now, without
    /// waiting for the answer: the executor makes its memory file as it starts, while the
    /// linker reads and resolves, and the first `reserve` asking for the same finds it made
    /// (any other gives it back). For the session's slab, whose size is known from the start.
    pub(crate) fn reserve_ahead(
        &self,
        size: usize,
        placement: Placement,
    ) -> Result<(), TargetError> {
        let mut nonce = [0u8; NONCE_LEN];
        rjitlink_protocol::auth::random_bytes(&mut nonce).map_err(|e| {
            TargetError::SharedMemory(map_error(format!("no random bytes for a nonce: {e}")))
        })?;
        let mut locked = lock(&self.connection);
        if locked.ahead.is_some() {
            return Ok(());
        }
        let sent = locked.connection.send_request(&Request::Reserve {
            size: size as u64,
            placement,
            shared: true,
            nonce: &nonce,
        });
        let id = match sent {
            Ok(id) => id,
            Err(e) => {
                // An executor that refuses the hello (another protocol version) answers and
                // closes at once, so this request, sent before that answer was read, can
                // meet a closed socket: the answer, already here, is the error to report.
                drop(locked);
                drop(ready(&self.connection)?);
                return Err(TargetError::Connection(Box::new(e)));
            }
        };
        locked.ahead = Some(ReservedAhead {
            size,
            placement,
            nonce: nonce.to_vec(),
            id: Some(id),
            answer: None,
        });
        Ok(())
    }

    /// A shared reservation, asked for and answered now: its range, the executor's number for
    /// the file, the file (or why it did not come) and the nonce past the range.
    fn reserve_now(
        &self,
        size: usize,
        placement: Placement,
    ) -> Result<(SharedReservation, [u8; NONCE_LEN]), MapError> {
        let mut nonce = [0u8; NONCE_LEN];
        rjitlink_protocol::auth::random_bytes(&mut nonce)
            .map_err(|e| map_error(format!("no random bytes for a nonce: {e}")))?;
        let mut locked = ready(&self.connection).map_err(target_map_error)?;
        let executor_pid = locked.executor_pid;
        let connection = &mut locked.connection;
        let response = connection.call(&Request::Reserve {
            size: size as u64,
            placement,
            shared: true,
            nonce: &nonce,
        });
        let (range, fd_number) = match response {
            Ok(Response::ReservedShared { range, fd }) => (range, fd),
            Ok(Response::Failed(message)) => return Err(target_map_error(refused(message))),
            Ok(other) => {
                return Err(target_map_error(TargetError::UnexpectedResponse {
                    request: Some("reserve"),
                    response: format!("{other:?}"),
                }))
            }
            Err(e) => return Err(target_map_error(TargetError::Connection(Box::new(e)))),
        };
        // Over a Unix socket the descriptor follows the response; otherwise open it by path.
        let fd: Result<OwnedFd, String> = match connection.transport().unix_socket() {
            Some(socket) => receive_fd(socket).map_err(|e| e.to_string()),
            None => match executor_pid {
                Some(pid) => open_executor_memory(pid, fd_number),
                None => Err("the executor's pid is not known".into()),
            },
        };
        let reservation = SharedReservation {
            range,
            fd_number,
            file: fd,
        };
        Ok((reservation, nonce))
    }
}

impl MemoryMapper for SharedMemoryMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let mut locked = ready(&self.connection).map_err(target_map_error)?;
        let ahead = locked.ahead.take();
        drop(locked);
        let (reservation, nonce) = match ahead {
            Some(ahead) if ahead.size == size && ahead.placement == placement => {
                match ahead.answer {
                    Some(Ok(reservation)) => {
                        let nonce = ahead.nonce.try_into().expect("made of NONCE_LEN bytes");
                        (reservation, nonce)
                    }
                    Some(Err(error)) => return Err(target_map_error(error)),
                    // Its answer never came: the connection failed as it was read.
                    None => return Err(target_map_error(TargetError::Closed)),
                }
            }
            ahead => {
                // Not the reservation asked for ahead (a link that needs low addresses):
                // that one goes back.
                if let Some(Ok(reservation)) = ahead.and_then(|ahead| ahead.answer) {
                    release_remote(&self.connection, reservation.range)?;
                }
                self.reserve_now(size, placement)?
            }
        };
        let SharedReservation {
            range,
            fd_number,
            file: fd,
        } = reservation;
        let local = if range.len < size {
            Err(format!(
                "the executor reserved {} bytes for {size} asked",
                range.len
            ))
        } else {
            // The view holds the file from here: the descriptor is closed.
            fd.and_then(|fd| self.map_file(range, &fd, &nonce))
        };
        match local {
            Ok(local) => {
                self.lock_views().views.push(View {
                    range,
                    local: Some(local),
                    local_len: range.len + self.page_size,
                    fd_number,
                    nonce,
                });
                Ok(range)
            }
            Err(message) => {
                let _ = self.release(range);
                Err(map_error(format!(
                    "shared memory with the executor is not possible: {message}"
                )))
            }
        }
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        // Linker-side only: the pages are already shared, so no round trip.
        let mut views = self.lock_views();
        let ptr = self.local(&mut views, range)?;
        views.linking.push(range);
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
        initialize_remote(&self.connection, segments, actions)?;
        // The executor has the image: this process no longer writes it.
        let mut views = self.lock_views();
        views
            .linking
            .retain(|range| !segments.iter().any(|s| range.contains(s.range)));
        let size: usize = segments.iter().map(|s| s.range.len).sum();
        if views.linking.is_empty() && size >= GIVE_UP_WORTH {
            let mappings = views
                .views
                .iter_mut()
                .filter_map(|view| Some((view.local.take()? as usize, view.local_len)))
                .collect();
            drop(views);
            unmap_later(mappings, self.take_populating());
        }
        Ok(())
    }

    /// Shared memory's fresh pages cost a fault each (1,600 for CPython's image, 1.5 us
    /// apiece; memory files get no 2 MiB pages where shmem_enabled is `never`), taken by the
    /// apply phase's threads as they write. A thread of its own faults the pages the link
    /// writes in meanwhile (1,400 for CPython: code, read-only data, and data up to its zero
    /// fill) with MADV_POPULATE_WRITE, a third cheaper without the traps, from the start,
    /// while the linker computes addresses, chunk by chunk in order; and the link is asked
    /// to say before it writes each part (`before_write`), so that its worker takes the
    /// chunks there that the thread has not reached, rather than trap on their pages one at
    /// a time. (Pages of zero fill alone are left: the program may never touch them.)
    ///
    /// (Faulting in only by the link's workers, as they reach each part, leaves out the
    /// thread: no third runnable thread on two cores, but no use of the moments the link
    /// leaves a core idle either; it was slower where the machine was quiet.)
    fn will_write(&self, ranges: &[TargetRange]) -> bool {
        if ranges.iter().map(|range| range.len).sum::<usize>() < POPULATE_WORTH {
            return false;
        }
        let mut views = self.lock_views();
        let mut chunks = Vec::new();
        for &range in ranges {
            let Ok(local) = self.local(&mut views, range) else {
                return false;
            };
            for at in (0..range.len).step_by(POPULATE_CHUNK) {
                let len = POPULATE_CHUNK.min(range.len - at);
                chunks.push((range.start + at as u64, local as usize + at, len));
            }
        }
        drop(views);
        chunks.sort_unstable_by_key(|chunk| chunk.0);
        let taken = chunks.iter().map(|_| AtomicBool::new(false)).collect();
        let chunks = Arc::new(Chunks { chunks, taken });
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, ours) = (stop.clone(), chunks.clone());
        let (unmap_tx, unmap_rx) = channel::<Mappings>();
        let thread = crate::spawned::start_quiet_thread("rjitlink-populate", 64 << 10, move || {
            populate(&ours, &seen);
            if let Ok(mappings) = unmap_rx.recv() {
                unmap(&mappings);
            }
        });
        let Ok(thread) = thread else {
            return false;
        };
        let previous = self
            .populating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Populating {
                chunks,
                stop,
                unmap: unmap_tx,
                thread,
            });
        if let Some(previous) = previous {
            previous.finish();
        }
        true
    }

    /// A link worker about to write `range` faults in the chunks of it the populating thread
    /// has not reached (and takes them from it): it does not trap on them one page at a time,
    /// nor wait for the thread.
    fn before_write(&self, range: TargetRange) {
        let chunks = match &*self.populating.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(populating) => populating.chunks.clone(),
            None => return,
        };
        chunks.take_range(range);
    }

    /// Pieces are written through this process's view of the executor's memory file, except
    /// data and code on pages already live: the executor made those private copies (data so
    /// that a forked child's writes stay its own, code so that a debugger can write its
    /// breakpoints there), which need not see the file any more, and it writes the piece
    /// there itself (and, for code, is asked to protect the page again). Pages going live now
    /// get the view's bytes as they are made private.
    fn initialize_pieces(
        &self,
        pages: &[SegmentProtection],
        pieces: &[PieceWrite<'_>],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        let mut protect = pages.to_vec();
        for piece in pieces {
            let on_new_pages = pages_of(piece.range, piece.protection, self.page_size)
                .all(|page| pages.contains(&page));
            if piece.protection != Protection::Read && !on_new_pages {
                write_remote(&self.connection, piece.range.start, piece.bytes)?;
                if piece.protection == Protection::ReadExecute {
                    for page in pages_of(piece.range, piece.protection, self.page_size) {
                        if !protect.contains(&page) {
                            protect.push(page);
                        }
                    }
                }
                continue;
            }
            let mut views = self.lock_views();
            let local = self.local(&mut views, piece.range)?;
            // SAFETY: the view of a range of a reservation (checked by `local`), which the
            // executor runs nothing in meanwhile; the lock keeps the view mapped.
            unsafe {
                std::ptr::copy_nonoverlapping(piece.bytes.as_ptr(), local, piece.bytes.len())
            };
        }
        initialize_remote(&self.connection, &protect, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        if let Some(populating) = self.take_populating() {
            populating.finish();
        }
        // A range abandoned before it was initialized is no longer being linked.
        self.lock_views()
            .linking
            .retain(|linking| !ranges.iter().any(|r| r.contains(*linking)));
        deinitialize_remote(&self.connection, ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        if let Some(populating) = self.take_populating() {
            populating.finish();
        }
        let mut views = self.lock_views();
        if let Some(index) = views.views.iter().position(|v| v.range == range) {
            let view = views.views.swap_remove(index);
            if let Some(local) = view.local {
                // SAFETY: the view's own mapping, no longer used.
                unsafe { libc::munmap(local as *mut libc::c_void, view.local_len) };
            }
        }
        views.linking.retain(|linking| !range.contains(*linking));
        drop(views);
        release_remote(&self.connection, range)
    }
}

impl Drop for SharedMemoryMapper {
    fn drop(&mut self) {
        if let Some(populating) = self.take_populating() {
            populating.finish();
        }
        let views = self.views.get_mut().unwrap_or_else(|e| e.into_inner());
        for view in views.views.drain(..) {
            if let Some(local) = view.local {
                // SAFETY: the view's own mapping; nothing uses it once the mapper is gone.
                unsafe { libc::munmap(local as *mut libc::c_void, view.local_len) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn memfd(name: &std::ffi::CStr, len: i64) -> OwnedFd {
        // SAFETY: a fresh descriptor, owned from here.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::memfd_create(name.as_ptr(), 0)) };
        // SAFETY: sizing our own file.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }, 0);
        fd
    }

    #[test]
    fn only_an_executor_memory_file_of_the_right_size_passes() {
        assert!(check_memory_file(&memfd(c"rjitlink-slab", 8192), 8192).is_ok());
        let wrong_size = check_memory_file(&memfd(c"rjitlink-slab", 4096), 8192).unwrap_err();
        assert!(wrong_size.contains("4096 bytes"), "{wrong_size}");
        assert!(check_memory_file(&memfd(c"someone-else", 8192), 8192).is_err());
        // A file on disk, even of the right size, is not one.
        let path = std::env::temp_dir().join(format!("rjitlink-not-memory-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(8192).unwrap();
        let result = check_memory_file(&OwnedFd::from(file), 8192);
        std::fs::remove_file(&path).unwrap();
        assert!(result.is_err());
    }

    #[test]
    fn a_refused_hello_is_reported_by_the_slab_asked_for_ahead() {
        // The executor refuses the hello and closes before the reservation asked for ahead is
        // sent: the send meets a closed socket, and the error is still the executor's reason.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut linker = rjitlink_protocol::Connection::new(Box::new(ours));
        let hello = linker
            .send_request(&Request::Hello {
                version: 99,
                nonce: b"",
            })
            .unwrap();
        let mut executor = rjitlink_protocol::Connection::new(Box::new(theirs));
        let (id, request) = executor.next_request().unwrap().unwrap();
        assert!(matches!(request, Request::Hello { version: 99, .. }));
        executor
            .respond(id, &Response::Failed(b"protocol version mismatch"))
            .unwrap();
        drop(executor);
        let mapper =
            SharedMemoryMapper::new(crate::connection::share(linker, Some(hello), None), 4096);
        let error = mapper
            .reserve_ahead(1 << 20, Placement::Anywhere)
            .unwrap_err();
        assert!(
            matches!(&error, TargetError::Refused(reason) if reason == "protocol version mismatch"),
            "{error:?}"
        );
    }

    #[test]
    fn each_chunk_is_faulted_in_once_by_whoever_comes_first() {
        let page = 4096;
        let len = POPULATE_CHUNK * 4;
        // SAFETY: a new shared anonymous mapping (shared memory, as a view is), unmapped below.
        let local = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as usize;
        assert_ne!(local, libc::MAP_FAILED as usize);
        let base = TargetAddr(0x7000_0000);
        let chunks = Chunks {
            chunks: (0..4)
                .map(|i| {
                    let at = i * POPULATE_CHUNK;
                    (base + at as u64, local + at, POPULATE_CHUNK)
                })
                .collect(),
            taken: (0..4).map(|_| AtomicBool::new(false)).collect(),
        };
        let resident = || {
            let mut pages = vec![0u8; len / page];
            // SAFETY: our mapping, a byte per page.
            assert_eq!(
                unsafe { libc::mincore(local as *mut libc::c_void, len, pages.as_mut_ptr()) },
                0
            );
            pages
                .chunks(POPULATE_CHUNK / page)
                .map(|chunk| chunk.iter().all(|&p| p & 1 == 1))
                .collect::<Vec<_>>()
        };
        let taken = |chunks: &Chunks| -> Vec<bool> {
            chunks
                .taken
                .iter()
                .map(|t| t.load(Ordering::Relaxed))
                .collect()
        };
        // A worker about to write the last bytes of chunk 1 and the first of chunk 2.
        chunks.take_range(TargetRange {
            start: base + (2 * POPULATE_CHUNK - 8) as u64,
            len: 16,
        });
        assert_eq!(taken(&chunks), [false, true, true, false]);
        assert_eq!(resident(), [false, true, true, false]);
        // The thread takes the rest.
        populate(&chunks, &AtomicBool::new(false));
        assert_eq!(taken(&chunks), [true; 4]);
        assert_eq!(resident(), [true; 4]);
        // A thread told to stop takes nothing more.
        let stopped = Chunks {
            chunks: chunks.chunks.clone(),
            taken: (0..4).map(|_| AtomicBool::new(false)).collect(),
        };
        populate(&stopped, &AtomicBool::new(true));
        assert_eq!(taken(&stopped), [false; 4]);
        // SAFETY: unmapping the test's own mapping.
        unsafe { libc::munmap(local as *mut libc::c_void, len) };
    }

    #[test]
    fn no_other_file_is_opened_by_its_proc_path() {
        // This process's stdin, stdout and a descriptor that does not exist.
        let pid = std::process::id();
        for fd in [0, 1, 999_999] {
            assert!(open_executor_memory(pid, fd).is_err());
        }
        let memory = memfd(c"rjitlink-slab", 4096);
        assert!(open_executor_memory(pid, memory.as_raw_fd() as u32).is_ok());
    }
}
