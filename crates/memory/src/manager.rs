//! The memory manager: target memory for whole links, sub-allocated on the linker side from
//! one slab reserved in the target once.
//!
//! Every unit linked in a session lies in the slab, so PC32/PLT32 between any two of them
//! always reach (the small code model). After the first reservation no allocation waits on the
//! target: a link's allocation is a few microseconds of bookkeeping under a short lock, so it
//! never serializes the parallel phases around it.
//!
//! Two kinds of allocation:
//! - **Whole pages**, for images with a large segment: the segments lie one after another,
//!   each page-aligned, and the linker writes them in place (or into the mapper's buffer).
//! - **Packed**, for small images (every segment at most `PIECE_LIMIT` bytes): each segment
//!   is a *piece* of a *chunk*, a run of slab pages holding pieces of one protection only, so
//!   that many units share a code page, a read-only page and a data page. Whole-page
//!   allocations cost the target three memory mappings per unit (the kernel's per-process limit,
//!   `vm.max_map_count`, is 65530 by default), and a page per segment; packed ones cost a few
//!   mappings per chunk, and bytes. The linker writes a packed image into a buffer of its own,
//!   and the mapper puts each piece in place at finalize (`MemoryMapper::initialize_pieces`):
//!   in process through a writable alias of the code pages, never by making live code
//!   writable (see `InProcessMapper`). A page goes live with its first piece and is emptied
//!   with its last.
//!
//! An allocation owns its memory: an `InFlight` dropped before it is finalized, or a
//! `Finalized` dropped, gives its memory back, so no error path between allocation and the
//! end of a unit's life leaks target memory.

use crate::free_list::FreeList;
use crate::mapper::{
    MemoryMapper, PieceWrite, Placement, Protection, SegmentProtection, TargetCall,
    LOW_PLACEMENT_LIMIT,
};
use crate::{MapError, TargetAddr, TargetRange, WorkingMemory};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The default slab: 1 GiB of address space (it costs memory only where used).
pub const DEFAULT_SLAB_SIZE: u64 = 1 << 30;

/// The largest segment packed with other units' segments; an image with a larger one gets
/// whole pages.
pub const PIECE_LIMIT: u64 = 64 << 10;

/// Bytes of slab a chunk of pieces spans (a multiple of the page size).
const CHUNK_SIZE: u64 = 256 << 10;

/// Pieces start and end on multiples of this: no gap smaller than it is left between them.
const PIECE_GRANULE: u64 = 16;

/// How the slab is reserved.
#[derive(Clone, Copy, Debug)]
pub struct SlabConfig {
    /// Bytes of address space to reserve.
    pub size: u64,
    /// Reserve exactly here (never replacing a mapping).
    pub address: Option<TargetAddr>,
}

impl Default for SlabConfig {
    fn default() -> Self {
        SlabConfig {
            size: DEFAULT_SLAB_SIZE,
            address: None,
        }
    }
}

/// One segment of an allocation.
#[derive(Clone, Copy, Debug)]
pub struct SegmentRequest {
    /// Its size in bytes.
    pub size: u64,
    /// The alignment its contents need (a power of two; 0 counts as 1). A packed segment is
    /// placed at a multiple of it, a whole-page one at a page boundary.
    pub align: u64,
    /// Its protection once finalized.
    pub protection: Protection,
    /// How many of its bytes, from its start, the link writes: past them lies zero fill,
    /// which the link leaves as it finds it (zero). `size` where there is none; more than
    /// `size` counts as `size`. Only a hint, for `MemoryMapper::will_write` and
    /// `before_write`.
    pub written: u64,
}

/// A call to make at finalize, and its undo at deallocation; either may be absent.
#[derive(Clone, Copy, Debug)]
pub struct AllocAction {
    /// Made as the allocation is finalized.
    pub finalize: Option<TargetCall>,
    /// Made as the allocation is deallocated.
    pub deallocate: Option<TargetCall>,
}

/// Where one requested segment lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedSegment {
    /// Its target range. Whole pages: page-aligned, the size rounded up to pages. Packed:
    /// aligned as requested, the size rounded up to the packing granule. An empty segment of
    /// a packed allocation has an empty range at address 0.
    pub range: TargetRange,
    /// Its protection.
    pub protection: Protection,
    /// Where its bytes lie in working memory. Either way the segments lie there one after
    /// another, each starting at a page boundary.
    pub working_offset: u64,
}

/// Memory being linked into: the linker writes `working()`; the code will run in
/// `segments()`. Dropped without `finalize`, it goes back to the slab.
#[derive(Debug)]
pub struct InFlight {
    manager: Arc<MemoryManager>,
    memory: Memory,
    segments: Vec<PlacedSegment>,
    /// Each segment's requested size.
    sizes: Vec<u64>,
    working: WorkingMemory,
    /// The linker-side buffer behind `working` for a packed allocation (a whole-page one's is
    /// the mapper's).
    local: Option<Box<[u8]>>,
    /// Cleared once `finalize` has handed the memory on.
    owned: bool,
    /// The target ranges the link writes (each segment's pages up to its zero fill), if the
    /// mapper asked to be told before each part is written (`MemoryMapper::before_write`).
    before_write: Option<Vec<TargetRange>>,
}

/// Memory whose code may run. Dropped (or `free`d), its deallocation calls run and its memory
/// goes back to the slab.
#[derive(Debug)]
pub struct Finalized {
    manager: Arc<MemoryManager>,
    memory: Memory,
    /// The finalize actions' undos, in the order they must run (reverse of finalize).
    deallocate_actions: Vec<TargetCall>,
    /// Cleared once `free` has run.
    owned: bool,
}

