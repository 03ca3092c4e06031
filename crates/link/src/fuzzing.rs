//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature): the readers of
//! untrusted bytes that the link reaches only through files, callable on bytes directly. Each
//! must return, never panic, whatever the bytes.

use crate::archive::Archive;
use crate::elf::ObjectFile;
use crate::error::LinkError;
use object::read::archive::ArchiveOffset;
use std::path::Path;

/// Read `data` as an archive as the link does: its symbol index (or, without one, its
/// members' symbol tables), then every member the index names, parsed as an object where it
/// looks like one. Returns how many members were read, or the first error.
pub fn read_archive(data: &[u8]) -> Result<usize, LinkError> {
    let archive = Archive::from_bytes(Path::new("fuzz.a"), data, &[])?;
    let mut read = 0;
    for (_, member) in archive.symbol_index(0)? {
        let (name, bytes) = archive.member(ArchiveOffset(member.offset))?;
        if bytes.starts_with(b"\x7fELF") {
            let object = ObjectFile::parse(name, bytes)?;
            for index in 0..object.symbols.len() {
                let _ = object.describe_symbol(index);
            }
        }
        read += 1;
    }
    Ok(read)
}

/// Whether `data` is taken for a linker script, and if so the inputs it names (debug-printed),
/// or the parser's complaint.
pub fn parse_linker_script(data: &[u8]) -> Option<Result<Vec<String>, &'static str>> {
    let text = crate::input::linker_script_text(data)?;
    Some(crate::input::parse_linker_script(text).map(|entries| {
        entries
            .into_iter()
            .map(|entry| format!("{entry:?}"))
            .collect()
    }))
}
