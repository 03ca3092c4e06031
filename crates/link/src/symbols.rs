//! What a relocation's symbol refers to, shared by scan (which decides GOT slots and stubs)
//! and apply (which computes values).

use crate::elf::LE;
use crate::ids::{GlobalId, ObjectId};
use crate::resolve::{symbol_section, SymbolDb};
use anyhow::{anyhow, Result};
use object::elf;
use object::read::elf::Sym as _;

/// A symbol a relocation names: a global by id, or a local of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolRef {
    Global(GlobalId),
    Local { object: ObjectId, symbol: u32 },
}

/// Where a symbol's value lies, which decides GOT, stub and relaxation choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the linked image: always within reach of the image's own code.
    InImage,
    /// An absolute value (SHN_ABS, or symbol index 0).
    Absolute,
    /// In a library loaded in the target: possibly far away.
    External,
    /// An undefined weak symbol: 0.
    UndefinedWeak,
}

/// Find the symbol a relocation in `object` names and where its value lies.
pub fn classify(
    db: &SymbolDb<'_>,
    object: ObjectId,
    symbol: usize,
) -> Result<(SymbolRef, Placement)> {
    let file = &db.objects[object.index()];
    if symbol >= file.symbols.len() {
        return Err(anyhow!("invalid symbol index {symbol}"));
    }
    if let Some(id) = db.global_of(object, symbol) {
        return Ok((SymbolRef::Global(id), db.placements[id.index()]));
    }
    let sym = &file.symbols.symbols()[symbol];
    let local = SymbolRef::Local {
        object,
        symbol: symbol as u32,
    };
    let placement = match symbol_section(file, symbol, sym) {
        Some(_) if sym.st_shndx(LE) != elf::SHN_ABS => Placement::InImage,
        _ => Placement::Absolute,
    };
    Ok((local, placement))
}
