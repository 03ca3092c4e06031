//! Layout: which input sections are loaded, and where each lands in the image. The image is one
//! allocation of three page-aligned segments, in this order: code (r-x), read-only data (r--,
//! including the GOT) and writable data (rw-, zero-fill sections last).

use crate::elf::LE;
use crate::ids::{GlobalId, ImageOffset, ObjectId};
use crate::resolve::{Resolution, SymbolDb};
use crate::scan::GotPlan;
use crate::x86_64::{GOT_SLOT_SIZE, PLT_STUB_SIZE};
use anyhow::{bail, Result};
use foldhash::HashMap;
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

/// Whether a section name can form `__start_NAME`/`__stop_NAME` symbols.
pub fn is_c_identifier(name: &[u8]) -> bool {
    !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The sections to load, in input order. Errors for sections rjitlink cannot load yet (TLS).
pub fn input_sections(db: &SymbolDb<'_>) -> Result<Vec<InputSection>> {
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
                // Unwind tables are useful only once registered with the unwinder, which
                // rjitlink does not do yet; loading them would only cost time.
                if name == b".eh_frame" {
                    continue;
                }
                let size = header.sh_size(LE);
                if flags & u64::from(elf::SHF_TLS) != 0 {
                    if size == 0 {
                        continue;
                    }
                    bail!(
                        "{}: section {} holds thread-local storage, which rjitlink does not support yet",
                        object.name,
                        String::from_utf8_lossy(name)
                    );
                }
                let align = header.sh_addralign(LE).max(1);
                if !align.is_power_of_two() {
                    bail!(
                        "{}: section {} has alignment {align}, which is not a power of two",
                        object.name,
                        String::from_utf8_lossy(name)
                    );
                }
                let segment = if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
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
                });
            }
            Ok(sections)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(per_object.into_iter().flatten().collect())
}

/// Where everything is, as offsets from the image start.
pub struct Layout {
    /// Loaded sections sorted by offset, with their offsets.
    pub placed: Vec<(InputSection, ImageOffset)>,
    /// Per object, per section: the section's offset, if loaded.
    section_offsets: Vec<Vec<Option<ImageOffset>>>,
    /// Start and size of each segment, indexed by `SegmentKind`; starts are page-aligned.
    pub segments: [(ImageOffset, u64); 3],
    pub total_size: u64,
    pub got: ImageOffset,
    pub plt: ImageOffset,
    pub dso_handle: ImageOffset,
    pub commons: HashMap<GlobalId, ImageOffset>,
    /// Copies of library data the image reads directly (copy relocations).
    pub copies: HashMap<GlobalId, ImageOffset>,
    /// For __start_X/__stop_X: the range of the sections named X.
    pub section_bounds: HashMap<Vec<u8>, (ImageOffset, ImageOffset)>,
}

impl Layout {
    pub fn section_offset(&self, object: ObjectId, section: usize) -> Option<ImageOffset> {
        self.section_offsets[object.index()]
            .get(section)
            .copied()
            .flatten()
    }

    pub fn got_slot(&self, slot: crate::ids::GotSlot) -> ImageOffset {
        ImageOffset(self.got.0 + slot.index() as u64 * GOT_SLOT_SIZE)
    }

    pub fn plt_stub(&self, stub: crate::ids::PltStub) -> ImageOffset {
        ImageOffset(self.plt.0 + stub.index() as u64 * PLT_STUB_SIZE)
    }
}

/// Assigns offsets in one segment.
struct SegmentBuilder {
    offset: u64,
}

impl SegmentBuilder {
    fn place(&mut self, size: u64, align: u64) -> ImageOffset {
        self.offset = self.offset.next_multiple_of(align);
        let at = ImageOffset(self.offset);
        self.offset += size;
        at
    }
}

