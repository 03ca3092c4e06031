//! Static archives: which member defines which symbol, and the members' bytes.
//! Members are parsed only when the link pulls them in.

use crate::elf::{ObjectFile, LE};
use crate::error::{escape_bytes, escape_path, LinkError};
use crate::input::{MappedBytes, MappedFile};
use object::elf;
use object::read::archive::{ArchiveFile, ArchiveOffset};
use object::read::elf::Sym as _;
use std::path::Path;

/// A member of an archive, identified by its header's offset in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberRef {
    pub archive: u32,
    pub offset: u64,
}

/// One archive of the link.
pub struct Archive<'data> {
    /// The archive's path, escaped for messages and member names (`archive.a(member.o)`):
    /// once, rather than once per member loaded, 943 times for LLVM.
    path: String,
    data: &'data [u8],
    /// For a thin archive: each member's own file, by member name.
    thin_members: &'data [(Vec<u8>, MappedBytes)],
    archive: ArchiveFile<'data>,
}

impl<'data> Archive<'data> {
    pub fn parse(file: &'data MappedFile) -> Result<Archive<'data>, LinkError> {
        Archive::from_bytes(&file.path, file.data(), &file.thin_members)
    }

    /// An archive whose bytes are `data`; `path` is for messages.
    pub fn from_bytes(
        path: &'data Path,
        data: &'data [u8],
        thin_members: &'data [(Vec<u8>, MappedBytes)],
    ) -> Result<Archive<'data>, LinkError> {
        let archive = ArchiveFile::parse(data)
            .map_err(|e| LinkError::input(escape_path(path), format!("invalid archive: {e}")))?;
        Ok(Archive {
            path: escape_path(path),
            data,
            thin_members,
            archive,
        })
    }

    /// Every (symbol name, member) pair the archive offers, from its symbol index, or, for an
    /// archive without one, from the members' own symbol tables.
    pub fn symbol_index(
        &self,
        archive_id: u32,
    ) -> Result<Vec<(&'data [u8], MemberRef)>, LinkError> {
        let path = &self.path;
        let invalid_index =
            |e: object::Error| LinkError::input(path, format!("invalid archive symbol index: {e}"));
        let member_ref = |offset: ArchiveOffset| MemberRef {
            archive: archive_id,
            offset: offset.0,
        };
        if let Some(index) = gnu_symbol_index(self.data) {
            return Ok(index
                .into_iter()
                .map(|(name, offset)| (name, member_ref(ArchiveOffset(offset))))
                .collect());
        }
        if let Some(symbols) = self.archive.symbols().map_err(invalid_index)? {
            return symbols
                .map(|symbol| {
                    let symbol = symbol.map_err(invalid_index)?;
                    Ok((symbol.name(), member_ref(symbol.offset())))
                })
                .collect();
        }
        // No index (`ar rS`): read each member's symbol table for its global definitions.
        let mut index = Vec::new();
        for member in self.archive.members() {
            let member = member
                .map_err(|e| LinkError::input(path, format!("invalid archive member: {e}")))?;
            let offset = ArchiveOffset(member.file_range().0.saturating_sub(60));
            let (name, data) = self.member(offset)?;
            if !data.starts_with(b"\x7fELF") {
                continue;
            }
            let object = ObjectFile::parse(name, data)?;
            for symbol in object.symbols.iter().skip(object.first_global()) {
                let defined = symbol.st_shndx(LE) != elf::SHN_UNDEF;
                if defined && symbol.st_bind() != elf::STB_LOCAL {
                    index.push((object.symbol_name(symbol), member_ref(offset)));
                }
            }
        }
        Ok(index)
    }

    /// The display name (`archive.a(member.o)`) and bytes of the member at `offset`. ar
    /// aligns members to 2 bytes only: `object` is built with its `unaligned` feature, so ELF
    /// structures are read in place wherever they lie.
    pub fn member(&self, offset: ArchiveOffset) -> Result<(String, &'data [u8]), LinkError> {
        let path = &self.path;
        let member = self.archive.member(offset).map_err(|e| {
            LinkError::input(
                path,
                format!("invalid archive member at offset {}: {e}", offset.0),
            )
        })?;
        let member_name = escape_bytes(member.name());
        let name = format!("{path}({member_name})");
        let data = if member.is_thin() {
            self.thin_members
                .iter()
                .find(|(n, _)| n.as_slice() == member.name())
                .map(|(_, bytes)| bytes.data())
                .ok_or_else(|| LinkError::input(&name, "thin archive member was not mapped"))?
        } else {
            member
                .data(self.data)
                .map_err(|e| LinkError::input(&name, format!("truncated archive member: {e}")))?
        };
        Ok((name, data))
    }
}

