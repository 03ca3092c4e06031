//! Everything the linker knows about x86-64: relocation kinds (formula, width, range),
//! GOT-load relaxation, and the PLT stub encoding. The rest of the linker is architecture-free.

use object::elf::*;

/// How a relocation's value is computed (psABI notation: S symbol, A addend, P place,
/// G GOT slot offset, GOT GOT base, L PLT stub, Z symbol size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formula {
    /// R_X86_64_NONE: nothing to do.
    None,
    /// S + A
    Absolute,
    /// S + A - P
    PcRelative,
    /// L + A - P; the symbol itself (S) when it is within reach.
    PltRelative,
    /// G + GOT + A - P; `relax` says whether the instruction may be rewritten to use S directly.
    GotPcRelative { relax: Relax },
    /// G + A: the slot's offset from the GOT base.
    GotOffsetOfSlot,
    /// S + A - GOT
    OffsetFromGot,
    /// GOT + A - P
    GotBaseRelative,
    /// L - GOT + A; S - GOT + A when no stub is needed.
    PltOffsetFromGot,
    /// Z + A
    Size,
}

/// GOT-load relaxation allowed for a GOTPCREL-family relocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relax {
    Never,
    /// R_X86_64_GOTPCRELX: `mov`, `call *`, `jmp *` without REX.
    Plain,
    /// R_X86_64_REX_GOTPCRELX: `mov` with a REX prefix.
    Rex,
}

/// The values a field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Signed,
    Unsigned,
    /// Signed or unsigned: ld's "bitfield" check for R_X86_64_16 and R_X86_64_8.
    Either,
}

/// One relocation type.
#[derive(Clone, Copy, Debug)]
pub struct RelocKind {
    pub name: &'static str,
    pub formula: Formula,
    /// Bytes written.
    pub width: usize,
    pub range: Range,
}

/// A relocation type rjitlink cannot apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsupportedReloc {
    /// A known type that rjitlink does not implement (TLS, dynamic-only types).
    Known(&'static str),
    Unknown(u32),
}

impl std::fmt::Display for UnsupportedReloc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsupportedReloc::Known(name) => write!(f, "unsupported relocation {name}"),
            UnsupportedReloc::Unknown(r_type) => write!(f, "unknown relocation type {r_type}"),
        }
    }
}

/// The table of x86-64 relocation types.
pub const fn reloc_kind(r_type: u32) -> Result<RelocKind, UnsupportedReloc> {
    use Formula::*;
    use Range::*;
    const fn kind(name: &'static str, formula: Formula, width: usize, range: Range) -> RelocKind {
        RelocKind {
            name,
            formula,
            width,
            range,
        }
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
        R_X86_64_GOTPCREL => kind(
            "R_X86_64_GOTPCREL",
            GotPcRelative {
                relax: Relax::Never,
            },
            4,
            Signed,
        ),
        R_X86_64_GOTPCRELX => kind(
            "R_X86_64_GOTPCRELX",
            GotPcRelative {
                relax: Relax::Plain,
            },
            4,
            Signed,
        ),
        R_X86_64_REX_GOTPCRELX => kind(
            "R_X86_64_REX_GOTPCRELX",
            GotPcRelative { relax: Relax::Rex },
            4,
            Signed,
        ),
        R_X86_64_GOTPCREL64 => kind(
            "R_X86_64_GOTPCREL64",
            GotPcRelative {
                relax: Relax::Never,
            },
            8,
            Either,
        ),
        R_X86_64_GOTOFF64 => kind("R_X86_64_GOTOFF64", OffsetFromGot, 8, Either),
        R_X86_64_GOTPC32 => kind("R_X86_64_GOTPC32", GotBaseRelative, 4, Signed),
        R_X86_64_GOTPC64 => kind("R_X86_64_GOTPC64", GotBaseRelative, 8, Either),
        R_X86_64_PLTOFF64 => kind("R_X86_64_PLTOFF64", PltOffsetFromGot, 8, Either),
        R_X86_64_SIZE32 => kind("R_X86_64_SIZE32", Size, 4, Unsigned),
        R_X86_64_SIZE64 => kind("R_X86_64_SIZE64", Size, 8, Either),
        R_X86_64_COPY => return Err(UnsupportedReloc::Known("R_X86_64_COPY")),
        R_X86_64_GLOB_DAT => return Err(UnsupportedReloc::Known("R_X86_64_GLOB_DAT")),
        R_X86_64_JUMP_SLOT => return Err(UnsupportedReloc::Known("R_X86_64_JUMP_SLOT")),
        R_X86_64_RELATIVE => return Err(UnsupportedReloc::Known("R_X86_64_RELATIVE")),
        R_X86_64_DTPMOD64 => return Err(UnsupportedReloc::Known("R_X86_64_DTPMOD64")),
        R_X86_64_DTPOFF64 => return Err(UnsupportedReloc::Known("R_X86_64_DTPOFF64")),
        R_X86_64_TPOFF64 => return Err(UnsupportedReloc::Known("R_X86_64_TPOFF64")),
        R_X86_64_TLSGD => return Err(UnsupportedReloc::Known("R_X86_64_TLSGD")),
        R_X86_64_TLSLD => return Err(UnsupportedReloc::Known("R_X86_64_TLSLD")),
        R_X86_64_DTPOFF32 => return Err(UnsupportedReloc::Known("R_X86_64_DTPOFF32")),
        R_X86_64_GOTTPOFF => return Err(UnsupportedReloc::Known("R_X86_64_GOTTPOFF")),
        R_X86_64_TPOFF32 => return Err(UnsupportedReloc::Known("R_X86_64_TPOFF32")),
        R_X86_64_GOTPC32_TLSDESC => {
            return Err(UnsupportedReloc::Known("R_X86_64_GOTPC32_TLSDESC"))
        }
        R_X86_64_TLSDESC_CALL => return Err(UnsupportedReloc::Known("R_X86_64_TLSDESC_CALL")),
        R_X86_64_TLSDESC => return Err(UnsupportedReloc::Known("R_X86_64_TLSDESC")),
        R_X86_64_IRELATIVE => return Err(UnsupportedReloc::Known("R_X86_64_IRELATIVE")),
        other => return Err(UnsupportedReloc::Unknown(other)),
    })
}

