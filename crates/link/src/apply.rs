//! Copy each loaded section into the image and apply its relocations while its bytes are hot in
//! cache, all sections in parallel on disjoint slices of the working memory.

use crate::addresses::{Addresses, UNLOADED};
use crate::elf::LE;
use crate::error::{escape_bytes, LinkError, RelocationProblem, TlsProblem};
use crate::ids::{GotSlot, PltStub};
use crate::layout::{Layout, PlacedSection};
use crate::resolve::{Resolution, SymbolDb, SymbolLocation};
use crate::sections::InputSection;
use crate::symbols::{classify, SymbolRef};
use crate::tls::{self, is_thread_local_value, TlsEntry, TlsValues};
use object::read::elf::{Rela as _, Sym as _};
use rayon::prelude::*;
use rjitlink_arch::{fits, Arch, Formula, HostArch, Relax, RelocKind, TlsAccess};
use rjitlink_memory::TargetAddr;

/// Everything `apply` reads, bundled so the per-section workers share one reference.
pub struct ApplyContext<'a, 'data> {
    pub db: &'a SymbolDb<'data>,
    pub layout: &'a Layout,
    pub addresses: &'a Addresses,
    /// What the loader computed for the unit's thread-local storage (`None` while the TLS
    /// block's own initial image is relocated, before the module is loaded).
    pub tls: Option<&'a TlsValues>,
}

/// Why a symbol's address, size or GOT slot is not available to a relocation.
enum Unavailable {
    NotLoaded,
    LibrarySize,
    /// Scan and apply disagree: a bug, reported rather than hidden.
    NoSlotPlanned,
}

impl Unavailable {
    fn problem(self, kind: &RelocKind, symbol: String) -> RelocationProblem {
        let relocation = kind.name;
        match self {
            Unavailable::NotLoaded => RelocationProblem::SymbolNotLoaded { relocation, symbol },
            Unavailable::LibrarySize => RelocationProblem::LibrarySymbolSize { relocation, symbol },
            Unavailable::NoSlotPlanned => RelocationProblem::NoSlotPlanned { relocation, symbol },
        }
    }
}

impl ApplyContext<'_, '_> {
    /// The value relocations use for `symbol` (an IFUNC's is its stub).
    fn symbol_address(&self, symbol: SymbolRef) -> Option<TargetAddr> {
        match symbol {
            SymbolRef::Global(id) => self.addresses.globals[id.index()],
            SymbolRef::Local { object, symbol } => {
                match self.addresses.symbol_values[object.index()][symbol as usize] {
                    UNLOADED => None,
                    value => Some(TargetAddr(value)),
                }
            }
        }
    }

    fn symbol_size(&self, symbol: SymbolRef) -> Result<u64, Unavailable> {
        let (object, index) = match symbol {
            SymbolRef::Local { object, symbol } => (object, symbol),
            SymbolRef::Global(id) => match self.db.global(id).resolution {
                Resolution::Defined { object, symbol, .. } => (object, symbol),
                Resolution::Common { size, .. } => return Ok(size),
                Resolution::UndefinedWeak | Resolution::Linker(_) => return Ok(0),
                Resolution::External(_) | Resolution::Undefined => {
                    return Err(Unavailable::LibrarySize)
                }
            },
        };
        Ok(self.db.objects[object.index()]
            .symbol(index as usize)
            .map_or(0, |s| s.st_size(LE)))
    }

    /// The address of the symbol's GOT slot. Scan plans one for every GOT-relative
    /// relocation except relaxable loads of symbols in the image; if such a symbol turns out
    /// not to be loaded, there is none.
    fn got_address(&self, symbol: SymbolRef) -> Result<TargetAddr, Unavailable> {
        match self.layout.got_plan.slot(symbol) {
            Some(slot) => Ok(self.addresses.at(self.layout.got_slot(slot))),
            None if self.symbol_address(symbol).is_none() => Err(Unavailable::NotLoaded),
            None => Err(Unavailable::NoSlotPlanned),
        }
    }

    /// The error for a GOT slot whose symbol lies in a section that is not loaded.
    fn slot_not_loaded(&self, symbol: SymbolRef) -> LinkError {
        let (file, symbol) = match symbol {
            SymbolRef::Global(id) => {
                let file = match self.db.global(id).resolution {
                    Resolution::Defined { object, .. } => {
                        Some(self.db.objects[object.index()].name.clone())
                    }
                    _ => None,
                };
                (file, self.db.global_name(id))
            }
            SymbolRef::Local { object, symbol } => {
                let file = &self.db.objects[object.index()];
                (
                    Some(file.name.clone()),
                    file.describe_symbol(symbol as usize),
                )
            }
        };
        LinkError::Symbol {
            file,
            symbol,
            problem: "needs a GOT slot but lies in a section that is not loaded (a discarded COMDAT copy or a non-allocated section)".into(),
        }
    }

