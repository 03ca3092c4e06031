//! The public API: a session links units into one target, one after another, each resolving
//! against the units before it (a REPL's use), all in one slab; units can be freed.
//! `Session::link` reads as the list of the link's phases.

use crate::apply::{addresses, apply, ApplyContext};
use crate::export::{shared_object, ExportedSymbol};
use crate::ids::GlobalId;
use crate::input::{default_inputs, InputArg, LinkInputs, SearchPath};
use crate::layout::{input_sections, layout, InitKind, Layout, SegmentKind};
use crate::resolve::{resolve, Resolution, SymbolDb};
use crate::scan::scan;
use crate::timing::PhaseTimes;
use anyhow::{anyhow, bail, Context, Result};
use foldhash::HashMap;
use object::read::elf::Sym as _;
use rjitlink_memory::{
    Finalized, MemoryManager, SegmentRequest, SlabConfig, SlabStats, TargetAddr, TargetRange,
};
use rjitlink_target::{Executor, Interposition, Program, SymbolKind, TransportStats};

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
}

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
}

impl LinkedUnit {
    /// The program to run: the entry with `args` (argv[0] included).
    pub fn program(&self, args: Vec<Vec<u8>>) -> Option<Program> {
        Some(Program {
            entry: self.entry?,
            init: self.init.clone(),
            fini: self.fini.clone(),
            args,
        })
    }
}

/// How a session is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionOptions {
    pub slab: SlabConfig,
    /// Keep each unit's global definitions for later links and `lookup`. A one-shot link
    /// (`rjitlink run`) turns this off to save the work.
    pub keep_symbols: bool,
}

