//! The command line users expect: each form of `rjitlink [run] [OPTIONS] INPUT... [-- ARGS]`
//! (sources, cc's options, `#!` scripts, a shared object by bare name) against the native `cc`
//! build of the same sources, each error message asserted, completions and the man page.

use crate::harness::case::{run_jit, Build, Case};
use crate::harness::mode::Mode;
use crate::harness::process::{checked, expect_error, run_with_timeout, wait_or_kill};
use crate::harness::rjitlink;
use crate::harness::scratch::scratch_dir;
use libtest_mimic::{Failed, Trial};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn testdata(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
        .join(name)
}

/// stdout and exit status must agree.
fn same(jit: &Output, native: &Output) -> Result<(), Failed> {
    if jit.stdout != native.stdout || jit.status.code() != native.status.code() {
        return Err(format!(
            "rjitlink differs from the native run\n=== native: {native:?}\n=== rjitlink: {jit:?}\n--- rjitlink's stderr:\n{}",
            String::from_utf8_lossy(&jit.stderr)
        )
        .into());
    }
    Ok(())
}

/// `rjitlink ARGS...`, without `run`.
fn rjitlink_with(args: &[&str]) -> Command {
    let mut command = Command::new(rjitlink());
    command.args(args);
    command
}

/// The file `source` with its first line made empty (line numbers kept): what cc builds of a
/// `#!` script natively.
fn without_first_line(source: &Path, copy: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(source)?;
    let rest = text.split_once('\n').map_or("", |(_, rest)| rest);
    std::fs::write(copy, format!("\n{rest}"))?;
    Ok(())
}

/// A `#!` script in a fresh directory whose first line runs the rjitlink under test, made
/// executable.
fn install_script(source: &Path, dir: &Path) -> Result<PathBuf, Failed> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(source)?;
    let (first, rest) = text.split_once('\n').ok_or("a script has a first line")?;
    let first = first.replace("-S rjitlink", &format!("-S {}", rjitlink()));
    let script = dir.join(source.file_name().unwrap());
    std::fs::write(&script, format!("{first}\n{rest}"))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

/// Whether process `pid` still exists (and is not a zombie awaiting its parent).
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
    })
}

