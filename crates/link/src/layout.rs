//! Layout: where each loaded section, the GOT, the PLT stubs, common symbols and copies of
//! library data land in the image. The image is three page-aligned segments, in this order:
//! code (r-x), read-only data (r--, including the GOT) and writable data (rw-, zero-fill
//! sections last). In the target, each segment is contiguous, but they may lie apart (a small
//! image's segments share pages with other units': see `addresses::ImagePlacement`).

use crate::error::{escape_bytes, LinkError};
use crate::ids::{GlobalId, GotSlot, ImageOffset, ObjectId, PltStub};
use crate::resolve::{LinkerSymbol, Resolution, SymbolDb};
use crate::scan::{GotPlan, Scan};
use crate::sections::{InputSection, SegmentKind};
use crate::timing::PhaseTimes;
use crate::tls::TlsBlock;
use foldhash::HashMap;
use rjitlink_arch::{Arch, HostArch};
use std::collections::BTreeMap;

/// A loaded section and where it lies.
#[derive(Clone, Debug)]
pub struct PlacedSection {
    pub section: InputSection,
    pub offset: ImageOffset,
}

/// One segment of the image.
#[derive(Clone, Copy, Debug, Default)]
pub struct SegmentExtent {
    /// Page-aligned.
    pub start: ImageOffset,
    /// Bytes used, before rounding up to pages.
    pub size: u64,
    /// The largest alignment of its contents: where it lies in the target must be a
    /// multiple of it.
    pub align: u64,
}

/// The copy of a library's data object in the image (a copy relocation).
#[derive(Clone, Copy, Debug)]
pub struct CopySlot {
    pub offset: ImageOffset,
    pub size: u64,
}

/// Bytes of the zero length that ends an unwind table.
const EH_FRAME_TERMINATOR: u64 = 4;

/// Where the sections named X lie, for `__start_X` and `__stop_X`.
#[derive(Clone, Copy, Debug)]
pub struct SectionBounds {
    pub start: ImageOffset,
    pub stop: ImageOffset,
}

/// The result of the layout phase: where everything is, as offsets from the image start.
pub struct Layout {
    /// Loaded sections sorted by offset.
    pub placed: Vec<PlacedSection>,
    /// Each loaded section's offset.
    section_offsets: SectionOffsets,
    /// Each segment, indexed by `SegmentKind`.
    pub segments: [SegmentExtent; 3],
    /// What the GOT slots and PLT stubs hold (from scan).
    pub got_plan: GotPlan,
    pub got: ImageOffset,
    /// The thread-local entries, right after the GOT's slots.
    pub tls_got: ImageOffset,
    /// The unit's thread-local block (not in the image: the TLS module holds it).
    pub tls: TlsBlock,
    pub plt: ImageOffset,
    pub dso_handle: ImageOffset,
    /// The code that runs an IFUNC's resolver and stores the result (`Arch::write_ifunc_thunk`),
    /// when the link has IFUNCs.
    pub ifunc_thunk: Option<ImageOffset>,
    pub commons: HashMap<GlobalId, ImageOffset>,
    /// Copies of library data the image reads directly, ordered by id.
    pub copies: BTreeMap<GlobalId, CopySlot>,
    /// For __start_X/__stop_X: the range of the sections named X.
    pub section_bounds: HashMap<Vec<u8>, SectionBounds>,
    /// Where each unwind table starts: one per segment with `.eh_frame` sections, laid out
    /// back to back and followed by a zero terminator, as the unwinder reads them.
    pub eh_frames: Vec<ImageOffset>,
    /// The image must lie where low absolute references reach (from scan).
    pub needs_low_addresses: bool,
}

impl Layout {
    pub fn section_offset(&self, object: ObjectId, section: usize) -> Option<ImageOffset> {
        self.section_offsets.get(object, section)
    }

    pub fn got_slot(&self, slot: GotSlot) -> ImageOffset {
        ImageOffset(self.got.0 + slot.index() as u64 * HostArch::GOT_SLOT_SIZE)
    }

    pub fn plt_stub(&self, stub: PltStub) -> ImageOffset {
        ImageOffset(self.plt.0 + stub.index() as u64 * HostArch::PLT_STUB_SIZE)
    }

    /// Bytes of code and data the inputs contribute: the contents of the loaded sections (not
    /// zero-fill sections, the GOT, stubs or page padding).
    pub fn linked_bytes(&self) -> u64 {
        self.placed
            .iter()
            .filter(|placed| !placed.section.nobits)
            .map(|placed| placed.section.size)
            .sum()
    }
}

