//! Running a linker's program over TCP: in a child process whose standard input, output and
//! error are pipes that this process relays to and from the linker, and whose end this process
//! sees and reports with the real status, however it comes — exit, `_exit`, exec, a signal, a
//! thread calling exit. The linker going away ends the program and the processes it started.
//!
//! The program is the child's process group leader, so that its own children end with it.
//! Its output goes to the linker as it comes, with TCP's backpressure; its input comes from
//! the linker within a window (`STDIN_WINDOW`) that this process gives back as the program
//! reads, so that neither side buffers without bound.

use crate::error::ServeError;
use crate::target::run_program;
use rjitlink_protocol::{
    split_frame, Connection, ProtocolError, Request, Response, STDERR, STDIN_WINDOW, STDOUT,
};
use rjitlink_target::{full_message, Program};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The running program's process group, 0 before it runs: what a SIGTERM to this process
/// ends with it.
static PROGRAM_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn end_with_program(signal: libc::c_int) {
    let group = PROGRAM_GROUP.load(Ordering::Relaxed);
    // SAFETY: kill, signal and raise are async-signal-safe.
    unsafe {
        if group > 0 {
            libc::kill(-group, libc::SIGKILL);
        }
        // Then end as the signal would have: whoever waits for this process learns why.
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Make SIGTERM end this process together with the program it runs and everything the
/// program started (its process group): a session gets it when its listener ends
/// (`PR_SET_PDEATHSIG`), and a user may send it. Without this, the program's own children
/// would outlive it.
pub(crate) fn end_program_on_sigterm() {
    // SAFETY: installing a handler that does only async-signal-safe work.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            end_with_program as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// The largest frame the linker may send while its program runs: an `Input` of the whole
/// window, with room for its header.
const RELAY_MAX_FRAME: usize = STDIN_WINDOW as usize + 64;

/// Bytes read from the program's output at a time, one `Output` frame each.
const CHUNK: usize = 64 << 10;

/// Input taken by the program is given back to the linker in steps of this much (or when
/// all of it is taken), not for every write.
const ACKNOWLEDGE_STEP: u64 = 16 << 10;

/// After the program ends, how long its remaining output may take to drain: processes it
/// left behind could write forever.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

fn last_error(context: &str) -> ServeError {
    ServeError::System {
        context: context.to_owned(),
        source: io::Error::last_os_error(),
    }
}

/// A pipe: (read end, write end), close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), ServeError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors, which we own from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_error("cannot create a pipe for the program"));
    }
    // SAFETY: as above.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), ServeError> {
    // SAFETY: fcntl on a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(last_error("cannot make a pipe non-blocking"))
    }
}