/// The target memory an allocation holds.
#[derive(Debug)]
enum Memory {
    /// Whole pages: one page-aligned range.
    Pages(TargetRange),
    /// Pieces of chunks, one per non-empty segment.
    Pieces(Box<[Piece]>),
}

/// A packed segment's place: part of a chunk.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// The chunk's offset in the slab.
    chunk: u64,
    /// The piece's target range (its length a multiple of `PIECE_GRANULE`).
    range: TargetRange,
    protection: Protection,
}

/// Counters for `--show-stats` and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlabStats {
    /// Address space reserved, in bytes.
    pub reserved_bytes: u64,
    /// Allocations served so far.
    pub allocations_served: u64,
    /// Bytes of live allocations: whole pages, and packed pieces (rounded to the granule).
    pub bytes_in_use: u64,
    /// Allocations served packed.
    pub packed_allocations: u64,
    /// Chunks of pieces (each `CHUNK_SIZE` bytes of slab) in use.
    pub chunks: u64,
}

/// A run of slab pages holding pieces of one protection.
#[derive(Debug)]
struct Chunk {
    /// Offsets within the chunk.
    free: FreeList,
    free_bytes: u64,
    /// Per page: the pieces on it, allocated or live.
    pieces: Vec<u32>,
    /// Per page: made live in the target (protection set), until its last piece goes.
    live: Vec<bool>,
}

#[derive(Debug)]
struct Slab {
    range: TargetRange,
    /// Page-aligned ranges: whole-page allocations and chunks.
    free: FreeList,
    /// Chunks by protection (`protection_index`), each by its offset in the slab.
    chunks: [BTreeMap<u64, Chunk>; 3],
}

