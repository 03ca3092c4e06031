//! Scan relocations for the GOT slots and PLT stubs the link needs, before layout sizes them.
//!
//! Addresses are not known yet, so the plan is conservative: every external or undefined-weak
//! symbol called through PLT32/PC32 gets a stub (used only if the symbol turns out to be out of
//! reach), and every GOT-relative reference gets a slot unless it is a relaxable load of a
//! symbol in the image, which is always within reach.

use crate::ids::{GlobalId, GotSlot, ObjectId, PltStub};
use crate::layout::InputSection;
use crate::resolve::SymbolDb;
use crate::symbols::{classify, Placement, SymbolRef};
use crate::x86_64::{relaxation, reloc_kind, Formula, Relax};
use anyhow::{anyhow, Result};
use foldhash::HashMap;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const NEEDS_GOT: u8 = 1;
const NEEDS_STUB: u8 = 2;
/// An external symbol referenced directly (PC32, or a 32-bit absolute address): it needs a
/// copy in the image if it is data, or a stub to stand for it if it is a function.
const DIRECT_EXTERNAL: u8 = 4;

/// What the relocations need, before copy relocations are decided.
pub struct ScanResult {
    global_needs: Vec<u8>,
    local_got: Vec<(ObjectId, u32)>,
    /// Some 32-bit absolute relocation (R_X86_64_32/32S) names a symbol in the image, so the
    /// image must lie below 2 GiB.
    pub needs_low_addresses: bool,
}

/// The GOT slots and PLT stubs of a link.
#[derive(Default)]
pub struct GotPlan {
    /// What each GOT slot holds the address of.
    pub slots: Vec<SymbolRef>,
    /// The global each stub jumps to, and the slot it jumps through.
    pub stubs: Vec<(GlobalId, GotSlot)>,
    global_slot: HashMap<GlobalId, GotSlot>,
    local_slot: HashMap<(ObjectId, u32), GotSlot>,
    global_stub: HashMap<GlobalId, PltStub>,
}

impl GotPlan {
    pub fn slot(&self, symbol: SymbolRef) -> Option<GotSlot> {
        match symbol {
            SymbolRef::Global(id) => self.global_slot.get(&id).copied(),
            SymbolRef::Local { object, symbol } => self.local_slot.get(&(object, symbol)).copied(),
        }
    }

    pub fn stub(&self, symbol: SymbolRef) -> Option<PltStub> {
        match symbol {
            SymbolRef::Global(id) => self.global_stub.get(&id).copied(),
            SymbolRef::Local { .. } => None,
        }
    }
}

/// Describe where a relocation is, for errors: `foo.o: .text+0x1c`.
pub fn describe_place(db: &SymbolDb<'_>, section: &InputSection, offset: u64) -> String {
    let object = &db.objects[section.object.index()];
    format!(
        "{}: {}+{:#x}",
        object.name,
        String::from_utf8_lossy(object.section_name(section.index as usize)),
        offset
    )
}

pub fn scan(db: &SymbolDb<'_>, sections: &[InputSection]) -> Result<ScanResult> {
    let global_needs: Vec<AtomicU8> = (0..db.globals.len()).map(|_| AtomicU8::new(0)).collect();
    let needs_low_addresses = AtomicBool::new(false);
    let local_got: Vec<Vec<(ObjectId, u32)>> = sections
        .par_iter()
        .map(|section| scan_section(db, section, &global_needs, &needs_low_addresses))
        .collect::<Result<_>>()?;
    Ok(ScanResult {
        global_needs: global_needs.into_iter().map(AtomicU8::into_inner).collect(),
        local_got: local_got.into_iter().flatten().collect(),
        needs_low_addresses: needs_low_addresses.into_inner(),
    })
}

impl ScanResult {
    /// External symbols referenced directly, which need a copy or a stub.
    pub fn direct_externals(&self) -> Vec<GlobalId> {
        self.global_needs
            .iter()
            .enumerate()
            .filter(|(_, &needs)| needs & DIRECT_EXTERNAL != 0)
            .map(|(index, _)| GlobalId::from_index(index))
            .collect()
    }

