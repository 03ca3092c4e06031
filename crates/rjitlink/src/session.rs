//! [`Session`] and its [`SessionBuilder`]: where linked code runs, how its memory gets there,
//! and the operations on units — link, look up, run their parts, free.

use crate::error::Error;
use crate::function::FunctionPointer;
use crate::unit::Unit;
use crate::PluginSwitches;
use rjitlink_executor::InProcess;
use rjitlink_link::{LinkedUnit, PhaseTimes, SessionOptions, UnitId};
use rjitlink_memory::{MemoryMapper, SlabConfig, SlabStats, TargetAddr, DEFAULT_SLAB_SIZE};
use rjitlink_remote::{MemoryMode, Remote, Token};
use rjitlink_target::{Executor, TransportStats};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the linked code runs.
#[derive(Debug)]
enum Target {
    /// In this process (the default).
    InProcess,
    /// A spawned `rjitlink executor` connected by a socket pair: this program itself (which
    /// then calls [`serve_executor_if_asked`](crate::serve_executor_if_asked) first thing), or
    /// the rjitlink binary at the path.
    Spawn(Option<PathBuf>),
    /// `rjitlink executor --listen` at this address, with this token.
    Tcp { address: String, token: Secret },
    /// An executor of the caller's.
    Custom(CustomExecutor),
}

/// A token, kept out of `Debug` output (and so out of logs).
struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// A caller's executor, which has no `Debug` of its own.
struct CustomExecutor(Box<dyn Executor>);

impl std::fmt::Debug for CustomExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("in_process", &self.0.is_this_process())
            .finish_non_exhaustive()
    }
}

/// A caller's mapper, which has no `Debug` of its own.
struct CustomMapper(Arc<dyn MemoryMapper>);

impl std::fmt::Debug for CustomMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMapper")
            .field("page_size", &self.0.page_size())
            .finish_non_exhaustive()
    }
}

/// How a remote executor's memory is written.
pub use rjitlink_remote::MemoryMode as RemoteMemory;

/// Sets a [`Session`] up. Every option has a default: `Session::builder().build()` links in
/// this process, with a 1 GiB slab, the global thread pool, the default plugins
/// ([`PluginSwitches::default`]), and definitions kept for lookup.
#[derive(Debug)]
pub struct SessionBuilder {
    target: Target,
    memory: MemoryMode,
    mapper: Option<CustomMapper>,
    slab: SlabConfig,
    threads: Option<usize>,
    plugins: PluginSwitches,
    jitdump_directory: Option<PathBuf>,
    host_symbols: bool,
    keep_symbols: bool,
    forward_stdin: bool,
}

impl Default for SessionBuilder {
    fn default() -> SessionBuilder {
        SessionBuilder {
            target: Target::InProcess,
            memory: MemoryMode::Auto,
            mapper: None,
            slab: SlabConfig::default(),
            threads: None,
            plugins: PluginSwitches::default(),
            jitdump_directory: None,
            host_symbols: false,
            keep_symbols: true,
            forward_stdin: false,
        }
    }
}

impl SessionBuilder {
    /// Run linked code in this process (the default).
    pub fn in_process(mut self) -> SessionBuilder {
        self.target = Target::InProcess;
        self
    }

    /// Run linked code in a new process running this very program as an executor, connected
    /// by a socket pair. The program must call
    /// [`serve_executor_if_asked`](crate::serve_executor_if_asked) first thing in `main`.
    pub fn spawn_self(mut self) -> SessionBuilder {
        self.target = Target::Spawn(None);
        self
    }

    /// Run linked code in a new process running `rjitlink executor` (the `rjitlink` binary at
    /// `program`), connected by a socket pair. It inherits this process's standard streams.
    pub fn spawn_executor(mut self, program: impl Into<PathBuf>) -> SessionBuilder {
        self.target = Target::Spawn(Some(program.into()));
        self
    }

    /// Run linked code in an `rjitlink executor --listen` at `address` (`HOST:PORT`), both
    /// sides proving they know `token` (at least 16 bytes; it never crosses the network).
    pub fn tcp(mut self, address: impl Into<String>, token: impl AsRef<[u8]>) -> SessionBuilder {
        self.target = Target::Tcp {
            address: address.into(),
            token: Secret(token.as_ref().to_vec()),
        };
        self
    }

