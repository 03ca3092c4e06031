//! Names for linked code: what a unit keeps of its link so that a crash report (and perf) can
//! say `function+0xOFF (file:line) [object]` — the objects' function symbols with their sizes,
//! and the rows of their DWARF line tables where they were built with `-g` — handed to the
//! executor as the unit goes live and taken back when it is freed.
//!
//! Line tables of relocatable objects hold section-relative addresses (relocations against the
//! sections' symbols): each object's `.debug_line` is copied and its relocations applied with
//! the sections' final addresses, then read with gimli. Objects without debug information
//! cost only the walk over their symbol table.

use super::{LinkContext, Plugin};
use crate::addresses::defined_address;
use crate::elf::{ObjectFile, LE};
use crate::error::LinkError;
use crate::ids::ObjectId;
use crate::sections::SegmentKind;
use foldhash::HashMap;
use gimli::{AttributeValue, DebugLine, DebugLineOffset, DebugLineStr, DebugStr, LittleEndian};
use object::elf;
use object::read::elf::{Rela as _, SectionHeader as _, Sym as _};
use rayon::prelude::*;
use rjitlink_memory::{AllocAction, TargetAddr};
use rjitlink_target::symbolize::{FunctionSymbol, LineRow};
use rjitlink_target::{Executor, UnitSymbols};
use std::sync::{Arc, OnceLock};

/// A unit's symbols once built, for the plugins that use them after `symbols` (perf).
pub type SharedSymbols = Arc<OnceLock<Arc<UnitSymbols>>>;

/// Builds the unit's symbols after apply and keeps them in the executor while it lives.
pub struct Symbols {
    shared: SharedSymbols,
    /// Given to the executor by `finalize`, to be taken back by `free`.
    registered: Option<Arc<UnitSymbols>>,
}

impl Symbols {
    /// Publishes what it builds in `shared`.
    pub fn new(shared: SharedSymbols) -> Symbols {
        Symbols {
            shared,
            registered: None,
        }
    }
}

impl Plugin for Symbols {
    fn after_apply(
        &mut self,
        link: &LinkContext<'_, '_>,
        _image: &[u8],
        _target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        let _ = self.shared.set(Arc::new(collect(link)));
        Ok(Vec::new())
    }

    fn finalize(
        &mut self,
        _link: &LinkContext<'_, '_>,
        target: &mut dyn Executor,
    ) -> Result<(), LinkError> {
        if let Some(symbols) = self.shared.get() {
            target.add_symbols(symbols.clone());
            self.registered = Some(symbols.clone());
        }
        Ok(())
    }

    fn free(&mut self, target: &mut dyn Executor) -> Result<(), LinkError> {
        if let Some(symbols) = self.registered.take() {
            target.remove_symbols(&symbols);
        }
        Ok(())
    }
}

/// What one object contributes, with names and files numbered locally.
#[derive(Default)]
struct ObjectSymbols {
    functions: Vec<FunctionSymbol>,
    names: String,
    files: Vec<String>,
    lines: Vec<Vec<LineRow>>,
}

/// The unit's symbols: every object's function symbols and line rows, merged and sorted.
pub fn collect(link: &LinkContext<'_, '_>) -> UnitSymbols {
    let per_object: Vec<ObjectSymbols> = link
        .db
        .objects
        .par_iter()
        .enumerate()
        .map(|(index, object)| {
            let id = ObjectId::from_index(index);
            let mut symbols = functions(link, object, id);
            lines(link, object, id, &mut symbols);
            symbols
        })
        .collect();
    let code = link.addresses.placement.segment(SegmentKind::Code);
    let mut unit = UnitSymbols {
        code: (
            code,
            code + link.layout.segments[SegmentKind::Code as usize].size,
        ),
        objects: link.db.objects.iter().map(|o| o.name.clone()).collect(),
        ..UnitSymbols::default()
    };
    let mut sequences: Vec<Vec<LineRow>> = Vec::new();
    let mut file_ids: HashMap<String, u32> = HashMap::default();
    for object in per_object {
        let base = unit.names.len() as u32;
        unit.names.push_str(&object.names);
        unit.functions
            .extend(object.functions.into_iter().map(|mut function| {
                function.name = (function.name.0 + base, function.name.1 + base);
                function
            }));
        let local_files: Vec<u32> = object
            .files
            .into_iter()
            .map(|file| {
                let next = unit.files.len() as u32;
                *file_ids.entry(file.clone()).or_insert_with(|| {
                    unit.files.push(file);
                    next
                })
            })
            .collect();
        for mut sequence in object.lines {
            for row in &mut sequence {
                if row.file != LineRow::END {
                    row.file = local_files.get(row.file as usize).copied().unwrap_or(0);
                }
            }
            sequences.push(sequence);
        }
    }
    // Among functions at one address (aliases), the one with a size comes last: lookups take
    // the last function starting at or before an address.
    unit.functions
        .sort_unstable_by_key(|function| (function.address, function.size != 0));
    sequences.sort_unstable_by_key(|sequence| sequence[0].address);
    unit.lines = sequences.concat();
    unit
}