/// Per object, per section: the section's offset in the image, if it is loaded. One flat
/// table of 32-bit offsets (every offset is below `HostArch::MAX_IMAGE_SIZE`), not a vector of
/// `Option<ImageOffset>` per object: LLVM's objects have 221,000 sections, and the 3.5 MB
/// that took were a millisecond of fresh page faults on layout's single thread.
struct SectionOffsets {
    /// Where each object's sections begin in `offsets`.
    starts: Vec<usize>,
    /// `NOT_LOADED`, or the offset.
    offsets: Vec<u32>,
}

impl SectionOffsets {
    /// No image offset is this large (see the assertion below).
    const NOT_LOADED: u32 = u32::MAX;

    fn new(db: &SymbolDb<'_>) -> SectionOffsets {
        let mut starts = Vec::with_capacity(db.objects.len());
        let mut total = 0;
        for object in &db.objects {
            starts.push(total);
            total += object.sections.len();
        }
        SectionOffsets {
            starts,
            offsets: vec![SectionOffsets::NOT_LOADED; total],
        }
    }

    fn set(&mut self, section: &InputSection, offset: ImageOffset) {
        let start = self.starts[section.object.index()];
        // Placement keeps offsets below the largest image, which fits (asserted below).
        self.offsets[start + section.index as usize] = offset.0 as u32;
    }

    fn get(&self, object: ObjectId, section: usize) -> Option<ImageOffset> {
        let start = *self.starts.get(object.index())?;
        let end = self
            .starts
            .get(object.index() + 1)
            .copied()
            .unwrap_or(self.offsets.len());
        let index = start.checked_add(section).filter(|&index| index < end)?;
        match self.offsets[index] {
            SectionOffsets::NOT_LOADED => None,
            offset => Some(ImageOffset(u64::from(offset))),
        }
    }
}

// Every image offset fits the table's 32 bits, with `NOT_LOADED` to spare.
const _: () = assert!(HostArch::MAX_IMAGE_SIZE < SectionOffsets::NOT_LOADED as u64);

/// Assigns offsets in the image, segment after segment. Sizes and alignments come from the
/// inputs and may be anything: every placement is checked to end within the largest image the
/// code model allows, so no offset ever wraps and every later `offset + size` fits.
struct SegmentBuilder {
    /// At most `HostArch::MAX_IMAGE_SIZE`.
    offset: u64,
    /// The largest alignment placed in the current segment so far.
    largest_align: u64,
}

/// A placement that would end past the largest image: how large the image would need to be
/// (saturated at `u64::MAX` where even that wraps).
#[derive(Clone, Copy, Debug)]
struct TooLarge {
    needed: u64,
}

impl TooLarge {
    fn image_error(self) -> LinkError {
        LinkError::ImageTooLarge {
            size: self.needed,
            limit: HostArch::MAX_IMAGE_SIZE,
        }
    }
}

impl SegmentBuilder {
    /// Place `size` bytes at the next multiple of `align` (a power of two).
    fn place(&mut self, size: u64, align: u64) -> Result<ImageOffset, TooLarge> {
        let at = self.offset.checked_next_multiple_of(align);
        let end = at.and_then(|at| at.checked_add(size));
        match (at, end) {
            (Some(at), Some(end)) if end <= HostArch::MAX_IMAGE_SIZE => {
                self.offset = end;
                self.largest_align = self.largest_align.max(align);
                Ok(ImageOffset(at))
            }
            _ => Err(TooLarge {
                needed: end.unwrap_or(u64::MAX),
            }),
        }
    }

    /// Round up to `align` (the page size, between segments).
    fn align(&mut self, align: u64) -> Result<(), TooLarge> {
        self.place(0, align).map(|_| ())
    }
}

/// The error for a section that does not fit in the image.
fn section_too_large(db: &SymbolDb<'_>, section: &InputSection) -> LinkError {
    let object = &db.objects[section.object.index()];
    LinkError::Section {
        file: object.name.clone(),
        section: escape_bytes(object.section_name(section.index as usize)),
        problem: format!(
            "of {:#x} bytes (alignment {:#x}) does not fit in the {} MiB the code model allows for an image",
            section.size,
            section.align,
            HostArch::MAX_IMAGE_SIZE >> 20
        ),
    }
}

