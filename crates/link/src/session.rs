//! The public API: a session links units into one target, one after another, each resolving
//! against the units before it (a REPL's use), all in one slab; units can be freed.
//! `Session::link` reads as the list of the link's phases.

use crate::error::LinkError;
use crate::image::{allocate, apply_image, image_addresses, image_bytes, Image};
use crate::input::{default_inputs, LinkInputs};
use crate::layout::layout;
use crate::options::{LinkOptions, PluginSwitches, SessionOptions};
use crate::plugins::{self, CopyChains, LinkContext, Plugin, TlsModule};
use crate::resolve::{resolve, OutsideDefinition};
use crate::scan::scan;
use crate::timing::PhaseTimes;
use crate::tls::{load_thread_locals, LoadedTls};
use crate::unit::{finalize, FinalizeRequest, Unit};
use foldhash::HashMap;
use rjitlink_memory::{Finalized, MemoryManager, SlabStats, TargetAddr, TargetRange};
use rjitlink_target::{Executor, Program, TransportStats};
use std::sync::Arc;

/// Identifies a linked unit of a session. Ids are never reused within a session, so a stale
/// id never names a later unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(u64);

impl UnitId {
    /// The id as a number (for a C caller, or a log). Numbers are given out in link order.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id numbered `raw` (as `get` returned it). An id no unit has is harmless: the
    /// session's operations say that no such unit is live.
    pub fn from_raw(raw: u64) -> UnitId {
        UnitId(raw)
    }
}

/// A linked unit, live in the target.
#[derive(Debug)]
pub struct LinkedUnit {
    /// The id to free it by.
    pub id: UnitId,
    /// The entry symbol's address, if one was asked for.
    pub entry: Option<TargetAddr>,
    /// Init (preinit first) and fini functions, in call order.
    pub init: Vec<TargetAddr>,
    /// Fini functions (`.fini_array`, `.dtors`), in call order.
    pub fini: Vec<TargetAddr>,
    /// The target memory holding the unit: one range of whole pages, or, for a small unit
    /// whose segments share pages with other units', one range per non-empty segment.
    pub ranges: Vec<TargetRange>,
    /// Bytes of code and data linked: the contents of the loaded sections (not zero-fill
    /// sections, the GOT, stubs or page padding).
    pub linked_bytes: u64,
    /// What the user should know about the link, as ld warns (an executable stack, ...).
    pub warnings: Vec<String>,
}

impl LinkedUnit {
    /// Whether `address` lies in the unit's memory.
    pub fn contains(&self, address: TargetAddr) -> bool {
        self.ranges
            .iter()
            .any(|range| address >= range.start && address < range.end())
    }

    /// The program to run: the entry with `args` (`argv[0]` included).
    pub fn program(&self, args: Vec<Vec<u8>>) -> Option<Program> {
        Some(Program {
            entry: self.entry?,
            init: self.init.clone(),
            fini: self.fini.clone(),
            args,
            crash_report: true,
        })
    }
}

/// A global definition of a live unit.
struct SessionSymbol {
    address: TargetAddr,
    unit: UnitId,
}

/// A unit the session keeps alive: its memory, the plugins that set it up in the target, and
/// the names it defines.
struct LiveUnit {
    memory: Finalized,
    plugins: Vec<Box<dyn Plugin>>,
    names: Box<[Arc<[u8]>]>,
}

/// Links units into the target behind an executor.
///
/// Names resolve against, in order: the unit's own inputs, the live units linked before it
/// (the latest definition of a name first), the absolute symbols defined with
/// [`define_absolute`](Session::define_absolute), then the libraries loaded in the target.
pub struct Session {
    executor: Box<dyn Executor>,
    memory: Arc<MemoryManager>,
    keep_symbols: bool,
    /// Which optional plugins the next links run.
    plugins: PluginSwitches,
    /// Names given an address by the caller, for every later link and `lookup`; whether each
    /// is known to be data.
    absolutes: HashMap<Arc<[u8]>, (TargetAddr, bool)>,
    /// Global definitions of live units by name, in link order: the last is the one visible
    /// (a later unit's definition shadows an earlier one), and freeing its unit uncovers the
    /// one before. Names no live unit defines have no entry.
    symbols: HashMap<Arc<[u8]>, Vec<SessionSymbol>>,
    /// The live units, and only those: a freed unit leaves nothing behind.
    units: HashMap<UnitId, LiveUnit>,
    /// The id the next unit gets.
    next_unit: u64,
    /// Where library data that units copied lives now (see `plugins::copy_relocations`).
    copies: CopyChains,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("in_process", &self.executor.is_this_process())
            .field("live_units", &self.units.len())
            .field("symbols", &self.symbols.len())
            .field("absolutes", &self.absolutes.len())
            .field("plugins", &self.plugins)
            .field("memory", &self.memory.stats())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session linking into the target behind `executor`, its slab reserved there as
    /// `options` says (lazily, by the first link).
    pub fn new(executor: Box<dyn Executor>, options: SessionOptions) -> Session {
        let memory = MemoryManager::new(executor.memory(), options.slab);
        Session {
            executor,
            memory,
            keep_symbols: options.keep_symbols,
            plugins: PluginSwitches::default(),
            absolutes: HashMap::default(),
            symbols: HashMap::default(),
            units: HashMap::default(),
            next_unit: 0,
            copies: CopyChains::default(),
        }
    }

