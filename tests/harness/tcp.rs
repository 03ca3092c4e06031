//! A TCP executor (`rjitlink executor --listen`) started for one test, and the token it
//! requires.

use super::rjitlink;
use libtest_mimic::Failed;
use std::process::{Command, Stdio};

/// The token the tests' TCP executors require.
pub const TEST_TOKEN: &str = "rjitlink-test-token";

/// An `rjitlink executor --listen` on a free loopback port, for one test.
pub struct TcpExecutor {
    child: std::process::Child,
    /// The listener's stdout after its first line: what the programs it runs print.
    pub stdout: std::io::BufReader<std::process::ChildStdout>,
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
            // --kill-child: killing unshare (as `Drop` does) must end the executor inside the
            // namespace too, or it outlives the test run.
            .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .arg(rjitlink());
        TcpExecutor::start_with(command)
    }

    /// `command` (rjitlink, or a wrapper that runs it) with `executor --listen` added.
    pub fn start_with(mut command: Command) -> Result<TcpExecutor, Failed> {
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
