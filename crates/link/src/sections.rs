//! Which input sections are loaded, and what each is: its segment (by its flags), whether it
//! is zero-fill, whether it is a constructor or destructor table, whether it is named like a C
//! identifier (for `__start_`/`__stop_`).

use crate::elf::{is_c_identifier, LE};
use crate::error::{escape_bytes, LinkError, RelocationProblem};
use crate::ids::ObjectId;
use crate::resolve::SymbolDb;
use object::elf;
use object::read::elf::SectionHeader;
use rayon::prelude::*;
use rjitlink_memory::Protection;

/// The three segments, in image order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentKind {
    Code = 0,
    ReadOnly = 1,
    Data = 2,
}

impl SegmentKind {
    pub const ALL: [SegmentKind; 3] = [SegmentKind::Code, SegmentKind::ReadOnly, SegmentKind::Data];

    pub fn protection(self) -> Protection {
        match self {
            SegmentKind::Code => Protection::ReadExecute,
            SegmentKind::ReadOnly => Protection::Read,
            SegmentKind::Data => Protection::ReadWrite,
        }
    }
}

/// A constructor or destructor table section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    PreInit,
    /// `.init_array[.N]` or `.ctors[.N]`; `reversed`: a .ctors table, called last entry first.
    Init {
        priority: u32,
        reversed: bool,
    },
    /// `.fini_array[.N]` or `.dtors[.N]`.
    Fini {
        priority: u32,
        reversed: bool,
    },
}

/// A loaded input section.
#[derive(Clone, Debug)]
pub struct InputSection {
    pub object: ObjectId,
    pub index: u32,
    pub size: u64,
    /// A power of two.
    pub align: u64,
    pub segment: SegmentKind,
    /// SHT_NOBITS: nothing to copy, the memory is zero.
    pub nobits: bool,
    pub init: Option<InitKind>,
    /// Named like a C identifier: such sections are kept together (for __start_/__stop_).
    pub identifier_name: bool,
    /// An unwind table (`.eh_frame`): laid out with the others of its segment in one table
    /// the unwinder reads to a zero terminator.
    pub eh_frame: bool,
    /// `.tdata`/`.tbss`: the template of the unit's thread-local block, which lives in the
    /// TLS module rather than in the image (see `tls`).
    pub thread_local: bool,
}

/// The priority in `.init_array.N`, or for .ctors.N the init_array priority it stands for.
fn init_kind(name: &[u8], section_type: u32) -> Option<InitKind> {
    const DEFAULT: u32 = 65536;
    let priority = |suffix: &[u8]| -> Option<u32> {
        match suffix {
            b"" => Some(DEFAULT),
            _ => std::str::from_utf8(suffix.strip_prefix(b".")?)
                .ok()?
                .parse()
                .ok(),
        }
    };
    let ctor_priority = |suffix: &[u8]| {
        priority(suffix).map(|p| {
            if p == DEFAULT {
                p
            } else {
                65535u32.saturating_sub(p)
            }
        })
    };
    if section_type == elf::SHT_PREINIT_ARRAY || name == b".preinit_array" {
        return Some(InitKind::PreInit);
    }
    if let Some(suffix) = name.strip_prefix(b".init_array") {
        return Some(InitKind::Init {
            priority: priority(suffix)?,
            reversed: false,
        });
    }
    if let Some(suffix) = name.strip_prefix(b".ctors") {
        return Some(InitKind::Init {
            priority: ctor_priority(suffix)?,
            reversed: true,
        });
    }
    if let Some(suffix) = name.strip_prefix(b".fini_array") {
        return Some(InitKind::Fini {
            priority: priority(suffix)?,
            reversed: false,
        });
    }
    if let Some(suffix) = name.strip_prefix(b".dtors") {
        return Some(InitKind::Fini {
            priority: ctor_priority(suffix)?,
            reversed: true,
        });
    }
    None
}

/// The sections to load, in input order (thread-local ones included).
pub fn input_sections(db: &SymbolDb<'_>) -> Result<Vec<InputSection>, LinkError> {
    let per_object = db
        .objects
        .par_iter()
        .enumerate()
        .map(|(object_index, object)| {
            let discarded = &db.discarded[object_index];
            let mut sections = Vec::new();
            for (index, header) in object.sections.enumerate() {
                let flags = header.sh_flags(LE);
                let section_type = header.sh_type(LE);
                if flags & u64::from(elf::SHF_ALLOC) == 0
                    || discarded[index.0]
                    || matches!(section_type, elf::SHT_NOTE | elf::SHT_GROUP | elf::SHT_NULL)
                {
                    continue;
                }
                let name = object.section_name(index.0);
                let size = header.sh_size(LE);
                let align = header.sh_addralign(LE).max(1);
                if !align.is_power_of_two() {
                    return Err(LinkError::Section {
                        file: object.name.clone(),
                        section: escape_bytes(name),
                        problem: format!("has alignment {align}, which is not a power of two"),
                    });
                }
                let eh_frame = name == b".eh_frame";
                // Unwind tables are never written at run time, even when marked writable
                // (absptr encodings): one read-only table per unit.
                let segment = if eh_frame {
                    SegmentKind::ReadOnly
                } else if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
                    SegmentKind::Code
                } else if flags & u64::from(elf::SHF_WRITE) != 0 {
                    SegmentKind::Data
                } else {
                    SegmentKind::ReadOnly
                };
                sections.push(InputSection {
                    object: ObjectId::from_index(object_index),
                    index: index.0 as u32,
                    size,
                    align,
                    segment,
                    nobits: section_type == elf::SHT_NOBITS,
                    init: init_kind(name, section_type),
                    identifier_name: is_c_identifier(name),
                    eh_frame,
                    thread_local: flags & u64::from(elf::SHF_TLS) != 0,
                });
            }
            Ok(sections)
        })
        .collect::<Result<Vec<_>, LinkError>>()?;
    Ok(per_object.into_iter().flatten().collect())
}

impl InputSection {
    /// An error for the relocation at `offset` in this section.
    pub fn relocation_error(
        &self,
        db: &SymbolDb<'_>,
        offset: u64,
        problem: RelocationProblem,
    ) -> LinkError {
        let object = &db.objects[self.object.index()];
        LinkError::Relocation {
            file: object.name.clone(),
            section: escape_bytes(object.section_name(self.index as usize)),
            offset,
            function: object
                .function_at(self.index as usize, offset)
                .map(escape_bytes),
            problem: Box::new(problem),
        }
    }
}
