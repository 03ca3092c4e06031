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
            .collect::<Vec<(String, String)>>();
        // A misspelt directive would silently change what a test checks.
        const KNOWN: [&str; 10] = [
            "with",
            "archive",
            "libs",
            "cflags",
            "asflags",
            "args",
            "native-ldflags",
            "rjitlink-flags",
            "shared-library",
            "expect-error",
        ];
        if let Some((key, _)) = directives
            .iter()
            .find(|(k, _)| !KNOWN.contains(&k.as_str()))
        {
            return Err(format!("{}: unknown directive `{key}`", source.display()).into());
        }
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

/// Where rjitlink runs the program.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    InProcess,
    /// `--executor=remote`: a spawned executor process on a socket pair, sharing memory.
    Remote,
    /// `--executor=remote --memory=copy`: bytes sent over the socket pair.
    RemoteCopy,
    /// `--executor=tcp:...` against an `rjitlink executor --listen` started for the test.
    Tcp,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::InProcess, Mode::Remote, Mode::RemoteCopy, Mode::Tcp];

    pub fn name(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Remote => "remote",
            Mode::RemoteCopy => "remote-copy",
            Mode::Tcp => "tcp",
        }
    }
}

/// The token the tests' TCP executors require.
pub const TEST_TOKEN: &str = "rjitlink-test-token";

/// An `rjitlink executor --listen` on a free loopback port, for one test.
pub struct TcpExecutor {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    pub address: String,
}

impl TcpExecutor {
    pub fn start() -> Result<TcpExecutor, Failed> {
        TcpExecutor::start_with(Command::new(rjitlink()))
    }

    /// In a PID namespace of its own, the executor's /proc entries are not the linker's: to
    /// the linker it is as if on another machine, with which memory cannot be shared.
    pub fn start_elsewhere() -> Result<TcpExecutor, Failed> {
        let mut command = Command::new("unshare");
        command
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(rjitlink());
        TcpExecutor::start_with(command)
    }

