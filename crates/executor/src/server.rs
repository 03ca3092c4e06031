//! The executor service: serves one linker over a connection, doing the target operations in
//! this process, and the TCP listener that serves linkers one at a time.
//!
//! Nothing a client sends can crash the service: every frame is checked, memory requests must
//! lie in ranges the service reserved, and any violation closes the connection. (Code the
//! client links and runs can of course do anything: that is what an authenticated client is
//! for, and why TCP connections must present the token.)

use crate::error::ServeError;
use crate::interpose::interpose;
use crate::target::{run_program, symbol_info, Libraries};
use rjitlink_memory::{
    InProcessMapper, MemoryMapper, Protection, SegmentProtection, TargetAddr, TargetRange,
};
use rjitlink_protocol::{Connection, Request, Response, Transport, PROTOCOL_VERSION};
use rjitlink_target::{full_message, Interposition, ModuleHandle, Program, SymbolKind, WordTable};
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

/// How long a new connection may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token: 16 bytes from the kernel, as hex.
pub fn generate_token() -> Result<String, ServeError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(ServeError::Token)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The target state one connection works on.
struct Service {
    mapper: InProcessMapper,
    libraries: Libraries,
    reservations: Vec<TargetRange>,
    /// Reservations backed by a memory file the linker maps too.
    shared: Vec<(TargetRange, OwnedFd)>,
}

