//! The `Executor` trait: the linker's view of a target process.

use crate::debug_object::{DebugObject, DebugObjectHandle};
use crate::error::TargetError;
use crate::module::{LoadedModule, ModuleHandle, WordTable};
use crate::program::Program;
use crate::symbol::{Interposition, SymbolInfo};
use crate::symbolize::UnitSymbols;
use rjitlink_memory::{MemoryMapper, TargetAddr};
use std::path::Path;
use std::sync::Arc;

/// The linker-side view of a target process: where libraries are loaded, external symbols are
/// looked up and the linked program runs. Implemented by the in-process executor and by the
/// client of a remote one.
///
/// Errors common to every method of a remote executor: when the target cannot be asked at all,
/// the error says why — [`TargetError::Terminated`] (killed by a signal),
/// [`TargetError::ExitedUnexpectedly`], [`TargetError::Closed`], [`TargetError::Connection`],
/// or a handshake failure ([`TargetError::VersionMismatch`], [`TargetError::Refused`], …).
/// The methods below list only the errors of their own.
pub trait Executor: Send {
    /// The mapper through which linked memory reaches the target. Never fails; every call
    /// returns the same mapper.
    fn memory(&self) -> Arc<dyn MemoryMapper>;

    /// Load a shared library into the target so that its symbols resolve externals and are
    /// visible to libraries the program loads later (dlopen with RTLD_NOW | RTLD_GLOBAL).
    ///
    /// Ok once the library and its dependencies are loaded and their constructors have run.
    /// Loading a library again is Ok and changes nothing, so a session may link several units
    /// against one library. Err names the library and the loader's reason:
    /// [`TargetError::LoadLibrary`] in process ([`TargetError::StaticTls`] when the library
    /// needs static TLS the loader has no room for), [`TargetError::Refused`] with the same
    /// text from a remote executor.
    fn load_library(&mut self, path: &Path) -> Result<(), TargetError>;

    /// `load_library` for each of `paths`, in order, stopping at the first that fails (its
    /// error is returned). A target may do the work common to the loads once: the in-process
    /// executor notes the signal state once around them all rather than around each.
    fn load_libraries(&mut self, paths: &[&Path]) -> Result<(), TargetError> {
        paths.iter().try_for_each(|path| self.load_library(path))
    }

    /// Load a shared object given as bytes (it never touches the disk), like `load_library`
    /// but not searched by `lookup`: the program's exported symbols. `name` is for messages.
    ///
    /// Ok once loaded; Err with the loader's reason as for `load_library`
    /// ([`TargetError::LoadLibraryImage`] in process).
    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<(), TargetError>;

    /// Load a generated shared object privately (RTLD_NOW | RTLD_LOCAL): its dynamic
    /// relocations are applied by the target's loader, and a PT_TLS segment gets its
    /// thread-local block in every thread. Then read back the `table` words of the loaded image
    /// (the object maps its bytes at the same offsets from its base). `name` is for messages.
    ///
    /// Err [`TargetError::StaticTls`] when the loader has no static TLS left for it;
    /// [`TargetError::LoadLibraryImage`] for other loader errors (a remote executor sends the
    /// same text as [`TargetError::Refused`]); a table outside the image is refused.
    fn load_module(
        &mut self,
        name: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError>;

    /// Unload a module from `load_module` (dlclose). Err if the handle is not one this target
    /// gave and has not unloaded yet.
    fn unload_module(&mut self, module: ModuleHandle) -> Result<(), TargetError>;

    /// Look up all `names` at once in the libraries loaded so far, in load order.
    ///
    /// Returns one entry per name, in the order of `names`, `None` where no library defines
    /// it: an undefined name is not an error. Err only if the target could not be asked (a
    /// remote executor that went away).
    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, TargetError>;

    /// Kind and size of the library symbols at `addresses` (from `lookup`), one entry each, in
    /// order; `None` where the loader has no symbol starting exactly there. Err only if the
    /// target could not be asked.
    fn symbol_info(
        &mut self,
        addresses: &[TargetAddr],
    ) -> Result<Vec<Option<SymbolInfo>>, TargetError>;

    /// Fill each copy from its original and make every loaded library that refers to the
    /// original through its GOT refer to the copy instead, as the dynamic loader does for an
    /// executable's copy relocations. Call after the image is finalized, before it runs.
    ///
    /// The operation is symmetric: with `original` and `copy` swapped it undoes itself — the
    /// data's current value moves back and the libraries' references with it — which is how a
    /// freed unit hands library data back. An end may also be an earlier unit's copy.
    ///
    /// Ok at once, without asking the target, when `copies` is empty. Err
    /// ([`TargetError::Interpose`] in process) names the symbol whose reference could not be
    /// redirected; a remote executor refuses an end that is neither memory it reserved nor a
    /// library's data object of at least `size` bytes.
    fn interpose(&mut self, copies: &[Interposition]) -> Result<(), TargetError>;

    /// Publish `objects` to debuggers through gdb's JIT interface (`__jit_debug_descriptor`,
    /// `__jit_debug_register_code`): a debugger attached to the target now, or later, reads
    /// each image from the target's memory as an object file of its own. The target keeps the
    /// images until they are unregistered. Call once the code they describe is live and
    /// before it runs; all of a unit's objects at once (one round trip remotely).
    ///
    /// Returns one handle per object, in order. Ok at once, without asking the target, when
    /// `objects` is empty. Err ([`TargetError::Refused`]) if an image is not an ELF file
    /// ([`check_debug_image`](crate::check_debug_image)): then none is registered. A remote
    /// executor also refuses more bytes than it holds for debuggers, and ends the connection.
    fn register_debug_objects(
        &mut self,
        objects: Vec<DebugObject>,
    ) -> Result<Vec<DebugObjectHandle>, TargetError>;

    /// Withdraw debug objects from the JIT interface and free their images: call before the
    /// code they describe is freed. Ok at once when `handles` is empty. Err
    /// ([`TargetError::Refused`]) if a handle is not one this target gave and has not
    /// unregistered yet, or appears twice: then none is unregistered.
    fn unregister_debug_objects(
        &mut self,
        handles: &[DebugObjectHandle],
    ) -> Result<(), TargetError>;

    /// Run a linked program: preinit and init functions, the entry with (argc, argv, envp), then
    /// exit with its return value, fini functions and atexit handlers running as in a normal
    /// process exit.
    ///
    /// Returns the exit status; in process the program's exit is this process's exit, so a
    /// successful call does not return. Err [`TargetError::Terminated`] when the program's
    /// process was killed by a signal (a crash, or `kill`), [`TargetError::AlreadyRan`] when a
    /// program already ran in that process, [`TargetError::Nul`] for an argument with a NUL
    /// byte. A target runs at most one program: after `run` returns, a remote target has
    /// exited and further requests fail.
    fn run(&mut self, program: &Program) -> Result<i32, TargetError>;

    /// Call a live unit's initializers (`.preinit_array`, `.init_array`, `.ctors`, in the
    /// order given) in the target, as the C runtime calls them: `(argc, argv, envp)` with argc
    /// 0, an empty argv and the target process's environment. For a unit whose code is used
    /// without running a program ([`run`](Self::run) calls a program's own initializers).
    ///
    /// Ok once every function has returned. Err ([`TargetError::Refused`]) before anything is
    /// called if an address is neither code the target holds nor a function of a loaded
    /// library (a remote executor checks; in process the linker's addresses are trusted).
    /// What the functions do is the unit's: one that kills the target ends a remote executor
    /// ([`TargetError::Terminated`]). The default refuses: the executor cannot call code.
    fn run_initializers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        refuse_calls(functions)
    }

