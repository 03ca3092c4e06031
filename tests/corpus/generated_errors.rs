//! Error trials on inputs made by damaging a good object: wrong machine, 32-bit, truncated,
//! empty, missing, unknown relocation type.

use crate::harness::process::{checked, expect_error};
use crate::harness::rjitlink;
use crate::harness::scratch::scratch_dir;
use libtest_mimic::{Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Error tests on inputs made by damaging a good object.
pub fn trials() -> Vec<Trial> {
    let hello = || Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/c/hello.c");
    let build_hello = move |dir: &Path| -> Result<(PathBuf, Vec<u8>), Failed> {
        let object = dir.join("hello.o");
        checked(
            Command::new("cc")
                .arg("-c")
                .arg(hello())
                .arg("-o")
                .arg(&object),
        )?;
        let bytes = std::fs::read(&object).map_err(|e| e.to_string())?;
        Ok((object, bytes))
    };
    let run = |inputs: &[&Path]| {
        let mut command = Command::new(rjitlink());
        command.arg("run").args(inputs);
        command
    };
    vec![
        Trial::test("errors::generated::wrong_machine", move || {
            let dir = scratch_dir("wrong-machine");
            let (object, mut bytes) = build_hello(&dir)?;
            // e_machine (offset 18) = EM_AARCH64.
            bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
            std::fs::write(&object, bytes).map_err(|e| e.to_string())?;
            expect_error(
                &mut run(&[&object]),
                "hello.o: wrong machine: AArch64 (e_machine 183)",
            )
        }),
        Trial::test("errors::generated::elf32_i386", move || {
            let dir = scratch_dir("elf32");
            let source = dir.join("ret.s");
            std::fs::write(&source, ".globl main\nmain: xorl %eax, %eax\nret\n")
                .map_err(|e| e.to_string())?;
            let object = dir.join("ret32.o");
            checked(
                Command::new("as")
                    .arg("--32")
                    .arg(&source)
                    .arg("-o")
                    .arg(&object),
            )?;
            expect_error(&mut run(&[&object]), "ret32.o: 32-bit ELF object for i386")
        }),
        Trial::test("errors::generated::truncated", move || {
            let dir = scratch_dir("truncated");
            let (object, bytes) = build_hello(&dir)?;
            // Keep the header and part of the contents: the section table is cut off.
            std::fs::write(&object, &bytes[..bytes.len() / 2]).map_err(|e| e.to_string())?;
            expect_error(
                &mut run(&[&object]),
                "hello.o: invalid section table (truncated file?)",
            )
        }),
        Trial::test("errors::generated::truncated_header", move || {
            let dir = scratch_dir("truncated-header");
            let (object, bytes) = build_hello(&dir)?;
            std::fs::write(&object, &bytes[..30]).map_err(|e| e.to_string())?;
            expect_error(&mut run(&[&object]), "hello.o: invalid ELF header")
        }),
        Trial::test("errors::generated::unknown_relocation", move || {
            let dir = scratch_dir("unknown-relocation");
            let (object, mut bytes) = build_hello(&dir)?;
            let offset = first_rela_info(&bytes)?;
            // r_type is the low 32 bits of r_info; 200 is no x86-64 relocation type.
            bytes[offset..offset + 4].copy_from_slice(&200u32.to_le_bytes());
            std::fs::write(&object, bytes).map_err(|e| e.to_string())?;
            expect_error(&mut run(&[&object]), "hello.o: .text+0x")?;
            expect_error(&mut run(&[&object]), ": unknown relocation type 200")
        }),
        Trial::test("errors::generated::empty_file", move || {
            let dir = scratch_dir("empty");
            let object = dir.join("empty.o");
            std::fs::write(&object, b"").map_err(|e| e.to_string())?;
            expect_error(&mut run(&[&object]), "empty.o: file is empty")
        }),
        Trial::test("errors::generated::missing_file", move || {
            let dir = scratch_dir("missing");
            expect_error(&mut run(&[&dir.join("nope.o")]), "cannot open")
        }),
    ]
}

/// The file offset of r_info in the first relocation for .text of an ELF64 object.
fn first_rela_info(bytes: &[u8]) -> Result<usize, Failed> {
    use object::read::elf::{FileHeader, SectionHeader};
    type Elf = object::elf::FileHeader64<object::LittleEndian>;
    let endian = object::LittleEndian;
    let header = Elf::parse(bytes).map_err(|e| e.to_string())?;
    let sections = header.sections(endian, bytes).map_err(|e| e.to_string())?;
    for section in sections.iter() {
        let name = sections.section_name(endian, section).unwrap_or_default();
        if section.sh_type(endian) == object::elf::SHT_RELA && name == b".rela.text" {
            // Rela64: r_offset (8 bytes), then r_info.
            return Ok(section.sh_offset(endian) as usize + 8);
        }
    }
    Err("no .rela.text".into())
}
