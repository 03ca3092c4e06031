//! rjitlink as a library: a just-in-time linker for x86-64 ELF. Link relocatable objects and
//! archives (from files or from memory) into a running process — this one, a spawned
//! executor, or one across TCP — then look their symbols up, call them, run their
//! initializers, `main` and finalizers, and free them again, one unit after another.
//!
//! ```
//! use rjitlink::{Session, Unit};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A C compiler's output, compiled at run time here (any ELF x86-64 object will do).
//! let dir = std::env::temp_dir().join(format!("rjitlink-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("add.c"), "int add(int a, int b) { return a + b; }\n")?;
//! let status = std::process::Command::new("cc")
//!     .args(["-c", "-O2", "add.c", "-o", "add.o"])
//!     .current_dir(&dir)
//!     .status()?;
//! assert!(status.success());
//! let object = std::fs::read(dir.join("add.o"))?;
//! std::fs::remove_dir_all(&dir)?;
//!
//! // Link it from memory into this process, and call it.
//! let mut session = Session::new()?;
//! let unit = session.link(&Unit::new().bytes("add.o", object))?;
//! // SAFETY: `add` is `int add(int, int)`, and its unit is live while it is called.
//! let add: extern "C" fn(i32, i32) -> i32 = unsafe { session.lookup_fn("add")? };
//! assert_eq!(add(2, 40), 42);
//! session.free(unit.id)?;
//! assert!(session.lookup("add").is_none());
//! # Ok(())
//! # }
//! ```
//!
//! The pieces:
//! - [`Session`], made by [`Session::builder`]: where code runs (in process, a spawned
//!   executor, TCP), how memory gets there (a [`MemoryMapper`] of your own in process,
//!   shared or copied remotely), the slab's size, the link's threads, the optional plugins
//!   ([`PluginSwitches`]: exception frames, exit handlers, executable stacks, gdb's JIT
//!   interface, crash reports, perf map, jitdump), the host's symbols.
//! - [`Unit`]: one link's inputs (paths, bytes, `-l`/`-L` libraries) and entry.
//! - Names: [`Session::define_absolute`], [`Session::define_host_function`], and
//!   [`Session::lookup`] / [`Session::lookup_fn`] for what units define.
//! - Running: [`Session::run_initializers`] and [`Session::run_finalizers`] wherever the
//!   code runs, [`Session::run_main`] in process; [`Session::run_program`] anywhere.
//! - [`Error`]: one enum to match on, holding the typed errors of the layers below
//!   ([`LinkError`] with file, section, offset and symbol; [`TargetError`]; [`MapError`]),
//!   with questions a caller asks of it ([`Error::terminated_by`],
//!   [`Error::undefined_symbols`], [`Error::is_static_tls_exhausted`], ...).
//! - [`process`]: starting this process again with room for thread-local storage that a
//!   linked unit brings (glibc sizes it once, at start).
//! - [`serve`]: this process as an executor, over TCP or for the linker that spawned it.
//!
//! A program that runs its units in a spawned copy of itself ([`SessionBuilder::spawn_self`])
//! calls [`serve_executor_if_asked`] first thing in `main`.
//!
//! The C API (`include/rjitlink.h`, `librjitlink.so`) is this crate behind opaque handles;
//! see the `rjitlink-capi` crate.

#![deny(missing_docs, missing_debug_implementations)]

mod error;
mod function;
mod plugins;
pub mod process;
pub mod serve;
mod session;
mod unit;

pub use error::Error;
pub use function::FunctionPointer;
pub use plugins::PluginSwitches;
pub use session::{RemoteMemory, Session, SessionBuilder, DEFAULT_SLAB};
pub use unit::Unit;

pub use rjitlink_link::{
    escape_bytes, EntryProblem, LinkError, LinkedUnit, PhaseTimes, RelocationProblem,
    UndefinedSymbol, UnitId,
};
pub use rjitlink_memory::{MapError, MemoryMapper, SlabStats, TargetAddr, TargetRange};
pub use rjitlink_remote::{Token, TokenError};
pub use rjitlink_target::{signal_name, Executor, TargetError, TransportStats};

/// The layers below, for what the facade does not wrap (a `MemoryMapper`'s types, an
/// `Executor` of your own).
pub mod lower {
    pub use rjitlink_executor as executor;
    pub use rjitlink_link as link;
    pub use rjitlink_memory as memory;
    pub use rjitlink_remote as remote;
    pub use rjitlink_target as target;
}

/// If this process was started as the executor of a session made with
/// [`SessionBuilder::spawn_self`] (its arguments are `executor --fd N --parent PID`), serve
/// that session and exit; otherwise return at once, having done nothing.
///
/// Call it first thing in `main`, before any other thread starts: the executor puts back the
/// signal state and environment its program must see.
pub fn serve_executor_if_asked() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let [command, fd_flag, fd, parent_flag, parent] = args.as_slice() else {
        return;
    };
    if command != "executor" || fd_flag != "--fd" || parent_flag != "--parent" {
        return;
    }
    let (Some(fd), Some(parent)) = (
        fd.to_str().and_then(|fd| fd.parse::<i32>().ok()),
        parent.to_str().and_then(|pid| pid.parse::<u32>().ok()),
    ) else {
        return;
    };
    // As `rjitlink executor` does: the user's GLIBC_TUNABLES and start state back first.
    process::adopt_restart_state();
    // The linker reports what went wrong on its side of the connection.
    let status = match serve::serve_spawned(fd, parent) {
        Ok(()) => 0,
        Err(_) => 125,
    };
    std::process::exit(status);
}
