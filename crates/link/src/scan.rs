//! Scan relocations for the GOT slots, PLT stubs and copies of library data the link needs,
//! before layout sizes them.
//!
//! Addresses are not known yet, so the plan is conservative: every external or undefined-weak
//! symbol called through a PC-relative reference gets a stub (used only if the symbol turns
//! out to be out of reach), and every GOT-relative reference gets a slot unless it is a
//! relaxable load of a symbol in the image, which is always within reach.

use crate::elf::LE;
use crate::error::{LinkError, RelocationProblem, TlsProblem};
use crate::ids::{GlobalId, GotSlot, PltStub};
use crate::resolve::{Resolution, SymbolDb, SymbolLocation};
use crate::sections::{input_sections, InputSection};
use crate::symbols::{classify, SymbolRef};
use crate::timing::PhaseTimes;
use crate::tls::{TlsEntry, TlsGotPlan};
use foldhash::HashMap;
use object::elf;
use object::read::elf::Rela as _;
use rayon::prelude::*;
use rjitlink_arch::{Arch, Formula, HostArch, Reach, Relax, TlsAccess};
use rjitlink_memory::TargetAddr;
use rjitlink_target::{Executor, SymbolKind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What a global needs from the link, as bits.
const NEEDS_GOT: u8 = 1;
const NEEDS_STUB: u8 = 2;
/// An external symbol referenced directly (a near PC-relative or a low absolute reference): it
/// needs a copy in the image if it is data, or a stub to stand for it if it is a function.
const DIRECT_EXTERNAL: u8 = 4;

/// The result of the scan phase: what layout must make room for.
pub struct Scan {
    /// The sections to load, in input order.
    pub sections: Vec<InputSection>,
    pub got: GotPlan,
    /// Library data the image reads directly, with its size: the image holds a copy (a copy
    /// relocation). Ordered by id, so layout places them reproducibly.
    pub copies: BTreeMap<GlobalId, u64>,
    /// Some low absolute reference names a symbol in the image, so the image must be placed
    /// where such references reach (below 2 GiB on x86-64).
    pub needs_low_addresses: bool,
}

/// An IFUNC and the slot its stub jumps through.
#[derive(Clone, Copy, Debug)]
pub struct IfuncSlot {
    pub symbol: SymbolRef,
    pub jump: GotSlot,
}

/// The GOT slots and PLT stubs of a link.
#[derive(Default)]
pub struct GotPlan {
    /// What each GOT slot holds the address of.
    pub slots: Vec<SymbolRef>,
    /// The GOT slot each PLT stub jumps through, in stub order.
    pub stubs: Vec<GotSlot>,
    /// IFUNCs defined in the image, with the slot their stub jumps through, which the target
    /// fills with what the resolver returns. The stub stands for the IFUNC everywhere (its
    /// GOT slot, if it has one, holds the stub's address), so its address is one value.
    pub ifuncs: Vec<IfuncSlot>,
    /// Thread-local entries, after the slots: words the loader's values fill.
    pub tls: TlsGotPlan,
    /// Each global's slot and stub, by id (empty until `into_plan` sizes them): apply asks
    /// once per call and GOT relocation, 577,000 times for LLVM, and a flat table answers
    /// without hashing the symbol, which cost as much as applying the relocations.
    global_slots: Vec<Option<GotSlot>>,
    global_stubs: Vec<Option<PltStub>>,
    /// Local symbols' slots and stubs (few: GOT loads of locals are mostly relaxed).
    local_slots: HashMap<SymbolRef, GotSlot>,
    local_stubs: HashMap<SymbolRef, PltStub>,
}

impl GotPlan {
    pub fn slot(&self, symbol: SymbolRef) -> Option<GotSlot> {
        match symbol {
            SymbolRef::Global(id) => self.global_slots.get(id.index()).copied().flatten(),
            SymbolRef::Local { .. } => self.local_slots.get(&symbol).copied(),
        }
    }

    pub fn stub(&self, symbol: SymbolRef) -> Option<PltStub> {
        match symbol {
            SymbolRef::Global(id) => self.global_stubs.get(id.index()).copied().flatten(),
            SymbolRef::Local { .. } => self.local_stubs.get(&symbol).copied(),
        }
    }

    fn add_slot(&mut self, symbol: SymbolRef) -> GotSlot {
        if let Some(slot) = self.slot(symbol) {
            return slot;
        }
        self.slots.push(symbol);
        let slot = GotSlot::from_index(self.slots.len() - 1);
        match symbol {
            SymbolRef::Global(id) => self.global_slots[id.index()] = Some(slot),
            SymbolRef::Local { .. } => {
                self.local_slots.insert(symbol, slot);
            }
        }
        slot
    }

    fn add_stub(&mut self, symbol: SymbolRef, slot: GotSlot) {
        if self.stub(symbol).is_some() {
            return;
        }
        let stub = PltStub::from_index(self.stubs.len());
        self.stubs.push(slot);
        match symbol {
            SymbolRef::Global(id) => self.global_stubs[id.index()] = Some(stub),
            SymbolRef::Local { .. } => {
                self.local_stubs.insert(symbol, stub);
            }
        }
    }

    /// A stub for an IFUNC and the slot it jumps through, once.
    fn add_ifunc(&mut self, symbol: SymbolRef) {
        if self.stub(symbol).is_some() {
            return;
        }
        // Not the symbol's slot: GOT-relative references get a slot of their own, holding the
        // stub.
        self.slots.push(symbol);
        let jump = GotSlot::from_index(self.slots.len() - 1);
        self.add_stub(symbol, jump);
        self.ifuncs.push(IfuncSlot { symbol, jump });
    }
}

/// The scan phase: the loaded sections, and the GOT slots, stubs and copies their relocations
/// need. Asks the target once about the library symbols the image reads directly.
pub fn scan(
    db: &SymbolDb<'_>,
    executor: &mut dyn Executor,
    times: &PhaseTimes,
) -> Result<Scan, LinkError> {
    let _span = times.span("scan");
    let sections = input_sections(db)?;
    let needs = scan_relocations(db, &sections)?;
    let copies = copied_externals(db, &needs.direct_externals(), executor)?;
    let needs_low_addresses = needs.needs_low_addresses;
    let got = needs.into_plan(db, &copies);
    Ok(Scan {
        sections,
        got,
        copies,
        needs_low_addresses,
    })
}

/// What the relocations need, before copy relocations are decided.
struct RelocationNeeds {
    /// `NEEDS_*` bits per global.
    global_needs: Vec<u8>,
    /// Local symbols loaded through the GOT.
    local_got: Vec<SymbolRef>,
    /// Thread-local GOT entries, in section order (with repeats).
    tls: Vec<TlsEntry>,
    needs_low_addresses: bool,
}

/// What one section's relocations need besides the per-global bits.
#[derive(Default)]
struct SectionNeeds {
    local_got: Vec<SymbolRef>,
    tls: Vec<TlsEntry>,
}

fn scan_relocations(
    db: &SymbolDb<'_>,
    sections: &[InputSection],
) -> Result<RelocationNeeds, LinkError> {
    let global_needs: Vec<AtomicU8> = (0..db.globals.len()).map(|_| AtomicU8::new(0)).collect();
    let needs_low_addresses = AtomicBool::new(false);
    let per_section: Vec<SectionNeeds> = sections
        .par_iter()
        .map(|section| scan_section(db, section, &global_needs, &needs_low_addresses))
        .collect::<Result<_, _>>()?;
    let mut local_got = Vec::new();
    let mut tls = Vec::new();
    for needs in per_section {
        local_got.extend(needs.local_got);
        tls.extend(needs.tls);
    }
    Ok(RelocationNeeds {
        global_needs: global_needs.into_iter().map(AtomicU8::into_inner).collect(),
        local_got,
        tls,
        needs_low_addresses: needs_low_addresses.into_inner(),
    })
}

impl RelocationNeeds {
    /// External symbols referenced directly, which need a copy or a stub.
    fn direct_externals(&self) -> Vec<GlobalId> {
        self.global_needs
            .iter()
            .enumerate()
            .filter(|(_, &needs)| needs & DIRECT_EXTERNAL != 0)
            .map(|(index, _)| GlobalId::from_index(index))
            .collect()
    }

    /// Assign GOT slots and stubs. Direct externals that are not `copied` get a stub, which
    /// stands for them where their own address is out of reach; every IFUNC gets both.
    fn into_plan(self, db: &SymbolDb<'_>, copied: &BTreeMap<GlobalId, u64>) -> GotPlan {
        let mut plan = GotPlan {
            global_slots: vec![None; db.globals.len()],
            global_stubs: vec![None; db.globals.len()],
            ..GotPlan::default()
        };
        for (index, &needs) in self.global_needs.iter().enumerate() {
            let id = GlobalId::from_index(index);
            if db.locations[index] == SymbolLocation::Ifunc {
                plan.add_ifunc(SymbolRef::Global(id));
                if needs & NEEDS_GOT != 0 {
                    plan.add_slot(SymbolRef::Global(id));
                }
                continue;
            }
            let mut needs = needs;
            // A host's data has no stub to stand for it: the reference reaches it directly
            // or fails as an overflow (which says to compile with -fPIC).
            if needs & DIRECT_EXTERNAL != 0
                && !copied.contains_key(&id)
                && db.absolute_data.binary_search(&id).is_err()
            {
                needs |= NEEDS_GOT | NEEDS_STUB;
            }
            if needs & (NEEDS_GOT | NEEDS_STUB) == 0 {
                continue;
            }
            let slot = plan.add_slot(SymbolRef::Global(id));
            if needs & NEEDS_STUB != 0 {
                plan.add_stub(SymbolRef::Global(id), slot);
            }
        }
        for symbol in self.local_got {
            let SymbolRef::Local {
                object,
                symbol: index,
            } = symbol
            else {
                unreachable!("locals only")
            };
            if let Some((_, SymbolLocation::Ifunc)) = classify(db, object, index as usize) {
                plan.add_ifunc(symbol);
            }
            plan.add_slot(symbol);
        }
        for entry in self.tls {
            plan.tls.add(entry);
        }
        plan
    }
}

fn scan_section(
    db: &SymbolDb<'_>,
    section: &InputSection,
    global_needs: &[AtomicU8],
    needs_low_addresses: &AtomicBool,
) -> Result<SectionNeeds, LinkError> {
    let object = &db.objects[section.object.index()];
    let relocations = object.relocations[section.index as usize];
    let mut needs = SectionNeeds::default();
    if relocations.is_empty() {
        return Ok(needs);
    }
    let code = object.section_data(section.index as usize);
    for rela in relocations {
        let offset = rela.r_offset(LE);
        let r_sym = rela.r_sym(LE, false) as usize;
        let fail = |problem| section.relocation_error(db, offset, problem);
        let kind = HostArch::reloc_kind(rela.r_type(LE, false)).map_err(|reason| {
            fail(RelocationProblem::Unsupported {
                reason,
                symbol: object.describe_symbol(r_sym),
            })
        })?;
        if section.thread_local && !fits_initial_image(kind.formula) {
            return Err(fail(RelocationProblem::ThreadLocal {
                relocation: kind.name,
                symbol: object.describe_symbol(r_sym),
                problem: TlsProblem::InInitialImage,
            }));
        }
        if let Formula::ThreadLocal(access) = kind.formula {
            if access == TlsAccess::DescriptorCall {
                continue;
            }
            let (symbol, location) = classify(db, section.object, r_sym)
                .ok_or_else(|| fail(RelocationProblem::InvalidSymbolIndex(r_sym as u64)))?;
            let entry = tls_entry(access, symbol, location).map_err(|problem| {
                fail(RelocationProblem::ThreadLocal {
                    relocation: kind.name,
                    symbol: object.describe_symbol(r_sym),
                    problem,
                })
            })?;
            needs.tls.extend(entry);
            continue;
        }
        let local = match r_sym < object.first_global() {
            true => object.symbol(r_sym),
            false => None,
        };
        // A local IFUNC always needs its slot and stub, whatever refers to it (globals get
        // theirs from their resolution).
        if local.is_some_and(|symbol| symbol.st_type() == elf::STT_GNU_IFUNC) {
            if kind.formula == Formula::Absolute && HostArch::reach(kind) == Reach::LowAbsolute {
                // Its stub, in the image, stands for it.
                needs_low_addresses.store(true, Ordering::Relaxed);
            }
            needs.local_got.push(SymbolRef::Local {
                object: section.object,
                symbol: r_sym as u32,
            });
            continue;
        }
        // Any other local lies in the image, in a thread-local block or at an absolute
        // address, none of which a PC-relative reference needs anything for: most of a C
        // program's relocations (calls of static functions, string constants through section
        // symbols) end here without classifying their symbol.
        if local.is_some()
            && matches!(
                kind.formula,
                Formula::PcRelative | Formula::PltRelative | Formula::PltOffsetFromGot
            )
        {
            continue;
        }
        let reach = HostArch::reach(kind);
        // Most relocations (64-bit absolute ones in data, above all) need nothing from the
        // symbol here.
        let may_need_something = match kind.formula {
            Formula::Absolute => reach != Reach::Anywhere,
            Formula::GotPcRelative { .. }
            | Formula::GotOffsetOfSlot
            | Formula::PcRelative
            | Formula::PltRelative
            | Formula::PltOffsetFromGot => true,
            _ => false,
        };
        if !may_need_something {
            continue;
        }
        // A global's location is resolve's, found by its id alone; classify would read the
        // symbol first (61,000 times in the CPython link). What is not a global of the
        // object, an index past its table included, is classify's.
        let classified = match db.global_of(section.object, r_sym) {
            Some(id) => Some((SymbolRef::Global(id), db.locations[id.index()])),
            None => classify(db, section.object, r_sym),
        };
        let (symbol, location) =
            classified.ok_or_else(|| fail(RelocationProblem::InvalidSymbolIndex(r_sym as u64)))?;
        let symbol_needs = match (kind.formula, reach, location) {
            // An address of a thread-local symbol: apply reports it.
            (_, _, SymbolLocation::ThreadLocal) => 0,
            (Formula::Absolute, Reach::LowAbsolute, SymbolLocation::Ifunc) => {
                // Its stub stands for it, in the image.
                needs_low_addresses.store(true, Ordering::Relaxed);
                0
            }
            // The plan gives every IFUNC a stub; GOT-relative references also need a slot.
            (
                Formula::GotPcRelative { .. } | Formula::GotOffsetOfSlot,
                _,
                SymbolLocation::Ifunc,
            ) => NEEDS_GOT,
            (_, _, SymbolLocation::Ifunc) => 0,
            (Formula::GotPcRelative { relax }, ..) => {
                let relaxable = relax != Relax::Never
                    && location == SymbolLocation::InImage
                    && usize::try_from(offset)
                        .ok()
                        .and_then(|offset| HostArch::relaxation(code, offset, relax))
                        .is_some();
                if relaxable {
                    0
                } else {
                    NEEDS_GOT
                }
            }
            (Formula::GotOffsetOfSlot, ..) => NEEDS_GOT,
            (Formula::Absolute, Reach::LowAbsolute, SymbolLocation::InImage) => {
                needs_low_addresses.store(true, Ordering::Relaxed);
                0
            }
            (_, Reach::LowAbsolute | Reach::NearRelative, SymbolLocation::External) => {
                DIRECT_EXTERNAL
            }
            (
                Formula::PltRelative | Formula::PcRelative | Formula::PltOffsetFromGot,
                _,
                SymbolLocation::External | SymbolLocation::UndefinedWeak,
            ) => NEEDS_GOT | NEEDS_STUB,
            _ => 0,
        };
        if symbol_needs == 0 {
            continue;
        }
        match symbol {
            SymbolRef::Global(id) => {
                global_needs[id.index()].fetch_or(symbol_needs, Ordering::Relaxed);
            }
            SymbolRef::Local { .. } => needs.local_got.push(symbol),
        }
    }
    Ok(needs)
}

/// Whether a relocation of this formula can be applied in a `.tdata` section, whose initial
/// image has no address of its own: absolute addresses, sizes and offsets in the block.
fn fits_initial_image(formula: Formula) -> bool {
    matches!(
        formula,
        Formula::None
            | Formula::Absolute
            | Formula::Size
            | Formula::ThreadLocal(TlsAccess::OffsetInBlock)
    )
}

/// The TLS GOT entry a thread-local access needs, if any; Err if the symbol cannot be
/// reached that way.
fn tls_entry(
    access: TlsAccess,
    symbol: SymbolRef,
    location: SymbolLocation,
) -> Result<Option<TlsEntry>, TlsProblem> {
    match location {
        SymbolLocation::ThreadLocal => {}
        // A library's thread-local symbol: the loader finds it by name.
        SymbolLocation::External => {
            if !matches!(
                access,
                TlsAccess::GeneralDynamic
                    | TlsAccess::GotThreadPointerOffset
                    | TlsAccess::Descriptor
            ) {
                return Err(TlsProblem::DefinedInLibrary);
            }
        }
        SymbolLocation::UndefinedWeak => return Err(TlsProblem::UndefinedWeak),
        SymbolLocation::InImage | SymbolLocation::Absolute | SymbolLocation::Ifunc => {
            return Err(TlsProblem::NotThreadLocal)
        }
    }
    Ok(match access {
        TlsAccess::GeneralDynamic => Some(TlsEntry::GeneralDynamic(symbol)),
        TlsAccess::LocalDynamic | TlsAccess::ModuleId => Some(TlsEntry::LocalDynamic),
        TlsAccess::GotThreadPointerOffset => Some(TlsEntry::InitialExec(symbol)),
        TlsAccess::Descriptor => Some(TlsEntry::Descriptor(symbol)),
        TlsAccess::ThreadPointerOffset => Some(TlsEntry::BlockOffset),
        TlsAccess::OffsetInBlock | TlsAccess::DescriptorCall => None,
    })
}

/// Which directly referenced external symbols are data that needs a copy in the image (a copy
/// relocation), with their sizes. Asks the target once, for these few symbols only.
fn copied_externals(
    db: &SymbolDb<'_>,
    direct: &[GlobalId],
    executor: &mut dyn Executor,
) -> Result<BTreeMap<GlobalId, u64>, LinkError> {
    if direct.is_empty() {
        return Ok(BTreeMap::new());
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