    /// Run linked code wherever `executor` does (an `InProcess` or `Remote` set up by hand,
    /// or an implementation of the caller's).
    pub fn executor(mut self, executor: Box<dyn Executor>) -> SessionBuilder {
        self.target = Target::Custom(CustomExecutor(executor));
        self
    }

    /// How bytes reach a remote executor: shared pages (`Shared`), sent at finalize (`Copy`),
    /// or shared where possible (`Auto`, the default; copied when the plugins ask for a perf
    /// map, which perf reads only for anonymous memory). Not for the in-process executor.
    pub fn remote_memory(mut self, memory: RemoteMemory) -> SessionBuilder {
        self.memory = memory;
        self
    }

    /// Place linked memory with `mapper` instead of the in-process mapper (only with the
    /// in-process executor: the mapper must hand out memory of this process).
    pub fn mapper(mut self, mapper: Arc<dyn MemoryMapper>) -> SessionBuilder {
        self.mapper = Some(CustomMapper(mapper));
        self
    }

    /// Address space reserved for every unit of the session, in bytes (default 1 GiB). A link
    /// that does not fit fails with `MapError::SlabExhausted`.
    pub fn slab_size(mut self, bytes: u64) -> SessionBuilder {
        self.slab.size = bytes;
        self
    }

    /// Reserve the slab exactly at `address` (page-aligned; never replacing a mapping).
    pub fn slab_address(mut self, address: TargetAddr) -> SessionBuilder {
        self.slab.address = Some(address);
        self
    }

    /// Link on a pool of `threads` worker threads of the session's own, rather than the
    /// process's global pool (one thread links tiny units fastest).
    pub fn threads(mut self, threads: usize) -> SessionBuilder {
        self.threads = Some(threads);
        self
    }

    /// Which optional plugins run: exception frames, exit handlers at free, the executable
    /// stack, the debugger's JIT interface, crash reports, perf map, jitdump (see
    /// [`PluginSwitches`] for each, and its defaults).
    pub fn plugins(mut self, plugins: PluginSwitches) -> SessionBuilder {
        self.plugins = plugins;
        self
    }

    /// Where the jitdump goes when [`PluginSwitches::jitdump`] is on: `jit-PID.dump` in
    /// `directory` (of the machine the code runs on), rather than perf's default place.
    pub fn jitdump_directory(mut self, directory: impl Into<PathBuf>) -> SessionBuilder {
        self.jitdump_directory = Some(directory.into());
        self
    }

    /// Let linked code find this process's own exported symbols (and those of the libraries
    /// it started with) by name, after the libraries units load, as `llvm-jitlink` does. In
    /// process only. Off by default: a unit's undefined names then fail to link rather than
    /// bind to whatever the host happens to export.
    pub fn host_symbols(mut self, visible: bool) -> SessionBuilder {
        self.host_symbols = visible;
        self
    }

    /// Keep each unit's definitions for later links and lookups (the default). A one-shot
    /// link that only runs its program may turn this off to save the work.
    pub fn keep_symbols(mut self, keep: bool) -> SessionBuilder {
        self.keep_symbols = keep;
        self
    }

    /// Over TCP: give the program this process's standard input (off by default, so that a
    /// host keeps its own input; the program then reads end of file). `rjitlink run` turns it
    /// on.
    pub fn forward_stdin(mut self, forward: bool) -> SessionBuilder {
        self.forward_stdin = forward;
        self
    }

