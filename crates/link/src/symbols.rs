//! What a relocation's symbol refers to, shared by scan (which decides GOT slots and stubs)
//! and apply (which computes values).

use crate::elf::LE;
use crate::ids::{GlobalId, ObjectId};
use crate::resolve::{SymbolDb, SymbolLocation};
use object::elf;
use object::read::elf::Sym as _;

/// A symbol a relocation names: a global by id, or a local of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolRef {
    Global(GlobalId),
    Local { object: ObjectId, symbol: u32 },
}

/// Find the symbol a relocation in `object` names and where its value lies; `None` if the
/// index is past the object's symbol table.
pub fn classify(
    db: &SymbolDb<'_>,
    object: ObjectId,
    symbol: usize,
) -> Option<(SymbolRef, SymbolLocation)> {
    let file = &db.objects[object.index()];
    let sym = file.symbol(symbol)?;
    if let Some(id) = db.global_of(object, symbol) {
        return Some((SymbolRef::Global(id), db.locations[id.index()]));
    }
    let local = SymbolRef::Local {
        object,
        symbol: symbol as u32,
    };
    let location = match file.symbol_section(symbol, sym) {
        Some(_) if sym.st_type() == elf::STT_GNU_IFUNC => SymbolLocation::Ifunc,
        // Section symbols of .tdata/.tbss are not STT_TLS: the section decides.
        Some(section) if file.is_thread_local_section(section) => SymbolLocation::ThreadLocal,
        Some(_) if sym.st_shndx(LE) != elf::SHN_ABS => SymbolLocation::InImage,
        _ => SymbolLocation::Absolute,
    };
    Some((local, location))
}