/// The descriptor of the program's process that crash reports go to: the write end of a
/// pipe to the relaying process, which sends them on to the linker (which has the symbols).
static CRASH_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// In the program's process: hand a crash report to the relaying process, encoded as the
/// message it forwards.
fn pass_crash_on(report: &rjitlink_target::CrashReport) {
    let bytes = Response::Crashed(report.clone()).to_bytes();
    let fd = CRASH_PIPE.load(Ordering::Relaxed);
    // A report is far smaller than the pipe's buffer: one write, read once the program ended.
    // SAFETY: writing our own buffer to our own pipe.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Run `program`, the answer to request `id`, in a child; relay its streams on `connection`
/// until it ends, then report how it ended.
pub(crate) fn run(connection: Connection, id: u64, program: &Program) -> Result<(), ServeError> {
    let (stdin_read, stdin_write) = pipe()?;
    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let (crash_read, crash_write) = pipe()?;
    set_nonblocking(&crash_read)?;
    // This side's ends only: each end of a pipe is its own open file, so the program's stay
    // blocking, as a process's standard streams are.
    for fd in [&stdin_write, &stdout_read, &stderr_read] {
        set_nonblocking(fd)?;
    }
    let socket = connection.transport().as_raw_fd();
    let parent = std::process::id();
    // SAFETY: flushing stdio is always allowed; the child must not write this process's
    // buffered output a second time.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    // SAFETY: this process is single-threaded (the service runs on its one thread), so the
    // child may run anything.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(last_error("cannot start the program's process"));
    }
    if child == 0 {
        let streams = [
            stdin_read.as_raw_fd(),
            stdout_write.as_raw_fd(),
            stderr_write.as_raw_fd(),
        ];
        become_program(parent, streams, socket, crash_write.as_raw_fd(), program);
    }
    // Both sides set the group, so that it is set whichever runs first.
    // SAFETY: plain system calls on our own child.
    unsafe { libc::setpgid(child, child) };
    PROGRAM_GROUP.store(child, Ordering::Relaxed);
    drop((stdin_read, stdout_write, stderr_write, crash_write));
    // SAFETY: pidfd_open returns a new descriptor for our child, or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) };
    if pidfd < 0 {
        let error = last_error("cannot watch the program's process");
        end_program_group(child);
        return Err(error);
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let mut relay = Relay {
        socket,
        connection,
        id,
        child,
        pidfd,
        stdin: Some(stdin_write),
        pending: Vec::new(),
        input_ended: false,
        outstanding: 0,
        taken: 0,
        outputs: [Some(stdout_read), Some(stderr_read)],
        received: Vec::new(),
        crash: crash_read,
    };
    let result = relay.relay();
    if result.is_err() {
        end_program_group(child);
    }
    result
}

/// In the forked child: make the pipes the standard streams, close everything else (the
/// linker's connection, `socket`, above all), and run the program. Never returns.
fn become_program(
    parent: u32,
    streams: [RawFd; 3],
    socket: RawFd,
    crash: RawFd,
    program: &Program,
) -> ! {
    // perf's files become this process's, before the descriptors are closed below.
    crate::perf::perf_map_to_child(parent);
    // Best effort: without it the dump names the parent, and perf inject ignores it.
    let _ = crate::perf::jitdump_to_child();
    // SAFETY: system calls in our own process; the descriptors are ours.
    unsafe {
        libc::setpgid(0, 0);
        // The program must not outlive the process that reports its end.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent {
            libc::_exit(125);
        }
        for (target, &fd) in streams.iter().enumerate() {
            if libc::dup2(fd, target as RawFd) < 0 {
                libc::_exit(125);
            }
        }
        // Everything else belongs to the service: the connection, the memory files (their
        // mappings stay), the listener's channel. The program starts with its three streams
        // alone, as a process does; the connection is closed by name too, in case the kernel
        // has no close_range (before 5.9).
        libc::close(socket);
        // All but the crash reports' pipe, which is close-on-exec.
        let crash = crash.max(3) as u32;
        libc::syscall(libc::SYS_close_range, 3u32, crash - 1, 0u32);
        libc::syscall(libc::SYS_close_range, crash + 1, u32::MAX, 0u32);
        CRASH_PIPE.store(crash as RawFd, Ordering::Relaxed);
        // A native program starts with SIGPIPE at its default (the Rust runtime of this
        // process ignores it): writing to a closed pipe must end it as it would natively.
        // SIGTERM's handler is the session's, not the program's.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
    let error = match run_program(program, None, Box::new(pass_crash_on)) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    // The linker shows this stream as its own: say it as rjitlink says its errors.
    let message = format!("rjitlink: error: {}\n", full_message(&error));
    // SAFETY: writing our own buffer to our own stderr, then leaving without exit handlers.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(125)
    }
}

