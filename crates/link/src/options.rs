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
    /// Register the inputs' debug information with the target's JIT interface, so that gdb
    /// sees the unit's functions, lines and variables (inputs without DWARF cost nothing).
    pub debugger_support: bool,
}

/// How a session is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionOptions {
    pub slab: SlabConfig,
    /// Keep each unit's global definitions for later links and `lookup`. A one-shot link
    /// (`rjitlink run`) turns this off to save the work.
    pub keep_symbols: bool,
}
