//! `Remote`: an executor in another process, spawned by the linker or listening on TCP, and
//! the choice of the mapper its memory goes through.

use crate::connection::{
    announced_version, authenticate, call, call_with_payloads, lock, ready, refused, share,
    ExecutorHello, SharedConnection,
};
use crate::copy_mapper::RemoteCopyMapper;
use crate::shared_mapper::SharedMemoryMapper;
use crate::signal_relay::{wait_unreaped, Relay};
use crate::spawned::Spawned;
use rjitlink_memory::{MapError, MemoryMapper, Placement, TargetAddr};
use rjitlink_protocol::{
    Connection, Copy, DebugObjectHeader, ProtocolError, Request, Response, RunProgram, Token,
};
use rjitlink_target::{
    DebugObject, DebugObjectHandle, Executor, Interposition, JitFunction, LoadedModule,
    ModuleHandle, PerfMapEntry, Program, SymbolInfo, SymbolKind, TargetError, TransportStats,
    UnitSymbols, WordTable,
};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

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
    connection: SharedConnection,
    mapper: Arc<dyn MemoryMapper>,
    /// `mapper`, when it shares memory with a spawned executor.
    shared_mapper: Option<Arc<SharedMemoryMapper>>,
    /// Whether `mapper` shares memory with the executor.
    pub shared_memory: bool,
    /// The executor process, when this linker spawned it.
    child: Option<Spawned>,
    /// The executor's process id, from the handshake (0 for a spawned executor: see
    /// [`Remote::pid`]).
    pid: u32,
    /// The program's standard streams travel over the connection (TCP); a spawned executor
    /// shares the linker's.
    stdio_over_connection: bool,
    /// Over TCP: whether the program reads this process's standard input (see
    /// [`Remote::set_forward_stdin`]).
    forward_stdin: bool,
    /// The live units' symbols, to name the frames of a crash report the executor sends.
    symbols: Vec<Arc<UnitSymbols>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("pid", &(self.pid != 0).then_some(self.pid))
            .field("shared_memory", &self.shared_memory)
            .field("spawned", &self.child.is_some())
            .field("stdio_over_connection", &self.stdio_over_connection)
            .field("forward_stdin", &self.forward_stdin)
            .finish_non_exhaustive()
    }
}

