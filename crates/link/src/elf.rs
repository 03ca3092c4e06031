//! One ELF relocatable object, borrowed from its mmap with `object`'s low-level ELF API.
//! Parsing validates everything later phases index with, so they can index without panicking.

use crate::error::{escape_bytes, LinkError};
use object::elf;
use object::read::elf::{
    FileHeader, Rela as _, SectionHeader, SectionTable, Sym as _, SymbolTable,
};
use object::{LittleEndian, SectionIndex};
use rjitlink_arch::{machine_name, Arch, HostArch};

/// The only ELF flavour rjitlink links: 64-bit little-endian (the machine is `HostArch`'s).
pub type Elf = elf::FileHeader64<LittleEndian>;
pub type Sym = elf::Sym64<LittleEndian>;
pub type Rela = elf::Rela64<LittleEndian>;
pub type Shdr = elf::SectionHeader64<LittleEndian>;
pub const LE: LittleEndian = LittleEndian;

/// A parsed relocatable object.
pub struct ObjectFile<'data> {
    /// `path` or `archive(member)`: what errors call it.
    pub name: String,
    pub data: &'data [u8],
    pub sections: SectionTable<'data, Elf>,
    pub symbols: SymbolTable<'data, Elf>,
    /// Relocations that apply to each section, indexed like `sections` (empty where none).
    pub relocations: Vec<&'data [Rela]>,
    /// The index of the first non-local symbol (sh_info of the symbol table), at most the
    /// number of symbols.
    first_global: usize,
    /// What the object's first `.note.GNU-stack` section asks of the stack, read while parse
    /// walks the section table anyway (the executable-stack plugin's question).
    pub stack_note: StackNote,
    /// Whether the object has a `.debug_info` section (PROGBITS, not loaded): the debugger
    /// plugin's question, likewise.
    pub has_debug_info: bool,
}

/// An object's `.note.GNU-stack` section, which says whether its code needs an executable
/// stack (GCC's trampolines for nested functions whose address is taken run on the stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackNote {
    /// No such section: ld takes the object to need an executable stack.
    Missing,
    /// The section is executable (SHF_EXECINSTR): it needs one.
    Executable,
    /// The section is there and not executable: it does not.
    NotExecutable,
}

