//! Executor trials: the remote executor killed mid-run, signals, stdin, tokens, hostile
//! clients, protocol versions, how memory reaches it (shared or copied, and none left
//! behind), modules unloaded only by their handles, and the static TLS surplus that every
//! executor (and, when it must, the in-process run) gets while the program sees the user's
//! GLIBC_TUNABLES.

use crate::harness::case::{Build, Case};
use crate::harness::direct_writes::may_write_into_children;
use crate::harness::mode::Mode;
use crate::harness::process::{checked, expect_error, run_with_timeout, wait_or_kill, RUN_TIMEOUT};
use crate::harness::random::xorshift;
use crate::harness::rjitlink;
use crate::harness::scratch::scratch_dir;
use crate::harness::tcp::{self, TcpExecutor, TEST_TOKEN};
use libtest_mimic::{Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The remote executor's behaviour: death, signals, tokens, hostile clients, versions, stdin,
/// and how memory reaches it.
pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("executor::shared_memory_sends_no_code", || {
            // CPython's PIC archive: several MiB of code and data. From the transport's own
            // counters: shared memory sends under 2% of that; so does copying to a spawned
            // executor, whose memory the linker writes itself; copying over TCP sends most of
            // it (not the pages that are all zero: the executor's memory reads zero already).
            let dir = String::from_utf8(
                checked(Command::new("/usr/bin/python3.11-config").arg("--configdir"))?.stdout,
            )
            .map_err(|e| e.to_string())?;
            let dir = Path::new(dir.trim());
            let tcp = TcpExecutor::start()?;
            let tcp_flag = tcp.flag();
            // Copying to a spawned executor sends the image where the system refuses the
            // direct write (the fallback).
            let copy_sends = !may_write_into_children();
            for (executor, memory, sends_the_image) in [
                ("--executor=remote", "shared", false),
                ("--executor=remote", "copy", copy_sends),
                (tcp_flag.as_str(), "copy", true),
            ] {
                let output = checked(
                    Command::new(rjitlink())
                        .args(["run", "--noexec", "--show-stats", executor])
                        .arg(format!("--memory={memory}"))
                        .arg(dir.join("python.o"))
                        .arg(dir.join("libpython3.11-pic.a"))
                        .args(["-lm", "-lz", "-lexpat"])
                        .env("RJITLINK_TOKEN", TEST_TOKEN),
                )?;
                let (sent, linked) = parse_stats(&output.stderr)?;
                if linked < 4 << 20 {
                    return Err(format!("only {linked} bytes linked").into());
                }
                let ok = match sends_the_image {
                    false => sent * 50 < linked,
                    true => sent * 10 >= linked * 9,
                };
                if !ok {
                    return Err(format!(
                        "{executor} --memory={memory}: {sent} bytes sent for {linked} linked"
                    )
                    .into());
                }
            }
            Ok(())
        }),
        Trial::test(
            "executor::copy_sends_what_it_may_not_write_directly",
            || {
                // A spawned executor's memory is written from the linker (process_vm_writev);
                // where the system refuses that (here a seccomp filter, as Yama's ptrace_scope 2
                // or a container's policy would), the bytes are sent instead, and the program
                // runs the same.
                let dir = scratch_dir("direct_writes");
                let source = dir.join("table.c");
                std::fs::write(
                &source,
                "#include <stdio.h>\n\
                 static unsigned char table[256 << 10] = {[0 ... (256 << 10) - 1] = 7};\n\
                 int main(void) {\n\
                   unsigned long sum = 0;\n\
                   for (unsigned long i = 0; i < sizeof table; i++) sum += table[i] * (i % 5 + 1);\n\
                   printf(\"%lu\\n\", sum);\n\
                   return 0;\n\
                 }\n",
            )
            .map_err(|e| e.to_string())?;
                let expected: u64 = (0..256u64 << 10).map(|i| 7 * (i % 5 + 1)).sum();
                // The unfiltered run writes directly only where the system allows it.
                let allowed = may_write_into_children();
                for refused in [false, true] {
                    let mut command = Command::new(rjitlink());
                    command
                        .args(["run", "--show-stats", "--executor=remote", "--memory=copy"])
                        .arg(&source);
                    if refused {
                        refuse_process_vm_writev(&mut command);
                    }
                    let output = checked(&mut command)?;
                    let printed = String::from_utf8_lossy(&output.stdout);
                    if printed.trim() != expected.to_string() {
                        return Err(format!("refused {refused}: printed {printed}").into());
                    }
                    let (sent, _) = parse_stats(&output.stderr)?;
                    let ok = match refused || !allowed {
                        false => sent < 64 << 10,
                        true => sent >= 256 << 10,
                    };
                    if !ok {
                        return Err(format!("refused {refused}: {sent} bytes sent").into());
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
                Ok(())
            },
        ),
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
            let case = cli_case("sleeper.c")?;
            let executor = TcpExecutor::start()?;
            // The program's output is rjitlink's: its pid comes through the connection.
            let (client, pid) = spawn_reading_line(
                case.rjitlink_command(&[&executor.flag()])
                    .env("RJITLINK_TOKEN", TEST_TOKEN),
            )?;
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
            let executor = TcpExecutor::start()?;
            let tcp = executor.flag();
            for flag in ["--executor=remote", "--executor=in-process", &tcp] {
                let mut child = case
                    .rjitlink_command(&[flag])
                    .env("RJITLINK_TOKEN", TEST_TOKEN)
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
                &format!(
                    "protocol version mismatch: the executor speaks version {}, the linker version 99",
                    rjitlink_protocol::PROTOCOL_VERSION
                ),
            )
        }),
        Trial::test("executor::token_required", || {
            let case = cli_case("cat.c")?;
            let executor = TcpExecutor::start()?;
            let flag = executor.flag();
            for (token, error) in [
                (
                    Some("a-wrong-token-of-enough-length"),
                    "the executor closed the connection during the handshake (wrong or missing RJITLINK_TOKEN?)",
                ),
                (Some("short"), "RJITLINK_TOKEN must be at least 16 bytes long (it has 5)"),
                (None, "RJITLINK_TOKEN is not set"),
            ] {
                let mut command = case.rjitlink_command(&[&flag]);
                match token {
                    Some(token) => command.env("RJITLINK_TOKEN", token),
                    None => command.env_remove("RJITLINK_TOKEN"),
                };
                expect_error(&mut command, error)?;
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
            // Only the wrong token reached the executor: the others were stopped at home.
            if refused != 1 {
                return Err(format!(
                    "expected 1 refusal in the executor's log: {}",
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
            use rjitlink_protocol::{Request, Response};
            use std::os::fd::FromRawFd;
            for attack in [
                &b"\x0b\0\0\0\x02\0\0\0\0\0\0\0\x63\x01\x02"[..],
                b"write",
                b"write runs",
            ] {
                let mut connection = tcp::connect(&executor.address)?;
                // SAFETY: a second handle on the connection's socket, never closed by us.
                let stream = std::mem::ManuallyDrop::new(unsafe {
                    std::net::TcpStream::from_raw_fd(connection.transport().as_raw_fd())
                });
                let answer = if attack.starts_with(b"write") {
                    // 16 bytes to address 0x1000, which the executor never reserved.
                    let at = rjitlink_memory::TargetRange {
                        start: rjitlink_memory::TargetAddr(0x1000),
                        len: 16,
                    };
                    let answer = if attack == b"write" {
                        let write = Request::Write {
                            address: at.start,
                            length: 16,
                        };
                        connection.call_with_payload(&write, &[0xcc; 16])
                    } else {
                        let write = Request::WriteRuns {
                            writable: vec![at],
                            runs: vec![at],
                        };
                        connection.call_with_payloads(&write, &[&[0xcc; 16]])
                    };
                    match answer {
                        Ok(Response::Failed(message)) => {
                            String::from_utf8_lossy(message).into_owned()
                        }
                        other => format!("{other:?}"),
                    }
                } else {
                    let mut raw = &*stream;
                    let _ = raw.write_all(attack);
                    String::new()
                };
                if attack.starts_with(b"write") && !answer.contains("not inside memory reserved") {
                    return Err(format!("a wild write was not refused: {answer}").into());
                }
                let mut buffer = [0u8; 64];
                let mut raw = &*stream;
                match raw.read(&mut buffer) {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    other => {
                        return Err(format!("expected the connection closed, got {other:?}").into())
                    }
                }
            }
            // One that asks for pages outside the executor's memory to be made ready for its
            // own writes: refused, twice (no bytes follow, so the connection goes on).
            {
                let mut connection = tcp::connect(&executor.address)?;
                let at = rjitlink_memory::TargetRange {
                    start: rjitlink_memory::TargetAddr(0x1000),
                    len: 16,
                };
                for _ in 0..2 {
                    let prepare = Request::PrepareWrites {
                        writable: vec![at],
                        runs: vec![at],
                    };
                    let answer = match connection.call(&prepare) {
                        Ok(Response::Failed(message)) => {
                            String::from_utf8_lossy(message).into_owned()
                        }
                        other => format!("{other:?}"),
                    };
                    if !answer.contains("not inside memory reserved") {
                        return Err(format!("wild pages were made ready: {answer}").into());
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
        Trial::test("executor::modules_load_and_unload_by_handle_only", || {
            use rjitlink_protocol::{Request, Response};
            let dir = scratch_dir("modules");
            // 8000 bytes of initial-exec TLS fit the executor's surplus only (glibc leaves
            // about 1.5 KiB free by default); 32000 bytes fit nowhere.
            let image = read(&static_tls_library(&dir, 8000)?)?;
            let too_big = read(&static_tls_library(&dir, 32000)?)?;
            let executor = TcpExecutor::start()?;
            let mut connection = tcp::connect(&executor.address)?;
            let mut ask = |request: Request<'_>| -> Result<Answer, Failed> {
                Ok(
                    match connection.call(&request).map_err(|e| e.to_string())? {
                        Response::Done => Answer::Done,
                        Response::Failed(message) => {
                            Answer::Failed(String::from_utf8_lossy(message).into_owned())
                        }
                        Response::Module { handle, words } => Answer::Module(handle, words),
                        other => return Err(format!("unexpected answer {other:?}").into()),
                    },
                )
            };
            let load = |image, table_offset, table_count| Request::LoadModule {
                name: b"test module",
                image,
                table_offset,
                table_count,
            };
            let refused = |answer: Answer, expected: &str| -> Result<(), Failed> {
                match answer {
                    Answer::Failed(message) if message.contains(expected) => Ok(()),
                    other => Err(format!("expected a refusal with `{expected}`: {other:?}").into()),
                }
            };
            // Handles it never gave out are refused, and the connection goes on.
            refused(
                ask(Request::UnloadModule { handle: 0x1000 })?,
                "no module with handle 0x1000 is loaded",
            )?;
            for (offset, count) in [(image.len() as u64 - 8, 2), (8, u64::MAX), (u64::MAX, 1)] {
                refused(ask(load(&image, offset, count))?, "lies outside")?;
            }
            // The table is read from the loaded image: its first words are the ELF header.
            let handle = match ask(load(&image, 0, 2))? {
                Answer::Module(handle, words) => {
                    let expected: Vec<u64> = image[..16]
                        .chunks(8)
                        .map(|word| u64::from_le_bytes(word.try_into().unwrap()))
                        .collect();
                    if words != expected {
                        return Err(format!("table {words:x?}, expected {expected:x?}").into());
                    }
                    handle
                }
                other => return Err(format!("the module did not load: {other:?}").into()),
            };
            refused(
                ask(Request::UnloadModule { handle: handle + 8 })?,
                "no module with handle",
            )?;
            if !matches!(ask(Request::UnloadModule { handle })?, Answer::Done) {
                return Err("the module did not unload".into());
            }
            refused(
                ask(Request::UnloadModule { handle })?,
                "no module with handle",
            )?;
            // No room even in the executor's surplus: the user sees the hint.
            refused(
                ask(load(&too_big, 0, 1))?,
                "cannot allocate memory in static TLS block (the process's static TLS surplus is too small: start it with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=BYTES)",
            )?;
            if !matches!(ask(Request::Shutdown)?, Answer::Done) {
                return Err("not served after the refusals".into());
            }
            Ok(())
        }),
        Trial::test("executor::wild_initializers_are_refused", || {
            use rjitlink_memory::TargetAddr;
            use rjitlink_protocol::{Request, Response};
            // A unit's initializers and finalizers may be called only where the executor
            // holds code (or a library has a function): anything else is refused, nothing is
            // called, and the connection goes on.
            let executor = TcpExecutor::start()?;
            let mut connection = tcp::connect(&executor.address)?;
            let mut ask = |request: Request<'_>| -> Result<String, Failed> {
                match connection.call(&request).map_err(|e| e.to_string())? {
                    Response::Done => Ok("done".into()),
                    Response::Failed(message) => Ok(String::from_utf8_lossy(message).into_owned()),
                    other => Err(format!("unexpected answer {other:?}").into()),
                }
            };
            let wild = vec![TargetAddr(0x1000), TargetAddr(0x7fff_dead_0000)];
            for (request, what) in [
                (
                    Request::RunInitializers {
                        functions: wild.clone(),
                    },
                    "the init function",
                ),
                (
                    Request::RunFinalizers {
                        functions: wild.clone(),
                    },
                    "the fini function",
                ),
            ] {
                let answer = ask(request)?;
                let expected = format!(
                    "refused: {what} 0x1000 is neither code this executor holds nor a function of a loaded library"
                );
                if answer != expected {
                    return Err(format!("expected `{expected}`, got `{answer}`").into());
                }
            }
            for request in [
                Request::RunInitializers { functions: vec![] },
                Request::RunFinalizers { functions: vec![] },
                Request::Shutdown,
            ] {
                let answer = ask(request)?;
                if answer != "done" {
                    return Err(format!("not served after the refusals: {answer}").into());
                }
            }
            Ok(())
        }),
        Trial::test("executor::program_sees_the_users_tunables", || {
            let case = Case::new(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/c/tunables_environment.c"),
                Build::O0,
            )?;
            for user in USER_TUNABLES {
                let expected = format!(
                    "GLIBC_TUNABLES: {}\nRJITLINK_USER_GLIBC_TUNABLES: unset\n",
                    user.map_or("unset".to_owned(), |user| format!("[{user}]"))
                );
                for mode in [Mode::InProcess, Mode::Remote, Mode::Tcp] {
                    let output = run_with_tunables(&case, mode, user, b"")?;
                    if output.stdout != expected.as_bytes() || !output.status.success() {
                        return Err(format!("{} with {user:?}: {output:?}", mode.name()).into());
                    }
                }
            }
            Ok(())
        }),
        Trial::test("executor::static_tls_surplus", || {
            let mut case = cli_case("static_tls.c")?;
            let library = static_tls_library(&case.dir, 8000)?;
            case.libs = vec![library.display().to_string()];
            for user in USER_TUNABLES {
                // The user's surplus is theirs: with too small a one, nothing runs.
                if user.is_some_and(|user| user.contains("optional_static_tls")) {
                    continue;
                }
                let show = user.map_or("unset".to_owned(), |user| format!("[{user}]"));
                for mode in [Mode::InProcess, Mode::Remote, Mode::Tcp] {
                    // In process, rjitlink runs again with the surplus: stdin, the
                    // environment and the exit status must still be the program's.
                    let output = run_with_tunables(&case, mode, user, b"hello\n")?;
                    let expected = format!(
                        "GLIBC_TUNABLES: {show}\nRJITLINK_USER_GLIBC_TUNABLES: unset\nstdin: hello\ntouched: 8003\n"
                    );
                    if output.stdout != expected.as_bytes()
                        || output.status.code() != Some(7)
                        || !output.stderr.is_empty()
                    {
                        return Err(format!("{} with {user:?}: {output:?}", mode.name()).into());
                    }
                }
            }
            Ok(())
        }),
        Trial::test("executor::static_tls_surplus_errors", || {
            let hint = "cannot allocate memory in static TLS block (the process's static TLS surplus is too small: start it with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=BYTES)";
            let mut case = cli_case("static_tls.c")?;
            let fits = static_tls_library(&case.dir, 8000)?;
            let too_big = static_tls_library(&case.dir, 32000)?;
            // The user's own surplus is kept, in process and in the executor.
            case.libs = vec![fits.display().to_string()];
            for flag in ["--executor=in-process", "--executor=remote"] {
                let mut command = case.rjitlink_command(&[flag]);
                set_tunables(&mut command, Some("glibc.rtld.optional_static_tls=0"));
                expect_error(&mut command, hint)?;
            }
            // Too big even for the surplus: in process, the second run reports it, once.
            case.libs = vec![too_big.display().to_string()];
            for flag in ["--executor=in-process", "--executor=remote"] {
                let mut command = case.rjitlink_command(&[flag]);
                set_tunables(&mut command, None);
                expect_error(&mut command, hint)?;
            }
            Ok(())
        }),
    ]
}

/// A program of testdata/cli, compiled at -O0.
pub(crate) fn cli_case(name: &str) -> Result<Case, Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/cli")
        .join(name);
    Case::new(&source, Build::O0)
}

/// What the executor answered, owned.
#[derive(Debug)]
enum Answer {
    Done,
    Failed(String),
    Module(u64, Vec<u64>),
}

fn read(path: &Path) -> Result<Vec<u8>, Failed> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// testdata/cli/lib/static_tls_library.c built in `dir` as a shared library with `bytes` of
/// initial-exec TLS.
pub(crate) fn static_tls_library(dir: &Path, bytes: u32) -> Result<PathBuf, Failed> {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cli/lib/static_tls_library.c");
    let library = dir.join(format!("libstatic_tls_{bytes}.so"));
    checked(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O1"])
            .arg(format!("-DTLS_BYTES={bytes}"))
            .arg(&source)
            .arg("-o")
            .arg(&library),
    )?;
    Ok(library)
}

/// Users' GLIBC_TUNABLES: none, empty, another tunable, and their own static TLS surplus.
const USER_TUNABLES: [Option<&str>; 4] = [
    None,
    Some(""),
    Some("glibc.malloc.arena_max=2"),
    Some("glibc.rtld.optional_static_tls=4096"),
];

/// Give `command` the user's GLIBC_TUNABLES `user` (`None`: unset), and none of rjitlink's.
fn set_tunables(command: &mut Command, user: Option<&str>) {
    match user {
        Some(user) => command.env("GLIBC_TUNABLES", user),
        None => command.env_remove("GLIBC_TUNABLES"),
    };
    command.env_remove("RJITLINK_USER_GLIBC_TUNABLES");
}

/// Run `case` in `mode` (in process, remote or TCP) for a user whose GLIBC_TUNABLES is `user`,
/// with `stdin` as rjitlink's input: rjitlink's status and the program's output.
fn run_with_tunables(
    case: &Case,
    mode: Mode,
    user: Option<&str>,
    stdin: &[u8],
) -> Result<Output, Failed> {
    use std::io::Write;
    let executor = match mode {
        Mode::Tcp => {
            let mut command = Command::new(rjitlink());
            set_tunables(&mut command, user);
            Some(TcpExecutor::start_with(command)?)
        }
        _ => None,
    };
    let flag = match (&executor, mode) {
        (Some(executor), _) => executor.flag(),
        (None, Mode::InProcess) => "--executor=in-process".to_owned(),
        (None, _) => "--executor=remote".to_owned(),
    };
    let mut command = case.rjitlink_command(&[&flag]);
    set_tunables(&mut command, user);
    let mut child = command
        .env("RJITLINK_TOKEN", TEST_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // A program that does not read its input may have exited already.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let output = wait_with_timeout(child)?;
    if let Some(executor) = executor {
        // The executor's log must be quiet too.
        let (_, stderr) = executor.finish();
        if !stderr.is_empty() {
            return Err(
                format!("the executor logged: {}", String::from_utf8_lossy(&stderr)).into(),
            );
        }
    }
    Ok(output)
}

/// Start `command` with its output piped and read the first line it prints (a pid, for the
/// tests that kill processes).
pub(crate) fn spawn_reading_line(
    command: &mut Command,
) -> Result<(std::process::Child, String), Failed> {
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

/// Wait for `child`, failing the test if it takes longer than the timeout.
pub(crate) fn wait_with_timeout(mut child: std::process::Child) -> Result<Output, Failed> {
    match wait_or_kill(&mut child)? {
        Some(_) => child.wait_with_output().map_err(|e| e.to_string().into()),
        None => Err("rjitlink hung".into()),
    }
}

pub(crate) fn kill(pid: &str, signal: i32) -> Result<(), Failed> {
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

pub(crate) const SIGKILL: i32 = 9;

/// Make `command`'s process (and the processes it starts) fail `process_vm_writev` with
/// EPERM, with a seccomp filter installed before it starts; other system calls are let through.
fn refuse_process_vm_writev(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // Classic BPF over `struct seccomp_data`: its `nr` at offset 0, `arch` at offset 4.
    const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut filter = [
        op(LOAD_WORD, 0, 0, 4),
        // Another architecture's calls (none are made): let through.
        op(JUMP_IF_EQUAL, 0, 3, AUDIT_ARCH_X86_64),
        op(LOAD_WORD, 0, 0, 0),
        op(JUMP_IF_EQUAL, 0, 1, libc::SYS_process_vm_writev as u32),
        op(RETURN, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RETURN, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: runs in the child between fork and exec, where it makes two system calls
    // (async-signal-safe) with the filter the closure owns.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

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
pub(crate) fn wait_until_gone(pid: &str) -> Result<(), Failed> {
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
