//! What can go wrong in a link, as values a caller can match on. Each variant carries the file,
//! section, offset and symbol involved as fields; `Display` phrases the problem in its own
//! terms and `source()` gives the cause (an I/O error, the target's failure), so that printing
//! the chain says everything once. The command line decides how to present it.

use rjitlink_arch::{Range, UnsupportedReloc};
use rjitlink_memory::MapError;
use rjitlink_target::TargetError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Bytes from an input (a symbol, section or member name, a path) as text that is safe to
/// print on a terminal: printable UTF-8 stays as it is, and every other byte — control
/// characters such as ESC or `\r`, invalid UTF-8, and the invisible characters that reorder
/// or hide text — is written `\xNN`. A name could otherwise move the cursor, recolour or
/// rewrite the terminal, or hide the rest of the message. Every message that carries a name
/// from an input passes it through here (or through `Display` of `LinkError`, which escapes
/// its fields the same way).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut text, chunk.valid());
        for byte in chunk.invalid() {
            push_byte(&mut text, *byte);
        }
    }
    text
}

/// `escape_bytes` for a path (whose bytes on Linux are any but NUL).
pub fn escape_path(path: &Path) -> String {
    escape_bytes(path.as_os_str().as_encoded_bytes())
}

/// Whether `c` must not reach a terminal as it is: control characters, and the format
/// characters that reorder text or make it invisible (bidirectional overrides and isolates,
/// zero-width characters, the byte order mark).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn push_byte(text: &mut String, byte: u8) {
    use std::fmt::Write as _;
    let _ = write!(text, "\\x{byte:02x}");
}

fn push_escaped(text: &mut String, valid: &str) {
    for c in valid.chars() {
        if needs_escape(c) {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                push_byte(text, byte);
            }
        } else {
            text.push(c);
        }
    }
}

/// Displays text escaped as `escape_bytes` does: for the text fields of errors, which may
/// hold names from inputs. Our own wording has nothing to escape, and escaped text is left as
/// it is, so a field escaped when the error was made comes out the same.
struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.chars().any(needs_escape) {
            return f.write_str(self.0);
        }
        let mut text = String::with_capacity(self.0.len() + 8);
        push_escaped(&mut text, self.0);
        f.write_str(&text)
    }
}