/// The layout phase. Err if the image is larger than the code model allows (naming the
/// section or common symbol that does not fit, where one does not).
pub fn layout(
    db: &SymbolDb<'_>,
    scan: Scan,
    page_size: u64,
    times: &PhaseTimes,
) -> Result<Layout, LinkError> {
    let _span = times.span("layout");
    let Scan {
        sections,
        got: got_plan,
        copies,
        needs_low_addresses,
    } = scan;
    // The few thread-local sections are copied out; the rest are only ever visited through
    // `order` below, so the many stay where scan put them.
    let thread_local: Vec<InputSection> = sections
        .iter()
        .filter(|section| section.thread_local)
        .cloned()
        .collect();
    let tls = TlsBlock::layout(db, thread_local)?;
    // Within a segment: input order, except that sections sharing a C-identifier name stay
    // together (for __start_/__stop_), unwind tables come together (one table for the
    // unwinder), and zero-fill sections come last.
    let group_name = |section: &InputSection| -> &[u8] {
        match section.identifier_name {
            true => db.objects[section.object.index()].section_name(section.index as usize),
            false => b"",
        }
    };
    // A stable counting sort on (segment, zero-fill, unwind table, C-identifier name), whose
    // 24 values index the buckets in order: a comparison sort of every section was 4% of the
    // LLVM-static link's instructions, on one thread. Names are compared only within the
    // (rare) buckets of sections named like C identifiers. It sorts positions, not the
    // sections: moving 68,000 sections of LLVM from vector to vector (and faulting in the
    // fresh pages of each) took longer than all the rest of layout.
    let bucket = |section: &InputSection| {
        (((section.segment as usize * 2 + usize::from(section.nobits)) * 2
            + usize::from(section.eh_frame))
            * 2)
            + usize::from(section.identifier_name)
    };
    const BUCKETS: usize = SegmentKind::ALL.len() * 8;
    let mut starts = [0usize; BUCKETS + 1];
    for section in sections.iter().filter(|section| !section.thread_local) {
        starts[bucket(section) + 1] += 1;
    }
    for index in 1..=BUCKETS {
        starts[index] += starts[index - 1];
    }
    let mut order = vec![0usize; starts[BUCKETS]];
    let mut next = starts;
    for (position, section) in sections.iter().enumerate() {
        if !section.thread_local {
            let bucket = bucket(section);
            order[next[bucket]] = position;
            next[bucket] += 1;
        }
    }
    for index in (1..BUCKETS).step_by(2) {
        order[starts[index]..starts[index + 1]]
            .sort_by(|&a, &b| group_name(&sections[a]).cmp(group_name(&sections[b])));
    }

    let mut section_offsets = SectionOffsets::new(db);
    let mut placed = Vec::with_capacity(order.len());
    let mut segments = [SegmentExtent::default(); 3];
    let mut builder = SegmentBuilder {
        offset: 0,
        largest_align: 1,
    };
    let (mut got, mut plt, mut dso_handle) = (ImageOffset(0), ImageOffset(0), ImageOffset(0));
    let mut ifunc_thunk = None;
    // Counts of what the link made, bounded by the inputs' relocations: saturating is enough
    // for the placement to refuse them.
    let slots_size = (got_plan.slots.len() as u64).saturating_mul(HostArch::GOT_SLOT_SIZE);
    let got_size = slots_size.saturating_add(got_plan.tls.words().saturating_mul(8));
    let place_got = |builder: &mut SegmentBuilder| {
        builder
            .place(got_size, HostArch::GOT_SLOT_SIZE)
            .map_err(TooLarge::image_error)
    };
    let mut commons = HashMap::default();
    let mut copy_slots = BTreeMap::new();
    let mut eh_frames = Vec::new();
    let mut remaining = order.iter().map(|&position| &sections[position]).peekable();
    for segment in SegmentKind::ALL {
        builder.align(page_size).map_err(TooLarge::image_error)?;
        builder.largest_align = 1;
        let start = builder.offset;
        // Synthetic contents go first in their segment, before the zero-fill sections.
        match segment {
            SegmentKind::Code => {
                let size = (got_plan.stubs.len() as u64).saturating_mul(HostArch::PLT_STUB_SIZE);
                plt = builder
                    .place(size, HostArch::PLT_ALIGN)
                    .map_err(TooLarge::image_error)?;
                if !got_plan.ifuncs.is_empty() {
                    let thunk = builder.place(HostArch::IFUNC_THUNK_SIZE, 16);
                    ifunc_thunk = Some(thunk.map_err(TooLarge::image_error)?);
                }
            }
            // The target writes IFUNCs' slots once the image is live: then the GOT must be
            // writable, as ld's is until RELRO makes it read-only.
            SegmentKind::ReadOnly if got_plan.ifuncs.is_empty() => got = place_got(&mut builder)?,
            SegmentKind::ReadOnly => {}
            SegmentKind::Data => {
                dso_handle = builder.place(8, 8).map_err(TooLarge::image_error)?;
                if !got_plan.ifuncs.is_empty() {
                    got = place_got(&mut builder)?;
                }
            }
        }
        let mut eh_frame_start = None;
        while let Some(section) = remaining.next_if(|s| s.segment == segment) {
            // Unwind records need 4-byte alignment only; more could leave a zero gap between
            // two tables, which the unwinder would read as the end.
            let align = match section.eh_frame {
                true => 4,
                false => section.align,
            };
            let offset = builder
                .place(section.size, align)
                .map_err(|_| section_too_large(db, section))?;
            if section.eh_frame {
                eh_frame_start.get_or_insert(offset);
                let last = !remaining
                    .peek()
                    .is_some_and(|next| next.segment == segment && next.eh_frame);
                if let (true, Some(start)) = (last, eh_frame_start) {
                    eh_frames.push(start);
                    // The terminator: working memory reads zero until written.
                    builder
                        .place(EH_FRAME_TERMINATOR, 4)
                        .map_err(TooLarge::image_error)?;
                }
            }
            section_offsets.set(section, offset);
            placed.push(PlacedSection {
                section: section.clone(),
                offset,
            });
        }
        if segment == SegmentKind::Data {
            for (index, global) in db.globals.iter().enumerate() {
                if let Resolution::Common {
                    object,
                    symbol,
                    size,
                    align,
                } = global.resolution
                {
                    let common_error = |problem: String| {
                        let file = &db.objects[object.index()];
                        LinkError::Symbol {
                            file: Some(file.name.clone()),
                            symbol: file.describe_symbol(symbol as usize),
                            problem,
                        }
                    };
                    // A common symbol's value is its alignment: any number an input says.
                    let align = align.checked_next_power_of_two().ok_or_else(|| {
                        common_error(format!(
                            "is a common symbol with alignment {align:#x}, which no image can satisfy"
                        ))
                    })?;
                    let at = builder.place(size, align).map_err(|_| {
                        common_error(format!(
                            "is a common symbol of {size:#x} bytes (alignment {align:#x}), more than fits in the {} MiB the code model allows for an image",
                            HostArch::MAX_IMAGE_SIZE >> 20
                        ))
                    })?;
                    commons.insert(GlobalId::from_index(index), at);
                }
            }
            // The copies' true alignment is unknown: 16 serves every C type.
            for (&id, &size) in &copies {
                let offset = builder.place(size, 16).map_err(TooLarge::image_error)?;
                copy_slots.insert(id, CopySlot { offset, size });
            }
        }
        segments[segment as usize] = SegmentExtent {
            start: ImageOffset(start),
            size: builder.offset - start,
            align: builder.largest_align,
        };
    }
    builder.align(page_size).map_err(TooLarge::image_error)?;
    let total_size = builder.offset;
    if total_size >= HostArch::MAX_IMAGE_SIZE {
        return Err(LinkError::ImageTooLarge {
            size: total_size,
            limit: HostArch::MAX_IMAGE_SIZE,
        });
    }

    let mut section_bounds: HashMap<Vec<u8>, SectionBounds> = HashMap::default();
    let wants_bounds = db.globals.iter().any(|g| {
        matches!(
            g.resolution,
            Resolution::Linker(LinkerSymbol::SectionStart | LinkerSymbol::SectionStop)
        )
    });
    if wants_bounds {
        for PlacedSection { section, offset } in &placed {
            let name = group_name(section);
            if name.is_empty() {
                continue;
            }
            let end = ImageOffset(offset.0 + section.size);
            section_bounds
                .entry(name.to_vec())
                .and_modify(|bounds| {
                    bounds.start = bounds.start.min(*offset);
                    bounds.stop = bounds.stop.max(end);
                })
                .or_insert(SectionBounds {
                    start: *offset,
                    stop: end,
                });
        }
    }

    Ok(Layout {
        placed,
        section_offsets,
        segments,
        got_plan,
        got,
        tls_got: ImageOffset(got.get() + slots_size),
        tls,
        plt,
        dso_handle,
        ifunc_thunk,
        commons,
        copies: copy_slots,
        section_bounds,
        eh_frames,
        needs_low_addresses,
    })
}
