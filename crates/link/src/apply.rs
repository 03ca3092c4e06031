//! Copy each loaded section into the image and apply its relocations while its bytes are hot in
//! cache, all sections in parallel on disjoint slices of the working memory.

use crate::elf::{ObjectFile, LE};
use crate::ids::{ImageOffset, ObjectId};
use crate::layout::{InputSection, Layout};
use crate::resolve::{symbol_section, LinkerSymbol, Resolution, SymbolDb};
use crate::scan::{describe_place, GotPlan};
use crate::symbols::{classify, Placement, SymbolRef};
use crate::x86_64::{
    fits, plt_stub, relax_instruction, relaxation, reloc_kind, Formula, Range, Relax,
};
use anyhow::{anyhow, bail, Result};
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
    /// a section that is not loaded). Filled in parallel so that applying a relocation is a
    /// lookup, not a walk through symbol and section tables.
    symbol_values: Vec<Vec<u64>>,
}

/// Marks a symbol whose section is not loaded in `Addresses::symbol_values`.
const UNLOADED: u64 = u64::MAX;

impl Addresses {
    pub fn at(&self, offset: ImageOffset) -> TargetAddr {
        self.base + offset.get()
    }
}

/// The address of symbol `index` of `object` as the object defines it (locals, and the defining
/// symbol of a global). `None` if it lies in a section that is not loaded.
fn defined_address(
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
            let section = symbol_section(object, index, symbol)?;
            let offset = layout.section_offset(object_id, section)?;
            Some(base + offset.get() + value)
        }
    }
}

pub fn addresses(db: &SymbolDb<'_>, layout: &Layout, base: TargetAddr) -> Addresses {
    let globals = db
        .globals
        .par_iter()
        .enumerate()
        .map(|(index, global)| match global.resolution {
            Resolution::Defined { object, symbol, .. } => defined_address(
                &db.objects[object.index()],
                object,
                symbol as usize,
                layout,
                base,
            ),
            Resolution::Common { .. } => layout
                .commons
                .get(&crate::ids::GlobalId::from_index(index))
                .map(|offset| base + offset.get()),
            Resolution::External(address) => Some(
                layout
                    .copies
                    .get(&crate::ids::GlobalId::from_index(index))
                    .map_or(address, |copy| base + copy.get()),
            ),
            Resolution::UndefinedWeak | Resolution::Undefined => Some(TargetAddr(0)),
            Resolution::Linker(LinkerSymbol::GotBase) => Some(base + layout.got.get()),
            Resolution::Linker(LinkerSymbol::DsoHandle) => Some(base + layout.dso_handle.get()),
            Resolution::Linker(
                bound @ (LinkerSymbol::SectionStart | LinkerSymbol::SectionStop),
            ) => {
                let prefix_len = if bound == LinkerSymbol::SectionStart {
                    8
                } else {
                    7
                };
                let (start, stop) = layout.section_bounds.get(&global.name[prefix_len..])?;
                Some(
                    base + if bound == LinkerSymbol::SectionStart {
                        start.get()
                    } else {
                        stop.get()
                    },
                )
            }
        })
        .collect::<Vec<_>>();
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
                        Some(i) => globals[object_globals[i].index()],
                        None => defined_address(object, object_id, symbol, layout, base),
                    };
                    address.map_or(UNLOADED, TargetAddr::get)
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

/// Everything `apply` reads, bundled so the per-section workers share one reference.
pub struct ApplyContext<'a, 'data> {
    pub db: &'a SymbolDb<'data>,
    pub layout: &'a Layout,
    pub plan: &'a GotPlan,
    pub addresses: &'a Addresses,
}

impl ApplyContext<'_, '_> {
    fn symbol_address(&self, symbol: SymbolRef) -> Result<TargetAddr> {
        match symbol {
            SymbolRef::Global(id) => self.addresses.globals[id.index()].ok_or_else(|| {
                anyhow!(
                    "`{}` is defined in a section that is not loaded",
                    self.db.global_name(id)
                )
            }),
            SymbolRef::Local { object, symbol } => {
                let file = &self.db.objects[object.index()];
                defined_address(file, object, symbol as usize, self.layout, self.addresses.base)
                    .ok_or_else(|| {
                        anyhow!(
                            "`{}` lies in a section that is not loaded (a discarded COMDAT copy or a non-allocated section)",
                            file.describe_symbol(symbol as usize)
                        )
                    })
            }
        }
    }

