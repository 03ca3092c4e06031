//! Trials that a program behaves under rjitlink as natively where the corpus cannot say so
//! with a native run's output alone: a writer whose reader goes away (`| head -1`), the signal
//! state a user starts rjitlink with (nohup, `trap '' PIPE`, a blocked signal), standard
//! descriptors the user closed, signals a library's constructor sets up, and signals for the
//! program: Ctrl-C, and one sent to rjitlink.

use crate::harness::case::{Build, Case};
use crate::harness::mode::Mode;
use crate::harness::process::{checked, run_with_timeout, wait_or_kill, RUN_TIMEOUT};
use crate::harness::tcp::{TcpExecutor, TEST_TOKEN};
use libtest_mimic::{Failed, Trial};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "native_behaviour::sigpipe_ends_a_writer_whose_reader_left",
            || {
                // `write_forever | head -1`: natively the writer dies by SIGPIPE. (Under TCP the
                // program's stdout is the listener's until TCP executors forward it.)
                let case = program("cli", "write_forever.c")?;
                let native = read_one_line(&mut Command::new(case.link_native()?))?;
                if native.0.signal() != Some(libc::SIGPIPE) {
                    return Err(format!("natively: {native:?}").into());
                }
                for mode in [Mode::InProcess, Mode::Remote, Mode::RemoteCopy] {
                    let (status, stderr) = read_one_line(&mut case.rjitlink_command(flags(mode)))?;
                    let ok = match mode {
                        Mode::InProcess => status.signal() == Some(libc::SIGPIPE),
                        _ => {
                            status.code() == Some(128 + libc::SIGPIPE)
                                && stderr.contains("executor terminated by signal SIGPIPE")
                        }
                    };
                    if !ok {
                        return Err(format!("{}: {status}, stderr {stderr:?}", mode.name()).into());
                    }
                }
                Ok(())
            },
        ),
        Trial::test(
            "native_behaviour::program_inherits_the_users_signal_state",
            || {
                // Started by a parent that blocks and ignores signals, the program has the same
                // mask and ignored signals as natively, in every mode: for TCP, the listener is
                // the one so started. In process, also when rjitlink runs itself again for static
                // TLS (the library needs more than the default surplus).
                let mut case = program("c", "signal_state.c")?;
                let native =
                    run_with_timeout(users_signal_state(&mut Command::new(case.link_native()?)))?;
                let expected = String::from_utf8_lossy(&native.stdout).into_owned();
                if !["blocked: 2 10 34\n", "1: ignored\n", "13: ignored\n"]
                    .iter()
                    .all(|line| expected.contains(line))
                {
                    return Err(format!("the native run did not inherit: {expected}").into());
                }
                let check = |what: &str, stdout: &[u8]| -> Result<(), Failed> {
                    if stdout != native.stdout {
                        return Err(format!(
                            "{what}: expected\n{expected}got\n{}",
                            String::from_utf8_lossy(stdout)
                        )
                        .into());
                    }
                    Ok(())
                };
                for mode in [Mode::InProcess, Mode::Remote, Mode::RemoteCopy] {
                    let output = run_with_timeout(users_signal_state(
                        &mut case.rjitlink_command(flags(mode)),
                    ))?;
                    check(mode.name(), &output.stdout)?;
                }
                let mut listener = Command::new(crate::harness::rjitlink());
                users_signal_state(&mut listener);
                let executor = TcpExecutor::start_with(listener)?;
                let mut command = case.rjitlink_command(&[&executor.flag()]);
                // The program's output comes back over the connection.
                let output = run_with_timeout(command.env("RJITLINK_TOKEN", TEST_TOKEN))?;
                check("tcp", &output.stdout)?;
                drop(executor);
                let library = crate::executor::static_tls_library(&case.dir, 8000)?;
                case.libs.push(library.display().to_string());
                let output = run_with_timeout(users_signal_state(&mut case.rjitlink_command(&[])))?;
                check("in process, run again for static TLS", &output.stdout)
            },
        ),
        Trial::test(
            "native_behaviour::closed_standard_descriptors_stay_closed",
            || {
                // `program <&- >&-`: the program finds stdin and stdout closed, and its first open
                // gets descriptor 0. (Not over TCP: there the program's streams are pipes to the
                // connection, which carries EOF but not a closed descriptor.)
                let case = program("cli", "standard_descriptors.c")?;
                let native = run_with_timeout(close_stdin_and_stdout(&mut Command::new(
                    case.link_native()?,
                )))?;
                let expected = "fd 0: closed\nfd 1: closed\nfd 2: open\nopen gives 0\n";
                if native.stderr != expected.as_bytes() {
                    return Err(format!("natively: {native:?}").into());
                }
                let runs = [Mode::InProcess, Mode::Remote, Mode::RemoteCopy]
                    .map(|mode| (mode.name(), case.rjitlink_command(flags(mode))));
                let mut restarted = program("cli", "standard_descriptors.c")?;
                let library = crate::executor::static_tls_library(&restarted.dir, 8000)?;
                restarted.libs.push(library.display().to_string());
                let runs = runs.into_iter().chain([(
                    "in process, run again for static TLS",
                    restarted.rjitlink_command(&[]),
                )]);
                for (what, mut command) in runs {
                    let output = run_with_timeout(close_stdin_and_stdout(&mut command))?;
                    if output.stderr != native.stderr || !output.status.success() {
                        return Err(format!("{what}: {output:?}").into());
                    }
                }
                Ok(())
            },
        ),
        Trial::test(
            "native_behaviour::a_child_outliving_the_program_does_not_hold_rjitlink",
            || {
                // The program's child lives on, detached; the program ends with _exit(2). rjitlink
                // ends with it, however long the child lives.
                let case = program("cli", "daemon_child.c")?;
                for mode in [Mode::InProcess, Mode::Remote, Mode::RemoteCopy] {
                    let start = Instant::now();
                    let output = run_with_timeout(&mut case.rjitlink_command(flags(mode)))?;
                    let took = start.elapsed();
                    let child = String::from_utf8_lossy(&output.stdout)
                        .trim()
                        .parse::<i32>();
                    if let Ok(child) = child {
                        // SAFETY: ending the process the program left behind.
                        unsafe { libc::kill(child, libc::SIGKILL) };
                    }
                    if output.status.code() != Some(2)
                        || child.is_err()
                        || took > Duration::from_secs(10)
                    {
                        return Err(format!("{}: {output:?} after {took:?}", mode.name()).into());
                    }
                }
                Ok(())
            },
        ),
        Trial::test(
            "native_behaviour::library_constructors_keep_their_signals",
            || {
                // A library the program links sets signals up in its constructor: the program
                // starts with them, as natively, in every mode.
                let mut case = program("c", "signal_state.c")?;
                let source =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cli/lib/signal_library.c");
                let library = case.dir.join("libsignal_library.so");
                checked(
                    Command::new("cc")
                        .args(["-shared", "-fPIC"])
                        .arg(&source)
                        .arg("-o")
                        .arg(&library),
                )?;
                case.libs.push(library.display().to_string());
                // Loaded though nothing in the program refers to it, as rjitlink loads it.
                case.native_ldflags.push("-Wl,--no-as-needed".to_owned());
                for mode in Mode::ALL {
                    case.compare_with_native(mode)
                        .map_err(|e| format!("{}: {}", mode.name(), e.message().unwrap_or("")))?;
                }
                Ok(())
            },
        ),
        Trial::test("native_behaviour::ctrl_c_reaches_the_program", || {
            // Ctrl-C on the program's terminal: the terminal sends SIGINT to the foreground
            // process group, which the program handles. Under a remote executor rjitlink must
            // not die of it (killing the executor before the program is done).
            let case = program("cli", "interrupted.c")?;
            let expected = "ready\nreceived SIGINT\n";
            let mut runs = vec![("natively", Command::new(case.link_native()?))];
            for mode in [Mode::InProcess, Mode::Remote, Mode::RemoteCopy] {
                runs.push((mode.name(), case.rjitlink_command(flags(mode))));
            }
            for (what, mut command) in runs {
                let terminal = Terminal::open()?;
                let mut child = terminal.control(&mut command)?;
                wait_for_ready(&mut child)?;
                terminal.type_ctrl_c()?;
                check_ending(what, child, expected)?;
            }
            Ok(())
        }),
        Trial::test(
            "native_behaviour::a_signal_sent_to_rjitlink_reaches_the_program",
            || {
                // `kill PID` of what the user started: the program handles SIGTERM. Under a remote
                // executor rjitlink passes it on.
                let case = program("cli", "interrupted.c")?;
                let expected = "ready\nreceived SIGTERM\n";
                let mut runs = vec![("natively", Command::new(case.link_native()?))];
                for mode in [Mode::InProcess, Mode::Remote, Mode::RemoteCopy] {
                    runs.push((mode.name(), case.rjitlink_command(flags(mode))));
                }
                for (what, mut command) in runs {
                    let mut child = command
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| format!("{what}: {e}"))?;
                    wait_for_ready(&mut child)?;
                    // SAFETY: sending a signal to our own child.
                    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                    check_ending(what, child, expected)?;
                }
                Ok(())
            },
        ),
    ]
}