    /// Call a live unit's finalizers (`.fini_array`, `.dtors`, in the order given) in the
    /// target, with no arguments; Ok and Err as for
    /// [`run_initializers`](Self::run_initializers). Exit handlers the unit registered are not
    /// finalizers: they run when the unit is freed.
    fn run_finalizers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        refuse_calls(functions)
    }

    /// Keep a live unit's symbols and line rows to name its frames in crash reports: in
    /// process for the crash reporter, remotely on the linker's side, which symbolizes the
    /// frames the executor sends. Never fails; the default keeps nothing.
    fn add_symbols(&mut self, _symbols: Arc<UnitSymbols>) {}

    /// Forget symbols given to `add_symbols` (the same `Arc`), as their unit is freed.
    fn remove_symbols(&mut self, _symbols: &Arc<UnitSymbols>) {}

    /// Append one line per function, `START SIZE name` in hex, to `/tmp/perf-PID.map` of the
    /// process that runs the code, which perf reads to name JIT code. The first call of a
    /// process starts the file afresh (a file of an earlier process with the same pid is
    /// stale). Err if the file cannot be written; the default writes nothing.
    fn write_perf_map(&mut self, _entries: &[PerfMapEntry<'_>]) -> Result<(), TargetError> {
        Ok(())
    }

    /// Append the functions to the jitdump of the process that runs the code (perf's format
    /// for `perf inject --jit`: a code-load record with the code's bytes as they are in
    /// memory, preceded by a debug-info record where `lines` has rows), `jit-PID.dump` in
    /// `directory`, or by default in `$JITDUMPDIR/.debug/jit/rjitlink-PID/` (`$HOME` when
    /// `JITDUMPDIR` is unset), as perf's own JIT agents place it. The first call of a process
    /// creates the file and maps it executable, which is how `perf record` learns of it. Err
    /// if the file cannot be written, or (remotely) a function does not lie in live code of
    /// the executor; the default writes nothing.
    fn write_jitdump(
        &mut self,
        _directory: Option<&Path>,
        _functions: &[JitFunction<'_>],
    ) -> Result<(), TargetError> {
        Ok(())
    }

    /// Whether the target is this process. Libraries are then loaded after the parallel
    /// phases rather than during them: dlopen maps memory, which stalls the page faults of
    /// the threads parsing inputs (measured: slower and noisier links).
    fn is_this_process(&self) -> bool {
        false
    }

    /// What crossed the connection to the target so far; `None` in process.
    fn transport_stats(&self) -> Option<TransportStats> {
        None
    }
}

/// What an executor that cannot call code answers `run_initializers` and `run_finalizers`:
/// Ok for nothing to call, else a refusal.
fn refuse_calls(functions: &[TargetAddr]) -> Result<(), TargetError> {
    if functions.is_empty() {
        return Ok(());
    }
    Err(TargetError::Refused(
        "this executor cannot call a unit's initializers or finalizers".into(),
    ))
}

/// One function for the perf map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfMapEntry<'a> {
    /// Its first byte.
    pub address: TargetAddr,
    /// Its size in bytes.
    pub size: u64,
    /// Its symbol name.
    pub name: &'a [u8],
}

/// One function for the jitdump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitFunction<'a> {
    /// Its first byte, in live code of the target.
    pub address: TargetAddr,
    /// Its size in bytes: the code-load record copies that many bytes.
    pub size: u64,
    /// Its symbol name.
    pub name: &'a [u8],
    /// Its line rows, by address: where each row starts, its line, its file.
    pub lines: Vec<(TargetAddr, u32, &'a [u8])>,
}

/// What crossed the transport to a remote target, counted by the linker's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Bytes sent to the target.
    pub bytes_sent: u64,
    /// Bytes received from it.
    pub bytes_received: u64,
    /// Requests sent and answered.
    pub round_trips: u64,
}
