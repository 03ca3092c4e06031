//! The target side of rjitlink: the process that owns the memory linked code runs in, resolves
//! external symbols in its own address space and runs the program.
//!
//! `Executor` is the linker's view of it. `InProcess` is the executor living in the linker's own
//! process; a remote executor reached over a socket implements the same trait.

mod inprocess;
mod program;

pub use inprocess::InProcess;
pub use program::Program;

use anyhow::Result;
use rjitlink_memory::{MemoryMapper, TargetAddr};
use std::path::Path;

/// The linker-side view of a target process.
pub trait Executor {
    /// The mapper through which linked memory reaches the target.
    fn memory(&self) -> &dyn MemoryMapper;

    /// Load a shared library into the target so that its symbols resolve externals and are
    /// visible to libraries the program loads later (dlopen with RTLD_NOW | RTLD_GLOBAL).
    /// Err names the library and the loader's reason.
    fn load_library(&mut self, path: &Path) -> Result<()>;

    /// Look up all `names` at once in the libraries loaded so far, in load order.
    /// Returns one entry per name, `None` where no library defines it. Err only if the target
    /// could not be asked (a remote executor that went away).
    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>>;

    /// Run a linked program: preinit and init functions, the entry with (argc, argv, envp), then
    /// exit with its return value, fini functions and atexit handlers running as in a normal
    /// process exit. Returns the exit status; in process the program's exit is this process's
    /// exit, so a successful call does not return.
    fn run(&mut self, program: &Program) -> Result<i32>;
}
