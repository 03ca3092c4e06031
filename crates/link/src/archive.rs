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
    path: &'data Path,
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
            path,
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
        let path = escape_path(self.path);
        let invalid_index = |e: object::Error| {
            LinkError::input(&path, format!("invalid archive symbol index: {e}"))
        };
        let member_ref = |offset: ArchiveOffset| MemberRef {
            archive: archive_id,
            offset: offset.0,
        };
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
                .map_err(|e| LinkError::input(&path, format!("invalid archive member: {e}")))?;
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
        let path = escape_path(self.path);
        let member = self.archive.member(offset).map_err(|e| {
            LinkError::input(
                &path,
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
