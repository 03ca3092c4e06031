//! [`Error`]: every way an operation of the API can fail, as one enum to match on. The errors
//! of the layers below keep their own types (with file, section, offset and symbol as fields)
//! inside it.

use crate::UnitId;
use rjitlink_link::LinkError;
use rjitlink_memory::MapError;
use rjitlink_remote::TokenError;
use rjitlink_target::TargetError;
use std::fmt;

/// What went wrong. Displays as one line; [`std::error::Error::source`] gives the error of
/// the layer below where there is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The link failed: an input, a symbol, a relocation, memory (see [`LinkError`], whose
    /// `Undefined` variant lists every undefined symbol).
    Link(LinkError),
    /// The target failed: an executor could not be started or reached, a library could not
    /// be loaded, the program was killed by a signal (see [`TargetError`]).
    Target(TargetError),
    /// Target memory could not be had or set up.
    Memory(MapError),
    /// The token for a TCP executor is unusable (too short).
    Token(TokenError),
    /// The operation needs the code to run in this process (calling a function, giving a
    /// host address), and the session's executor is another process.
    InProcessOnly {
        /// What was asked for.
        operation: &'static str,
    },
    /// The unit is not live: never linked by this session, or freed.
    UnitNotLive(UnitId),
    /// The unit was linked without an entry symbol ([`Unit::entry`](crate::Unit::entry)).
    NoEntry(UnitId),
    /// The unit's initializers or finalizers ran already; they run once.
    AlreadyRan {
        /// The unit.
        unit: UnitId,
        /// `"initializers"` or `"finalizers"`.
        what: &'static str,
    },
    /// No live unit defines the symbol, and it was not defined absolute.
    SymbolNotFound {
        /// The name looked up.
        name: String,
    },
    /// A name or argument holds a NUL byte, which C cannot pass.
    Nul(std::ffi::NulError),
    /// The session's options do not go together (a mapper for a remote executor, ...).
    InvalidOptions(String),
    /// The link's worker threads could not be started.
    Threads(String),
    /// Serving as an executor failed (see [`serve`](crate::serve)): the address cannot be
    /// listened on, the spawning linker is gone, its connection failed.
    Serve(rjitlink_executor::ServeError),
}

impl fmt::Display for Error {
    /// This error's own part; the layers below are its [`source`](std::error::Error::source)s
    /// (as anyhow's `{:#}` joins them). [`Error::message`] gives it all on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Transparent: the lower layer's own message, and its sources after it.
            Error::Link(error) => write!(f, "{error}"),
            Error::Target(error) => write!(f, "{error}"),
            Error::Memory(error) => write!(f, "{error}"),
            Error::Token(error) => write!(f, "{error}"),
            Error::Nul(error) => write!(f, "{error}"),
            Error::Serve(error) => write!(f, "{error}"),
            Error::InProcessOnly { operation } => write!(
                f,
                "{operation} needs the in-process executor: the code runs in another process"
            ),
            Error::UnitNotLive(unit) => write!(f, "{unit:?} is not live"),
            Error::NoEntry(unit) => write!(f, "{unit:?} was linked without an entry symbol"),
            Error::AlreadyRan { unit, what } => write!(f, "the {what} of {unit:?} ran already"),
            Error::SymbolNotFound { name } => write!(
                f,
                "symbol `{}` is not defined by a live unit",
                rjitlink_link::escape_bytes(name.as_bytes())
            ),
            Error::InvalidOptions(problem) => write!(f, "invalid session options: {problem}"),
            Error::Threads(problem) => write!(f, "cannot start the link's threads: {problem}"),
        }
    }
}

impl Error {
    /// The whole message on one line: this error, then each of its sources after `: `.
    pub fn message(&self) -> String {
        rjitlink_target::full_message(self)
    }

    /// The target's error behind this one: itself ([`Error::Target`]), the target's failure
    /// a link ran into ([`LinkError::Target`]), or one further down the sources. `None` if the
    /// target did not fail.
    pub fn target_error(&self) -> Option<&TargetError> {
        match self {
            Error::Target(error) => return Some(error),
            Error::Link(LinkError::Target { source, .. }) => return Some(source),
            _ => {}
        }
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            if let Some(target) = error.downcast_ref::<TargetError>() {
                return Some(target);
            }
            cause = error.source();
        }
        None
    }

    /// The signal that killed the process running the code (a remote executor, or the
    /// program it ran), if that is what went wrong.
    pub fn terminated_by(&self) -> Option<i32> {
        match self.target_error() {
            Some(TargetError::Terminated { signal }) => Some(*signal),
            _ => None,
        }
    }

    /// Whether the target's loader ran out of static TLS for a module or library of the
    /// link (`TargetError::StaticTls`): glibc sizes that room once, as a process starts, so
    /// only a process started with more helps — in process, see
    /// [`process::restart_with_static_tls_surplus`](crate::process::restart_with_static_tls_surplus);
    /// remote executors start with more.
    pub fn is_static_tls_exhausted(&self) -> bool {
        matches!(self.target_error(), Some(TargetError::StaticTls { .. }))
    }

    /// The symbols a link left undefined, each with where it is referenced, if that is what
    /// went wrong.
    pub fn undefined_symbols(&self) -> Option<&[rjitlink_link::UndefinedSymbol]> {
        match self {
            Error::Link(LinkError::Undefined(symbols)) => Some(symbols),
            _ => None,
        }
    }

    /// The failure to get or set up target memory behind this error, from a link
    /// ([`LinkError::Memory`]) or directly ([`Error::Memory`]): the slab exhausted, or not
    /// where the code needs it.
    pub fn memory_error(&self) -> Option<&MapError> {
        match self {
            Error::Memory(error) | Error::Link(LinkError::Memory(error)) => Some(error),
            _ => None,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Link(error) => error.source(),
            Error::Target(error) => error.source(),
            Error::Memory(error) => error.source(),
            Error::Token(error) => error.source(),
            Error::Nul(error) => error.source(),
            Error::Serve(error) => error.source(),
            _ => None,
        }
    }
}

impl From<LinkError> for Error {
    fn from(error: LinkError) -> Error {
        Error::Link(error)
    }
}

impl From<TargetError> for Error {
    fn from(error: TargetError) -> Error {
        Error::Target(error)
    }
}

impl From<MapError> for Error {
    fn from(error: MapError) -> Error {
        Error::Memory(error)
    }
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Error {
        Error::Token(error)
    }
}

impl From<std::ffi::NulError> for Error {
    fn from(error: std::ffi::NulError) -> Error {
        Error::Nul(error)
    }
}