/// A link failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// An input file could not be opened or mapped.
    Io {
        /// The input's path.
        path: PathBuf,
        /// `open` or `map`.
        operation: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// `-l NAME` found nothing in the search path; `script` names the linker script that
    /// asked for it.
    LibraryNotFound {
        /// The library's name as given to `-l`.
        name: String,
        /// The linker script that asked for it, if one did.
        script: Option<PathBuf>,
    },
    /// A file a linker script names was not found.
    ScriptInputNotFound {
        /// The linker script naming it.
        script: PathBuf,
        /// The name as the script gives it.
        file: String,
    },
    /// An input is malformed or is not something rjitlink links. `file` is a path, or
    /// `archive(member)` for an archive member.
    Input {
        /// The input: a path, or `archive(member)`.
        file: String,
        /// What is wrong, as a phrase.
        problem: String,
    },
    /// A section of an input cannot be linked.
    Section {
        /// The input holding it.
        file: String,
        /// The section's name.
        section: String,
        /// What is wrong, as a phrase.
        problem: String,
    },
    /// A symbol cannot be linked; `file` is the input that defines it, where one does.
    Symbol {
        /// The input defining it, where one does.
        file: Option<String>,
        /// The symbol's name.
        symbol: String,
        /// What is wrong, as a phrase.
        problem: String,
    },
    /// A relocation cannot be applied.
    Relocation {
        /// The input holding it.
        file: String,
        /// The section the relocation applies to.
        section: String,
        /// The relocation's offset in its section.
        offset: u64,
        /// The function whose code holds the relocation (the object's `STT_FUNC` symbol
        /// whose `[value, value + size)` covers the offset), where there is one.
        function: Option<String>,
        /// Boxed: relocations are applied by the million, and a large error would make every
        /// `Result` on that path large.
        problem: Box<RelocationProblem>,
    },
    /// Strongly referenced symbols that nothing defines.
    Undefined(Vec<UndefinedSymbol>),
    /// Two inputs define the same global strongly.
    DuplicateSymbol {
        /// The symbol's name.
        symbol: String,
        /// The input defining it first.
        first: String,
        /// The input defining it again.
        second: String,
    },
    /// The entry symbol cannot be run.
    Entry {
        /// The entry symbol's name.
        symbol: String,
        /// Why it cannot be run.
        problem: EntryProblem,
    },
    /// The image is larger than the code model lets its code reach across.
    ImageTooLarge {
        /// The image's size in bytes.
        size: u64,
        /// How far code can reach in the code model.
        limit: u64,
    },
    /// Target memory could not be had or set up. Displays as the `MapError` itself.
    Memory(MapError),
    /// `Session::free` of a unit that is not live (never linked, or freed already).
    UnitNotLive(u64),
    /// Something rjitlink itself got wrong: a bug to report.
    Internal(&'static str),
    /// The target failed a request (loading a library, looking symbols up, ...). Without a
    /// context it displays as the `TargetError` itself.
    Target {
        /// What the linker asked for, where the target's own message does not say it.
        context: Option<&'static str>,
        /// The target's error.
        source: TargetError,
    },
}

/// A symbol nothing defines, and an input that refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedSymbol {
    /// The symbol's name.
    pub symbol: String,
    /// `None` when only the entry point asks for it.
    pub referenced_by: Option<String>,
    /// The function in `referenced_by` whose code refers to it (as ld says `in function`),
    /// where the reference lies in a function's code.
    pub function: Option<String>,
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
        /// Why it is not supported.
        reason: UnsupportedReloc,
        /// the symbol it refers to.
        symbol: String,
    },
    /// It names a symbol index past the symbol table.
    InvalidSymbolIndex(u64),
    /// Its field does not lie inside its section.
    OutsideSection {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
        /// The size of the section it lies in.
        section_size: u64,
    },
    /// The value does not fit the field.
    Overflow {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
        /// The value computed.
        value: i64,
        /// The width of the field in bits.
        bits: usize,
        /// The values the field can hold.
        range: Range,
        /// What would make it fit, where something would.
        hint: Option<&'static str>,
    },
    /// The symbol lies in a section that is not loaded (a discarded COMDAT copy or a
    /// non-allocated section).
    SymbolNotLoaded {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
    },
    /// A symbol-size relocation against a library symbol, whose size is unknown.
    LibrarySymbolSize {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
    },
    /// A GOT-relative relocation whose GOT slot scan did not plan: a bug in rjitlink.
    NoSlotPlanned {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
    },
    /// A thread-local access that cannot be linked.
    ThreadLocal {
        /// the relocation's type, as `R_X86_64_PC32`.
        relocation: &'static str,
        /// the symbol it refers to.
        symbol: String,
        /// Why it cannot be linked.
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
            "undefined symbol `{}` (referenced by {}",
            Printable(&self.symbol),
            Printable(referrer)
        )?;
        match &self.function {
            Some(function) => write!(f, " in function '{}')", Printable(function)),
            None => f.write_str(")"),
        }
    }
}

