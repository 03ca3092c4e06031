//! Names for linked code: what a unit keeps of its link so that a crash report (and perf) can
//! say `function+0xOFF (file:line) [object]` — the objects' function symbols with their sizes,
//! and the rows of their DWARF line tables where they were built with `-g` — handed to the
//! executor as the unit goes live and taken back when it is freed. `Session::link` builds them
//! after apply (its `symbols` phase, `collect`); the plugins here and in `perf` use them.
//!
//! Line tables of relocatable objects hold section-relative addresses (relocations against the
//! sections' symbols): each object's `.debug_line` is copied and its relocations applied with
//! the sections' final addresses; its rows are read with gimli only when first needed (a
//! crash, a jitdump), which keeps a `-g` link cheap. Objects without debug information cost
//! only the walk over their symbol table.

use super::{LinkContext, Plugin};
use crate::addresses::{defined_address, ImagePlacement};
use crate::elf::{ObjectFile, LE};
use crate::error::LinkError;
use crate::ids::ObjectId;
use crate::sections::SegmentKind;
use foldhash::HashMap;
use gimli::{AttributeValue, DebugLine, DebugLineOffset, DebugLineStr, LittleEndian};
use object::elf;
use object::read::elf::{Rela as _, SectionHeader as _, Sym as _};
use rayon::prelude::*;
use rjitlink_memory::TargetAddr;
use rjitlink_target::symbolize::{FunctionSymbol, LineRow, LineSource, LineTable};
use rjitlink_target::{Executor, UnitSymbols};
use std::sync::{Arc, OnceLock};

/// A unit's symbols once built, for the plugins that use them after `symbols` (perf).
pub type SharedSymbols = Arc<OnceLock<Arc<UnitSymbols>>>;

/// Keeps the unit's symbols in the executor while it lives.
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

/// What one object contributes, with names numbered locally.
#[derive(Default)]
struct ObjectSymbols {
    functions: Vec<FunctionSymbol>,
    names: String,
    lines: Option<ObjectLines>,
}

/// An object's line tables, relocated, with the strings they name, not read yet.
struct ObjectLines {
    debug_line: Vec<u8>,
    line_str: Vec<u8>,
}

/// The line tables of a unit's objects, read into rows on first use.
struct UnitLines {
    objects: Vec<ObjectLines>,
    placement: ImagePlacement,
}

impl LineSource for UnitLines {
    fn read(&self) -> LineTable {
        let mut table = LineTable::default();
        let mut sequences: Vec<Vec<LineRow>> = Vec::new();
        let mut file_ids: HashMap<String, u32> = HashMap::default();
        for object in &self.objects {
            let (files, object_sequences) = read_rows(object, &self.placement);
            let local_files: Vec<u32> = files
                .into_iter()
                .map(|file| {
                    let next = table.files.len() as u32;
                    *file_ids.entry(file.clone()).or_insert_with(|| {
                        table.files.push(file);
                        next
                    })
                })
                .collect();
            for mut sequence in object_sequences {
                for row in &mut sequence {
                    if row.file != LineRow::END {
                        row.file = local_files.get(row.file as usize).copied().unwrap_or(0);
                    }
                }
                sequences.push(sequence);
            }
        }
        sequences.sort_unstable_by_key(|sequence| sequence[0].address);
        table.rows = sequences.concat();
        table
    }
}

/// The unit's symbols: every object's function symbols, merged and sorted, and their line
/// tables, to be read when needed.
pub fn collect(link: &LinkContext<'_, '_>) -> UnitSymbols {
    let per_object: Vec<ObjectSymbols> = link
        .db
        .objects
        .par_iter()
        .enumerate()
        .map(|(index, object)| {
            let id = ObjectId::from_index(index);
            let mut symbols = functions(link, object, id);
            symbols.functions.sort_unstable_by_key(function_order);
            symbols.lines = object_lines(link, object, id);
            symbols
        })
        .collect();
    let code = link.addresses.placement.segment(SegmentKind::Code);
    let mut unit = UnitSymbols::default();
    unit.code = (
        code,
        code + link.layout.segments[SegmentKind::Code as usize].size,
    );
    unit.objects = link.db.objects.iter().map(|o| o.name.clone()).collect();
    let mut lines = Vec::new();
    unit.functions
        .reserve(per_object.iter().map(|object| object.functions.len()).sum());
    unit.names.reserve(per_object.len());
    for object in per_object {
        unit.functions.extend(object.functions);
        unit.names.push(object.names);
        lines.extend(object.lines);
    }
    // Each object's functions come sorted (in parallel), and objects mostly lie in link
    // order: the stable sort, which finds sorted runs, has little left to do.
    unit.functions.sort_by_key(function_order);
    if !lines.is_empty() {
        unit.line_source = Some(Box::new(UnitLines {
            objects: lines,
            placement: link.addresses.placement,
        }));
    }
    unit
}

/// The order of `UnitSymbols::functions`: by address, and among functions at one address
/// (aliases) the one with a size last, as lookups take the last function starting at or
/// before an address.
fn function_order(function: &FunctionSymbol) -> (TargetAddr, bool) {
    (function.address, function.size != 0)
}

