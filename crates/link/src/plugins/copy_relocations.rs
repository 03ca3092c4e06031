//! Copy relocations, the target's half: once the image is live, the copies of library data it
//! holds are filled from the originals, and the loaded libraries' references to the originals
//! are redirected to the copies (as ld.so does for an executable's copy relocations). Which
//! symbols get a copy, and where, scan and layout decide.

use super::{LinkContext, Plugin};
use crate::error::LinkError;
use crate::resolve::Resolution;
use rjitlink_target::{Executor, Interposition};

/// Redirects the libraries to the image's copies of their data.
#[derive(Default)]
pub struct CopyRelocations {
    /// Libraries were (or may have been, if it failed halfway) redirected into the image.
    redirected: bool,
}

impl Plugin for CopyRelocations {
    /// Nothing restores the libraries' GOT entries yet, so the copies must outlive the unit.
    fn pins_memory(&self) -> bool {
        self.redirected
    }

    fn finalize(
        &mut self,
        link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        if link.layout.copies.is_empty() {
            return Ok(());
        }
        let interpositions: Vec<Interposition> = link
            .layout
            .copies
            .iter()
            .map(|(&id, copy)| {
                let global = link.db.global(id);
                let Resolution::External(original) = global.resolution else {
                    unreachable!("only external symbols are copied")
                };
                Interposition {
                    name: global.name.to_vec(),
                    original,
                    copy: link.addresses.at(copy.offset),
                    size: copy.size,
                }
            })
            .collect();
        self.redirected = true;
        target.interpose(&interpositions)?;
        Ok(())
    }
}
