//! Crash reports (testdata/crash): a program that dies of SIGSEGV, SIGBUS, SIGFPE, SIGABRT,
//! SIGILL or SIGTRAP gets one report on stderr whose frames name the function, the source line of the
//! fault (found by its `CRASH(kind)` marker in the source, not written into the test) and the
//! object, and dies of the same signal as its native build — in every executor mode. A crash
//! three frames deep across an object and an archive member names each frame; a crash in a
//! thread names the thread's function; a program with its own SIGSEGV handler gets no report;
//! a child the program forks reports raw addresses (it has no helper thread); callers of code
//! without unwind tables are found by frame pointers; and
//! `--no-crash-report` turns reports off.

use crate::harness::case::{Build, Case};
use crate::harness::mode::Mode;
use crate::harness::process::run_with_timeout;
use libtest_mimic::{Failed, Trial};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crashes of testdata/crash/crash.c: its argument, the signal, and the frames the report
/// must show, innermost first (see `Frame`).
const CRASHES: [(&str, i32, &[Frame]); 8] = [
    (
        "segv",
        libc::SIGSEGV,
        &[Frame::at("main", "crash.c", "CRASH(segv)", "crash.o")],
    ),
    (
        "bus",
        libc::SIGBUS,
        &[Frame::at("main", "crash.c", "CRASH(bus)", "crash.o")],
    ),
    (
        "fpe",
        libc::SIGFPE,
        &[
            Frame::at("divide", "crash.c", "CRASH(fpe)", "crash.o"),
            Frame::any("main", "crash.c", "crash.o"),
        ],
    ),
    // abort() raises SIGABRT in libc: the linked frame comes after libc's.
    (
        "abort",
        libc::SIGABRT,
        &[Frame::at("main", "crash.c", "CRASH(abort)", "crash.o")],
    ),
    (
        "trap",
        libc::SIGILL,
        &[Frame::at("main", "crash.c", "CRASH(trap)", "crash.o")],
    ),
    (
        "int3",
        libc::SIGTRAP,
        &[Frame::at("main", "crash.c", "CRASH(int3)", "crash.o")],
    ),
    (
        "deep",
        libc::SIGSEGV,
        &[
            Frame::at(
                "second",
                "crash_member.c",
                "CRASH(deep)",
                "(crash_member.o)",
            ),
            Frame::at("first", "crash_deep.c", "CALL(first)", "crash_deep.o"),
            Frame::at("main", "crash.c", "CALL(main)", "crash.o"),
        ],
    ),
    (
        "thread",
        libc::SIGSEGV,
        &[Frame::at(
            "thread_main",
            "crash.c",
            "CRASH(thread)",
            "crash.o",
        )],
    ),
];

/// A linked frame a report must show, in order after the previous one.
struct Frame {
    /// The function's name starts with this (GCC may name a split-off part `main.cold`).
    function: &'static str,
    file: &'static str,
    /// The marker on the line the frame must name; `None`: any line of the file.
    marker: Option<&'static str>,
    /// Part of the object's name in the frame's `[...]`.
    object: &'static str,
}

impl Frame {
    const fn at(
        function: &'static str,
        file: &'static str,
        marker: &'static str,
        object: &'static str,
    ) -> Frame {
        Frame {
            function,
            file,
            marker: Some(marker),
            object,
        }
    }

    const fn any(function: &'static str, file: &'static str, object: &'static str) -> Frame {
        Frame {
            function,
            file,
            marker: None,
            object,
        }
    }

    /// Whether `line` (a frame of the report) is this frame.
    fn matches(&self, line: &str) -> Result<bool, Failed> {
        let Some((_, described)) = line.split_once(" in ") else {
            return Ok(false);
        };
        let file_line = match self.marker {
            Some(marker) => format!("{}:{})", self.file, marker_line(self.file, marker)?),
            None => format!("{}:", self.file),
        };
        Ok(described.starts_with(self.function)
            && described.contains(&file_line)
            && described.contains(&format!("{}]", self.object)))
    }
}

fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/crash")
}

/// The number of the line of testdata/crash/`file` that carries `marker`.
fn marker_line(file: &str, marker: &str) -> Result<usize, Failed> {
    let path = crash_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(&format!("// {marker}")));
    match (lines.next(), lines.next()) {
        (Some((index, _)), None) => Ok(index + 1),
        _ => Err(format!("{file}: not exactly one line marked {marker}").into()),
    }
}