    /// The executor the session links for (to run a program, or load a library).
    pub fn executor(&mut self) -> &mut dyn Executor {
        &mut *self.executor
    }

    /// What crossed the connection to a remote target so far; `None` in process.
    pub fn transport_stats(&self) -> Option<TransportStats> {
        self.executor.transport_stats()
    }

    /// Choose the optional plugins of the links to come (all on by default).
    pub fn set_plugins(&mut self, plugins: PluginSwitches) {
        self.plugins = plugins;
    }

    /// Give `name` the address `address` for every later link and [`lookup`](Self::lookup):
    /// a host's function, or a fixed address in the target. A live unit's definition of the
    /// name comes first; defining the name again replaces the address. Code that calls it
    /// from out of reach goes through a stub; for data use
    /// [`define_absolute_data`](Self::define_absolute_data).
    pub fn define_absolute(&mut self, name: &[u8], address: TargetAddr) {
        self.absolutes.insert(name.into(), (address, false));
    }

    /// Like [`define_absolute`](Self::define_absolute), for data that is not a library's (a
    /// host's variable): code compiled to reach it directly (`-fPIE` and non-PIC code reads
    /// extern variables PC-relative) reaches it only from within ±2 GiB; farther, the link
    /// fails with a relocation overflow rather than read something else. Code compiled with
    /// `-fPIC` reaches it from anywhere, through the GOT.
    pub fn define_absolute_data(&mut self, name: &[u8], address: TargetAddr) {
        self.absolutes.insert(name.into(), (address, true));
    }

    /// Forget an absolute definition; false if there was none.
    pub fn remove_absolute(&mut self, name: &[u8]) -> bool {
        self.absolutes.remove(name).is_some()
    }

    /// How the session's slab is used so far.
    pub fn memory_stats(&self) -> SlabStats {
        self.memory.stats()
    }

    /// How many units are live (linked and not freed).
    pub fn live_units(&self) -> usize {
        self.units.len()
    }

    /// The address of a global defined by a live unit (the latest definition), or else
    /// defined absolute. `None` otherwise, and for every unit's symbols if the session was
    /// made with `keep_symbols` off.
    pub fn lookup(&self, name: &str) -> Option<TargetAddr> {
        self.lookup_bytes(name.as_bytes())
    }

    /// [`lookup`](Self::lookup) for a name that need not be UTF-8.
    pub fn lookup_bytes(&self, name: &[u8]) -> Option<TargetAddr> {
        visible(&self.symbols, name).or_else(|| self.absolutes.get(name).map(|a| a.0))
    }

    /// Free a unit: its plugins undo their work in the target (last first), its memory goes
    /// back to the slab and its definitions are forgotten, uncovering those of earlier live
    /// units that it shadowed. A unit whose exported symbols the target's loader serves, or
    /// whose work in the target could not be undone, keeps its memory live. Err if it is not
    /// live, or if the target failed to undo something (the unit is gone all the same).
    pub fn free(&mut self, unit: UnitId) -> Result<(), LinkError> {
        let live = self
            .units
            .remove(&unit)
            .ok_or(LinkError::UnitNotLive(unit.0))?;
        for name in live.names.iter() {
            let std::collections::hash_map::Entry::Occupied(mut entry) =
                self.symbols.entry(name.clone())
            else {
                continue;
            };
            let definitions = entry.get_mut();
            // Searched from the end: the unit freed is most often a recent one.
            if let Some(index) = definitions.iter().rposition(|d| d.unit == unit) {
                definitions.remove(index);
            }
            if definitions.is_empty() {
                entry.remove();
            }
        }
        free_unit(live, &mut *self.executor)
    }

