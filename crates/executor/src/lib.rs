//! The target side of rjitlink: the process that owns the memory linked code runs in, resolves
//! external symbols in its own address space and runs the program.
//!
//! `Executor` is the linker's view of it. `InProcess` is the executor living in the linker's own
//! process; a remote executor reached over a socket implements the same trait.

mod inprocess;
mod interpose;
mod program;
mod remote;
mod server;
mod shared;
mod target;

pub use inprocess::InProcess;
pub use program::Program;
pub use remote::{signal_name, ExecutorTerminated, MemoryMode, Remote, RemoteCopyMapper};
pub use server::{generate_token, listen, serve, serve_inherited_socket};
pub use shared::SharedMemoryMapper;

use anyhow::Result;
use rjitlink_memory::{MemoryMapper, TargetAddr};
use std::path::Path;
use std::sync::Arc;

/// What kind of object an external symbol names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    Function,
    Data,
    Other,
}

/// What the target's loader knows about a symbol of a loaded library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolInfo {
    pub kind: SymbolKind,
    pub size: u64,
}

/// A copy relocation: library data the linked code reads directly (PC32 or 32-bit absolute)
/// gets a copy in the linked image, and the libraries are redirected to use that copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interposition {
    pub name: Vec<u8>,
    /// Where the library defines it.
    pub original: TargetAddr,
    /// Where the linked image holds the copy.
    pub copy: TargetAddr,
    pub size: u64,
}

/// The linker-side view of a target process.
pub trait Executor: Send {
    /// The mapper through which linked memory reaches the target.
    fn memory(&self) -> Arc<dyn MemoryMapper>;

    /// Load a shared library into the target so that its symbols resolve externals and are
    /// visible to libraries the program loads later (dlopen with RTLD_NOW | RTLD_GLOBAL).
    /// Err names the library and the loader's reason.
    fn load_library(&mut self, path: &Path) -> Result<()>;

    /// Load a shared object given as bytes (it never touches the disk), like `load_library`
    /// but not searched by `lookup`: the program's exported symbols.
    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<()>;

    /// Look up all `names` at once in the libraries loaded so far, in load order.
    /// Returns one entry per name, `None` where no library defines it. Err only if the target
    /// could not be asked (a remote executor that went away).
    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>>;

    /// Kind and size of the library symbols at `addresses` (from `lookup`), one entry each;
    /// `None` where the loader has no symbol there.
    fn symbol_info(&mut self, addresses: &[TargetAddr]) -> Result<Vec<Option<SymbolInfo>>>;

    /// Fill each copy from its original and make every loaded library that refers to the
    /// original through its GOT refer to the copy instead, as the dynamic loader does for an
    /// executable's copy relocations. Call after the image is finalized, before it runs.
    fn interpose(&mut self, copies: &[Interposition]) -> Result<()>;

    /// Run a linked program: preinit and init functions, the entry with (argc, argv, envp), then
    /// exit with its return value, fini functions and atexit handlers running as in a normal
    /// process exit. Returns the exit status; in process the program's exit is this process's
    /// exit, so a successful call does not return.
    fn run(&mut self, program: &Program) -> Result<i32>;

    /// Whether the target is this process. Libraries are then loaded after the parallel
    /// phases rather than during them: dlopen maps memory, which stalls the page faults of
    /// the threads parsing inputs (measured: slower and noisier links).
    fn is_this_process(&self) -> bool {
        false
    }

    /// What crossed the connection to the target so far; `None` in process.
    fn transport_stats(&self) -> Option<rjitlink_protocol::TransportStats> {
        None
    }
}
