//! The final address of everything a relocation can name, computed once the image's base is
//! known: per global, and per object per symbol (so applying a relocation is a lookup).

use crate::elf::{ObjectFile, LE};
use crate::ids::{GlobalId, ImageOffset, ObjectId};
use crate::layout::Layout;
use crate::resolve::{LinkerSymbol, Resolution, SymbolDb, SymbolLocation};
use crate::symbols::SymbolRef;
use crate::tls::{in_block, THREAD_LOCAL};
use object::elf;
use object::read::elf::Sym as _;
use rayon::prelude::*;
use rjitlink_memory::TargetAddr;

/// Final addresses of everything a relocation can name.
pub struct Addresses {
    pub base: TargetAddr,
    /// Per global; `None` where the defining section is not loaded.
    pub globals: Vec<Option<TargetAddr>>,
    /// Per object, per symbol: the value relocations use (`UNLOADED` where the symbol lies in
    /// a section that is not loaded, `THREAD_LOCAL` for thread-local symbols of the unit). Filled in parallel so that applying a relocation is a
    /// lookup, not a walk through symbol and section tables.
    pub symbol_values: Vec<Vec<u64>>,
}

/// Marks a symbol whose section is not loaded in `Addresses::symbol_values`.
pub const UNLOADED: u64 = u64::MAX;

impl Addresses {
    pub fn at(&self, offset: ImageOffset) -> TargetAddr {
        self.base + offset.get()
    }
}

/// The address of symbol `index` of `object` as the object defines it (locals, and the defining
/// symbol of a global). `None` if it lies in a section that is not loaded.
pub fn defined_address(
    object: &ObjectFile<'_>,
    object_id: ObjectId,
    index: usize,
    layout: &Layout,
    base: TargetAddr,
) -> Option<TargetAddr> {
    let symbol = object.symbol(index)?;
    let value = symbol.st_value(LE);
    match symbol.st_shndx(LE) {
        elf::SHN_ABS => Some(TargetAddr(value)),
        elf::SHN_UNDEF => Some(TargetAddr(0)),
        _ => {
            let section = object.symbol_section(index, symbol)?;
            let offset = layout.section_offset(object_id, section)?;
            Some(base + offset.get() + value)
        }
    }
}

/// Where the stub standing for `symbol` lies, if it has one that stands for it: locals have
/// stubs only when they are IFUNCs.
fn stub_address(layout: &Layout, base: TargetAddr, symbol: SymbolRef) -> Option<TargetAddr> {
    let stub = layout.got_plan.stub(symbol)?;
    Some(base + layout.plt_stub(stub).get())
}

/// The addresses of everything, for an image at `base`.
pub fn addresses(db: &SymbolDb<'_>, layout: &Layout, base: TargetAddr) -> Addresses {
    let globals = db
        .globals
        .par_iter()
        .enumerate()
        .map(|(index, global)| match global.resolution {
            // An IFUNC's stub stands for it: its own value is the resolver.
            Resolution::Defined { .. } if db.locations[index] == SymbolLocation::Ifunc => {
                stub_address(layout, base, SymbolRef::Global(GlobalId::from_index(index)))
            }
            Resolution::Defined { object, symbol, .. } => defined_address(
                &db.objects[object.index()],
                object,
                symbol as usize,
                layout,
                base,
            ),
            Resolution::Common { .. } => layout
                .commons
                .get(&GlobalId::from_index(index))
                .map(|offset| base + offset.get()),
            Resolution::External(address) => Some(
                layout
                    .copies
                    .get(&GlobalId::from_index(index))
                    .map_or(address, |copy| base + copy.offset.get()),
            ),
            Resolution::UndefinedWeak | Resolution::Undefined => Some(TargetAddr(0)),
            Resolution::Linker(LinkerSymbol::GotBase) => Some(base + layout.got.get()),
            Resolution::Linker(LinkerSymbol::DsoHandle) => Some(base + layout.dso_handle.get()),
            // Thread-local: no address (`symbol_values` marks it).
            Resolution::Linker(LinkerSymbol::TlsModuleBase) => None,
            Resolution::Linker(
                bound @ (LinkerSymbol::SectionStart | LinkerSymbol::SectionStop),
            ) => {
                let prefix_len = if bound == LinkerSymbol::SectionStart {
                    8
                } else {
                    7
                };
                let bounds = layout.section_bounds.get(&global.name[prefix_len..])?;
                Some(
                    base + if bound == LinkerSymbol::SectionStart {
                        bounds.start.get()
                    } else {
                        bounds.stop.get()
                    },
                )
            }
        })
        .collect::<Vec<_>>();
    let has_ifuncs = !layout.got_plan.ifuncs.is_empty();
    let symbol_values = db
        .objects
        .par_iter()
        .enumerate()
        .map(|(index, object)| {
            let object_id = ObjectId::from_index(index);
            let first = object.first_global();
            let object_globals = &db.object_globals[index];
            (0..object.symbols.len())
                .map(|symbol| {
                    let address = match symbol.checked_sub(first) {
                        Some(i) => {
                            let id = object_globals[i];
                            match globals[id.index()] {
                                None if db.locations[id.index()] == SymbolLocation::ThreadLocal => {
                                    return THREAD_LOCAL
                                }
                                address => address,
                            }
                        }
                        // Only an IFUNC's stub stands for a local; most links have none, and
                        // this runs for every local symbol.
                        None if has_ifuncs => {
                            let local = SymbolRef::Local {
                                object: object_id,
                                symbol: symbol as u32,
                            };
                            stub_address(layout, base, local).or_else(|| {
                                defined_address(object, object_id, symbol, layout, base)
                            })
                        }
                        None => defined_address(object, object_id, symbol, layout, base),
                    };
                    match address {
                        Some(address) => address.get(),
                        // Rare: a discarded COMDAT copy, or thread-local storage.
                        None if in_block(layout, db, object_id, symbol) => THREAD_LOCAL,
                        None => UNLOADED,
                    }
                })
                .collect()
        })
        .collect();
    Addresses {
        base,
        globals,
        symbol_values,
    }
}
