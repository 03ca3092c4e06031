//! [`PluginSwitches`]: which of the linker's optional plugins a session's links run — the
//! ones a unit can do without (exception frames, exit handlers, executable stacks, the
//! debugger's JIT interface) and the ones that keep or write something for tools (names for
//! crash reports, perf's map and jitdump).

/// The optional plugins of a session's links, each on or off ([`SessionBuilder::plugins`],
/// [`Session::set_plugins`]). Those a linked unit cannot do without — IFUNC resolvers, copy
/// relocations, the TLS module — always run.
///
/// `PluginSwitches::default()` turns on what costs nothing unless an input needs it
/// (`eh_frames`, `static_destructors`, `executable_stack`, `debugger`) and leaves off what
/// keeps names or writes files for tools (`crash_reports`, `perf_map`, `jitdump`);
/// [`none`](Self::none) turns everything off. Set fields one by one from either:
///
/// ```
/// let mut plugins = rjitlink::PluginSwitches::default();
/// plugins.perf_map = true;
/// plugins.debugger = false;
/// let session = rjitlink::Session::builder().plugins(plugins);
/// # let _ = session;
/// ```
///
/// [`SessionBuilder::plugins`]: crate::SessionBuilder::plugins
/// [`Session::set_plugins`]: crate::Session::set_plugins
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginSwitches {
    /// Register each unit's `.eh_frame` with the target's unwinder, so that C++ exceptions
    /// and backtraces cross its frames. Off: an exception thrown through linked code ends the
    /// program (`std::terminate`). On by default.
    pub eh_frames: bool,
    /// Run a freed unit's exit handlers (`__cxa_finalize` on its `__dso_handle`, as `dlclose`
    /// does). Off: handlers it registered stay with the process and run at exit, into freed
    /// memory if the unit is gone by then. On by default.
    pub static_destructors: bool,
    /// Make the target's stacks executable when an input asks for it (as ld does, with its
    /// warning). Off: such an input links, and its stack trampolines fault. On by default.
    pub executable_stack: bool,
    /// Publish each input's debug information (DWARF) through gdb's JIT interface as the unit
    /// goes live, and withdraw it when the unit is freed, so that gdb sets breakpoints in it
    /// and shows its frames, lines and variables. Inputs without DWARF cost one look at their
    /// section headers; a unit with DWARF gets code pages of its own (not packed with other
    /// units'), since a debugger writes its breakpoints into the code. On by default.
    pub debugger: bool,
    /// Keep each unit's function names and line tables while it lives, and have
    /// [`Session::run_program`](crate::Session::run_program) report a crash of the program
    /// (a fatal signal it has no handler for) on stderr — `function+0xOFF (file:line)
    /// [object]` per frame — before it dies of the signal. Off by default: keeping names costs
    /// time at each link (measured: 1.3 ms for 19,200 functions).
    pub crash_reports: bool,
    /// Append each unit's functions to `/tmp/perf-PID.map` of the process that runs them, so
    /// that `perf report` names them. perf reads the map only for anonymous memory: units then
    /// get pages of their own, and a remote executor's memory is copied rather than shared
    /// unless [`RemoteMemory::Shared`](crate::RemoteMemory::Shared) is asked for. Off by
    /// default.
    pub perf_map: bool,
    /// Append each unit's functions, with their code and line rows, to perf's jitdump
    /// (`jit-PID.dump`) of the process that runs them, for `perf inject --jit`; in the
    /// directory [`SessionBuilder::jitdump_directory`](crate::SessionBuilder::jitdump_directory)
    /// names, else in `$JITDUMPDIR/.debug/jit/rjitlink-PID/` (`$HOME` when `JITDUMPDIR` is
    /// unset). Off by default.
    pub jitdump: bool,
}

impl Default for PluginSwitches {
    fn default() -> PluginSwitches {
        PluginSwitches {
            eh_frames: true,
            static_destructors: true,
            executable_stack: true,
            debugger: true,
            crash_reports: false,
            perf_map: false,
            jitdump: false,
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
            debugger: false,
            crash_reports: false,
            perf_map: false,
            jitdump: false,
        }
    }

    /// The link layer's switches (the rest are options of each link).
    pub(crate) fn link_switches(self) -> rjitlink_link::PluginSwitches {
        let mut switches = rjitlink_link::PluginSwitches::none();
        switches.eh_frames = self.eh_frames;
        switches.static_destructors = self.static_destructors;
        switches.executable_stack = self.executable_stack;
        switches
    }
}
