//! The executor in the linker's own process: the target operations, called directly.

use crate::interpose::interpose;
use crate::target::{call_finalizers, call_initializers, run_program, symbol_info, Libraries};
use rjitlink_memory::{InProcessMapper, MemoryMapper, TargetAddr};
use rjitlink_target::{
    DebugObject, DebugObjectHandle, Executor, Interposition, LoadedModule, ModuleHandle, Program,
    SymbolInfo, TargetError, WordTable,
};
use rjitlink_target::{JitFunction, PerfMapEntry, UnitSymbols};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The symbols of the units live in this process, for the crash reporter's helper thread.
static UNITS: Mutex<Vec<Arc<UnitSymbols>>> = Mutex::new(Vec::new());

/// Print a crash report on stderr, its linked frames named from `UNITS`; nothing if the
/// program started with stderr closed (descriptor 2 may then be one of its files).
fn print_crash(report: &rjitlink_target::CrashReport) {
    use std::io::Write;
    if !crate::crash::stderr_open() {
        return;
    }
    let units = UNITS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let text = rjitlink_target::symbolize::format_crash_report(report, &units);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs linked code in the current process.
pub struct InProcess {
    /// The in-process mapper, or the caller's own (`with_mapper`).
    mapper: Arc<dyn MemoryMapper>,
    libraries: Libraries,
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcess {
    /// An executor for this process. Starts the linker's worker threads if they are not
    /// running yet, so that they never take the program's signals (see `start_state`).
    pub fn new() -> Self {
        Self::with_mapper(Arc::new(InProcessMapper::new()))
    }

    /// An executor for this process whose linked memory comes from `mapper` (one that
    /// counts, logs, or places memory its own way). The mapper must hand out memory of this
    /// process: target addresses are where the code runs here.
    pub fn with_mapper(mapper: Arc<dyn MemoryMapper>) -> Self {
        crate::start_state::keep_linker_threads_out();
        InProcess {
            mapper,
            libraries: Libraries::default(),
        }
    }

    /// Make this process's own exported symbols (and those of the libraries it started with)
    /// visible to links, after the libraries they load, as `llvm-jitlink` does by default:
    /// linked code can then call the host's functions by name. Only symbols in the host's
    /// dynamic symbol table are found (a program linked with `-rdynamic`, or a function a
    /// shared library exports). Err with the loader's message if it refuses.
    pub fn expose_host_symbols(&mut self) -> Result<(), TargetError> {
        self.libraries.add_host()
    }
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl Executor for InProcess {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }

    fn load_library(&mut self, path: &Path) -> Result<(), TargetError> {
        self.libraries.load(path)
    }

    fn load_libraries(&mut self, paths: &[&Path]) -> Result<(), TargetError> {
        self.libraries.load_all(paths)
    }

    fn is_this_process(&self) -> bool {
        true
    }

    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<(), TargetError> {
        self.libraries.load_image(name, image)
    }

    fn load_module(
        &mut self,
        name: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError> {
        self.libraries.load_module(name, image, table)
    }

    fn unload_module(&mut self, module: ModuleHandle) -> Result<(), TargetError> {
        self.libraries.unload_module(module)
    }

    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, TargetError> {
        Ok(self.libraries.lookup(names.iter().copied()))
    }

    fn symbol_info(
        &mut self,
        addresses: &[TargetAddr],
    ) -> Result<Vec<Option<SymbolInfo>>, TargetError> {
        Ok(addresses
            .iter()
            .map(|&address| symbol_info(address))
            .collect())
    }

    fn interpose(&mut self, copies: &[Interposition]) -> Result<(), TargetError> {
        interpose(copies)
    }

    fn add_symbols(&mut self, symbols: Arc<UnitSymbols>) {
        UNITS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(symbols);
    }

    fn remove_symbols(&mut self, symbols: &Arc<UnitSymbols>) {
        UNITS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|kept| !Arc::ptr_eq(kept, symbols));
    }

    fn write_perf_map(&mut self, entries: &[PerfMapEntry<'_>]) -> Result<(), TargetError> {
        crate::perf::append_perf_map(entries.iter().map(|e| (e.address, e.size, e.name)))
    }

    fn write_jitdump(
        &mut self,
        directory: Option<&Path>,
        functions: &[JitFunction<'_>],
    ) -> Result<(), TargetError> {
        crate::perf::append_jitdump(directory, functions, |address, size| {
            // SAFETY: the linker hands over functions of live units of this process: code it
            // finalized, readable.
            unsafe { std::slice::from_raw_parts(address.get() as *const u8, size as usize) }
        })
    }

    fn register_debug_objects(
        &mut self,
        objects: Vec<DebugObject>,
    ) -> Result<Vec<DebugObjectHandle>, TargetError> {
        crate::debugger::register(objects)
    }

    fn unregister_debug_objects(
        &mut self,
        handles: &[DebugObjectHandle],
    ) -> Result<(), TargetError> {
        crate::debugger::unregister(handles).map(|_| ())
    }

    fn run_initializers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        // SAFETY: the linker hands over the init functions of a unit it finalized in this
        // process; the code is trusted as a library dlopen loads is.
        unsafe { call_initializers(functions) };
        Ok(())
    }

    fn run_finalizers(&mut self, functions: &[TargetAddr]) -> Result<(), TargetError> {
        // SAFETY: as above, its fini functions.
        unsafe { call_finalizers(functions) };
        Ok(())
    }

    fn run(&mut self, program: &Program) -> Result<i32, TargetError> {
        match run_program(program, None, Box::new(print_crash))? {}
    }
}