impl<'data> ObjectFile<'data> {
    /// Parse `data` as an x86-64 ELF relocatable. Errors name the object and what is wrong.
    pub fn parse(name: String, data: &'data [u8]) -> Result<ObjectFile<'data>, LinkError> {
        let fail = |what: String| LinkError::input(&name, what);
        if data.len() < 20 || !data.starts_with(b"\x7fELF") {
            return Err(fail("not an ELF file (or truncated header)".into()));
        }
        match data[4] {
            elf::ELFCLASS64 => {}
            elf::ELFCLASS32 => {
                let machine = u16::from_le_bytes([data[18], data[19]]);
                return Err(fail(format!(
                    "32-bit ELF object for {} (e_machine {machine}); rjitlink links {} ELF64 objects",
                    machine_name(machine),
                    HostArch::NAME
                )));
            }
            class => return Err(fail(format!("invalid ELF class {class}"))),
        }
        if data[5] != elf::ELFDATA2LSB {
            return Err(fail(format!(
                "big-endian ELF object; rjitlink links {} objects",
                HostArch::NAME
            )));
        }
        let header = Elf::parse(data).map_err(|e| fail(format!("invalid ELF header: {e}")))?;
        let machine = header.e_machine(LE);
        if machine != HostArch::MACHINE {
            return Err(fail(format!(
                "wrong machine: {} (e_machine {machine}); rjitlink links {} objects",
                machine_name(machine),
                HostArch::NAME
            )));
        }
        if header.e_type(LE) != elf::ET_REL {
            return Err(fail(format!(
                "not a relocatable object (e_type {})",
                header.e_type(LE)
            )));
        }
        let sections = header
            .sections(LE, data)
            .map_err(|e| fail(format!("invalid section table (truncated file?): {e}")))?;
        let symbols = sections
            .symbols(LE, data, elf::SHT_SYMTAB)
            .map_err(|e| fail(format!("invalid symbol table (truncated file?): {e}")))?;

        let section_names = header
            .shstrndx(LE, data)
            .ok()
            .and_then(|index| sections.section(SectionIndex(index as usize)).ok())
            .and_then(|table| table.data(LE, data).ok())
            .unwrap_or(&[]);
        let mut relocations: Vec<&'data [Rela]> = vec![&[]; sections.len()];
        let mut stack_note = StackNote::Missing;
        // Whether a section not loaded is GCC's intermediate code (`.gnu.lto_*`).
        let mut lto = false;
        let mut debug_info = false;
        for section in sections.iter() {
            // Questions about names, answered in this one walk of the headers: the
            // executable-stack and debugger plugins' (each made a pass of its own, 3.3 and
            // 1.2 ms of the LLVM-static link) and whether this is a slim LTO object. Names
            // are compared in place: finding each one's end first would scan every long C++
            // section name whole.
            let unloaded = section.sh_flags(LE) & u64::from(elf::SHF_ALLOC) == 0;
            let debug_candidate = unloaded && section.sh_type(LE) == elf::SHT_PROGBITS;
            if stack_note == StackNote::Missing
                || (unloaded && !lto)
                || (debug_candidate && !debug_info)
            {
                let name = name_at(section_names, section.sh_name(LE));
                if stack_note == StackNote::Missing && name.starts_with(b".note.GNU-stack\0") {
                    stack_note = match section.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) {
                        0 => StackNote::NotExecutable,
                        _ => StackNote::Executable,
                    };
                }
                lto |= unloaded && name.starts_with(b".gnu.lto_");
                debug_info |= debug_candidate && name.starts_with(b".debug_info\0");
            }
            let section_name = || escape_bytes(sections.section_name(LE, section).unwrap_or(b"?"));
            match section.sh_type(LE) {
                elf::SHT_RELA => {
                    let target = section.sh_info(LE) as usize;
                    let Some(slot) = relocations.get_mut(target) else {
                        return Err(fail(format!(
                            "relocation section {} applies to section {target}, which does not exist",
                            section_name()
                        )));
                    };
                    if section.sh_link(LE) as usize != symbols.section().0 {
                        return Err(fail(format!(
                            "relocation section {} does not use the symbol table",
                            section_name()
                        )));
                    }
                    *slot = section.data_as_array(LE, data).map_err(|e| {
                        fail(format!(
                            "relocation section {} (truncated file?): {e}",
                            section_name()
                        ))
                    })?;
                }
                elf::SHT_REL => {
                    let target = section.sh_info(LE);
                    let applies_to_loaded = sections
                        .section(SectionIndex(target as usize))
                        .is_ok_and(|s| s.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0);
                    if applies_to_loaded {
                        return Err(LinkError::Section {
                            file: name,
                            section: section_name(),
                            problem: format!(
                                "uses SHT_REL relocations, which {} objects do not use",
                                HostArch::NAME
                            ),
                        });
                    }
                }
                _ => {}
            }
            // Every loaded section is copied into the image whole, whatever its type (a
            // relocation section marked SHF_ALLOC too): its bytes must lie in the file.
            if !unloaded && section.sh_type(LE) != elf::SHT_NOBITS {
                section.data(LE, data).map_err(|e| {
                    fail(format!(
                        "section {} lies outside the file (truncated file?): {e}",
                        section_name()
                    ))
                })?;
            }
        }
        // GCC's slim LTO objects hold only its intermediate language: linking them as they
        // are would miss every function they define (`undefined symbol main`).
        if lto
            && symbols
                .iter()
                .any(|symbol| symbols.symbol_name(LE, symbol) == Ok(&b"__gnu_lto_slim"[..]))
        {
            return Err(fail(
                "compiled with -flto: it holds GCC's intermediate code, not machine code, and rjitlink does no link-time optimization; compile without -flto (or add -ffat-lto-objects)"
                    .into(),
            ));
        }
        let first_global = match symbols.section().0 {
            0 => 0,
            index => (sections.iter().as_slice()[index].sh_info(LE) as usize).min(symbols.len()),
        };
        Ok(ObjectFile {
            name,
            data,
            sections,
            symbols,
            relocations,
            first_global,
            stack_note,
            has_debug_info: debug_info,
        })
    }