    /// Assign GOT slots and stubs. Direct externals that are not `copied` get a stub, which
    /// stands for them where their own address is out of reach.
    pub fn into_plan(self, copied: &HashMap<GlobalId, u64>) -> GotPlan {
        let mut plan = GotPlan::default();
        for (index, mut needs) in self.global_needs.into_iter().enumerate() {
            let id = GlobalId::from_index(index);
            if needs & DIRECT_EXTERNAL != 0 && !copied.contains_key(&id) {
                needs |= NEEDS_GOT | NEEDS_STUB;
            }
            if needs & (NEEDS_GOT | NEEDS_STUB) == 0 {
                continue;
            }
            let slot = GotSlot::from_index(plan.slots.len());
            plan.slots.push(SymbolRef::Global(id));
            plan.global_slot.insert(id, slot);
            if needs & NEEDS_STUB != 0 {
                plan.global_stub
                    .insert(id, PltStub::from_index(plan.stubs.len()));
                plan.stubs.push((id, slot));
            }
        }
        for (object, symbol) in self.local_got {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                plan.local_slot.entry((object, symbol))
            {
                entry.insert(GotSlot::from_index(plan.slots.len()));
                plan.slots.push(SymbolRef::Local { object, symbol });
            }
        }
        plan
    }
}

fn scan_section(
    db: &SymbolDb<'_>,
    section: &InputSection,
    global_needs: &[AtomicU8],
    needs_low_addresses: &AtomicBool,
) -> Result<Vec<(ObjectId, u32)>> {
    let object = &db.objects[section.object.index()];
    let relocations = object.relocations[section.index as usize];
    let mut local_got = Vec::new();
    if relocations.is_empty() {
        return Ok(local_got);
    }
    let code = object.section_data(section.index as usize);
    for rela in relocations {
        let offset = rela.r_offset.get(crate::elf::LE);
        let info = rela.r_info.get(crate::elf::LE);
        let (r_type, r_sym) = ((info & 0xffff_ffff) as u32, (info >> 32) as usize);
        let fail = |message: String| anyhow!("{}: {message}", describe_place(db, section, offset));
        let kind = reloc_kind(r_type)
            .map_err(|e| fail(format!("{e} against `{}`", object.describe_symbol(r_sym))))?;
        // Most relocations (R_X86_64_64 in data, above all) need nothing from the symbol here.
        let may_need_something = match kind.formula {
            Formula::Absolute => kind.width == 4,
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
        let (symbol, placement) =
            classify(db, section.object, r_sym).map_err(|e| fail(e.to_string()))?;
        let needs = match kind.formula {
            Formula::GotPcRelative { relax } => {
                let relaxable = relax != Relax::Never
                    && placement == Placement::InImage
                    && usize::try_from(offset)
                        .ok()
                        .and_then(|offset| relaxation(code, offset, relax))
                        .is_some();
                if relaxable {
                    0
                } else {
                    NEEDS_GOT
                }
            }
            Formula::GotOffsetOfSlot => NEEDS_GOT,
            Formula::Absolute if kind.width == 4 && placement == Placement::InImage => {
                needs_low_addresses.store(true, Ordering::Relaxed);
                0
            }
            Formula::Absolute | Formula::PcRelative
                if kind.width == 4 && placement == Placement::External =>
            {
                DIRECT_EXTERNAL
            }
            Formula::PltRelative | Formula::PcRelative | Formula::PltOffsetFromGot
                if matches!(placement, Placement::External | Placement::UndefinedWeak) =>
            {
                NEEDS_GOT | NEEDS_STUB
            }
            _ => 0,
        };
        if needs == 0 {
            continue;
        }
        match symbol {
            SymbolRef::Global(id) => {
                global_needs[id.index()].fetch_or(needs, Ordering::Relaxed);
            }
            SymbolRef::Local { object, symbol } => local_got.push((object, symbol)),
        }
    }
    Ok(local_got)
}