/// A shared reservation: `len` bytes at `range`, mapped from a new memory file that also
/// holds `nonce` just past them. Returns the file.
fn reserve_shared(
    mapper: &InProcessMapper,
    size: usize,
    placement: rjitlink_memory::Placement,
    nonce: &[u8],
) -> Result<(TargetRange, OwnedFd), String> {
    let range = mapper.reserve(size, placement).map_err(|e| e.to_string())?;
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
        let page = mapper.page_size();
        let file_size = (range.len + page) as libc::off_t;
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
/// reservation (`shared`), or as private copy-on-write read-write data.
fn remap_shared(range: TargetRange, fd: i32, offset: u64, shared: bool) -> Result<(), String> {
    let (prot, flags) = if shared {
        (libc::PROT_NONE, libc::MAP_SHARED)
    } else {
        (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)
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

impl Service {
    /// The memory file and offset behind `range`, if it lies in a shared reservation.
    fn shared_file(&self, range: TargetRange) -> Option<(i32, u64)> {
        self.shared
            .iter()
            .find(|(s, _)| s.contains(range))
            .map(|(s, fd)| (fd.as_raw_fd(), range.start - s.start))
    }

    /// Err unless `[start, start + len)` lies inside one reservation.
    fn check_range(&self, start: TargetAddr, len: usize) -> Result<(), String> {
        let end = start
            .get()
            .checked_add(len as u64)
            .ok_or("address overflow")?;
        if self
            .reservations
            .iter()
            .any(|r| start >= r.start && end <= r.end().get())
        {
            Ok(())
        } else {
            Err(format!(
                "{start}..{end:#x} is not inside memory reserved by this executor"
            ))
        }
    }

    /// The memory a `Write` of `length` bytes at `address` fills, made writable, if it lies in
    /// a reservation of this service.
    fn writable(&mut self, address: TargetAddr, length: u64) -> Result<&mut [u8], String> {
        let length = usize::try_from(length).map_err(|_| "write too long")?;
        self.check_range(address, length)?;
        let page = self.mapper.page_size() as u64;
        let start = address.get() & !(page - 1);
        let end = (address.get() + length as u64).next_multiple_of(page);
        self.mapper
            .prepare(TargetRange {
                start: TargetAddr(start),
                len: (end - start) as usize,
            })
            .map_err(|e| e.to_string())?;
        // SAFETY: checked to lie in our reservation, and made writable just above; nothing
        // else refers to it while the payload is read.
        Ok(unsafe { std::slice::from_raw_parts_mut(address.get() as *mut u8, length) })
    }

    fn handle(&mut self, request: Request<'_>) -> Result<Response<'static>, String> {
        let map_error = |e: rjitlink_memory::MapError| e.to_string();
        Ok(match request {
            Request::Hello { .. } => return Err("unexpected hello".into()),
            Request::Reserve {
                size,
                placement,
                shared: false,
            } => {
                let size = usize::try_from(size).map_err(|_| "size too large")?;
                let range = self.mapper.reserve(size, placement).map_err(map_error)?;
                self.reservations.push(range);
                Response::Reserved(range)
            }
            Request::Initialize { segments, actions } => {
                for segment in &segments {
                    self.check_range(segment.range.start, segment.range.len)?;
                }
                // Writable data in shared memory becomes a private copy-on-write mapping of
                // the same pages: the program's writes, and those of children it forks, must
                // stay the program's own (a MAP_SHARED page stays shared across fork).
                let (shared_data, rest): (Vec<SegmentProtection>, Vec<SegmentProtection>) =
                    segments.iter().partition(|segment| {
                        segment.protection == Protection::ReadWrite
                            && self.shared_file(segment.range).is_some()
                    });
                for segment in shared_data {
                    let (fd, offset) = self.shared_file(segment.range).expect("partitioned");
                    remap_shared(segment.range, fd, offset, false)?;
                }
                self.mapper.initialize(&rest, &actions).map_err(map_error)?;
                Response::Done
            }
            Request::Deinitialize { ranges, actions } => {
                for range in &ranges {
                    self.check_range(range.start, range.len)?;
                }
                let (shared, private): (Vec<TargetRange>, Vec<TargetRange>) = ranges
                    .iter()
                    .partition(|range| self.shared_file(**range).is_some());
                self.mapper
                    .deinitialize(&private, &actions)
                    .map_err(map_error)?;
                for range in shared {
                    // Back to the shared, inaccessible reservation, dropping private copies;
                    // punching the range out of the memory file frees its pages (the linker's
                    // view then reads zero).
                    let (fd, offset) = self.shared_file(range).expect("partitioned");
                    remap_shared(range, fd, offset, true)?;
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
                    self.check_range(copy.copy, copy.size as usize)?;
                }
                interpose(&copies).map_err(|e| full_message(&e))?;
                Response::Done
            }
            Request::Reserve { shared: true, .. }
            | Request::Write { .. }
            | Request::Run(_)
            | Request::Shutdown => {
                unreachable!("handled by the caller")
            }
        })
    }
}

use std::os::unix::ffi::OsStrExt;

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

/// Serve one linker: handshake (with `token`, if one is required), then requests until the
/// linker shuts down or closes. A `Run` request does not return: the program's exit is this
/// process's exit, reported to the linker first.
pub fn serve(stream: Box<dyn Transport>, token: Option<&[u8]>) -> Result<(), ServeError> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut connection = Connection::new(stream);
    let (id, version) = match connection.next_request()? {
        None => return Err(ServeError::ClosedBeforeHello),
        Some((
            id,
            Request::Hello {
                version,
                token: presented,
            },
        )) => {
            if let Some(token) = token {
                if !same_secret(presented, token) {
                    // Closed before anything is served or even answered.
                    return Err(ServeError::WrongToken);
                }
            }
            (id, version)
        }
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
    connection.respond(
        id,
        &Response::Hello {
            version: PROTOCOL_VERSION,
            page_size: rjitlink_memory::page_size() as u64,
            pid: std::process::id(),
            capabilities: rjitlink_protocol::CAPABILITY_SHARED_MEMORY,
        },
    )?;
    connection.transport().set_read_timeout(None)?;

    let mut service = Service {
        mapper: InProcessMapper::new(),
        libraries: Libraries::default(),
        reservations: Vec::new(),
        shared: Vec::new(),
    };
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
            } => {
                let mut nonce = [0u8; 16];
                nonce.copy_from_slice(&generate_token()?.as_bytes()[..16]);
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                match reserve_shared(&service.mapper, size, placement, &nonce) {
                    Ok((range, fd)) => {
                        connection.respond(
                            id,
                            &Response::ReservedShared {
                                range,
                                fd: fd.as_raw_fd() as u32,
                                nonce: &nonce,
                            },
                        )?;
                        if let Some(socket) = connection.transport().unix_socket() {
                            rjitlink_protocol::send_fd(socket, fd.as_raw_fd())?;
                        }
                        service.reservations.push(range);
                        service.shared.push((range, fd));
                    }
                    Err(message) => {
                        connection.respond(id, &Response::Failed(message.as_bytes()))?
                    }
                }
            }
            Request::Run(run) => {
                let program = Program {
                    entry: run.entry,
                    init: run.init,
                    fini: run.fini,
                    args: run.args.iter().map(|a| a.to_vec()).collect(),
                };
                *EXIT_REPORT.lock().unwrap_or_else(|e| e.into_inner()) = Some((connection, id));
                match run_program(&program, Some(report_exit)) {
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

/// Serve linkers over TCP, one at a time, each in a forked child so that a program's exit or
/// crash ends only that child. If the child dies by a signal, the linker is told so.
pub fn listen(address: &str, token: &[u8]) -> Result<(), ServeError> {
    let listener = TcpListener::bind(address).map_err(|source| ServeError::Listen {
        address: address.to_owned(),
        source,
    })?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        eprintln!(
            "rjitlink executor: warning: listening on {local}, reachable from other machines: anyone with the token can run code here"
        );
    }
    println!("rjitlink executor listening on {local}");
    std::io::stdout().flush()?;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("rjitlink executor: accept failed: {e}");
                continue;
            }
        };
        // SAFETY: this process is single-threaded here, so the child may run anything.
        match unsafe { libc::fork() } {
            -1 => eprintln!(
                "rjitlink executor: fork failed: {}",
                std::io::Error::last_os_error()
            ),
            0 => {
                drop(listener);
                let status = match serve(Box::new(stream), Some(token)) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("rjitlink executor: {peer}: {}", full_message(&e));
                        1
                    }
                };
                std::process::exit(status);
            }
            child => report_child_end(child, stream),
        }
    }
}

/// Wait for the child serving `stream`; if a signal killed it, tell the linker.
fn report_child_end(child: libc::pid_t, stream: TcpStream) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(child, &mut status, 0) } == -1 {
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
    if libc::WIFSIGNALED(status) {
        let mut connection = Connection::new(Box::new(stream));
        let _ = connection.respond(0, &Response::Terminated(libc::WTERMSIG(status)));
    }
}

/// Serve the linker that spawned this process, on the socket at file descriptor `fd`.
///
/// The executor is part of the spawning linker's run: it dies with it (PR_SET_PDEATHSIG), so
/// that a killed linker leaves no process holding its memory. `parent` is the linker's pid,
/// to catch a linker that died before that was set.
pub fn serve_inherited_socket(fd: i32, parent: u32) -> Result<(), ServeError> {
    use std::os::fd::FromRawFd;
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
    serve(Box::new(std::os::unix::net::UnixStream::from(socket)), None)
}
