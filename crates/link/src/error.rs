//! What can go wrong in a link, as values a caller can match on. Each variant carries the file,
//! section, offset and symbol involved as fields; `Display` phrases the problem in its own
//! terms and `source()` gives the cause (an I/O error, the target's failure), so that printing
//! the chain says everything once. The command line decides how to present it.

use rjitlink_arch::{Range, UnsupportedReloc};
use rjitlink_memory::MapError;
use rjitlink_target::TargetError;
use std::fmt;
use std::path::PathBuf;

/// A link failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// An input file could not be opened or mapped.
    Io {
        path: PathBuf,
        /// `open` or `map`.
        operation: &'static str,
        source: std::io::Error,
    },
    /// `-l NAME` found nothing in the search path; `script` names the linker script that
    /// asked for it.
    LibraryNotFound {
        name: String,
        script: Option<PathBuf>,
    },
    /// A file a linker script names was not found.
    ScriptInputNotFound { script: PathBuf, file: String },
    /// An input is malformed or is not something rjitlink links. `file` is a path, or
    /// `archive(member)` for an archive member.
    Input { file: String, problem: String },
    /// A section of an input cannot be linked.
    Section {
        file: String,
        section: String,
        problem: String,
    },
    /// A symbol cannot be linked; `file` is the input that defines it, where one does.
    Symbol {
        file: Option<String>,
        symbol: String,
        problem: String,
    },
    /// A relocation cannot be applied.
    Relocation {
        file: String,
        section: String,
        /// The relocation's offset in its section.
        offset: u64,
        /// Boxed: relocations are applied by the million, and a large error would make every
        /// `Result` on that path large.
        problem: Box<RelocationProblem>,
    },
    /// Strongly referenced symbols that nothing defines.
    Undefined(Vec<UndefinedSymbol>),
    /// Two inputs define the same global strongly.
    DuplicateSymbol {
        symbol: String,
        first: String,
        second: String,
    },
    /// The entry symbol cannot be run.
    Entry {
        symbol: String,
        problem: EntryProblem,
    },
    /// The image is larger than the code model lets its code reach across.
    ImageTooLarge { size: u64, limit: u64 },
    /// Target memory could not be had or set up. Displays as the `MapError` itself.
    Memory(MapError),
    /// `Session::free` of a unit that is not live (never linked, or freed already).
    UnitNotLive(u32),
    /// Something rjitlink itself got wrong: a bug to report.
    Internal(&'static str),
    /// The target failed a request (loading a library, looking symbols up, ...). Without a
    /// context it displays as the `TargetError` itself.
    Target {
        /// What the linker asked for, where the target's own message does not say it.
        context: Option<&'static str>,
        source: TargetError,
    },
}

/// A symbol nothing defines, and an input that refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedSymbol {
    pub symbol: String,
    /// `None` when only the entry point asks for it.
    pub referenced_by: Option<String>,
}

/// Why the entry symbol cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProblem {
    /// No input defines it.
    Undefined,
    /// Only a shared library or an earlier unit does.
    NotInUnit,
    /// Its section is not loaded.
    NotLoaded,
}

/// Why a relocation cannot be applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum RelocationProblem {
    /// Its type is unknown or not supported.
    Unsupported {
        reason: UnsupportedReloc,
        symbol: String,
    },
    /// It names a symbol index past the symbol table.
    InvalidSymbolIndex(u64),
    /// Its field does not lie inside its section.
    OutsideSection {
        relocation: &'static str,
        symbol: String,
        section_size: u64,
    },
    /// The value does not fit the field.
    Overflow {
        relocation: &'static str,
        symbol: String,
        value: i64,
        bits: usize,
        range: Range,
        /// What would make it fit, where something would.
        hint: Option<&'static str>,
    },
    /// The symbol lies in a section that is not loaded (a discarded COMDAT copy or a
    /// non-allocated section).
    SymbolNotLoaded {
        relocation: &'static str,
        symbol: String,
    },
    /// A symbol-size relocation against a library symbol, whose size is unknown.
    LibrarySymbolSize {
        relocation: &'static str,
        symbol: String,
    },
    /// A GOT-relative relocation whose GOT slot scan did not plan: a bug in rjitlink.
    NoSlotPlanned {
        relocation: &'static str,
        symbol: String,
    },
    /// A thread-local access that cannot be linked.
    ThreadLocal {
        relocation: &'static str,
        symbol: String,
        problem: TlsProblem,
    },
}

/// Why a thread-local access cannot be linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsProblem {
    /// A TLS relocation against a symbol that is not thread-local.
    NotThreadLocal,
    /// A relocation that wants an address, against a thread-local symbol (which has none).
    ThreadLocalSymbol,
    /// A local-exec or local-dynamic access, which only reaches the unit's own block, to a
    /// symbol a shared library defines.
    DefinedInLibrary,
    /// A thread-local access to an undefined weak symbol.
    UndefinedWeak,
    /// A relocation in `.tdata` that the block's initial image cannot hold (it has no address
    /// of its own: each thread's copy lies elsewhere).
    InInitialImage,
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsProblem::NotThreadLocal => {
                "a thread-local access to a symbol that is not thread-local (TLS reference mismatches non-TLS definition)"
            }
            TlsProblem::ThreadLocalSymbol => {
                "the symbol is thread-local and has no address of its own (non-TLS reference mismatches TLS definition)"
            }
            TlsProblem::DefinedInLibrary => {
                "local-exec and local-dynamic accesses reach only this unit's thread-local block, and a shared library defines the symbol (compile with -fPIC)"
            }
            TlsProblem::UndefinedWeak => "the thread-local symbol is undefined (weak)",
            TlsProblem::InInitialImage => {
                "cannot be applied in a thread-local section's initial image (only absolute addresses and offsets in the block can)"
            }
        })
    }
}

