//! The executor in the linker's own process: the target operations, called directly.

use crate::interpose::interpose;
use crate::target::{run_program, symbol_info, Libraries};
use rjitlink_memory::{InProcessMapper, MemoryMapper, TargetAddr};
use rjitlink_target::{
    DebugObject, DebugObjectHandle, Executor, Interposition, LoadedModule, ModuleHandle, Program,
    SymbolInfo, TargetError, WordTable,
};
use std::path::Path;
use std::sync::Arc;

/// Runs linked code in the current process.
pub struct InProcess {
    mapper: Arc<InProcessMapper>,
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
        crate::start_state::keep_linker_threads_out();
        InProcess {
            mapper: Arc::new(InProcessMapper::new()),
            libraries: Libraries::default(),
        }
    }
}

impl Executor for InProcess {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }

    fn load_library(&mut self, path: &Path) -> Result<(), TargetError> {
        self.libraries.load(path)
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

    fn run(&mut self, program: &Program) -> Result<i32, TargetError> {
        match run_program(program, None)? {}
    }
}