    /// Link `options.inputs` into the target, ready to run.
    pub fn link(
        &mut self,
        options: &LinkOptions,
        times: &PhaseTimes,
    ) -> Result<LinkedUnit, LinkError> {
        let unit_symbols = plugins::SharedSymbols::default();
        let mut plugins = plugins::for_link(options, self.plugins, &self.copies, &unit_symbols);
        let executor = &mut *self.executor;
        let mut inputs = options.inputs.clone();
        if options.default_libraries {
            inputs.extend(default_inputs(&options.search));
        }
        let inputs = LinkInputs::open(&inputs, &options.search, times)?;

        let (symbols, absolutes) = (&self.symbols, &self.absolutes);
        let earlier_units = |name: &[u8]| match visible(symbols, name) {
            Some(address) => Some(OutsideDefinition {
                address,
                absolute_data: false,
            }),
            None => absolutes
                .get(name)
                .map(|&(address, absolute_data)| OutsideDefinition {
                    address,
                    absolute_data,
                }),
        };
        let entry = options.entry.as_deref();
        let mut db = resolve(&inputs, entry, executor, &earlier_units, times)?;
        {
            // Timed like the plugins' work after layout and apply.
            let _span = times.span("plugins");
            for plugin in &mut plugins {
                plugin.after_resolve(&mut db)?;
            }
        }

        let scan = scan(&db, executor, times)?;
        let layout = layout(&db, scan, self.memory.page_size(), times)?;
        {
            // Timed like the plugins' work after apply: one `plugins` line after each phase.
            let _span = times.span("plugins");
            for plugin in &mut plugins {
                plugin.after_layout(&db, &layout)?;
            }
        }

        let own_pages = plugins.iter().any(|plugin| plugin.needs_own_pages());
        let memory = allocate(&layout, &self.memory, own_pages, times)?;
        let addresses = image_addresses(&db, &layout, &memory, times);
        let tls = load_thread_locals(&db, &layout, &addresses, executor, times)?;
        let tls_values = tls.map(|LoadedTls { values, module }| {
            // First, so that it is undone last.
            plugins.insert(0, Box::new(TlsModule::new(module)));
            values
        });
        let mut actions = Vec::new();
        let applied = apply_image(&db, &layout, memory, addresses, tls_values.as_ref(), times)
            .and_then(|image| {
                let link = LinkContext {
                    db: &db,
                    layout: &layout,
                    addresses: &image.addresses,
                };
                if options.symbolize || options.perf_map || options.jitdump {
                    // Names and lines for crash reports and perf.
                    let _span = times.span("symbols");
                    let _ = unit_symbols.set(Arc::new(plugins::collect_symbols(&link)));
                }
                let _span = times.span("plugins");
                for plugin in &mut plugins {
                    actions.extend(plugin.after_apply(
                        &link,
                        image_bytes(&image.memory),
                        executor,
                    )?);
                }
                Ok(image)
            });
        let Image { memory, addresses } = match applied {
            Ok(image) => image,
            Err(error) => {
                // Only the TLS module can be in the target yet; the memory goes back as the
                // image is dropped.
                let _ = plugins::free_all(&mut plugins, executor);
                return Err(error);
            }
        };
        let link = LinkContext {
            db: &db,
            layout: &layout,
            addresses: &addresses,
        };

        let request = FinalizeRequest {
            entry,
            definitions: self.keep_symbols,
        };
        let unit = finalize(&link, memory, &actions, plugins, request, executor, times)?;
        Ok(self.adopt(unit, layout.linked_bytes()))
    }

    /// Keep a finalized unit alive and its definitions visible.
    fn adopt(&mut self, unit: Unit, linked_bytes: u64) -> LinkedUnit {
        let Unit {
            memory,
            entry,
            init,
            fini,
            definitions,
            warnings,
            plugins,
        } = unit;
        let id = UnitId(self.next_unit);
        self.next_unit += 1;
        let names = definitions
            .into_iter()
            .map(|definition| {
                let symbol = SessionSymbol {
                    address: definition.address,
                    unit: id,
                };
                let name: Arc<[u8]> = definition.name.into();
                match self.symbols.get_mut(&name) {
                    // The map's key is shared, not copied again.
                    Some(definitions) => definitions.push(symbol),
                    None => {
                        self.symbols.insert(name.clone(), vec![symbol]);
                    }
                }
                name
            })
            .collect();
        let ranges = memory.ranges();
        self.units.insert(
            id,
            LiveUnit {
                memory,
                plugins,
                names,
            },
        );
        LinkedUnit {
            id,
            entry,
            init,
            fini,
            ranges,
            linked_bytes,
            warnings,
        }
    }
}

/// The visible (latest) definition of `name` among the live units.
fn visible(symbols: &HashMap<Arc<[u8]>, Vec<SessionSymbol>>, name: &[u8]) -> Option<TargetAddr> {
    symbols
        .get(name)
        .and_then(|definitions| definitions.last())
        .map(|symbol| symbol.address)
}

/// Undo a unit's plugins, last first, then free its memory — unless the target still refers
/// into it, which then stays live. Every step runs; the first failure is reported.
fn free_unit(unit: LiveUnit, executor: &mut dyn Executor) -> Result<(), LinkError> {
    let LiveUnit {
        memory,
        mut plugins,
        ..
    } = unit;
    let (result, pinned) = plugins::free_all(&mut plugins, executor);
    if pinned {
        memory.leak();
        return result;
    }
    result.and(memory.free().map_err(LinkError::from))
}

impl Drop for Session {
    /// Free the live units, last first, before the slab goes away.
    fn drop(&mut self) {
        let mut ids: Vec<UnitId> = self.units.keys().copied().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        for id in ids {
            if let Some(unit) = self.units.remove(&id) {
                let _ = free_unit(unit, &mut *self.executor);
            }
        }
    }
}
