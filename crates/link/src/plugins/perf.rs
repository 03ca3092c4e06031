//! perf support: with `LinkOptions::perf_map`, the executor appends the unit's functions to
//! `/tmp/perf-PID.map` of the process that runs them (perf's convention for JIT code, read by
//! a plain `perf report`). The names come from the `symbols` plugin.

use super::symbols::SharedSymbols;
use super::{LinkContext, Plugin};
use crate::error::LinkError;
use rjitlink_target::{Executor, PerfMapEntry};

/// Writes the unit's functions to the target's perf map.
pub struct PerfMap {
    symbols: SharedSymbols,
}

impl PerfMap {
    /// Reads the functions from what the `symbols` plugin built.
    pub fn new(symbols: SharedSymbols) -> PerfMap {
        PerfMap { symbols }
    }
}

impl Plugin for PerfMap {
    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        let Some(symbols) = self.symbols.get() else {
            return Ok(());
        };
        let functions = &symbols.functions;
        let entries: Vec<PerfMapEntry<'_>> = functions
            .iter()
            .enumerate()
            .filter_map(|(index, function)| {
                // A function without a size (assembly without `.size`) reaches to the next
                // one, or to the end of the code.
                let size = match function.size {
                    0 => {
                        let end = functions[index + 1..]
                            .iter()
                            .map(|next| next.address)
                            .find(|&next| next > function.address)
                            .unwrap_or(symbols.code.1);
                        end - function.address
                    }
                    size => size,
                };
                (size > 0).then(|| PerfMapEntry {
                    address: function.address,
                    size,
                    name: symbols.name(function).as_bytes(),
                })
            })
            .collect();
        target
            .write_perf_map(&entries)
            .map_err(|source| LinkError::Target {
                context: Some("cannot write the perf map"),
                source,
            })
    }
}