/// The object's function symbols in loaded sections: typed functions (local ones too), and
/// global untyped symbols in code sections (assembly without `.type`).
fn functions(link: &LinkContext<'_, '_>, object: &ObjectFile<'_>, id: ObjectId) -> ObjectSymbols {
    // Sized once: growing would copy the functions again.
    let mut symbols = ObjectSymbols {
        functions: Vec::with_capacity(object.symbols.len()),
        names: String::new(),
        lines: None,
    };
    // Each section's address, looked up once: an object's functions share a few sections.
    let mut section_addresses: Vec<Option<Option<TargetAddr>>> = vec![None; object.sections.len()];
    for (index, symbol) in object.symbols.symbols().iter().enumerate().skip(1) {
        // Most symbols are undefined or data: ruled out before anything is looked up.
        let kind = symbol.st_type();
        let shndx = symbol.st_shndx(LE);
        if shndx == elf::SHN_UNDEF
            || !matches!(kind, elf::STT_FUNC | elf::STT_GNU_IFUNC | elf::STT_NOTYPE)
            || (kind == elf::STT_NOTYPE && symbol.st_bind() == elf::STB_LOCAL)
        {
            continue;
        }
        let Some(section) = object
            .symbol_section(index, symbol)
            .filter(|&section| section < object.sections.len())
        else {
            continue;
        };
        // Untyped globals count only in code (assembly without `.type`).
        if kind == elf::STT_NOTYPE
            && object.section(section).sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) == 0
        {
            continue;
        }
        let base = *section_addresses[section].get_or_insert_with(|| {
            link.layout
                .section_offset(id, section)
                .map(|offset| link.addresses.at(offset))
        });
        let Some(base) = base else {
            continue;
        };
        let name = object.symbol_name(symbol);
        if name.is_empty() {
            continue;
        }
        // A function names only bytes of its section: a symbol past the section's end, or a
        // size reaching past it (a damaged or hand-written object, which ld links), would
        // have the jitdump copy memory that is not the unit's.
        let (value, section_size) = (symbol.st_value(LE), object.section(section).sh_size(LE));
        let size = symbol.st_size(LE);
        let Some(room) = section_size
            .checked_sub(value)
            .filter(|&room| room > 0 || size == 0)
        else {
            continue;
        };
        let start = symbols.names.len() as u32;
        match std::str::from_utf8(name) {
            Ok(name) => symbols.names.push_str(name),
            Err(_) => symbols.names.push_str(&String::from_utf8_lossy(name)),
        }
        symbols.functions.push(FunctionSymbol {
            // From the section's own start, as `defined_address` computes it.
            address: base + value,
            size: size.min(room),
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

/// The object's line tables, relocated, if it has any.
fn object_lines(
    link: &LinkContext<'_, '_>,
    object: &ObjectFile<'_>,
    id: ObjectId,
) -> Option<ObjectLines> {
    let (index, bytes) = section_named(object, b".debug_line")?;
    Some(ObjectLines {
        debug_line: relocated_debug_line(link, object, id, index, bytes),
        line_str: section_named(object, b".debug_line_str")
            .map_or_else(Vec::new, |(_, data)| data.to_vec()),
    })
}

/// The rows of an object's line tables: its files, and its sequences of rows (sequences of
/// code that is not in the image dropped). A table gimli cannot read ends the reading: names
/// matter less than the link.
fn read_rows(object: &ObjectLines, placement: &ImagePlacement) -> (Vec<String>, Vec<Vec<LineRow>>) {
    let mut files: Vec<String> = Vec::new();
    let mut sequences: Vec<Vec<LineRow>> = Vec::new();
    let debug_line = DebugLine::new(&object.debug_line, LittleEndian);
    let line_str = DebugLineStr::new(&object.line_str, LittleEndian);
    let string = |value: AttributeValue<gimli::EndianSlice<'_, LittleEndian>>| -> Option<String> {
        let bytes = match value {
            AttributeValue::String(s) => s,
            AttributeValue::DebugLineStrRef(offset) => line_str.get_str(offset).ok()?,
            _ => return None,
        };
        Some(String::from_utf8_lossy(bytes.slice()).into_owned())
    };
    let mut offset = 0usize;
    while offset < object.debug_line.len() {
        let Ok(program) = debug_line.program(DebugLineOffset(offset), 8, None, None) else {
            break;
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
            break;
        };
        // File indices of this program to the object's file list.
        let mut file_map: HashMap<u64, u32> = HashMap::default();
        let mut rows = program.rows();
        let mut sequence: Vec<LineRow> = Vec::new();
        while let Ok(Some((header, row))) = rows.next_row() {
            let address = TargetAddr(row.address());
            if row.end_sequence() {
                if let Some(first) = sequence.first() {
                    let start = first.address.get();
                    if placement.contains(start, address.get().max(start + 1)) {
                        sequence.push(LineRow {
                            address,
                            file: LineRow::END,
                            line: 0,
                        });
                        sequences.push(std::mem::take(&mut sequence));
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
                    let file = files.len() as u32;
                    files.push(name);
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
    (files, sequences)
}