    pub fn section(&self, index: usize) -> &'data Shdr {
        // Every index used here was validated against the section count at parse or resolve.
        &self.sections.iter().as_slice()[index]
    }

    pub fn section_name(&self, index: usize) -> &'data [u8] {
        self.sections
            .section_name(LE, self.section(index))
            .unwrap_or(b"<bad section name>")
    }

    pub fn section_data(&self, index: usize) -> &'data [u8] {
        // Validated in `parse` for every SHF_ALLOC section.
        self.section(index).data(LE, self.data).unwrap_or(&[])
    }

    /// Whether section `index` holds thread-local storage (SHF_TLS); false if there is none.
    pub fn is_thread_local_section(&self, index: usize) -> bool {
        self.sections
            .section(object::SectionIndex(index))
            .is_ok_and(|header| header.sh_flags(LE) & u64::from(elf::SHF_TLS) != 0)
    }

    pub fn symbol(&self, index: usize) -> Option<&'data Sym> {
        self.symbols.symbols().get(index)
    }

    pub fn symbol_name(&self, symbol: &Sym) -> &'data [u8] {
        self.symbols
            .symbol_name(LE, symbol)
            .unwrap_or(b"<bad symbol name>")
    }

    /// Name for messages: the symbol's own name, or for a section symbol the section's.
    pub fn describe_symbol(&self, index: usize) -> String {
        let Some(symbol) = self.symbol(index) else {
            return format!("symbol #{index}");
        };
        if symbol.st_type() == elf::STT_SECTION {
            // The section index may be anything an input says (SHN_ABS, SHN_XINDEX with an
            // extended index, past the table): name the section only where there is one.
            return match self
                .symbol_section(index, symbol)
                .filter(|&section| section < self.sections.len())
            {
                Some(section) => format!("section {}", escape_bytes(self.section_name(section))),
                None => format!("section symbol #{index}"),
            };
        }
        escape_bytes(self.symbol_name(symbol))
    }

    /// The name of the function whose code holds `offset` in section `section`: the `STT_FUNC`
    /// symbol defined there whose `[st_value, st_value + st_size)` covers it. `None` if no
    /// function does (data, or assembly without `.type`/`.size`).
    pub fn function_at(&self, section: usize, offset: u64) -> Option<&'data [u8]> {
        self.symbols
            .symbols()
            .iter()
            .enumerate()
            .find(|(index, symbol)| {
                symbol.st_type() == elf::STT_FUNC
                    && self.symbol_section(*index, symbol) == Some(section)
                    && symbol.st_value(LE) <= offset
                    && symbol
                        .st_value(LE)
                        .checked_add(symbol.st_size(LE))
                        .is_some_and(|end| offset < end)
            })
            .map(|(_, symbol)| self.symbol_name(symbol))
    }

    /// The function whose code refers to the global `name` first: the function holding the
    /// first relocation against it in an executable section. For error messages only (it
    /// reads every relocation of the object).
    pub fn referring_function(&self, name: &[u8]) -> Option<&'data [u8]> {
        let symbols = self.symbols.symbols();
        self.relocations
            .iter()
            .enumerate()
            .filter(|(section, relocations)| {
                !relocations.is_empty()
                    && self.section(*section).sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0
            })
            .find_map(|(section, relocations)| {
                relocations.iter().find_map(|rela| {
                    let index = rela.r_sym(LE, false) as usize;
                    let refers = index >= self.first_global
                        && symbols
                            .get(index)
                            .is_some_and(|symbol| self.symbol_name(symbol) == name);
                    refers
                        .then(|| self.function_at(section, rela.r_offset(LE)))
                        .flatten()
                })
            })
    }

    /// The index of the first non-local symbol (sh_info of the symbol table).
    pub fn first_global(&self) -> usize {
        self.first_global
    }

    /// The section symbol `index` is defined in, resolving extended (SHN_XINDEX) section
    /// indices. `None` for undefined, absolute and common symbols.
    pub fn symbol_section(&self, index: usize, symbol: &Sym) -> Option<usize> {
        self.symbols
            .symbol_section(LE, symbol, object::SymbolIndex(index))
            .ok()
            .flatten()
            .map(|section| section.0)
    }
}

/// The bytes of a string table from `offset` on (empty past its end): a name and what follows.
fn name_at(table: &[u8], offset: u32) -> &[u8] {
    table.get(offset as usize..).unwrap_or(&[])
}

/// Whether a section name can form `__start_NAME`/`__stop_NAME` symbols.
pub fn is_c_identifier(name: &[u8]) -> bool {
    !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}
