//! What a linked unit keeps of its link to name its code later — function symbols with their
//! sizes, the objects they came from, and DWARF line rows — and the crash report built on it.
//!
//! The linker builds a [`UnitSymbols`] per unit (plugin `symbols`) and hands it to the executor
//! ([`crate::Executor::add_symbols`]): in process, the crash reporter's helper thread reads
//! it; remotely, the linker keeps it and symbolizes the frames the executor sends
//! ([`CrashReport`]). Library frames are named by the target itself (`dladdr`), as only it
//! has the libraries loaded.

use crate::error::signal_name;
use rjitlink_memory::TargetAddr;
use std::fmt::Write as _;
use std::sync::Arc;

/// A function of a unit: where it lies and what it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// Its first byte.
    pub address: TargetAddr,
    /// Its size from the symbol table; 0 where the object gives none (assembly without
    /// `.size`): it then extends to the next function.
    pub size: u64,
    /// Its name: `names[object][name.0..name.1]`.
    pub name: (u32, u32),
    /// The object that defines it, an index into `objects`.
    pub object: u32,
}

/// One row of a DWARF line table: code from `address` on comes from `file:line`, up to the
/// next row. A row with `file == END` ends a sequence: no line for the code after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRow {
    /// The row's first byte of code.
    pub address: TargetAddr,
    /// An index into `files`, or [`LineRow::END`].
    pub file: u32,
    /// The source line; 0 where the compiler names none.
    pub line: u32,
}

impl LineRow {
    /// The `file` of a row that ends a sequence.
    pub const END: u32 = u32::MAX;
}

/// A unit's line tables as the link left them, read into rows only when first needed (a
/// crash, a jitdump): reading every row of a `-g` build costs more than the rest of the link
/// spends on symbols.
pub trait LineSource: Send + Sync {
    /// Every row of the unit, sorted by address, and the files they name.
    fn read(&self) -> LineTable;
}

/// The line rows of a unit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineTable {
    /// Source file names of the rows, as the objects' line tables give them.
    pub files: Vec<String>,
    /// Sorted by address; sequences do not overlap.
    pub rows: Vec<LineRow>,
}

/// The symbols and line rows of one linked unit, kept from its link for as long as it lives.
#[derive(Default)]
pub struct UnitSymbols {
    /// The unit's code: `[code.0, code.1)`.
    pub code: (TargetAddr, TargetAddr),
    /// The objects' names as the linker calls them (`path` or `archive(member)`).
    pub objects: Vec<String>,
    /// Sorted by address.
    pub functions: Vec<FunctionSymbol>,
    /// Per object, the names of its functions back to back (one allocation per object, not
    /// one per function).
    pub names: Vec<String>,
    /// Where the line rows come from; `None`: the unit has no line tables.
    pub line_source: Option<Box<dyn LineSource>>,
    /// The rows, once read.
    line_table: std::sync::OnceLock<LineTable>,
}

impl std::fmt::Debug for UnitSymbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitSymbols")
            .field("code", &self.code)
            .field("functions", &self.functions.len())
            .field("line_source", &self.line_source.is_some())
            .finish_non_exhaustive()
    }
}

/// Where an address of a unit lies in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLocation<'a> {
    /// The function and the address's offset in it.
    pub function: Option<(&'a str, u64)>,
    /// The source file and line, where the unit has line tables.
    pub file_line: Option<(&'a str, u32)>,
    /// The defining object, when the function is known.
    pub object: Option<&'a str>,
}

impl UnitSymbols {
    /// The name of `function`.
    pub fn name(&self, function: &FunctionSymbol) -> &str {
        self.names
            .get(function.object as usize)
            .and_then(|names| names.get(function.name.0 as usize..function.name.1 as usize))
            .unwrap_or("?")
    }

    /// The function that holds `address`: the last one starting at or before it, if the
    /// address lies within its size (or it has none, and no other function starts between).
    pub fn function_at(&self, address: TargetAddr) -> Option<&FunctionSymbol> {
        let index = self
            .functions
            .partition_point(|function| function.address <= address)
            .checked_sub(1)?;
        // Among functions at one address (aliases), prefer one with a size that covers it.
        let function = &self.functions[index];
        let offset = address - function.address;
        (function.size == 0 || offset < function.size).then_some(function)
    }

    /// The unit's line rows, read from `line_source` on first use.
    pub fn line_table(&self) -> &LineTable {
        self.line_table.get_or_init(|| {
            self.line_source
                .as_ref()
                .map(|source| source.read())
                .unwrap_or_default()
        })
    }

    /// The source line of `address`, from the line rows.
    pub fn line_at(&self, address: TargetAddr) -> Option<(&str, u32)> {
        // A unit without line tables has nothing to read.
        self.line_source.as_ref()?;
        let table = self.line_table();
        let index = table
            .rows
            .partition_point(|row| row.address <= address)
            .checked_sub(1)?;
        let row = table.rows[index];
        if row.file == LineRow::END || row.line == 0 {
            return None;
        }
        Some((table.files.get(row.file as usize)?.as_str(), row.line))
    }

    /// Where `address` lies. `lookup` is the address to find the line of: a return address
    /// (a caller's frame) belongs to the call before it, so the caller passes `address - 1`.
    pub fn locate(&self, address: TargetAddr, lookup: TargetAddr) -> Option<SourceLocation<'_>> {
        let function = self.function_at(lookup);
        let file_line = self.line_at(lookup);
        if function.is_none() && file_line.is_none() {
            return None;
        }
        Some(SourceLocation {
            function: function.map(|f| (self.name(f), address - f.address)),
            file_line,
            object: function.and_then(|f| self.objects.get(f.object as usize).map(String::as_str)),
        })
    }

    /// Whether `address` lies in the unit's code.
    pub fn covers(&self, address: TargetAddr) -> bool {
        address >= self.code.0 && address < self.code.1
    }
}

