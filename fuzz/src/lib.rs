//! What the fuzz targets share: a target that runs nothing (a memory mapper that only hands out
//! zeroed working memory, an executor whose lookup finds every name), and the link target's
//! input format.

use rjitlink_memory::{
    MapError, MemoryMapper, PieceWrite, Placement, SegmentProtection, TargetAddr, TargetCall,
    TargetRange, WorkingMemory,
};
use rjitlink_target::{
    check_debug_image, DebugObject, DebugObjectHandle, Executor, Interposition, LoadedModule,
    ModuleHandle, Program, SymbolInfo, SymbolKind, TargetError, WordTable,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const PAGE_SIZE: usize = 4096;

/// Target memory that is never made live: `reserve` hands out address ranges that are not
/// mapped, `prepare` zeroed local memory, and `initialize` ignores the segments and the calls
/// it is asked to make, so no linked byte ever runs.
#[derive(Default)]
pub struct InertMapper {
    /// Working memory by its target start: (address in this process, length).
    working: Mutex<HashMap<u64, (usize, usize)>>,
    next_reservation: Mutex<u64>,
}

impl InertMapper {
    fn unmap(&self, range: TargetRange) {
        let mut working = self.working.lock().unwrap();
        working.retain(|&start, &mut (ptr, len)| {
            let inside = start >= range.start.get() && start < range.start.get() + range.len as u64;
            if inside {
                // SAFETY: a mapping made by `prepare`, no longer handed out.
                unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
            }
            !inside
        });
    }
}

impl MemoryMapper for InertMapper {
    fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        let start = match placement {
            Placement::At(address) => address.get(),
            Placement::Below2GiB => 0x4000_0000,
            Placement::Anywhere => {
                let mut next = self.next_reservation.lock().unwrap();
                let start = 0x7f00_0000_0000 + *next;
                *next += (size as u64).next_multiple_of(PAGE_SIZE as u64);
                start
            }
        };
        Ok(TargetRange {
            start: TargetAddr(start),
            len: size,
        })
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        let len = range.len;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping; zero until written.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len.max(1), prot, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(MapError::Reserve {
                size: len,
                placement: Placement::Anywhere,
                source: Some(std::io::Error::last_os_error()),
            });
        }
        self.working
            .lock()
            .unwrap()
            .insert(range.start.get(), (ptr as usize, len.max(1)));
        Ok(WorkingMemory {
            ptr: ptr as *mut u8,
            len,
        })
    }

    fn initialize(&self, _: &[SegmentProtection], _: &[TargetCall]) -> Result<(), MapError> {
        Ok(())
    }

    fn initialize_pieces(
        &self,
        _: &[SegmentProtection],
        _: &[PieceWrite<'_>],
        _: &[TargetCall],
    ) -> Result<(), MapError> {
        Ok(())
    }

    fn deinitialize(&self, ranges: &[TargetRange], _: &[TargetCall]) -> Result<(), MapError> {
        for &range in ranges {
            self.unmap(range);
        }
        Ok(())
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        self.unmap(range);
        Ok(())
    }
}

/// Where the stub's libraries "define" every name: a window within PC32 reach of the slab.
const LIBRARY_BASE: u64 = 0x7f00_4000_0000;

/// An executor that loads nothing and runs nothing: every library "loads", every name is
/// found (at an address derived from the name, half of them data), modules "load" with zero
/// words.
pub struct StubExecutor {
    mapper: Arc<InertMapper>,
}

impl Default for StubExecutor {
    fn default() -> Self {
        StubExecutor {
            mapper: Arc::new(InertMapper::default()),
        }
    }
}

fn name_address(name: &[u8]) -> TargetAddr {
    let hash = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    TargetAddr(LIBRARY_BASE + (hash % 0x1_0000) * 16)
}

impl Executor for StubExecutor {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }
    fn load_library(&mut self, _: &Path) -> Result<(), TargetError> {
        Ok(())
    }
    fn load_library_image(&mut self, _: &str, _: &[u8]) -> Result<(), TargetError> {
        Ok(())
    }
    fn load_module(
        &mut self,
        _: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError> {
        // The table must lie in the image, as a real loader's would.
        let end = table
            .count
            .checked_mul(8)
            .and_then(|bytes| bytes.checked_add(table.offset));
        if end.is_none_or(|end| end > image.len() as u64) {
            return Err(TargetError::Refused("table outside the module".into()));
        }
        Ok(LoadedModule {
            handle: ModuleHandle(1),
            words: vec![0; table.count as usize],
        })
    }
    fn unload_module(&mut self, _: ModuleHandle) -> Result<(), TargetError> {
        Ok(())
    }
    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, TargetError> {
        Ok(names.iter().map(|name| Some(name_address(name))).collect())
    }
    fn symbol_info(
        &mut self,
        addresses: &[TargetAddr],
    ) -> Result<Vec<Option<SymbolInfo>>, TargetError> {
        Ok(addresses
            .iter()
            .map(|address| {
                let kind = match address.get() & 16 {
                    0 => SymbolKind::Function,
                    _ => SymbolKind::Data,
                };
                Some(SymbolInfo { kind, size: 16 })
            })
            .collect())
    }
    fn interpose(&mut self, _: &[Interposition]) -> Result<(), TargetError> {
        Ok(())
    }
    /// Images are checked as a real target checks them, and kept nowhere.
    fn register_debug_objects(
        &mut self,
        objects: Vec<DebugObject>,
    ) -> Result<Vec<DebugObjectHandle>, TargetError> {
        objects
            .iter()
            .enumerate()
            .map(|(index, object)| {
                check_debug_image(&object.image)
                    .map(|()| DebugObjectHandle(index as u64))
                    .map_err(|problem| TargetError::Refused(problem.to_owned()))
            })
            .collect()
    }
    fn unregister_debug_objects(&mut self, _: &[DebugObjectHandle]) -> Result<(), TargetError> {
        Ok(())
    }
    /// Libraries then load after resolving, on the linking thread: the same input takes the
    /// same path every time.
    fn is_this_process(&self) -> bool {
        true
    }
    fn run(&mut self, _: &Program) -> Result<i32, TargetError> {
        Err(TargetError::Refused(
            "the fuzzing executor runs nothing".into(),
        ))
    }
}

/// Separates the files of a link target's input: the first is linked as an object (or
/// whatever it is), the rest as further inputs in order (archives, scripts, objects).
pub const FILE_SEPARATOR: &[u8] = b"\n--rjitlink-fuzz-file--\n";

/// Split a link input into its files (at most 8).
pub fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut files = Vec::new();
    let mut rest = data;
    while files.len() < 7 {
        match rest
            .windows(FILE_SEPARATOR.len())
            .position(|window| window == FILE_SEPARATOR)
        {
            Some(at) => {
                files.push(&rest[..at]);
                rest = &rest[at + FILE_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    files.push(rest);
    files
}

/// Join files into one link input (for seeds).
pub fn join_files(files: &[Vec<u8>]) -> Vec<u8> {
    files.join(FILE_SEPARATOR)
}
