//! perf support: with `LinkOptions::perf_map`, the executor appends the unit's functions to
//! `/tmp/perf-PID.map` of the process that runs them (perf's convention for JIT code, read by
//! a plain `perf report`); with `LinkOptions::jitdump`, to its jitdump, with their code and
//! line rows (for `perf inject --jit`). The names and lines come from the `symbols` plugin.

use super::symbols::SharedSymbols;
use super::{LinkContext, Plugin};
use crate::error::LinkError;
use rjitlink_memory::TargetAddr;
use rjitlink_target::{Executor, JitFunction, PerfMapEntry, UnitSymbols};
use std::path::PathBuf;

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
    /// perf reads a perf map only for anonymous memory; packed code lies in a memory file's
    /// mapping, which perf takes for a file of its own.
    fn needs_own_pages(&self) -> bool {
        true
    }

    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        let Some(symbols) = self.symbols.get() else {
            return Ok(());
        };
        let entries: Vec<PerfMapEntry<'_>> = sized_functions(symbols)
            .map(|(address, size, name)| PerfMapEntry {
                address,
                size,
                name: name.as_bytes(),
            })
            .collect();
        target.write_perf_map(&entries).map_err(LinkError::from)
    }
}

/// The unit's functions with their sizes: a function without one (assembly without `.size`)
/// reaches to the next function, or to the end of the code. Empty ones are left out.
fn sized_functions(symbols: &UnitSymbols) -> impl Iterator<Item = (TargetAddr, u64, &str)> {
    let functions = &symbols.functions;
    functions
        .iter()
        .enumerate()
        .filter_map(move |(index, function)| {
            let size = match function.size {
                0 => {
                    let end = functions[index + 1..]
                        .iter()
                        .map(|next| next.address)
                        .find(|&next| next > function.address)
                        .unwrap_or(symbols.code.1);
                    end.get().saturating_sub(function.address.get())
                }
                size => size,
            };
            (size > 0).then(|| (function.address, size, symbols.name(function)))
        })
}

/// Writes the unit's functions to the target's jitdump.
pub struct JitDump {
    symbols: SharedSymbols,
    directory: Option<PathBuf>,
}

impl JitDump {
    /// Reads the functions and lines from what the `symbols` plugin built; writes the dump
    /// in `directory`, or perf's default place.
    pub fn new(symbols: SharedSymbols, directory: Option<PathBuf>) -> JitDump {
        JitDump { symbols, directory }
    }
}

impl Plugin for JitDump {
    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        let Some(symbols) = self.symbols.get() else {
            return Ok(());
        };
        let functions: Vec<JitFunction<'_>> = sized_functions(symbols)
            .map(|(address, size, name)| {
                let end = address + size;
                let table = symbols.line_table();
                let first = table.rows.partition_point(|row| row.address < address);
                let lines = table.rows[first..]
                    .iter()
                    .take_while(|row| row.address < end)
                    .filter_map(|row| {
                        let file = table.files.get(row.file as usize)?;
                        (row.line != 0).then_some((row.address, row.line, file.as_bytes()))
                    })
                    .collect();
                JitFunction {
                    address,
                    size,
                    name: name.as_bytes(),
                    lines,
                }
            })
            .collect();
        target
            .write_jitdump(self.directory.as_deref(), &functions)
            .map_err(LinkError::from)
    }
}
