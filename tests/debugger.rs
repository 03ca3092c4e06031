//! gdb against JIT-linked code, through the JIT interface (`__jit_debug_descriptor`): the
//! programs of testdata/debug, built with `-g -O0` and `-g -O2`, run under `gdb -batch -nx`
//! in process (`gdb --args rjitlink run ...`) and in a remote executor gdb attaches to
//! (`gdb -p PID`), with pending breakpoints by function and by file:line, `bt` through
//! several objects, an archive member and libc, `info locals`, `finish` and `step` into
//! another object. Expected lines come from `/* @marker */` comments in the sources; what gdb
//! prints of the program in process is also compared with what it prints of the natively
//! linked program, addresses aside. Also: the executor's limits on debug objects.

#[allow(dead_code)]
#[path = "harness/mod.rs"]
mod harness;

use harness::process::{checked, run_with_timeout, wait_or_kill};
use harness::rjitlink;
use harness::scratch::scratch_dir;
use libtest_mimic::{Arguments, Failed, Trial};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The sources, relative to the repository.
const SOURCES: &str = "testdata/debug";

#[derive(Clone, Copy, Debug)]
enum Build {
    O0,
    O2,
}

impl Build {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Build::O0 => &["-g", "-O0"],
            Build::O2 => &["-g", "-O2"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Build::O0 => "O0",
            Build::O2 => "O2",
        }
    }
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(SOURCES)
        .join(name)
}

/// The line of `file` (in testdata/debug) that carries `/* @marker */`.
fn line_of(file: &str, marker: &str) -> u32 {
    let text = std::fs::read_to_string(source(file)).expect("a testdata source");
    let tag = format!("/* @{marker} */");
    let index = text
        .lines()
        .position(|line| line.contains(&tag))
        .unwrap_or_else(|| panic!("no {tag} in {file}"));
    index as u32 + 1
}

/// The sorting program's inputs: three objects and an archive, in link order.
fn build_sorter(build: Build) -> Result<Vec<PathBuf>, Failed> {
    let dir = scratch_dir(&format!("debugger-{}", build.name()));
    let compile = |name: &str, extra: &[&str]| -> Result<PathBuf, Failed> {
        let object = dir.join(name).with_extension("o");
        checked(
            Command::new("cc")
                .arg("-c")
                .args(build.flags())
                .args(extra)
                .arg(source(name))
                .arg("-o")
                .arg(&object),
        )?;
        Ok(object)
    };
    let main = compile("main.c", &[])?;
    let sorter = compile("sorter.c", &[])?;
    let numbers = compile(
        "numbers.c",
        &["-ffunction-sections", "-fdata-sections", "-fcommon"],
    )?;
    let compare = compile("compare.c", &[])?;
    let archive = dir.join("libcompare.a");
    checked(Command::new("ar").arg("rcs").arg(&archive).arg(&compare))?;
    Ok(vec![main, sorter, numbers, archive])
}

/// `gdb -batch -nx` with `commands`, then `target` (`--args ...` or `-p PID`): its stdout.
fn gdb(commands: &[String], target: &[&str]) -> Result<String, Failed> {
    let mut command = Command::new("gdb");
    command.args(["-batch", "-nx"]);
    for line in commands {
        command.arg("-ex").arg(line);
    }
    command.args(target);
    let output = run_with_timeout(&mut command)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stdout.contains("Cannot insert breakpoint") || stderr.contains("Cannot insert breakpoint") {
        return Err(format!("gdb could not insert a breakpoint:\n{stdout}\n{stderr}").into());
    }
    Ok(stdout + "\n--- stderr\n" + &stderr)
}

/// What gdb said that does not depend on where things were loaded: breakpoint hits, frames
/// up to `main`, locals, values, `finish`'s lines; `Thread N "name" hit ` and every hex
/// number taken out.
fn essentials(output: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let mut below_main = false;
    for line in output.lines() {
        let line = match line.find(" hit Breakpoint ") {
            Some(at) if line.starts_with("Thread ") => &line[at + 5..],
            _ => line,
        };
        let frame = line.starts_with('#');
        if !frame {
            below_main = false;
        } else if below_main {
            continue;
        }
        let interesting = frame
            || is_hit(line)
            || line.starts_with("Run till exit")
            || line.starts_with("Value returned")
            || line.starts_with('$')
            || is_local(line);
        if !interesting {
            continue;
        }
        if frame && line.contains(" main (") {
            below_main = true;
        }
        kept.push(without_hex(line));
    }
    kept
}

