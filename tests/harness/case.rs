//! One testdata program: compiled in a Build, linked natively and by rjitlink, run in an
//! executor Mode, and compared.

use super::directives::Directives;
use super::mode::Mode;
use super::process::{checked, expect_error, run_with_input};
use super::rjitlink;
use super::scratch::scratch_dir;
use super::tcp::{TcpExecutor, TEST_TOKEN};
use libtest_mimic::Failed;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// One testdata program, compiled and ready to link.
pub struct Case {
    pub dir: PathBuf,
    /// Objects, then the archive (if any), in link order.
    pub inputs: Vec<PathBuf>,
    pub libs: Vec<String>,
    pub args: Vec<String>,
    pub native_ldflags: Vec<String>,
    /// Extra rjitlink options, from the `rjitlink-flags` directive.
    rjitlink_flags: Vec<String>,
    /// The sources of the objects in `inputs` (the archive excepted), in their order.
    pub sources: Vec<PathBuf>,
    /// The archive built from the `archive` directive's members, if any.
    archive: Option<PathBuf>,
    /// The options the sources were compiled with (the build's, then the `cflags` or
    /// `asflags` directive's).
    compile_flags: Vec<String>,
    /// The program's stdin, from the `stdin` directive (none otherwise).
    pub stdin: Option<Vec<u8>>,
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
            let extension = file.extension().and_then(|e| e.to_str());
            let mut command = if extension == Some("s") {
                let mut command = Command::new("as");
                command.args(&asflags);
                command
            } else {
                let compiler = if extension == Some("cc") { "c++" } else { "cc" };
                let mut command = Command::new(compiler);
                command.arg("-c").args(build.flags()).args(&cflags);
                command
            };
            checked(command.arg(file).arg("-o").arg(&object))?;
            Ok(object)
        };

        let is_source = |file: &Path| {
            file.extension()
                .is_some_and(|e| e == "c" || e == "cc" || e == "s")
        };
        let mut inputs = vec![if is_source(source) {
            compile(source)?
        } else {
            source.to_owned()
        }];
        let mut sources = vec![source.to_owned()];
        for extra in directives.words("with") {
            inputs.push(compile(&base.join(&extra))?);
            sources.push(base.join(extra));
        }
        let mut compile_flags: Vec<String> = build.flags().iter().map(|f| f.to_string()).collect();
        compile_flags.extend(cflags.iter().cloned());
        // cc hands assembler options on with -Wa.
        compile_flags.extend(asflags.iter().map(|f| format!("-Wa,{f}")));
        let members = directives
            .words("archive")
            .iter()
            .map(|member| compile(&base.join(member)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut built_archive = None;
        if !members.is_empty() {
            let archive = dir.join(format!("lib{stem}.a"));
            checked(Command::new("ar").arg("rcs").arg(&archive).args(&members))?;
            inputs.push(archive.clone());
            built_archive = Some(archive);
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
        let stdin = match directives.get("stdin") {
            Some(file) => {
                let path = base.join(file);
                Some(
                    std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(Case {
            dir,
            inputs,
            libs: directives.words("libs"),
            args,
            native_ldflags,
            rjitlink_flags: directives.words("rjitlink-flags"),
            stdin,
            sources,
            archive: built_archive,
            compile_flags,
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

    /// `rjitlink SOURCES ARCHIVE LIBS EXTRA FLAGS -- ARGS`: the program run from its sources,
    /// which rjitlink compiles with the options the native build used (`run` left out, as a
    /// user may). argv[0] is the first object's path, as in the native run.
    pub fn rjitlink_sources_command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(rjitlink());
        command
            .args(&self.sources)
            .args(&self.archive)
            .args(&self.libs)
            .args(&self.rjitlink_flags)
            .args(&self.compile_flags)
            .args(extra)
            .arg("--argv0")
            .arg(&self.inputs[0])
            .arg("--")
            .args(&self.args);
        command
    }

    /// Run from the sources (compiled by rjitlink) and from the native build of the same
    /// sources; stdout and exit status must agree.
    pub fn compare_sources_with_native(&self) -> Result<(), Failed> {
        self.compare_command_with_native(&mut self.rjitlink_sources_command(&[]))
    }

    /// Run `jit` (a form of rjitlink's command line for this program) and the native build;
    /// stdout and exit status must agree.
    pub fn compare_command_with_native(&self, jit: &mut Command) -> Result<(), Failed> {
        use std::os::unix::process::CommandExt;
        let native_exe = self.link_native()?;
        let mut native_command = Command::new(&native_exe);
        native_command.arg0(&self.inputs[0]).args(&self.args);
        let native = run_with_input(&mut native_command, self.stdin.as_deref())?;
        let output = run_with_input(jit, self.stdin.as_deref())?;
        if native.stdout != output.stdout || native.status.code() != output.status.code() {
            return Err(format!(
                "rjitlink differs from the native link\n=== native: {}\n=== {jit:?}: {}",
                describe(&native),
                describe(&output),
            )
            .into());
        }
        Ok(())
    }

    /// Run with rjitlink in `mode`: the exit status of rjitlink, and the program's output.
    pub fn run_jit(&self, mode: Mode, extra: &[&str]) -> Result<Output, Failed> {
        run_jit(mode, self.stdin.as_deref(), |flags| {
            self.rjitlink_command(&[flags, extra].concat())
        })
    }

    /// Run natively and with rjitlink; stdout and exit status must agree. A program killed by
    /// a signal natively must be killed by it under rjitlink: in process, rjitlink dies by it;
    /// a remote executor's death by it makes rjitlink say so and exit with 128 + its number.
    pub fn compare_with_native(&self, mode: Mode) -> Result<(), Failed> {
        let native_exe = self.link_native()?;
        let mut native_command = Command::new(&native_exe);
        // argv[0] is the first input's path under rjitlink: give the native run the same.
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        native_command.arg0(&self.inputs[0]).args(&self.args);
        let native = run_with_input(&mut native_command, self.stdin.as_deref())?;
        let jit = self.run_jit(mode, &[])?;
        let same_ending = match (native.status.signal(), mode) {
            (None, _) => native.status.code() == jit.status.code(),
            (Some(signal), Mode::InProcess) => jit.status.signal() == Some(signal),
            (Some(signal), _) => {
                jit.status.code() == Some(128 + signal)
                    && String::from_utf8_lossy(&jit.stderr)
                        .contains("rjitlink: error: executor terminated by signal SIG")
            }
        };
        if native.stdout != jit.stdout || !same_ending {
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

/// How a run ended and what it printed, for a failure message (long output cut short).
fn describe(output: &Output) -> String {
    fn shown(bytes: &[u8]) -> String {
        const SHOWN: usize = 4096;
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]).into_owned();
        if bytes.len() > SHOWN {
            format!("{text}\n[... {} bytes in all]\n", bytes.len())
        } else {
            text
        }
    }
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        shown(&output.stdout),
        shown(&output.stderr)
    )
}

/// Run an `rjitlink run` command in `mode`, with `input` as its stdin (`None`: no stdin):
/// `rjitlink_command` makes it with the mode's flags among its options. Returns the exit status
/// of rjitlink, and the program's output (under TCP too: the connection carries it).
pub fn run_jit(
    mode: Mode,
    input: Option<&[u8]>,
    rjitlink_command: impl Fn(&[&str]) -> Command,
) -> Result<Output, Failed> {
    match mode {
        Mode::InProcess => run_with_input(&mut rjitlink_command(&[]), input),
        Mode::Remote => run_with_input(&mut rjitlink_command(&["--executor=remote"]), input),
        Mode::RemoteCopy => run_with_input(
            &mut rjitlink_command(&["--executor=remote", "--memory=copy"]),
            input,
        ),
        Mode::Tcp => {
            // The program's streams are rjitlink's, carried over the connection.
            let executor = TcpExecutor::start()?;
            let mut command = rjitlink_command(&[&executor.flag()]);
            command.env("RJITLINK_TOKEN", TEST_TOKEN);
            run_with_input(&mut command, input)
        }
    }
}
