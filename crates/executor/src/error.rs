//! `ServeError`: why the executor service stopped serving a linker, or could not start.

use rjitlink_protocol::ProtocolError;
use std::error::Error;
use std::fmt;

/// A failure of the executor service (`serve`, `listen`). The linker never sees these: they
/// end the service and go to the executor's own error output, while what goes wrong in a
/// request the linker made is answered to the linker (as a `TargetError`'s message).
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The connection to the linker failed.
    Protocol(ProtocolError),
    /// An I/O error, with nothing to add to it.
    Io(std::io::Error),
    /// No random bytes for a token or nonce.
    Token(std::io::Error),
    /// The TCP listener could not be set up at `address`.
    Listen {
        /// The address asked for.
        address: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The linker closed the connection before saying hello.
    ClosedBeforeHello,
    /// The linker's proof of the token is wrong: it does not know the token.
    WrongToken,
    /// The linker's first message was not a hello (or its nonce is malformed).
    NotHello,
    /// The linker closed the connection after the challenge, without proving anything.
    ClosedBeforeProof,
    /// The linker answered the challenge with something else than its proof.
    NotProof,
    /// The linker was authenticated, and turned away: `limit` linkers are being served.
    Busy {
        /// How many it serves at once.
        limit: usize,
    },
    /// The linker closed the connection while its program ran: the program was ended.
    LinkerGone,
    /// A system call failed; `context` says what was being done.
    System {
        /// What was being done.
        context: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The linker speaks another protocol version.
    VersionMismatch {
        /// The executor's version.
        ours: u32,
        /// The linker's.
        theirs: u32,
    },
    /// The linker asked to write outside the memory this executor reserved; the payload
    /// that follows cannot be trusted to be skipped, so the connection ends.
    RefusedWrite(String),
    /// The linker announced debug objects larger than this executor holds for debuggers; the
    /// bytes that follow cannot be trusted to be skipped, so the connection ends.
    RefusedDebugObjects(String),
    /// The linker that spawned this executor died before the executor could serve it.
    ParentGone,
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Protocol(e) => e.fmt(f),
            ServeError::Io(e) => e.fmt(f),
            ServeError::Token(_) => f.write_str("no random bytes for a token or nonce"),
            ServeError::Listen { address, .. } => write!(f, "cannot listen on {address}"),
            ServeError::ClosedBeforeHello => {
                f.write_str("the linker closed the connection before saying hello")
            }
            ServeError::WrongToken => {
                f.write_str("authentication failed: wrong or missing token")
            }
            ServeError::NotHello => f.write_str("the first message is not a well-formed hello"),
            ServeError::ClosedBeforeProof => {
                f.write_str("the linker closed the connection instead of authenticating")
            }
            ServeError::NotProof => {
                f.write_str("the linker answered the challenge with something else")
            }
            ServeError::Busy { limit } => write!(
                f,
                "turned a linker away: {limit} are being served (--max-clients)"
            ),
            ServeError::LinkerGone => f.write_str(
                "the linker closed the connection while its program ran; the program was ended",
            ),
            ServeError::System { context, .. } => f.write_str(context),
            ServeError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: the executor speaks version {ours}, the linker version {theirs}"
            ),
            ServeError::RefusedWrite(message) => write!(f, "refused a write: {message}"),
            ServeError::RefusedDebugObjects(message) => {
                write!(f, "refused debug objects: {message}")
            }
            ServeError::ParentGone => f.write_str("the linker that started this executor is gone"),
        }
    }
}

impl Error for ServeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ServeError::Token(source)
            | ServeError::Listen { source, .. }
            | ServeError::System { source, .. } => Some(source),
            // These print their inner error's message as their own.
            ServeError::Protocol(e) => e.source(),
            ServeError::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<ProtocolError> for ServeError {
    fn from(e: ProtocolError) -> Self {
        ServeError::Protocol(e)
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}
