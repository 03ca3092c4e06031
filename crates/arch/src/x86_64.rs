//! x86-64: the psABI's relocation table (formula, width, range), the small code model, GOT-load
//! relaxation as ld does it, and the PLT stub encoding.

use crate::{
    AddressSlot, Arch, Formula, Range, Reach, Relax, RelocKind, TlsAccess, TlsDynamicRelocs,
    UnsupportedReloc,
};
use object::elf::*;

/// x86-64 ELF, the small code model.
#[derive(Clone, Copy, Debug)]
pub struct X86_64;

/// The instruction rewrite that lets a GOT load use the symbol's address directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relaxation {
    /// `mov foo@GOTPCREL(%rip), %reg` → `lea foo(%rip), %reg`.
    MovToLea,
    /// `call *foo@GOTPCREL(%rip)` → `addr32 call foo`.
    IndirectCallToDirect,
    /// `jmp *foo@GOTPCREL(%rip)` → `jmp foo; nop`. The rel32 moves one byte back.
    IndirectJumpToDirect,
}

/// The table of x86-64 relocation types.
const fn reloc_kind(r_type: u32) -> Result<RelocKind, UnsupportedReloc> {
    use Formula::*;
    use Range::*;
    use TlsAccess::*;
    const fn kind(name: &'static str, formula: Formula, width: usize, range: Range) -> RelocKind {
        RelocKind {
            name,
            formula,
            width,
            range,
        }
    }
    const fn got_pc(relax: Relax) -> Formula {
        GotPcRelative { relax }
    }
    const fn unsupported(name: &'static str) -> Result<RelocKind, UnsupportedReloc> {
        Err(UnsupportedReloc::Known(name))
    }
    Ok(match r_type {
        R_X86_64_NONE => kind("R_X86_64_NONE", None, 0, Signed),
        R_X86_64_64 => kind("R_X86_64_64", Absolute, 8, Either),
        R_X86_64_PC32 => kind("R_X86_64_PC32", PcRelative, 4, Signed),
        R_X86_64_PLT32 => kind("R_X86_64_PLT32", PltRelative, 4, Signed),
        R_X86_64_32 => kind("R_X86_64_32", Absolute, 4, Unsigned),
        R_X86_64_32S => kind("R_X86_64_32S", Absolute, 4, Signed),
        R_X86_64_16 => kind("R_X86_64_16", Absolute, 2, Either),
        R_X86_64_PC16 => kind("R_X86_64_PC16", PcRelative, 2, Signed),
        R_X86_64_8 => kind("R_X86_64_8", Absolute, 1, Either),
        R_X86_64_PC8 => kind("R_X86_64_PC8", PcRelative, 1, Signed),
        R_X86_64_PC64 => kind("R_X86_64_PC64", PcRelative, 8, Either),
        R_X86_64_GOT32 => kind("R_X86_64_GOT32", GotOffsetOfSlot, 4, Signed),
        R_X86_64_GOT64 => kind("R_X86_64_GOT64", GotOffsetOfSlot, 8, Either),
        R_X86_64_GOTPLT64 => kind("R_X86_64_GOTPLT64", GotOffsetOfSlot, 8, Either),
        R_X86_64_GOTPCREL => kind("R_X86_64_GOTPCREL", got_pc(Relax::Never), 4, Signed),
        R_X86_64_GOTPCRELX => kind("R_X86_64_GOTPCRELX", got_pc(Relax::Plain), 4, Signed),
        R_X86_64_REX_GOTPCRELX => kind("R_X86_64_REX_GOTPCRELX", got_pc(Relax::Rex), 4, Signed),
        R_X86_64_GOTPCREL64 => kind("R_X86_64_GOTPCREL64", got_pc(Relax::Never), 8, Either),
        R_X86_64_GOTOFF64 => kind("R_X86_64_GOTOFF64", OffsetFromGot, 8, Either),
        R_X86_64_GOTPC32 => kind("R_X86_64_GOTPC32", GotBaseRelative, 4, Signed),
        R_X86_64_GOTPC64 => kind("R_X86_64_GOTPC64", GotBaseRelative, 8, Either),
        R_X86_64_PLTOFF64 => kind("R_X86_64_PLTOFF64", PltOffsetFromGot, 8, Either),
        R_X86_64_SIZE32 => kind("R_X86_64_SIZE32", Size, 4, Unsigned),
        R_X86_64_SIZE64 => kind("R_X86_64_SIZE64", Size, 8, Either),
        R_X86_64_COPY => return unsupported("R_X86_64_COPY"),
        R_X86_64_GLOB_DAT => return unsupported("R_X86_64_GLOB_DAT"),
        R_X86_64_JUMP_SLOT => return unsupported("R_X86_64_JUMP_SLOT"),
        R_X86_64_RELATIVE => return unsupported("R_X86_64_RELATIVE"),
        R_X86_64_DTPMOD64 => kind("R_X86_64_DTPMOD64", ThreadLocal(ModuleId), 8, Either),
        R_X86_64_DTPOFF64 => kind("R_X86_64_DTPOFF64", ThreadLocal(OffsetInBlock), 8, Either),
        R_X86_64_TPOFF64 => kind(
            "R_X86_64_TPOFF64",
            ThreadLocal(ThreadPointerOffset),
            8,
            Either,
        ),
        R_X86_64_TLSGD => kind("R_X86_64_TLSGD", ThreadLocal(GeneralDynamic), 4, Signed),
        R_X86_64_TLSLD => kind("R_X86_64_TLSLD", ThreadLocal(LocalDynamic), 4, Signed),
        R_X86_64_DTPOFF32 => kind("R_X86_64_DTPOFF32", ThreadLocal(OffsetInBlock), 4, Signed),
        R_X86_64_GOTTPOFF => kind(
            "R_X86_64_GOTTPOFF",
            ThreadLocal(GotThreadPointerOffset),
            4,
            Signed,
        ),
        R_X86_64_TPOFF32 => kind(
            "R_X86_64_TPOFF32",
            ThreadLocal(ThreadPointerOffset),
            4,
            Signed,
        ),
        R_X86_64_GOTPC32_TLSDESC => kind(
            "R_X86_64_GOTPC32_TLSDESC",
            ThreadLocal(Descriptor),
            4,
            Signed,
        ),
        R_X86_64_TLSDESC_CALL => kind(
            "R_X86_64_TLSDESC_CALL",
            ThreadLocal(DescriptorCall),
            0,
            Signed,
        ),
        R_X86_64_TLSDESC => return unsupported("R_X86_64_TLSDESC"),
        R_X86_64_IRELATIVE => return unsupported("R_X86_64_IRELATIVE"),
        other => return Err(UnsupportedReloc::Unknown(other)),
    })
}

