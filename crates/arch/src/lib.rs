//! What rjitlink knows about a target architecture, behind one trait: relocation kinds (formula,
//! width, range), GOT-load relaxation, PLT stubs, code-model limits, `e_machine` and where the
//! system keeps the architecture's libraries. `x86_64` implements it; the rest of rjitlink is
//! architecture-free and names the architecture only through `HostArch`.

#![deny(missing_docs)]

mod x86_64;

pub use x86_64::X86_64;

/// The architecture rjitlink links for: the one it runs on (a JIT's code runs beside it).
pub type HostArch = X86_64;

/// How a relocation's value is computed (psABI notation: S symbol, A addend, P place,
/// G GOT slot offset, GOT GOT base, L PLT stub, Z symbol size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formula {
    /// Nothing to do.
    None,
    /// S + A
    Absolute,
    /// S + A - P
    PcRelative,
    /// L + A - P; the symbol itself (S) when it is within reach.
    PltRelative,
    /// G + GOT + A - P; `relax` says whether the instruction may be rewritten to use S directly.
    GotPcRelative {
        /// Whether the instruction may be rewritten.
        relax: Relax,
    },
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
    /// Thread-local storage: what the field holds is computed from the symbol's place in the
    /// unit's TLS block.
    ThreadLocal(TlsAccess),
}

/// How a TLS relocation reaches its symbol (psABI TLS models; "block" is the unit's TLS
/// block, "entry" a GOT entry the dynamic loader's values fill).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsAccess {
    /// General dynamic: PC-relative to a two-word entry (module id, offset in the block)
    /// passed to `__tls_get_addr`.
    GeneralDynamic,
    /// Local dynamic: PC-relative to the module's two-word entry (module id, 0).
    LocalDynamic,
    /// The symbol's offset in its module's block: S + A.
    OffsetInBlock,
    /// Initial exec: PC-relative to an entry holding the symbol's offset from the thread
    /// pointer.
    GotThreadPointerOffset,
    /// Local exec: the symbol's offset from the thread pointer, + A.
    ThreadPointerOffset,
    /// TLS descriptor: PC-relative to a two-word descriptor (resolver, argument).
    Descriptor,
    /// Marks the call through a TLS descriptor: nothing to write.
    DescriptorCall,
    /// The module id of the symbol's block.
    ModuleId,
}

/// GOT-load relaxation allowed for a GOT-relative relocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relax {
    /// Never: the instruction cannot be rewritten.
    Never,
    /// The instruction has no prefix to account for.
    Plain,
    /// The instruction carries a REX prefix.
    Rex,
}

/// The values a field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// A two's complement value of the field's width.
    Signed,
    /// An unsigned value of the field's width.
    Unsigned,
    /// Signed or unsigned: ld's "bitfield" check.
    Either,
}

impl Range {
    /// For messages: `signed`, `unsigned`, `signed or unsigned`.
    pub fn describe(self) -> &'static str {
        match self {
            Range::Signed => "signed",
            Range::Unsigned => "unsigned",
            Range::Either => "signed or unsigned",
        }
    }
}

/// One relocation type.
#[derive(Clone, Copy, Debug)]
pub struct RelocKind {
    /// The psABI's name, for messages.
    pub name: &'static str,
    /// How the value is computed.
    pub formula: Formula,
    /// Bytes written.
    pub width: usize,
    /// The values the field may hold.
    pub range: Range,
}

/// What a linked reference needs, depending on where its symbol lies; decided by the
/// architecture's code model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The value fits wherever the symbol lies.
    Anywhere,
    /// An absolute address in a field narrower than a pointer: a symbol in the image needs the
    /// image placed low; a library symbol needs a stand-in in the image (copy or stub).
    LowAbsolute,
    /// A PC-relative field that reaches only nearby code and data: a library symbol needs a
    /// stand-in in the image (a copy for data, a stub for functions).
    NearRelative,
}

/// A relocation type rjitlink cannot apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsupportedReloc {
    /// A known type that rjitlink does not implement (dynamic-only types).
    Known(&'static str),
    /// A type number rjitlink does not know.
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

impl std::error::Error for UnsupportedReloc {}

/// How a dynamic relocation that stores a symbol's address into a data slot computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSlot {
    /// The slot holds S.
    Symbol,
    /// The slot holds S + A.
    SymbolPlusAddend,
}

/// The dynamic relocation types with which a loaded module asks the dynamic loader for
/// thread-local values: each stores one word (a descriptor, two) at its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsDynamicRelocs {
    /// The module id of the symbol's module.
    pub module_id: u32,
    /// The symbol's offset in its module's block, + A.
    pub offset_in_block: u32,
    /// The symbol's offset from the thread pointer, + A; puts the module in static TLS.
    pub thread_pointer_offset: u32,
    /// A TLS descriptor (resolver, argument) for the symbol, + A.
    pub descriptor: u32,
}

