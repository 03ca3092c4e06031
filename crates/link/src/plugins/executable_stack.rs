//! An executable stack when an input asks for one, as ld grants it: an object whose
//! `.note.GNU-stack` section is executable (GCC emits one for nested functions whose address
//! is taken: their trampolines run on the stack), or that has no such note at all. The target's
//! dynamic loader does the work: loading a generated shared object whose `PT_GNU_STACK` is
//! executable makes the stacks of every thread executable, now and for threads started later.

use super::{LinkContext, Plugin};
use crate::elf::StackNote;
use crate::error::LinkError;
use crate::resolve::SymbolDb;
use crate::shared_object::{shared_object, Stack};
use rjitlink_target::Executor;

/// The name the stack-changing shared object is loaded under.
const SONAME: &str = "rjitlink-executable-stack.so";

/// Makes the target's stacks executable if an input asks for it.
#[derive(Default)]
pub struct ExecutableStack {
    /// What asked for it, phrased as ld warns: set by `after_resolve`.
    reason: Option<String>,
    /// Told once, in `take_warnings`.
    warned: bool,
}

/// Why an object with this stack note needs an executable stack, if it does.
fn asks_for_executable_stack(note: StackNote) -> Option<&'static str> {
    match note {
        StackNote::Missing => Some("missing .note.GNU-stack section implies executable stack"),
        StackNote::Executable => {
            Some("requires executable stack (because the .note.GNU-stack section is executable)")
        }
        StackNote::NotExecutable => None,
    }
}

impl Plugin for ExecutableStack {
    fn after_resolve(&mut self, db: &mut SymbolDb<'_>) -> Result<(), LinkError> {
        // Parse read each object's note: the first (in link order) that asks is named.
        self.reason = db.objects.iter().find_map(|object| {
            let why = asks_for_executable_stack(object.stack_note)?;
            Some(format!("{}: {why}", object.name))
        });
        Ok(())
    }

    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        if self.reason.is_none() {
            return Ok(());
        }
        let image = shared_object(SONAME.as_bytes(), &[], Stack::Executable);
        target
            .load_library_image(SONAME, &image)
            .map_err(LinkError::target("cannot make the stack executable"))
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match (&self.reason, self.warned) {
            (Some(reason), false) => {
                self.warned = true;
                vec![reason.clone()]
            }
            _ => Vec::new(),
        }
    }
}