/// A failed system call, saying what was being done.
fn system(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TargetError {
    move |source| TargetError::System {
        context: context.into(),
        source,
    }
}

impl Remote {
    /// Spawn `rjitlink executor` (this same binary) connected by a socket pair. It inherits
    /// stdin, stdout and stderr, so the program's I/O is the user's.
    pub fn spawn(memory: MemoryMode) -> Result<Remote, TargetError> {
        let exe = std::env::current_exe().map_err(system("cannot find the rjitlink binary"))?;
        Remote::spawn_program(&exe, memory)
    }

    /// Like `spawn`, with the rjitlink binary to run as the executor named explicitly (for
    /// programs that use rjitlink as a library).
    ///
    /// The executor is started on a thread of its own while this returns (see `spawned`): a
    /// program that cannot be found is an error here, one that fails to start otherwise is the
    /// error of the first request. A name without a `/` is looked for in the directories of
    /// `PATH`, as a command's is.
    pub fn spawn_program(exe: &Path, memory: MemoryMode) -> Result<Remote, TargetError> {
        let exe = crate::spawned::find_program(exe).map_err(system("cannot start the executor"))?;
        let exe = exe.as_path();
        let (ours, theirs) = UnixStream::pair().map_err(system("cannot create a socket pair"))?;
        // The executor gets its end at the same descriptor number (`Spawned` passes it, with
        // posix_spawn, which does not wait for a copy of this process's page tables); here
        // it stays close-on-exec.
        let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
        let mut command = Command::new(exe);
        command
            .args(["executor", "--fd"])
            .arg(theirs_fd.to_string())
            .arg("--parent")
            .arg(std::process::id().to_string());
        // The executor starts with room for the static TLS of modules loaded late, and puts
        // the user's GLIBC_TUNABLES back before anything runs.
        rjitlink_target::static_tls::add_surplus(&mut command);
        // And the signals and standard descriptors the user started the linker with, for the
        // program (the executor's own are not those: `Command` resets SIGPIPE, and the
        // linker's runtime put /dev/null on closed descriptors).
        rjitlink_target::start_state::pass_on(&mut command);
        // The hello is sent now and its answer read by the first request: the executor starts
        // up while the linker reads its inputs. It is this same binary on this machine, so its
        // page size and capabilities are known; the answer is still checked.
        let mut connection = Connection::new(Box::new(ours));
        let hello = connection
            .send_request(&Request::Hello {
                version: announced_version(),
                nonce: b"",
            })
            .map_err(|e| TargetError::Connection(Box::new(e)))?;
        // Only the child may hold its end, so that its death closes the connection: the
        // starting thread closes it once the child has it.
        let child = Spawned::start(command, theirs).map_err(system("cannot start the executor"))?;
        let connection = share(connection, Some(hello), None);
        crate::connection::lock(&connection).own_child = true;
        let shared_mapper = Arc::new(SharedMemoryMapper::new(
            connection.clone(),
            rjitlink_memory::page_size(),
        ));
        let mut remote = Remote {
            mapper: shared_mapper.clone(),
            shared_mapper: Some(shared_mapper),
            shared_memory: true,
            connection,
            child: Some(child),
            pid: 0,
            stdio_over_connection: false,
            forward_stdin: true,
            symbols: Vec::new(),
        };
        if memory == MemoryMode::Copy {
            remote.use_copy_mapper();
        }
        Ok(remote)
    }

    /// Connect to `rjitlink executor --listen` at `address`, both sides proving that they
    /// know `token` (which is never sent). The program's standard streams are this process's,
    /// carried over the connection.
    ///
    /// Shared memory works only when both ends are on one machine (the connection then has
    /// the same address at both ends): it is tried with a one-page reservation, and `Auto`
    /// falls back to copying.
    pub fn connect(
        address: &str,
        token: &Token,
        memory: MemoryMode,
    ) -> Result<Remote, TargetError> {
        let stream = std::net::TcpStream::connect(address).map_err(system(format!(
            "cannot connect to the executor at {address}"
        )))?;
        stream.set_nodelay(true)?;
        let same_machine = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(peer)) => local.ip() == peer.ip(),
            _ => false,
        };
        let mut connection = Connection::new(Box::new(stream));
        let hello = authenticate(&mut connection, token)?;
        let mut remote = Remote::after_handshake(connection, hello, memory != MemoryMode::Copy)?;
        remote.stdio_over_connection = true;
        if remote.shared_memory {
            let probe = if same_machine {
                remote
                    .mapper
                    .reserve(remote.mapper.page_size(), Placement::Anywhere)
                    .and_then(|range| remote.mapper.release(range))
            } else {
                Err(MapError::Executor(
                    "shared memory with the executor is not possible: it is on another machine"
                        .into(),
                ))
            };
            match (probe, memory) {
                (Ok(()), _) => {}
                (Err(_), MemoryMode::Auto) => remote.use_copy_mapper(),
                (Err(e), _) => return Err(TargetError::SharedMemory(e)),
            }
        }
        Ok(remote)
    }

    /// Ask a spawned executor sharing memory for the session's slab (`size` bytes, at
    /// `address` if given) now, as it starts: it makes the slab's memory file while the
    /// linker reads and resolves, and the first link finds it made. The answer is read with
    /// the next request. Nothing is asked of another executor; a link that reserves anything
    /// else (a slab below 2 GiB) gives this one back.
    pub fn reserve_slab_ahead(
        &mut self,
        size: u64,
        address: Option<TargetAddr>,
    ) -> Result<(), TargetError> {
        let Some(mapper) = &self.shared_mapper else {
            return Ok(());
        };
        let size = usize::try_from(size.next_multiple_of(mapper.page_size() as u64))
            .map_err(|_| TargetError::SharedMemory(MapError::Executor("slab too large".into())))?;
        let placement = address.map_or(Placement::Anywhere, Placement::At);
        mapper.reserve_ahead(size, placement)
    }

    fn use_copy_mapper(&mut self) {
        self.mapper = Arc::new(RemoteCopyMapper::new(
            self.connection.clone(),
            self.mapper.page_size(),
        ));
        self.shared_mapper = None;
        self.shared_memory = false;
    }

    /// A TCP executor that has proved itself and said `hello`.
    fn after_handshake(
        connection: Connection,
        hello: ExecutorHello,
        shared_memory: bool,
    ) -> Result<Remote, TargetError> {
        let ExecutorHello {
            page_size,
            pid,
            capabilities,
        } = hello;
        let connection = share(connection, None, Some(pid));
        let can_share = capabilities & rjitlink_protocol::CAPABILITY_SHARED_MEMORY != 0;
        if shared_memory && !can_share {
            return Err(TargetError::NoSharedMemory);
        }
        let mut remote = Remote {
            mapper: Arc::new(SharedMemoryMapper::new(
                connection.clone(),
                page_size as usize,
            )),
            shared_mapper: None,
            shared_memory: true,
            connection,
            child: None,
            pid,
            stdio_over_connection: false,
            forward_stdin: true,
            symbols: Vec::new(),
        };
        if !shared_memory {
            remote.use_copy_mapper();
        }
        Ok(remote)
    }

    /// Over TCP, whether the program run reads this process's standard input (the default,
    /// as `rjitlink run` needs) or finds it closed. A host that keeps reading its own input
    /// after the run turns it off; either way nothing is read once the run has ended. A
    /// spawned executor shares this process's descriptors, and this changes nothing.
    pub fn set_forward_stdin(&mut self, forward: bool) {
        self.forward_stdin = forward;
    }

    /// The executor's process id. None for a spawned executor that could not be started
    /// (which waits, the first time, until the executor has started).
    pub fn pid(&mut self) -> Option<u32> {
        match &mut self.child {
            Some(child) => child.id(),
            None => Some(self.pid),
        }
    }

    /// What crossed the transport so far.
    pub fn stats(&self) -> TransportStats {
        lock(&self.connection).connection.stats()
    }

    /// After the connection closed: how the spawned executor ended.
    fn reap_child(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(Spawned::wait)
    }

    fn call<T>(
        &mut self,
        request: &Request<'_>,
        accept: impl FnOnce(Response<'_>) -> Option<T>,
    ) -> Result<T, TargetError> {
        call(&self.connection, request, accept).map_err(|error| self.explain(error))
    }

    /// Turn a failed call into the clearest error: if the executor died, say how, or if it
    /// never started, why.
    fn explain(&mut self, error: TargetError) -> TargetError {
        if let TargetError::Closed | TargetError::ClosedInHandshake = error {
            if let Some(Err(e)) = self.child.as_mut().map(|child| child.child().map(|_| ())) {
                return system("cannot start the executor")(e);
            }
            if let Some(status) = self.reap_child() {
                use std::os::unix::process::ExitStatusExt;
                if let Some(signal) = status.signal() {
                    return TargetError::Terminated { signal };
                }
                return TargetError::ExitedUnexpectedly { status };
            }
        }
        error
    }
}

