//! The final address of everything a relocation can name, computed once the image's segments
//! have their places in the target: per global, and per object per symbol (so applying a
//! relocation is a lookup).

use crate::elf::{ObjectFile, LE};
use crate::ids::{GlobalId, ImageOffset, ObjectId};
use crate::layout::Layout;
use crate::resolve::{LinkerSymbol, Resolution, SymbolDb, SymbolLocation};
use crate::sections::SegmentKind;
use crate::symbols::SymbolRef;
use crate::tls::{in_block, THREAD_LOCAL};
use object::elf;
use object::read::elf::Sym as _;
use rayon::prelude::*;
use rjitlink_memory::TargetAddr;

/// Where the image's segments lie in the target. Each segment is contiguous, but segments
/// need not lie together or in order: a small image's segments are pieces of pages shared with
/// other units (see `rjitlink_memory::MemoryManager`).
#[derive(Clone, Copy, Debug)]
pub struct ImagePlacement {
    /// Per segment (by `SegmentKind`): its start in the image, its size, its address.
    segments: [(ImageOffset, u64, TargetAddr); 3],
}

impl ImagePlacement {
    /// Segment `k` of `layout` at `addresses[k]`.
    pub fn new(layout: &Layout, addresses: [TargetAddr; 3]) -> ImagePlacement {
        let segment = |k: usize| {
            (
                layout.segments[k].start,
                layout.segments[k].size,
                addresses[k],
            )
        };
        ImagePlacement {
            segments: [segment(0), segment(1), segment(2)],
        }
    }

    /// The address of the image's byte at `offset`. An offset where one segment ends and the
    /// next starts is the next one's start; an empty segment is never chosen.
    pub fn at(&self, offset: ImageOffset) -> TargetAddr {
        let (start, _, address) = self
            .segments
            .iter()
            .rev()
            .find(|(start, size, _)| *size > 0 && *start <= offset)
            .copied()
            .unwrap_or(self.segments[0]);
        address.wrapping_offset(offset.get().wrapping_sub(start.get()) as i64)
    }

    /// The address just past the bytes `[start, stop)` of the image, which lie in one segment.
    pub fn end(&self, start: ImageOffset, stop: ImageOffset) -> TargetAddr {
        self.at(start) + (stop.get() - start.get())
    }

    /// Whether `[start, end)` lies within one segment.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        self.segments.iter().any(|&(_, size, address)| {
            size > 0 && start >= address.get() && end <= address.get() + size
        })
    }

    /// The address of segment `kind`'s first byte.
    pub fn segment(&self, kind: SegmentKind) -> TargetAddr {
        self.segments[kind as usize].2
    }
}

/// Final addresses of everything a relocation can name.
pub struct Addresses {
    pub placement: ImagePlacement,
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
        self.placement.at(offset)
    }
}

/// The address of symbol `index` of `object` as the object defines it (locals, and the defining
/// symbol of a global). `None` if it lies in a section that is not loaded.
pub fn defined_address(
    object: &ObjectFile<'_>,
    object_id: ObjectId,
    index: usize,
    layout: &Layout,
    placement: &ImagePlacement,
) -> Option<TargetAddr> {
    let symbol = object.symbol(index)?;
    let value = symbol.st_value(LE);
    match symbol.st_shndx(LE) {
        elf::SHN_ABS => Some(TargetAddr(value)),
        elf::SHN_UNDEF => Some(TargetAddr(0)),
        _ => {
            let section = object.symbol_section(index, symbol)?;
            let offset = layout.section_offset(object_id, section)?;
            // From the section's own start: a symbol at its end stays in its segment.
            Some(placement.at(offset) + value)
        }
    }
}

/// Where the stub standing for `symbol` lies, if it has one that stands for it: locals have
/// stubs only when they are IFUNCs.
fn stub_address(
    layout: &Layout,
    placement: &ImagePlacement,
    symbol: SymbolRef,
) -> Option<TargetAddr> {
    let stub = layout.got_plan.stub(symbol)?;
    Some(placement.at(layout.plt_stub(stub)))
}

/// The addresses of everything, for an image placed as `placement` says.
pub fn addresses(db: &SymbolDb<'_>, layout: &Layout, placement: ImagePlacement) -> Addresses {
    let globals = db
        .globals
        .par_iter()
        .enumerate()
        .map(|(index, global)| match global.resolution {
            // An IFUNC's stub stands for it: its own value is the resolver.
            Resolution::Defined { .. } if db.locations[index] == SymbolLocation::Ifunc => {
                stub_address(
                    layout,
                    &placement,
                    SymbolRef::Global(GlobalId::from_index(index)),
                )
            }
            Resolution::Defined { object, symbol, .. } => defined_address(
                &db.objects[object.index()],
                object,
                symbol as usize,
                layout,
                &placement,
            ),
            Resolution::Common { .. } => layout
                .commons
                .get(&GlobalId::from_index(index))
                .map(|&offset| placement.at(offset)),
            Resolution::External(address) => Some(
                layout
                    .copies
                    .get(&GlobalId::from_index(index))
                    .map_or(address, |copy| placement.at(copy.offset)),
            ),
            Resolution::UndefinedWeak | Resolution::Undefined => Some(TargetAddr(0)),
            Resolution::Linker(LinkerSymbol::GotBase) => Some(placement.at(layout.got)),
            Resolution::Linker(LinkerSymbol::DsoHandle) => Some(placement.at(layout.dso_handle)),
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
                Some(match bound {
                    LinkerSymbol::SectionStart => placement.at(bounds.start),
                    _ => placement.end(bounds.start, bounds.stop),
                })
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
                            stub_address(layout, &placement, local).or_else(|| {
                                defined_address(object, object_id, symbol, layout, &placement)
                            })
                        }
                        None => defined_address(object, object_id, symbol, layout, &placement),
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
        placement,
        globals,
        symbol_values,
    }
}