/// Whether `value` fits a field of `width` bytes with `range`.
pub fn fits(value: i64, width: usize, range: Range) -> bool {
    if width >= 8 {
        return true;
    }
    let bits = width as u32 * 8;
    let value = i128::from(value);
    let signed_min = -(1i128 << (bits - 1));
    let signed_end = 1i128 << (bits - 1);
    let unsigned_end = 1i128 << bits;
    match range {
        Range::Signed => (signed_min..signed_end).contains(&value),
        Range::Unsigned => (0..unsigned_end).contains(&value),
        Range::Either => (signed_min..unsigned_end).contains(&value),
    }
}

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

/// Which rewrite applies to the instruction whose rel32 field is at `offset` in `code`, if any.
pub fn relaxation(code: &[u8], offset: usize, relax: Relax) -> Option<Relaxation> {
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

/// Rewrite the instruction for `relaxation`; returns the offset where the new rel32 goes.
pub fn relax_instruction(code: &mut [u8], offset: usize, relaxation: Relaxation) -> usize {
    match relaxation {
        Relaxation::MovToLea => {
            code[offset - 2] = 0x8d;
            offset
        }
        Relaxation::IndirectCallToDirect => {
            // The addr32 prefix pads the 5-byte direct call to the 6 bytes of the indirect one.
            code[offset - 2] = 0x67;
            code[offset - 1] = 0xe8;
            offset
        }
        Relaxation::IndirectJumpToDirect => {
            code[offset - 2] = 0xe9;
            code[offset + 3] = 0x90;
            offset - 1
        }
    }
}

/// Size of one PLT stub.
pub const PLT_STUB_SIZE: u64 = 8;
/// Size of one GOT slot.
pub const GOT_SLOT_SIZE: u64 = 8;

/// A PLT stub at `stub` that jumps through the GOT slot at `slot`: `jmp *slot(%rip)`, padded
/// with int3. The caller guarantees the slot is within ±2 GiB (both lie in one image).
pub fn plt_stub(stub: u64, slot: u64) -> [u8; PLT_STUB_SIZE as usize] {
    let displacement = slot.wrapping_sub(stub + 6) as i64 as i32;
    let d = displacement.to_le_bytes();
    [0xff, 0x25, d[0], d[1], d[2], d[3], 0xcc, 0xcc]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_psabi_field_sizes() {
        assert!(fits(i32::MAX as i64, 4, Range::Signed));
        assert!(!fits(i32::MAX as i64 + 1, 4, Range::Signed));
        assert!(fits(i32::MIN as i64, 4, Range::Signed));
        assert!(!fits(-1, 4, Range::Unsigned));
        assert!(fits(u32::MAX as i64, 4, Range::Unsigned));
        assert!(!fits(1 << 32, 4, Range::Unsigned));
        assert!(fits(-32768, 2, Range::Either));
        assert!(fits(65535, 2, Range::Either));
        assert!(!fits(65536, 2, Range::Either));
        assert!(!fits(-129, 1, Range::Signed));
        assert!(fits(i64::MIN, 8, Range::Signed));
    }

    #[test]
    fn relaxes_only_recognised_instructions() {
        // 48 8b 05 = mov rel32(%rip), %rax
        let mut code = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        assert_eq!(relaxation(&code, 3, Relax::Rex), Some(Relaxation::MovToLea));
        assert_eq!(relax_instruction(&mut code, 3, Relaxation::MovToLea), 3);
        assert_eq!(code[1], 0x8d);
        // 48 03 05 = add rel32(%rip), %rax: not relaxed to lea.
        assert_eq!(
            relaxation(&[0x48, 0x03, 0x05, 0, 0, 0, 0], 3, Relax::Rex),
            None
        );
        let mut jump = [0xff, 0x25, 0, 0, 0, 0];
        assert_eq!(
            relaxation(&jump, 2, Relax::Plain),
            Some(Relaxation::IndirectJumpToDirect)
        );
        assert_eq!(
            relax_instruction(&mut jump, 2, Relaxation::IndirectJumpToDirect),
            1
        );
        assert_eq!(jump, [0xe9, 0x25, 0, 0, 0, 0x90]);
        assert_eq!(relaxation(&[0x05, 0, 0, 0, 0], 1, Relax::Plain), None);
    }

    #[test]
    fn stub_jumps_through_its_slot() {
        // Stub at 0x1000, slot at 0x2000: displacement = 0x2000 - 0x1006.
        assert_eq!(
            plt_stub(0x1000, 0x2000),
            [0xff, 0x25, 0xfa, 0x0f, 0, 0, 0xcc, 0xcc]
        );
    }

    #[test]
    fn tls_is_reported_by_name_and_unknown_by_number() {
        assert_eq!(
            reloc_kind(R_X86_64_TPOFF32).unwrap_err().to_string(),
            "unsupported relocation R_X86_64_TPOFF32"
        );
        assert_eq!(
            reloc_kind(200).unwrap_err().to_string(),
            "unknown relocation type 200"
        );
    }
}
