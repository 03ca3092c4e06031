//! What a link and a session are asked to do.

use crate::input::{InputArg, SearchPath};
use rjitlink_memory::SlabConfig;

/// What to link. `LinkOptions::default()` links nothing yet: push inputs, set `entry` if the
/// unit is a program.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// The inputs, in command-line order (archives are searched to a fixpoint, so their order
    /// does not matter for resolution).
    pub inputs: Vec<InputArg>,
    /// Where `-l` libraries are searched.
    pub search: SearchPath,
    /// The symbol the program starts at; it is then required. `None` links a unit without one.
    pub entry: Option<String>,
    /// Add what cc links by default: libc and libgcc.
    pub default_libraries: bool,
    /// Make the unit's global definitions visible to libraries loaded later (`-rdynamic`).
    pub export_dynamic: bool,
    /// Keep the unit's function symbols and line tables while it lives, so that a crash of its
    /// code is reported with names and lines (`Executor::add_symbols`).
    pub symbolize: bool,
    /// Append the unit's functions to `/tmp/perf-PID.map` of the process that runs them, so
    /// that `perf report` names them.
    pub perf_map: bool,
    /// Append the unit's functions, code and line rows to the jitdump of the process that
    /// runs them (for `perf inject --jit`).
    pub jitdump: bool,
    /// Where the jitdump goes; `None`: perf's default place (see `Executor::write_jitdump`).
    pub jitdump_directory: Option<std::path::PathBuf>,
    /// Register the inputs' debug information with the target's JIT interface, so that gdb
    /// sees the unit's functions, lines and variables (inputs without DWARF cost nothing).
    pub debugger_support: bool,
}

impl Default for LinkOptions {
    /// No inputs, the system's search path, no entry, cc's default libraries; no symbols kept
    /// for crash reports, no perf map, no jitdump; debug information registered for gdb.
    fn default() -> LinkOptions {
        LinkOptions {
            inputs: Vec::new(),
            search: SearchPath::default(),
            entry: None,
            default_libraries: true,
            export_dynamic: false,
            symbolize: false,
            perf_map: false,
            jitdump: false,
            jitdump_directory: None,
            debugger_support: true,
        }
    }
}

/// The plugins a session's links may do without (all on by default; see
/// [`Session::set_plugins`](crate::Session::set_plugins)). Those it cannot do without — IFUNC
/// resolvers, copy relocations, the TLS module — always run: a unit that needs them would not
/// work without them, and one that does not costs them nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginSwitches {
    /// Register each unit's `.eh_frame` with the target's unwinder, so that C++ exceptions
    /// and backtraces cross its frames. Off: an exception thrown through linked code ends the
    /// program (`std::terminate`).
    pub eh_frames: bool,
    /// Run a freed unit's exit handlers (`__cxa_finalize` on its `__dso_handle`, as `dlclose`
    /// does). Off: handlers it registered stay with the process and run at exit, into freed
    /// memory if the unit is gone by then.
    pub static_destructors: bool,
    /// Make the target's stacks executable when an input asks for it (as ld does, with its
    /// warning). Off: such an input links, and its stack trampolines fault.
    pub executable_stack: bool,
}

impl Default for PluginSwitches {
    fn default() -> PluginSwitches {
        PluginSwitches {
            eh_frames: true,
            static_destructors: true,
            executable_stack: true,
        }
    }
}

impl PluginSwitches {
    /// Every optional plugin off.
    pub fn none() -> PluginSwitches {
        PluginSwitches {
            eh_frames: false,
            static_destructors: false,
            executable_stack: false,
        }
    }
}

/// How a session is set up.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// The address space reserved for every unit of the session.
    pub slab: SlabConfig,
    /// Keep each unit's global definitions for later links and `lookup` (the default). A
    /// one-shot link (`rjitlink run`) turns this off to save the work.
    pub keep_symbols: bool,
}

impl Default for SessionOptions {
    /// The default slab, definitions kept (so `lookup` finds them).
    fn default() -> SessionOptions {
        SessionOptions {
            slab: SlabConfig::default(),
            keep_symbols: true,
        }
    }
}
