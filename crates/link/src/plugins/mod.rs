//! The plugin seam: small passes that observe named points of a link, as JITLink's pass lists
//! do, so that features beside the core (exporting symbols, copy relocations, exception frames,
//! thread-local storage, the debugger interface; next: the profiler's) live in a module each
//! and `Session::link` stays the list of phases.
//!
//! A plugin is created for one link and lives as long as the unit it linked, so it can keep
//! what it registered in the target and undo it when the unit is freed.
//!
//! The points, in order:
//! 1. `after_resolve`: every symbol is resolved; a plugin may claim or define names.
//! 2. `after_layout`: every section, GOT slot and stub has its offset in the image; then a
//!    plugin may ask for pages of the unit's own (`needs_own_pages`).
//! 3. `after_apply`: the image is relocated in working memory; a plugin reads the final bytes
//!    and returns calls the target makes as the memory becomes live (sent with the
//!    protections, in one round trip remotely), each with its undo for when it is freed.
//! 4. `finalize`: the memory is live; a plugin asks the target for what it needs before the
//!    unit runs (an executor operation, the same in process and remote).
//! 5. `free`: the unit is being freed, or its link failed after target work began; plugins
//!    undo `finalize`, in reverse order, before its memory (and with it the calls from
//!    `after_apply`) is undone. `free` may be called without `finalize` having run, and must
//!    then do nothing. A plugin whose work cannot be undone says so (`pins_memory`), and the
//!    memory then stays live.

mod copy_relocations;
mod debugger;
mod eh_frame;
mod eh_frame_fast;
mod executable_stack;
mod export_dynamic;
mod ifunc;
mod perf;
mod static_destructors;
mod symbols;
mod tls_module;

pub use copy_relocations::CopyChains;
#[cfg(feature = "fuzzing")]
pub(crate) use eh_frame::both_checks as both_unwind_checks;
pub use symbols::{collect as collect_symbols, SharedSymbols};
pub use tls_module::TlsModule;

use crate::addresses::Addresses;
use crate::error::LinkError;
use crate::layout::Layout;
use crate::options::{LinkOptions, PluginSwitches};
use crate::resolve::SymbolDb;
use rjitlink_memory::AllocAction;
use rjitlink_target::Executor;

/// What a plugin sees of a link once its addresses are known.
pub struct LinkContext<'a, 'data> {
    pub db: &'a SymbolDb<'data>,
    pub layout: &'a Layout,
    pub addresses: &'a Addresses,
}

/// A pass over one link. Every method has a default that does nothing.
pub trait Plugin: Send {
    /// Every symbol is resolved.
    fn after_resolve(&mut self, _db: &mut SymbolDb<'_>) -> Result<(), LinkError> {
        Ok(())
    }

    /// Every section, GOT slot and stub has its place in the image.
    fn after_layout(&mut self, _db: &SymbolDb<'_>, _layout: &Layout) -> Result<(), LinkError> {
        Ok(())
    }

    /// Whether the unit's memory must have pages of its own, shared with no other unit's:
    /// asked after layout. (A small unit's segments are otherwise pieces of pages other units
    /// use too, which only the linker writes: see `rjitlink_memory::MemoryManager`.)
    fn needs_own_pages(&self) -> bool {
        false
    }

    /// The image is relocated; `image` holds its final bytes. Returns calls the target makes
    /// as the memory becomes live, each with its undo (`target` may be asked where functions
    /// are).
    fn after_apply(
        &mut self,
        _link: &LinkContext<'_, '_>,
        _image: &[u8],
        _target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        Ok(Vec::new())
    }

    /// The memory is live: do what the target must do before the unit runs.
    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        _target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        Ok(())
    }

    /// The unit is being freed (or its link failed): undo `finalize`, if it ran.
    fn free(&mut self, _target: &mut dyn Executor) -> Result<(), LinkError> {
        Ok(())
    }

    /// What the link should tell its user (as ld's warnings), once; collected after finalize.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Whether the target still refers into the unit's memory in a way `free` did not undo (a
    /// symbol the dynamic loader serves, an undo that failed). Asked after `free`; such a
    /// unit's memory stays live for the rest of the process.
    fn pins_memory(&self) -> bool {
        false
    }
}

/// Undo the plugins' work in the target, last first: every plugin's `free` runs, the first
/// failure is reported. Also returns whether the unit's memory must stay live (`pins_memory`).
pub fn free_all(
    plugins: &mut [Box<dyn Plugin>],
    target: &mut dyn Executor,
) -> (Result<(), LinkError>, bool) {
    let mut result = Ok(());
    for plugin in plugins.iter_mut().rev() {
        let freed = plugin.free(target);
        result = result.and(freed);
    }
    let pinned = plugins.iter().any(|plugin| plugin.pins_memory());
    (result, pinned)
}

/// The plugins a link with `options` runs, in order; `copies` is the session's record of
/// library data its units copied; `switches` turns plugins off; `symbols` receives the unit's
/// symbols after apply (the `symbols` phase of `Session::link`).
pub fn for_link(
    options: &LinkOptions,
    switches: PluginSwitches,
    copies: &CopyChains,
    symbols: &SharedSymbols,
) -> Vec<Box<dyn Plugin>> {
    let mut plugins: Vec<Box<dyn Plugin>> = Vec::with_capacity(10);
    if options.debugger_support {
        // First, so that it is undone last: a debugger still sees the unit while the other
        // plugins' undo runs its code (static destructors).
        plugins.push(Box::<debugger::Debugger>::default());
    }
    // First of the rest: every other target call may run code that calls an IFUNC.
    plugins.push(Box::<ifunc::Ifuncs>::default());
    plugins.push(Box::new(copy_relocations::CopyRelocations::new(copies)));
    if switches.eh_frames {
        plugins.push(Box::<eh_frame::EhFrames>::default());
    }
    // After the unwind tables: their undo at free comes first, while destructors can still
    // throw and catch.
    if switches.static_destructors {
        plugins.push(Box::<static_destructors::StaticDestructors>::default());
    }
    if switches.executable_stack {
        plugins.push(Box::<executable_stack::ExecutableStack>::default());
    }
    if options.export_dynamic {
        plugins.push(Box::<export_dynamic::ExportDynamic>::default());
    }
    // Names for crash reports and perf; registered after the rest, so that they are forgotten
    // first when the unit is freed.
    if options.symbolize {
        plugins.push(Box::new(symbols::Symbols::new(symbols.clone())));
    }
    if options.perf_map {
        plugins.push(Box::new(perf::PerfMap::new(symbols.clone())));
    }
    if options.jitdump {
        plugins.push(Box::new(perf::JitDump::new(
            symbols.clone(),
            options.jitdump_directory.clone(),
        )));
    }
    plugins
}