/// Kill the program and every process of its group, and reap it.
fn end_program_group(child: libc::pid_t) {
    // SAFETY: signals to our own child and its process group; waiting for our own child.
    unsafe {
        libc::kill(-child, libc::SIGKILL);
        libc::kill(child, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(child, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

struct Relay {
    connection: Connection,
    /// The connection's socket, polled and read without blocking.
    socket: RawFd,
    /// The `Run` request, which every frame to the linker answers.
    id: u64,
    child: libc::pid_t,
    /// Readable once the program's process has ended.
    pidfd: OwnedFd,
    /// The write end of the program's standard input, until closed.
    stdin: Option<OwnedFd>,
    /// Input from the linker not yet taken by the program.
    pending: Vec<u8>,
    /// The linker's input has ended: close the program's once `pending` is taken.
    input_ended: bool,
    /// Bytes of input received and not yet given back to the linker: at most the window.
    outstanding: u64,
    /// Bytes of input taken by the program (or dropped, its input closed) and not yet given
    /// back.
    taken: u64,
    /// The read ends of the program's standard output and error, until they close.
    outputs: [Option<OwnedFd>; 2],
    /// Bytes from the linker not yet making up a whole frame.
    received: Vec<u8>,
    /// The read end of the pipe the program's crash report comes through (non-blocking).
    crash: OwnedFd,
}

impl Relay {
    fn relay(&mut self) -> Result<(), ServeError> {
        loop {
            let mut fds = vec![
                libc::pollfd {
                    fd: self.socket,
                    events: libc::POLLIN | libc::POLLRDHUP,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for output in self.outputs.iter().flatten() {
                fds.push(libc::pollfd {
                    fd: output.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(stdin) = self.stdin.as_ref().filter(|_| !self.pending.is_empty()) {
                fds.push(libc::pollfd {
                    fd: stdin.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a valid array of pollfd for its length.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if ready < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(last_error("poll failed"));
            }
            for polled in &fds {
                if polled.revents == 0 {
                    continue;
                }
                let fd = polled.fd;
                if fd == self.socket {
                    self.read_linker()?;
                } else if fd == self.pidfd.as_raw_fd() {
                    return self.finish();
                } else if self.stdin.as_ref().is_some_and(|s| s.as_raw_fd() == fd) {
                    self.feed_input()?;
                } else {
                    self.forward_output(fd)?;
                }
            }
        }
    }

    /// Read what the linker sent, and act on each whole frame.
    fn read_linker(&mut self) -> Result<(), ServeError> {
        let mut buffer = [0u8; CHUNK];
        // SAFETY: recv into our own buffer, without blocking.
        let n = unsafe {
            libc::recv(
                self.socket,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                _ => Err(ServeError::LinkerGone),
            };
        }
        if n == 0 {
            return Err(ServeError::LinkerGone);
        }
        self.received.extend_from_slice(&buffer[..n as usize]);
        let mut consumed = 0;
        while let Some(frame) = split_frame(&self.received[consumed..], RELAY_MAX_FRAME)? {
            match Request::decode(frame.message).map_err(ProtocolError::from)? {
                Request::Input { data } if !self.input_ended => {
                    self.outstanding += data.len() as u64;
                    if self.outstanding > STDIN_WINDOW {
                        return Err(ProtocolError::Unexpected(
                            "the linker sent more input than the window allows".into(),
                        )
                        .into());
                    }
                    if self.stdin.is_some() {
                        self.pending.extend_from_slice(data);
                    } else {
                        // The program closed its input: what comes is dropped, as a pipe
                        // nobody reads would drop it.
                        self.taken += data.len() as u64;
                    }
                }
                Request::InputClosed if !self.input_ended => self.input_ended = true,
                Request::OutputClosed { stream } => {
                    // The program's next write there fails as on a closed pipe.
                    self.outputs[usize::from(stream == STDERR)] = None;
                }
                other => {
                    return Err(ProtocolError::Unexpected(format!(
                        "{other:?} while the program runs"
                    ))
                    .into())
                }
            }
            consumed += frame.length;
        }
        self.received.drain(..consumed);
        if self.pending.is_empty() && self.input_ended {
            self.stdin = None;
        }
        self.acknowledge()
    }

    /// Write pending input into the program's standard input, as much as it takes.
    fn feed_input(&mut self) -> Result<(), ServeError> {
        let Some(stdin) = &self.stdin else {
            return Ok(());
        };
        // SAFETY: writing our own buffer to our own pipe, without blocking.
        let n = unsafe {
            libc::write(
                stdin.as_raw_fd(),
                self.pending.as_ptr().cast(),
                self.pending.len(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => return Ok(()),
                // The program closed its input (or ended): drop what it will never read.
                _ => {
                    self.taken += self.pending.len() as u64;
                    self.pending.clear();
                    self.stdin = None;
                }
            }
        } else {
            self.pending.drain(..n as usize);
            self.taken += n as u64;
        }
        if self.pending.is_empty() && self.input_ended {
            self.stdin = None;
        }
        self.acknowledge()
    }

    /// Give taken input back to the linker's window, in steps, or all of it when nothing is
    /// pending.
    fn acknowledge(&mut self) -> Result<(), ServeError> {
        if self.taken == 0 || !(self.pending.is_empty() || self.taken >= ACKNOWLEDGE_STEP) {
            return Ok(());
        }
        self.connection
            .respond(self.id, &Response::InputConsumed { bytes: self.taken })?;
        self.outstanding -= self.taken;
        self.taken = 0;
        Ok(())
    }

    /// Send what the program wrote on `fd` (its output or error) to the linker; close the
    /// pipe at its end.
    fn forward_output(&mut self, fd: RawFd) -> Result<(), ServeError> {
        let Some(index) = self
            .outputs
            .iter()
            .position(|output| output.as_ref().is_some_and(|o| o.as_raw_fd() == fd))
        else {
            return Ok(());
        };
        if !self.forward_chunk(index)? {
            self.outputs[index] = None;
        }
        Ok(())
    }

    /// Read one chunk of output `index` and send it. Ok(false) at its end, and when nothing
    /// is there to read now (then it stays open).
    fn forward_chunk(&mut self, index: usize) -> Result<bool, ServeError> {
        let Some(output) = &self.outputs[index] else {
            return Ok(false);
        };
        let mut buffer = vec![0u8; CHUNK];
        // SAFETY: reading into our own buffer, without blocking.
        let n = unsafe { libc::read(output.as_raw_fd(), buffer.as_mut_ptr().cast(), CHUNK) };
        if n < 0 {
            let kind = io::Error::last_os_error().kind();
            return Ok(kind == io::ErrorKind::WouldBlock || kind == io::ErrorKind::Interrupted);
        }
        if n == 0 {
            return Ok(false);
        }
        let stream = if index == 0 { STDOUT } else { STDERR };
        self.connection.respond(
            self.id,
            &Response::Output {
                stream,
                data: &buffer[..n as usize],
            },
        )?;
        Ok(true)
    }

    /// The program has ended: send the rest of its output, then how it ended; end what it
    /// left behind.
    fn finish(&mut self) -> Result<(), ServeError> {
        let mut status = 0;
        // SAFETY: waiting for our own child, which has ended (its pidfd is readable).
        while unsafe { libc::waitpid(self.child, &mut status, 0) } < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(last_error("cannot learn how the program ended"));
            }
        }
        // Everything it wrote is in the pipes now. Read until each is empty (or closed, or
        // the time is up: a process it left behind may go on writing).
        let start = Instant::now();
        for index in 0..2 {
            while start.elapsed() < DRAIN_LIMIT && self.drain_chunk(index)? {}
        }
        // SAFETY: the program's process group; its leader is reaped, so the id may name no
        // process left, or only its descendants.
        unsafe { libc::kill(-self.child, libc::SIGKILL) };
        self.forward_crash_report()?;
        let response = if libc::WIFSIGNALED(status) {
            Response::Terminated(libc::WTERMSIG(status))
        } else {
            Response::Exited(libc::WEXITSTATUS(status))
        };
        self.connection.respond(self.id, &response)?;
        Ok(())
    }

    /// The program's crash report, if it left one, to the linker: checked to be one.
    fn forward_crash_report(&mut self) -> Result<(), ServeError> {
        let mut bytes = vec![0u8; 64 << 10];
        // SAFETY: reading into our own buffer, without blocking.
        let n = unsafe {
            libc::read(
                self.crash.as_raw_fd(),
                bytes.as_mut_ptr().cast(),
                bytes.len(),
            )
        };
        if n <= 0 {
            return Ok(());
        }
        if let Ok(report @ Response::Crashed(_)) = Response::decode(&bytes[..n as usize]) {
            self.connection.respond(self.id, &report)?;
        }
        Ok(())
    }

    /// Like `forward_chunk`, but Ok(false) as soon as nothing is there to read.
    fn drain_chunk(&mut self, index: usize) -> Result<bool, ServeError> {
        let Some(output) = &self.outputs[index] else {
            return Ok(false);
        };
        let mut probe = libc::pollfd {
            fd: output.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; no waiting.
        if unsafe { libc::poll(&mut probe, 1, 0) } <= 0 || probe.revents & libc::POLLIN == 0 {
            return Ok(false);
        }
        self.forward_chunk(index)
    }
}