    fn stub_address(&self, symbol: SymbolRef) -> Option<TargetAddr> {
        self.layout
            .got_plan
            .stub(symbol)
            .map(|stub| self.addresses.at(self.layout.plt_stub(stub)))
    }
}

/// Bytes of the image a worker prepares at once, when the memory asks to be told before it is
/// written (`apply`'s `before_write`): a few system calls per megabyte, and parts enough for
/// the workers to share.
const WRITE_PART: u64 = 64 << 10;

/// Fill the GOT and PLT, then copy and relocate every section into `image` (the working
/// memory of the whole image, zeroed).
///
/// With `before_write`, the sections are written in parts of about `WRITE_PART` bytes, and
/// the worker writing a part first calls it with the part's bytes (offsets into `image`): the
/// parts are consecutive from 0 to the end of the last section, so that each byte is named
/// once, before it is written. (The memory's own preparation of a part runs on the link's
/// threads, where it competes with no other thread of the link's.)
pub fn apply(
    context: &ApplyContext<'_, '_>,
    image: &mut [u8],
    before_write: Option<&(dyn Fn(std::ops::Range<usize>) + Sync)>,
) -> Result<(), LinkError> {
    write_got_and_plt(context, image)?;
    if let Some(thunk) = context.layout.ifunc_thunk {
        let at = thunk.get() as usize;
        HostArch::write_ifunc_thunk(&mut image[at..at + HostArch::IFUNC_THUNK_SIZE as usize]);
    }
    // __dso_handle holds its own address, as crtbeginS.o makes it in a shared object: glibc's
    // atexit passes its value and C++ passes its address to __cxa_atexit, and both must name
    // this unit for __cxa_finalize when it is freed.
    if let Some(tls) = context.tls {
        // The TLS GOT entries hold the loader's words as they are.
        let start = context.layout.tls_got.get() as usize;
        for (i, word) in tls.words.iter().enumerate() {
            let at = start + i * 8;
            image[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
    }
    let dso_handle = context.layout.dso_handle.get() as usize;
    let own_address = context.addresses.at(context.layout.dso_handle).get();
    image[dso_handle..dso_handle + 8].copy_from_slice(&own_address.to_le_bytes());

    // Split the image into one disjoint slice per section, then fill them in parallel.
    let mut jobs = Vec::with_capacity(context.layout.placed.len());
    let mut rest: &mut [u8] = image;
    let mut cursor = 0u64;
    for PlacedSection { section, offset } in &context.layout.placed {
        if section.nobits || section.size == 0 {
            continue;
        }
        // Layout placed the sections in order, without overlap, inside the image; if it ever
        // did not, this is an error rather than a panic.
        let overlap = || LinkError::Internal("sections overlap or lie outside the image");
        let gap = offset.get().checked_sub(cursor).ok_or_else(overlap)?;
        let tail = std::mem::take(&mut rest);
        let (_, tail) = usize::try_from(gap)
            .ok()
            .and_then(|gap| tail.split_at_mut_checked(gap))
            .ok_or_else(overlap)?;
        let (slice, tail) = usize::try_from(section.size)
            .ok()
            .and_then(|size| tail.split_at_mut_checked(size))
            .ok_or_else(overlap)?;
        rest = tail;
        cursor = offset.get() + section.size;
        jobs.push((section, context.addresses.at(*offset), slice, cursor));
    }
    let Some(before_write) = before_write else {
        return jobs
            .into_par_iter()
            .try_for_each(|(section, address, out, _)| {
                apply_section(context, section, address, out)
            });
    };
    // Consecutive sections, by whole sections, into parts ending where one reaches
    // `WRITE_PART` bytes past the previous part's end.
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let (mut part_start, mut part_end) = (0u64, 0u64);
    for job in jobs {
        part_end = job.3;
        part.push(job);
        if part_end - part_start >= WRITE_PART {
            parts.push((part_start..part_end, std::mem::take(&mut part)));
            part_start = part_end;
        }
    }
    if !part.is_empty() {
        parts.push((part_start..part_end, part));
    }
    parts.into_par_iter().try_for_each(|(bytes, jobs)| {
        before_write(bytes.start as usize..bytes.end as usize);
        jobs.into_iter().try_for_each(|(section, address, out, _)| {
            apply_section(context, section, address, out)
        })
    })
}

fn write_got_and_plt(context: &ApplyContext<'_, '_>, image: &mut [u8]) -> Result<(), LinkError> {
    let layout = context.layout;
    for (index, &symbol) in layout.got_plan.slots.iter().enumerate() {
        let value = context
            .symbol_address(symbol)
            .ok_or_else(|| context.slot_not_loaded(symbol))?;
        let at = layout.got_slot(GotSlot::from_index(index)).get() as usize;
        image[at..at + 8].copy_from_slice(&value.get().to_le_bytes());
    }
    // An IFUNC's jump slot is filled by its resolver; until then it is 0, so that calling
    // the IFUNC from an earlier resolver faults rather than loops through its own stub.
    for ifunc in &layout.got_plan.ifuncs {
        let at = layout.got_slot(ifunc.jump).get() as usize;
        image[at..at + 8].fill(0);
    }
    for (index, &slot) in layout.got_plan.stubs.iter().enumerate() {
        let stub = layout.plt_stub(PltStub::from_index(index));
        let at = stub.get() as usize;
        HostArch::write_plt_stub(
            &mut image[at..at + HostArch::PLT_STUB_SIZE as usize],
            context.addresses.at(stub).get(),
            context.addresses.at(layout.got_slot(slot)).get(),
        );
    }
    Ok(())
}

/// The records of an unwind table: each one's start, and whether it is an FDE (its CIE
/// pointer is not 0). Stops at a length that does not fit.
fn unwind_records(table: &[u8]) -> Vec<(usize, bool)> {
    let word = |at: usize| -> Option<u32> {
        let bytes = table.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    };
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(length) = word(at) {
        // 64-bit lengths (0xffffffff) do not occur in x86-64 unwind tables: stop there.
        if length == 0 || length == u32::MAX {
            break;
        }
        records.push((at, word(at + 4).is_some_and(|id| id != 0)));
        match at.checked_add(4 + length as usize) {
            Some(next) if next <= table.len() => at = next,
            _ => break,
        }
    }
    records
}

/// Whether `offset` lies inside an FDE of `records`.
fn in_fde(records: &[(usize, bool)], offset: usize) -> bool {
    let index = records.partition_point(|&(start, _)| start <= offset);
    index > 0 && records[index - 1].1
}

/// Copy `section` into `out`, which lies at `section_address` in the target, and apply its
/// relocations.
pub fn apply_section(
    context: &ApplyContext<'_, '_>,
    section: &InputSection,
    section_address: TargetAddr,
    out: &mut [u8],
) -> Result<(), LinkError> {
    let db = context.db;
    let object = &db.objects[section.object.index()];
    let data = object.section_data(section.index as usize);
    if data.len() != out.len() {
        // Parse checked that every loaded section's bytes lie in its file: not reached.
        return Err(LinkError::Section {
            file: object.name.clone(),
            section: escape_bytes(object.section_name(section.index as usize)),
            problem: "lies outside the file".into(),
        });
    }
    out.copy_from_slice(data);
    let got_base = context.addresses.at(context.layout.got);
    let values = &context.addresses.symbol_values[section.object.index()];
    // For `.eh_frame`: where each record starts and whether it is an FDE, read when first
    // needed (only relocations against code that is not loaded need it).
    let mut eh_records: Option<Vec<(usize, bool)>> = None;
    for rela in object.relocations[section.index as usize] {
        let offset = rela.r_offset(LE);
        let r_sym = rela.r_sym(LE, false) as usize;
        let addend = rela.r_addend(LE);
        // Macros, not closures: a closure's captures were stored for every relocation,
        // though only an error uses them.
        macro_rules! fail {
            ($problem:expr) => {
                section.relocation_error(db, offset, $problem)
            };
        }
        macro_rules! against {
            () => {
                object.describe_symbol(r_sym)
            };
        }
        let kind = HostArch::reloc_kind(rela.r_type(LE, false)).map_err(|reason| {
            fail!(RelocationProblem::Unsupported {
                reason,
                symbol: against!(),
            })
        })?;
        let in_bounds = usize::try_from(offset).ok().filter(|&o| {
            o.checked_add(kind.width)
                .is_some_and(|end| end <= out.len())
        });
        let Some(mut field) = in_bounds else {
            return Err(fail!(RelocationProblem::OutsideSection {
                relocation: kind.name,
                symbol: against!(),
                section_size: out.len() as u64,
            }));
        };
        let Some(&value_of_symbol) = values.get(r_sym) else {
            return Err(fail!(RelocationProblem::InvalidSymbolIndex(r_sym as u64)));
        };
        // Only the GOT, stub, size and thread-local cases name the symbol; most relocations
        // need its value alone.
        let symbol = || match db.global_of(section.object, r_sym) {
            Some(id) => SymbolRef::Global(id),
            None => SymbolRef::Local {
                object: section.object,
                symbol: r_sym as u32,
            },
        };
        if value_of_symbol == UNLOADED && section.eh_frame {
            let records = eh_records.get_or_insert_with(|| unwind_records(out));
            if in_fde(records, field) {
                // The FDE of code that is not loaded (a discarded COMDAT copy, with its LSDA):
                // a zero pc_begin makes the unwinder skip the record, as it skips link-once
                // functions that were removed (ld leaves the record out). A CIE's fields
                // (its personality) are not zeroed: that would change every FDE using it.
                out[field..field + kind.width].fill(0);
                continue;
            }
        }
        // Errors are made where they occur (these expand there): closures shared by the
        // error paths were set up for every relocation, a tenth of applying one.
        macro_rules! tls_problem {
            ($problem:expr) => {
                fail!(RelocationProblem::ThreadLocal {
                    relocation: kind.name,
                    symbol: against!(),
                    problem: $problem,
                })
            };
        }
        macro_rules! unavailable {
            () => {
                |why: Unavailable| fail!(why.problem(kind, against!()))
            };
        }
        if is_thread_local_value(value_of_symbol)
            && !matches!(
                kind.formula,
                Formula::ThreadLocal(_) | Formula::None | Formula::Size
            )
        {
            return Err(tls_problem!(TlsProblem::ThreadLocalSymbol));
        }
        let place = section_address + field as u64;
        let s = || match value_of_symbol {
            UNLOADED => Err(unavailable!()(Unavailable::NotLoaded)),
            value => Ok(TargetAddr(value)),
        };
        let value: i64 = match kind.formula {
            Formula::None => continue,
            Formula::Absolute => {
                let direct = s()?.get().wrapping_add(addend as u64) as i64;
                // Non-PIC code naming a library function by a 32-bit address: its stub, in the
                // image, stands for it (ld's canonical PLT entry). Looked up only then: most
                // values fit, and the lookup cost as much as the rest of the relocation.
                if fits(direct, kind.width, kind.range) {
                    // Written at once: the range check below is for the other values.
                    write_field(&mut out[field..field + kind.width], direct);
                    continue;
                }
                context
                    .stub_address(symbol())
                    .map_or(direct, |stub| stub.get().wrapping_add(addend as u64) as i64)
            }
            Formula::PcRelative | Formula::PltRelative => {
                let target = s()?;
                let direct = target.wrapping_offset(addend).signed_diff(place);
                // Out of reach (a library far from the image): go through the symbol's stub,
                // looked up only then (most calls reach their target directly).
                if fits(direct, kind.width, kind.range) {
                    write_field(&mut out[field..field + kind.width], direct);
                    continue;
                }
                context.stub_address(symbol()).map_or(direct, |stub| {
                    stub.wrapping_offset(addend).signed_diff(place)
                })
            }
            Formula::GotPcRelative { relax } => {
                let direct = match relax {
                    Relax::Never => None,
                    _ => HostArch::relaxation(out, field, relax).and_then(|relaxation| {
                        let target = context.symbol_address(symbol())?;
                        let new_field = HostArch::relaxed_field(relaxation, field);
                        let value = target
                            .wrapping_offset(addend)
                            .signed_diff(section_address + new_field as u64);
                        fits(value, kind.width, kind.range).then_some((relaxation, value))
                    }),
                };
                match direct {
                    Some((relaxation, value)) => {
                        field = HostArch::relax_instruction(out, field, relaxation);
                        value
                    }
                    None => context
                        .got_address(symbol())
                        .map_err(unavailable!())?
                        .wrapping_offset(addend)
                        .signed_diff(place),
                }
            }
            Formula::GotOffsetOfSlot => {
                let slot = context.got_address(symbol()).map_err(unavailable!())?;
                (slot - got_base).wrapping_add(addend as u64) as i64
            }
            Formula::OffsetFromGot => s()?.wrapping_offset(addend).signed_diff(got_base),
            Formula::GotBaseRelative => got_base.wrapping_offset(addend).signed_diff(place),
            Formula::PltOffsetFromGot => {
                let target = match context.stub_address(symbol()) {
                    Some(stub) => stub,
                    None => s()?,
                };
                target.wrapping_offset(addend).signed_diff(got_base)
            }
            Formula::Size => context
                .symbol_size(symbol())
                .map_err(unavailable!())?
                .wrapping_add(addend as u64) as i64,
            Formula::ThreadLocal(access) => {
                match thread_local_value(context, access, symbol(), addend, place) {
                    Ok(Some(value)) => value,
                    Ok(None) => continue,
                    Err(problem) => return Err(tls_problem!(problem)),
                }
            }
        };
        if !fits(value, kind.width, kind.range) {
            let location = classify(db, section.object, r_sym).map(|(_, location)| location);
            let hint = match (kind.formula, location) {
                (Formula::Absolute, _) => {
                    Some("absolute addresses need the code placed below 2 GiB; compile with -fPIC")
                }
                (_, Some(SymbolLocation::External)) => Some(
                    "the symbol lies outside the image, too far away; compile with -fPIC to reach it through the GOT",
                ),
                _ => None,
            };
            return Err(fail!(RelocationProblem::Overflow {
                relocation: kind.name,
                symbol: against!(),
                value,
                bits: kind.width * 8,
                range: kind.range,
                hint,
            }));
        }
        write_field(&mut out[field..field + kind.width], value);
    }
    Ok(())
}

/// Write the low bytes of `value` into `field` (1, 2, 4 or 8 bytes), little-endian. The common
/// widths are stores of their own: a copy of a length known only at run time is a call to
/// memcpy, which cost as much as a tenth of applying a relocation.
#[inline]
fn write_field(field: &mut [u8], value: i64) {
    // Stores of different types: copies of the two widths would be merged back into one
    // call.
    if let Ok(field) = <&mut [u8; 4]>::try_from(&mut *field) {
        *field = (value as u32).to_le_bytes();
    } else if let Ok(field) = <&mut [u8; 8]>::try_from(&mut *field) {
        *field = value.to_le_bytes();
    } else {
        let width = field.len();
        field.copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

/// The value of a thread-local relocation (`None`: nothing to write). Scan checked the
/// symbol is one the access can reach and planned the entries.
fn thread_local_value(
    context: &ApplyContext<'_, '_>,
    access: TlsAccess,
    symbol: SymbolRef,
    addend: i64,
    place: TargetAddr,
) -> Result<Option<i64>, TlsProblem> {
    let layout = context.layout;
    let offset = || {
        tls::symbol_offset(context.db, layout, symbol)
            .map(|offset| offset.get().wrapping_add(addend as u64) as i64)
            .ok_or(TlsProblem::NotThreadLocal)
    };
    let entry = |entry: TlsEntry| -> Result<Option<i64>, TlsProblem> {
        let at = tls::entry_offset(layout, entry).ok_or(TlsProblem::NotThreadLocal)?;
        Ok(Some(
            context
                .addresses
                .at(at)
                .wrapping_offset(addend)
                .signed_diff(place),
        ))
    };
    // Values only the loader knows; absent only in the initial image, where scan allows
    // none of these.
    let loaded = || context.tls.ok_or(TlsProblem::InInitialImage);
    match access {
        TlsAccess::DescriptorCall => Ok(None),
        TlsAccess::OffsetInBlock => offset().map(Some),
        TlsAccess::GeneralDynamic => entry(TlsEntry::GeneralDynamic(symbol)),
        TlsAccess::LocalDynamic => entry(TlsEntry::LocalDynamic),
        TlsAccess::GotThreadPointerOffset => entry(TlsEntry::InitialExec(symbol)),
        TlsAccess::Descriptor => entry(TlsEntry::Descriptor(symbol)),
        TlsAccess::ThreadPointerOffset => {
            let block = loaded()?.block_offset.ok_or(TlsProblem::NotThreadLocal)?;
            Ok(Some(block.wrapping_add(offset()? as u64) as i64))
        }
        TlsAccess::ModuleId => {
            let module = loaded()?.module_id.ok_or(TlsProblem::NotThreadLocal)?;
            Ok(Some(module as i64))
        }
    }
}
