//! Building testdata programs, running them natively and under rjitlink, and comparing.

use libtest_mimic::{Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any one program may run before the test fails (a hang is a failure, not a wait).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The rjitlink binary under test.
pub fn rjitlink() -> &'static str {
    env!("CARGO_BIN_EXE_rjitlink")
}

/// How a test's sources are compiled.
#[derive(Clone, Copy, Debug)]
pub enum Build {
    /// C at -O0: the compiler's default (PIE) code.
    O0,
    /// C at -O2 -fPIC.
    O2Pic,
    /// C at -O2 -fno-pic -fno-pie: 32-bit absolute addresses, linked natively with -no-pie.
    O2NoPic,
    /// Assembly.
    Asm,
}

impl Build {
    pub fn name(self) -> &'static str {
        match self {
            Build::O0 => "O0",
            Build::O2Pic => "O2-fPIC",
            Build::O2NoPic => "O2-fno-pic",
            Build::Asm => "asm",
        }
    }

    pub fn for_source(source: &Path) -> Build {
        match source.extension().and_then(|e| e.to_str()) {
            Some("s") => Build::Asm,
            _ => Build::O0,
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Build::O0 => &["-O0"],
            Build::O2Pic => &["-O2", "-fPIC"],
            Build::O2NoPic => &["-O2", "-fno-pic", "-fno-pie"],
            Build::Asm => &[],
        }
    }
}

/// Directive comments of a testdata file.
pub struct Directives(Vec<(String, String)>);