/// The object's function symbols in loaded sections: typed functions (local ones too), and
/// global untyped symbols in code sections (assembly without `.type`).
fn functions(link: &LinkContext<'_, '_>, object: &ObjectFile<'_>, id: ObjectId) -> ObjectSymbols {
    let mut symbols = ObjectSymbols::default();
    for (index, symbol) in object.symbols.symbols().iter().enumerate().skip(1) {
        let kind = symbol.st_type();
        let wanted = match kind {
            elf::STT_FUNC | elf::STT_GNU_IFUNC => true,
            elf::STT_NOTYPE => {
                symbol.st_bind() != elf::STB_LOCAL
                    && object
                        .symbol_section(index, symbol)
                        .filter(|&section| section < object.sections.len())
                        .is_some_and(|section| {
                            object.section(section).sh_flags(LE) & u64::from(elf::SHF_EXECINSTR)
                                != 0
                        })
            }
            _ => false,
        };
        if !wanted || symbol.st_shndx(LE) == elf::SHN_UNDEF {
            continue;
        }
        let Some(address) =
            defined_address(object, id, index, link.layout, &link.addresses.placement)
        else {
            continue;
        };
        let name = object.symbol_name(symbol);
        if name.is_empty() {
            continue;
        }
        let start = symbols.names.len() as u32;
        symbols.names.push_str(&String::from_utf8_lossy(name));
        symbols.functions.push(FunctionSymbol {
            address,
            size: symbol.st_size(LE),
            name: (start, symbols.names.len() as u32),
            object: id.0,
        });
    }
    symbols
}

/// The bytes of the object's section named `name`, if it has one that can be read.
fn section_named<'data>(object: &ObjectFile<'data>, name: &[u8]) -> Option<(usize, &'data [u8])> {
    (1..object.sections.len()).find_map(|index| {
        (object.section_name(index) == name)
            .then(|| object.section(index).data(LE, object.data).ok())
            .flatten()
            .map(|data| (index, data))
    })
}