/// Links units into the target behind an executor.
pub struct Session {
    executor: Box<dyn Executor>,
    memory: MemoryManager,
    keep_symbols: bool,
    /// Global definitions of live units (a later unit's definition shadows an earlier one).
    symbols: HashMap<Vec<u8>, (TargetAddr, UnitId)>,
    /// Each unit's memory, `None` once freed.
    units: Vec<Option<Finalized>>,
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
            .map(|&(address, _)| address)
    }

    /// Free a unit: its memory goes back to the slab and its symbols are forgotten.
    pub fn free(&mut self, unit: UnitId) -> Result<()> {
        let finalized = self
            .units
            .get_mut(unit.0 as usize)
            .and_then(Option::take)
            .with_context(|| format!("unit {} is not live", unit.0))?;
        self.symbols.retain(|_, (_, owner)| *owner != unit);
        self.memory.deallocate(finalized)?;
        Ok(())
    }

    /// Link `options.inputs` into the target, ready to run.
    pub fn link(&mut self, options: &LinkOptions, times: &mut PhaseTimes) -> Result<LinkedUnit> {
        let mut args = options.inputs.clone();
        if options.default_libraries {
            args.extend(default_inputs(&options.search));
        }
        let inputs = times.time("inputs", || LinkInputs::open(&args, &options.search))?;
        let symbols = &self.symbols;
        let earlier_units = |name: &[u8]| symbols.get(name).map(|&(address, _)| address);
        let executor = &mut *self.executor;
        let db = times.time("resolve", || {
            resolve(&inputs, options.entry.as_deref(), executor, &earlier_units)
        })?;
        if let Some(entry) = &options.entry {
            check_entry(&db, entry)?;
        }
        let (sections, plan, copies, needs_low_addresses) =
            times.time("scan", || -> Result<_> {
                let sections = input_sections(&db)?;
                let scanned = scan(&db, &sections)?;
                let copies = copied_externals(&db, &scanned.direct_externals(), executor)?;
                let needs_low_addresses = scanned.needs_low_addresses;
                Ok((
                    sections,
                    scanned.into_plan(&copies),
                    copies,
                    needs_low_addresses,
                ))
            })?;
        let page_size = self.memory.page_size();
        let layout = times.time("layout", || {
            layout(&db, sections, &plan, &copies, page_size)
        })?;
        // The small code model: every PC32 inside the image must reach.
        if layout.total_size >= 1 << 31 {
            bail!(
                "the linked image needs {:#x} bytes, more than the 2 GiB the small code model allows",
                layout.total_size
            );
        }

        let in_flight = times.time("allocate", || {
            let requests: Vec<SegmentRequest> = SegmentKind::ALL
                .iter()
                .map(|&kind| SegmentRequest {
                    size: layout.segments[kind as usize].1,
                    protection: kind.protection(),
                })
                .collect();
            self.memory.allocate(&requests, needs_low_addresses)
        })?;
        debug_assert!(SegmentKind::ALL.iter().all(|&kind| {
            in_flight.segments[kind as usize].range.start
                == in_flight.range.start + layout.segments[kind as usize].0.get()
        }));
        let base = in_flight.range.start;
        // SAFETY: the manager guarantees the working memory is valid, zeroed and ours alone
        // until it is finalized.
        let image =
            unsafe { std::slice::from_raw_parts_mut(in_flight.working.ptr, in_flight.working.len) };
        let addresses = addresses(&db, &layout, base);
        let context = ApplyContext {
            db: &db,
            layout: &layout,
            plan: &plan,
            addresses: &addresses,
        };
        if let Err(e) = times.time("apply", || apply(&context, image)) {
            // Nothing ran: give the memory back before reporting.
            let _ = self
                .memory
                .finalize(in_flight, &[])
                .map(|f| self.memory.deallocate(f));
            return Err(e);
        }

        let entry = match &options.entry {
            Some(entry) => {
                let id = db.lookup(entry.as_bytes()).expect("the entry was resolved");
                Some(addresses.globals[id.index()].ok_or_else(|| {
                    anyhow!("entry symbol `{entry}` lies in a section that is not loaded")
                })?)
            }
            None => None,
        };
        let init = init_functions(&layout, image, false);
        let fini = init_functions(&layout, image, true);
        let range = in_flight.range;
        let interpositions: Vec<Interposition> = layout
            .copies
            .iter()
            .map(|(&id, offset)| {
                let global = db.global(id);
                let Resolution::External(original) = global.resolution else {
                    unreachable!("only external symbols are copied")
                };
                Interposition {
                    name: global.name.to_vec(),
                    original,
                    copy: base + offset.get(),
                    size: copies[&id],
                }
            })
            .collect();
        let finalized = times.time("finalize", || -> Result<_> {
            let finalized = self.memory.finalize(in_flight, &[])?;
            self.executor.interpose(&interpositions)?;
            if options.export_dynamic {
                let image = exported_symbols_image(&db, &addresses.globals);
                self.executor
                    .load_library_image("rjitlink-exports.so", &image)
                    .context("cannot export the program's symbols")?;
            }
            Ok(finalized)
        })?;

        let id = UnitId(self.units.len() as u32);
        self.units.push(Some(finalized));
        if self.keep_symbols {
            for (index, global) in db.globals.iter().enumerate() {
                if let Resolution::Defined { .. } | Resolution::Common { .. } = global.resolution {
                    if let Some(address) = addresses.globals[index] {
                        self.symbols.insert(global.name.to_vec(), (address, id));
                    }
                }
            }
        }
        Ok(LinkedUnit {
            id,
            entry,
            init,
            fini,
            range,
            linked_bytes: layout
                .placed
                .iter()
                .filter(|(s, _)| !s.nobits)
                .map(|(s, _)| s.size)
                .sum(),
        })
    }
}

