//! The linker's side of a remote executor: requests over a connection, and the RPC-copy
//! mapper, which links into local buffers and sends the bytes at finalize.

use crate::shared::SharedMemoryMapper;
use crate::{Executor, Interposition, Program, SymbolInfo, SymbolKind};
use anyhow::{anyhow, bail, Context, Result};
use rjitlink_memory::{
    MapError, MemoryMapper, Placement, SegmentProtection, TargetAddr, TargetCall, TargetRange,
    WorkingMemory,
};
use rjitlink_protocol::{
    Connection, Copy, ProtocolError, Request, Response, RunProgram, TransportStats,
    PROTOCOL_VERSION,
};
use std::fmt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

/// The executor process was killed by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorTerminated {
    pub signal: i32,
}

/// `SIGSEGV` for 11, and so on; `signal N` for the rest.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

impl fmt::Display for ExecutorTerminated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "executor terminated by signal {}",
            signal_name(self.signal)
        )
    }
}

impl std::error::Error for ExecutorTerminated {}

/// The connection to the executor, and a hello sent but not yet answered (a spawned
/// executor starts while the linker reads its inputs).
pub(crate) struct Link {
    pub(crate) connection: Connection,
    pending_hello: Option<u64>,
}

/// A connection shared by the executor and its mapper.
pub(crate) type Shared = Arc<Mutex<Link>>;

pub(crate) fn lock(connection: &Shared) -> std::sync::MutexGuard<'_, Link> {
    connection.lock().unwrap_or_else(|e| e.into_inner())
}

/// The executor's answer to hello: (page size, pid, capabilities).
fn check_hello(hello: Result<Response<'_>, ProtocolError>) -> Result<(u64, u32, u64), String> {
    match hello {
        Ok(Response::Hello {
            version,
            page_size,
            pid,
            capabilities,
        }) => {
            if version != announced_version() {
                return Err(format!(
                    "protocol version mismatch: rjitlink speaks version {}, the executor version {version}",
                    announced_version()
                ));
            }
            Ok((page_size, pid, capabilities))
        }
        Ok(Response::Failed(message)) => Err(String::from_utf8_lossy(message).into_owned()),
        Ok(other) => Err(format!(
            "unexpected handshake response from the executor: {other:?}"
        )),
        Err(ProtocolError::Closed) => Err(
            "the executor closed the connection during the handshake (wrong or missing RJITLINK_TOKEN?)"
                .into(),
        ),
        Err(e) => Err(format!("executor handshake failed: {e}")),
    }
}

/// Lock the connection, first finishing a deferred handshake.
pub(crate) fn ready(connection: &Shared) -> Result<std::sync::MutexGuard<'_, Link>, String> {
    let mut link = lock(connection);
    if let Some(id) = link.pending_hello.take() {
        check_hello(link.connection.receive_response(id))?;
    }
    Ok(link)
}

