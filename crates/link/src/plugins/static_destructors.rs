//! A unit's C++ static destructors and `atexit` handlers run when the unit is freed, as
//! `dlclose` runs a library's: they were registered with `__cxa_atexit` and the unit's own
//! `__dso_handle`, and `__cxa_finalize(&__dso_handle)` runs and forgets them. Without it they
//! would run at process exit, in memory the unit no longer owns.

use super::{LinkContext, Plugin};
use crate::error::LinkError;
use crate::resolve::{LinkerSymbol, Resolution};
use rjitlink_memory::{AllocAction, TargetCall};
use rjitlink_target::Executor;

/// Runs a unit's exit handlers when it is freed.
#[derive(Default)]
pub struct StaticDestructors;

impl Plugin for StaticDestructors {
    fn after_apply(
        &mut self,
        link: &LinkContext<'_, '_>,
        _image: &[u8],
        target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        // Only code that names __dso_handle can have registered handlers with it.
        let uses_dso_handle = link.db.lookup(b"__dso_handle").is_some_and(|id| {
            link.db.global(id).resolution == Resolution::Linker(LinkerSymbol::DsoHandle)
        });
        if !uses_dso_handle {
            return Ok(Vec::new());
        }
        // A link without libc (--nostdlib) has no __cxa_atexit either.
        let [Some(cxa_finalize)] = target.lookup(&[b"__cxa_finalize"])?[..] else {
            return Ok(Vec::new());
        };
        let dso_handle = link.addresses.at(link.layout.dso_handle);
        Ok(vec![AllocAction {
            finalize: None,
            deallocate: Some(TargetCall {
                function: cxa_finalize,
                args: [dso_handle.get(), 0],
            }),
        }])
    }
}
