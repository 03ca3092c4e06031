//! The memory manager: target memory for whole links, sub-allocated on the linker side from
//! one slab reserved in the target once.
//!
//! Every unit linked in a session lies in the slab, so PC32/PLT32 between any two of them
//! always reach (the small code model). After the first reservation no allocation waits on the
//! target: a link's allocation is a few microseconds of bookkeeping under a short lock, so it
//! never serializes the parallel phases around it.
//!
//! An allocation owns its range: an `InFlight` dropped before it is finalized, or a
//! `Finalized` dropped, gives its memory back, so no error path between allocation and the
//! end of a unit's life leaks target memory.

use crate::free_list::FreeList;
use crate::mapper::{
    MemoryMapper, Placement, Protection, SegmentProtection, TargetCall, LOW_PLACEMENT_LIMIT,
};
use crate::{MapError, TargetAddr, TargetRange, WorkingMemory};
use std::sync::{Arc, Mutex};

/// The default slab: 1 GiB of address space (it costs memory only where used).
pub const DEFAULT_SLAB_SIZE: u64 = 1 << 30;

/// How the slab is reserved.
#[derive(Clone, Copy, Debug)]
pub struct SlabConfig {
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

/// One segment of an allocation. Segments are placed in order, each page-aligned.
#[derive(Clone, Copy, Debug)]
pub struct SegmentRequest {
    pub size: u64,
    pub protection: Protection,
}

/// A call to make at finalize, and its undo at deallocation; either may be absent.
#[derive(Clone, Copy, Debug)]
pub struct AllocAction {
    pub finalize: Option<TargetCall>,
    pub deallocate: Option<TargetCall>,
}

/// Memory being linked into: the linker writes `working()`; the code will run at `range()`.
/// Dropped without `finalize`, it goes back to the slab.
#[derive(Debug)]
pub struct InFlight {
    manager: Arc<MemoryManager>,
    range: TargetRange,
    /// Each requested segment's target range (page-aligned) and protection, in order.
    segments: Vec<SegmentProtection>,
    working: WorkingMemory,
    /// Cleared once `finalize` has handed the range on.
    owned: bool,
}

/// Memory whose code may run. Dropped (or `free`d), its deallocation calls run and its range
/// goes back to the slab.
#[derive(Debug)]
pub struct Finalized {
    manager: Arc<MemoryManager>,
    range: TargetRange,
    /// The finalize actions' undos, in the order they must run (reverse of finalize).
    deallocate_actions: Vec<TargetCall>,
    /// Cleared once `free` has run.
    owned: bool,
}

/// Counters for `--show-stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlabStats {
    pub reserved_bytes: u64,
    pub allocations_served: u64,
    pub bytes_in_use: u64,
}

#[derive(Debug)]
struct Slab {
    range: TargetRange,
    free: FreeList,
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

    pub fn page_size(&self) -> u64 {
        self.mapper.page_size() as u64
    }

    pub fn stats(&self) -> SlabStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slab's range, once reserved.
    pub fn slab_range(&self) -> Option<TargetRange> {
        let slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
        slab.as_ref().map(|slab| slab.range)
    }