/// A frame of a crashed thread, as the target saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashFrame {
    /// The frame's instruction: the faulting one for the first frame, a return address for the
    /// others.
    pub pc: TargetAddr,
    /// The library (or executable) that holds `pc`, if the loader knows one, with the nearest
    /// symbol before it and the offset from it where the library's symbols allow.
    pub library: Option<LibraryFrame>,
}

/// A frame in a library, named by the target's loader (`dladdr`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryFrame {
    /// The loaded object's path, as the loader has it.
    pub path: String,
    /// The nearest symbol at or before the frame's pc, and the pc's offset from it.
    pub symbol: Option<(String, u64)>,
}

/// What the target collected as linked code died of a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// The signal's number.
    pub signal: i32,
    /// `si_code`: positive when the kernel raised it for a fault, else sent by a process.
    pub code: i32,
    /// `si_addr`: the faulting address (SIGSEGV, SIGBUS) or instruction (SIGILL, SIGFPE).
    pub address: TargetAddr,
    /// Innermost first.
    pub frames: Vec<CrashFrame>,
}

/// `si_code` of a signal a thread sent itself or another thread (raise(), abort(),
/// pthread_kill()), <asm-generic/siginfo.h>.
const SI_TKILL: i32 = -6;

/// The most frames a crash report shows.
pub const MAX_CRASH_FRAMES: usize = 64;

/// What `si_code` says of a fault, for the report's first line.
fn code_name(signal: i32, code: i32) -> Option<&'static str> {
    Some(match (signal, code) {
        (libc::SIGSEGV, 1) => "SEGV_MAPERR: address not mapped",
        (libc::SIGSEGV, 2) => "SEGV_ACCERR: access not permitted",
        (libc::SIGBUS, 1) => "BUS_ADRALN: misaligned address",
        (libc::SIGBUS, 2) => "BUS_ADRERR: no such physical address",
        (libc::SIGBUS, 3) => "BUS_OBJERR: object error",
        (libc::SIGFPE, 1) => "FPE_INTDIV: integer divide by zero",
        (libc::SIGFPE, 2) => "FPE_INTOVF: integer overflow",
        (libc::SIGFPE, 3) => "FPE_FLTDIV: floating-point divide by zero",
        (libc::SIGILL, 1) => "ILL_ILLOPC: illegal opcode",
        (libc::SIGILL, 2) => "ILL_ILLOPN: illegal operand",
        (libc::SIGTRAP, 1) => "TRAP_BRKPT: breakpoint",
        (libc::SIGTRAP, 2) => "TRAP_TRACE: trace trap",
        _ => return None,
    })
}