/// The command line's forms and messages.
pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("cli::form::objects_without_run", || {
            // `rjitlink foo.o libbar.a`, as the design names it.
            let case = Case::new(&testdata("c", "archive_chain.c"), Build::O0)?;
            let mut command = Command::new(rjitlink());
            command
                .args(&case.inputs)
                .args(&case.libs)
                .arg("--")
                .args(&case.args);
            case.compare_command_with_native(&mut command)
        }),
        Trial::test("cli::form::executor_option_without_run", || {
            // `rjitlink --executor=remote foo.o`.
            let case = Case::new(&testdata("c", "several_objects.c"), Build::O0)?;
            let mut command = rjitlink_with(&["--executor=remote"]);
            command
                .args(&case.inputs)
                .args(&case.libs)
                .arg("--")
                .args(&case.args);
            case.compare_command_with_native(&mut command)
        }),
        Trial::test("cli::form::sources_in_every_executor_mode", || {
            // Sources compile on the linker's side; the program runs wherever the executor is.
            let case = Case::new(&testdata("c", "several_objects.c"), Build::O0)?;
            let native = run_with_timeout(
                Command::new(case.link_native()?)
                    .arg0(&case.inputs[0])
                    .args(&case.args),
            )?;
            for mode in Mode::ALL {
                let jit = run_jit(mode, None, |flags| case.rjitlink_sources_command(flags))?;
                same(&jit, &native)
                    .map_err(|e| format!("{}: {}", mode.name(), e.message().unwrap_or_default()))?;
            }
            Ok(())
        }),
        Trial::test("cli::form::source_with_objects", || {
            // A source among objects: compiled, and linked in its place.
            let case = Case::new(&testdata("c", "several_objects.c"), Build::O0)?;
            let mut command = Command::new(rjitlink());
            command
                .arg(&case.sources[0])
                .args(&case.inputs[1..])
                .args(&case.libs)
                .arg("--argv0")
                .arg(&case.inputs[0]);
            case.compare_command_with_native(&mut command)
        }),
        Trial::test("cli::form::cxx_source_brings_libstdcxx", || {
            // `rjitlink prog.cc` links libstdc++ and libm as `c++` does; the native build
            // names -lstdc++.
            let case = Case::new(&testdata("cpp", "rtti_and_streams.cc"), Build::O0)?;
            let mut command = Command::new(rjitlink());
            command
                .args(&case.sources)
                .arg("--argv0")
                .arg(&case.inputs[0]);
            case.compare_command_with_native(&mut command)
        }),
        Trial::test("cli::form::compiler_options", || {
            // -O2 -DANSWER=42 -UNDEBUG -I... -std=gnu11 -pthread -f... -W... (its cflags
            // directive) reach the compiler, as the native build got them.
            let case = Case::new(&testdata("cli", "compiler_options.c"), Build::O0)?;
            case.compare_sources_with_native()
        }),
        Trial::test("cli::form::cc_link_options", || {
            // cc's -rdynamic and -Wl,-E do what --export-dynamic does (the native build uses
            // -rdynamic); harmless linker options are accepted, their values in the same
            // group or the next.
            let case = Case::new(&testdata("c", "export_dynamic.c"), Build::O0)?;
            for options in [
                &["-rdynamic", "-pthread"][..],
                &["-Wl,-E,--no-as-needed", "-Wl,-z,relro", "-no-pie"][..],
                &["-Wl,--export-dynamic", "-Xlinker", "--as-needed"][..],
                // A value in the next group, as cc hands it on: `-rpath /usr/lib`, `-z now`.
                &[
                    "-Wl,-rpath",
                    "-Wl,/usr/lib",
                    "-Xlinker",
                    "-z",
                    "-Xlinker",
                    "now",
                    "-Xlinker",
                    "-E",
                ][..],
            ] {
                let mut command = Command::new(rjitlink());
                command
                    .args(&case.sources)
                    .args(options)
                    .arg("--argv0")
                    .arg(&case.inputs[0])
                    .arg("--")
                    .args(&case.args);
                case.compare_command_with_native(&mut command)
                    .map_err(|e| format!("{options:?}: {}", e.message().unwrap_or_default()))?;
            }
            Ok(())
        }),
        Trial::test("cli::form::script_run_directly", || {
            // An executable `#!/usr/bin/env -S rjitlink run -lm` C file, run by the kernel
            // with arguments; natively: the same file with its first line blank.
            let dir = scratch_dir("script");
            let source = testdata("cli", "script.c");
            let script = install_script(&source, &dir)?;
            let copy = dir.join("native.c");
            without_first_line(&source, &copy)?;
            let native_exe = dir.join("native");
            checked(
                Command::new("cc")
                    .arg(&copy)
                    .arg("-lm")
                    .arg("-o")
                    .arg(&native_exe),
            )?;
            use std::os::unix::process::CommandExt;
            let args = ["one", "--two", "-O2", "--"];
            let native = run_with_timeout(Command::new(&native_exe).arg0(&script).args(args))?;
            let jit = run_with_timeout(Command::new(&script).args(args))?;
            same(&jit, &native)?;
            // __LINE__ is the file's own line.
            if !String::from_utf8_lossy(&jit.stdout).starts_with("line 9,") {
                return Err(format!("line numbers moved: {jit:?}").into());
            }
            Ok(())
        }),
        Trial::test("cli::form::shared_object_by_bare_name", || {
            // `rjitlink prog.o libgreeting_library.so` in the library's directory: loaded as
            // ./libgreeting_library.so, as cc links it.
            let dir = scratch_dir("bare-so");
            let library = dir.join("libgreeting_library.so");
            checked(
                Command::new("cc")
                    .args(["-shared", "-fPIC"])
                    .arg(testdata("cli", "lib/greeting_library.c"))
                    .arg("-o")
                    .arg(&library),
            )?;
            let object = dir.join("uses_library.o");
            checked(
                Command::new("cc")
                    .arg("-c")
                    .arg(testdata("cli", "uses_library.c"))
                    .arg("-o")
                    .arg(&object),
            )?;
            let native_exe = dir.join("native");
            checked(
                Command::new("cc")
                    .arg(&object)
                    .arg(&library)
                    .arg(format!("-Wl,-rpath,{}", dir.display()))
                    .arg("-o")
                    .arg(&native_exe),
            )?;
            let native = run_with_timeout(&mut Command::new(&native_exe))?;
            let jit = run_with_timeout(
                rjitlink_with(&["uses_library.o", "libgreeting_library.so"]).current_dir(&dir),
            )?;
            same(&jit, &native)
        }),
        Trial::test("cli::error::argument_parser_errors_are_one_line", || {
            expect_error(
                &mut rjitlink_with(&["run", "--no-such-flag", "a.o"]),
                "rjitlink: error: unexpected argument '--no-such-flag' found",
            )?;
            expect_error(
                &mut rjitlink_with(&["--executor=nowhere", "a.o"]),
                "rjitlink: error: invalid value 'nowhere' for '--executor <WHERE>': expected in-process, remote or tcp:HOST:PORT",
            )?;
            expect_error(
                &mut rjitlink_with(&["run"]),
                "rjitlink: error: the following required arguments were not provided: <INPUT>...",
            )?;
            expect_error(
                &mut rjitlink_with(&[]),
                "rjitlink: error: no inputs; usage: rjitlink [run] [OPTIONS] INPUT... [-- ARGS...]",
            )?;
            expect_error(
                &mut rjitlink_with(&["completions", "tcsh"]),
                "rjitlink: error: invalid value 'tcsh' for '<SHELL>'",
            )
        }),
        Trial::test("cli::error::options_that_write_files", || {
            for (args, expected) in [
                (&["a.o", "-o", "a"][..], "rjitlink: error: -o: rjitlink links in memory and runs the program, writing no file; use `cc -o` to write one"),
                (&["a.o", "-static"][..], "rjitlink: error: -static: rjitlink links into a running process that has the shared libc loaded, and writes no program file; drop -static"),
                (&["a.o", "-shared"][..], "rjitlink: error: -shared: rjitlink runs programs and writes no shared library"),
                (&["-c", "a.c"][..], "rjitlink: error: -c: rjitlink compiles sources only to run them and writes no file"),
                (&["a.o", "-Wl,--defsym=x=1"][..], "rjitlink: error: -Wl,--defsym=x=1: a linker option rjitlink does not know"),
            ] {
                expect_error(&mut rjitlink_with(args), expected)?;
            }
            Ok(())
        }),
        Trial::test("cli::error::directory", || {
            let dir = scratch_dir("directory-input");
            let dir_text = dir.display().to_string();
            expect_error(
                &mut rjitlink_with(&[&dir_text]),
                &format!("rjitlink: error: {dir_text}: is a directory; rjitlink links files"),
            )
        }),
        Trial::test("cli::error::llvm_bitcode", || {
            // What clang -flto writes, made by LLVM's own assembler (llvm-19, which
            // llvm-19-dev brings).
            let dir = scratch_dir("bitcode");
            let bitcode = dir.join("main.bc");
            let mut assembler = Command::new("/usr/lib/llvm-19/bin/llvm-as");
            assembler.arg("-o").arg(&bitcode);
            crate::harness::process::run_with_input(
                &mut assembler,
                Some(b"define i32 @main() {\n  ret i32 0\n}\n"),
            )?;
            let path = bitcode.display().to_string();
            expect_error(
                &mut rjitlink_with(&[&path]),
                &format!("rjitlink: error: {path}: LLVM bitcode (clang -flto or -emit-llvm), not machine code"),
            )
        }),
        Trial::test("cli::error::forgotten_double_dash", || {
            let case = Case::new(&testdata("c", "several_objects.c"), Build::O0)?;
            let inputs: Vec<String> = case
                .inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let mut command = Command::new(rjitlink());
            command.args(&inputs).arg("verbose");
            expect_error(
                &mut command,
                &format!(
                    "rjitlink: error: cannot open verbose: no such file; arguments for the program go after `--`: rjitlink {} -- verbose",
                    inputs.join(" ")
                ),
            )
        }),
        Trial::test("cli::error::compiler_messages_as_printed", || {
            // The compiler's own messages, exactly as it prints them compiling the same
            // file, then one line of rjitlink's; exit status 125.
            let source = testdata("cli", "bad_source.c");
            let native = run_with_timeout(
                Command::new("cc")
                    .args(["-c", "-pipe"])
                    .arg(&source)
                    .args(["-o", "/dev/null"]),
            )?;
            let jit = run_with_timeout(&mut rjitlink_with(&[&source.display().to_string()]))?;
            let expected = format!(
                "{}rjitlink: error: cannot compile {}\n",
                String::from_utf8_lossy(&native.stderr),
                source.display()
            );
            if native.status.success() || jit.status.code() != Some(125) {
                return Err(format!("expected failures: {native:?} {jit:?}").into());
            }
            if String::from_utf8_lossy(&jit.stderr) != expected {
                return Err(format!(
                    "expected:\n{expected}got:\n{}",
                    String::from_utf8_lossy(&jit.stderr)
                )
                .into());
            }
            Ok(())
        }),
        Trial::test("cli::error::compiler_messages_in_source_order", || {
            // Sources compiled at once still show their messages whole, in their order.
            let first = testdata("cli", "bad_source.c");
            let second = testdata("cli", "second_bad_source.c");
            let jit = run_with_timeout(&mut rjitlink_with(&[
                &first.display().to_string(),
                &second.display().to_string(),
            ]))?;
            let stderr = String::from_utf8_lossy(&jit.stderr);
            let at = |what: &str| {
                stderr
                    .find(what)
                    .ok_or(format!("no `{what}` in:\n{stderr}"))
            };
            let (a, b) = (
                at("undeclared_variable")?,
                at("another_undeclared_variable")?,
            );
            let last = stderr.lines().last().unwrap_or_default();
            let expected_last = format!(
                "rjitlink: error: cannot compile {}, {}",
                first.display(),
                second.display()
            );
            if a > b || last != expected_last || jit.status.code() != Some(125) {
                return Err(format!("unexpected:\n{stderr}").into());
            }
            Ok(())
        }),
        Trial::test("cli::error::script_errors_keep_line_numbers", || {
            let dir = scratch_dir("bad-script");
            let script = install_script(&testdata("cli", "bad_script.c"), &dir)?;
            let jit = run_with_timeout(&mut Command::new(&script))?;
            let stderr = String::from_utf8_lossy(&jit.stderr);
            let expected = format!("{}:4:", script.display());
            if jit.status.code() != Some(125) || !stderr.contains(&expected) {
                return Err(format!("expected `{expected}` and 125:\n{stderr}").into());
            }
            Ok(())
        }),
        Trial::test("cli::error::missing_compiler", || {
            let source = testdata("cli", "compiler_options.c").display().to_string();
            expect_error(
                rjitlink_with(&[&source]).env("CC", "/nonexistent/cc"),
                &format!("rjitlink: error: cannot run /nonexistent/cc to compile {source}: No such file or directory"),
            )
        }),
        Trial::test("cli::error::undefined_names_function", || {
            let case = Case::new(&testdata("errors", "undefined_symbol.c"), Build::O0)?;
            expect_error(
                &mut case.rjitlink_command(&[]),
                &format!(
                    "rjitlink: error: undefined symbol `missing_function` (referenced by {} in function 'main')",
                    case.inputs[0].display()
                ),
            )
        }),
        Trial::test("cli::error::cxx_demangled_with_library", || {
            // A C++ object linked without -lstdc++: the symbol demangled, its mangled name
            // beside it, the function that refers to it, and the library to add.
            let case = Case::new(&testdata("cli", "cxx_new.cc"), Build::O0)?;
            expect_error(
                &mut case.rjitlink_command(&[]),
                &format!(
                    "rjitlink: error: undefined symbol `operator new(unsigned long)` (_Znwm) (referenced by {} in function 'main'); it is in libstdc++: add -lstdc++",
                    case.inputs[0].display()
                ),
            )
        }),
        Trial::test("cli::error::source_object_named_as_source", || {
            // An undefined symbol in a compiled source names the source, not a memory file.
            let source = testdata("errors", "undefined_symbol.c");
            expect_error(
                &mut rjitlink_with(&[&source.display().to_string()]),
                &format!(
                    "rjitlink: error: undefined symbol `missing_function` (referenced by {} in function 'main')",
                    source.display()
                ),
            )
        }),
        Trial::test("cli::sources::no_temporaries_left", || {
            // Sources compile into memory: TMPDIR stays empty after a run, a compiler error
            // and a link error.
            let tmp = scratch_dir("tmpdir");
            for name in [
                ("c", "hello.c"),
                ("cli", "bad_source.c"),
                ("errors", "undefined_symbol.c"),
            ] {
                let source = testdata(name.0, name.1).display().to_string();
                run_with_timeout(rjitlink_with(&[&source]).env("TMPDIR", &tmp))?;
            }
            let left: Vec<_> = std::fs::read_dir(&tmp)?.collect();
            if !left.is_empty() {
                return Err(format!("left in TMPDIR: {left:?}").into());
            }
            Ok(())
        }),
        Trial::test("cli::sources::compilers_end_with_rjitlink", || {
            // A compiler still running when rjitlink is killed ends too.
            let dir = scratch_dir("slow-compiler");
            let pid_file = dir.join("compiler.pid");
            let slow_cc = dir.join("slow_cc");
            std::fs::write(
                &slow_cc,
                format!(
                    "#!/bin/sh\necho $$ > {}.tmp\nmv {0}.tmp {0}\nexec sleep 60\n",
                    pid_file.display()
                ),
            )?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&slow_cc, std::fs::Permissions::from_mode(0o755))?;
            let source = testdata("c", "hello.c").display().to_string();
            let mut child = rjitlink_with(&[&source])
                .env("CC", &slow_cc)
                .stdin(std::process::Stdio::null())
                .spawn()?;
            let start = Instant::now();
            while !pid_file.exists() && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            wait_or_kill(&mut child)?;
            let start = Instant::now();
            while process_alive(pid) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if process_alive(pid) {
                // SAFETY: the compiler the test made; ending it before failing.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err("the compiler outlived rjitlink".into());
            }
            Ok(())
        }),
        Trial::test("cli::sources::compiled_in_parallel", || {
            // Two sources, and a compiler that goes on only once both compilers have started:
            // compiled one after the other, it would give up.
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cpus < 2 {
                eprintln!("one CPU: sources are compiled one at a time; nothing to check");
                return Ok(());
            }
            let dir = scratch_dir("parallel-compiler");
            let marks = dir.join("marks");
            std::fs::create_dir(&marks)?;
            let waiting_cc = dir.join("waiting_cc");
            std::fs::write(
                &waiting_cc,
                format!(
                    "#!/bin/sh\ntouch {m}/$$\nfor i in $(seq 300); do\n  [ $(ls {m} | wc -l) -ge 2 ] && exec cc \"$@\"\n  sleep 0.1\ndone\necho 'compiled alone' >&2\nexit 1\n",
                    m = marks.display()
                ),
            )?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&waiting_cc, std::fs::Permissions::from_mode(0o755))?;
            let case = Case::new(&testdata("c", "several_objects.c"), Build::O0)?;
            let mut command = Command::new(rjitlink());
            command
                .env("CC", &waiting_cc)
                .args(&case.sources)
                .args(&case.libs)
                .arg("--argv0")
                .arg(&case.inputs[0]);
            case.compare_command_with_native(&mut command)
        }),
        Trial::test("cli::completions_load_in_bash", || {
            let dir = scratch_dir("completions");
            let script = dir.join("rjitlink.bash");
            let output = checked(&mut rjitlink_with(&["completions", "bash"]))?;
            std::fs::write(&script, &output.stdout)?;
            checked(Command::new("bash").arg("-n").arg(&script))?;
            // Loaded, it registers a completion for rjitlink that knows its options.
            let loaded = checked(Command::new("bash").arg("-c").arg(format!(
                "source {} && complete -p rjitlink",
                script.display()
            )))?;
            let registered = String::from_utf8_lossy(&loaded.stdout);
            let text = String::from_utf8_lossy(&output.stdout);
            if !registered.contains("rjitlink") || !text.contains("--slab-size") {
                return Err(format!("no completion registered: {registered}").into());
            }
            Ok(())
        }),
        Trial::test("cli::man_page", || {
            let output = checked(&mut rjitlink_with(&["man"]))?;
            // roff writes a hyphen as `\-`.
            let page = String::from_utf8_lossy(&output.stdout).replace("\\-", "-");
            for expected in [".TH rjitlink", "executor", "completions", ".SH NOTES"] {
                if !page.contains(expected) {
                    return Err(format!("no `{expected}` in the man page:\n{page}").into());
                }
            }
            // The main form's options are on the page: every long option `run --help` names.
            let help = checked(&mut rjitlink_with(&["run", "--help"]))?;
            let help = String::from_utf8_lossy(&help.stdout);
            let options: Vec<&str> = help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|word| word.starts_with("--") && word.len() > 2)
                .collect();
            if options.len() < 15 {
                return Err(format!("only {options:?} in run's help").into());
            }
            for option in options {
                if !page.contains(option) {
                    return Err(format!("no `{option}` in the man page:\n{page}").into());
                }
            }
            Ok(())
        }),
        Trial::test("cli::slab_size_default_is_readable", || {
            let output = checked(&mut rjitlink_with(&["run", "--help"]))?;
            let help = String::from_utf8_lossy(&output.stdout);
            match help.lines().find(|l| l.contains("--slab-size")) {
                Some(line) if line.ends_with("[default: 1G]") => Ok(()),
                other => Err(format!("--slab-size's help: {other:?}").into()),
            }
        }),
    ]
}