    /// Allocate memory for `segments`, consecutive and page-aligned. With `below_2gib`, the
    /// memory must lie below 2 GiB (code with 32-bit absolute relocations); the first
    /// allocation then places the slab there.
    pub fn allocate(
        self: &Arc<Self>,
        segments: &[SegmentRequest],
        below_2gib: bool,
    ) -> Result<InFlight, MapError> {
        let page = self.page_size();
        let mut layout = Vec::with_capacity(segments.len());
        let mut size = 0u64;
        for segment in segments {
            let len = segment.size.next_multiple_of(page);
            layout.push(SegmentProtection {
                range: TargetRange {
                    start: TargetAddr(size),
                    len: len as usize,
                },
                protection: segment.protection,
            });
            size += len;
        }
        let size = size.max(page);

        let range = {
            let mut slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
            let slab = match &mut *slab {
                Some(slab) => slab,
                empty => empty.insert(self.reserve_slab(below_2gib)?),
            };
            if below_2gib && slab.range.end().get() > LOW_PLACEMENT_LIMIT {
                return Err(MapError::SlabNotLow {
                    slab: slab.range.start,
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
            TargetRange {
                start: slab.range.start + offset,
                len: size as usize,
            }
        };
        let working = match self.mapper.prepare(range) {
            Ok(working) => working,
            Err(e) => {
                self.give_back(range);
                return Err(e);
            }
        };
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.allocations_served += 1;
            stats.bytes_in_use += size;
        }
        // Segment starts were offsets from the allocation's start.
        for segment in &mut layout {
            segment.range.start = range.start + segment.range.start.get();
        }
        Ok(InFlight {
            manager: self.clone(),
            range,
            segments: layout,
            working,
            owned: true,
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
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserved_bytes = range.len as u64;
        Ok(Slab {
            range,
            free: FreeList::new(range.len as u64),
        })
    }

    /// Return a range to the slab (its pages already given back to the mapper).
    fn give_back(&self, range: TargetRange) {
        let mut slab = self.slab.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slab) = &mut *slab {
            slab.free
                .free(range.start - slab.range.start, range.len as u64);
        }
    }

    /// Make `actions` calls, empty `range` and return it to the slab. A range whose pages
    /// could not be emptied stays out of the slab: handing it out again would break the
    /// guarantee that prepared memory reads zero.
    fn deallocate(&self, range: TargetRange, actions: &[TargetCall]) -> Result<(), MapError> {
        self.mapper.deinitialize(&[range], actions)?;
        self.give_back(range);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.bytes_in_use -= range.len as u64;
        Ok(())
    }
}

impl InFlight {
    /// Where the allocation lies in the target.
    pub fn range(&self) -> TargetRange {
        self.range
    }

    /// Each requested segment's target range (page-aligned) and protection, in order.
    pub fn segments(&self) -> &[SegmentProtection] {
        &self.segments
    }

    /// The linker-side memory to write the image into: zeroed, `range().len` bytes.
    pub fn working(&self) -> &WorkingMemory {
        &self.working
    }

    /// Apply the segments' protections and make the finalize calls: the code may run after.
    /// On Err the memory goes back to the slab.
    pub fn finalize(mut self, actions: &[AllocAction]) -> Result<Finalized, MapError> {
        let calls: Vec<TargetCall> = actions.iter().filter_map(|a| a.finalize).collect();
        self.manager.mapper.initialize(&self.segments, &calls)?;
        self.owned = false;
        Ok(Finalized {
            manager: self.manager.clone(),
            range: self.range,
            deallocate_actions: actions.iter().rev().filter_map(|a| a.deallocate).collect(),
            owned: true,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.owned {
            // Not finalized, or finalizing failed: the finalize calls did not all run, so none
            // is undone. A failure leaves the range out of the slab.
            let _ = self.manager.deallocate(self.range, &[]);
        }
    }
}

impl Finalized {
    /// Where the allocation lies in the target.
    pub fn range(&self) -> TargetRange {
        self.range
    }

    /// The target ranges the allocation holds.
    pub fn ranges(&self) -> Vec<TargetRange> {
        vec![self.range]
    }

    /// Keep the memory live and in use for the rest of the process: for memory the target
    /// still refers to in ways that cannot be undone (a library's GOT entry redirected into it).
    /// No deallocation calls run, the range never returns to the slab, and the slab itself is
    /// never released (the manager is kept alive).
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// Make the deallocation calls, give the pages' memory back and return the range to the
    /// slab for reuse. Like dropping, but reports a failure.
    pub fn free(mut self) -> Result<(), MapError> {
        self.owned = false;
        self.manager
            .deallocate(self.range, &self.deallocate_actions)
    }
}

impl Drop for Finalized {
    fn drop(&mut self) {
        if self.owned {
            // Nothing useful can be done about a failure while dropping.
            let _ = self
                .manager
                .deallocate(self.range, &self.deallocate_actions);
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

    fn request(sizes: &[u64]) -> Vec<SegmentRequest> {
        sizes
            .iter()
            .map(|&size| SegmentRequest {
                size,
                protection: Protection::ReadWrite,
            })
            .collect()
    }

    #[test]
    fn segments_are_page_aligned_and_in_one_slab() {
        let manager = manager(1 << 24);
        let a = manager.allocate(&request(&[100, 5000, 1]), false).unwrap();
        let page = manager.page_size();
        let segments = a.segments();
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[0].range.start, a.range().start);
        assert_eq!(segments[1].range.start - segments[0].range.start, page);
        assert_eq!(segments[2].range.start - segments[1].range.start, 2 * page);
        let b = manager.allocate(&request(&[10]), false).unwrap();
        let slab = manager.slab_range().unwrap();
        for range in [a.range(), b.range()] {
            assert!(slab.contains(range));
        }
        assert!(b.range().start >= a.range().end() || b.range().end() <= a.range().start);
        assert_eq!(manager.stats().allocations_served, 2);
    }

    #[test]
    fn memory_is_writable_then_protected_then_reused_zeroed() {
        let manager = manager(1 << 20);
        let in_flight = manager.allocate(&request(&[4096]), false).unwrap();
        let start = in_flight.range().start;
        // SAFETY: working memory is ours until finalized.
        unsafe { *in_flight.working().ptr = 0xab };
        let finalized = in_flight.finalize(&[]).unwrap();
        // SAFETY: finalized read-write memory.
        assert_eq!(unsafe { *(start.get() as *const u8) }, 0xab);
        finalized.free().unwrap();
        let again = manager.allocate(&request(&[4096]), false).unwrap();
        assert_eq!(again.range().start, start, "freed range is reused");
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
        let in_flight = manager.allocate(&request(&[4096]), false).unwrap();
        let start = in_flight.range().start;
        // SAFETY: working memory is ours until finalized.
        unsafe { *in_flight.working().ptr = 0xcd };
        drop(in_flight);
        assert_eq!(manager.stats().bytes_in_use, 0);
        let finalized = manager
            .allocate(&request(&[4096]), false)
            .unwrap()
            .finalize(&[])
            .unwrap();
        assert_eq!(finalized.range().start, start, "abandoned range is reused");
        // SAFETY: finalized read-write memory.
        assert_eq!(unsafe { *(start.get() as *const u8) }, 0, "and reads zero");
        drop(finalized);
        assert_eq!(manager.stats().bytes_in_use, 0);
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
    fn low_slab_lies_below_2gib() {
        let manager = manager(1 << 24);
        let a = manager.allocate(&request(&[4096]), true).unwrap();
        assert!(a.range().end().get() <= LOW_PLACEMENT_LIMIT);
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
        let in_flight = manager.allocate(&request(&[1]), false).unwrap();
        let call = |a| TargetCall {
            function: TargetAddr(record as *const () as u64),
            args: [a, 7],
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
        let finalized = in_flight.finalize(&actions).unwrap();
        assert_eq!(*ACTION_LOG.lock().unwrap(), vec![(1, 7), (2, 7)]);
        drop(finalized);
        // Undone in reverse order, by dropping as by freeing.
        assert_eq!(
            *ACTION_LOG.lock().unwrap(),
            vec![(1, 7), (2, 7), (103, 7), (102, 7), (101, 7)]
        );
    }
}