/// A pseudo-terminal, to be the controlling terminal of a program under test.
struct Terminal {
    master: std::os::fd::OwnedFd,
    slave: std::ffi::CString,
}

impl Terminal {
    fn open() -> Result<Terminal, Failed> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain calls on a new descriptor we own; ptsname's static buffer is copied
        // at once (this test thread is the only one using it).
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if master < 0 {
                return Err(format!("posix_openpt: {}", std::io::Error::last_os_error()).into());
            }
            let master = std::os::fd::OwnedFd::from_raw_fd(master);
            use std::os::fd::AsRawFd;
            let name = libc::ptsname(master.as_raw_fd());
            if libc::grantpt(master.as_raw_fd()) != 0
                || libc::unlockpt(master.as_raw_fd()) != 0
                || name.is_null()
            {
                return Err(format!("pseudo-terminal: {}", std::io::Error::last_os_error()).into());
            }
            let slave = std::ffi::CStr::from_ptr(name).to_owned();
            Ok(Terminal { master, slave })
        }
    }

    /// Spawn `command` as the leader of a new session whose controlling terminal (and stdin)
    /// is this one, so that it is the terminal's foreground process group, with stdout piped.
    fn control(&self, command: &mut Command) -> Result<std::process::Child, Failed> {
        let slave = self.slave.clone();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
                if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 || libc::dup2(fd, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {command:?}: {e}").into())
    }

    /// Ctrl-C, as typed on the terminal.
    fn type_ctrl_c(&self) -> Result<(), Failed> {
        use std::os::fd::AsRawFd;
        // SAFETY: writing one byte from a live buffer to our descriptor.
        if unsafe { libc::write(self.master.as_raw_fd(), b"\x03".as_ptr().cast(), 1) } != 1 {
            return Err(format!("cannot type Ctrl-C: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }
}

/// Read the program's first line, which must be `ready`: it has set its handlers up.
fn wait_for_ready(child: &mut std::process::Child) -> Result<(), Failed> {
    use std::io::Read;
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    // Byte by byte: the rest of the output is read with the ending.
    while line.last() != Some(&b'\n') {
        match stdout.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    if line != b"ready\n" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("expected `ready`, got {:?}", String::from_utf8_lossy(&line)).into());
    }
    Ok(())
}

/// The program must end by exiting 3 after printing the rest of `expected` (its first line was
/// read already).
fn check_ending(what: &str, mut child: std::process::Child, expected: &str) -> Result<(), Failed> {
    use std::io::Read;
    let Some(status) = wait_or_kill(&mut child)? else {
        return Err(format!("{what}: still running {RUN_TIMEOUT:?} after the signal").into());
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    if format!("ready\n{stdout}") != expected || status.code() != Some(3) {
        return Err(format!("{what}: {status}, stdout {stdout:?}, stderr {stderr:?}").into());
    }
    Ok(())
}

/// Make `command` start with stdin and stdout closed.
fn close_stdin_and_stdout(command: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec. (The stdio `Command` set up
    // is in place by then, and closed here.)
    unsafe {
        command.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            Ok(())
        })
    }
}

/// A program of testdata/`dir`, compiled at -O0.
fn program(dir: &str, name: &str) -> Result<Case, Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
        .join(name);
    Case::new(&source, Build::O0)
}

/// rjitlink's flags for a mode run on this machine.
fn flags(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::InProcess => &[],
        Mode::Remote => &["--executor=remote"],
        Mode::RemoteCopy => &["--executor=remote", "--memory=copy"],
        Mode::Tcp => unreachable!("a TCP executor is started by the test"),
    }
}

/// Make `command` start as the child of a user who blocked SIGINT, SIGUSR1 and a real-time
/// signal and ignored SIGHUP (nohup) and SIGPIPE (`trap '' PIPE`).
fn users_signal_state(command: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec, on memory of their own.
    unsafe {
        command.pre_exec(|| {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGINT, libc::SIGUSR1, 34] {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        })
    }
}

/// Run `command` as `command | head -1` would: read one line of its stdout, then close the
/// pipe. How it ended, and its stderr.
fn read_one_line(command: &mut Command) -> Result<(ExitStatus, String), Failed> {
    use std::io::{BufRead, Read};
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    drop(stdout);
    let Some(status) = wait_or_kill(&mut child)? else {
        return Err(
            format!("{command:?} still wrote {RUN_TIMEOUT:?} after its reader left").into(),
        );
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    Ok((status, stderr))
}
