//! The target interface of rjitlink: what the linker needs from the process linked code runs
//! in, and nothing more.
//!
//! The linker links against the [`Executor`] trait and the types it speaks: a [`Program`] to
//! run, [`SymbolInfo`] about library symbols, [`Interposition`]s (copy relocations),
//! [`DebugObject`]s for a debugger and [`TransportStats`]. Failures are [`TargetError`]s.
//! Implementations live elsewhere: the in-process executor and the executor server in
//! `rjitlink-executor`, the client of a remote executor in `rjitlink-remote`. Memory reaches
//! the target through the `MemoryMapper` of `rjitlink-memory`, which [`Executor::memory`]
//! hands out. [`static_tls`] starts processes that run linked code with room for thread-local
//! storage loaded late, and [`start_state`] with the signal state and standard descriptors the
//! user started rjitlink with.

#![deny(missing_docs)]

mod debug_object;
mod error;
mod executor;
mod module;
mod program;
pub mod start_state;
pub mod static_tls;
mod symbol;
pub mod symbolize;

pub use debug_object::{check_debug_image, DebugObject, DebugObjectHandle, MIN_DEBUG_OBJECT_SIZE};
pub use error::{full_message, signal_name, TargetError};
pub use executor::{Executor, JitFunction, PerfMapEntry, TransportStats};
pub use module::{LoadedModule, ModuleHandle, WordTable};
pub use program::Program;
pub use symbol::{Interposition, SymbolInfo, SymbolKind};
pub use symbolize::{CrashFrame, CrashReport, LibraryFrame, UnitSymbols};
