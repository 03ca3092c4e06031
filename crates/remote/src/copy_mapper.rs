//! The RPC-copy mapper: links into local buffers and sends the bytes at finalize.

use crate::connection::{
    call, deinitialize_remote, initialize_remote, interpret, map_error, ready, release_remote,
    target_map_error, SharedConnection,
};
use rjitlink_memory::{
    MapError, MemoryMapper, Placement, SegmentProtection, TargetCall, TargetRange, WorkingMemory,
};
use rjitlink_protocol::{Request, Response};
use std::sync::Mutex;

/// Links into local buffers; `initialize` sends the bytes, then the protections.
pub struct RemoteCopyMapper {
    connection: SharedConnection,
    page_size: usize,
    /// Working memory of prepared ranges not yet initialized.
    working: Mutex<Vec<(TargetRange, Box<[u8]>)>>,
}

impl RemoteCopyMapper {
    pub(crate) fn new(connection: SharedConnection, page_size: usize) -> Self {
        RemoteCopyMapper {
            connection,
            page_size,
            working: Mutex::new(Vec::new()),
        }
    }
}

impl MemoryMapper for RemoteCopyMapper {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn reserve(&self, size: usize, placement: Placement) -> Result<TargetRange, MapError> {
        call(
            &self.connection,
            &Request::Reserve {
                size: size as u64,
                placement,
                shared: false,
                nonce: b"",
            },
            |r| match r {
                Response::Reserved(range) => Some(range),
                _ => None,
            },
        )
        .map_err(target_map_error)
    }

    fn prepare(&self, range: TargetRange) -> Result<WorkingMemory, MapError> {
        let mut buffer = vec![0u8; range.len].into_boxed_slice();
        let ptr = buffer.as_mut_ptr();
        self.working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((range, buffer));
        Ok(WorkingMemory {
            ptr,
            len: range.len,
        })
    }

    fn initialize(
        &self,
        segments: &[SegmentProtection],
        actions: &[TargetCall],
    ) -> Result<(), MapError> {
        let mut working = self.working.lock().unwrap_or_else(|e| e.into_inner());
        for segment in segments.iter().filter(|s| s.range.len > 0) {
            let (range, buffer) = working
                .iter()
                .find(|(r, _)| r.contains(segment.range))
                .ok_or_else(|| {
                    map_error(format!(
                        "segment at {} was never prepared",
                        segment.range.start
                    ))
                })?;
            let offset = (segment.range.start - range.start) as usize;
            let bytes = &buffer[offset..offset + segment.range.len];
            let mut locked = ready(&self.connection).map_err(target_map_error)?;
            let request = Request::Write {
                address: segment.range.start,
                length: bytes.len() as u64,
            };
            interpret(locked.connection.call_with_payload(&request, bytes), |r| {
                matches!(r, Response::Done).then_some(())
            })
            .map_err(target_map_error)?;
        }
        // The bytes are in place: the local copies are no longer needed.
        working.retain(|(range, _)| !segments.iter().any(|s| range.contains(s.range)));
        drop(working);
        initialize_remote(&self.connection, segments, actions)
    }

    fn deinitialize(&self, ranges: &[TargetRange], actions: &[TargetCall]) -> Result<(), MapError> {
        // A range abandoned before it was initialized still has its local buffer.
        self.working
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(prepared, _)| !ranges.iter().any(|r| r.contains(*prepared)));
        deinitialize_remote(&self.connection, ranges, actions)
    }

    fn release(&self, range: TargetRange) -> Result<(), MapError> {
        release_remote(&self.connection, range)
    }
}