impl Directives {
    pub fn parse(source: &Path) -> Result<Directives, Failed> {
        let text = std::fs::read_to_string(source)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        let directives = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let body = line
                    .strip_prefix("//#")
                    .or_else(|| line.strip_prefix("##"))?;
                let (key, value) = body.split_once(':')?;
                Some((key.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        Ok(Directives(directives))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn words(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// A fresh directory for one test's build products.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create scratch directory");
    dir
}

/// Run a command to completion, failing the test if it does not succeed.
pub fn checked(command: &mut Command) -> Result<Output, Failed> {
    let output = run_with_timeout(command)?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

/// Run a command with no stdin and the test timeout; a hang fails the test.
pub fn run_with_timeout(command: &mut Command) -> Result<Output, Failed> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let start = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string().into());
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{command:?} did not finish within {RUN_TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One testdata program, compiled and ready to link.
pub struct Case {
    pub dir: PathBuf,
    /// Objects, then the archive (if any), in link order.
    pub inputs: Vec<PathBuf>,
    pub libs: Vec<String>,
    pub args: Vec<String>,
    native_ldflags: Vec<String>,
}

impl Case {
    pub fn new(source: &Path, build: Build) -> Result<Case, Failed> {
        let directives = Directives::parse(source)?;
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = scratch_dir(&format!("{stem}-{}", build.name()));
        let base = source.parent().unwrap();
        let cflags = directives.words("cflags");
        let asflags = directives.words("asflags");
        let compile = |file: &Path| -> Result<PathBuf, Failed> {
            let object = dir.join(format!("{}.o", file.file_stem().unwrap().to_string_lossy()));
            let mut command = if file.extension().is_some_and(|e| e == "s") {
                let mut command = Command::new("as");
                command.args(&asflags);
                command
            } else {
                let mut command = Command::new("cc");
                command.arg("-c").args(build.flags()).args(&cflags);
                command
            };
            checked(command.arg(file).arg("-o").arg(&object))?;
            Ok(object)
        };

        let is_source = |file: &Path| file.extension().is_some_and(|e| e == "c" || e == "s");
        let mut inputs = vec![if is_source(source) {
            compile(source)?
        } else {
            source.to_owned()
        }];
        for extra in directives.words("with") {
            inputs.push(compile(&base.join(extra))?);
        }
        let members = directives
            .words("archive")
            .iter()
            .map(|member| compile(&base.join(member)))
            .collect::<Result<Vec<_>, _>>()?;
        if !members.is_empty() {
            let archive = dir.join(format!("lib{stem}.a"));
            checked(Command::new("ar").arg("rcs").arg(&archive).args(&members))?;
            inputs.push(archive);
        }
        let mut native_ldflags = directives.words("native-ldflags");
        if matches!(build, Build::O2NoPic) {
            native_ldflags.push("-no-pie".to_owned());
        }
        Ok(Case {
            dir,
            inputs,
            libs: directives.words("libs"),
            args: directives.words("args"),
            native_ldflags,
        })
    }

    /// The program built by the system linker.
    pub fn link_native(&self) -> Result<PathBuf, Failed> {
        let exe = self.dir.join("native");
        checked(
            Command::new("cc")
                .args(&self.native_ldflags)
                .args(&self.inputs)
                .args(&self.libs)
                .arg("-o")
                .arg(&exe),
        )?;
        Ok(exe)
    }

    /// `rjitlink run INPUTS LIBS EXTRA -- ARGS`.
    pub fn rjitlink_command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(rjitlink());
        command
            .arg("run")
            .args(&self.inputs)
            .args(&self.libs)
            .args(extra)
            .arg("--")
            .args(&self.args);
        command
    }

    /// Run natively and with rjitlink; stdout and exit status must agree.
    pub fn compare_with_native(&self) -> Result<(), Failed> {
        let native_exe = self.link_native()?;
        let mut native_command = Command::new(&native_exe);
        // argv[0] is the first input's path under rjitlink: give the native run the same.
        use std::os::unix::process::CommandExt;
        native_command.arg0(&self.inputs[0]).args(&self.args);
        let native = run_with_timeout(&mut native_command)?;
        let jit = run_with_timeout(&mut self.rjitlink_command(&[]))?;
        let describe = |output: &Output| {
            format!(
                "status {}\n--- stdout\n{}--- stderr\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        };
        if native.status.code().is_none() {
            return Err(format!("the native program crashed: {}", describe(&native)).into());
        }
        if native.stdout != jit.stdout || native.status.code() != jit.status.code() {
            return Err(format!(
                "rjitlink differs from the native link\n=== native: {}\n=== rjitlink: {}",
                describe(&native),
                describe(&jit)
            )
            .into());
        }
        Ok(())
    }

    /// rjitlink must fail with exit status 125 and `expected` in a one-line error.
    pub fn expect_link_error(&self, expected: &str) -> Result<(), Failed> {
        expect_error(&mut self.rjitlink_command(&[]), expected)
    }
}

/// The command must fail as rjitlink fails: status 125, one line `rjitlink: error: ...` that
/// contains `expected`, no panic.
pub fn expect_error(command: &mut Command, expected: &str) -> Result<(), Failed> {
    expect_errors(command, &[expected])
}

/// Like `expect_error`, for several problems: one `rjitlink: error: ...` line each, in order.
pub fn expect_errors(command: &mut Command, expected: &[&str]) -> Result<(), Failed> {
    let output = run_with_timeout(command)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let fail = |why: &str| -> Result<(), Failed> {
        Err(format!("{why}\nstatus {}\nstderr:\n{stderr}", output.status).into())
    };
    if output.status.code() != Some(125) {
        return fail("expected exit status 125");
    }
    if stderr.contains("panicked") {
        return fail("rjitlink panicked");
    }
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.len() != expected.len() || !lines.iter().all(|l| l.starts_with("rjitlink: error: ")) {
        return fail(&format!(
            "expected exactly {} line(s) starting with `rjitlink: error: `",
            expected.len()
        ));
    }
    for (line, expected) in lines.iter().zip(expected) {
        if !line.contains(expected) {
            return fail(&format!("expected `{expected}` in `{line}`"));
        }
    }
    Ok(())
}

/// Error tests on inputs made by damaging a good object.
pub fn generated_error_trials() -> Vec<Trial> {
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

/// Command-line behaviour: -l search, --entry, --noexec, usage errors.
pub fn cli_trials() -> Vec<Trial> {
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
            // gcc folds to a constant; each line names
            // the object that references the function.
            let object = case.inputs[0].display().to_string();
            let expected = format!("` (referenced by {object})");
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
            let text = String::from_utf8_lossy(&output.stdout);
            let address = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
                .map_err(|e| format!("{text}: {e}"))?;
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
            let text = String::from_utf8_lossy(&output.stdout);
            let address = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
                .map_err(|e| format!("{text}: {e}"))?;
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
