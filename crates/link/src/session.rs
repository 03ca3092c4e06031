//! The public API: a session links units into one target, one after another, each resolving
//! against the units before it (a REPL's use), all in one slab; units can be freed.
//! `Session::link` reads as the list of the link's phases.

use crate::error::LinkError;
use crate::image::{allocate, apply_image, image_addresses, image_bytes, Image};
use crate::input::{default_inputs, LinkInputs};
use crate::layout::layout;
use crate::options::{LinkOptions, SessionOptions};
use crate::plugins::{self, CopyChains, LinkContext, Plugin, TlsModule};
use crate::resolve::resolve;
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

/// A linked unit, live in the target.
#[derive(Debug)]
pub struct LinkedUnit {
    pub id: UnitId,
    /// The entry symbol's address, if one was asked for.
    pub entry: Option<TargetAddr>,
    /// Init (preinit first) and fini functions, in call order.
    pub init: Vec<TargetAddr>,
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
pub struct Session {
    executor: Box<dyn Executor>,
    memory: Arc<MemoryManager>,
    keep_symbols: bool,
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

impl Session {
    pub fn new(executor: Box<dyn Executor>, options: SessionOptions) -> Session {
        let memory = MemoryManager::new(executor.memory(), options.slab);
        Session {
            executor,
            memory,
            keep_symbols: options.keep_symbols,
            symbols: HashMap::default(),
            units: HashMap::default(),
            next_unit: 0,
            copies: CopyChains::default(),
        }
    }

    pub fn executor(&mut self) -> &mut dyn Executor {
        &mut *self.executor
    }

    pub fn transport_stats(&self) -> Option<TransportStats> {
        self.executor.transport_stats()
    }

    pub fn memory_stats(&self) -> SlabStats {
        self.memory.stats()
    }

    /// How many units are live (linked and not freed).
    pub fn live_units(&self) -> usize {
        self.units.len()
    }

    /// The address of a global defined by a live unit: the latest definition.
    pub fn lookup(&self, name: &str) -> Option<TargetAddr> {
        visible(&self.symbols, name.as_bytes())
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
        let mut plugins = plugins::for_link(options, &self.copies);
        let executor = &mut *self.executor;
        let mut inputs = options.inputs.clone();
        if options.default_libraries {
            inputs.extend(default_inputs(&options.search));
        }
        let inputs = LinkInputs::open(&inputs, &options.search, times)?;

        let symbols = &self.symbols;
        let earlier_units = |name: &[u8]| visible(symbols, name);
        let entry = options.entry.as_deref();
        let mut db = resolve(&inputs, entry, executor, &earlier_units, times)?;
        for plugin in &mut plugins {
            plugin.after_resolve(&mut db)?;
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
