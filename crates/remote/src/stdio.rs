//! The linker's side of a program run over TCP: the program's standard streams are the
//! linker's. Its output and error come as `Output` frames and are written to the linker's
//! own (a closed pipe there is told to the executor, where the program's next write fails as
//! it would natively); a thread reads the linker's standard input within the window the
//! executor grants; the run ends with the program's status.
//!
//! The linker's standard input is forwarded only when asked (`rjitlink run` asks; a library
//! embedding `Remote` need not give its own stdin away): otherwise the program's input is
//! closed from the start. The thread reading it stops when the run ends, before it reads
//! anything more, so a host that goes on after the run keeps the rest of its input.
//!
//! Only one thread writes to the connection, taking what to send from a channel: the thread
//! that reads the program's output must never wait for the connection (the executor may be
//! waiting for it to read), and the thread that reads standard input may wait on a terminal
//! forever.

use crate::connection::{ready, refused, SharedConnection};
use rjitlink_protocol::{
    FrameWriter, ProtocolError, Request, Response, STDERR, STDIN_WINDOW, STDOUT,
};
use rjitlink_target::TargetError;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

/// What goes to the executor while the program runs.
enum Outgoing {
    Input(Vec<u8>),
    InputClosed,
    OutputClosed(u8),
}

/// Bytes of input read and sent at a time.
const CHUNK: usize = 64 << 10;

/// How much input the executor can take now: the window left.
struct Window {
    credit: Mutex<u64>,
    grown: Condvar,
}

fn connection_error(error: ProtocolError) -> TargetError {
    match error {
        ProtocolError::Closed => TargetError::ClosedWhileRunning,
        e => TargetError::Connection(Box::new(e)),
    }
}

/// Write all of `bytes` to descriptor `fd`, unbuffered (the program's own buffering is what
/// the user sees, as natively), waiting if the descriptor is non-blocking and full.
fn write_fd(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writing our own buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let mut writable = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut writable, 1, -1) };
                    continue;
                }
                _ => return Err(error),
            }
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Send what comes on `outgoing`, in order, until the connection fails or nothing more can
/// come.
fn send_all(mut writer: FrameWriter, outgoing: Receiver<Outgoing>) {
    for message in outgoing {
        let request = match &message {
            Outgoing::Input(data) => Request::Input { data },
            Outgoing::InputClosed => Request::InputClosed,
            Outgoing::OutputClosed(stream) => Request::OutputClosed { stream: *stream },
        };
        if writer.send(&request).is_err() {
            return;
        }
    }
}

/// Wait until standard input can be read without blocking: true, or false once `stop` is
/// readable or closed (the run ended), so that nothing more is read for it.
fn input_ready(stop: &OwnedFd) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n < 0 || fds[1].revents != 0 {
            return false;
        }
        // Readable, at its end, or in error: the read says which.
        if fds[0].revents != 0 {
            return true;
        }
    }
}

/// Read the linker's standard input and pass it on, never more than the window allows; at
/// its end (or on an error reading it) say so. Ends when nothing more can be sent, or when
/// `stop` says the run is over.
fn forward_input(outgoing: Sender<Outgoing>, window: Arc<Window>, stop: OwnedFd) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let allowed = {
            let mut credit = window.credit.lock().unwrap_or_else(|e| e.into_inner());
            while *credit == 0 {
                credit = window.grown.wait(credit).unwrap_or_else(|e| e.into_inner());
            }
            (*credit).min(CHUNK as u64) as usize
        };
        if !input_ready(&stop) {
            return;
        }
        // SAFETY: reading into our own buffer, at most its length.
        let n = unsafe { libc::read(0, buffer.as_mut_ptr().cast(), allowed) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            let _ = outgoing.send(Outgoing::InputClosed);
            return;
        }
        *window.credit.lock().unwrap_or_else(|e| e.into_inner()) -= n as u64;
        if outgoing
            .send(Outgoing::Input(buffer[..n as usize].to_vec()))
            .is_err()
        {
            return;
        }
    }
}

/// Start a detached thread named `name` running `work`.
fn detached(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), TargetError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map(drop)
        .map_err(|source| TargetError::System {
            context: format!("cannot start the thread that forwards {name}"),
            source,
        })
}

/// A pipe whose write end, dropped as the run ends, tells the input thread to stop.
fn stop_pipe() -> Result<(OwnedFd, OwnedFd), TargetError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TargetError::System {
            context: "cannot create a pipe".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: two fresh descriptors, ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Send `request` (a `Run`) and relay the program's standard streams until it ends: Ok with
/// its exit status, Err `Terminated` if a signal killed it. The program's standard input is
/// this process's if `forward_stdin`, closed otherwise.
pub(crate) fn run(
    connection: &SharedConnection,
    request: &Request<'_>,
    forward_stdin: bool,
    symbols: &[Arc<rjitlink_target::UnitSymbols>],
) -> Result<i32, TargetError> {
    let mut locked = ready(connection)?;
    let connection = &mut locked.connection;
    let writer = connection.writer().map_err(connection_error)?;
    // What rjitlink wrote itself comes before the program's output.
    let _ = io::stdout().flush();
    let id = connection.send_request(request).map_err(connection_error)?;
    let window = Arc::new(Window {
        credit: Mutex::new(STDIN_WINDOW),
        grown: Condvar::new(),
    });
    let (outgoing, to_send) = channel();
    // Detached: the sender ends when nothing more can come, the input thread when `_stop`
    // closes as this function returns.
    detached("the program's input", move || send_all(writer, to_send))?;
    let _stop = if forward_stdin {
        let (stop_reader, stop) = stop_pipe()?;
        let (outgoing, window) = (outgoing.clone(), window.clone());
        detached("standard input", move || {
            forward_input(outgoing, window, stop_reader)
        })?;
        Some(stop)
    } else {
        let _ = outgoing.send(Outgoing::InputClosed);
        None
    };
    // A stream the linker can no longer write (a closed pipe): the program's output there is
    // dropped, and the executor told once.
    let mut closed = [false; 2];
    loop {
        match connection.receive_response(id) {
            Ok(Response::Output { stream, data }) => {
                let index = usize::from(stream == STDERR);
                if closed[index] {
                    continue;
                }
                let fd = if stream == STDOUT { 1 } else { 2 };
                if write_fd(fd, data).is_err() {
                    closed[index] = true;
                    let _ = outgoing.send(Outgoing::OutputClosed(stream));
                }
            }
            Ok(Response::InputConsumed { bytes }) => {
                let mut credit = window.credit.lock().unwrap_or_else(|e| e.into_inner());
                // The executor gives back only what it was sent: never more than the window.
                *credit = credit.saturating_add(bytes).min(STDIN_WINDOW);
                window.grown.notify_one();
            }
            Ok(Response::Crashed(report)) => {
                let text = rjitlink_target::symbolize::format_crash_report(&report, symbols);
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
            Ok(Response::Exited(status)) => return Ok(status),
            Ok(Response::Terminated(signal)) => return Err(TargetError::Terminated { signal }),
            Ok(Response::Failed(message)) => return Err(refused(message)),
            Ok(other) => {
                return Err(TargetError::UnexpectedResponse {
                    request: Some("run"),
                    response: format!("{other:?}"),
                })
            }
            Err(e) => return Err(connection_error(e)),
        }
    }
}