impl Remote {
    /// Run the program in the executor this linker spawned, which is this process's child: how
    /// the executor process ends is how the program ended, its exit status or the signal that
    /// killed it. What the executor reports is not: it reports `exit` only, before the exit
    /// handlers of libraries have run, and nothing for `_exit`, exec (the new program's status
    /// is the one that counts) or a signal. Waiting for the process, not for the connection to
    /// close, also returns as soon as the program ends when children it forked still hold the
    /// connection open. Meanwhile signals sent to the linker go to the program
    /// (`signal_relay`).
    fn run_spawned(&mut self, request: &Request<'_>) -> Result<i32, TargetError> {
        let child = match self.child.as_mut().expect("a spawned executor").child() {
            Ok(child) => child.id(),
            Err(e) => return Err(system("cannot start the executor")(e)),
        };
        // Signals sent to rjitlink are the program's from before it can start (it may handle
        // them as soon as it runs); relaying stops before the executor is reaped, while its pid
        // is still its own.
        let relay = Relay::start(child);
        let sent = match ready(&self.connection) {
            Ok(mut locked) => locked
                .connection
                .send_request(request)
                .map_err(|e| match e {
                    ProtocolError::Closed => TargetError::Closed,
                    e => TargetError::Connection(Box::new(e)),
                }),
            Err(error) => Err(error),
        };
        let id = match sent {
            Ok(id) => id,
            Err(error) => {
                drop(relay);
                return Err(self.explain(error));
            }
        };
        let ended = wait_unreaped(child);
        drop(relay);
        let status = ended
            .and_then(|()| {
                let spawned = self.child.as_mut().expect("a spawned executor");
                spawned.child().and_then(|child| child.wait())
            })
            .map_err(system("cannot wait for the executor"))?;
        // The executor answers `Failed` if it could not start the program at all.
        if let Some(message) = self.answer_after_exit(id) {
            return Err(refused(&message));
        }
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ok(code),
            (_, Some(signal)) => Err(TargetError::Terminated { signal }),
            _ => Err(TargetError::Ended { status }),
        }
    }

    /// After the spawned executor exited: its refusal to run request `id`, if that is what it
    /// left on the connection; a crash report it left there is printed. Reads only what is
    /// there (a child of the program may hold the connection open, and would never close it).
    fn answer_after_exit(&mut self, id: u64) -> Option<Vec<u8>> {
        let mut locked = lock(&self.connection);
        let socket = locked.connection.transport().unix_socket()?;
        let mut poll = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(socket),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        if unsafe { libc::poll(&mut poll, 1, 0) } != 1 || poll.revents & libc::POLLIN == 0 {
            return None;
        }
        match locked.connection.receive_response(id) {
            Ok(Response::Failed(message)) => Some(message.to_vec()),
            Ok(Response::Crashed(report)) => {
                self.print_crash(&report);
                None
            }
            _ => None,
        }
    }

    /// Print a crash report from the executor, its linked frames named from the symbols kept.
    fn print_crash(&self, report: &rjitlink_target::CrashReport) {
        use std::io::Write;
        let text = rjitlink_target::symbolize::format_crash_report(report, &self.symbols);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

impl Executor for Remote {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }

    fn transport_stats(&self) -> Option<TransportStats> {
        Some(self.stats())
    }

    fn load_library(&mut self, path: &Path) -> Result<(), TargetError> {
        use std::os::unix::ffi::OsStrExt;
        let path_bytes = path.as_os_str().as_bytes();
        self.call(&Request::LoadLibrary { path: path_bytes }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<(), TargetError> {
        self.call(
            &Request::LoadLibraryImage {
                name: name.as_bytes(),
                image,
            },
            |r| matches!(r, Response::Done).then_some(()),
        )
    }

    fn load_module(
        &mut self,
        name: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError> {
        let request = Request::LoadModule {
            name: name.as_bytes(),
            image,
            table_offset: table.offset,
            table_count: table.count,
        };
        // The executor's errors come as its message (`Refused`), which for a static TLS
        // failure carries the hint of `TargetError::StaticTls`.
        self.call(&request, |r| match r {
            Response::Module { handle, words } if words.len() as u64 == table.count => {
                Some(LoadedModule {
                    handle: ModuleHandle(handle),
                    words,
                })
            }
            _ => None,
        })
    }

    fn unload_module(&mut self, module: ModuleHandle) -> Result<(), TargetError> {
        self.call(&Request::UnloadModule { handle: module.0 }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, TargetError> {
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

    fn symbol_info(
        &mut self,
        addresses: &[TargetAddr],
    ) -> Result<Vec<Option<SymbolInfo>>, TargetError> {
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

    fn interpose(&mut self, copies: &[Interposition]) -> Result<(), TargetError> {
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

    fn add_symbols(&mut self, symbols: Arc<UnitSymbols>) {
        self.symbols.push(symbols);
    }

    fn remove_symbols(&mut self, symbols: &Arc<UnitSymbols>) {
        self.symbols.retain(|kept| !Arc::ptr_eq(kept, symbols));
    }

    fn write_perf_map(&mut self, entries: &[PerfMapEntry<'_>]) -> Result<(), TargetError> {
        let lines = entries
            .iter()
            .map(|entry| rjitlink_protocol::PerfMapLine {
                address: entry.address,
                size: entry.size,
                name: entry.name,
            })
            .collect();
        self.call(&Request::PerfMap { lines }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn register_debug_objects(
        &mut self,
        objects: Vec<DebugObject>,
    ) -> Result<Vec<DebugObjectHandle>, TargetError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        // One request for the whole batch, the images after it: one round trip, whatever
        // their sizes.
        let request = Request::RegisterDebugObjects {
            objects: objects
                .iter()
                .map(|object| DebugObjectHeader {
                    name: object.name.as_bytes(),
                    size: object.image.len() as u64,
                })
                .collect(),
        };
        let images: Vec<&[u8]> = objects.iter().map(|object| &object.image[..]).collect();
        let count = objects.len();
        let result = call_with_payloads(&self.connection, &request, &images, |r| match r {
            Response::DebugObjects { handles } if handles.len() == count => {
                Some(handles.into_iter().map(DebugObjectHandle).collect())
            }
            _ => None,
        });
        result.map_err(|error| self.explain(error))
    }

    fn unregister_debug_objects(
        &mut self,
        handles: &[DebugObjectHandle],
    ) -> Result<(), TargetError> {
        if handles.is_empty() {
            return Ok(());
        }
        let handles = handles.iter().map(|handle| handle.0).collect();
        self.call(&Request::UnregisterDebugObjects { handles }, |r| {
            matches!(r, Response::Done).then_some(())
        })
    }

    fn write_jitdump(
        &mut self,
        directory: Option<&Path>,
        functions: &[JitFunction<'_>],
    ) -> Result<(), TargetError> {
        use std::os::unix::ffi::OsStrExt;
        let functions = functions
            .iter()
            .map(|function| rjitlink_protocol::JitDumpFunction {
                address: function.address,
                size: function.size,
                name: function.name,
                lines: function.lines.clone(),
            })
            .collect();
        let directory = directory.map_or(&b""[..], |d| d.as_os_str().as_bytes());
        self.call(
            &Request::JitDump {
                directory,
                functions,
            },
            |r| matches!(r, Response::Done).then_some(()),
        )
    }

    fn run_initializers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        if functions.is_empty() {
            return Ok(());
        }
        let request = Request::RunInitializers {
            functions: functions.to_vec(),
        };
        self.call(&request, |r| matches!(r, Response::Done).then_some(()))
    }

    fn run_finalizers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        if functions.is_empty() {
            return Ok(());
        }
        let request = Request::RunFinalizers {
            functions: functions.to_vec(),
        };
        self.call(&request, |r| matches!(r, Response::Done).then_some(()))
    }

    fn run(&mut self, program: &Program) -> Result<i32, TargetError> {
        let request = Request::Run(RunProgram {
            entry: program.entry,
            init: program.init.clone(),
            fini: program.fini.clone(),
            args: program.args.iter().map(Vec::as_slice).collect(),
            crash_report: program.crash_report,
        });
        if self.stdio_over_connection {
            return crate::stdio::run(
                &self.connection,
                &request,
                self.forward_stdin,
                &self.symbols,
            );
        }
        if self.child.is_some() {
            return self.run_spawned(&request);
        }
        let shared = self.connection.clone();
        let outcome = {
            let mut locked = match ready(&shared) {
                Ok(locked) => locked,
                Err(error) => return Err(self.explain(error)),
            };
            // A crash report comes before the end of the run: printed, then the end is read.
            let received = locked
                .connection
                .send_request(&request)
                .and_then(|id| loop {
                    match locked.connection.receive_response(id) {
                        Ok(Response::Crashed(report)) => self.print_crash(&report),
                        Ok(Response::Exited(status)) => break Ok(Ok(status)),
                        Ok(Response::Terminated(signal)) => {
                            break Ok(Err(TargetError::Terminated { signal }))
                        }
                        Ok(Response::Failed(message)) => break Ok(Err(refused(message))),
                        Ok(other) => {
                            break Ok(Err(TargetError::UnexpectedResponse {
                                request: Some("run"),
                                response: format!("{other:?}"),
                            }))
                        }
                        Err(error) => break Err(error),
                    }
                });
            received
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
                        (_, Some(signal)) => Err(TargetError::Terminated { signal }),
                        _ => Err(TargetError::Ended { status }),
                    },
                    None => Err(TargetError::ClosedWhileRunning),
                }
            }
            Err(e) => Err(TargetError::Connection(Box::new(e))),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Not run (e.g. --noexec or a link error): ask the executor to stop, without waiting
        // for its answer or its exit. The thread that started it reaps it (see `Spawned`), so
        // that a long-lived program leaves no zombie.
        if let Some(mut spawned) = self.child.take() {
            if let Ok(Ok(None)) = spawned.child().map(|child| child.try_wait()) {
                let _ = lock(&self.connection)
                    .connection
                    .send_request(&Request::Shutdown);
            }
        }
    }
}