/// The object's `.debug_line`, relocated: section-relative addresses become the sections'
/// final addresses; offsets into the object's own string sections stay offsets.
fn relocated_debug_line(
    link: &LinkContext<'_, '_>,
    object: &ObjectFile<'_>,
    id: ObjectId,
    index: usize,
    bytes: &[u8],
) -> Vec<u8> {
    let mut relocated = bytes.to_vec();
    let relocations = object.relocations.get(index).copied().unwrap_or_default();
    for rela in relocations {
        let symbol_index = rela.r_sym(LE, false) as usize;
        let Some(symbol) = object.symbol(symbol_index) else {
            continue;
        };
        let loaded = object
            .symbol_section(symbol_index, symbol)
            .and_then(|section| link.layout.section_offset(id, section))
            .is_some();
        let value = if loaded {
            defined_address(
                object,
                id,
                symbol_index,
                link.layout,
                &link.addresses.placement,
            )
            .map_or(0, TargetAddr::get)
        } else if symbol.st_type() == elf::STT_SECTION || symbol.st_shndx(LE) == elf::SHN_ABS {
            // An offset into a section that is not loaded (.debug_line_str), or a section of
            // code that is not (a discarded COMDAT copy, whose rows are dropped below).
            symbol.st_value(LE)
        } else {
            0
        };
        let value = value.wrapping_add(rela.r_addend(LE) as u64);
        let at = rela.r_offset(LE) as usize;
        let width = match rela.r_type(LE, false) {
            elf::R_X86_64_64 => 8,
            elf::R_X86_64_32 => 4,
            _ => continue,
        };
        if let Some(field) = at
            .checked_add(width)
            .and_then(|end| relocated.get_mut(at..end))
        {
            field.copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }
    relocated
}

/// The rows of the object's line tables, if it has any, into `symbols` (sequences of code
/// that is not in the image are dropped). A table gimli cannot read is skipped: names matter
/// less than the link.
fn lines(
    link: &LinkContext<'_, '_>,
    object: &ObjectFile<'_>,
    id: ObjectId,
    symbols: &mut ObjectSymbols,
) {
    let Some((index, bytes)) = section_named(object, b".debug_line") else {
        return;
    };
    let relocated = relocated_debug_line(link, object, id, index, bytes);
    let debug_line = DebugLine::new(&relocated, LittleEndian);
    let line_str = DebugLineStr::new(
        section_named(object, b".debug_line_str").map_or(&[][..], |(_, data)| data),
        LittleEndian,
    );
    let debug_str = DebugStr::new(
        section_named(object, b".debug_str").map_or(&[][..], |(_, data)| data),
        LittleEndian,
    );
    let string = |value: AttributeValue<gimli::EndianSlice<'_, LittleEndian>>| -> Option<String> {
        let bytes = match value {
            AttributeValue::String(s) => s,
            AttributeValue::DebugLineStrRef(offset) => line_str.get_str(offset).ok()?,
            AttributeValue::DebugStrRef(offset) => debug_str.get_str(offset).ok()?,
            _ => return None,
        };
        Some(String::from_utf8_lossy(bytes.slice()).into_owned())
    };
    let mut offset = 0usize;
    while offset < relocated.len() {
        let Ok(program) = debug_line.program(DebugLineOffset(offset), 8, None, None) else {
            return;
        };
        let header = program.header();
        let initial_length = match header.format() {
            gimli::Format::Dwarf32 => 4,
            gimli::Format::Dwarf64 => 12,
        };
        let Some(next) = offset
            .checked_add(initial_length)
            .and_then(|o| o.checked_add(header.unit_length()))
        else {
            return;
        };
        // File indices of this program to the object's file list.
        let mut file_map: HashMap<u64, u32> = HashMap::default();
        let mut rows = program.rows();
        let mut sequence: Vec<LineRow> = Vec::new();
        loop {
            let (header, row) = match rows.next_row() {
                Ok(Some(next)) => next,
                _ => break,
            };
            let address = TargetAddr(row.address());
            if row.end_sequence() {
                if let Some(first) = sequence.first() {
                    let start = first.address.get();
                    if link
                        .addresses
                        .placement
                        .contains(start, address.get().max(start + 1))
                    {
                        sequence.push(LineRow {
                            address,
                            file: LineRow::END,
                            line: 0,
                        });
                        symbols.lines.push(std::mem::take(&mut sequence));
                    }
                }
                sequence.clear();
                continue;
            }
            let file_index = row.file_index();
            let file = match file_map.get(&file_index) {
                Some(&file) => file,
                None => {
                    let name = header
                        .file(file_index)
                        .and_then(|entry| string(entry.path_name()))
                        .unwrap_or_else(|| "?".to_owned());
                    let file = symbols.files.len() as u32;
                    symbols.files.push(name);
                    file_map.insert(file_index, file);
                    file
                }
            };
            let line = row.line().map_or(0, |line| line.get()) as u32;
            // Rows at one address: the last one counts (as debuggers read them).
            if sequence.last().is_some_and(|last| last.address == address) {
                sequence.pop();
            }
            sequence.push(LineRow {
                address,
                file,
                line,
            });
        }
        offset = next;
    }
}
