//! Copy relocations after the fact: redirect loaded libraries' GOT entries for a data symbol
//! to the copy in the linked image, as ld.so does when an executable has a copy relocation.

use object::elf::{Dyn64, Rela64, DT_NULL, DT_RELA, DT_RELASZ, PT_DYNAMIC, PT_GNU_RELRO};
use object::NativeEndian;
use rjitlink_arch::{AddressSlot, Arch, HostArch};
use rjitlink_target::{Interposition, TargetError};

/// One GOT (or data) slot that must point at a copy.
struct Patch<'a> {
    slot: u64,
    value: u64,
    in_relro: bool,
    /// The copied symbol, for messages.
    name: &'a [u8],
}

struct Search<'a> {
    copies: &'a [Interposition],
    patches: Vec<Patch<'a>>,
}

/// The copies' bytes are taken from the originals (where they differ), then every loaded
/// object's relocations that store a symbol's address (`Arch::address_slot`: GLOB_DAT and 64
/// on x86-64) that point at an original are rewritten to point at its copy.
///
/// Slots are matched by the address they hold, not by symbol name: libraries refer to their
/// data under aliases too (glibc's setenv writes `__environ`, the program reads `environ`), and
/// ld, making a copy relocation, likewise moves every alias of the symbol to the copy.
pub fn interpose(copies: &[Interposition]) -> Result<(), TargetError> {
    if copies.is_empty() {
        return Ok(());
    }
    for copy in copies {
        // SAFETY: both ends are live objects of `size` bytes: a library's (the loader told us
        // its size) or a copy in image memory.
        let (from, to) = unsafe {
            (
                std::slice::from_raw_parts(copy.original.get() as *const u8, copy.size as usize),
                std::slice::from_raw_parts_mut(copy.copy.get() as *mut u8, copy.size as usize),
            )
        };
        // Only what differs is written: handing a copy back to a library's constant object
        // (`in6addr_any`), which lies in read-only memory and cannot have changed, writes
        // nothing.
        if from != to {
            to.copy_from_slice(from);
        }
    }
    let mut search = Search {
        copies,
        patches: Vec::new(),
    };
    // SAFETY: the callback only reads the loader's structures, as dl_iterate_phdr allows.
    unsafe {
        libc::dl_iterate_phdr(
            Some(visit_object),
            &mut search as *mut Search as *mut libc::c_void,
        )
    };
    let page = rjitlink_memory::page_size() as u64;
    for patch in search.patches {
        let page_start = patch.slot & !(page - 1);
        // SAFETY: the slot is a relocated pointer in a loaded object; we make its page
        // writable for the store and, for RELRO pages, read-only again after.
        unsafe {
            if libc::mprotect(
                page_start as *mut libc::c_void,
                page as usize,
                libc::PROT_READ | libc::PROT_WRITE,
            ) != 0
            {
                return Err(TargetError::Interpose {
                    symbol: patch.name.to_vec(),
                    slot: patch.slot,
                    source: std::io::Error::last_os_error(),
                });
            }
            (patch.slot as *mut u64).write_unaligned(patch.value);
            if patch.in_relro {
                libc::mprotect(
                    page_start as *mut libc::c_void,
                    page as usize,
                    libc::PROT_READ,
                );
            }
        }
    }
    Ok(())
}

unsafe extern "C" fn visit_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    let search = &mut *(data as *mut Search);
    let info = &*info;
    let base = info.dlpi_addr;
    let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
    let Some(dynamic) = headers.iter().find(|h| h.p_type == PT_DYNAMIC) else {
        return 0;
    };
    let relro = headers
        .iter()
        .find(|h| h.p_type == PT_GNU_RELRO)
        .map(|h| (base + h.p_vaddr, base + h.p_vaddr + h.p_memsz));
    // ld.so relocates most objects' dynamic entries in place; the vDSO's are left as
    // link-time addresses. An address below the load base is a link-time one.
    let address = |value: u64| if value < base { value + base } else { value };
    let (mut rela, mut rela_size) = (0, 0);
    let mut entry = (base + dynamic.p_vaddr) as *const Dyn64<NativeEndian>;
    loop {
        let (tag, value) = (
            (*entry).d_tag.get(NativeEndian),
            (*entry).d_val.get(NativeEndian),
        );
        match u32::try_from(tag) {
            Ok(DT_NULL) => break,
            Ok(DT_RELA) => rela = address(value),
            Ok(DT_RELASZ) => rela_size = value,
            _ => {}
        }
        entry = entry.add(1);
    }
    if rela == 0 {
        return 0;
    }
    let relocations = std::slice::from_raw_parts(
        rela as *const Rela64<NativeEndian>,
        rela_size as usize / std::mem::size_of::<Rela64<NativeEndian>>(),
    );
    for relocation in relocations {
        let addend = match HostArch::address_slot(relocation.r_type(NativeEndian, false)) {
            None => continue,
            Some(AddressSlot::Symbol) => 0,
            Some(AddressSlot::SymbolPlusAddend) => relocation.r_addend.get(NativeEndian) as u64,
        };
        let slot = base + relocation.r_offset.get(NativeEndian);
        let current = (slot as *const u64).read_unaligned();
        if let Some(copy) = search
            .copies
            .iter()
            .find(|c| current == c.original.get().wrapping_add(addend))
        {
            search.patches.push(Patch {
                slot,
                value: copy.copy.get().wrapping_add(addend),
                in_relro: relro.is_some_and(|(start, end)| (start..end).contains(&slot)),
                name: &copy.name,
            });
        }
    }
    0
}