/// What a call's response means: `Failed` becomes an error with the executor's message.
fn interpret<T>(
    response: Result<Response<'_>, ProtocolError>,
    accept: impl FnOnce(Response<'_>) -> Option<T>,
) -> Result<T, String> {
    match response {
        Ok(Response::Failed(message)) => Err(String::from_utf8_lossy(message).into_owned()),
        Ok(Response::Terminated(signal)) => Err(ExecutorTerminated { signal }.to_string()),
        Ok(response) => {
            let description = format!("{response:?}");
            accept(response)
                .ok_or_else(|| format!("unexpected response from the executor: {description}"))
        }
        Err(ProtocolError::Closed) => {
            Err("the executor closed the connection (did it die?)".into())
        }
        Err(e) => Err(format!("executor connection: {e}")),
    }
}

/// Send `request` and interpret the response.
pub(crate) fn call<T>(
    connection: &Shared,
    request: &Request<'_>,
    accept: impl FnOnce(Response<'_>) -> Option<T>,
) -> Result<T, String> {
    let mut link = ready(connection)?;
    interpret(link.connection.call(request), accept)
}

/// A memory request answered `Done`: one round trip.
fn memory_request(connection: &Shared, request: &Request<'_>) -> Result<(), MapError> {
    call(connection, request, |r| {
        matches!(r, Response::Done).then_some(())
    })
    .map_err(MapError::Executor)
}

/// Protections and finalize calls, as both remote mappers send them (the copy mapper after
/// the bytes).
pub(crate) fn initialize_remote(
    connection: &Shared,
    segments: &[SegmentProtection],
    actions: &[TargetCall],
) -> Result<(), MapError> {
    let segments = segments.to_vec();
    let actions = actions.to_vec();
    memory_request(connection, &Request::Initialize { segments, actions })
}

pub(crate) fn deinitialize_remote(
    connection: &Shared,
    ranges: &[TargetRange],
    actions: &[TargetCall],
) -> Result<(), MapError> {
    let ranges = ranges.to_vec();
    let actions = actions.to_vec();
    memory_request(connection, &Request::Deinitialize { ranges, actions })
}

pub(crate) fn release_remote(connection: &Shared, range: TargetRange) -> Result<(), MapError> {
    memory_request(connection, &Request::Release { range })
}

/// Links into local buffers; `initialize` sends the bytes, then the protections.
pub struct RemoteCopyMapper {
    connection: Shared,
    page_size: usize,
    /// Working memory of prepared ranges not yet initialized.
    working: Mutex<Vec<(TargetRange, Box<[u8]>)>>,
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
            },
            |r| match r {
                Response::Reserved(range) => Some(range),
                _ => None,
            },
        )
        .map_err(MapError::Executor)
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        let mut buffer = vec![0u8; range.len].into_boxed_slice();
        let ptr = buffer.as_mut_ptr();
        self.working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((range, buffer));
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
        for segment in segments.iter().filter(|s| s.range.len > 0) {
            let (range, buffer) = working
                .iter()
                .find(|(r, _)| segment.range.start >= r.start && segment.range.end() <= r.end())
                .ok_or_else(|| {
                    MapError::Executor(format!(
                        "segment at {} was never prepared",
                        segment.range.start
                    ))
                })?;
            let offset = (segment.range.start - range.start) as usize;
            let bytes = &buffer[offset..offset + segment.range.len];
            let mut link = ready(&self.connection).map_err(MapError::Executor)?;
            let request = Request::Write {
                address: segment.range.start,
                length: bytes.len() as u64,
            };
            interpret(link.connection.call_with_payload(&request, bytes), |r| {
                matches!(r, Response::Done).then_some(())
            })
            .map_err(MapError::Executor)?;
        }
        // The bytes are in place: the local copies are no longer needed.
        working.retain(|(range, _)| {
            !segments
                .iter()
                .any(|s| s.range.start >= range.start && s.range.end() <= range.end())
        });
        drop(working);
        initialize_remote(&self.connection, segments, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        deinitialize_remote(&self.connection, ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        release_remote(&self.connection, range)
    }
}

/// How linked bytes reach a remote executor's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Shared pages: the linker writes in place, finalize sends protections only.
    Shared,
    /// The RPC-copy mapper: bytes are sent at finalize.
    Copy,
    /// Shared where the executor's memory can be mapped here, copy otherwise.
    Auto,
}

/// An executor in another process, reached over a socket.
pub struct Remote {
    connection: Shared,
    mapper: Arc<dyn MemoryMapper>,
    /// Whether `mapper` shares memory with the executor.
    pub shared_memory: bool,
    /// The executor process, when this linker spawned it.
    child: Option<Child>,
    /// The executor's process id, from the handshake.
    pub pid: u32,
}