    fn start_with(mut command: Command) -> Result<TcpExecutor, Failed> {
        use std::io::BufRead;
        let mut child = command
            .args(["executor", "--listen", "127.0.0.1:0"])
            .env("RJITLINK_TOKEN", TEST_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the executor: {e}"))?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let address = line
            .trim()
            .strip_prefix("rjitlink executor listening on ")
            .ok_or_else(|| format!("unexpected first line from the executor: {line:?}"))?
            .to_owned();
        Ok(TcpExecutor {
            child,
            stdout,
            address,
        })
    }

    /// `--executor=tcp:ADDRESS`
    pub fn flag(&self) -> String {
        format!("--executor=tcp:{}", self.address)
    }

    /// Stop the listener; returns what the programs it ran wrote to stdout and stderr.
    pub fn finish(mut self) -> (Vec<u8>, Vec<u8>) {
        use std::io::Read;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stdout = Vec::new();
        let _ = self.stdout.read_to_end(&mut stdout);
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        (stdout, stderr)
    }
}

impl Drop for TcpExecutor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    /// Extra rjitlink options, from the `rjitlink-flags` directive.
    rjitlink_flags: Vec<String>,
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
        // A shared library built from the source, its path appended to the arguments.
        let mut args = directives.words("args");
        for library in directives.words("shared-library") {
            let library = base.join(library);
            let output = dir.join(format!(
                "lib{}.so",
                library.file_stem().unwrap().to_string_lossy()
            ));
            checked(
                Command::new("cc")
                    .args(["-shared", "-fPIC"])
                    .arg(&library)
                    .arg("-o")
                    .arg(&output),
            )?;
            args.push(output.display().to_string());
        }
        let mut native_ldflags = directives.words("native-ldflags");
        if matches!(build, Build::O2NoPic) {
            native_ldflags.push("-no-pie".to_owned());
        }
        Ok(Case {
            dir,
            inputs,
            libs: directives.words("libs"),
            args,
            native_ldflags,
            rjitlink_flags: directives.words("rjitlink-flags"),
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
            .args(&self.rjitlink_flags)
            .args(extra)
            .arg("--")
            .args(&self.args);
        command
    }

    /// Run with rjitlink in `mode`: the exit status of rjitlink, and the program's output
    /// (for TCP, what the executor printed).
    pub fn run_jit(&self, mode: Mode, extra: &[&str]) -> Result<Output, Failed> {
        match mode {
            Mode::InProcess => run_with_timeout(&mut self.rjitlink_command(extra)),
            Mode::Remote | Mode::RemoteCopy => {
                let mut flags = vec!["--executor=remote"];
                if let Mode::RemoteCopy = mode {
                    flags.push("--memory=copy");
                }
                flags.extend_from_slice(extra);
                run_with_timeout(&mut self.rjitlink_command(&flags))
            }
            Mode::Tcp => {
                let executor = TcpExecutor::start()?;
                let flag = executor.flag();
                let mut flags = vec![flag.as_str()];
                flags.extend_from_slice(extra);
                let mut command = self.rjitlink_command(&flags);
                command.env("RJITLINK_TOKEN", TEST_TOKEN);
                let mut client = run_with_timeout(&mut command)?;
                let (stdout, stderr) = executor.finish();
                if !client.stdout.is_empty() {
                    return Err("under tcp the program's output belongs to the executor".into());
                }
                client.stdout = stdout;
                client.stderr.extend_from_slice(&stderr);
                Ok(client)
            }
        }
    }

    /// Run natively and with rjitlink; stdout and exit status must agree.
    pub fn compare_with_native(&self, mode: Mode) -> Result<(), Failed> {
        let native_exe = self.link_native()?;
        let mut native_command = Command::new(&native_exe);
        // argv[0] is the first input's path under rjitlink: give the native run the same.
        use std::os::unix::process::CommandExt;
        native_command.arg0(&self.inputs[0]).args(&self.args);
        let native = run_with_timeout(&mut native_command)?;
        let jit = self.run_jit(mode, &[])?;
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

/// A program of testdata/cli, compiled at -O0.
fn cli_case(name: &str) -> Result<Case, Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/cli")
        .join(name);
    Case::new(&source, Build::O0)
}

/// Start `command` with its output piped and read the first line it prints (a pid, for the
/// tests that kill processes).
fn spawn_reading_line(command: &mut Command) -> Result<(std::process::Child, String), Failed> {
    use std::io::BufRead;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok((child, line))
}

/// The address code_address.c prints.
fn printed_address(output: &Output) -> Result<u64, Failed> {
    let text = String::from_utf8_lossy(&output.stdout);
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .map_err(|e| format!("{text}: {e}").into())
}

/// Wait for `child`, failing the test if it takes longer than the timeout.
fn wait_with_timeout(child: std::process::Child) -> Result<Output, Failed> {
    let start = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string().into());
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            return Err("rjitlink hung".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(pid: &str, signal: i32) -> Result<(), Failed> {
    let pid: i32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("not a pid: {pid:?}"))?;
    // SAFETY: sending a signal to a process the test started.
    if unsafe { libc_kill(pid, signal) } != 0 {
        return Err(format!("cannot kill {pid}").into());
    }
    Ok(())
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// The numbers of `--show-stats`: (bytes sent, linked bytes).
fn parse_stats(stderr: &[u8]) -> Result<(u64, u64), Failed> {
    let text = String::from_utf8_lossy(stderr);
    let number_after = |prefix: &str| -> Result<u64, Failed> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .ok_or_else(|| format!("no `{prefix}` line in: {text}"))?;
        Ok(line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| format!("bad line: {line}"))?)
    };
    Ok((number_after("transport: ")?, number_after("linked: ")?))
}

/// Entries of /dev/shm now.
fn dev_shm() -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Wait until process `pid` is gone.
fn wait_until_gone(pid: &str) -> Result<(), Failed> {
    let start = Instant::now();
    while Path::new(&format!("/proc/{}", pid.trim())).exists() {
        // A zombie counts as gone: it holds no memory.
        let status =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        if status.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("process {} outlived its linker", pid.trim()).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The remote executor's behaviour: death, signals, tokens, hostile clients, versions, stdin,
/// and how memory reaches it.
pub fn executor_trials() -> Vec<Trial> {
    vec![
        Trial::test("executor::shared_memory_sends_no_code", || {
            // CPython's PIC archive: several MiB of code and data. From the transport's own
            // counters: shared memory sends under 2% of that, copying at least all of it.
            let dir = String::from_utf8(
                checked(Command::new("/usr/bin/python3.11-config").arg("--configdir"))?.stdout,
            )
            .map_err(|e| e.to_string())?;
            let dir = Path::new(dir.trim());
            for (memory, check) in [("shared", 0), ("copy", 1)] {
                let output = checked(
                    Command::new(rjitlink())
                        .args(["run", "--noexec", "--show-stats", "--executor=remote"])
                        .arg(format!("--memory={memory}"))
                        .arg(dir.join("python.o"))
                        .arg(dir.join("libpython3.11-pic.a"))
                        .args(["-lm", "-lz", "-lexpat"]),
                )?;
                let (sent, linked) = parse_stats(&output.stderr)?;
                if linked < 4 << 20 {
                    return Err(format!("only {linked} bytes linked").into());
                }
                let ok = if check == 0 {
                    sent * 50 < linked
                } else {
                    sent >= linked
                };
                if !ok {
                    return Err(format!(
                        "--memory={memory}: {sent} bytes sent for {linked} linked"
                    )
                    .into());
                }
            }
            Ok(())
        }),
        Trial::test("executor::shared_memory_unavailable_elsewhere", || {
            let case = cli_case("cat.c")?;
            let executor = TcpExecutor::start_elsewhere()?;
            let flag = executor.flag();
            let mut command = case.rjitlink_command(&[&flag, "--memory=shared"]);
            command.env("RJITLINK_TOKEN", TEST_TOKEN);
            expect_error(&mut command, "--memory=shared cannot be honoured: shared memory with the executor is not possible")?;
            // Without --memory, rjitlink falls back to copying, and the program runs.
            let mut command = case.rjitlink_command(&[&flag, "--show-stats"]);
            command.env("RJITLINK_TOKEN", TEST_TOKEN);
            let output = run_with_timeout(&mut command)?;
            let (sent, linked) = parse_stats(&output.stderr)?;
            if !output.status.success() || sent < linked {
                return Err(format!("expected a copying run: {output:?}").into());
            }
            Ok(())
        }),
        Trial::test("executor::memory_flag_needs_a_remote_executor", || {
            let case = cli_case("cat.c")?;
            expect_error(
                &mut case.rjitlink_command(&["--memory=copy"]),
                "--memory applies to remote executors",
            )
        }),
        Trial::test("executor::no_shared_memory_left_behind", || {
            let case = cli_case("sleeper.c")?;
            let before = dev_shm();
            // A normal run.
            checked(&mut cli_case("cat.c")?.rjitlink_command(&["--executor=remote"]))?;
            // kill -9 of the executor, then of the linker.
            for victim in ["executor", "linker"] {
                let (mut child, executor_pid) =
                    spawn_reading_line(&mut case.rjitlink_command(&["--executor=remote"]))?;
                if victim == "executor" {
                    kill(&executor_pid, SIGKILL)?;
                } else {
                    kill(&child.id().to_string(), SIGKILL)?;
                }
                // Only the status: a surviving executor would hold the output pipes open.
                let start = Instant::now();
                while child.try_wait().map_err(|e| e.to_string())?.is_none() {
                    if start.elapsed() > RUN_TIMEOUT {
                        return Err("rjitlink hung".into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                // The executor, holding the shared memory, must not outlive the linker.
                wait_until_gone(&executor_pid)?;
            }
            let after = dev_shm();
            if before != after {
                return Err(format!("/dev/shm changed: {before:?} -> {after:?}").into());
            }
            Ok(())
        }),
        Trial::test("executor::killed_mid_run_remote", || {
            let case = cli_case("sleeper.c")?;
            let (child, pid) =
                spawn_reading_line(&mut case.rjitlink_command(&["--executor=remote"]))?;
            kill(&pid, SIGKILL)?;
            let output = wait_with_timeout(child)?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() != Some(128 + SIGKILL)
                || stderr.trim() != "rjitlink: error: executor terminated by signal SIGKILL"
            {
                return Err(format!("status {}, stderr {stderr:?}", output.status).into());
            }
            Ok(())
        }),
        Trial::test("executor::killed_mid_run_tcp", || {
            use std::io::BufRead;
            let case = cli_case("sleeper.c")?;
            let mut executor = TcpExecutor::start()?;
            let client = case
                .rjitlink_command(&[&executor.flag()])
                .env("RJITLINK_TOKEN", TEST_TOKEN)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            let mut pid = String::new();
            executor
                .stdout
                .read_line(&mut pid)
                .map_err(|e| e.to_string())?;
            kill(&pid, SIGKILL)?;
            let output = wait_with_timeout(client)?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.code() != Some(128 + SIGKILL)
                || !stderr.contains("executor terminated by signal SIGKILL")
            {
                return Err(format!("status {}, stderr {stderr:?}", output.status).into());
            }
            Ok(())
        }),
        Trial::test("executor::signal_propagates", || {
            let case = cli_case("crash.c")?;
            for mode in [Mode::Remote, Mode::Tcp] {
                let output = case.run_jit(mode, &[])?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                if output.status.code() != Some(128 + 11)
                    || !stderr.contains("rjitlink: error: executor terminated by signal SIGSEGV")
                    || output.stdout != b"about to crash\n"
                {
                    return Err(format!("{}: {output:?}", mode.name()).into());
                }
            }
            // In process, the program's death is rjitlink's, by the same signal.
            let output = case.run_jit(Mode::InProcess, &[])?;
            use std::os::unix::process::ExitStatusExt;
            if output.status.signal() != Some(11) {
                return Err(format!("in process: {output:?}").into());
            }
            Ok(())
        }),
        Trial::test("executor::stdin_passes_through", || {
            use std::io::Write;
            let case = cli_case("cat.c")?;
            for flag in ["--executor=remote", "--executor=in-process"] {
                let mut child = case
                    .rjitlink_command(&[flag])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| e.to_string())?;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"hi\n")
                    .map_err(|e| e.to_string())?;
                let output = wait_with_timeout(child)?;
                if output.stdout != b"hi\n" || !output.status.success() {
                    return Err(format!("{flag}: {output:?}").into());
                }
            }
            Ok(())
        }),
        Trial::test("executor::protocol_version_mismatch", || {
            let case = cli_case("cat.c")?;
            let mut command = case.rjitlink_command(&["--executor=remote"]);
            command.env("RJITLINK_PROTOCOL_VERSION", "99");
            expect_error(
                &mut command,
                "protocol version mismatch: the executor speaks version 1, the linker version 99",
            )
        }),
        Trial::test("executor::token_required", || {
            let case = cli_case("cat.c")?;
            let executor = TcpExecutor::start()?;
            let flag = executor.flag();
            for token in [Some("wrong-token"), None] {
                let mut command = case.rjitlink_command(&[&flag]);
                match token {
                    Some(token) => command.env("RJITLINK_TOKEN", token),
                    None => command.env_remove("RJITLINK_TOKEN"),
                };
                expect_error(
                    &mut command,
                    "the executor closed the connection during the handshake (wrong or missing RJITLINK_TOKEN?)",
                )?;
            }
            // The listener still serves a client with the right token.
            let mut command = case.rjitlink_command(&[&flag]);
            command.env("RJITLINK_TOKEN", TEST_TOKEN);
            let output = run_with_timeout(&mut command)?;
            if !output.status.success() {
                return Err(format!("the right token was refused: {output:?}").into());
            }
            let (_, stderr) = executor.finish();
            let refused = String::from_utf8_lossy(&stderr)
                .matches("wrong or missing token")
                .count();
            if refused != 2 {
                return Err(format!(
                    "expected 2 refusals in the executor's log: {}",
                    String::from_utf8_lossy(&stderr)
                )
                .into());
            }
            Ok(())
        }),
        Trial::test("executor::hostile_clients_are_disconnected", || {
            use std::io::{Read, Write};
            let case = cli_case("cat.c")?;
            let executor = TcpExecutor::start()?;
            let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
            let random: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
            // Random bytes; an oversized frame; a hello-sized frame of garbage.
            let attacks: [&[u8]; 3] = [
                &random,
                &[0xff, 0xff, 0xff, 0x7f, 1, 2, 3],
                &[12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 99, 98, 97, 96],
            ];
            for attack in attacks {
                let mut stream =
                    std::net::TcpStream::connect(&executor.address).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .map_err(|e| e.to_string())?;
                let _ = stream.write_all(attack);
                let mut buffer = [0u8; 64];
                match stream.read(&mut buffer) {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    other => {
                        return Err(format!("expected the connection closed, got {other:?}").into())
                    }
                }
            }
            // An authenticated client that then sends garbage, and one that writes outside
            // the executor's memory: answered (or not) and disconnected, never a crash.
            use rjitlink_protocol::{Connection, Request, Response, PROTOCOL_VERSION};
            for attack in [&b"\x0b\0\0\0\x02\0\0\0\0\0\0\0\x63\x01\x02"[..], b"write"] {
                let stream =
                    std::net::TcpStream::connect(&executor.address).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .map_err(|e| e.to_string())?;
                let mut connection = Connection::new(Box::new(stream.try_clone().unwrap()));
                let hello = Request::Hello {
                    version: PROTOCOL_VERSION,
                    token: TEST_TOKEN.as_bytes(),
                };
                if !matches!(connection.call(&hello), Ok(Response::Hello { .. })) {
                    return Err("the right token was not accepted".into());
                }
                let answer = if attack == b"write" {
                    // 16 bytes to address 0x1000, which the executor never reserved.
                    let write = Request::Write {
                        address: rjitlink_memory::TargetAddr(0x1000),
                        length: 16,
                    };
                    match connection.call_with_payload(&write, &[0xcc; 16]) {
                        Ok(Response::Failed(message)) => {
                            String::from_utf8_lossy(message).into_owned()
                        }
                        other => format!("{other:?}"),
                    }
                } else {
                    let mut raw = &stream;
                    let _ = raw.write_all(attack);
                    String::new()
                };
                if attack == b"write" && !answer.contains("not inside memory reserved") {
                    return Err(format!("a wild write was not refused: {answer}").into());
                }
                let mut buffer = [0u8; 64];
                let mut raw = &stream;
                match raw.read(&mut buffer) {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    other => {
                        return Err(format!("expected the connection closed, got {other:?}").into())
                    }
                }
            }
            let mut command = case.rjitlink_command(&[&executor.flag()]);
            command.env("RJITLINK_TOKEN", TEST_TOKEN);
            let output = run_with_timeout(&mut command)?;
            if !output.status.success() {
                return Err(format!("the next client was not served: {output:?}").into());
            }
            Ok(())
        }),
    ]
}

/// A deterministic xorshift generator: failures reproduce.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Damaged inputs: bytes of a real object flipped at random (a fixed seed, so failures
/// reproduce). Linking must fail with rjitlink's error status or succeed — never panic, never
/// crash. `--noexec`: the damaged code is not run.
pub fn damaged_input_trials() -> Vec<Trial> {
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