impl From<MapError> for LinkError {
    fn from(error: MapError) -> Self {
        LinkError::Memory(error)
    }
}

impl LinkError {
    /// A target failure with what the linker was doing.
    pub(crate) fn target(context: &'static str) -> impl FnOnce(TargetError) -> LinkError {
        move |source| LinkError::Target {
            context: Some(context),
            source,
        }
    }

    /// A malformed or unsupported input.
    pub(crate) fn input(file: impl fmt::Display, problem: impl Into<String>) -> LinkError {
        LinkError::Input {
            file: file.to_string(),
            problem: problem.into(),
        }
    }
}

impl From<TargetError> for LinkError {
    fn from(source: TargetError) -> Self {
        LinkError::Target {
            context: None,
            source,
        }
    }
}

impl fmt::Display for UndefinedSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let referrer = self.referenced_by.as_deref().unwrap_or("the entry point");
        write!(
            f,
            "undefined symbol `{}` (referenced by {referrer})",
            self.symbol
        )
    }
}

impl fmt::Display for RelocationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocationProblem::Unsupported { reason, symbol } => {
                write!(f, "{reason} against `{symbol}`")
            }
            RelocationProblem::InvalidSymbolIndex(index) => {
                write!(f, "invalid symbol index {index}")
            }
            RelocationProblem::OutsideSection {
                relocation,
                symbol,
                section_size,
            } => write!(
                f,
                "{relocation} against `{symbol}` lies outside its section (size {section_size:#x})"
            ),
            RelocationProblem::Overflow {
                relocation,
                symbol,
                value,
                bits,
                range,
                hint,
            } => {
                write!(
                    f,
                    "{relocation} against `{symbol}`: value {value:#x} does not fit in {bits} bits {}",
                    range.describe()
                )?;
                match hint {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            RelocationProblem::SymbolNotLoaded { relocation, symbol } => write!(
                f,
                "{relocation} against `{symbol}`: the symbol lies in a section that is not loaded (a discarded COMDAT copy or a non-allocated section)"
            ),
            RelocationProblem::LibrarySymbolSize { relocation, symbol } => write!(
                f,
                "{relocation} against `{symbol}`: the size of a symbol defined in a shared library is not known"
            ),
            RelocationProblem::ThreadLocal {
                relocation,
                symbol,
                problem,
            } => write!(f, "{relocation} against `{symbol}`: {problem}"),
            RelocationProblem::NoSlotPlanned { relocation, symbol } => write!(
                f,
                "{relocation} against `{symbol}`: internal error: no GOT slot was planned"
            ),
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io {
                path, operation, ..
            } => write!(f, "cannot {operation} {}", path.display()),
            LinkError::LibraryNotFound { name, script } => match script {
                Some(script) => write!(f, "{}: cannot find -l{name}", script.display()),
                None => write!(f, "cannot find -l{name}"),
            },
            LinkError::ScriptInputNotFound { script, file } => {
                write!(f, "{}: cannot find {file}", script.display())
            }
            LinkError::Input { file, problem } => write!(f, "{file}: {problem}"),
            LinkError::Section {
                file,
                section,
                problem,
            } => write!(f, "{file}: section {section} {problem}"),
            LinkError::Symbol {
                file: Some(file),
                symbol,
                problem,
            } => write!(f, "{file}: symbol {symbol} {problem}"),
            LinkError::Symbol {
                file: None,
                symbol,
                problem,
            } => write!(f, "symbol {symbol} {problem}"),
            LinkError::Relocation {
                file,
                section,
                offset,
                problem,
            } => write!(f, "{file}: {section}+{offset:#x}: {problem}"),
            LinkError::Undefined(symbols) => {
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{symbol}")?;
                }
                Ok(())
            }
            LinkError::DuplicateSymbol {
                symbol,
                first,
                second,
            } => write!(
                f,
                "duplicate symbol `{symbol}`: defined in {first} and in {second}"
            ),
            LinkError::Entry { symbol, problem } => match problem {
                EntryProblem::Undefined => {
                    write!(f, "entry symbol `{symbol}` is not defined by any input")
                }
                EntryProblem::NotInUnit => write!(
                    f,
                    "entry symbol `{symbol}` is defined only in a shared library or an earlier unit, not by the linked objects"
                ),
                EntryProblem::NotLoaded => write!(
                    f,
                    "entry symbol `{symbol}` lies in a section that is not loaded"
                ),
            },
            LinkError::ImageTooLarge { size, limit } => write!(
                f,
                "the linked image needs {size:#x} bytes, more than the {} MiB the code model allows",
                limit >> 20
            ),
            LinkError::Memory(error) => write!(f, "{error}"),
            LinkError::UnitNotLive(unit) => write!(f, "unit {unit} is not live"),
            LinkError::Internal(what) => write!(f, "internal error: {what}"),
            LinkError::Target { context, source } => match context {
                Some(context) => f.write_str(context),
                None => write!(f, "{source}"),
            },
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Io { source, .. } => Some(source),
            // Without context of its own, a wrapped error stands for itself.
            LinkError::Memory(error) => error.source(),
            LinkError::Target {
                context: Some(_),
                source,
            } => Some(source),
            LinkError::Target {
                context: None,
                source,
            } => source.source(),
            _ => None,
        }
    }
}
