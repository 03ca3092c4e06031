//! First-fit allocation of aligned ranges within one reservation, with coalescing on free.
//! Pure bookkeeping (no OS calls), so it is tested on its own.

use std::collections::BTreeMap;

/// Free ranges of a region `[0, capacity)`, as offsets.
///
/// Invariant: ranges in `free` are non-empty, disjoint and never adjacent (adjacent ranges are
/// merged), so a freed range always coalesces with its neighbours.
#[derive(Debug)]
pub struct FreeList {
    /// start → length
    free: BTreeMap<u64, u64>,
    capacity: u64,
}

impl FreeList {
    /// A free list whose whole `capacity` (bytes from offset 0) is free.
    pub fn new(capacity: u64) -> FreeList {
        let mut free = BTreeMap::new();
        if capacity > 0 {
            free.insert(0, capacity);
        }
        FreeList { free, capacity }
    }

    /// The size it manages, in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes not allocated.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// The largest allocation of alignment 1 that would succeed now.
    pub fn largest_free(&self) -> u64 {
        self.free.values().copied().max().unwrap_or(0)
    }

    /// Allocate `size` bytes aligned to `align` (a power of two). Returns the offset, or None
    /// if no free range can hold it. Zero-sized requests take one byte so offsets stay unique.
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<u64> {
        debug_assert!(align.is_power_of_two());
        let size = size.max(1);
        let (start, length, at) = self.free.iter().find_map(|(&start, &length)| {
            let at = start.checked_next_multiple_of(align)?;
            let end = at.checked_add(size)?;
            (end <= start + length).then_some((start, length, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let end = at + size;
        if end < start + length {
            self.free.insert(end, start + length - end);
        }
        Some(at)
    }

    /// Return `[offset, offset + size)`, merging it with free neighbours.
    ///
    /// Panics if the range is not wholly allocated: that is a bug in the caller, which
    /// only frees what it allocated.
    pub fn free(&mut self, offset: u64, size: u64) {
        let size = size.max(1);
        let mut start = offset;
        let mut end = offset + size;
        assert!(end <= self.capacity, "freed range lies outside the region");
        if let Some((&before, &length)) = self.free.range(..=offset).next_back() {
            assert!(before + length <= offset, "range freed twice");
            if before + length == offset {
                self.free.remove(&before);
                start = before;
            }
        }
        if let Some((&after, &length)) = self.free.range(offset..).next() {
            assert!(after >= end, "range freed twice");
            if after == end {
                self.free.remove(&after);
                end = after + length;
            }
        }
        self.free.insert(start, end - start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut list = FreeList::new(1 << 20);
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for (i, align) in [1u64, 8, 4096, 16, 65536, 2]
            .iter()
            .cycle()
            .take(60)
            .enumerate()
        {
            let size = 100 + i as u64 * 37;
            let at = list.allocate(size, *align).unwrap();
            assert_eq!(at % align, 0);
            for &(other, other_size) in &taken {
                assert!(at + size <= other || other + other_size <= at, "overlap");
            }
            taken.push((at, size));
        }
    }

    #[test]
    fn freed_space_is_reused_and_coalesced() {
        let mut list = FreeList::new(4096 * 4);
        let a = list.allocate(4096, 4096).unwrap();
        let b = list.allocate(4096, 4096).unwrap();
        let c = list.allocate(4096, 4096).unwrap();
        let d = list.allocate(4096, 4096).unwrap();
        assert_eq!((a, b, c, d), (0, 4096, 8192, 12288));
        assert_eq!(list.allocate(1, 1), None, "full");
        list.free(b, 4096);
        list.free(c, 4096);
        // b and c coalesced: an 8 KiB allocation fits where they were.
        assert_eq!(list.allocate(8192, 4096), Some(4096));
        list.free(4096, 8192);
        list.free(a, 4096);
        list.free(d, 4096);
        assert_eq!(list.free.len(), 1, "everything coalesced into one range");
        assert_eq!(list.free_bytes(), 4096 * 4);
        assert_eq!(list.allocate(4096 * 4, 4096), Some(0));
    }

    #[test]
    fn exhaustion_returns_none_without_damage() {
        let mut list = FreeList::new(1000);
        assert_eq!(list.allocate(1001, 1), None);
        assert_eq!(list.allocate(600, 1), Some(0));
        assert_eq!(list.allocate(600, 1), None);
        assert_eq!(list.largest_free(), 400);
        assert_eq!(list.allocate(400, 1), Some(600));
    }

    #[test]
    fn alignment_padding_stays_free() {
        let mut list = FreeList::new(8192);
        assert_eq!(list.allocate(10, 1), Some(0));
        assert_eq!(list.allocate(10, 4096), Some(4096));
        // The padding between 10 and 4096 is still usable.
        assert_eq!(list.allocate(4000, 1), Some(10));
    }

    #[test]
    fn many_small_allocations_then_free_all_in_shuffled_order() {
        let mut list = FreeList::new(1 << 16);
        let mut offsets: Vec<u64> = (0..1000).map(|_| list.allocate(64, 64).unwrap()).collect();
        assert_eq!(list.free_bytes(), (1 << 16) - 64000);
        // A fixed pseudo-random order (xorshift) so frees hit both neighbours' cases.
        let mut state = 0x2545f4914f6cdd1du64;
        for i in (1..offsets.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            offsets.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for offset in offsets {
            list.free(offset, 64);
        }
        assert_eq!(list.free.len(), 1);
        assert_eq!(list.free_bytes(), 1 << 16);
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn double_free_is_caught() {
        let mut list = FreeList::new(100);
        let a = list.allocate(10, 1).unwrap();
        list.free(a, 10);
        list.free(a, 10);
    }
}