/// The frame lines of the report in `stderr`; Err unless there is exactly one report, of
/// `signal`.
fn report_frames(stderr: &str, signal: &str) -> Result<Vec<String>, Failed> {
    let headers: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("rjitlink: crash: "))
        .collect();
    if headers.len() != 1 || !headers[0].starts_with(&format!("rjitlink: crash: {signal}")) {
        return Err(format!("expected one report of {signal}, stderr:\n{stderr}").into());
    }
    Ok(stderr
        .lines()
        .skip_while(|line| !line.starts_with("rjitlink: crash: "))
        .skip(1)
        .take_while(|line| line.starts_with("  #"))
        .map(str::to_owned)
        .collect())
}

/// Err unless `frames` show `expected` in order (other frames may come between).
fn check_frames(frames: &[String], expected: &[Frame]) -> Result<(), Failed> {
    let mut rest = frames.iter();
    for frame in expected {
        let mut found = false;
        for line in rest.by_ref() {
            if frame.matches(line)? {
                found = true;
                break;
            }
        }
        if !found {
            return Err(format!(
                "no frame {} ({}:{}) [{}] in order in the report:\n{}",
                frame.function,
                frame.file,
                frame.marker.unwrap_or("*"),
                frame.object,
                frames.join("\n")
            )
            .into());
        }
    }
    Ok(())
}

/// Err unless `output` is rjitlink dying of `signal` in `mode` as the native program did: in
/// process by the signal itself, remotely with 128 + its number.
fn check_ending(output: &Output, mode: Mode, signal: i32) -> Result<(), Failed> {
    let ok = match mode {
        Mode::InProcess => output.status.signal() == Some(signal),
        _ => output.status.code() == Some(128 + signal),
    };
    if !ok {
        return Err(format!(
            "{}: ended {}, not by signal {signal}",
            mode.name(),
            output.status
        )
        .into());
    }
    Ok(())
}

fn run_native(case: &Case, argument: &str) -> Result<Output, Failed> {
    let exe = case.link_native()?;
    run_with_timeout(Command::new(exe).arg0(&case.inputs[0]).arg(argument))
}

fn crash_case(build: Build) -> Result<Case, Failed> {
    Case::new(&crash_dir().join("crash.c"), build)
}

pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for build in [Build::O0, Build::O2Pic] {
        trials.push(Trial::test(
            format!("crash_reports::name_the_line::{}", build.name()),
            move || {
                let mut case = crash_case(build)?;
                for (argument, signal, frames) in CRASHES {
                    let native = run_native(&case, argument)?;
                    if native.status.signal() != Some(signal) {
                        return Err(format!("{argument}: natively {}", native.status).into());
                    }
                    case.args = vec![argument.to_owned()];
                    for mode in Mode::ALL {
                        let output = case.run_jit(mode, &[])?;
                        let context = |e: Failed| -> Failed {
                            format!("{argument}, {}: {}", mode.name(), e.message().unwrap_or(""))
                                .into()
                        };
                        check_ending(&output, mode, signal).map_err(context)?;
                        if output.stdout != native.stdout {
                            return Err(context("stdout differs from the native run".into()));
                        }
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        let name = rjitlink_target_signal_name(signal);
                        let report = report_frames(&stderr, name).map_err(context)?;
                        check_frames(&report, frames).map_err(context)?;
                    }
                }
                Ok(())
            },
        ));
    }
    trials.push(Trial::test(
        "crash_reports::a_handler_of_the_programs_replaces_them",
        || {
            let mut case = crash_case(Build::O0)?;
            let native = run_native(&case, "own-handler")?;
            case.args = vec!["own-handler".to_owned()];
            for mode in Mode::ALL {
                let output = case.run_jit(mode, &[])?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                if output.status.code() != Some(3)
                    || native.status.code() != Some(3)
                    || output.stdout != native.stdout
                    || stderr.contains("rjitlink: crash")
                {
                    return Err(format!("{}: {output:?}", mode.name()).into());
                }
            }
            Ok(())
        },
    ));
    trials.push(Trial::test(
        "crash_reports::a_forked_child_reports_raw_addresses",
        || {
            let mut case = crash_case(Build::O0)?;
            let native = run_native(&case, "fork-child")?;
            case.args = vec!["fork-child".to_owned()];
            for mode in Mode::ALL {
                let output = case.run_jit(mode, &[])?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                // The child has no helper thread: the handler writes the addresses itself.
                if output.status.code() != Some(0)
                    || output.stdout != native.stdout
                    || !native.stdout.ends_with(b"child: SIGSEGV\n")
                    || !stderr.contains("rjitlink: crash: signal 11 at address 0x0\n  0x")
                {
                    return Err(format!("{}: {output:?}", mode.name()).into());
                }
            }
            Ok(())
        },
    ));
    trials.push(Trial::test(
        "crash_reports::callers_of_code_without_unwind_tables_by_frame_pointers",
        || {
            // -O0 keeps frame pointers; the assembly has no unwind information.
            let mut case = crash_case(Build::O0)?;
            let native = run_native(&case, "no-cfi")?;
            if native.status.signal() != Some(libc::SIGSEGV) {
                return Err(format!("natively {}", native.status).into());
            }
            case.args = vec!["no-cfi".to_owned()];
            let caller = Frame::at("no_cfi_caller", "crash.c", "CALL(no-cfi)", "crash.o");
            for mode in Mode::ALL {
                let output = case.run_jit(mode, &[])?;
                check_ending(&output, mode, libc::SIGSEGV)?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                let frames = report_frames(&stderr, "SIGSEGV")?;
                let innermost = frames.first().map(String::as_str).unwrap_or("");
                let fail = || format!("{}: report:\n{}", mode.name(), frames.join("\n"));
                if !innermost.contains(" in fault_without_cfi+0x")
                    || !innermost.ends_with("no_cfi.o]")
                    || frames.len() < 2
                    || !caller.matches(&frames[1])?
                {
                    return Err(fail().into());
                }
            }
            Ok(())
        },
    ));
    trials.push(Trial::test(
        "crash_reports::never_written_into_a_file_on_a_closed_stderr",
        || {
            // Started with standard error closed, the program's file gets descriptor 2:
            // neither the report of its crash nor a forked child's raw one may land there.
            let case = crash_case(Build::O0)?;
            let dir = crate::harness::scratch::scratch_dir("crash-stderr-closed");
            let close_stderr = |command: &mut Command| {
                // SAFETY: close is async-signal-safe.
                unsafe {
                    command.pre_exec(|| {
                        libc::close(2);
                        Ok(())
                    })
                };
            };
            let native_file = dir.join("native.txt");
            let mut native = Command::new(case.link_native()?);
            native
                .arg0(&case.inputs[0])
                .arg("stderr-closed")
                .arg(&native_file);
            close_stderr(&mut native);
            let native = run_with_timeout(&mut native)?;
            let native_bytes = std::fs::read(&native_file)?;
            if native.status.signal() != Some(libc::SIGSEGV) || native_bytes != b"data\n" {
                return Err(format!("natively {native:?}, file {native_bytes:?}").into());
            }
            for mode in Mode::ALL {
                let file = dir.join(format!("{}.txt", mode.name()));
                let output = crate::harness::case::run_jit(mode, None, |flags| {
                    let mut command = case.rjitlink_command(flags);
                    command.arg("stderr-closed").arg(&file);
                    close_stderr(&mut command);
                    command
                })?;
                check_ending(&output, mode, libc::SIGSEGV)?;
                let bytes = std::fs::read(&file)?;
                if bytes != native_bytes || output.stdout != native.stdout {
                    return Err(format!(
                        "{}: the program's file holds {:?}, stdout {:?}",
                        mode.name(),
                        String::from_utf8_lossy(&bytes),
                        String::from_utf8_lossy(&output.stdout)
                    )
                    .into());
                }
            }
            Ok(())
        },
    ));
    trials.push(Trial::test(
        "crash_reports::name_sources_rjitlink_compiled",
        || {
            // rjitlink compiles crash.c and crash_deep.c itself: their frames name the
            // sources, not the memory files the compiler wrote the objects into.
            let mut case = crash_case(Build::O0)?;
            case.args = vec!["deep".to_owned()];
            let output = run_with_timeout(&mut case.rjitlink_sources_command(&[]))?;
            check_ending(&output, Mode::InProcess, libc::SIGSEGV)?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let report = report_frames(&stderr, "SIGSEGV")?;
            check_frames(
                &report,
                &[
                    Frame::at(
                        "second",
                        "crash_member.c",
                        "CRASH(deep)",
                        "(crash_member.o)",
                    ),
                    Frame::at("first", "crash_deep.c", "CALL(first)", "crash_deep.c"),
                    Frame::at("main", "crash.c", "CALL(main)", "crash.c"),
                ],
            )?;
            if stderr.contains("/proc/self/fd") {
                return Err(format!("a memory file named in the report:\n{stderr}").into());
            }
            Ok(())
        },
    ));
    trials.push(Trial::test("crash_reports::can_be_turned_off", || {
        let mut case = crash_case(Build::O0)?;
        case.args = vec!["segv".to_owned()];
        for mode in Mode::ALL {
            let output = case.run_jit(mode, &["--no-crash-report"])?;
            check_ending(&output, mode, libc::SIGSEGV)?;
            if String::from_utf8_lossy(&output.stderr).contains("rjitlink: crash") {
                return Err(format!("{}: reported: {output:?}", mode.name()).into());
            }
        }
        Ok(())
    }));
    trials
}

/// The signal's name as reports print it.
fn rjitlink_target_signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        _ => "?",
    }
}
