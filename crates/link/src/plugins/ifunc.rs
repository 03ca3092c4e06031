//! IFUNCs defined in linked objects (`__attribute__((ifunc))`, `target_clones`): the target
//! runs each resolver once the image is live and before anything else runs — as the dynamic
//! loader runs IRELATIVE relocations — and stores the function it picks in the IFUNC's GOT
//! slot. Calls go through the IFUNC's stub, whose address also stands for the IFUNC.
//!
//! Scan gives every IFUNC a slot and a stub, layout puts the GOT in writable memory and adds
//! the architecture's thunk (`Arch::write_ifunc_thunk`), which the calls here run.

use super::{LinkContext, Plugin};
use crate::addresses::defined_address;
use crate::error::LinkError;
use crate::resolve::Resolution;
use crate::symbols::SymbolRef;
use rjitlink_memory::{AllocAction, TargetCall};
use rjitlink_target::Executor;

/// Runs the unit's IFUNC resolvers in the target.
#[derive(Default)]
pub struct Ifuncs;

impl Plugin for Ifuncs {
    fn after_apply(
        &mut self,
        link: &LinkContext<'_, '_>,
        _image: &[u8],
        _target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        let plan = &link.layout.got_plan;
        let Some(thunk) = link.layout.ifunc_thunk else {
            return Ok(Vec::new());
        };
        let thunk = link.addresses.at(thunk);
        plan.ifuncs
            .iter()
            .map(|ifunc| {
                let (object, symbol) = match ifunc.symbol {
                    SymbolRef::Local { object, symbol } => (object, symbol),
                    SymbolRef::Global(id) => match link.db.global(id).resolution {
                        Resolution::Defined { object, symbol, .. } => (object, symbol),
                        _ => unreachable!("only defined symbols are IFUNCs"),
                    },
                };
                let file = &link.db.objects[object.index()];
                let placement = &link.addresses.placement;
                let resolver =
                    defined_address(file, object, symbol as usize, link.layout, placement)
                        .ok_or_else(|| LinkError::Symbol {
                            file: Some(file.name.clone()),
                            symbol: file.describe_symbol(symbol as usize),
                            problem:
                                "is an IFUNC whose resolver lies in a section that is not loaded"
                                    .into(),
                        })?;
                let slot = link.addresses.at(link.layout.got_slot(ifunc.jump));
                Ok(AllocAction {
                    finalize: Some(TargetCall {
                        function: thunk,
                        args: [resolver.get(), slot.get()],
                    }),
                    deallocate: None,
                })
            })
            .collect()
    }
}