    fn symbol_size(&self, symbol: SymbolRef) -> Result<u64> {
        let (object, index) = match symbol {
            SymbolRef::Local { object, symbol } => (object, symbol),
            SymbolRef::Global(id) => match self.db.global(id).resolution {
                Resolution::Defined { object, symbol, .. } => (object, symbol),
                Resolution::Common { size, .. } => return Ok(size),
                Resolution::UndefinedWeak | Resolution::Linker(_) => return Ok(0),
                Resolution::External(_) | Resolution::Undefined => {
                    bail!("the size of a symbol defined in a shared library is not known")
                }
            },
        };
        Ok(self.db.objects[object.index()]
            .symbol(index as usize)
            .map_or(0, |s| s.st_size(LE)))
    }

    fn got_address(&self, symbol: SymbolRef) -> Result<TargetAddr> {
        let slot = self
            .plan
            .slot(symbol)
            .ok_or_else(|| anyhow!("internal error: no GOT slot was planned"))?;
        Ok(self.addresses.at(self.layout.got_slot(slot)))
    }

    fn stub_address(&self, symbol: SymbolRef) -> Option<TargetAddr> {
        self.plan
            .stub(symbol)
            .map(|stub| self.addresses.at(self.layout.plt_stub(stub)))
    }
}

/// Fill the GOT and PLT, then copy and relocate every section into `image` (the working
/// memory of the whole image, zeroed).
pub fn apply(context: &ApplyContext<'_, '_>, image: &mut [u8]) -> Result<()> {
    write_got_and_plt(context, image)?;

    // Split the image into one disjoint slice per section, then fill them in parallel.
    let mut jobs = Vec::with_capacity(context.layout.placed.len());
    let mut rest: &mut [u8] = image;
    let mut cursor = 0u64;
    for (section, at) in &context.layout.placed {
        if section.nobits || section.size == 0 {
            continue;
        }
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut((at.get() - cursor) as usize);
        let (slice, tail) = tail.split_at_mut(section.size as usize);
        rest = tail;
        cursor = at.get() + section.size;
        jobs.push((section, *at, slice));
    }
    jobs.into_par_iter()
        .try_for_each(|(section, at, out)| apply_section(context, section, at, out))
}

fn write_got_and_plt(context: &ApplyContext<'_, '_>, image: &mut [u8]) -> Result<()> {
    let layout = context.layout;
    for (index, &symbol) in context.plan.slots.iter().enumerate() {
        let value = context.symbol_address(symbol)?;
        let at = layout
            .got_slot(crate::ids::GotSlot::from_index(index))
            .get() as usize;
        image[at..at + 8].copy_from_slice(&value.get().to_le_bytes());
    }
    for (index, &(_, slot)) in context.plan.stubs.iter().enumerate() {
        let stub = layout.plt_stub(crate::ids::PltStub::from_index(index));
        let code = plt_stub(
            context.addresses.at(stub).get(),
            context.addresses.at(layout.got_slot(slot)).get(),
        );
        let at = stub.get() as usize;
        image[at..at + code.len()].copy_from_slice(&code);
    }
    Ok(())
}

