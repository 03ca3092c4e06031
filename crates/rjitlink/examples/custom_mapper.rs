//! A custom `MemoryMapper`: the linker asks the mapper for address space, working memory and
//! protections, so a JIT can watch, account for or place its code itself. This one wraps the
//! in-process mapper and counts what passes through it.
//!
//! `cargo run -p rjitlink --example custom_mapper`

use rjitlink::lower::memory::{
    InProcessMapper, PieceWrite, Placement, SegmentProtection, TargetCall, WorkingMemory,
};
use rjitlink::{MapError, MemoryMapper, Session, TargetRange, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The in-process mapper, with a count of each call and of the bytes it reserved and made live.
#[derive(Default)]
struct CountingMapper {
    inner: InProcessMapper,
    reserved_bytes: AtomicU64,
    live_bytes: AtomicU64,
    initializations: AtomicU64,
    releases: AtomicU64,
}

impl MemoryMapper for CountingMapper {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let range = self.inner.reserve(size, placement)?;
        self.reserved_bytes
            .fetch_add(range.len as u64, Ordering::Relaxed);
        println!("  reserve {size:#x} bytes at {:#x}", range.start.get());
        Ok(range)
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        self.inner.prepare(range)
    }

    fn initialize(
        &self,
        segments: &[SegmentProtection],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        self.count_live(segments);
        self.inner.initialize(segments, actions)
    }

    fn initialize_pieces(
        &self,
        pages: &[SegmentProtection],
        pieces: &[PieceWrite<'_>],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        self.count_live(pages);
        for piece in pieces {
            println!(
                "  piece of {} bytes at {:#x} ({})",
                piece.bytes.len(),
                piece.range.start.get(),
                piece.protection
            );
        }
        self.inner.initialize_pieces(pages, pieces, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        self.inner.deinitialize(ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        self.releases.fetch_add(1, Ordering::Relaxed);
        self.inner.release(range)
    }
}

impl CountingMapper {
    fn count_live(&self, segments: &[SegmentProtection]) {
        self.initializations.fetch_add(1, Ordering::Relaxed);
        for segment in segments {
            self.live_bytes
                .fetch_add(segment.range.len as u64, Ordering::Relaxed);
            println!(
                "  make {:#x} bytes at {:#x} {}",
                segment.range.len,
                segment.range.start.get(),
                segment.protection
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rjitlink-mapper-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("table.c"),
        "static const int squares[4] = {0, 1, 4, 9};\nint counter;\n\
         int square(int i) { counter++; return squares[i & 3]; }\n",
    )?;
    let status = std::process::Command::new("cc")
        .args(["-c", "-O2", "table.c", "-o", "table.o"])
        .current_dir(&dir)
        .status()?;
    assert!(status.success(), "cc failed");

    let mapper = Arc::new(CountingMapper::default());
    let mut session = Session::builder()
        .mapper(mapper.clone())
        .slab_size(64 << 20)
        .build()?;
    println!("linking table.o:");
    let unit = session.link(&Unit::new().path(dir.join("table.o")))?;
    std::fs::remove_dir_all(&dir)?;
    // SAFETY: `int square(int)`; the unit is live.
    let square: extern "C" fn(i32) -> i32 = unsafe { session.lookup_fn("square")? };
    assert_eq!(square(3), 9);
    session.free(unit.id)?;
    drop(session);

    let reserved = mapper.reserved_bytes.load(Ordering::Relaxed);
    let live = mapper.live_bytes.load(Ordering::Relaxed);
    println!(
        "reserved {reserved:#x} bytes, made {live:#x} bytes live in {} calls, released {} reservations",
        mapper.initializations.load(Ordering::Relaxed),
        mapper.releases.load(Ordering::Relaxed)
    );
    // Every byte went through the mapper: the slab (64 MiB) was reserved from it, code and
    // data pages were made live through it, and the slab went back with the session.
    assert_eq!(reserved, 64 << 20);
    assert!(live >= 2 * mapper.page_size() as u64);
    assert_eq!(mapper.releases.load(Ordering::Relaxed), 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().unwrap();
    }
}