/// The protocol version to announce: normally ours; tests set RJITLINK_PROTOCOL_VERSION to
/// check that a mismatch is reported.
fn announced_version() -> u32 {
    std::env::var("RJITLINK_PROTOCOL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROTOCOL_VERSION)
}

impl Remote {
    /// Spawn `rjitlink executor` (this same binary) connected by a socket pair. It inherits
    /// stdin, stdout and stderr, so the program's I/O is the user's.
    pub fn spawn(memory: MemoryMode) -> Result<Remote> {
        let exe = std::env::current_exe().context("cannot find the rjitlink binary")?;
        Remote::spawn_program(&exe, memory)
    }

    /// Like `spawn`, with the rjitlink binary to run as the executor named explicitly (for
    /// programs that use rjitlink as a library).
    pub fn spawn_program(exe: &Path, memory: MemoryMode) -> Result<Remote> {
        let (ours, theirs) = UnixStream::pair().context("cannot create a socket pair")?;
        // The executor inherits its end at the same descriptor number. Nothing else is done
        // between fork and exec, so the standard library can spawn with posix_spawn, which
        // does not wait for a copy of this process's page tables.
        let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
        // SAFETY: clearing close-on-exec on a descriptor we own.
        if unsafe { libc::fcntl(theirs_fd, libc::F_SETFD, 0) } != 0 {
            bail!(
                "cannot pass a socket to the executor: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut command = Command::new(exe);
        command
            .args(["executor", "--fd"])
            .arg(theirs_fd.to_string())
            .arg("--parent")
            .arg(std::process::id().to_string());
        let child = command.spawn().context("cannot start the executor")?;
        // Only the child may hold its end, so that its death closes the connection.
        drop(theirs);
        // The hello is sent now and its answer read by the first request: the executor starts
        // up while the linker reads its inputs. It is this same binary on this machine, so its
        // page size and capabilities are known; the answer is still checked.
        let mut connection = Connection::new(Box::new(ours));
        let hello = connection.send_request(&Request::Hello {
            version: announced_version(),
            token: b"",
        })?;
        let connection = Arc::new(Mutex::new(Link {
            connection,
            pending_hello: Some(hello),
        }));
        let pid = child.id();
        let mut remote = Remote {
            mapper: Arc::new(SharedMemoryMapper::new(
                connection.clone(),
                rjitlink_memory::page_size(),
                pid,
            )),
            shared_memory: true,
            connection,
            child: Some(child),
            pid,
        };
        if memory == MemoryMode::Copy {
            remote.use_copy_mapper();
        }
        Ok(remote)
    }

    /// Connect to `rjitlink executor --listen` at `address`, presenting RJITLINK_TOKEN.
    /// Shared memory works only when both ends are on one machine: it is tried with a
    /// one-page reservation, and `Auto` falls back to copying.
    pub fn connect(address: &str, memory: MemoryMode) -> Result<Remote> {
        let stream = std::net::TcpStream::connect(address)
            .with_context(|| format!("cannot connect to the executor at {address}"))?;
        stream.set_nodelay(true)?;
        let token = std::env::var("RJITLINK_TOKEN").unwrap_or_default();
        let mut remote = Remote::handshake(
            Box::new(stream),
            token.as_bytes(),
            None,
            memory != MemoryMode::Copy,
        )?;
        if remote.shared_memory {
            let probe = remote
                .mapper
                .reserve(remote.mapper.page_size(), Placement::Anywhere)
                .and_then(|range| remote.mapper.release(range));
            match (probe, memory) {
                (Ok(()), _) => {}
                (Err(_), MemoryMode::Auto) => remote.use_copy_mapper(),
                (Err(e), _) => bail!("--memory=shared cannot be honoured: {e}"),
            }
        }
        Ok(remote)
    }

    fn use_copy_mapper(&mut self) {
        self.mapper = Arc::new(RemoteCopyMapper {
            connection: self.connection.clone(),
            page_size: self.mapper.page_size(),
            working: Mutex::new(Vec::new()),
        });
        self.shared_memory = false;
    }

    fn handshake(
        stream: Box<dyn rjitlink_protocol::Transport>,
        token: &[u8],
        child: Option<Child>,
        shared_memory: bool,
    ) -> Result<Remote> {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let mut connection = Connection::new(stream);
        let hello = connection.call(&Request::Hello {
            version: announced_version(),
            token,
        });
        let (page_size, pid, capabilities) = check_hello(hello).map_err(|e| anyhow!(e))?;
        connection.transport().set_read_timeout(None)?;
        let connection = Arc::new(Mutex::new(Link {
            connection,
            pending_hello: None,
        }));
        let can_share = capabilities & rjitlink_protocol::CAPABILITY_SHARED_MEMORY != 0;
        if shared_memory && !can_share {
            bail!("--memory=shared cannot be honoured: the executor does not offer shared memory");
        }
        let mut remote = Remote {
            mapper: Arc::new(SharedMemoryMapper::new(
                connection.clone(),
                page_size as usize,
                pid,
            )),
            shared_memory: true,
            connection,
            child,
            pid,
        };
        if !shared_memory {
            remote.use_copy_mapper();
        }
        Ok(remote)
    }

    /// What crossed the transport so far.
    pub fn stats(&self) -> TransportStats {
        lock(&self.connection).connection.stats()
    }

    /// After the connection closed: how the spawned executor ended.
    fn reap_child(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.wait().ok())
    }

    fn call<T>(
        &mut self,
        request: &Request<'_>,
        accept: impl FnOnce(Response<'_>) -> Option<T>,
    ) -> Result<T> {
        call(&self.connection, request, accept).map_err(|message| self.explain(message))
    }

    /// Turn a failed call into the clearest error: if the executor died, say how.
    fn explain(&mut self, message: String) -> anyhow::Error {
        if message.starts_with("the executor closed the connection") {
            if let Some(status) = self.reap_child() {
                use std::os::unix::process::ExitStatusExt;
                if let Some(signal) = status.signal() {
                    return ExecutorTerminated { signal }.into();
                }
                return anyhow!("the executor exited unexpectedly with {status}");
            }
        }
        anyhow!(message)
    }
}

impl Executor for Remote {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }

    fn transport_stats(&self) -> Option<TransportStats> {
        Some(self.stats())
    }

    fn load_library(&mut self, path: &Path) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path_bytes = path.as_os_str().as_bytes();
        self.call(&Request::LoadLibrary { path: path_bytes }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<()> {
        self.call(
            &Request::LoadLibraryImage {
                name: name.as_bytes(),
                image,
            },
            |r| matches!(r, Response::Done).then_some(()),
        )
    }

    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>> {
        let count = names.len();
        self.call(
            &Request::Lookup {
                names: names.to_vec(),
            },
            |r| match r {
                Response::Addresses(addresses) if addresses.len() == count => Some(addresses),
                _ => None,
            },
        )
    }

    fn symbol_info(&mut self, addresses: &[TargetAddr]) -> Result<Vec<Option<SymbolInfo>>> {
        let count = addresses.len();
        self.call(
            &Request::SymbolInfo {
                addresses: addresses.to_vec(),
            },
            |r| match r {
                Response::SymbolInfos(infos) if infos.len() == count => Some(
                    infos
                        .into_iter()
                        .map(|info| {
                            info.map(|(kind, size)| SymbolInfo {
                                kind: match kind {
                                    0 => SymbolKind::Function,
                                    1 => SymbolKind::Data,
                                    _ => SymbolKind::Other,
                                },
                                size,
                            })
                        })
                        .collect(),
                ),
                _ => None,
            },
        )
    }

    fn interpose(&mut self, copies: &[Interposition]) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        let copies = copies
            .iter()
            .map(|c| Copy {
                name: &c.name,
                original: c.original,
                copy: c.copy,
                size: c.size,
            })
            .collect();
        self.call(&Request::Interpose { copies }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn run(&mut self, program: &Program) -> Result<i32> {
        let request = Request::Run(RunProgram {
            entry: program.entry,
            init: program.init.clone(),
            fini: program.fini.clone(),
            args: program.args.iter().map(Vec::as_slice).collect(),
        });
        let shared = self.connection.clone();
        let outcome = {
            let mut link = match ready(&shared) {
                Ok(link) => link,
                Err(message) => return Err(self.explain(message)),
            };
            link.connection.call(&request).map(|r| match r {
                Response::Exited(status) => Ok(status),
                Response::Terminated(signal) => Err(ExecutorTerminated { signal }.into()),
                Response::Failed(message) => Err(anyhow!("{}", String::from_utf8_lossy(message))),
                other => Err(anyhow!("unexpected response to run: {other:?}")),
            })
        };
        match outcome {
            Ok(result) => {
                // The executor exits right after reporting: reap it.
                self.reap_child();
                result
            }
            Err(ProtocolError::Closed) => {
                use std::os::unix::process::ExitStatusExt;
                match self.reap_child() {
                    Some(status) => match (status.code(), status.signal()) {
                        // The program left with _exit, skipping exit handlers.
                        (Some(code), _) => Ok(code),
                        (_, Some(signal)) => Err(ExecutorTerminated { signal }.into()),
                        _ => bail!("the executor ended with {status}"),
                    },
                    None => bail!("the executor closed the connection while the program ran"),
                }
            }
            Err(e) => bail!("executor connection: {e}"),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Not run (e.g. --noexec or a link error): ask the executor to stop, without waiting
        // for its answer or its exit. A thread reaps it so that a long-lived program leaves no
        // zombie.
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = lock(&self.connection)
                    .connection
                    .send_request(&Request::Shutdown);
                std::thread::spawn(move || child.wait());
            }
        }
    }
}
