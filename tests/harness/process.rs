//! Running commands: with no stdin or a given one, and a timeout (a hang is a failure), and
//! checking that they succeed, or fail as rjitlink fails.

use libtest_mimic::Failed;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one program may run before the test fails (a hang is a failure, not a wait).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

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
    run_with_input(command, None)
}

/// Run a command with `input` as its stdin (`None`: no stdin) and the test timeout; a hang
/// fails the test. Its output is read as it comes, so that a program writing more than a pipe
/// holds is not left waiting for a reader.
pub fn run_with_input(command: &mut Command, input: Option<&[u8]>) -> Result<Output, Failed> {
    run_with_stdout(command, input, Stdio::piped())
}

/// Like `run_with_input`, with `stdout` as the command's stdout (the output read is then only
/// what a pipe given here carries: none for a pipe whose reader is closed).
pub fn run_with_stdout(
    command: &mut Command,
    input: Option<&[u8]>,
    stdout: Stdio,
) -> Result<Output, Failed> {
    use std::io::{Read, Write};
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.unwrap_or_default().to_vec();
        // A program may end without reading all its input: a failed write is no failure, and
        // the writer is not waited for.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let Some(status) = wait_or_kill(&mut child)? else {
        // The readers are left behind: whatever the command started may hold the pipes.
        return Err(format!("{command:?} did not finish within {RUN_TIMEOUT:?}").into());
    };
    Ok(Output {
        status,
        stdout: stdout.join().map_err(|_| "reading stdout failed")?,
        stderr: stderr.join().map_err(|_| "reading stderr failed")?,
    })
}

/// Wait for `child` to end within `RUN_TIMEOUT`: its status, or `None` once it has been killed
/// (and reaped) for taking longer.
pub fn wait_or_kill(
    child: &mut std::process::Child,
) -> Result<Option<std::process::ExitStatus>, Failed> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(status));
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
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
    // Names from inputs are escaped: nothing but the line ends may reach the terminal raw.
    if stderr.chars().any(|c| c.is_control() && c != '\n') {
        return fail("control characters in the error message");
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