/// Everything architecture-specific the linker and executor need. Implemented once per
/// architecture (`X86_64`); all functions are associated, so the choice costs nothing at run
/// time.
pub trait Arch {
    /// The architecture-specific instruction rewrite of a GOT load.
    type Relaxation: Copy + std::fmt::Debug + PartialEq;

    /// Its name, for messages.
    const NAME: &'static str;
    /// `e_machine` of its ELF files.
    const MACHINE: u16;
    /// The system's library directories for it, in the order cc's driver passes them to ld.
    const LIBRARY_DIRS: &'static [&'static str];
    /// Where gcc keeps one directory per version with its private libraries (libgcc.a).
    const GCC_LIBRARY_ROOT: &'static str;
    /// The largest image whose internal references the code model guarantees to reach.
    const MAX_IMAGE_SIZE: u64;
    /// Bytes of one GOT slot.
    const GOT_SLOT_SIZE: u64;
    /// Bytes of one PLT stub.
    const PLT_STUB_SIZE: u64;
    /// Alignment of the PLT stubs' section.
    const PLT_ALIGN: u64;

    /// The relocation type `r_type`, or why it cannot be applied.
    fn reloc_kind(r_type: u32) -> Result<&'static RelocKind, UnsupportedReloc>;

    /// Where a symbol must lie for a reference of `kind` to reach it.
    fn reach(kind: &RelocKind) -> Reach;

    /// Which rewrite applies to the instruction whose field is at `offset` in `code`, if any.
    fn relaxation(code: &[u8], offset: usize, relax: Relax) -> Option<Self::Relaxation>;

    /// Where the field lies after `relaxation` (some rewrites move it).
    fn relaxed_field(relaxation: Self::Relaxation, offset: usize) -> usize;

    /// Rewrite the instruction whose field is at `offset` for `relaxation`; returns where the
    /// field now lies (`relaxed_field`). The caller has checked with `relaxation` that the
    /// instruction is the one expected.
    fn relax_instruction(code: &mut [u8], offset: usize, relaxation: Self::Relaxation) -> usize;

    /// Write a PLT stub at address `stub` that jumps through the GOT slot at `slot` into
    /// `out` (`PLT_STUB_SIZE` bytes). The caller guarantees the slot is within reach (both lie
    /// in one image).
    fn write_plt_stub(out: &mut [u8], stub: u64, slot: u64);

    /// Bytes of the IFUNC thunk.
    const IFUNC_THUNK_SIZE: u64;

    /// Write the IFUNC thunk into `out` (`IFUNC_THUNK_SIZE` bytes): code that, called as
    /// `void thunk(resolver, slot)`, calls `resolver()` and stores what it returns in `*slot`.
    /// The target runs it for each IFUNC, as the dynamic loader runs IRELATIVE relocations.
    fn write_ifunc_thunk(out: &mut [u8]);

    /// The dynamic relocations that ask the loader for thread-local values.
    const TLS_DYNAMIC_RELOCS: TlsDynamicRelocs;

    /// Whether a dynamic relocation of type `r_type` stores a symbol's address into a data
    /// slot, and how (what copy relocations redirect in loaded libraries).
    fn address_slot(r_type: u32) -> Option<AddressSlot>;
}

/// The name of an `e_machine` value, for messages about objects of the wrong architecture.
pub fn machine_name(machine: u16) -> &'static str {
    use object::elf;
    match machine {
        elf::EM_386 => "i386",
        elf::EM_X86_64 => "x86-64",
        elf::EM_ARM => "ARM",
        elf::EM_AARCH64 => "AArch64",
        elf::EM_RISCV => "RISC-V",
        elf::EM_PPC64 => "PowerPC64",
        elf::EM_S390 => "s390",
        _ => "unknown",
    }
}

/// Whether `value` fits a field of `width` bytes with `range`. Inlined into the apply loop,
/// which asks for every relocation: shifts on i64, since a narrower field's bounds fit it.
#[inline]
pub fn fits(value: i64, width: usize, range: Range) -> bool {
    if width >= 8 {
        return true;
    }
    let bits = width as u32 * 8;
    let signed_min = -(1i64 << (bits - 1));
    let signed_end = 1i64 << (bits - 1);
    let unsigned_end = 1i64 << bits;
    match range {
        Range::Signed => (signed_min..signed_end).contains(&value),
        Range::Unsigned => (0..unsigned_end).contains(&value),
        Range::Either => (signed_min..unsigned_end).contains(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_field_sizes() {
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
}
