//! Copy relocations, the target's half: once the image is live, the copies of library data it
//! holds are filled from where the data lives now, and the loaded libraries' references are
//! redirected to the copies (as ld.so does for an executable's copy relocations). When the
//! unit is freed, this is undone before its memory goes: the data's current value moves back
//! and the libraries' references with it. Which symbols get a copy, and where, scan and layout
//! decide.
//!
//! Several live units may copy the same data (each non-PIC unit that names `stdout`). The
//! session keeps, per original, the chain of its live copies in link order ([`CopyChains`]):
//! the libraries refer to the last one. A new copy takes the data over from the last one;
//! freeing the last one hands it back to the one before (or to the original); freeing one in
//! the middle only unlinks it, since nothing outside its unit refers to it. So libraries never
//! point into freed memory, whatever order units are freed in.

use super::{LinkContext, Plugin};
use crate::error::LinkError;
use crate::resolve::Resolution;
use foldhash::HashMap;
use rjitlink_memory::TargetAddr;
use rjitlink_target::{Executor, Interposition};
use std::sync::{Arc, Mutex};

/// Per library data object with live copies (by its original address), the copies in link
/// order. The last copy is where the libraries' references point; an original with no live
/// copy has no entry. Shared by a session's copy-relocation plugins.
#[derive(Clone, Default)]
pub struct CopyChains(Arc<Mutex<HashMap<TargetAddr, Vec<TargetAddr>>>>);

/// One copy a unit took over the data of a library object.
struct Copy {
    name: Vec<u8>,
    original: TargetAddr,
    copy: TargetAddr,
    size: u64,
}

/// Redirects the libraries to the image's copies of their data, and back when it is freed.
pub struct CopyRelocations {
    chains: CopyChains,
    /// The copies this unit put in the chains (the target may have been redirected to them,
    /// if interposing failed halfway).
    taken: Vec<Copy>,
    /// Handing the data back failed: the libraries may still refer into the unit.
    stuck: bool,
}

impl CopyRelocations {
    pub fn new(chains: &CopyChains) -> CopyRelocations {
        CopyRelocations {
            chains: chains.clone(),
            taken: Vec::new(),
            stuck: false,
        }
    }
}

impl Plugin for CopyRelocations {
    /// Only when handing the data back failed: the copies must then outlive the unit.
    fn pins_memory(&self) -> bool {
        self.stuck
    }

    fn finalize(
        &mut self,
        link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        if link.layout.copies.is_empty() {
            return Ok(());
        }
        let mut chains = self.chains.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut interpositions = Vec::with_capacity(link.layout.copies.len());
        for (&id, slot) in &link.layout.copies {
            let global = link.db.global(id);
            let Resolution::External(original) = global.resolution else {
                unreachable!("only external symbols are copied")
            };
            let copy = link.addresses.at(slot.offset);
            let chain = chains.entry(original).or_default();
            let current = chain.last().copied().unwrap_or(original);
            interpositions.push(Interposition {
                name: global.name.to_vec(),
                original: current,
                copy,
                size: slot.size,
            });
            // An alias of data this unit already copied (`environ` and `__environ`) is only
            // filled: the libraries already refer to the unit's first copy, which takes the
            // data back at free.
            if self.taken.iter().any(|taken| taken.original == original) {
                continue;
            }
            chain.push(copy);
            self.taken.push(Copy {
                name: global.name.to_vec(),
                original,
                copy,
                size: slot.size,
            });
        }
        drop(chains);
        target.interpose(&interpositions)?;
        Ok(())
    }

    /// Hand each copy's data back to the copy before it in its chain (or the original), if
    /// the libraries refer to it; otherwise only unlink it.
    fn free(&mut self, target: &mut dyn Executor) -> Result<(), LinkError> {
        if self.taken.is_empty() {
            return Ok(());
        }
        let mut chains = self.chains.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut hand_back = Vec::new();
        for taken in self.taken.drain(..).rev() {
            let Some(chain) = chains.get_mut(&taken.original) else {
                continue;
            };
            let Some(index) = chain.iter().rposition(|&copy| copy == taken.copy) else {
                continue;
            };
            if index + 1 == chain.len() {
                let previous = match index {
                    0 => taken.original,
                    _ => chain[index - 1],
                };
                hand_back.push(Interposition {
                    name: taken.name,
                    original: taken.copy,
                    copy: previous,
                    size: taken.size,
                });
            }
            chain.remove(index);
            if chain.is_empty() {
                chains.remove(&taken.original);
            }
        }
        drop(chains);
        let result = target.interpose(&hand_back);
        self.stuck = result.is_err();
        result.map_err(LinkError::target(
            "cannot hand copied library data back to the libraries",
        ))
    }
}