fn apply_section(
    context: &ApplyContext<'_, '_>,
    section: &InputSection,
    at: ImageOffset,
    out: &mut [u8],
) -> Result<()> {
    let db = context.db;
    let object = &db.objects[section.object.index()];
    out.copy_from_slice(object.section_data(section.index as usize));
    let section_address = context.addresses.at(at);
    let got_base = context.addresses.at(context.layout.got);
    let values = &context.addresses.symbol_values[section.object.index()];
    for rela in object.relocations[section.index as usize] {
        let offset = rela.r_offset.get(LE);
        let info = rela.r_info.get(LE);
        let (r_type, r_sym) = ((info & 0xffff_ffff) as u32, (info >> 32) as usize);
        let addend = rela.r_addend.get(LE);
        let fail = |message: String| anyhow!("{}: {message}", describe_place(db, section, offset));
        let kind = reloc_kind(r_type).map_err(|e| fail(e.to_string()))?;
        let against = || object.describe_symbol(r_sym);
        let in_bounds = usize::try_from(offset).ok().filter(|&o| {
            o.checked_add(kind.width)
                .is_some_and(|end| end <= out.len())
        });
        let Some(mut field) = in_bounds else {
            return Err(fail(format!(
                "{} against `{}` lies outside its section (size {:#x})",
                kind.name,
                against(),
                out.len()
            )));
        };
        let Some(&value_of_symbol) = values.get(r_sym) else {
            return Err(fail(format!("invalid symbol index {r_sym}")));
        };
        let symbol = match db.global_of(section.object, r_sym) {
            Some(id) => SymbolRef::Global(id),
            None => SymbolRef::Local {
                object: section.object,
                symbol: r_sym as u32,
            },
        };
        let with_symbol =
            |e: anyhow::Error| fail(format!("{} against `{}`: {e}", kind.name, against()));
        let place = section_address + field as u64;
        let s = || match value_of_symbol {
            // Recomputed for its error message.
            UNLOADED => Err(with_symbol(
                context
                    .symbol_address(symbol)
                    .err()
                    .unwrap_or_else(|| anyhow!("lies in a section that is not loaded")),
            )),
            value => Ok(TargetAddr(value)),
        };
        let value: i64 = match kind.formula {
            Formula::None => continue,
            Formula::Absolute => {
                let direct = s()?.get().wrapping_add(addend as u64) as i64;
                // Non-PIC code naming a library function by a 32-bit address: its stub, in the
                // image, stands for it (ld's canonical PLT entry).
                match context.stub_address(symbol) {
                    Some(stub) if !fits(direct, kind.width, kind.range) => {
                        stub.get().wrapping_add(addend as u64) as i64
                    }
                    _ => direct,
                }
            }
            Formula::PcRelative | Formula::PltRelative => {
                let target = s()?;
                let direct = target.wrapping_offset(addend).signed_diff(place);
                let reachable = fits(direct, kind.width, kind.range);
                // Out of reach (a library far from the image): go through the symbol's stub.
                match context.stub_address(symbol) {
                    Some(stub) if !reachable => stub.wrapping_offset(addend).signed_diff(place),
                    _ => direct,
                }
            }
            Formula::GotPcRelative { relax } => {
                let direct = match relax {
                    Relax::Never => None,
                    _ => relaxation(out, field, relax).and_then(|relaxation| {
                        let target = context.symbol_address(symbol).ok()?;
                        let new_field = match relaxation {
                            crate::x86_64::Relaxation::IndirectJumpToDirect => field - 1,
                            _ => field,
                        };
                        let value = target
                            .wrapping_offset(addend)
                            .signed_diff(section_address + new_field as u64);
                        fits(value, 4, Range::Signed).then_some((relaxation, value))
                    }),
                };
                match direct {
                    Some((relaxation, value)) => {
                        field = relax_instruction(out, field, relaxation);
                        value
                    }
                    None => context
                        .got_address(symbol)
                        .map_err(with_symbol)?
                        .wrapping_offset(addend)
                        .signed_diff(place),
                }
            }
            Formula::GotOffsetOfSlot => {
                let slot = context.got_address(symbol).map_err(with_symbol)?;
                (slot - got_base).wrapping_add(addend as u64) as i64
            }
            Formula::OffsetFromGot => s()?.wrapping_offset(addend).signed_diff(got_base),
            Formula::GotBaseRelative => got_base.wrapping_offset(addend).signed_diff(place),
            Formula::PltOffsetFromGot => {
                let target = match context.stub_address(symbol) {
                    Some(stub) => stub,
                    None => s()?,
                };
                target.wrapping_offset(addend).signed_diff(got_base)
            }
            Formula::Size => context
                .symbol_size(symbol)
                .map_err(with_symbol)?
                .wrapping_add(addend as u64) as i64,
        };
        if !fits(value, kind.width, kind.range) {
            let range = match kind.range {
                Range::Signed => "signed",
                Range::Unsigned => "unsigned",
                Range::Either => "signed or unsigned",
            };
            return Err(fail(format!(
                "{} against `{}`: value {:#x} does not fit in {} bits {range}{}",
                kind.name,
                against(),
                value,
                kind.width * 8,
                match (
                    kind.formula,
                    classify(db, section.object, r_sym).map(|(_, p)| p)
                ) {
                    (Formula::Absolute, _) =>
                        " (absolute addresses need the code placed below 2 GiB; compile with -fPIC)",
                    (_, Ok(Placement::External)) =>
                        " (the symbol lies in a shared library too far away)",
                    _ => "",
                }
            )));
        }
        out[field..field + kind.width].copy_from_slice(&value.to_le_bytes()[..kind.width]);
    }
    Ok(())
}
