//! Command-line trials: -l and -L search, --entry, --noexec, slab size and address, usage
//! errors, warnings.

use crate::harness::case::{Build, Case};
use crate::harness::process::{checked, expect_error, expect_errors, run_with_timeout};
use crate::harness::rjitlink;
use libtest_mimic::{Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Command-line behaviour: -l search, --entry, --noexec, usage errors.
pub fn trials() -> Vec<Trial> {
    // Programs of testdata/c, or of testdata/cli where their output differs from a native
    // run by design.
    let source = |name: &str| {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let in_c = testdata.join("c").join(name);
        if in_c.exists() {
            in_c
        } else {
            testdata.join("cli").join(name)
        }
    };
    vec![
        Trial::test("cli::executable_stack_warns_as_ld_does", move || {
            let case = Case::new(&source("nested_function.c"), Build::O0)?;
            // ld's own words, from a native link of the same object.
            let native = checked(
                Command::new("cc")
                    .args(&case.inputs)
                    .arg("-o")
                    .arg(case.dir.join("native")),
            )?;
            let native_stderr = String::from_utf8_lossy(&native.stderr);
            let ld_says = native_stderr
                .lines()
                .find_map(|line| line.split_once("nested_function.o: ").map(|(_, why)| why))
                .ok_or_else(|| format!("ld gave no warning: {native_stderr}"))?;
            let output = checked(&mut case.rjitlink_command(&["--noexec"]))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let expected = format!("nested_function.o: {ld_says}");
            match stderr.lines().collect::<Vec<_>>()[..] {
                [line] if line.starts_with("rjitlink: warning: ") && line.ends_with(&expected) => {
                    Ok(())
                }
                _ => {
                    Err(format!("expected one warning ending `{expected}`, got:\n{stderr}").into())
                }
            }
        }),
        Trial::test(
            "cli::missing_stack_note_in_archive_warns_as_ld_does",
            move || {
                let case = Case::new(&source("stack_note_missing.c"), Build::O0)?;
                // ld names the member alone, rjitlink the archive and the member.
                let native = case.dir.join("native");
                let mut command = Command::new("cc");
                command.args(&case.inputs).arg("-o").arg(&native);
                let native_stderr =
                    String::from_utf8_lossy(&checked(&mut command)?.stderr).into_owned();
                let ld_says = native_stderr
                    .lines()
                    .find_map(|line| line.split_once("no_stack_note.o: ").map(|(_, why)| why))
                    .ok_or_else(|| format!("ld gave no warning: {native_stderr}"))?;
                let expected = format!("(no_stack_note.o): {ld_says}");
                let jit = run_with_timeout(&mut case.rjitlink_command(&[]))?;
                let stderr = String::from_utf8_lossy(&jit.stderr);
                let warned = matches!(stderr.lines().collect::<Vec<_>>()[..],
                    [line] if line.starts_with("rjitlink: warning: ") && line.ends_with(&expected));
                if !warned {
                    let problem =
                        format!("expected one warning ending `{expected}`, got:\n{stderr}");
                    return Err(problem.into());
                }
                // Both stacks executable: `stack rwxp`.
                let native = run_with_timeout(&mut Command::new(native))?;
                if jit.stdout != native.stdout || !native.stdout.ends_with(b"stack rwxp\n") {
                    return Err(
                        format!("differs from the native run: {jit:?} vs {native:?}").into(),
                    );
                }
                Ok(())
            },
        ),
        Trial::test("cli::missing_library", move || {
            let case = Case::new(&source("hello.c"), Build::O0)?;
            expect_error(
                &mut case.rjitlink_command(&["-lrjitlink_no_such_library"]),
                "cannot find -lrjitlink_no_such_library",
            )
        }),
        Trial::test("cli::missing_entry", move || {
            let case = Case::new(&source("hello.c"), Build::O0)?;
            expect_error(
                &mut case.rjitlink_command(&["--entry", "no_such_entry"]),
                "undefined symbol `no_such_entry` (referenced by the entry point)",
            )
        }),
        Trial::test("cli::usage_error_is_125", move || {
            let output =
                run_with_timeout(Command::new(rjitlink()).args(["run", "--no-such-flag"]))?;
            match output.status.code() {
                Some(125) => Ok(()),
                other => Err(format!("expected 125, got {other:?}").into()),
            }
        }),
        Trial::test("cli::noexec_links_without_running", move || {
            let case = Case::new(&source("hello.c"), Build::O0)?;
            let output = checked(&mut case.rjitlink_command(&["--noexec"]))?;
            if !output.stdout.is_empty() {
                return Err("--noexec ran the program".into());
            }
            Ok(())
        }),
        Trial::test("cli::entry_runs_another_function", move || {
            let case = Case::new(&source("entry_point.c"), Build::O0)?;
            let output =
                run_with_timeout(&mut case.rjitlink_command(&["--entry", "alternate_main"]))?;
            // alternate_main prints its own name and returns 9, as the source says.
            if output.stdout != b"alternate_main\n" || output.status.code() != Some(9) {
                return Err(format!("unexpected result: {output:?}").into());
            }
            Ok(())
        }),
        Trial::test("cli::thin_archive_and_archive_without_index", move || {
            let case = Case::new(&source("archive_chain.c"), Build::O0)?;
            let native = run_with_timeout(&mut Command::new(case.link_native()?))?;
            let members: Vec<PathBuf> =
                ["chain_first", "chain_second", "chain_third", "chain_unused"]
                    .iter()
                    .map(|m| case.dir.join(format!("{m}.o")))
                    .collect();
            for (flags, name) in [("rcsT", "libthin.a"), ("rcS", "libnoindex.a")] {
                let archive = case.dir.join(name);
                checked(Command::new("ar").arg(flags).arg(&archive).args(&members))?;
                let mut command = Command::new(rjitlink());
                command.arg("run").arg(&case.inputs[0]).arg(&archive);
                let jit = run_with_timeout(&mut command)?;
                if jit.stdout != native.stdout || jit.status.code() != native.status.code() {
                    return Err(format!("{name} differs: {jit:?} vs {native:?}").into());
                }
            }
            Ok(())
        }),
        Trial::test("cli::shared_library_by_path", move || {
            let mut case = Case::new(&source("math_functions.c"), Build::O0)?;
            let native = run_with_timeout(&mut Command::new(case.link_native()?))?;
            case.libs = vec!["/lib/x86_64-linux-gnu/libm.so.6".to_owned()];
            let jit = run_with_timeout(&mut case.rjitlink_command(&[]))?;
            if jit.stdout != native.stdout || jit.status.code() != native.status.code() {
                return Err(format!("differs: {jit:?} vs {native:?}").into());
            }
            Ok(())
        }),
        Trial::test("cli::math_without_libm_is_undefined", move || {
            // As with cc, libm's functions are not there unless -lm is given.
            let mut case = Case::new(&source("math_functions.c"), Build::O0)?;
            case.libs.clear();
            // One line per missing function: math_functions.c calls 14, less sqrt(2.0), which
            // gcc folds to a constant; each line names the object and the function that
            // reference it, and the library that defines it.
            let object = case.inputs[0].display().to_string();
            let expected =
                format!("` (referenced by {object} in function 'main'); it is in libm: add -lm");
            expect_errors(&mut case.rjitlink_command(&[]), &[expected.as_str(); 13])
        }),
        Trial::test("cli::slab_exhausted", move || {
            // large_bss.c has 8 MiB of zero-fill data: it cannot fit a 1 MiB slab.
            let case = Case::new(&source("large_bss.c"), Build::O0)?;
            expect_error(
                &mut case.rjitlink_command(&["--slab-size", "1M"]),
                "slab exhausted: the link needs 0x",
            )?;
            expect_error(
                &mut case.rjitlink_command(&["--slab-size", "1M"]),
                "raise --slab-size",
            )
        }),
        Trial::test("cli::slab_address_is_honoured", move || {
            let case = Case::new(&source("code_address.c"), Build::O0)?;
            // code_address.c prints the address of its main: it must lie in the slab.
            let output = checked(&mut case.rjitlink_command(&["--slab-address", "0x340000000"]))?;
            let address = printed_address(&output)?;
            if !(0x340000000..0x340000000 + (1 << 30)).contains(&address) {
                return Err(
                    format!("main at {address:#x}, outside the slab at 0x340000000").into(),
                );
            }
            Ok(())
        }),
        Trial::test("cli::slab_address_unusable", move || {
            let case = Case::new(&source("hello.c"), Build::O0)?;
            // Beyond the 47-bit user address space.
            expect_error(
                &mut case.rjitlink_command(&["--slab-address", "0x900000000000"]),
                "cannot reserve 0x40000000 bytes at 0x900000000000",
            )
        }),
        Trial::test("cli::low_slab_too_large", move || {
            // Non-PIC code needs the whole slab below 2 GiB: a 3 GiB slab cannot be.
            let case = Case::new(&source("hello.c"), Build::O2NoPic)?;
            expect_error(
                &mut case.rjitlink_command(&["--slab-size", "3G"]),
                "cannot reserve 0xc0000000 bytes below 2 GiB",
            )
        }),
        Trial::test("cli::non_pic_code_runs_below_2gib", move || {
            let case = Case::new(&source("code_address.c"), Build::O2NoPic)?;
            let output = checked(&mut case.rjitlink_command(&[]))?;
            let address = printed_address(&output)?;
            if address >= 1 << 31 {
                return Err(format!("non-PIC main at {address:#x}, above 2 GiB").into());
            }
            Ok(())
        }),
        Trial::test("cli::library_by_path_and_search_dir", move || {
            // -L DIR -l NAME finds a static archive, as cc does.
            let case = Case::new(&source("archive_chain.c"), Build::O0)?;
            let archive = case.inputs.last().unwrap().clone();
            let name = archive
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("lib")
                .to_owned();
            let mut command = Command::new(rjitlink());
            command
                .arg("run")
                .args(&case.inputs[..case.inputs.len() - 1])
                .arg("-L")
                .arg(archive.parent().unwrap())
                .arg(format!("-l{name}"));
            let jit = run_with_timeout(&mut command)?;
            let native = run_with_timeout(&mut Command::new(case.link_native()?))?;
            if jit.stdout != native.stdout || jit.status.code() != native.status.code() {
                return Err(format!("differs: {jit:?} vs {native:?}").into());
            }
            Ok(())
        }),
    ]
}

/// The address code_address.c prints.
fn printed_address(output: &Output) -> Result<u64, Failed> {
    let text = String::from_utf8_lossy(&output.stdout);
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .map_err(|e| format!("{text}: {e}").into())
}