    /// Start the executor (spawn or connect, for remote ones) and make the session. Nothing
    /// is reserved until the first link.
    pub fn build(self) -> Result<Session, Error> {
        let remote_memory = self.memory != MemoryMode::Auto;
        let in_process = matches!(self.target, Target::InProcess)
            || matches!(&self.target, Target::Custom(e) if e.0.is_this_process());
        if self.mapper.is_some() && !matches!(self.target, Target::InProcess) {
            return Err(Error::InvalidOptions(
                "a mapper is for the in-process executor (remote ones choose theirs with remote_memory)".into(),
            ));
        }
        if remote_memory && in_process {
            return Err(Error::InvalidOptions(
                "remote_memory applies to remote executors".into(),
            ));
        }
        if remote_memory && matches!(self.target, Target::Custom(_)) {
            return Err(Error::InvalidOptions(
                "remote_memory applies to the executors the builder starts (a custom one has its mapper)".into(),
            ));
        }
        if self.host_symbols && !matches!(self.target, Target::InProcess) {
            if in_process {
                return Err(Error::InvalidOptions(
                    "host_symbols applies to the builder's in-process executor (a custom one shows the host's symbols itself: InProcess::expose_host_symbols)".into(),
                ));
            }
            return Err(Error::InProcessOnly {
                operation: "host_symbols",
            });
        }
        let threads = match self.threads {
            None => None,
            Some(0) => return Err(Error::InvalidOptions("threads must be at least 1".into())),
            Some(n) => Some(thread_pool(n)?),
        };
        let memory = match self.memory {
            // perf reads a perf map only for anonymous memory; shared memory is a memory
            // file's mapping.
            MemoryMode::Auto if self.plugins.perf_map => MemoryMode::Copy,
            memory => memory,
        };
        let executor: Box<dyn Executor> = match self.target {
            Target::InProcess => {
                let mut executor = match self.mapper {
                    Some(mapper) => InProcess::with_mapper(mapper.0),
                    None => InProcess::new(),
                };
                if self.host_symbols {
                    executor.expose_host_symbols()?;
                }
                Box::new(executor)
            }
            Target::Spawn(program) => {
                let mut remote = match program {
                    None => Remote::spawn(memory)?,
                    Some(program) => Remote::spawn_program(&program, memory)?,
                };
                // The slab's memory file is made as the executor starts, not in the first
                // link's allocate phase.
                remote.reserve_slab_ahead(self.slab.size, self.slab.address)?;
                Box::new(remote)
            }
            Target::Tcp { address, token } => {
                let token = Token::new(&token.0)?;
                let mut remote = Remote::connect(&address, &token, memory)?;
                remote.set_forward_stdin(self.forward_stdin);
                Box::new(remote)
            }
            Target::Custom(executor) => executor.0,
        };
        let mut inner = rjitlink_link::Session::new(
            executor,
            SessionOptions {
                slab: self.slab,
                keep_symbols: self.keep_symbols,
            },
        );
        inner.set_plugins(self.plugins.link_switches());
        Ok(Session {
            inner,
            in_process,
            plugins: self.plugins,
            jitdump_directory: self.jitdump_directory,
            threads,
            times: PhaseTimes::default(),
            units: HashMap::new(),
        })
    }
}

