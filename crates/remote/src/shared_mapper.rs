//! The shared-memory mapper: the executor backs its reservation with a memory file and hands
//! it over; the linker maps the same pages and writes code and data straight into them.
//! Finalizing sends only protections — no section content crosses the connection.

use crate::connection::{
    deinitialize_remote, initialize_remote, map_error, ready, refused, release_remote,
    target_map_error, SharedConnection,
};
use rjitlink_memory::{
    MapError, MemoryMapper, Placement, SegmentProtection, TargetCall, TargetRange, WorkingMemory,
};
use rjitlink_protocol::{receive_fd, Request, Response};
use rjitlink_target::TargetError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

/// The linker's view of one shared reservation.
struct View {
    range: TargetRange,
    /// Where the same pages are mapped here, with the nonce page after them.
    local: *mut u8,
    local_len: usize,
}

// SAFETY: a view is a description of a mapping; the linker writes disjoint parts of it.
unsafe impl Send for View {}

/// Maps the executor's reservations here too: the linker writes the image in place.
pub struct SharedMemoryMapper {
    connection: SharedConnection,
    page_size: usize,
    /// The executor's pid, to open its memory file by /proc path when no Unix socket can
    /// carry the descriptor (TCP on one machine).
    executor_pid: u32,
    views: Mutex<Vec<View>>,
}

impl SharedMemoryMapper {
    pub(crate) fn new(connection: SharedConnection, page_size: usize, executor_pid: u32) -> Self {
        SharedMemoryMapper {
            connection,
            page_size,
            executor_pid,
            views: Mutex::new(Vec::new()),
        }
    }

    /// Map the executor's memory file and check, by the nonce past the range, that it is
    /// the executor's memory and not some other file.
    fn map_view(&self, range: TargetRange, fd: &OwnedFd, nonce: &[u8]) -> Result<View, String> {
        let local_len = range.len + self.page_size;
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
        Ok(View {
            range,
            local,
            local_len,
        })
    }
}

impl MemoryMapper for SharedMemoryMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let mut locked = ready(&self.connection).map_err(target_map_error)?;
        let connection = &mut locked.connection;
        let response = connection.call(&Request::Reserve {
            size: size as u64,
            placement,
            shared: true,
        });
        let (range, fd_number, nonce) = match response {
            Ok(Response::ReservedShared { range, fd, nonce }) => (range, fd, nonce.to_vec()),
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
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{}/fd/{fd_number}", self.executor_pid))
                .map(OwnedFd::from)
                .map_err(|e| {
                    format!("cannot open the executor's memory: {e} (not on this machine?)")
                }),
        };
        drop(locked);
        let view = fd.and_then(|fd| self.map_view(range, &fd, &nonce));
        match view {
            Ok(view) => {
                self.views
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(view);
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
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        let view = views
            .iter()
            .find(|v| v.range.contains(range))
            .ok_or_else(|| map_error(format!("{} is not in a shared reservation", range.start)))?;
        // SAFETY: inside the view's mapping, checked above.
        let ptr = unsafe { view.local.add((range.start - view.range.start) as usize) };
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
        initialize_remote(&self.connection, segments, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        deinitialize_remote(&self.connection, ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = views.iter().position(|v| v.range == range) {
            let view = views.swap_remove(index);
            // SAFETY: the view's own mapping, no longer used.
            unsafe { libc::munmap(view.local as *mut libc::c_void, view.local_len) };
        }
        drop(views);
        release_remote(&self.connection, range)
    }
}

impl Drop for SharedMemoryMapper {
    fn drop(&mut self) {
        for view in self
            .views
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: the view's own mapping; nothing uses it once the mapper is gone.
            unsafe { libc::munmap(view.local as *mut libc::c_void, view.local_len) };
        }
    }
}