pub fn layout(
    db: &SymbolDb<'_>,
    mut sections: Vec<InputSection>,
    plan: &GotPlan,
    copies: &HashMap<GlobalId, u64>,
    page_size: u64,
) -> Result<Layout> {
    // Within a segment: input order, except that sections sharing a C-identifier name stay
    // together (for __start_/__stop_), and zero-fill sections come last.
    let group_name = |section: &InputSection| -> &[u8] {
        match section.identifier_name {
            true => db.objects[section.object.index()].section_name(section.index as usize),
            false => b"",
        }
    };
    // Names are looked up only for the (rare) sections named like C identifiers.
    sections.sort_by(|a, b| {
        (a.segment, a.nobits, a.identifier_name)
            .cmp(&(b.segment, b.nobits, b.identifier_name))
            .then_with(|| match a.identifier_name {
                true => group_name(a).cmp(group_name(b)),
                false => std::cmp::Ordering::Equal,
            })
    });

    let mut section_offsets: Vec<Vec<Option<ImageOffset>>> = db
        .objects
        .iter()
        .map(|object| vec![None; object.sections.len()])
        .collect();
    let mut placed = Vec::with_capacity(sections.len());
    let mut segments = [(ImageOffset(0), 0); 3];
    let mut builder = SegmentBuilder { offset: 0 };
    let (mut got, mut plt, mut dso_handle) = (ImageOffset(0), ImageOffset(0), ImageOffset(0));
    let mut commons = HashMap::default();
    let mut copy_offsets = HashMap::default();
    let mut remaining = sections.into_iter().peekable();
    for segment in SegmentKind::ALL {
        builder.offset = builder.offset.next_multiple_of(page_size);
        let start = builder.offset;
        // Synthetic contents go first in their segment, before the zero-fill sections.
        match segment {
            SegmentKind::Code => plt = builder.place(plan.stubs.len() as u64 * PLT_STUB_SIZE, 16),
            SegmentKind::ReadOnly => {
                got = builder.place(plan.slots.len() as u64 * GOT_SLOT_SIZE, 8)
            }
            SegmentKind::Data => dso_handle = builder.place(8, 8),
        }
        while let Some(section) = remaining.next_if(|s| s.segment == segment) {
            let at = builder.place(section.size, section.align);
            section_offsets[section.object.index()][section.index as usize] = Some(at);
            placed.push((section, at));
        }
        if segment == SegmentKind::Data {
            for (index, global) in db.globals.iter().enumerate() {
                if let Resolution::Common { size, align, .. } = global.resolution {
                    let at = builder.place(size, align.next_power_of_two());
                    commons.insert(GlobalId::from_index(index), at);
                }
            }
            // The copies' true alignment is unknown: 16 serves every C type.
            let mut copied: Vec<(&GlobalId, &u64)> = copies.iter().collect();
            copied.sort_unstable();
            for (&id, &size) in copied {
                copy_offsets.insert(id, builder.place(size, 16));
            }
        }
        segments[segment as usize] = (ImageOffset(start), builder.offset - start);
    }
    let total_size = builder.offset.next_multiple_of(page_size);

    let mut section_bounds: HashMap<Vec<u8>, (ImageOffset, ImageOffset)> = HashMap::default();
    let wants_bounds = db.globals.iter().any(|g| {
        matches!(
            g.resolution,
            Resolution::Linker(
                crate::resolve::LinkerSymbol::SectionStart
                    | crate::resolve::LinkerSymbol::SectionStop
            )
        )
    });
    if wants_bounds {
        for (section, at) in &placed {
            let name = group_name(section);
            if name.is_empty() {
                continue;
            }
            let end = ImageOffset(at.0 + section.size);
            section_bounds
                .entry(name.to_vec())
                .and_modify(|(start, stop)| {
                    *start = (*start).min(*at);
                    *stop = (*stop).max(end);
                })
                .or_insert((*at, end));
        }
    }

    Ok(Layout {
        placed,
        section_offsets,
        segments,
        total_size,
        got,
        plt,
        dso_handle,
        commons,
        copies: copy_offsets,
        section_bounds,
    })
}
