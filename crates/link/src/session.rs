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

/// Identifies a linked unit of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnitId(u32);

/// A linked unit, live in the target.
#[derive(Debug)]
pub struct LinkedUnit {
    pub id: UnitId,
    /// The entry symbol's address, if one was asked for.
    pub entry: Option<TargetAddr>,
    /// Init (preinit first) and fini functions, in call order.
    pub init: Vec<TargetAddr>,
    pub fini: Vec<TargetAddr>,
    /// The target memory holding the unit.
    pub range: TargetRange,
    /// Bytes of code and data linked: the contents of the loaded sections (not zero-fill
    /// sections, the GOT, stubs or page padding).
    pub linked_bytes: u64,
    /// What the user should know about the link, as ld warns (an executable stack, ...).
    pub warnings: Vec<String>,
}

impl LinkedUnit {
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

/// A unit the session keeps alive: its memory, and the plugins that set it up in the target.
struct LiveUnit {
    memory: Finalized,
    plugins: Vec<Box<dyn Plugin>>,
}

/// Links units into the target behind an executor.
pub struct Session {
    executor: Box<dyn Executor>,
    memory: Arc<MemoryManager>,
    keep_symbols: bool,
    /// Global definitions of live units (a later unit's definition shadows an earlier one).
    symbols: HashMap<Vec<u8>, SessionSymbol>,
    /// Each unit, `None` once freed.
    units: Vec<Option<LiveUnit>>,
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
            units: Vec::new(),
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

    /// The address of a global defined by a live unit.
    pub fn lookup(&self, name: &str) -> Option<TargetAddr> {
        self.symbols
            .get(name.as_bytes())
            .map(|symbol| symbol.address)
    }

    /// Free a unit: its plugins undo their work in the target (last first), its memory goes
    /// back to the slab and its symbols are forgotten. A unit whose exported symbols the
    /// target's loader serves, or whose work in the target could not be undone, keeps its
    /// memory live. Err if it is not live, or if the target failed to undo something (the unit
    /// is gone all the same).
    pub fn free(&mut self, unit: UnitId) -> Result<(), LinkError> {
        let live = self
            .units
            .get_mut(unit.0 as usize)
            .and_then(Option::take)
            .ok_or(LinkError::UnitNotLive(unit.0))?;
        self.symbols.retain(|_, symbol| symbol.unit != unit);
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
        let earlier_units = |name: &[u8]| symbols.get(name).map(|symbol| symbol.address);
        let entry = options.entry.as_deref();
        let mut db = resolve(&inputs, entry, executor, &earlier_units, times)?;
        for plugin in &mut plugins {
            plugin.after_resolve(&mut db)?;
        }

        let scan = scan(&db, executor, times)?;
        let layout = layout(&db, scan, self.memory.page_size(), times)?;
        for plugin in &mut plugins {
            plugin.after_layout(&db, &layout)?;
        }

        let memory = allocate(&layout, &self.memory, times)?;
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
        let id = UnitId(self.units.len() as u32);
        for definition in definitions {
            let symbol = SessionSymbol {
                address: definition.address,
                unit: id,
            };
            self.symbols.insert(definition.name, symbol);
        }
        let range = memory.range();
        self.units.push(Some(LiveUnit { memory, plugins }));
        LinkedUnit {
            id,
            entry,
            init,
            fini,
            range,
            linked_bytes,
            warnings,
        }
    }
}

/// Undo a unit's plugins, last first, then free its memory — unless the target still refers
/// into it, which then stays live. Every step runs; the first failure is reported.
fn free_unit(unit: LiveUnit, executor: &mut dyn Executor) -> Result<(), LinkError> {
    let LiveUnit {
        memory,
        mut plugins,
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
        while let Some(unit) = self.units.pop() {
            if let Some(unit) = unit {
                let _ = free_unit(unit, &mut *self.executor);
            }
        }
    }
}
