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

/// Check `data` as one `.eh_frame` section of a linked image, by the quick check of the
/// common record forms and by the full one (gimli). Panics if the quick check accepts what the
/// full one refuses: it may only ever accept less. Returns whether the full check accepts.
pub fn check_unwind_table(data: &[u8]) -> bool {
    // The table right after 64 KiB of code, which its FDEs may describe.
    const TABLE: u64 = 0x41_0000;
    const CODE: std::ops::Range<u64> = 0x40_0000..0x41_0000;
    let within = |start: u64, end: u64| start >= CODE.start && end <= CODE.end;
    let (quick, full) = crate::plugins::both_unwind_checks(data, TABLE, CODE.start, within);
    assert!(
        !quick || full.is_ok(),
        "the quick unwind check accepts a table the full check refuses: {full:?}"
    );
    full.is_ok()
}