/// `Breakpoint N, function (...) at file:line`: a stop at a breakpoint (not its creation,
/// which differs: pending under rjitlink, resolved at once natively).
fn is_hit(line: &str) -> bool {
    line.strip_prefix("Breakpoint ").is_some_and(|rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(", ")
    })
}

/// `name = value`, as `info locals` prints a variable.
fn is_local(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn without_hex(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - at - 2);
        out.push_str("0x?");
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// Err naming what is missing unless some line of `output` contains each of `parts` in order.
fn expect_line(output: &str, parts: &[&str]) -> Result<(), Failed> {
    let found = output.lines().any(|line| {
        let mut rest = line;
        parts.iter().all(|part| match rest.find(part) {
            Some(at) => {
                rest = &rest[at + part.len()..];
                true
            }
            None => false,
        })
    });
    if found {
        Ok(())
    } else {
        Err(format!("no line with {parts:?} in gdb's output:\n{output}").into())
    }
}

/// The commands of the in-process session: pending breakpoints by function (an archive
/// member's, called by libc's qsort) and by file:line, backtraces, `step` from main into
/// another object, locals, a common symbol and a string, and `finish`.
fn in_process_commands() -> Vec<String> {
    vec![
        "set breakpoint pending on".to_owned(),
        "break compare_numbers".to_owned(),
        format!("break main.c:{}", line_of("main.c", "main-square-sum")),
        "run".to_owned(),
        "bt".to_owned(),
        "delete 1".to_owned(),
        "continue".to_owned(),
        "step".to_owned(),
        "bt".to_owned(),
        format!("break numbers.c:{}", line_of("numbers.c", "square-return")),
        "continue".to_owned(),
        "bt".to_owned(),
        "info locals".to_owned(),
        "print calls".to_owned(),
        "print greeting".to_owned(),
        "finish".to_owned(),
        "kill".to_owned(),
    ]
}

fn gdb_in_process(build: Build) -> Result<(), Failed> {
    let inputs = build_sorter(build)?;
    let commands = in_process_commands();
    let mut jit_args = vec!["--args", rjitlink(), "run"];
    let input_args: Vec<&str> = inputs.iter().map(|p| p.to_str().unwrap()).collect();
    jit_args.extend(&input_args);
    let jit = gdb(&commands, &jit_args)?;

    let native = inputs[0].with_file_name("native");
    checked(Command::new("cc").args(&inputs).arg("-o").arg(&native))?;
    let native_output = gdb(&commands, &["--args", native.to_str().unwrap()])?;
    let (ours, theirs) = (essentials(&jit), essentials(&native_output));
    if ours != theirs {
        return Err(format!(
            "gdb prints the JIT-linked program unlike the native one\n=== rjitlink:\n{}\n=== native:\n{}\n=== full rjitlink output:\n{jit}",
            ours.join("\n"),
            theirs.join("\n")
        )
        .into());
    }
    // And what it prints is the source: names, files and lines, locals, values.
    let compare = format!("compare.c:{}", line_of("compare.c", "compare-first"));
    let qsort = format!("sorter.c:{}", line_of("sorter.c", "sorter-qsort"));
    let main_sort = format!("main.c:{}", line_of("main.c", "main-sort"));
    let square = format!("numbers.c:{}", line_of("numbers.c", "square-return"));
    let main_call = format!("main.c:{}", line_of("main.c", "main-square-sum"));
    let square_sum = format!("numbers.c:{}", line_of("numbers.c", "square-sum-first"));
    expect_line(&jit, &["#0", "compare_numbers (a=", "b="])?;
    expect_line(&jit, &["qsort"])?;
    // At -O2 gdb adds `@entry` values: `n=n@entry=4`.
    expect_line(
        &jit,
        &[" in sort_numbers (numbers=", "count=", "4) at ", &qsort],
    )?;
    expect_line(&jit, &[" in main (", ") at ", &main_sort])?;
    expect_line(&jit, &["Breakpoint 3, square (x=", "1) at ", &square])?;
    expect_line(&jit, &["Value returned is ", " = 1"])?;
    expect_line(&jit, &[" = 0x", " \"sorted\""])?;
    expect_line(&jit, &["Breakpoint 2, main (", ") at ", &main_call])?;
    expect_line(&jit, &["square_sum (n=", "4) at ", "numbers.c:"])?;
    if let Build::O0 = build {
        // At -O0 every line is where the source says.
        expect_line(&jit, &["compare_numbers (a=", ") at ", &compare])?;
        expect_line(&jit, &["result = 1"])?;
        expect_line(&jit, &["$1 = 1"])?;
        expect_line(&jit, &["square_sum (n=4) at ", &square_sum])?;
    }
    Ok(())
}

/// `rjitlink run` in `mode`, ended (with the executor) however the test ends.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The spawned executor dies with its linker (PR_SET_PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why attaching to another process cannot work here, if it cannot: Yama's ptrace_scope 3
/// forbids it to everyone.
fn ptrace_forbidden() -> Option<String> {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
    (scope.trim() == "3").then(|| "kernel.yama.ptrace_scope is 3: no process may attach".into())
}

/// Where the attached program runs.
#[derive(Clone, Copy, Debug)]
enum Executor {
    /// `--executor=remote` with this `--memory`.
    Spawned(&'static str),
    /// An `rjitlink executor --listen`, which runs the program in a process of its own.
    Tcp,
}

/// gdb attaches to the process of a remote executor that runs the program, which waits for
/// `go`: it sets a breakpoint, lets the program go, and stops in it with names, lines and
/// locals.
fn gdb_attached(build: Build, executor: Executor) -> Result<(), Failed> {
    if let Some(reason) = ptrace_forbidden() {
        println!("skipped: {reason}");
        return Ok(());
    }
    let inputs = build_sorter(build)?;
    let mut command = Command::new(rjitlink());
    command.arg("run");
    // Ends the listener as the test ends.
    let mut _listener = None;
    match executor {
        Executor::Spawned(memory) => {
            command.args(["--executor=remote", memory]);
        }
        Executor::Tcp => {
            let listener = harness::tcp::TcpExecutor::start()?;
            command
                .arg(listener.flag())
                .env("RJITLINK_TOKEN", harness::tcp::TEST_TOKEN);
            _listener = Some(listener);
        }
    }
    command
        .args(&inputs)
        .args(["--", "wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = Running {
        child: command.spawn().map_err(|e| e.to_string())?,
    };
    let stdout = running.child.stdout.take().expect("piped");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let ready = received
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the program never said it was ready")?
        .map_err(|e| e.to_string())?;
    let pid = ready
        .strip_prefix("ready ")
        .ok_or_else(|| format!("unexpected first line {ready:?}"))?
        .to_owned();
    let commands: Vec<String> = [
        &format!("break numbers.c:{}", line_of("numbers.c", "square-return")),
        "set var go = 1",
        "continue",
        "bt",
        "info locals",
        "finish",
        "kill",
    ]
    .map(|command| command.to_owned())
    .to_vec();
    let output = gdb(&commands, &["-p", &pid])?;
    if output.contains("ptrace: Operation not permitted") {
        println!(
            "skipped: this process may not attach to another (ptrace: Operation not permitted)"
        );
        return Ok(());
    }
    let square = format!("numbers.c:{}", line_of("numbers.c", "square-return"));
    let main_call = format!("main.c:{}", line_of("main.c", "main-square-sum"));
    expect_line(&output, &["Breakpoint 1, square (x=", "1) at ", &square])?;
    expect_line(
        &output,
        &["#1 ", " in square_sum (n=", "4) at ", "numbers.c:"],
    )?;
    expect_line(&output, &[" in main (", ") at ", &main_call])?;
    expect_line(&output, &["Value returned is ", " = 1"])?;
    if let Build::O0 = build {
        expect_line(&output, &["result = 1"])?;
    }
    // Killed by gdb: the linker says so.
    let status = wait_or_kill(&mut running.child)?.ok_or("rjitlink did not end")?;
    if status.code() != Some(128 + libc::SIGKILL) {
        return Err(format!("rjitlink ended with {status}, not as its killed executor").into());
    }
    Ok(())
}

/// An inline C++ function defined in two objects (a COMDAT group each): one copy is linked,
/// and gdb sees that one only, called from both objects.
fn comdat_copies() -> Result<(), Failed> {
    let dir = scratch_dir("debugger-comdat");
    let mut objects = Vec::new();
    for name in ["comdat_main.cc", "comdat_other.cc"] {
        let object = dir.join(name).with_extension("o");
        checked(
            Command::new("c++")
                .args(["-c", "-g", "-O0"])
                .arg(source(name))
                .arg("-o")
                .arg(&object),
        )?;
        objects.push(object);
    }
    let commands: Vec<String> = [
        "set breakpoint pending on",
        "break twice",
        "run",
        "info breakpoints",
        "continue",
        "bt",
        "kill",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut args = vec!["--args", rjitlink(), "run"];
    args.extend(objects.iter().map(|p| p.to_str().unwrap()));
    let output = gdb(&commands, &args)?;
    let twice = format!("comdat.h:{}", line_of("comdat.h", "twice-return") - 1);
    let other_call = format!(
        "comdat_other.cc:{}",
        line_of("comdat_other.cc", "comdat-other-call")
    );
    expect_line(&output, &["Breakpoint 1, twice (x=20) at ", &twice])?;
    expect_line(&output, &["Breakpoint 1, twice (x=1) at ", &twice])?;
    expect_line(&output, &[" in other (x=1) at ", &other_call])?;
    expect_line(&output, &[" in main () at ", "comdat_main.cc:"])?;
    // One location: the discarded copy is no function.
    if output.lines().any(|line| line.starts_with("1.2 ")) {
        return Err(
            format!("the breakpoint has a location in the discarded copy:\n{output}").into(),
        );
    }
    Ok(())
}

/// Without `--no-debugger-support` nothing is registered: the breakpoint stays pending.
fn switched_off() -> Result<(), Failed> {
    let inputs = build_sorter(Build::O0)?;
    let commands: Vec<String> = ["set breakpoint pending on", "break square", "run"]
        .map(str::to_owned)
        .to_vec();
    let mut args = vec!["--args", rjitlink(), "run", "--no-debugger-support"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let output = gdb(&commands, &args)?;
    if output.contains("Breakpoint 1, ") {
        return Err(format!("gdb saw the code with debugger support off:\n{output}").into());
    }
    expect_line(&output, &["sorted 1 3 5 9, 30 after 4 calls"])?;
    Ok(())
}

/// The executor bounds what it holds for debuggers before reading a byte of it, and
/// unregisters only what it registered.
fn executor_limits() -> Result<(), Failed> {
    use rjitlink_protocol::{DebugObjectHeader, Request, Response};
    let executor = harness::tcp::TcpExecutor::start()?;
    let mut connection = harness::tcp::connect(&executor.address)?;
    match connection.call(&Request::UnregisterDebugObjects { handles: vec![7] }) {
        Ok(Response::Failed(message))
            if message == b"no debug object with handle 7 is registered" => {}
        other => return Err(format!("an unknown handle was not refused: {other:?}").into()),
    }
    // 1 TiB announced, nothing sent: refused at once, and the connection ends (the bytes
    // that would follow cannot be skipped).
    let huge = Request::RegisterDebugObjects {
        objects: vec![DebugObjectHeader {
            name: b"huge.o",
            size: 1 << 40,
        }],
    };
    match connection.call(&huge) {
        Ok(Response::Failed(message))
            if String::from_utf8_lossy(message)
                .starts_with("refused: debug objects of more than") => {}
        other => return Err(format!("a huge debug object was not refused: {other:?}").into()),
    }
    if connection.call(&Request::Shutdown).is_ok() {
        return Err("the connection went on after a refused announcement".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for build in [Build::O0, Build::O2] {
        trials.push(Trial::test(
            format!("debugger::in_process::{}", build.name()),
            move || gdb_in_process(build),
        ));
        trials.push(Trial::test(
            format!("debugger::attached_to_executor::shared::{}", build.name()),
            move || gdb_attached(build, Executor::Spawned("--memory=shared")),
        ));
    }
    trials.push(Trial::test(
        "debugger::attached_to_executor::copy::O0",
        || gdb_attached(Build::O0, Executor::Spawned("--memory=copy")),
    ));
    trials.push(Trial::test(
        "debugger::attached_to_executor::tcp::O0",
        || gdb_attached(Build::O0, Executor::Tcp),
    ));
    trials.push(Trial::test("debugger::comdat_copies", comdat_copies));
    trials.push(Trial::test("debugger::switched_off", switched_off));
    trials.push(Trial::test("debugger::executor_limits", executor_limits));
    libtest_mimic::run(&args, trials).exit();
}