/// How many relocation types `RELOC_KINDS` holds: every type number the psABI assigns so far.
const RELOC_TYPES: usize = 64;

/// `reloc_kind` of each type number below `RELOC_TYPES`, computed at compile time; a static,
/// as `Arch::reloc_kind` hands out references into it.
static RELOC_KINDS: [Result<RelocKind, UnsupportedReloc>; RELOC_TYPES] = {
    let mut table = [Err(UnsupportedReloc::Unknown(0)); RELOC_TYPES];
    let mut r_type = 0;
    while r_type < RELOC_TYPES {
        table[r_type] = reloc_kind(r_type as u32);
        r_type += 1;
    }
    table
};

impl Arch for X86_64 {
    type Relaxation = Relaxation;

    const NAME: &'static str = "x86-64";
    const MACHINE: u16 = EM_X86_64;
    const LIBRARY_DIRS: &'static [&'static str] = &[
        "/usr/local/lib/x86_64-linux-gnu",
        "/usr/local/lib",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    const GCC_LIBRARY_ROOT: &'static str = "/usr/lib/gcc/x86_64-linux-gnu";
    /// The small code model: every PC32 inside the image must reach.
    const MAX_IMAGE_SIZE: u64 = 1 << 31;
    const GOT_SLOT_SIZE: u64 = 8;
    const PLT_STUB_SIZE: u64 = 8;
    const PLT_ALIGN: u64 = 16;

    #[inline]
    fn reloc_kind(r_type: u32) -> Result<&'static RelocKind, UnsupportedReloc> {
        // Asked once per relocation (millions in a large link): a reference into the table
        // rather than the match, or a copy of the entry (which cost a tenth of applying a
        // relocation).
        match RELOC_KINDS.get(r_type as usize) {
            Some(Ok(kind)) => Ok(kind),
            Some(Err(reason)) => Err(*reason),
            // The psABI assigns no number past the table (its test checks the match agrees).
            None => Err(UnsupportedReloc::Unknown(r_type)),
        }
    }

    fn reach(kind: &RelocKind) -> Reach {
        // The small code model: 32-bit fields reach ±2 GiB around the code, or the low 2 GiB
        // (4 GiB unsigned) as absolute addresses; 64-bit fields reach everything.
        match kind.formula {
            Formula::Absolute if kind.width == 4 => Reach::LowAbsolute,
            Formula::PcRelative if kind.width == 4 => Reach::NearRelative,
            _ => Reach::Anywhere,
        }
    }

    fn relaxation(code: &[u8], offset: usize, relax: Relax) -> Option<Relaxation> {
        let opcode = *code.get(offset.checked_sub(2)?)?;
        let modrm = *code.get(offset - 1)?;
        let rip_relative = modrm & 0xc7 == 0x05;
        match relax {
            Relax::Never => None,
            Relax::Plain => match (opcode, modrm) {
                (0x8b, _) if rip_relative => Some(Relaxation::MovToLea),
                (0xff, 0x15) => Some(Relaxation::IndirectCallToDirect),
                (0xff, 0x25) => Some(Relaxation::IndirectJumpToDirect),
                _ => None,
            },
            Relax::Rex => {
                let rex = *code.get(offset.checked_sub(3)?)?;
                ((0x40..=0x4f).contains(&rex) && opcode == 0x8b && rip_relative)
                    .then_some(Relaxation::MovToLea)
            }
        }
    }

    fn relaxed_field(relaxation: Relaxation, offset: usize) -> usize {
        match relaxation {
            Relaxation::IndirectJumpToDirect => offset - 1,
            Relaxation::MovToLea | Relaxation::IndirectCallToDirect => offset,
        }
    }

    fn relax_instruction(code: &mut [u8], offset: usize, relaxation: Relaxation) -> usize {
        match relaxation {
            Relaxation::MovToLea => code[offset - 2] = 0x8d,
            Relaxation::IndirectCallToDirect => {
                // The addr32 prefix pads the 5-byte direct call to the 6 bytes of the
                // indirect one.
                code[offset - 2] = 0x67;
                code[offset - 1] = 0xe8;
            }
            Relaxation::IndirectJumpToDirect => {
                code[offset - 2] = 0xe9;
                code[offset + 3] = 0x90;
            }
        }
        Self::relaxed_field(relaxation, offset)
    }

    /// `jmp *slot(%rip)`, padded with int3.
    fn write_plt_stub(out: &mut [u8], stub: u64, slot: u64) {
        let displacement = slot.wrapping_sub(stub + 6) as i64 as i32;
        let d = displacement.to_le_bytes();
        out.copy_from_slice(&[0xff, 0x25, d[0], d[1], d[2], d[3], 0xcc, 0xcc]);
    }

    const IFUNC_THUNK_SIZE: u64 = 16;

    /// `push %rsi; call *%rdi; pop %rsi; mov %rax, (%rsi); ret`, padded with int3. The push
    /// also keeps the stack 16-byte aligned at the call, as the psABI wants.
    fn write_ifunc_thunk(out: &mut [u8]) {
        let code = [0x56, 0xff, 0xd7, 0x5e, 0x48, 0x89, 0x06, 0xc3];
        out[..code.len()].copy_from_slice(&code);
        out[code.len()..].fill(0xcc);
    }

    const TLS_DYNAMIC_RELOCS: TlsDynamicRelocs = TlsDynamicRelocs {
        module_id: R_X86_64_DTPMOD64,
        offset_in_block: R_X86_64_DTPOFF64,
        thread_pointer_offset: R_X86_64_TPOFF64,
        descriptor: R_X86_64_TLSDESC,
    };

    fn address_slot(r_type: u32) -> Option<AddressSlot> {
        match r_type {
            R_X86_64_GLOB_DAT => Some(AddressSlot::Symbol),
            R_X86_64_64 => Some(AddressSlot::SymbolPlusAddend),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_answers_as_the_match() {
        // Every type number in the table, and past it, where the match answers alone.
        for r_type in 0..RELOC_TYPES as u32 + 8 {
            let from_table = <X86_64 as Arch>::reloc_kind(r_type);
            let from_match = reloc_kind(r_type);
            assert_eq!(
                format!("{from_table:?}"),
                format!("{from_match:?}"),
                "type {r_type}"
            );
        }
        // Spot checks against the psABI's numbers.
        let pc32 = <X86_64 as Arch>::reloc_kind(2).unwrap();
        assert_eq!((pc32.name, pc32.width), ("R_X86_64_PC32", 4));
        assert_eq!(
            <X86_64 as Arch>::reloc_kind(37).unwrap_err(),
            UnsupportedReloc::Known("R_X86_64_IRELATIVE")
        );
    }

    #[test]
    fn relaxes_only_recognised_instructions() {
        // 48 8b 05 = mov rel32(%rip), %rax
        let mut code = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        let relaxation = X86_64::relaxation(&code, 3, Relax::Rex);
        assert_eq!(relaxation, Some(Relaxation::MovToLea));
        assert_eq!(
            X86_64::relax_instruction(&mut code, 3, Relaxation::MovToLea),
            3
        );
        assert_eq!(code[1], 0x8d);
        // 48 03 05 = add rel32(%rip), %rax: not relaxed to lea.
        assert_eq!(
            X86_64::relaxation(&[0x48, 0x03, 0x05, 0, 0, 0, 0], 3, Relax::Rex),
            None
        );
        let mut jump = [0xff, 0x25, 0, 0, 0, 0];
        assert_eq!(
            X86_64::relaxation(&jump, 2, Relax::Plain),
            Some(Relaxation::IndirectJumpToDirect)
        );
        assert_eq!(
            X86_64::relax_instruction(&mut jump, 2, Relaxation::IndirectJumpToDirect),
            1
        );
        assert_eq!(jump, [0xe9, 0x25, 0, 0, 0, 0x90]);
        assert_eq!(
            X86_64::relaxation(&[0x05, 0, 0, 0, 0], 1, Relax::Plain),
            None
        );
    }

    #[test]
    fn stub_jumps_through_its_slot() {
        // Stub at 0x1000, slot at 0x2000: displacement = 0x2000 - 0x1006.
        let mut stub = [0; X86_64::PLT_STUB_SIZE as usize];
        X86_64::write_plt_stub(&mut stub, 0x1000, 0x2000);
        assert_eq!(stub, [0xff, 0x25, 0xfa, 0x0f, 0, 0, 0xcc, 0xcc]);
    }

    #[test]
    fn dynamic_only_types_are_reported_by_name_and_unknown_by_number() {
        assert_eq!(
            X86_64::reloc_kind(R_X86_64_TLSDESC)
                .unwrap_err()
                .to_string(),
            "unsupported relocation R_X86_64_TLSDESC"
        );
        assert_eq!(
            X86_64::reloc_kind(200).unwrap_err().to_string(),
            "unknown relocation type 200"
        );
    }

    #[test]
    fn the_small_code_model_decides_reach() {
        let kind = |r_type| X86_64::reloc_kind(r_type).unwrap();
        assert_eq!(X86_64::reach(kind(R_X86_64_32S)), Reach::LowAbsolute);
        assert_eq!(X86_64::reach(kind(R_X86_64_32)), Reach::LowAbsolute);
        assert_eq!(X86_64::reach(kind(R_X86_64_PC32)), Reach::NearRelative);
        assert_eq!(X86_64::reach(kind(R_X86_64_64)), Reach::Anywhere);
        // PLT32 is near too, but reaches a stub rather than needing a stand-in decided here.
        assert_eq!(X86_64::reach(kind(R_X86_64_PLT32)), Reach::Anywhere);
    }
}
