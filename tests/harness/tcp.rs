//! A TCP executor (`rjitlink executor --listen`) started for one test, the token it requires,
//! and a client's side of its handshake for tests that speak the protocol themselves.
//!
//! No executor outlives its test, even if the test process dies: each runs with
//! `--exit-with-stdin` and a pipe as its standard input, whose end only the test holds.

use super::rjitlink;
use libtest_mimic::Failed;
use rjitlink_protocol::auth::{ExecutorInfo, Nonces, NONCE_LEN};
use rjitlink_protocol::{Connection, Request, Response, Token, PROTOCOL_VERSION};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The token the tests' TCP executors require.
pub const TEST_TOKEN: &str = "rjitlink-test-token";

/// An `rjitlink executor --listen` on a free loopback port, for one test.
pub struct TcpExecutor {
    child: std::process::Child,
    /// The listener's standard input: closing it ends the listener.
    pub stdin: Option<std::process::ChildStdin>,
    /// The listener's stdout after its first line.
    pub stdout: std::io::BufReader<std::process::ChildStdout>,
    pub address: String,
}

impl TcpExecutor {
    pub fn start() -> Result<TcpExecutor, Failed> {
        TcpExecutor::start_with(Command::new(rjitlink()))
    }

    /// With more options for `executor --listen`.
    pub fn start_with_options(options: &[&str]) -> Result<TcpExecutor, Failed> {
        let mut command = Command::new(rjitlink());
        command
            .args(["executor", "--listen", "127.0.0.1:0"])
            .args(options);
        TcpExecutor::spawn(command)
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
        command.args(["executor", "--listen", "127.0.0.1:0"]);
        TcpExecutor::spawn(command)
    }

    fn spawn(mut command: Command) -> Result<TcpExecutor, Failed> {
        use std::io::BufRead;
        let mut child = command
            .arg("--exit-with-stdin")
            .env("RJITLINK_TOKEN", TEST_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the executor: {e}"))?;
        let stdin = child.stdin.take();
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
            stdin,
            stdout,
            address,
        })
    }

    /// Whether the listener has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `--executor=tcp:ADDRESS`
    pub fn flag(&self) -> String {
        format!("--executor=tcp:{}", self.address)
    }

    /// Stop the listener; returns what it wrote to stdout and stderr (its log).
    pub fn finish(mut self) -> (Vec<u8>, Vec<u8>) {
        use std::io::Read;
        self.stdin = None;
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

/// A client's side of the TCP handshake, as the linker does it, with `token`: the
/// authenticated connection, or what the executor answered instead.
pub fn connect_with(address: &str, token: &str) -> Result<Connection, Failed> {
    let stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let token = Token::new(token.as_bytes()).map_err(|e| e.to_string())?;
    let mut connection = Connection::new(Box::new(stream));
    let linker_nonce = rjitlink_protocol::auth::nonce().map_err(|e| e.to_string())?;
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
        nonce: &linker_nonce,
    };
    let executor_nonce: [u8; NONCE_LEN] = match connection.call(&hello) {
        Ok(Response::Challenge { nonce }) => nonce.try_into().map_err(|_| "a short nonce")?,
        other => return Err(format!("expected a challenge, got {other:?}").into()),
    };
    let nonces = Nonces {
        linker: &linker_nonce,
        executor: &executor_nonce,
    };
    let proof = token.linker_proof(nonces);
    match connection.call(&Request::Authenticate { proof: &proof }) {
        Ok(Response::Hello {
            version,
            page_size,
            pid,
            capabilities,
            proof,
        }) => {
            let info = ExecutorInfo {
                version,
                page_size,
                pid,
                capabilities,
            };
            if !token.check_executor_proof(nonces, &info, proof) {
                return Err("the executor's proof is wrong".into());
            }
        }
        other => return Err(format!("not accepted: {other:?}").into()),
    }
    Ok(connection)
}

/// `connect_with` the tests' token.
pub fn connect(address: &str) -> Result<Connection, Failed> {
    connect_with(address, TEST_TOKEN)
}
