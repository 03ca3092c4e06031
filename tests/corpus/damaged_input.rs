//! Damaged inputs: a real object with bytes flipped at random must never crash rjitlink, and
//! the damaged inputs of testdata/damaged (fuzz findings kept as regression files) fail with
//! the one-line errors testdata/damaged/EXPECT names.

use crate::harness::process::{checked, expect_error, run_with_timeout};
use crate::harness::random::xorshift;
use crate::harness::rjitlink;
use crate::harness::scratch::scratch_dir;
use libtest_mimic::Trial;
use std::path::Path;
use std::process::Command;

/// One trial per file of testdata/damaged: `rjitlink run --noexec FILE libmain.a` must fail
/// with status 125 and one `rjitlink: error:` line holding the text EXPECT gives for the file.
/// Every file must be listed there, and everything listed must exist. The archive defines
/// `main` for inputs that do not (most fuzz findings), so that their links get past resolve;
/// its member is not loaded where the input defines `main` itself.
pub fn regression_trials() -> Vec<Trial> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/damaged");
    let index = std::fs::read_to_string(dir.join("EXPECT"))
        .unwrap_or_else(|e| panic!("cannot read testdata/damaged/EXPECT: {e}"));
    let expected: Vec<(String, String)> = index
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, text) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("testdata/damaged/EXPECT: no `NAME: TEXT` in {line}"));
            (name.to_owned(), text.to_owned())
        })
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "EXPECT")
        .collect();
    files.sort();
    let mut trials = Vec::new();
    for name in files {
        let path = dir.join(&name);
        let text = expected
            .iter()
            .find(|(listed, _)| *listed == name)
            .map(|(_, text)| text.clone());
        trials.push(Trial::test(format!("errors::damaged::{name}"), move || {
            let text = text.ok_or("not listed in testdata/damaged/EXPECT")?;
            let main = main_archive(&name)?;
            expect_error(
                Command::new(rjitlink())
                    .args(["run", "--noexec"])
                    .arg(&path)
                    .arg(main),
                &text,
            )
        }));
    }
    for (name, _) in expected {
        if !dir.join(&name).exists() {
            trials.push(Trial::test(format!("errors::damaged::{name}"), move || {
                Err(format!("testdata/damaged/EXPECT lists {name}, which does not exist").into())
            }));
        }
    }
    trials
}

/// An archive whose one member defines `main`, in a scratch directory of its own.
fn main_archive(case: &str) -> Result<std::path::PathBuf, libtest_mimic::Failed> {
    let dir = scratch_dir(&format!("damaged-{case}"));
    let source = dir.join("main.s");
    std::fs::write(
        &source,
        ".text\n.globl main\nmain:\n  xorl %eax, %eax\n  ret\n.section .note.GNU-stack,\"\",@progbits\n",
    )
    .map_err(|e| e.to_string())?;
    let object = dir.join("main.o");
    checked(Command::new("as").arg(&source).arg("-o").arg(&object))?;
    let archive = dir.join("libmain.a");
    checked(Command::new("ar").arg("rcs").arg(&archive).arg(&object))?;
    Ok(archive)
}

/// Damaged inputs: bytes of a real object flipped at random (a fixed seed, so failures
/// reproduce). Linking must fail with rjitlink's error status or succeed — never panic, never
/// crash. `--noexec`: the damaged code is not run.
pub fn trials() -> Vec<Trial> {
    vec![Trial::test("errors::damaged_objects_never_crash", || {
        let dir = scratch_dir("damaged");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/c/pointer_tables.c");
        let object = dir.join("good.o");
        checked(
            Command::new("cc")
                .args(["-c", "-O2", "-fPIC"])
                .arg(&source)
                .arg("-o")
                .arg(&object),
        )?;
        let good = std::fs::read(&object).map_err(|e| e.to_string())?;
        let mut next = xorshift(0x853c_49e6_748f_ea9b);
        let damaged = dir.join("damaged.o");
        for round in 0..300 {
            let mut bytes = good.clone();
            // A few flips, biased to the ELF header and the section table at the end, where
            // offsets and sizes live.
            for _ in 0..1 + next() % 4 {
                let at = match next() % 3 {
                    0 => next() as usize % 64,
                    1 => bytes.len() - 1 - next() as usize % (bytes.len() / 4),
                    _ => next() as usize % bytes.len(),
                };
                bytes[at] ^= 1 << (next() % 8);
            }
            std::fs::write(&damaged, &bytes).map_err(|e| e.to_string())?;
            let output = run_with_timeout(
                Command::new(rjitlink())
                    .args(["run", "--noexec"])
                    .arg(&damaged),
            )?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let ok = match output.status.code() {
                Some(0) => true,
                Some(125) => {
                    stderr.starts_with("rjitlink: error: ") && !stderr.contains("panicked")
                }
                _ => false,
            };
            if !ok {
                let keep = dir.join(format!("crash-{round}.o"));
                let _ = std::fs::write(&keep, &bytes);
                return Err(format!(
                    "round {round}: {} ({}); input kept as {}",
                    output.status,
                    stderr.trim(),
                    keep.display()
                )
                .into());
            }
        }
        Ok(())
    })]
}