/// A rayon pool of `threads` threads that block every signal, as the linker's global pool
/// does (see `rjitlink-executor`'s `start_state`): a signal sent to the process must reach
/// the program's threads, not a linker thread.
fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, Error> {
    use rjitlink_target::start_state::{blocked_signals, signal_set};
    let set = |blocked: u64| {
        let set = signal_set(blocked);
        // SAFETY: an initialized set.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    };
    let previous = blocked_signals();
    set(u64::MAX);
    // New threads inherit the mask of the thread that starts them.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rjitlink-{i}"))
        .build();
    set(previous);
    pool.map_err(|e| Error::Threads(e.to_string()))
}

/// What the session knows of a live unit beyond the link layer: how to run its parts.
#[derive(Debug)]
struct UnitState {
    entry: Option<TargetAddr>,
    init: Vec<TargetAddr>,
    fini: Vec<TargetAddr>,
    initialized: bool,
    finalized: bool,
}

/// A JIT session: units linked one after another into one target, each resolving against the
/// units before it, looked up, run and freed. See the [crate documentation](crate) for an
/// example.
///
/// Dropping the session frees its live units (last first) and its memory; function pointers
/// from [`lookup_fn`](Self::lookup_fn) must not be called after that.
pub struct Session {
    inner: rjitlink_link::Session,
    in_process: bool,
    /// The session's own worker threads, if asked for.
    threads: Option<rayon::ThreadPool>,
    /// The phases of the latest link.
    times: PhaseTimes,
    units: HashMap<UnitId, UnitState>,
    /// The plugins of the links to come.
    plugins: PluginSwitches,
    /// Where their jitdump goes (`None`: perf's default place).
    jitdump_directory: Option<PathBuf>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("in_process", &self.in_process)
            .field(
                "threads",
                &self.threads.as_ref().map(|p| p.current_num_threads()),
            )
            .field("plugins", &self.plugins)
            .field("link", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The `environ` of this process, passed to init functions and `main` as `envp`.
fn environment() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: reading the C library's variable; it is always initialized.
    unsafe { environ }
}

type InitFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);
type MainFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
type FiniFn = unsafe extern "C" fn();

impl Session {
    /// A builder for a session; see [`SessionBuilder`].
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// A session with every default: in this process.
    pub fn new() -> Result<Session, Error> {
        Session::builder().build()
    }

    /// Whether linked code runs in this process (so that it can be called directly).
    pub fn is_in_process(&self) -> bool {
        self.in_process
    }

    /// Link `unit` into the target, resolving its undefined names against earlier live units,
    /// absolute definitions, the libraries it names (and, if asked, the host's symbols). On
    /// success the unit is live, its definitions visible; its initializers have not run. On
    /// error nothing of the link is left in the target.
    pub fn link(&mut self, unit: &Unit) -> Result<LinkedUnit, Error> {
        let options = unit.link_options(self.plugins, self.jitdump_directory.as_deref());
        self.times = PhaseTimes::default();
        let (inner, times) = (&mut self.inner, &self.times);
        let linked = match &self.threads {
            Some(pool) => pool.install(|| inner.link(&options, times)),
            None => inner.link(&options, times),
        }?;
        self.units.insert(
            linked.id,
            UnitState {
                entry: linked.entry,
                init: linked.init.clone(),
                fini: linked.fini.clone(),
                initialized: false,
                finalized: false,
            },
        );
        Ok(linked)
    }

    /// Choose the optional plugins of the links to come (units linked already keep what
    /// theirs set up); see [`PluginSwitches`].
    pub fn set_plugins(&mut self, plugins: PluginSwitches) {
        self.plugins = plugins;
        self.inner.set_plugins(plugins.link_switches());
    }

    /// The optional plugins of the links to come.
    pub fn plugins(&self) -> PluginSwitches {
        self.plugins
    }

    /// The wall time of each phase of the latest link.
    pub fn link_times(&self) -> &PhaseTimes {
        &self.times
    }

    /// The address of `name`: the latest live unit's definition, or an absolute one. `None`
    /// if neither defines it.
    pub fn lookup(&self, name: &str) -> Option<TargetAddr> {
        self.inner.lookup(name)
    }

    /// [`lookup`](Self::lookup), or [`Error::SymbolNotFound`].
    fn find(&self, name: &str) -> Result<TargetAddr, Error> {
        self.lookup(name).ok_or_else(|| Error::SymbolNotFound {
            name: name.to_owned(),
        })
    }

    /// Err unless the code runs in this process.
    fn require_in_process(&self, operation: &'static str) -> Result<(), Error> {
        if self.in_process {
            Ok(())
        } else {
            Err(Error::InProcessOnly { operation })
        }
    }

    /// The function `name` as the C function pointer type `F`, to call directly. In process
    /// only.
    ///
    /// ```no_run
    /// # fn demo(session: &rjitlink::Session) -> Result<(), rjitlink::Error> {
    /// // SAFETY: `add` is `int add(int, int)` in the C source, and its unit stays live while
    /// // the pointer is used.
    /// let add: extern "C" fn(i32, i32) -> i32 = unsafe { session.lookup_fn("add")? };
    /// assert_eq!(add(2, 3), 5);
    /// # Ok(()) }
    /// ```
    ///
    /// # Safety
    /// `F` must be the function's C signature (nothing checks it: ELF records none), and the
    /// pointer must not be called once the unit that defines it is freed or the session is
    /// dropped.
    pub unsafe fn lookup_fn<F: FunctionPointer>(&self, name: &str) -> Result<F, Error> {
        self.require_in_process("calling a linked function")?;
        let address = self.find(name)?;
        // SAFETY: the caller promises the signature; the address is a live definition.
        Ok(unsafe { F::from_address(address.get() as *const c_void) })
    }

    /// The data object `name` as a raw pointer (using it is the caller's to make sound). In
    /// process only.
    pub fn lookup_data<T>(&self, name: &str) -> Result<*mut T, Error> {
        self.require_in_process("reading linked data")?;
        Ok(self.find(name)?.get() as *mut T)
    }

    /// Give `name` the address `address` in every later link (and `lookup`): a function, or
    /// a fixed address in the target. A live unit's definition of the name comes first;
    /// defining it again replaces the address. Calls from out of reach go through a stub. For
    /// data, use [`define_absolute_data`](Self::define_absolute_data).
    pub fn define_absolute(&mut self, name: &str, address: TargetAddr) {
        self.inner.define_absolute(name.as_bytes(), address);
    }

    /// Give `name` the address of data at `address`. Code compiled with `-fPIC` reaches it
    /// from anywhere (through the GOT); code compiled otherwise (`cc`'s default `-fPIE`
    /// included) reads extern variables PC-relative, which reaches ±2 GiB only: farther, the
    /// link fails with a relocation overflow that says so.
    pub fn define_absolute_data(&mut self, name: &str, address: TargetAddr) {
        self.inner.define_absolute_data(name.as_bytes(), address);
    }

    /// Give `name` the address of the host's function `function`, so that linked code calls
    /// it. In process only (a remote target cannot reach this process's code).
    pub fn define_host_function<F: FunctionPointer>(
        &mut self,
        name: &str,
        function: F,
    ) -> Result<(), Error> {
        self.require_in_process("a host function")?;
        self.define_absolute(name, TargetAddr(function.address() as u64));
        Ok(())
    }

    /// Give `name` the address of the host's data at `data` (see
    /// [`define_absolute_data`](Self::define_absolute_data) for how code may reach it). In
    /// process only.
    pub fn define_host_data<T>(&mut self, name: &str, data: *const T) -> Result<(), Error> {
        self.require_in_process("host data")?;
        self.define_absolute_data(name, TargetAddr(data as u64));
        Ok(())
    }

    /// Forget an absolute or host definition; false if there was none.
    pub fn undefine(&mut self, name: &str) -> bool {
        self.inner.remove_absolute(name.as_bytes())
    }

    fn unit(&mut self, unit: UnitId) -> Result<&mut UnitState, Error> {
        self.units.get_mut(&unit).ok_or(Error::UnitNotLive(unit))
    }

    /// Run the unit's initializers (`.preinit_array`, `.init_array`, `.ctors`: C++ static
    /// constructors, `__attribute__((constructor))`), in order, where the code runs (in this
    /// process, or in the executor's), with `argc` 0, an empty `argv` and that process's
    /// environment. Once per unit ([`Error::AlreadyRan`] after). The linked code is trusted as
    /// a library `dlopen` loads is.
    ///
    /// Remotely, the executor checks that each function is code it holds (or a loaded
    /// library's function) before calling any, and flushes its stdio streams after them; the
    /// functions run in the executor's process, not in the program a later
    /// [`run_program`](Self::run_program) starts (which then skips them) — over TCP that is
    /// the connection's process, so what they print goes to the executor's own streams, not
    /// this process's. A function that kills the executor ends the session's target
    /// (`Error::Target(Terminated)`).
    pub fn run_initializers(&mut self, unit: UnitId) -> Result<(), Error> {
        let state = self.units.get(&unit).ok_or(Error::UnitNotLive(unit))?;
        if state.initialized {
            return Err(Error::AlreadyRan {
                unit,
                what: "initializers",
            });
        }
        let init = state.init.clone();
        if self.in_process {
            // Called here rather than through the executor: an executor of the caller's that
            // runs code in this process need not implement the calls.
            let argv: [*const c_char; 1] = [std::ptr::null()];
            for function in &init {
                // SAFETY: the linker resolved these to the unit's init functions, live code
                // of this process, called as the C runtime calls them.
                unsafe {
                    std::mem::transmute::<u64, InitFn>(function.get())(
                        0,
                        argv.as_ptr(),
                        environment(),
                    )
                };
            }
        } else {
            self.inner.executor().run_initializers(&init)?;
        }
        self.unit(unit)?.initialized = true;
        Ok(())
    }

    /// Call the unit's entry as `int main(int argc, char **argv, char **envp)` in this
    /// process and return what it returns (its `exit` would end this process, as any
    /// function's). Runs the initializers first if they have not run. In process only; a
    /// crash is this process's, and is not reported (see [`run_program`](Self::run_program)).
    pub fn run_main<A: AsRef<[u8]>>(&mut self, unit: UnitId, args: &[A]) -> Result<i32, Error> {
        self.require_in_process("calling main")?;
        let state = self.unit(unit)?;
        let entry = state.entry.ok_or(Error::NoEntry(unit))?;
        let args = args
            .iter()
            .map(|arg| CString::new(arg.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let argc = c_int::try_from(args.len())
            .map_err(|_| Error::InvalidOptions("too many arguments".into()))?;
        if !state.initialized {
            self.run_initializers(unit)?;
        }
        let mut argv: Vec<*const c_char> = args.iter().map(|arg| arg.as_ptr()).collect();
        argv.push(std::ptr::null());
        // SAFETY: the entry symbol of a live unit, called as C calls main; argv lives
        // across the call.
        let status = unsafe {
            std::mem::transmute::<u64, MainFn>(entry.get())(argc, argv.as_ptr(), environment())
        };
        Ok(status)
    }

    /// Run the unit's finalizers (`.fini_array`, `.dtors`), in order, where the code runs, as
    /// [`run_initializers`](Self::run_initializers) runs initializers (remotely checked and in
    /// the executor's process). Once per unit. Exit handlers the unit registered (C++ static
    /// destructors) run when it is freed.
    pub fn run_finalizers(&mut self, unit: UnitId) -> Result<(), Error> {
        let state = self.units.get(&unit).ok_or(Error::UnitNotLive(unit))?;
        if state.finalized {
            return Err(Error::AlreadyRan {
                unit,
                what: "finalizers",
            });
        }
        let fini = state.fini.clone();
        if self.in_process {
            for function in &fini {
                // SAFETY: the linker resolved these to the unit's fini functions.
                unsafe { std::mem::transmute::<u64, FiniFn>(function.get())() };
            }
        } else {
            self.inner.executor().run_finalizers(&fini)?;
        }
        self.unit(unit)?.finalized = true;
        Ok(())
    }

    /// Run the unit as a program, the way a process runs: initializers, the entry with `args`
    /// (`argv[0]` first) and the environment, then `exit` with its status (finalizers and
    /// exit handlers run); initializers and finalizers that ran already through
    /// [`run_initializers`](Self::run_initializers) and
    /// [`run_finalizers`](Self::run_finalizers) do not run again. Returns the exit status — from a remote executor, which then has
    /// exited (the session can link no more). In process, the program's exit is this
    /// process's: a successful call does not return (use [`run_main`](Self::run_main) to call
    /// it and go on). Err `Target(Terminated)` if a signal killed it.
    ///
    /// With [`PluginSwitches::crash_reports`] on, a crash of the program (a fatal signal it
    /// has no handler for) is reported on stderr, its frames named from the units' symbols,
    /// before the program dies of the signal.
    pub fn run_program<A: AsRef<[u8]>>(&mut self, unit: UnitId, args: &[A]) -> Result<i32, Error> {
        let crash_report = self.plugins.crash_reports;
        let state = self.unit(unit)?;
        let entry = state.entry.ok_or(Error::NoEntry(unit))?;
        let program = rjitlink_target::Program {
            entry,
            init: if state.initialized {
                Vec::new()
            } else {
                state.init.clone()
            },
            // Each runs once, here or at the program's exit.
            fini: if state.finalized {
                Vec::new()
            } else {
                state.fini.clone()
            },
            args: args.iter().map(|arg| arg.as_ref().to_vec()).collect(),
            crash_report,
        };
        Ok(self.inner.executor().run(&program)?)
    }

    /// Free a unit: exit handlers it registered run (C++ static destructors), what its link
    /// set up in the target is undone, its memory goes back and its definitions are
    /// forgotten (uncovering those of earlier units it shadowed). Its finalizers do not run:
    /// call [`run_finalizers`](Self::run_finalizers) first if they should.
    pub fn free(&mut self, unit: UnitId) -> Result<(), Error> {
        self.units.remove(&unit).ok_or(Error::UnitNotLive(unit))?;
        Ok(self.inner.free(unit)?)
    }

    /// How many units are live.
    pub fn live_units(&self) -> usize {
        self.inner.live_units()
    }

    /// How the slab is used so far.
    pub fn memory_stats(&self) -> SlabStats {
        self.inner.memory_stats()
    }

    /// What crossed the connection to a remote executor so far; `None` in process.
    pub fn transport_stats(&self) -> Option<TransportStats> {
        self.inner.transport_stats()
    }
}

/// The default slab size, 1 GiB.
pub const DEFAULT_SLAB: u64 = DEFAULT_SLAB_SIZE;
