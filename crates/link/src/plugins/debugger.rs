//! Debuggers see linked code: for every input object that carries DWARF (`.debug_info`,
//! archive members included), an in-memory ELF image is registered with the target's JIT
//! interface (`Executor::register_debug_objects`, gdb's `__jit_debug_register_code`) once the
//! unit's memory is live and before it runs, and withdrawn when the unit is freed.
//!
//! The image is a copy of the relocatable object with each loaded section's `sh_addr` set to
//! where the section was loaded. A debugger reading a relocatable file applies the object's
//! own relocations to its debug sections itself, against the section addresses the file
//! gives (gdb through BFD, as it does for any `.o`), so the DWARF needs no relocating here and
//! the copy is a `memcpy` and a few header writes. What the file cannot say by section
//! addresses is patched in too:
//!
//! - A section that is not loaded (a COMDAT group another object won, a note, thread-local
//!   data that lives in the TLS module) loses its `SHF_ALLOC` and `SHF_EXECINSTR` flags and
//!   keeps address 0: its functions then start at 0, which gdb takes for discarded code (as
//!   ld leaves them), and its symbols are no functions, so no breakpoint lands on them. (A
//!   loaded section at address 0 would make gdb take 0 for real code; none is left. And
//!   with `SHF_EXECINSTR` kept, gdb 13 crashed setting a breakpoint on the discarded
//!   function: `tests/debugger.rs`, `comdat_copies`.)
//! - A common symbol gets the address layout gave it, as an absolute symbol.
//!
//! Objects without `.debug_info` cost one pass over their section headers. A unit with debug
//! objects gets code pages of its own (not packed with other units'): the debugger writes
//! its breakpoints there.

use super::{LinkContext, Plugin};
use crate::addresses::UNLOADED;
use crate::elf::{ObjectFile, Shdr, Sym, LE};
use crate::error::LinkError;
use crate::ids::ObjectId;
use crate::layout::Layout;
use crate::resolve::SymbolDb;
use crate::tls::THREAD_LOCAL;
use object::elf;
use object::read::elf::{SectionHeader, Sym as _};
use rayon::prelude::*;
use rjitlink_memory::AllocAction;
use rjitlink_target::{DebugObject, DebugObjectHandle, Executor};

/// Registers the unit's debug objects with the target's JIT interface.
#[derive(Default)]
pub struct Debugger {
    /// The objects with debug information, found after layout.
    with_debug_info: Vec<ObjectId>,
    /// Built after apply, handed to the target at finalize.
    objects: Vec<DebugObject>,
    /// What the target registered, to withdraw when the unit is freed.
    handles: Vec<DebugObjectHandle>,
}

impl Plugin for Debugger {
    fn after_layout(&mut self, db: &SymbolDb<'_>, _layout: &Layout) -> Result<(), LinkError> {
        // Parse noted which objects have a `.debug_info` section.
        self.with_debug_info = db
            .objects
            .iter()
            .enumerate()
            .filter(|(_, object)| object.has_debug_info)
            .map(|(index, _)| ObjectId::from_index(index))
            .collect();
        Ok(())
    }

    /// A debugger writes its breakpoints into the code: in process, packed code pages are
    /// shared mappings of a memory file, which the kernel does not let it write, and later
    /// links write pieces into them again.
    fn needs_own_pages(&self) -> bool {
        !self.with_debug_info.is_empty()
    }

    fn after_apply(
        &mut self,
        link: &LinkContext<'_, '_>,
        _image: &[u8],
        _target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        self.objects = self
            .with_debug_info
            .par_iter()
            .map(|&id| debug_object(link, id, &link.db.objects[id.index()]))
            .collect::<Result<_, _>>()?;
        Ok(Vec::new())
    }

    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        let objects = std::mem::take(&mut self.objects);
        if objects.is_empty() {
            return Ok(());
        }
        self.handles = target
            .register_debug_objects(objects)
            .map_err(LinkError::target(
                "cannot register the unit's debug information for debuggers",
            ))?;
        Ok(())
    }

    fn free(&mut self, target: &mut dyn Executor) -> Result<(), LinkError> {
        // Built but never registered (the link failed before finalize): nothing to undo.
        self.objects = Vec::new();
        let handles = std::mem::take(&mut self.handles);
        target
            .unregister_debug_objects(&handles)
            .map_err(LinkError::target(
                "cannot withdraw the unit's debug information from debuggers",
            ))
    }
}

/// Where `table`, borrowed from `data`, starts in it.
fn offset_in<T>(data: &[u8], table: &[T]) -> Option<usize> {
    let start = (table.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let end = start.checked_add(std::mem::size_of_val(table))?;
    (end <= data.len()).then_some(start)
}

/// The image of `object` a debugger reads: a copy with loaded sections at their addresses
/// (see the module's comment).
fn debug_object(
    link: &LinkContext<'_, '_>,
    id: ObjectId,
    object: &ObjectFile<'_>,
) -> Result<DebugObject, LinkError> {
    let mut image = object.data.to_vec();
    let fail = |what: &str| {
        // The tables were parsed from these bytes: only a bug could put them elsewhere.
        LinkError::input(
            &object.name,
            format!("cannot make a debug object: its {what} lies outside the file"),
        )
    };
    let headers = object.sections.iter().as_slice();
    let start = offset_in(object.data, headers).ok_or_else(|| fail("section table"))?;
    let (headers, _) =
        object::pod::slice_from_bytes_mut::<Shdr>(&mut image[start..], headers.len())
            .map_err(|()| fail("section table"))?;
    let loaded_flags = u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR | elf::SHF_WRITE);
    for (index, header) in headers.iter_mut().enumerate() {
        let flags = header.sh_flags(LE);
        if flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        let address = match link.layout.section_offset(id, index) {
            Some(offset) => link.addresses.at(offset).get(),
            None => {
                header.sh_flags.set(LE, flags & !loaded_flags);
                0
            }
        };
        header.sh_addr.set(LE, address);
    }

    let symbols = object.symbols.symbols();
    if symbols.iter().any(|symbol| symbol.is_common(LE)) {
        let start = offset_in(object.data, symbols).ok_or_else(|| fail("symbol table"))?;
        let (symbols, _) =
            object::pod::slice_from_bytes_mut::<Sym>(&mut image[start..], symbols.len())
                .map_err(|()| fail("symbol table"))?;
        let values = &link.addresses.symbol_values[id.index()];
        for (symbol, &value) in symbols.iter_mut().zip(values) {
            if symbol.is_common(LE) && value != UNLOADED && value != THREAD_LOCAL {
                symbol.st_shndx.set(LE, elf::SHN_ABS);
                symbol.st_value.set(LE, value);
            }
        }
    }
    Ok(DebugObject {
        name: object.name.clone(),
        image,
    })
}
