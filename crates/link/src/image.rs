//! The allocate and apply phases: target memory for the laid-out image, then the image's
//! bytes copied and relocated into its working memory. Until finalize the memory is an
//! `InFlight` allocation, which goes back to the slab if the link fails.
//!
//! Working memory always holds the image as laid out (segments one after another, at their
//! image offsets); in the target, the segments lie where the allocation put them.

use crate::addresses::{addresses, Addresses, ImagePlacement};
use crate::apply::{apply, ApplyContext};
use crate::error::LinkError;
use crate::ids::ImageOffset;
use crate::layout::Layout;
use crate::resolve::SymbolDb;
use crate::sections::SegmentKind;
use crate::timing::PhaseTimes;
use crate::tls::TlsValues;
use rjitlink_memory::{InFlight, MemoryManager, SegmentRequest};
use std::sync::Arc;

/// The result of the apply phase: the relocated image in memory that is not live yet, and
/// the address of everything in it.
pub struct Image {
    pub memory: InFlight,
    pub addresses: Addresses,
}

/// The image's bytes as written so far (its working memory).
pub fn image_bytes(memory: &InFlight) -> &[u8] {
    let working = memory.working();
    // SAFETY: the manager guarantees the working memory is valid and ours alone until the
    // allocation is finalized, which takes it by value.
    unsafe { std::slice::from_raw_parts(working.ptr, working.len) }
}

/// The allocate phase: one allocation for the whole image, its segments in layout order;
/// small segments share pages with other units' unless `own_pages`.
pub fn allocate(
    layout: &Layout,
    memory: &Arc<MemoryManager>,
    own_pages: bool,
    times: &PhaseTimes,
) -> Result<InFlight, LinkError> {
    let _span = times.span("allocate");
    let zero_fill = zero_fill_start(layout);
    let requests = SegmentKind::ALL.map(|kind| {
        let segment = &layout.segments[kind as usize];
        SegmentRequest {
            size: segment.size,
            align: segment.align,
            protection: kind.protection(),
            written: match kind {
                SegmentKind::Data => zero_fill.map_or(segment.size, |start| {
                    start.get().saturating_sub(segment.start.get())
                }),
                _ => segment.size,
            },
        }
    });
    let in_flight = memory.allocate_with(&requests, layout.needs_low_addresses, !own_pages)?;
    // Working memory is laid out as the image is.
    debug_assert!(SegmentKind::ALL.iter().all(|&kind| {
        in_flight.segments()[kind as usize].working_offset
            == layout.segments[kind as usize].start.get()
    }));
    Ok(in_flight)
}

/// Where the data segment's zero fill starts: its first zero-fill section, or its first common
/// symbol, which layout places after every section with contents; None if it has none. (Code
/// and read-only data are written whole.)
fn zero_fill_start(layout: &Layout) -> Option<ImageOffset> {
    let data = layout.segments[SegmentKind::Data as usize].start;
    // Sections are sorted by offset, the data segment's last, its zero-fill ones at its end.
    let section = layout
        .placed
        .iter()
        .rev()
        .take_while(|placed| placed.offset >= data && placed.section.nobits)
        .last()
        .map(|placed| placed.offset);
    let common = layout.commons.values().min().copied();
    section.into_iter().chain(common).min()
}

/// The address of everything in the image `memory` holds.
pub fn image_addresses(
    db: &SymbolDb<'_>,
    layout: &Layout,
    memory: &InFlight,
    times: &PhaseTimes,
) -> Addresses {
    let _span = times.span("addresses");
    let segments = memory.segments();
    let placement = ImagePlacement::new(
        layout,
        SegmentKind::ALL.map(|kind| segments[kind as usize].range.start),
    );
    addresses(db, layout, placement)
}

/// The apply phase: every section copied and relocated, the GOT filled (with the loader's
/// thread-local values, when the unit has TLS).
pub fn apply_image(
    db: &SymbolDb<'_>,
    layout: &Layout,
    memory: InFlight,
    addresses: Addresses,
    tls: Option<&TlsValues>,
    times: &PhaseTimes,
) -> Result<Image, LinkError> {
    let _span = times.span("apply");
    let working = memory.working();
    // SAFETY: as in `image_bytes`; nothing else refers to the working memory meanwhile.
    let image = unsafe { std::slice::from_raw_parts_mut(working.ptr, working.len) };
    let context = ApplyContext {
        db,
        layout,
        addresses: &addresses,
        tls,
    };
    // The memory may ask to be told before each part is written (shared memory faults its
    // pages in then).
    let before_write = |bytes: std::ops::Range<usize>| memory.before_write(bytes);
    let before_write: Option<&(dyn Fn(std::ops::Range<usize>) + Sync)> =
        memory.wants_before_write().then_some(&before_write);
    apply(&context, image, before_write)?;
    Ok(Image { memory, addresses })
}