/// A shared object defining every global the unit defines with default or protected
/// visibility, at its linked address (what `cc -rdynamic` puts in an executable's dynsym).
fn exported_symbols_image(db: &SymbolDb<'_>, addresses: &[Option<TargetAddr>]) -> Vec<u8> {
    use object::elf;
    let symbols: Vec<ExportedSymbol<'_>> = db
        .globals
        .iter()
        .zip(addresses)
        .filter_map(|(global, address)| {
            let address = (*address)?.get();
            let (kind, size, weak, visibility) = match global.resolution {
                Resolution::Defined {
                    object,
                    symbol,
                    weak,
                } => {
                    let sym = db.objects[object.index()].symbol(symbol as usize)?;
                    (
                        sym.st_type(),
                        sym.st_size(crate::elf::LE),
                        weak,
                        sym.st_visibility(),
                    )
                }
                Resolution::Common { size, .. } => (elf::STT_OBJECT, size, false, elf::STV_DEFAULT),
                _ => return None,
            };
            matches!(visibility, elf::STV_DEFAULT | elf::STV_PROTECTED).then_some(ExportedSymbol {
                name: global.name,
                address,
                size,
                kind,
                weak,
            })
        })
        .collect();
    shared_object(b"rjitlink-exports.so", &symbols)
}

fn check_entry(db: &SymbolDb<'_>, entry: &str) -> Result<()> {
    let id = db
        .lookup(entry.as_bytes())
        .expect("the entry is always interned");
    match db.global(id).resolution {
        Resolution::Defined { .. } => Ok(()),
        Resolution::External(_) => bail!(
            "entry symbol `{entry}` is defined only in a shared library or an earlier unit, not by the linked objects"
        ),
        _ => bail!("entry symbol `{entry}` is not defined by any input"),
    }
}

/// Which directly referenced external symbols are data that needs a copy in the image (a copy
/// relocation), with their sizes. Asks the target once, for these few symbols only.
fn copied_externals(
    db: &SymbolDb<'_>,
    direct: &[GlobalId],
    executor: &mut dyn Executor,
) -> Result<HashMap<GlobalId, u64>> {
    if direct.is_empty() {
        return Ok(HashMap::default());
    }
    let addresses: Vec<TargetAddr> = direct
        .iter()
        .map(|&id| match db.global(id).resolution {
            Resolution::External(address) => address,
            _ => TargetAddr::NULL,
        })
        .collect();
    let infos = executor.symbol_info(&addresses)?;
    Ok(direct
        .iter()
        .zip(infos)
        .filter_map(|(&id, info)| {
            let info = info?;
            (info.kind == SymbolKind::Data && info.size > 0).then_some((id, info.size))
        })
        .collect())
}

/// The functions of the init tables (or, with `fini`, the fini tables) in call order, read
/// from the relocated image. Priorities ascend for init; fini runs in the reverse order.
fn init_functions(layout: &Layout, image: &[u8], fini: bool) -> Vec<TargetAddr> {
    let mut tables: Vec<(u32, u32, usize, bool, u64, u64)> = Vec::new();
    for (order, (section, at)) in layout.placed.iter().enumerate() {
        let key = match (section.init, fini) {
            (Some(InitKind::PreInit), false) => (0, 0, false),
            (Some(InitKind::Init { priority, reversed }), false) => (1, priority, reversed),
            (Some(InitKind::Fini { priority, reversed }), true) => (1, priority, reversed),
            _ => continue,
        };
        tables.push((key.0, key.1, order, key.2, at.get(), section.size));
    }
    tables.sort_unstable();
    let mut functions = Vec::new();
    for (_, _, _, reversed, offset, size) in tables {
        let bytes = &image[offset as usize..(offset + size) as usize];
        let mut entries: Vec<TargetAddr> = bytes
            .chunks_exact(8)
            .map(|chunk| TargetAddr(u64::from_le_bytes(chunk.try_into().unwrap())))
            // .ctors/.dtors tables may hold 0 and -1 as terminators.
            .filter(|address| address.get() != 0 && address.get() != u64::MAX)
            .collect();
        if reversed {
            entries.reverse();
        }
        functions.extend(entries);
    }
    if fini {
        functions.reverse();
    }
    functions
}