/// The (name, member offset) pairs of a GNU archive's symbol table (a `/` member first in the
/// archive), read in one pass over the names; `None` if there is no such table or anything
/// about it is off, for `object`'s reader to read (or refuse) as before. That reader searches
/// for each name's end on its own, a third of the time spent reading LLVM's 85,120 names.
fn gnu_symbol_index(data: &[u8]) -> Option<Vec<(&[u8], u64)>> {
    const HEADER: usize = 60;
    let members = data
        .strip_prefix(b"!<arch>\n")
        .or_else(|| data.strip_prefix(b"!<thin>\n"))?;
    let header = members.get(..HEADER)?;
    if &header[..16] != b"/               " || &header[58..] != b"`\n" {
        return None;
    }
    let size: usize = std::str::from_utf8(&header[48..58])
        .ok()?
        .trim_end()
        .parse()
        .ok()?;
    let table = members.get(HEADER..HEADER.checked_add(size)?)?;
    let count = u32::from_be_bytes(table.get(..4)?.try_into().ok()?) as usize;
    let names_start = count.checked_mul(4)?.checked_add(4)?;
    let offsets = table.get(4..names_start)?;
    let names = table.get(names_start..)?;
    let mut ends = memchr::memchr_iter(0, names);
    let mut start = 0;
    let mut index = Vec::with_capacity(count);
    for offset in offsets.chunks_exact(4) {
        let end = ends.next()?;
        let offset = u32::from_be_bytes(offset.try_into().ok()?);
        index.push((names.get(start..end)?, u64::from(offset)));
        start = end + 1;
    }
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `object`'s reader makes of the archive's symbol table.
    fn object_index(data: &[u8]) -> Vec<(&[u8], u64)> {
        let archive = ArchiveFile::parse(data).unwrap();
        archive
            .symbols()
            .unwrap()
            .unwrap()
            .map(|symbol| {
                let symbol = symbol.unwrap();
                (symbol.name(), symbol.offset().0)
            })
            .collect()
    }

    /// A GNU archive of two members whose symbol table names `names` (all in the first).
    fn archive(names: &[&[u8]]) -> Vec<u8> {
        let member = |name: &str, body: &[u8]| {
            let mut bytes = format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                644,
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(body);
            if bytes.len() % 2 == 1 {
                bytes.push(b'\n');
            }
            bytes
        };
        let names_len: usize = names.iter().map(|name| name.len() + 1).sum();
        let table_len = 4 + 4 * names.len() + names_len;
        // The first member's header follows the magic and the (padded) table.
        let first = 8 + 60 + table_len + table_len % 2;
        let mut table = (names.len() as u32).to_be_bytes().to_vec();
        for _ in names {
            table.extend_from_slice(&(first as u32).to_be_bytes());
        }
        for name in names {
            table.extend_from_slice(name);
            table.push(0);
        }
        let mut data = b"!<arch>\n".to_vec();
        data.extend(member("/", &table));
        data.extend(member("a.o/", b"not an object"));
        data.extend(member("b.o/", b"nor this"));
        data
    }

    #[test]
    fn reads_the_gnu_symbol_table_as_object_does() {
        let data = archive(&[b"main", b"_ZN4llvm6detail9IEEEFloatC2Ed", b"x"]);
        let index = gnu_symbol_index(&data).unwrap();
        assert_eq!(index, object_index(&data));
        assert_eq!(index.len(), 3);
        let empty = archive(&[]);
        assert_eq!(gnu_symbol_index(&empty).unwrap(), object_index(&empty));
    }

    #[test]
    fn leaves_what_it_does_not_expect_to_object() {
        let data = archive(&[b"one", b"two"]);
        // Fewer names than the count says: the last one's end is missing.
        let names_end = 8 + 60 + 4 + 8 + b"one\0two\0".len();
        let mut short = data.clone();
        short[names_end - 1] = b'!';
        assert_eq!(gnu_symbol_index(&short), None);
        // A count whose offsets do not fit in the table.
        let mut huge = data.clone();
        huge[68..72].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(gnu_symbol_index(&huge), None);
        // No symbol table, or one in another format.
        assert_eq!(gnu_symbol_index(b"!<arch>\n"), None);
        let mut bsd = data.clone();
        bsd[8..24].copy_from_slice(b"__.SYMDEF       ");
        assert_eq!(gnu_symbol_index(&bsd), None);
        assert_eq!(gnu_symbol_index(b"\x7fELF"), None);
    }
}