fn protection_index(protection: Protection) -> usize {
    match protection {
        Protection::ReadExecute => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

/// The indices of the pages of a chunk that `[at, at + len)` touches.
fn page_indices(at: u64, len: u64, page: u64) -> std::ops::RangeInclusive<usize> {
    (at / page) as usize..=((at + len - 1) / page) as usize
}

impl Slab {
    /// Place each non-empty request in a chunk of its protection, or nothing if the slab has
    /// no room for another chunk that one of them needs.
    fn allocate_pieces(&mut self, requests: &[SegmentRequest], page: u64) -> Option<Vec<Piece>> {
        let mut pieces = Vec::with_capacity(requests.len());
        for request in requests.iter().filter(|r| r.size > 0) {
            match self.allocate_piece(request, page) {
                Some(piece) => pieces.push(piece),
                None => {
                    self.release_pieces(&pieces, page);
                    return None;
                }
            }
        }
        Some(pieces)
    }

    fn allocate_piece(&mut self, request: &SegmentRequest, page: u64) -> Option<Piece> {
        let len = request.size.next_multiple_of(PIECE_GRANULE);
        let align = request.align.max(PIECE_GRANULE);
        let Slab {
            range,
            free,
            chunks,
        } = self;
        let chunks = &mut chunks[protection_index(request.protection)];
        // First fit, lowest chunk first, so that the live pages stay together.
        let found = chunks.iter_mut().find_map(|(&offset, chunk)| {
            let at = match chunk.free_bytes >= len {
                true => chunk.free.allocate(len, align)?,
                false => return None,
            };
            Some((offset, at))
        });
        let (offset, at) = match found {
            Some(found) => found,
            None => {
                let offset = free.allocate(CHUNK_SIZE, page)?;
                let pages = (CHUNK_SIZE / page) as usize;
                let mut chunk = Chunk {
                    free: FreeList::new(CHUNK_SIZE),
                    free_bytes: CHUNK_SIZE,
                    pieces: vec![0; pages],
                    live: vec![false; pages],
                };
                let at = chunk
                    .free
                    .allocate(len, align)
                    .expect("a piece fits a chunk");
                chunks.insert(offset, chunk);
                (offset, at)
            }
        };
        let chunk = chunks.get_mut(&offset).expect("found or inserted above");
        chunk.free_bytes -= len;
        for index in page_indices(at, len, page) {
            chunk.pieces[index] += 1;
        }
        Some(Piece {
            chunk: offset,
            range: TargetRange {
                start: range.start + offset + at,
                len: len as usize,
            },
            protection: request.protection,
        })
    }

    fn chunk(&mut self, piece: &Piece) -> &mut Chunk {
        self.chunks[protection_index(piece.protection)]
            .get_mut(&piece.chunk)
            .expect("a piece's chunk lives as long as the piece")
    }

    /// Where `piece` lies in its chunk.
    fn offset_in_chunk(&self, piece: &Piece) -> u64 {
        piece.range.start - self.range.start - piece.chunk
    }

    /// Mark the pages of `pieces` live; returns those that were not, to be made live now, one
    /// page each with its protection (a page goes live and is emptied on its own, so the
    /// target need not split what it was told was one segment).
    fn go_live(&mut self, pieces: &[Piece], page: u64) -> Vec<SegmentProtection> {
        let mut pages = Vec::new();
        for piece in pieces {
            let at = self.offset_in_chunk(piece);
            let chunk_start = self.range.start + piece.chunk;
            let chunk = self.chunk(piece);
            for index in page_indices(at, piece.range.len as u64, page) {
                if !std::mem::replace(&mut chunk.live[index], true) {
                    pages.push(SegmentProtection {
                        range: TargetRange {
                            start: chunk_start + index as u64 * page,
                            len: page as usize,
                        },
                        protection: piece.protection,
                    });
                }
            }
        }
        pages
    }

    /// Undo `go_live` for the pages it turned live (`newly`), when the target could not set
    /// them up: counted live, they would never be set up for a later piece on them.
    fn not_live_after_all(&mut self, pieces: &[Piece], page: u64, newly: &[SegmentProtection]) {
        for piece in pieces {
            let at = self.offset_in_chunk(piece);
            let chunk_start = self.range.start + piece.chunk;
            let chunk = self.chunk(piece);
            for index in page_indices(at, piece.range.len as u64, page) {
                let start = chunk_start + index as u64 * page;
                if newly.iter().any(|p| p.range.start == start) {
                    chunk.live[index] = false;
                }
            }
        }
    }

    /// The live pages that `pieces` are the last pieces on: to be emptied as they go.
    fn pages_emptied_by(&mut self, pieces: &[Piece], page: u64) -> Vec<TargetRange> {
        let mut pages = Vec::new();
        for piece in pieces {
            let at = self.offset_in_chunk(piece);
            let chunk_start = self.range.start + piece.chunk;
            let chunk = self.chunk(piece);
            // The pieces of one allocation differ in protection, so no page holds two of them.
            for index in page_indices(at, piece.range.len as u64, page) {
                if chunk.pieces[index] == 1 && chunk.live[index] {
                    pages.push(TargetRange {
                        start: chunk_start + index as u64 * page,
                        len: page as usize,
                    });
                }
            }
        }
        pages
    }

    /// Give `pieces` back to their chunks, and chunks left empty back to the slab. Their
    /// pages that were live must have been emptied already.
    fn release_pieces(&mut self, pieces: &[Piece], page: u64) {
        for piece in pieces {
            let at = self.offset_in_chunk(piece);
            let len = piece.range.len as u64;
            let chunk = self.chunk(piece);
            chunk.free.free(at, len);
            chunk.free_bytes += len;
            for index in page_indices(at, len, page) {
                chunk.pieces[index] -= 1;
                if chunk.pieces[index] == 0 {
                    chunk.live[index] = false;
                }
            }
            if chunk.free_bytes == CHUNK_SIZE {
                self.chunks[protection_index(piece.protection)].remove(&piece.chunk);
                self.free.free(piece.chunk, CHUNK_SIZE);
            }
        }
    }

    fn chunk_count(&self) -> u64 {
        self.chunks.iter().map(|chunks| chunks.len() as u64).sum()
    }
}

/// Allocates target memory for links through a `MemoryMapper`, from one slab.
pub struct MemoryManager {
    mapper: Arc<dyn MemoryMapper>,
    config: SlabConfig,
    slab: Mutex<Option<Slab>>,
    stats: Mutex<SlabStats>,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("config", &self.config)
            .field("slab", &self.slab_range())
            .finish_non_exhaustive()
    }
}

impl MemoryManager {
    /// A manager whose slab is reserved through `mapper` at the first allocation. Shared:
    /// every allocation keeps it alive, so the slab is released only after the last one.
    pub fn new(mapper: Arc<dyn MemoryMapper>, config: SlabConfig) -> Arc<MemoryManager> {
        Arc::new(MemoryManager {
            mapper,
            config,
            slab: Mutex::new(None),
            stats: Mutex::new(SlabStats::default()),
        })
    }

    /// The target's page size.
    pub fn page_size(&self) -> u64 {
        self.mapper.page_size() as u64
    }

    /// How the slab is used so far.
    pub fn stats(&self) -> SlabStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slab's range, once reserved.
    pub fn slab_range(&self) -> Option<TargetRange> {
        let slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
        slab.as_ref().map(|slab| slab.range)
    }

    fn lock_slab(&self) -> std::sync::MutexGuard<'_, Option<Slab>> {
        self.slab.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_stats(&self, update: impl FnOnce(&mut SlabStats)) {
        update(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Allocate memory for `segments`: packed if every one is small, else consecutive and
    /// page-aligned. With `below_2gib`, the memory must lie below 2 GiB (code with 32-bit
    /// absolute relocations); the first allocation then places the slab there.
    pub fn allocate(
        self: &Arc<Self>,
        segments: &[SegmentRequest],
        below_2gib: bool,
    ) -> Result<InFlight, MapError> {
        self.allocate_with(segments, below_2gib, true)
    }

    /// Like `allocate`, packing small segments only if `pack`: otherwise the segments get
    /// pages of their own, which no other allocation shares. (A debugger writes breakpoints
    /// into code, which the kernel lets it do only in private mappings; packed code pages
    /// are shared mappings of a memory file, and are written again by later links. perf
    /// reads a perf map only for anonymous memory, which such a file's mapping is not.)
    pub fn allocate_with(
        self: &Arc<Self>,
        segments: &[SegmentRequest],
        below_2gib: bool,
        pack: bool,
    ) -> Result<InFlight, MapError> {
        let page = self.page_size();
        // Working memory holds the segments one after another, page-aligned, either way.
        let mut working_offsets = Vec::with_capacity(segments.len());
        let mut size = 0u64;
        for segment in segments {
            working_offsets.push(size);
            size += segment.size.next_multiple_of(page);
        }
        let size = size.max(page);
        let sizes = segments.iter().map(|segment| segment.size).collect();

        let mut guard = self.lock_slab();
        let slab = match &mut *guard {
            Some(slab) => slab,
            empty => empty.insert(self.reserve_slab(below_2gib)?),
        };
        if below_2gib && slab.range.end().get() > LOW_PLACEMENT_LIMIT {
            return Err(MapError::SlabNotLow {
                slab: slab.range.start,
            });
        }
        let packable = pack
            && CHUNK_SIZE.is_multiple_of(page)
            && segments.iter().any(|segment| segment.size > 0)
            && segments.iter().all(|segment| {
                segment.size == 0 || (segment.size <= PIECE_LIMIT && segment.align <= page)
            });
        // A slab too full for another chunk may still hold the image in whole pages.
        if let Some(pieces) = packable
            .then(|| slab.allocate_pieces(segments, page))
            .flatten()
        {
            let chunks = slab.chunk_count();
            drop(guard);
            let mut placed = pieces.iter();
            let segments = segments
                .iter()
                .zip(&working_offsets)
                .map(|(segment, &working_offset)| PlacedSegment {
                    range: match segment.size {
                        0 => TargetRange {
                            start: TargetAddr::NULL,
                            len: 0,
                        },
                        _ => placed.next().expect("a piece per non-empty segment").range,
                    },
                    protection: segment.protection,
                    working_offset,
                })
                .collect();
            let held: u64 = pieces.iter().map(|piece| piece.range.len as u64).sum();
            self.update_stats(|stats| {
                stats.allocations_served += 1;
                stats.packed_allocations += 1;
                stats.bytes_in_use += held;
                stats.chunks = chunks;
            });
            let mut local = vec![0u8; size as usize].into_boxed_slice();
            let working = WorkingMemory {
                ptr: local.as_mut_ptr(),
                len: local.len(),
            };
            return Ok(InFlight {
                manager: self.clone(),
                memory: Memory::Pieces(pieces.into_boxed_slice()),
                segments,
                sizes,
                working,
                local: Some(local),
                owned: true,
                before_write: None,
            });
        }
        let Some(offset) = slab.free.allocate(size, page) else {
            return Err(MapError::SlabExhausted {
                needed: size,
                free: slab.free.free_bytes(),
                capacity: slab.free.capacity(),
                largest_free: slab.free.largest_free(),
            });
        };
        let range = TargetRange {
            start: slab.range.start + offset,
            len: size as usize,
        };
        drop(guard);
        let working = match self.mapper.prepare(range) {
            Ok(working) => working,
            Err(e) => {
                self.give_back(range);
                return Err(e);
            }
        };
        // Each segment's pages up to its zero fill (the page it starts on included: it is
        // written up to there) are written by the link; the zero fill's own pages may never be.
        let written: Vec<TargetRange> = segments
            .iter()
            .zip(&working_offsets)
            .filter(|(segment, _)| segment.written.min(segment.size) > 0)
            .map(|(segment, &working_offset)| TargetRange {
                start: range.start + working_offset,
                len: segment.written.min(segment.size).next_multiple_of(page) as usize,
            })
            .collect();
        let before_write = self.mapper.will_write(&written).then_some(written);
        self.update_stats(|stats| {
            stats.allocations_served += 1;
            stats.bytes_in_use += size;
        });
        let segments = segments
            .iter()
            .zip(&working_offsets)
            .map(|(segment, &working_offset)| PlacedSegment {
                range: TargetRange {
                    start: range.start + working_offset,
                    len: segment.size.next_multiple_of(page) as usize,
                },
                protection: segment.protection,
                working_offset,
            })
            .collect();
        Ok(InFlight {
            manager: self.clone(),
            memory: Memory::Pages(range),
            segments,
            sizes,
            working,
            local: None,
            owned: true,
            before_write,
        })
    }

    fn reserve_slab(&self, below_2gib: bool) -> Result<Slab, MapError> {
        let size = self.config.size.next_multiple_of(self.page_size());
        let placement = match self.config.address {
            Some(address) => {
                if below_2gib && address.get().saturating_add(size) > LOW_PLACEMENT_LIMIT {
                    return Err(MapError::SlabAddressNotLow { address, size });
                }
                Placement::At(address)
            }
            None if below_2gib => Placement::Below2GiB,
            None => Placement::Anywhere,
        };
        let range = self.mapper.reserve(size as usize, placement)?;
        self.update_stats(|stats| stats.reserved_bytes = range.len as u64);
        Ok(Slab {
            range,
            free: FreeList::new(range.len as u64),
            chunks: Default::default(),
        })
    }

    /// Return a range of whole pages to the slab (its pages already given back to the mapper).
    fn give_back(&self, range: TargetRange) {
        if let Some(slab) = &mut *self.lock_slab() {
            slab.free
                .free(range.start - slab.range.start, range.len as u64);
        }
    }

    /// Make `actions` calls, empty the memory and return it to the slab. Memory whose pages
    /// could not be emptied stays out of the slab: handing it out again would break the
    /// guarantee that prepared memory reads zero.
    fn deallocate(&self, memory: &Memory, actions: &[TargetCall]) -> Result<(), MapError> {
        let held = match memory {
            Memory::Pages(range) => {
                self.mapper.deinitialize(&[*range], actions)?;
                self.give_back(*range);
                range.len as u64
            }
            Memory::Pieces(pieces) => {
                let page = self.page_size();
                // Under the lock throughout: no other allocation may take a piece's place (or
                // its page's) before the page is emptied.
                let mut guard = self.lock_slab();
                let slab = guard.as_mut().expect("pieces come from a reserved slab");
                let emptied = slab.pages_emptied_by(pieces, page);
                if !emptied.is_empty() || !actions.is_empty() {
                    self.mapper.deinitialize(&emptied, actions)?;
                }
                slab.release_pieces(pieces, page);
                let chunks = slab.chunk_count();
                drop(guard);
                self.update_stats(|stats| stats.chunks = chunks);
                pieces.iter().map(|piece| piece.range.len as u64).sum()
            }
        };
        self.update_stats(|stats| stats.bytes_in_use -= held);
        Ok(())
    }
}

impl InFlight {
    /// Each requested segment's place in the target and in working memory, in order.
    pub fn segments(&self) -> &[PlacedSegment] {
        &self.segments
    }

    /// Whether the segments are packed with other allocations' (see the module's comment).
    pub fn is_packed(&self) -> bool {
        matches!(self.memory, Memory::Pieces(_))
    }

    /// The linker-side memory to write the image into: zeroed, each segment at its
    /// `working_offset`.
    pub fn working(&self) -> &WorkingMemory {
        &self.working
    }

    /// Whether the link should call `before_write` as it writes working memory: the mapper
    /// asked for it (never for packed memory, which is written in a buffer of the linker's).
    pub fn wants_before_write(&self) -> bool {
        self.before_write.is_some()
    }

    /// The link is about to write `bytes` of working memory (offsets into it): the pages it
    /// writes there go to `MemoryMapper::before_write`. Each page is passed on by the call
    /// whose range holds its end, so that consecutive ranges from 0 name each page once; a
    /// page past the last range holds only bytes the link does not write. Does nothing unless
    /// `wants_before_write`.
    pub fn before_write(&self, bytes: std::ops::Range<usize>) {
        let (Some(written), Memory::Pages(range)) = (&self.before_write, &self.memory) else {
            return;
        };
        let page = self.manager.page_size() as usize;
        let start = range.start + bytes.start.next_multiple_of(page) as u64;
        let end = range.start + bytes.end.min(range.len).next_multiple_of(page) as u64;
        for written in written {
            let from = start.max(written.start);
            let to = end.min(written.end());
            if from < to {
                self.manager.mapper.before_write(TargetRange {
                    start: from,
                    len: (to - from) as usize,
                });
            }
        }
    }

    /// Put the bytes in place, apply the protections and make the finalize calls: the code
    /// may run after. On Err the memory goes back to the slab.
    pub fn finalize(mut self, actions: &[AllocAction]) -> Result<Finalized, MapError> {
        let calls: Vec<TargetCall> = actions.iter().filter_map(|a| a.finalize).collect();
        match &self.memory {
            Memory::Pages(_) => {
                let segments: Vec<SegmentProtection> = self
                    .segments
                    .iter()
                    .map(|segment| SegmentProtection {
                        range: segment.range,
                        protection: segment.protection,
                    })
                    .collect();
                self.manager.mapper.initialize(&segments, &calls)?;
            }
            Memory::Pieces(pieces) => {
                let local = self.local.as_deref().expect("packed memory has a buffer");
                let writes: Vec<PieceWrite<'_>> = self
                    .segments
                    .iter()
                    .zip(&self.sizes)
                    .filter(|(_, &size)| size > 0)
                    .map(|(segment, &size)| {
                        let start = segment.working_offset as usize;
                        PieceWrite {
                            range: TargetRange {
                                start: segment.range.start,
                                len: size as usize,
                            },
                            protection: segment.protection,
                            bytes: &local[start..start + size as usize],
                        }
                    })
                    .collect();
                // Under the lock: pages go live once, and a concurrent free must not empty a
                // page this allocation is putting a piece on. On Err the pages this call
                // counted live are not live after all: a later piece on one sets it up again.
                let mut guard = self.manager.lock_slab();
                let slab = guard.as_mut().expect("pieces come from a reserved slab");
                let pages = slab.go_live(pieces, self.manager.page_size());
                let result = self
                    .manager
                    .mapper
                    .initialize_pieces(&pages, &writes, &calls);
                if result.is_err() {
                    slab.not_live_after_all(pieces, self.manager.page_size(), &pages);
                }
                drop(guard);
                result?;
            }
        }
        self.owned = false;
        let memory = std::mem::replace(&mut self.memory, Memory::Pieces(Box::new([])));
        Ok(Finalized {
            manager: self.manager.clone(),
            memory,
            deallocate_actions: actions.iter().rev().filter_map(|a| a.deallocate).collect(),
            owned: true,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.owned {
            // Not finalized, or finalizing failed: the finalize calls did not all run, so none
            // is undone. A failure leaves the memory out of the slab.
            let _ = self.manager.deallocate(&self.memory, &[]);
        }
    }
}

impl Finalized {
    /// The target ranges the allocation holds: its whole pages, or its pieces.
    pub fn ranges(&self) -> Vec<TargetRange> {
        match &self.memory {
            Memory::Pages(range) => vec![*range],
            Memory::Pieces(pieces) => pieces.iter().map(|piece| piece.range).collect(),
        }
    }

    /// Keep the memory live and in use for the rest of the process: for memory the target
    /// still refers to in ways that cannot be undone (a symbol the loader serves from it).
    /// No deallocation calls run, the memory never returns to the slab, and the slab itself
    /// is never released (the manager is kept alive).
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// Make the deallocation calls, give the pages' memory back and return the memory to the
    /// slab for reuse. Like dropping, but reports a failure.
    pub fn free(mut self) -> Result<(), MapError> {
        self.owned = false;
        self.manager
            .deallocate(&self.memory, &self.deallocate_actions)
    }
}

impl Drop for Finalized {
    fn drop(&mut self) {
        if self.owned {
            // Nothing useful can be done about a failure while dropping.
            let _ = self
                .manager
                .deallocate(&self.memory, &self.deallocate_actions);
        }
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        let slab = self.slab.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(slab) = slab.take() {
            // Nothing useful can be done about a failure while dropping.
            let _ = self.mapper.release(slab.range);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InProcessMapper;

    fn manager(size: u64) -> Arc<MemoryManager> {
        MemoryManager::new(
            Arc::new(InProcessMapper::new()),
            SlabConfig {
                size,
                address: None,
            },
        )
    }

    /// Read-write segments of `sizes`.
    fn request(sizes: &[u64]) -> Vec<SegmentRequest> {
        sizes
            .iter()
            .map(|&size| SegmentRequest {
                size,
                align: 8,
                protection: Protection::ReadWrite,
                written: size,
            })
            .collect()
    }

    /// Larger than a piece: whole pages.
    const LARGE: u64 = PIECE_LIMIT + 1;

    fn start(in_flight: &InFlight) -> TargetAddr {
        in_flight.segments()[0].range.start
    }

    /// The in-process mapper, keeping the ranges `will_write` was told of, and failing one
    /// `initialize_pieces` when `fail` is set.
    #[derive(Default)]
    struct Observed {
        inner: InProcessMapper,
        hints: Mutex<Vec<TargetRange>>,
        before: Mutex<Vec<TargetRange>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl MemoryMapper for Observed {
        fn page_size(&self) -> usize {
            self.inner.page_size()
        }
        fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
            self.inner.reserve(size, placement)
        }
        fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
            self.inner.prepare(range)
        }
        fn initialize(
            &self,
            segments: &[SegmentProtection],
            actions: &[TargetCall],
        ) -> Result<(), MapError> {
            self.inner.initialize(segments, actions)
        }
        fn initialize_pieces(
            &self,
            pages: &[SegmentProtection],
            pieces: &[PieceWrite<'_>],
            actions: &[TargetCall],
        ) -> Result<(), MapError> {
            if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(MapError::Executor("refused by the test".into()));
            }
            self.inner.initialize_pieces(pages, pieces, actions)
        }
        fn deinitialize(
            &self,
            ranges: &[TargetRange],
            actions: &[TargetCall],
        ) -> Result<(), MapError> {
            self.inner.deinitialize(ranges, actions)
        }
        fn release(&self, range: TargetRange) -> Result<(), MapError> {
            self.inner.release(range)
        }
        fn will_write(&self, ranges: &[TargetRange]) -> bool {
            self.hints.lock().unwrap().extend_from_slice(ranges);
            true
        }
        fn before_write(&self, range: TargetRange) {
            self.before.lock().unwrap().push(range);
        }
    }

    /// A segment of `size` bytes, `written` of them by the link.
    fn segment(size: u64, protection: Protection, written: u64) -> SegmentRequest {
        SegmentRequest {
            size,
            align: 16,
            protection,
            written,
        }
    }

    #[test]
    fn the_pages_written_up_to_each_zero_fill_are_hinted() {
        let mapper = Arc::new(Observed::default());
        let manager = MemoryManager::new(mapper.clone(), SlabConfig::default());
        let page = manager.page_size();
        let requests = [
            segment(LARGE, Protection::ReadExecute, LARGE),
            // No bytes written: not hinted.
            segment(LARGE, Protection::Read, 0),
            // Written up to partway into its second page, then zero fill.
            segment(4 * page, Protection::ReadWrite, page + 1),
        ];
        let in_flight = manager.allocate(&requests, false).unwrap();
        let placed = in_flight.segments();
        let expected = [
            TargetRange {
                start: placed[0].range.start,
                len: LARGE.next_multiple_of(page) as usize,
            },
            TargetRange {
                start: placed[2].range.start,
                len: 2 * page as usize,
            },
        ];
        assert_eq!(*mapper.hints.lock().unwrap(), expected);
    }

    #[test]
    fn each_page_written_is_passed_on_once_before_it_is_written() {
        let mapper = Arc::new(Observed::default());
        let manager = MemoryManager::new(mapper.clone(), SlabConfig::default());
        let page = manager.page_size();
        let requests = [
            segment(3 * page, Protection::ReadExecute, 3 * page),
            segment(LARGE, Protection::Read, 0),
            segment(4 * page, Protection::ReadWrite, page + 1),
        ];
        let in_flight = manager.allocate(&requests, false).unwrap();
        assert!(in_flight.wants_before_write());
        // Consecutive ranges of working memory from 0 to its end, cut at odd places.
        let (page, len) = (page as usize, in_flight.working().len);
        let cuts = [
            0,
            1,
            page + 3,
            2 * page,
            2 * page,
            3 * page + 1,
            len - 5,
            len,
        ];
        for pair in cuts.windows(2) {
            in_flight.before_write(pair[0]..pair[1]);
        }
        let pages = |ranges: &[TargetRange]| -> Vec<u64> {
            ranges
                .iter()
                .flat_map(|r| (r.start.get()..r.end().get()).step_by(page))
                .collect()
        };
        let passed = pages(&mapper.before.lock().unwrap());
        // Each page the link writes, once, in order; none of the zero fill.
        assert_eq!(passed, pages(&mapper.hints.lock().unwrap()));
    }

    #[test]
    fn packed_memory_is_never_passed_on_before_it_is_written() {
        let mapper = Arc::new(Observed::default());
        let manager = MemoryManager::new(mapper.clone(), SlabConfig::default());
        let in_flight = manager.allocate(&request(&[100, 0, 20]), false).unwrap();
        assert!(in_flight.is_packed());
        assert!(!in_flight.wants_before_write());
        in_flight.before_write(0..in_flight.working().len);
        assert!(mapper.before.lock().unwrap().is_empty());
    }

    #[test]
    fn large_segments_are_page_aligned_and_in_one_slab() {
        let manager = manager(1 << 24);
        let a = manager
            .allocate(&request(&[LARGE, 5000, 1]), false)
            .unwrap();
        assert!(!a.is_packed());
        let page = manager.page_size();
        let segments = a.segments();
        assert_eq!(segments.len(), 3);
        let first_pages = LARGE.next_multiple_of(page);
        assert_eq!(
            segments[1].range.start - segments[0].range.start,
            first_pages
        );
        assert_eq!(segments[2].range.start - segments[1].range.start, 2 * page);
        assert_eq!(segments[2].working_offset, first_pages + 2 * page);
        let b = manager.allocate(&request(&[LARGE]), false).unwrap();
        let slab = manager.slab_range().unwrap();
        let [a, b] = [&a, &b].map(|x| x.segments()[0].range);
        assert!(slab.contains(a) && slab.contains(b));
        assert!(b.start >= a.end() || b.end() <= a.start);
        assert_eq!(manager.stats().allocations_served, 2);
    }

    #[test]
    fn memory_is_writable_then_protected_then_reused_zeroed() {
        let manager = manager(1 << 20);
        let in_flight = manager.allocate(&request(&[LARGE]), false).unwrap();
        let start = start(&in_flight);
        // SAFETY: working memory is ours until finalized.
        unsafe { *in_flight.working().ptr = 0xab };
        let finalized = in_flight.finalize(&[]).unwrap();
        // SAFETY: finalized read-write memory.
        assert_eq!(unsafe { *(start.get() as *const u8) }, 0xab);
        finalized.free().unwrap();
        let again = manager.allocate(&request(&[LARGE]), false).unwrap();
        assert_eq!(self::start(&again), start, "freed range is reused");
        // SAFETY: working memory is ours until finalized.
        assert_eq!(
            unsafe { *again.working().ptr },
            0,
            "reused memory reads as zero"
        );
    }

    #[test]
    fn dropped_allocations_go_back_to_the_slab_zeroed() {
        let manager = manager(1 << 20);
        for size in [LARGE, 100] {
            let in_flight = manager.allocate(&request(&[size]), false).unwrap();
            let start = start(&in_flight);
            // SAFETY: working memory is ours until finalized.
            unsafe { *in_flight.working().ptr = 0xcd };
            drop(in_flight);
            assert_eq!(manager.stats().bytes_in_use, 0);
            let finalized = manager
                .allocate(&request(&[size]), false)
                .unwrap()
                .finalize(&[])
                .unwrap();
            assert_eq!(
                finalized.ranges()[0].start,
                start,
                "abandoned range is reused"
            );
            // SAFETY: finalized read-write memory.
            assert_eq!(unsafe { *(start.get() as *const u8) }, 0, "and reads zero");
            drop(finalized);
            assert_eq!(manager.stats().bytes_in_use, 0);
        }
    }

    #[test]
    fn exhaustion_is_a_clear_error() {
        let manager = manager(1 << 16);
        let error = manager.allocate(&request(&[1 << 17]), false).unwrap_err();
        assert!(matches!(
            error,
            MapError::SlabExhausted {
                needed: 0x20000,
                capacity: 0x10000,
                ..
            }
        ));
        assert!(
            error
                .to_string()
                .starts_with("slab exhausted: the link needs 0x20000 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_slab_too_small_for_a_chunk_still_serves_small_images_in_pages() {
        let manager = manager(CHUNK_SIZE / 2);
        let small = manager.allocate(&request(&[100]), false).unwrap();
        assert!(!small.is_packed());
    }

    #[test]
    fn low_slab_lies_below_2gib() {
        let manager = manager(1 << 24);
        let a = manager.allocate(&request(&[4096]), true).unwrap();
        assert!(a.segments()[0].range.end().get() <= LOW_PLACEMENT_LIMIT);
        let high = self::manager(1 << 24);
        let _kept = high.allocate(&request(&[4096]), false).unwrap();
        if high.slab_range().unwrap().end().get() > LOW_PLACEMENT_LIMIT {
            let error = high.allocate(&request(&[4096]), true).unwrap_err();
            assert!(matches!(error, MapError::SlabNotLow { .. }), "{error}");
        }
    }

    static ACTION_LOG: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    extern "C" fn record(a: u64, b: u64) {
        ACTION_LOG.lock().unwrap().push((a, b));
    }

    #[test]
    fn actions_run_at_finalize_and_their_undo_at_deallocate() {
        let manager = manager(1 << 20);
        for (size, base) in [(1, 0), (LARGE, 1000)] {
            let in_flight = manager.allocate(&request(&[size]), false).unwrap();
            let call = |a| TargetCall {
                function: TargetAddr(record as *const () as u64),
                args: [base + a, 7],
            };
            let actions = [
                AllocAction {
                    finalize: Some(call(1)),
                    deallocate: Some(call(101)),
                },
                AllocAction {
                    finalize: Some(call(2)),
                    deallocate: Some(call(102)),
                },
                AllocAction {
                    finalize: None,
                    deallocate: Some(call(103)),
                },
            ];
            ACTION_LOG.lock().unwrap().clear();
            let finalized = in_flight.finalize(&actions).unwrap();
            let log = |a: &[u64]| a.iter().map(|&a| (base + a, 7)).collect::<Vec<_>>();
            assert_eq!(*ACTION_LOG.lock().unwrap(), log(&[1, 2]));
            drop(finalized);
            // Undone in reverse order, by dropping as by freeing.
            assert_eq!(*ACTION_LOG.lock().unwrap(), log(&[1, 2, 103, 102, 101]));
        }
    }

    /// A packed request like a tiny unit's: `mov $value, %eax; ret` as code, nothing
    /// read-only, `data` bytes of data.
    fn tiny_unit(manager: &Arc<MemoryManager>, value: u8, data: u64) -> Finalized {
        let requests = [
            SegmentRequest {
                size: 6,
                align: 16,
                protection: Protection::ReadExecute,
                written: 6,
            },
            SegmentRequest {
                size: 0,
                align: 1,
                protection: Protection::Read,
                written: 0,
            },
            SegmentRequest {
                size: data,
                align: 8,
                protection: Protection::ReadWrite,
                written: data,
            },
        ];
        let in_flight = manager.allocate(&requests, false).unwrap();
        assert!(in_flight.is_packed());
        let working = in_flight.working();
        let data_offset = in_flight.segments()[2].working_offset as usize;
        // SAFETY: working memory is ours until finalized; the segments lie at their offsets.
        unsafe {
            std::ptr::copy_nonoverlapping([0xb8, value, 0, 0, 0, 0xc3].as_ptr(), working.ptr, 6);
            working
                .ptr
                .add(data_offset)
                .write_bytes(value, data as usize);
        }
        in_flight.finalize(&[]).unwrap()
    }

    fn call(address: TargetAddr) -> u32 {
        // SAFETY: `tiny_unit`'s code, finalized: `u32 f(void)`.
        let function: extern "C" fn() -> u32 = unsafe { std::mem::transmute(address.get()) };
        function()
    }

    #[test]
    fn small_images_share_pages_and_give_them_back() {
        let manager = manager(1 << 26);
        let units: Vec<Finalized> = (0..2000)
            .map(|i| tiny_unit(&manager, i as u8, 8 + i % 24))
            .collect();
        let page = manager.page_size();
        let code_pages: std::collections::BTreeSet<u64> = units
            .iter()
            .map(|unit| unit.ranges()[0].start.get() / page)
            .collect();
        // 2,000 pieces of 16 bytes of code: eight pages, not 2,000.
        assert!(code_pages.len() <= 10, "{} code pages", code_pages.len());
        for (i, unit) in units.iter().enumerate() {
            let [code, data] = unit.ranges()[..] else {
                panic!("two pieces")
            };
            assert_eq!(call(code.start), i as u8 as u32);
            // SAFETY: the unit's live data piece.
            let bytes =
                unsafe { std::slice::from_raw_parts(data.start.get() as *const u8, 8 + i % 24) };
            assert!(bytes.iter().all(|&b| b == i as u8));
        }
        let stats = manager.stats();
        assert!(stats.chunks <= 4, "{} chunks", stats.chunks);
        assert_eq!(stats.packed_allocations, 2000);
        drop(units);
        let stats = manager.stats();
        assert_eq!((stats.bytes_in_use, stats.chunks), (0, 0));
        // Freed and reused, a piece gets its bytes whole: a unit of less data reads no stale
        // bytes of the one before it.
        let big = tiny_unit(&manager, 0xee, 64);
        drop(big);
        let small = tiny_unit(&manager, 3, 8);
        let data = small.ranges()[1];
        // SAFETY: the live data piece (16 bytes: 8 written, 8 of granule padding).
        let bytes = unsafe { std::slice::from_raw_parts(data.start.get() as *const u8, 16) };
        assert_eq!(bytes[..8], [3; 8]);
    }

    #[test]
    fn live_code_keeps_running_while_pieces_come_and_go_beside_it() {
        let manager = manager(1 << 26);
        let first = tiny_unit(&manager, 42, 8);
        let code = first.ranges()[0].start;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let caller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut calls = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A moment without execute permission on its page would crash here.
                    assert_eq!(call(code), 42);
                    calls += 1;
                }
                calls
            })
        };
        // Neighbours on the same code page are linked and freed meanwhile.
        for round in 0..300 {
            let value = |i: usize| (i + round) as u8;
            let neighbours: Vec<Finalized> =
                (0..8).map(|i| tiny_unit(&manager, value(i), 8)).collect();
            for (i, unit) in neighbours.iter().enumerate() {
                assert_eq!(call(unit.ranges()[0].start), value(i) as u32);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(caller.join().unwrap() > 0);
        drop(first);
        assert_eq!(manager.stats().chunks, 0);
    }

    #[test]
    fn a_page_whose_set_up_failed_is_set_up_for_the_next_piece_on_it() {
        let mapper = Arc::new(Observed::default());
        let manager = MemoryManager::new(
            mapper.clone(),
            SlabConfig {
                size: 1 << 26,
                address: None,
            },
        );
        let code = [SegmentRequest {
            size: 6,
            align: 16,
            protection: Protection::ReadExecute,
            written: 6,
        }];
        // Two pieces on one code page; the first to finalize fails to set the page up.
        let failing = manager.allocate(&code, false).unwrap();
        let next = manager.allocate(&code, false).unwrap();
        // SAFETY: working memory is ours until finalized.
        unsafe {
            std::ptr::copy_nonoverlapping([0xb8, 7, 0, 0, 0, 0xc3].as_ptr(), next.working().ptr, 6)
        };
        mapper.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(failing.finalize(&[]).is_err());
        let next = next.finalize(&[]).unwrap();
        assert_eq!(call(next.ranges()[0].start), 7);
    }
}
