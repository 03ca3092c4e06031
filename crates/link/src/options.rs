//! What a link and a session are asked to do.

use crate::input::{InputArg, SearchPath};
use rjitlink_memory::SlabConfig;

/// What to link.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    pub inputs: Vec<InputArg>,
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
}

/// How a session is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionOptions {
    pub slab: SlabConfig,
    /// Keep each unit's global definitions for later links and `lookup`. A one-shot link
    /// (`rjitlink run`) turns this off to save the work.
    pub keep_symbols: bool,
}
