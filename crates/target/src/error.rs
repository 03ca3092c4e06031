//! `TargetError`: everything that can go wrong between the linker and its target, phrased for
//! the user.
//!
//! A variant with a source prints only its own part; `{:#}` of an `anyhow::Error`, or
//! [`full_message`], joins the sources after it with `: `.

use rjitlink_memory::MapError;
use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A failure of an [`Executor`](crate::Executor) operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum TargetError {
    /// The dynamic loader could not load the library at `path`; `reason` is its message.
    LoadLibrary {
        /// The library's path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The dynamic loader could not load the shared object given as bytes under `name`.
    LoadLibraryImage {
        /// The name it was loaded under.
        name: String,
        /// The loader's message.
        reason: String,
    },
    /// The dynamic loader has no static thread-local storage left for the module or library
    /// `name` (initial- and local-exec code needs its block at a fixed offset in every thread;
    /// glibc keeps `glibc.rtld.optional_static_tls` bytes for modules loaded late).
    StaticTls {
        /// The module or library.
        name: String,
        /// The loader's message.
        reason: String,
    },
    /// A loaded library's reference to `symbol`, at `slot`, could not be redirected to the
    /// symbol's copy (a copy relocation): the page could not be made writable.
    Interpose {
        /// The symbol's name.
        symbol: Vec<u8>,
        /// The address of the library's GOT slot.
        slot: u64,
        /// The system's error.
        source: std::io::Error,
    },
    /// A program has already run in the target process; it runs one.
    AlreadyRan,
    /// A path, name or argument for the target holds a NUL byte.
    Nul(std::ffi::NulError),
    /// More program arguments than `argc` can count.
    TooManyArguments(std::num::TryFromIntError),
    /// A system call failed; `context` says what was being done.
    System {
        /// What was being done.
        context: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// An I/O error on the way to the target, with nothing to add to it.
    Io(std::io::Error),
    /// The executor refused a request: its own message.
    Refused(String),
    /// The executor process was killed by `signal`.
    Terminated {
        /// The signal's number.
        signal: i32,
    },
    /// The spawned executor exited while the linker still needed it.
    ExitedUnexpectedly {
        /// How it exited.
        status: ExitStatus,
    },
    /// The spawned executor ended while running the program, neither by exit nor by signal.
    Ended {
        /// How it ended.
        status: ExitStatus,
    },
    /// The executor closed the connection between requests (it died, or dropped the linker).
    Closed,
    /// The executor closed the connection before answering hello: most likely it refused the
    /// token.
    ClosedInHandshake,
    /// The executor closed the connection while the program ran, and how it ended is unknown.
    ClosedWhileRunning,
    /// The linker and the executor speak different protocol versions.
    VersionMismatch {
        /// The linker's version.
        ours: u32,
        /// The executor's version.
        theirs: u32,
    },
    /// The executor answered hello with something else (`response`, as debug text).
    UnexpectedHandshake {
        /// The answer, as debug text.
        response: String,
    },
    /// The executor answered a request with a response it does not allow: `request` names
    /// the request where that is worth saying.
    UnexpectedResponse {
        /// The request, where that is worth saying.
        request: Option<&'static str>,
        /// The answer, as debug text.
        response: String,
    },
    /// The connection failed during the handshake; the source is the protocol's error.
    Handshake(Box<dyn Error + Send + Sync>),
    /// The connection to the executor failed; the source is the protocol's error.
    Connection(Box<dyn Error + Send + Sync>),
    /// Shared memory was asked for, and the executor does not offer it.
    NoSharedMemory,
    /// Shared memory was asked for, and setting it up failed (displays as the `MapError`).
    SharedMemory(MapError),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::LoadLibrary { path, reason } => {
                write!(f, "cannot load {}: {reason}", path.display())
            }
            TargetError::LoadLibraryImage { name, reason } => {
                write!(f, "cannot load {name}: {reason}")
            }
            TargetError::StaticTls { name, reason } => write!(
                f,
                "cannot load {name}: {reason} (the process's static TLS surplus is too small: start it with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=BYTES)"
            ),
            TargetError::Interpose { symbol, slot, .. } => write!(
                f,
                "cannot redirect a library's reference to `{}` (copy relocation) at {slot:#x}",
                String::from_utf8_lossy(symbol)
            ),
            TargetError::AlreadyRan => f.write_str("a program has already run in this process"),
            TargetError::Nul(e) => e.fmt(f),
            TargetError::TooManyArguments(e) => e.fmt(f),
            TargetError::System { context, .. } => f.write_str(context),
            TargetError::Io(e) => e.fmt(f),
            TargetError::Refused(message) => f.write_str(message),
            TargetError::Terminated { signal } => {
                write!(f, "executor terminated by signal {}", signal_name(*signal))
            }
            TargetError::ExitedUnexpectedly { status } => {
                write!(f, "the executor exited unexpectedly with {status}")
            }
            TargetError::Ended { status } => write!(f, "the executor ended with {status}"),
            TargetError::Closed => f.write_str("the executor closed the connection (did it die?)"),
            TargetError::ClosedInHandshake => f.write_str(
                "the executor closed the connection during the handshake (wrong or missing RJITLINK_TOKEN?)",
            ),
            TargetError::ClosedWhileRunning => {
                f.write_str("the executor closed the connection while the program ran")
            }
            TargetError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: rjitlink speaks version {ours}, the executor version {theirs}"
            ),
            TargetError::UnexpectedHandshake { response } => write!(
                f,
                "unexpected handshake response from the executor: {response}"
            ),
            TargetError::UnexpectedResponse {
                request: Some(request),
                response,
            } => write!(f, "unexpected response to {request}: {response}"),
            TargetError::UnexpectedResponse {
                request: None,
                response,
            } => write!(f, "unexpected response from the executor: {response}"),
            TargetError::Handshake(_) => f.write_str("executor handshake failed"),
            TargetError::Connection(_) => f.write_str("executor connection"),
            TargetError::NoSharedMemory => {
                f.write_str("the executor does not offer shared memory")
            }
            TargetError::SharedMemory(e) => write!(f, "{e}"),
        }
    }
}

impl Error for TargetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TargetError::Interpose { source, .. } | TargetError::System { source, .. } => {
                Some(source)
            }
            TargetError::Handshake(source) | TargetError::Connection(source) => Some(&**source),
            // These print their inner error's message as their own.
            TargetError::SharedMemory(e) => e.source(),
            TargetError::Nul(e) => e.source(),
            TargetError::TooManyArguments(e) => e.source(),
            TargetError::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<std::ffi::NulError> for TargetError {
    fn from(e: std::ffi::NulError) -> Self {
        TargetError::Nul(e)
    }
}

impl From<std::io::Error> for TargetError {
    fn from(e: std::io::Error) -> Self {
        TargetError::Io(e)
    }
}

/// `error`'s message followed by those of its sources, each after `: ` — what `{:#}` prints
/// for an `anyhow::Error`. For a message that must travel as text (to the linker, or into a
/// `MapError`).
pub fn full_message(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `SIGSEGV` for 11, and so on; `signal N` for the rest.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}
