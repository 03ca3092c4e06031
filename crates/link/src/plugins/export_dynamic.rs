//! `--export-dynamic`: make the linked program's global definitions visible to libraries it
//! loads later (CPython's extension modules resolve `Py*` against the executable).
//!
//! The linked image is not an ELF file the loader knows, so the unit's globals go into a small
//! shared object of absolute symbols at their linked addresses, which the target loads
//! RTLD_GLOBAL from memory.

use super::{LinkContext, Plugin};
use crate::elf::LE;
use crate::error::LinkError;
use crate::resolve::Resolution;
use crate::shared_object::{shared_object, ExportedSymbol, Stack};
use object::elf;
use object::read::elf::Sym as _;
use rjitlink_target::Executor;

/// The name the exported symbols' shared object is loaded under.
const SONAME: &str = "rjitlink-exports.so";

/// Exports the unit's global definitions to the target's dynamic loader.
#[derive(Default)]
pub struct ExportDynamic {
    /// The exports were loaded. (A load the target refused left nothing behind; one whose
    /// answer never came took the target with it.)
    loaded: bool,
}

impl Plugin for ExportDynamic {
    /// Loaded RTLD_GLOBAL, the exports are never unloaded: libraries may have bound to them.
    fn pins_memory(&self) -> bool {
        self.loaded
    }

    fn finalize(
        &mut self,
        link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        let image = exported_symbols_image(link);
        target
            .load_library_image(SONAME, &image)
            .map_err(LinkError::target("cannot export the program's symbols"))?;
        self.loaded = true;
        Ok(())
    }
}

/// A shared object defining every global the unit defines with default or protected
/// visibility, at its linked address (what `cc -rdynamic` puts in an executable's dynsym).
fn exported_symbols_image(link: &LinkContext<'_, '_>) -> Vec<u8> {
    let db = link.db;
    let symbols: Vec<ExportedSymbol<'_>> = db
        .globals
        .iter()
        .zip(&link.addresses.globals)
        .filter_map(|(global, address)| {
            let address = (*address)?.get();
            let (kind, size, weak, visibility) = match global.resolution {
                Resolution::Defined {
                    object,
                    symbol,
                    weak,
                } => {
                    let sym = db.objects[object.index()].symbol(symbol as usize)?;
                    // An IFUNC's exported address is its stub, a plain function: exported as
                    // an IFUNC, the loader would call it as a resolver.
                    let kind = match sym.st_type() {
                        elf::STT_GNU_IFUNC => elf::STT_FUNC,
                        kind => kind,
                    };
                    (kind, sym.st_size(LE), weak, sym.st_visibility())
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
                defined: true,
            })
        })
        .collect();
    shared_object(SONAME.as_bytes(), &symbols, Stack::NotExecutable)
}
