//! A minimal shared object that defines absolute symbols: the dynamic symbol table, its hash
//! table and the dynamic section, in one loadable segment. glibc gives absolute (SHN_ABS)
//! symbols their value as is, so loading it makes the symbols visible at those addresses.

use rjitlink_arch::{Arch, HostArch};

/// One symbol to define.
pub struct ExportedSymbol<'a> {
    pub name: &'a [u8],
    pub address: u64,
    pub size: u64,
    /// ELF symbol type (STT_FUNC, STT_OBJECT, ...).
    pub kind: u8,
    pub weak: bool,
}

/// The SysV ELF hash of a symbol name (DT_HASH).
fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

fn align(bytes: &mut Vec<u8>, alignment: usize) {
    bytes.resize(bytes.len().next_multiple_of(alignment), 0);
}

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PHDR_COUNT: usize = 3;

/// What a generated shared object asks of the process's stack when it is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    NotExecutable,
    /// Loading it makes every thread's stack executable (glibc's `_dl_make_stack_executable`).
    Executable,
}

/// A shared object named `soname` that defines `symbols` as absolute symbols.
pub fn shared_object(soname: &[u8], symbols: &[ExportedSymbol<'_>], stack: Stack) -> Vec<u8> {
    use object::elf::*;
    // Contents after the headers, in one read-write PT_LOAD at address 0 (ld.so may write
    // to the dynamic section while loading).
    let mut out = vec![0u8; EHDR_SIZE + PHDR_SIZE * PHDR_COUNT];

    let mut strings = vec![0u8];
    let mut name_offsets = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        name_offsets.push(strings.len() as u32);
        strings.extend_from_slice(symbol.name);
        strings.push(0);
    }
    let soname_offset = strings.len() as u64;
    strings.extend_from_slice(soname);
    strings.push(0);

    // DT_HASH: buckets of symbol indices chained by name hash (index 0 is the null symbol).
    let symbol_count = symbols.len() + 1;
    let buckets = (symbols.len() / 2 + 1) as u32;
    let mut bucket = vec![0u32; buckets as usize];
    let mut chain = vec![0u32; symbol_count];
    for (i, symbol) in symbols.iter().enumerate() {
        let index = i as u32 + 1;
        let b = (sysv_hash(symbol.name) % buckets) as usize;
        chain[index as usize] = bucket[b];
        bucket[b] = index;
    }
    align(&mut out, 8);
    let hash_offset = out.len();
    for word in [buckets, symbol_count as u32]
        .iter()
        .chain(&bucket)
        .chain(&chain)
    {
        out.extend_from_slice(&word.to_le_bytes());
    }

    align(&mut out, 8);
    let symtab_offset = out.len();
    out.extend_from_slice(&[0u8; 24]);
    for (symbol, &name) in symbols.iter().zip(&name_offsets) {
        let binding = if symbol.weak { STB_WEAK } else { STB_GLOBAL };
        out.extend_from_slice(&name.to_le_bytes());
        out.push((binding << 4) | (symbol.kind & 0xf));
        out.push(STV_DEFAULT);
        out.extend_from_slice(&SHN_ABS.to_le_bytes());
        out.extend_from_slice(&symbol.address.to_le_bytes());
        out.extend_from_slice(&symbol.size.to_le_bytes());
    }

    let strtab_offset = out.len();
    out.extend_from_slice(&strings);

    align(&mut out, 8);
    let dynamic_offset = out.len();
    let dynamic = [
        (DT_HASH, hash_offset as u64),
        (DT_STRTAB, strtab_offset as u64),
        (DT_SYMTAB, symtab_offset as u64),
        (DT_STRSZ, strings.len() as u64),
        (DT_SYMENT, 24),
        (DT_SONAME, soname_offset),
        (DT_NULL, 0),
    ];
    for (tag, value) in dynamic {
        out.extend_from_slice(&(tag as u64).to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    let dynamic_size = (out.len() - dynamic_offset) as u64;
    let total = out.len() as u64;

    // The ELF header.
    let mut header = Vec::with_capacity(EHDR_SIZE);
    header.extend_from_slice(&[
        0x7f,
        b'E',
        b'L',
        b'F',
        ELFCLASS64,
        ELFDATA2LSB,
        EV_CURRENT,
        ELFOSABI_SYSV,
    ]);
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&ET_DYN.to_le_bytes());
    header.extend_from_slice(&HostArch::MACHINE.to_le_bytes());
    header.extend_from_slice(&u32::from(EV_CURRENT).to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    header.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    header.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections needed
    header.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [
        EHDR_SIZE as u16,
        PHDR_SIZE as u16,
        PHDR_COUNT as u16,
        64,
        0,
        0,
    ] {
        header.extend_from_slice(&half.to_le_bytes());
    }
    out[..EHDR_SIZE].copy_from_slice(&header);

    // Program headers: the load segment, the dynamic section, and the stack's permissions
    // (without PT_GNU_STACK the loader would make the process's stack executable).
    let stack_flags = match stack {
        Stack::NotExecutable => PF_R | PF_W,
        Stack::Executable => PF_R | PF_W | PF_X,
    };
    let program_headers = [
        (PT_LOAD, PF_R | PF_W, 0, total, 0x1000),
        (
            PT_DYNAMIC,
            PF_R | PF_W,
            dynamic_offset as u64,
            dynamic_size,
            8,
        ),
        (PT_GNU_STACK, stack_flags, 0, 0, 16),
    ];
    for (i, (kind, flags, offset, size, alignment)) in program_headers.into_iter().enumerate() {
        let mut ph = Vec::with_capacity(PHDR_SIZE);
        ph.extend_from_slice(&kind.to_le_bytes());
        ph.extend_from_slice(&flags.to_le_bytes());
        for value in [offset, offset, offset, size, size, alignment] {
            ph.extend_from_slice(&value.to_le_bytes());
        }
        let at = EHDR_SIZE + i * PHDR_SIZE;
        out[at..at + PHDR_SIZE].copy_from_slice(&ph);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_hash_matches_the_gabi_examples() {
        // Values computed with the gABI's reference elf_hash.
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(sysv_hash(b"printf"), 0x077905a6);
        assert_eq!(sysv_hash(b"exit"), 0x0006cf04);
    }

    #[test]
    fn the_object_parses_and_lists_its_symbols() {
        use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _};
        let symbols = [
            ExportedSymbol {
                name: b"alpha",
                address: 0x1234,
                size: 8,
                kind: object::elf::STT_OBJECT,
                weak: false,
            },
            ExportedSymbol {
                name: b"beta",
                address: 0x7f00_0000_1000,
                size: 0,
                kind: object::elf::STT_FUNC,
                weak: true,
            },
        ];
        let bytes = shared_object(b"exports.so", &symbols, Stack::NotExecutable);
        let header = object::elf::FileHeader64::<object::LittleEndian>::parse(&*bytes).unwrap();
        let endian = object::LittleEndian;
        let segments = header.program_headers(endian, &*bytes).unwrap();
        assert_eq!(segments.len(), 3);
        let dynamic = segments[1].dynamic(endian, &*bytes).unwrap().unwrap();
        let tags: Vec<u32> = dynamic.iter().map(|d| d.d_tag(endian) as u32).collect();
        assert!(tags.contains(&object::elf::DT_HASH) && tags.contains(&object::elf::DT_SYMTAB));
    }
}