impl fmt::Display for RelocationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocationProblem::Unsupported { reason, symbol } => {
                write!(f, "{reason} against `{}`", Printable(symbol))
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
                "{relocation} against `{}` lies outside its section (size {section_size:#x})",
                Printable(symbol)
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
                    "{relocation} against `{}`: value {value:#x} does not fit in {bits} bits {}",
                    Printable(symbol),
                    range.describe()
                )?;
                match hint {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            RelocationProblem::SymbolNotLoaded { relocation, symbol } => write!(
                f,
                "{relocation} against `{}`: the symbol lies in a section that is not loaded (a discarded COMDAT copy or a non-allocated section)",
                Printable(symbol)
            ),
            RelocationProblem::LibrarySymbolSize { relocation, symbol } => write!(
                f,
                "{relocation} against `{}`: the size of a symbol defined in a shared library is not known",
                Printable(symbol)
            ),
            RelocationProblem::ThreadLocal {
                relocation,
                symbol,
                problem,
            } => write!(f, "{relocation} against `{}`: {problem}", Printable(symbol)),
            RelocationProblem::NoSlotPlanned { relocation, symbol } => write!(
                f,
                "{relocation} against `{}`: internal error: no GOT slot was planned",
                Printable(symbol)
            ),
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io {
                path, operation, ..
            } => write!(f, "cannot {operation} {}", escape_path(path)),
            LinkError::LibraryNotFound { name, script } => match script {
                Some(script) => write!(
                    f,
                    "{}: cannot find -l{}",
                    escape_path(script),
                    Printable(name)
                ),
                None => write!(f, "cannot find -l{}", Printable(name)),
            },
            LinkError::ScriptInputNotFound { script, file } => write!(
                f,
                "{}: cannot find {}",
                escape_path(script),
                Printable(file)
            ),
            LinkError::Input { file, problem } => {
                write!(f, "{}: {}", Printable(file), Printable(problem))
            }
            LinkError::Section {
                file,
                section,
                problem,
            } => write!(
                f,
                "{}: section {} {}",
                Printable(file),
                Printable(section),
                Printable(problem)
            ),
            LinkError::Symbol {
                file: Some(file),
                symbol,
                problem,
            } => write!(
                f,
                "{}: symbol {} {}",
                Printable(file),
                Printable(symbol),
                Printable(problem)
            ),
            LinkError::Symbol {
                file: None,
                symbol,
                problem,
            } => write!(f, "symbol {} {}", Printable(symbol), Printable(problem)),
            LinkError::Relocation {
                file,
                section,
                offset,
                function,
                problem,
            } => {
                write!(f, "{}: {}+{offset:#x}", Printable(file), Printable(section))?;
                if let Some(function) = function {
                    write!(f, " in function '{}'", Printable(function))?;
                }
                write!(f, ": {problem}")
            }
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
                "duplicate symbol `{}`: defined in {} and in {}",
                Printable(symbol),
                Printable(first),
                Printable(second)
            ),
            LinkError::Entry { symbol, problem } => {
                let symbol = Printable(symbol);
                match problem {
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
                }
            }
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
                None => write!(f, "{}", Printable(&source.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_the_terminal() {
        assert_eq!(escape_bytes(b"printf"), "printf");
        assert_eq!(escape_bytes("größe_π".as_bytes()), "größe_π");
        assert_eq!(
            escape_bytes(b"\x1b[31mred\r\n\x7f\\"),
            "\\x1b[31mred\\x0d\\x0a\\x7f\\"
        );
        // Invalid UTF-8 byte by byte; a C1 control and a right-to-left override by their bytes.
        assert_eq!(escape_bytes(b"a\xff\xc3b"), "a\\xff\\xc3b");
        assert_eq!(
            escape_bytes("x\u{85}y\u{202e}".as_bytes()),
            "x\\xc2\\x85y\\xe2\\x80\\xae"
        );
        // Escaping twice changes nothing: errors escape fields made from escaped names.
        let once = escape_bytes(b"\x1bname\xfe");
        assert_eq!(escape_bytes(once.as_bytes()), once);
    }

    #[test]
    fn error_display_escapes_every_field() {
        let error = LinkError::Relocation {
            file: "a\x1b.o".into(),
            section: ".text\r".into(),
            offset: 4,
            function: None,
            problem: Box::new(RelocationProblem::InvalidSymbolIndex(9)),
        };
        assert_eq!(
            error.to_string(),
            "a\\x1b.o: .text\\x0d+0x4: invalid symbol index 9"
        );
        let error = LinkError::Undefined(vec![UndefinedSymbol {
            symbol: "\u{7}bell".into(),
            referenced_by: Some("b.o\n".into()),
            function: Some("f\x1b".into()),
        }]);
        assert_eq!(
            error.to_string(),
            "undefined symbol `\\x07bell` (referenced by b.o\\x0a in function 'f\\x1b')"
        );
    }
}