/// The report rjitlink prints on stderr: the signal and faulting address, then one line per
/// frame, innermost first — linked code as `function+0xOFF (file:line) [object]`, libraries
/// as `symbol+0xOFF [path]`.
pub fn format_crash_report(report: &CrashReport, units: &[Arc<UnitSymbols>]) -> String {
    let mut text = format!("rjitlink: crash: {}", signal_name(report.signal));
    // SI_KERNEL: raised by the kernel with no address (int3, a general protection fault).
    if report.code == 0x80 {
        text.push_str(" (raised by the kernel)");
    } else if report.code > 0 {
        let _ = write!(text, " at address {}", report.address);
        if let Some(name) = code_name(report.signal, report.code) {
            let _ = write!(text, " ({name})");
        }
    } else if report.code == SI_TKILL {
        text.push_str(" (raised by the program)");
    } else {
        text.push_str(" (sent by a process)");
    }
    text.push('\n');
    for (index, frame) in report.frames.iter().enumerate() {
        let _ = write!(text, "  #{index:<2} {}", frame.pc);
        // A caller's frame holds a return address, which may be the first byte after the
        // function (a call to a function that does not return): look up the call itself.
        // int3 leaves the pc after itself (SIGTRAP from the kernel): look up the int3.
        let after_breakpoint = report.signal == libc::SIGTRAP && report.code == 0x80;
        let lookup = if index == 0 && !after_breakpoint {
            frame.pc
        } else {
            TargetAddr(frame.pc.get().saturating_sub(1))
        };
        let linked = units
            .iter()
            .filter(|unit| unit.covers(lookup))
            .find_map(|unit| unit.locate(frame.pc, lookup));
        if let Some(location) = linked {
            match location.function {
                Some((name, offset)) => {
                    let _ = write!(text, " in {name}+{offset:#x}");
                }
                None => text.push_str(" in ??"),
            }
            if let Some((file, line)) = location.file_line {
                let _ = write!(text, " ({file}:{line})");
            }
            if let Some(object) = location.object {
                let _ = write!(text, " [{object}]");
            }
        } else if let Some(library) = &frame.library {
            match &library.symbol {
                Some((name, offset)) => {
                    let _ = write!(text, " in {name}+{offset:#x}");
                }
                None => text.push_str(" in ??"),
            }
            let _ = write!(text, " [{}]", library.path);
        } else {
            text.push_str(" in ??");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> UnitSymbols {
        UnitSymbols {
            code: (TargetAddr(0x1000), TargetAddr(0x2000)),
            objects: vec!["a.o".into(), "lib.a(b.o)".into()],
            functions: vec![
                FunctionSymbol {
                    address: TargetAddr(0x1000),
                    size: 0x20,
                    name: (0, 4),
                    object: 0,
                },
                FunctionSymbol {
                    address: TargetAddr(0x1040),
                    size: 0,
                    name: (0, 3),
                    object: 1,
                },
            ],
            names: vec!["main".into(), "foo".into()],
            line_source: Some(Box::new(LineTable {
                files: vec!["a.c".into()],
                rows: vec![
                    LineRow {
                        address: TargetAddr(0x1000),
                        file: 0,
                        line: 3,
                    },
                    LineRow {
                        address: TargetAddr(0x1010),
                        file: 0,
                        line: 4,
                    },
                    LineRow {
                        address: TargetAddr(0x1020),
                        file: LineRow::END,
                        line: 0,
                    },
                ],
            })),
            ..UnitSymbols::default()
        }
    }

    impl LineSource for LineTable {
        fn read(&self) -> LineTable {
            self.clone()
        }
    }

    #[test]
    fn addresses_find_their_function_and_line() {
        let unit = unit();
        let at = |a| unit.locate(TargetAddr(a), TargetAddr(a));
        let main = at(0x1012).unwrap();
        assert_eq!(main.function, Some(("main", 0x12)));
        assert_eq!(main.file_line, Some(("a.c", 4)));
        assert_eq!(main.object, Some("a.o"));
        // Past main's size, before foo: nothing.
        assert_eq!(at(0x1030), None);
        // foo has no size: it reaches on, and has no line.
        let foo = at(0x1050).unwrap();
        assert_eq!(foo.function, Some(("foo", 0x10)));
        assert_eq!(foo.file_line, None);
        assert_eq!(at(0xfff), None);
    }

    #[test]
    fn reports_name_linked_and_library_frames() {
        let report = CrashReport {
            signal: libc::SIGSEGV,
            code: 1,
            address: TargetAddr(0),
            frames: vec![
                CrashFrame {
                    pc: TargetAddr(0x1012),
                    library: None,
                },
                CrashFrame {
                    pc: TargetAddr(0x7000),
                    library: Some(LibraryFrame {
                        path: "/lib/libc.so.6".into(),
                        symbol: Some(("__libc_start_call_main".into(), 0x7a)),
                    }),
                },
            ],
        };
        let text = format_crash_report(&report, &[Arc::new(unit())]);
        assert_eq!(
            text,
            "rjitlink: crash: SIGSEGV at address 0x0 (SEGV_MAPERR: address not mapped)\n  \
             #0  0x1012 in main+0x12 (a.c:4) [a.o]\n  \
             #1  0x7000 in __libc_start_call_main+0x7a [/lib/libc.so.6]\n"
        );
    }
}
