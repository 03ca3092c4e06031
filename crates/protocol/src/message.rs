//! The messages. Requests go from the linker to the executor; each gets one response.
//! Decoded messages borrow their byte strings from the frame they came in.

use crate::codec::{DecodeError, Decoder, Encoder};
use rjitlink_memory::{
    Placement, Protection, SegmentProtection, TargetAddr, TargetCall, TargetRange,
};

/// A program to run: the executor's copy of `rjitlink_target::Program`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunProgram<'a> {
    /// Called as `int entry(int argc, char **argv, char **envp)`.
    pub entry: TargetAddr,
    /// Init functions, in call order.
    pub init: Vec<TargetAddr>,
    /// Fini functions, in call order.
    pub fini: Vec<TargetAddr>,
    /// argv, `argv[0]` included.
    pub args: Vec<&'a [u8]>,
    /// Report a crash of linked code before dying of it (`Response::Crashed`).
    pub crash_report: bool,
}

/// One function of `Request::JitDump`: its place, name, and line rows (address, line, file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitDumpFunction<'a> {
    /// Its first byte, in live code of the executor.
    pub address: TargetAddr,
    /// Its size in bytes.
    pub size: u64,
    /// Its symbol name.
    pub name: &'a [u8],
    /// Its line rows: where each starts, its line, its file.
    pub lines: Vec<(TargetAddr, u32, &'a [u8])>,
}

/// One function of `Request::PerfMap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfMapLine<'a> {
    /// Its first byte.
    pub address: TargetAddr,
    /// Its size in bytes.
    pub size: u64,
    /// Its symbol name.
    pub name: &'a [u8],
}

/// One copy relocation to interpose (see `rjitlink_target::Interposition`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy<'a> {
    /// The symbol's name, for messages.
    pub name: &'a [u8],
    /// Where the data lives now.
    pub original: TargetAddr,
    /// Where it moves to.
    pub copy: TargetAddr,
    /// The data's size in bytes.
    pub size: u64,
}

/// One debug object announced by `RegisterDebugObjects`: its name, for messages, and its size;
/// its bytes follow the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugObjectHeader<'a> {
    /// The object's name, for messages: the input's path or `archive(member)`.
    pub name: &'a [u8],
    /// The image's size in bytes, which the executor checks before reading them.
    pub size: u64,
}

/// A symbol's kind on the wire: 0 function, 1 data, 2 other.
pub type SymbolKindCode = u8;

/// A request from the linker to the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// The first message: the linker's protocol version and its nonce for the authentication
    /// (see `auth`; a spawned executor needs none, and ignores it).
    Hello {
        /// The linker's protocol version.
        version: u32,
        /// The linker's nonce (empty for a spawned executor).
        nonce: &'a [u8],
    },
    /// The linker's proof that it knows the token, answering a `Challenge`.
    Authenticate {
        /// HMAC-SHA256 of both nonces under the token.
        proof: &'a [u8],
    },
    /// Reserve address space; with `shared`, backed by a memory file the linker can map too,
    /// which holds `nonce` (the linker's, fresh) just past the range: reading it back there,
    /// the linker knows it mapped that very file.
    Reserve {
        /// Bytes of address space.
        size: u64,
        /// Where it may lie.
        placement: Placement,
        /// Back it with a memory file the linker maps too.
        shared: bool,
        /// The linker's fresh nonce, written past the range.
        nonce: &'a [u8],
    },
    /// Copy `length` bytes into reserved memory (the copy mapper). The bytes follow the frame
    /// on the stream, raw, so that the executor reads them straight into place.
    Write {
        /// Where the bytes go.
        address: TargetAddr,
        /// How many bytes follow the frame.
        length: u64,
    },
    /// Copy runs of bytes into reserved memory, at several places at once: a whole image in
    /// one round trip (the copy mapper). The executor makes the `writable` pages writable
    /// (the pages between runs read zero: they are not sent), then reads the runs' bytes,
    /// which follow the frame on the stream, raw and back to back in the order of `runs`,
    /// straight into place. It checks every range before it reads a byte: each writable
    /// range must lie in its reservations, each run in a writable range.
    WriteRuns {
        /// The pages to make writable first: in each segment written, from its first run's
        /// page to its last run's.
        writable: Vec<TargetRange>,
        /// Where each run goes, and how many of the bytes that follow are its.
        runs: Vec<TargetRange>,
    },
    /// What `WriteRuns` does before its bytes arrive, without the bytes: the same checks,
    /// the `writable` pages made writable (and advised into huge pages as they would be for
    /// the runs' bytes). No bytes follow: a linker that started the executor as its own child
    /// writes them into its memory itself (`process_vm_writev`), one copy instead of two
    /// through the connection, then makes the segments live with `Initialize`.
    PrepareWrites {
        /// The pages to make writable, as for `WriteRuns`.
        writable: Vec<TargetRange>,
        /// Where each run will go: each must lie in a writable range.
        runs: Vec<TargetRange>,
    },
    /// Make segments live with their protections, then make the calls (`MemoryMapper::initialize`).
    Initialize {
        /// The segments and their protections.
        segments: Vec<SegmentProtection>,
        /// Calls to make once they are live.
        actions: Vec<TargetCall>,
    },
    /// Make the calls, then return the ranges to reserved (`MemoryMapper::deinitialize`).
    Deinitialize {
        /// The ranges.
        ranges: Vec<TargetRange>,
        /// Calls to make first.
        actions: Vec<TargetCall>,
    },
    /// Give a reservation back.
    Release {
        /// The whole reservation.
        range: TargetRange,
    },
    /// Load a shared library (`Executor::load_library`).
    LoadLibrary {
        /// Its path on the executor's machine.
        path: &'a [u8],
    },
    /// Load a shared object sent as bytes (the program's exported symbols).
    LoadLibraryImage {
        /// The name it is loaded under, for messages.
        name: &'a [u8],
        /// The shared object's bytes.
        image: &'a [u8],
    },
    /// Load a generated module privately (`Executor::load_module`) and send back the
    /// `table_count` words at `table_offset` of its loaded image.
    LoadModule {
        /// The name it is loaded under, for messages.
        name: &'a [u8],
        /// The shared object's bytes.
        image: &'a [u8],
        /// The word table's offset in the image.
        table_offset: u64,
        /// How many words it has.
        table_count: u64,
    },
    /// Unload a module by the handle a `Module` response gave.
    UnloadModule {
        /// The handle `Module` gave.
        handle: u64,
    },
    /// Look names up in the loaded libraries (`Executor::lookup`), all at once.
    Lookup {
        /// The names.
        names: Vec<&'a [u8]>,
    },
    /// Kind and size of library symbols (`Executor::symbol_info`).
    SymbolInfo {
        /// The symbols' addresses.
        addresses: Vec<TargetAddr>,
    },
    /// Interpose copy relocations (`Executor::interpose`).
    Interpose {
        /// The copies.
        copies: Vec<Copy<'a>>,
    },
    /// Run the program; the connection then carries its end (and, over TCP, its streams).
    Run(RunProgram<'a>),
    /// Stop serving: the linker is done.
    Shutdown,
    /// Append these functions to the executor's `/tmp/perf-PID.map`.
    PerfMap {
        /// The functions, one line each.
        lines: Vec<PerfMapLine<'a>>,
    },
    /// Append these functions, with their code, to the executor's jitdump in `directory`
    /// (empty: the default one).
    JitDump {
        /// Where the dump goes; empty: the executor's default place.
        directory: &'a [u8],
        /// The functions, a code-load record each.
        functions: Vec<JitDumpFunction<'a>>,
    },
    /// Publish debug objects through the JIT interface (`Executor::register_debug_objects`).
    /// Their images follow the frame on the stream, raw and back to back in this order, so
    /// that no frame limit applies to them and the executor reads them straight into place.
    RegisterDebugObjects {
        /// The objects, in the order their images follow.
        objects: Vec<DebugObjectHeader<'a>>,
    },
    /// Withdraw debug objects by the handles a `DebugObjects` response gave.
    UnregisterDebugObjects {
        /// All or none are withdrawn: each must be registered, and appear once.
        handles: Vec<u64>,
    },
    /// Call a live unit's init functions, in order, outside of a program's run
    /// (`Executor::run_initializers`). Each must be code the executor holds or a function of
    /// a loaded library.
    RunInitializers {
        /// The functions, in call order.
        functions: Vec<TargetAddr>,
    },
    /// Call a live unit's fini functions, in order (`Executor::run_finalizers`); checked as
    /// `RunInitializers`.
    RunFinalizers {
        /// The functions, in call order.
        functions: Vec<TargetAddr>,
    },
    /// While a program runs over TCP: bytes for its standard input, at most the window the
    /// executor has granted (`STDIN_WINDOW`, given back by `InputConsumed`).
    Input {
        /// The bytes.
        data: &'a [u8],
    },
    /// While a program runs over TCP: its standard input has ended.
    InputClosed,
    /// While a program runs over TCP: the linker can no longer write the program's standard
    /// output (1) or error (2), a closed pipe: the program's next write there fails as it
    /// would natively (SIGPIPE).
    OutputClosed {
        /// `STDOUT` or `STDERR`.
        stream: u8,
    },
}

/// The program's standard output, in `Output` and `OutputClosed`.
pub const STDOUT: u8 = 1;
/// The program's standard error, in `Output` and `OutputClosed`.
pub const STDERR: u8 = 2;

fn decode_stream(code: u8) -> Result<u8, DecodeError> {
    match code {
        STDOUT | STDERR => Ok(code),
        _ => Err(DecodeError(format!("invalid output stream {code}"))),
    }
}

/// The executor's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// The executor accepts the linker. Over TCP, `proof` is its proof that it knows the
    /// token, covering the other fields (see `auth`); a spawned executor's is empty.
    Hello {
        /// The executor's protocol version.
        version: u32,
        /// Its page size.
        page_size: u64,
        /// Its process id.
        pid: u32,
        /// What it offers (`CAPABILITY_*` bits).
        capabilities: u64,
        /// Its proof (empty for a spawned executor).
        proof: &'a [u8],
    },
    /// The executor's nonce: the linker must now prove that it knows the token.
    Challenge {
        /// The executor's nonce.
        nonce: &'a [u8],
    },
    /// The executor authenticated the linker and will not serve it (`reason`, e.g. it serves
    /// as many linkers as it may); `proof` vouches for the reason.
    Refused {
        /// Why it will not serve the linker.
        reason: &'a [u8],
        /// Its proof that it knows the token.
        proof: &'a [u8],
    },
    /// The request was carried out.
    Done,
    /// The request failed: the executor's message.
    Failed(&'a [u8]),
    /// The reserved range.
    Reserved(TargetRange),
    /// A shared reservation: memory file descriptor `fd` of the executor (also passed over a
    /// Unix socket right after this frame) holds the range's bytes at offset 0, then one page
    /// with the request's nonce at its start.
    ReservedShared {
        /// The reserved range.
        range: TargetRange,
        /// The executor's descriptor for the memory file.
        fd: u32,
    },
    /// One address per name looked up (`None`: no library defines it).
    Addresses(Vec<Option<TargetAddr>>),
    /// One kind and size per address (`None`: no symbol starts there).
    SymbolInfos(Vec<Option<(SymbolKindCode, u64)>>),
    /// A module loaded: its handle, and its word table as the loader left it.
    Module {
        /// The handle to unload it by.
        handle: u64,
        /// The table's words.
        words: Vec<u64>,
    },
    /// Debug objects registered: one handle each, in the request's order.
    DebugObjects {
        /// One per object, in the request's order.
        handles: Vec<u64>,
    },
    /// The program exited with this status.
    Exited(i32),
    /// Linked code crashed, and the executor dies of the signal next: what it collected, for
    /// the linker to symbolize and print. Sent before the `Run` request's end.
    Crashed(rjitlink_target::CrashReport),
    /// The process serving the connection was killed by this signal.
    Terminated(i32),
    /// While a program runs over TCP: bytes it wrote to its standard output or error.
    Output {
        /// `STDOUT` or `STDERR`.
        stream: u8,
        /// The bytes.
        data: &'a [u8],
    },
    /// While a program runs over TCP: it has taken this many more bytes of its input, which
    /// the linker may send again (`Request::Input`).
    InputConsumed {
        /// How many bytes.
        bytes: u64,
    },
}

fn protection_code(protection: Protection) -> u8 {
    match protection {
        Protection::ReadExecute => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

fn decode_protection(code: u8) -> Result<Protection, DecodeError> {
    Ok(match code {
        0 => Protection::ReadExecute,
        1 => Protection::Read,
        2 => Protection::ReadWrite,
        _ => return Err(DecodeError(format!("invalid protection {code}"))),
    })
}

fn encode_range(e: &mut Encoder, range: TargetRange) {
    e.u64(range.start.get()).u64(range.len as u64);
}

fn decode_range(d: &mut Decoder<'_>) -> Result<TargetRange, DecodeError> {
    let start = TargetAddr(d.u64()?);
    let len = usize::try_from(d.u64()?).map_err(|_| DecodeError("range too long".into()))?;
    Ok(TargetRange { start, len })
}

/// A count, then that many ranges; the count is checked against the bytes left before
/// anything is allocated.
fn decode_ranges(d: &mut Decoder<'_>) -> Result<Vec<TargetRange>, DecodeError> {
    (0..d.count(16)?).map(|_| decode_range(d)).collect()
}

fn encode_actions(e: &mut Encoder, actions: &[TargetCall]) {
    e.count(actions.len());
    for action in actions {
        e.u64(action.function.get())
            .u64(action.args[0])
            .u64(action.args[1]);
    }
}

fn decode_actions(d: &mut Decoder<'_>) -> Result<Vec<TargetCall>, DecodeError> {
    (0..d.count(24)?)
        .map(|_| {
            Ok(TargetCall {
                function: TargetAddr(d.u64()?),
                args: [d.u64()?, d.u64()?],
            })
        })
        .collect()
}

fn encode_addresses(e: &mut Encoder, addresses: &[TargetAddr]) {
    e.count(addresses.len());
    for address in addresses {
        e.u64(address.get());
    }
}

fn decode_addresses(d: &mut Decoder<'_>) -> Result<Vec<TargetAddr>, DecodeError> {
    (0..d.count(8)?).map(|_| Ok(TargetAddr(d.u64()?))).collect()
}

fn decode_crash(d: &mut Decoder<'_>) -> Result<rjitlink_target::CrashReport, DecodeError> {
    use rjitlink_target::{CrashFrame, CrashReport, LibraryFrame};
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let signal = d.i32()?;
    let code = d.i32()?;
    let address = TargetAddr(d.u64()?);
    let count = d.count(9)?;
    if count > rjitlink_target::symbolize::MAX_CRASH_FRAMES {
        return Err(DecodeError(format!("a crash report of {count} frames")));
    }
    let frames = (0..count)
        .map(|_| {
            let pc = TargetAddr(d.u64()?);
            let library = match d.u8()? {
                0 => None,
                _ => Some(LibraryFrame {
                    path: text(d.bytes()?),
                    symbol: match d.u8()? {
                        0 => None,
                        _ => Some((text(d.bytes()?), d.u64()?)),
                    },
                }),
            };
            Ok(CrashFrame { pc, library })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(CrashReport {
        signal,
        code,
        address,
        frames,
    })
}

impl<'a> Request<'a> {
    /// Append the request's encoding to `e`.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Request::Hello { version, nonce } => {
                e.u8(0).bytes(&crate::MAGIC).u32(*version).bytes(nonce);
            }
            Request::Reserve {
                size,
                placement,
                shared,
                nonce,
            } => {
                e.u8(1).u64(*size).u8(u8::from(*shared));
                match placement {
                    Placement::Anywhere => e.u8(0).u64(0),
                    Placement::Below2GiB => e.u8(1).u64(0),
                    Placement::At(address) => e.u8(2).u64(address.get()),
                };
                e.bytes(nonce);
            }
            Request::Write { address, length } => {
                e.u8(2).u64(address.get()).u64(*length);
            }
            Request::Initialize { segments, actions } => {
                e.u8(3).count(segments.len());
                for segment in segments {
                    encode_range(e, segment.range);
                    e.u8(protection_code(segment.protection));
                }
                encode_actions(e, actions);
            }
            Request::Deinitialize { ranges, actions } => {
                e.u8(4).count(ranges.len());
                for range in ranges {
                    encode_range(e, *range);
                }
                encode_actions(e, actions);
            }
            Request::Release { range } => {
                e.u8(5);
                encode_range(e, *range);
            }
            Request::LoadLibrary { path } => {
                e.u8(6).bytes(path);
            }
            Request::Lookup { names } => {
                e.u8(7).count(names.len());
                for name in names {
                    e.bytes(name);
                }
            }
            Request::SymbolInfo { addresses } => {
                e.u8(8);
                encode_addresses(e, addresses);
            }
            Request::Interpose { copies } => {
                e.u8(9).count(copies.len());
                for copy in copies {
                    e.bytes(copy.name)
                        .u64(copy.original.get())
                        .u64(copy.copy.get())
                        .u64(copy.size);
                }
            }
            Request::Run(program) => {
                e.u8(10).u64(program.entry.get());
                encode_addresses(e, &program.init);
                encode_addresses(e, &program.fini);
                e.count(program.args.len());
                for arg in &program.args {
                    e.bytes(arg);
                }
                e.u8(u8::from(program.crash_report));
            }
            Request::JitDump {
                directory,
                functions,
            } => {
                e.u8(20).bytes(directory).count(functions.len());
                for function in functions {
                    e.u64(function.address.get())
                        .u64(function.size)
                        .bytes(function.name)
                        .count(function.lines.len());
                    for (address, line, file) in &function.lines {
                        e.u64(address.get()).u32(*line).bytes(file);
                    }
                }
            }
            Request::PerfMap { lines } => {
                e.u8(19).count(lines.len());
                for line in lines {
                    e.u64(line.address.get()).u64(line.size).bytes(line.name);
                }
            }
            Request::Shutdown => {
                e.u8(11);
            }
            Request::LoadLibraryImage { name, image } => {
                e.u8(12).bytes(name).bytes(image);
            }
            Request::LoadModule {
                name,
                image,
                table_offset,
                table_count,
            } => {
                e.u8(13)
                    .bytes(name)
                    .bytes(image)
                    .u64(*table_offset)
                    .u64(*table_count);
            }
            Request::UnloadModule { handle } => {
                e.u8(14).u64(*handle);
            }
            Request::Authenticate { proof } => {
                e.u8(15).bytes(proof);
            }
            Request::Input { data } => {
                e.u8(16).bytes(data);
            }
            Request::InputClosed => {
                e.u8(17);
            }
            Request::OutputClosed { stream } => {
                e.u8(18).u8(*stream);
            }
            Request::RegisterDebugObjects { objects } => {
                e.u8(21).count(objects.len());
                for object in objects {
                    e.bytes(object.name).u64(object.size);
                }
            }
            Request::UnregisterDebugObjects { handles } => {
                e.u8(22).count(handles.len());
                for handle in handles {
                    e.u64(*handle);
                }
            }
            Request::RunInitializers { functions } => {
                e.u8(23);
                encode_addresses(e, functions);
            }
            Request::RunFinalizers { functions } => {
                e.u8(24);
                encode_addresses(e, functions);
            }
            Request::WriteRuns { writable, runs } | Request::PrepareWrites { writable, runs } => {
                e.u8(match self {
                    Request::WriteRuns { .. } => 25,
                    _ => 26,
                });
                for ranges in [writable, runs] {
                    e.count(ranges.len());
                    for range in ranges {
                        encode_range(e, *range);
                    }
                }
            }
        }
    }

    /// Decode one request from a frame; Err on anything malformed.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        let mut d = Decoder::new(bytes);
        let request = {
            match d.u8()? {
                // The hello's layout never changes, so any version can read another's.
                0 => {
                    if d.bytes()? != crate::MAGIC {
                        return Err(DecodeError("not an rjitlink hello".into()));
                    }
                    Request::Hello {
                        version: d.u32()?,
                        nonce: d.bytes()?,
                    }
                }
                1 => {
                    let size = d.u64()?;
                    let shared = d.u8()? != 0;
                    let placement = match (d.u8()?, d.u64()?) {
                        (0, _) => Placement::Anywhere,
                        (1, _) => Placement::Below2GiB,
                        (2, address) => Placement::At(TargetAddr(address)),
                        (code, _) => return Err(DecodeError(format!("invalid placement {code}"))),
                    };
                    Request::Reserve {
                        size,
                        placement,
                        shared,
                        nonce: d.bytes()?,
                    }
                }
                2 => Request::Write {
                    address: TargetAddr(d.u64()?),
                    length: d.u64()?,
                },
                3 => {
                    let segments = (0..d.count(17)?)
                        .map(|_| {
                            Ok(SegmentProtection {
                                range: decode_range(&mut d)?,
                                protection: decode_protection(d.u8()?)?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?;
                    Request::Initialize {
                        segments,
                        actions: decode_actions(&mut d)?,
                    }
                }
                4 => {
                    let ranges = (0..d.count(16)?)
                        .map(|_| decode_range(&mut d))
                        .collect::<Result<_, _>>()?;
                    Request::Deinitialize {
                        ranges,
                        actions: decode_actions(&mut d)?,
                    }
                }
                5 => Request::Release {
                    range: decode_range(&mut d)?,
                },
                6 => Request::LoadLibrary { path: d.bytes()? },
                7 => Request::Lookup {
                    names: (0..d.count(4)?)
                        .map(|_| d.bytes())
                        .collect::<Result<_, _>>()?,
                },
                8 => Request::SymbolInfo {
                    addresses: decode_addresses(&mut d)?,
                },
                9 => Request::Interpose {
                    copies: (0..d.count(28)?)
                        .map(|_| {
                            Ok(Copy {
                                name: d.bytes()?,
                                original: TargetAddr(d.u64()?),
                                copy: TargetAddr(d.u64()?),
                                size: d.u64()?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?,
                },
                10 => Request::Run(RunProgram {
                    entry: TargetAddr(d.u64()?),
                    init: decode_addresses(&mut d)?,
                    fini: decode_addresses(&mut d)?,
                    args: (0..d.count(4)?)
                        .map(|_| d.bytes())
                        .collect::<Result<_, _>>()?,
                    crash_report: d.u8()? != 0,
                }),
                11 => Request::Shutdown,
                12 => Request::LoadLibraryImage {
                    name: d.bytes()?,
                    image: d.bytes()?,
                },
                // The table is checked against the image by the executor, which owns both.
                13 => Request::LoadModule {
                    name: d.bytes()?,
                    image: d.bytes()?,
                    table_offset: d.u64()?,
                    table_count: d.u64()?,
                },
                14 => Request::UnloadModule { handle: d.u64()? },
                15 => Request::Authenticate { proof: d.bytes()? },
                16 => Request::Input { data: d.bytes()? },
                17 => Request::InputClosed,
                18 => Request::OutputClosed {
                    stream: decode_stream(d.u8()?)?,
                },
                19 => Request::PerfMap {
                    lines: (0..d.count(20)?)
                        .map(|_| {
                            Ok(PerfMapLine {
                                address: TargetAddr(d.u64()?),
                                size: d.u64()?,
                                name: d.bytes()?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?,
                },
                20 => Request::JitDump {
                    directory: d.bytes()?,
                    functions: (0..d.count(24)?)
                        .map(|_| {
                            Ok(JitDumpFunction {
                                address: TargetAddr(d.u64()?),
                                size: d.u64()?,
                                name: d.bytes()?,
                                lines: (0..d.count(16)?)
                                    .map(|_| Ok((TargetAddr(d.u64()?), d.u32()?, d.bytes()?)))
                                    .collect::<Result<_, DecodeError>>()?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?,
                },
                // The sizes are checked by the executor before it reads the bytes.
                21 => Request::RegisterDebugObjects {
                    objects: (0..d.count(12)?)
                        .map(|_| {
                            Ok(DebugObjectHeader {
                                name: d.bytes()?,
                                size: d.u64()?,
                            })
                        })
                        .collect::<Result<_, DecodeError>>()?,
                },
                22 => Request::UnregisterDebugObjects {
                    handles: (0..d.count(8)?)
                        .map(|_| d.u64())
                        .collect::<Result<_, _>>()?,
                },
                23 => Request::RunInitializers {
                    functions: decode_addresses(&mut d)?,
                },
                24 => Request::RunFinalizers {
                    functions: decode_addresses(&mut d)?,
                },
                25 => Request::WriteRuns {
                    writable: decode_ranges(&mut d)?,
                    runs: decode_ranges(&mut d)?,
                },
                26 => Request::PrepareWrites {
                    writable: decode_ranges(&mut d)?,
                    runs: decode_ranges(&mut d)?,
                },
                kind => return Err(DecodeError(format!("unknown request kind {kind}"))),
            }
        };
        d.finish()?;
        Ok(request)
    }
}

impl<'a> Response<'a> {
    /// The message's bytes, as a frame carries them (without the frame's header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        self.encode(&mut e);
        e.bytes
    }

    /// Append the response's encoding to `e`.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Response::Hello {
                version,
                page_size,
                pid,
                capabilities,
                proof,
            } => {
                e.u8(0)
                    .bytes(&crate::MAGIC)
                    .u32(*version)
                    .u64(*page_size)
                    .u32(*pid)
                    .u64(*capabilities)
                    .bytes(proof);
            }
            Response::Done => {
                e.u8(1);
            }
            Response::Failed(message) => {
                e.u8(2).bytes(message);
            }
            Response::Reserved(range) => {
                e.u8(3);
                encode_range(e, *range);
            }
            Response::Addresses(addresses) => {
                e.u8(4).count(addresses.len());
                for address in addresses {
                    e.u64(address.map_or(0, TargetAddr::get));
                }
            }
            Response::SymbolInfos(infos) => {
                e.u8(5).count(infos.len());
                for info in infos {
                    match info {
                        Some((kind, size)) => e.u8(1).u8(*kind).u64(*size),
                        None => e.u8(0).u8(0).u64(0),
                    };
                }
            }
            Response::Exited(status) => {
                e.u8(6).i32(*status);
            }
            Response::ReservedShared { range, fd } => {
                e.u8(8);
                encode_range(e, *range);
                e.u32(*fd);
            }
            Response::Terminated(signal) => {
                e.u8(7).i32(*signal);
            }
            Response::Module { handle, words } => {
                e.u8(9).u64(*handle).count(words.len());
                for word in words {
                    e.u64(*word);
                }
            }
            Response::Challenge { nonce } => {
                e.u8(10).bytes(nonce);
            }
            Response::Refused { reason, proof } => {
                e.u8(11).bytes(reason).bytes(proof);
            }
            Response::Output { stream, data } => {
                e.u8(12).u8(*stream).bytes(data);
            }
            Response::InputConsumed { bytes } => {
                e.u8(13).u64(*bytes);
            }
            Response::Crashed(report) => {
                e.u8(14)
                    .i32(report.signal)
                    .i32(report.code)
                    .u64(report.address.get())
                    .count(report.frames.len());
                for frame in &report.frames {
                    e.u64(frame.pc.get());
                    match &frame.library {
                        None => e.u8(0),
                        Some(library) => {
                            e.u8(1).bytes(library.path.as_bytes());
                            match &library.symbol {
                                None => e.u8(0),
                                Some((name, offset)) => e.u8(1).bytes(name.as_bytes()).u64(*offset),
                            }
                        }
                    };
                }
            }
            Response::DebugObjects { handles } => {
                e.u8(15).count(handles.len());
                for handle in handles {
                    e.u64(*handle);
                }
            }
        }
    }

    /// Decode one response from a frame; Err on anything malformed.
    pub fn decode(bytes: &'a [u8]) -> Result<Response<'a>, DecodeError> {
        let mut d = Decoder::new(bytes);
        let response = {
            match d.u8()? {
                0 => {
                    if d.bytes()? != crate::MAGIC {
                        return Err(DecodeError("not an rjitlink executor".into()));
                    }
                    Response::Hello {
                        version: d.u32()?,
                        page_size: d.u64()?,
                        pid: d.u32()?,
                        capabilities: d.u64()?,
                        proof: d.bytes()?,
                    }
                }
                1 => Response::Done,
                2 => Response::Failed(d.bytes()?),
                3 => Response::Reserved(decode_range(&mut d)?),
                4 => Response::Addresses(
                    (0..d.count(8)?)
                        .map(|_| Ok(Some(d.u64()?).filter(|&a| a != 0).map(TargetAddr)))
                        .collect::<Result<_, DecodeError>>()?,
                ),
                5 => Response::SymbolInfos(
                    (0..d.count(10)?)
                        .map(|_| {
                            let (present, kind, size) = (d.u8()?, d.u8()?, d.u64()?);
                            Ok((present != 0).then_some((kind, size)))
                        })
                        .collect::<Result<_, DecodeError>>()?,
                ),
                6 => Response::Exited(d.i32()?),
                7 => Response::Terminated(d.i32()?),
                8 => Response::ReservedShared {
                    range: decode_range(&mut d)?,
                    fd: d.u32()?,
                },
                9 => Response::Module {
                    handle: d.u64()?,
                    words: (0..d.count(8)?)
                        .map(|_| d.u64())
                        .collect::<Result<_, _>>()?,
                },
                10 => Response::Challenge { nonce: d.bytes()? },
                11 => Response::Refused {
                    reason: d.bytes()?,
                    proof: d.bytes()?,
                },
                12 => Response::Output {
                    stream: decode_stream(d.u8()?)?,
                    data: d.bytes()?,
                },
                13 => Response::InputConsumed { bytes: d.u64()? },
                14 => Response::Crashed(decode_crash(&mut d)?),
                15 => Response::DebugObjects {
                    handles: (0..d.count(8)?)
                        .map(|_| d.u64())
                        .collect::<Result<_, _>>()?,
                },
                kind => return Err(DecodeError(format!("unknown response kind {kind}"))),
            }
        };
        d.finish()?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: Request<'_>) {
        let mut e = Encoder::default();
        request.encode(&mut e);
        assert_eq!(Request::decode(&e.bytes).unwrap(), request);
    }

    #[test]
    fn requests_survive_encoding() {
        round_trip(Request::Hello {
            version: 1,
            nonce: b"0123456789abcdef0123456789abcdef",
        });
        round_trip(Request::Authenticate { proof: &[7; 32] });
        round_trip(Request::Reserve {
            size: 1 << 30,
            placement: Placement::At(TargetAddr(0x4000_0000)),
            shared: true,
            nonce: b"nonce",
        });
        round_trip(Request::Input { data: b"line\n" });
        round_trip(Request::InputClosed);
        round_trip(Request::OutputClosed { stream: STDERR });
        round_trip(Request::Write {
            address: TargetAddr(0x1000),
            length: 3,
        });
        round_trip(Request::WriteRuns {
            writable: vec![TargetRange {
                start: TargetAddr(0x1000),
                len: 0x9000,
            }],
            runs: vec![
                TargetRange {
                    start: TargetAddr(0x1000),
                    len: 3,
                },
                TargetRange {
                    start: TargetAddr(0x9000),
                    len: 4096,
                },
            ],
        });
        round_trip(Request::WriteRuns {
            writable: vec![],
            runs: vec![],
        });
        round_trip(Request::PrepareWrites {
            writable: vec![TargetRange {
                start: TargetAddr(0x1000),
                len: 0x9000,
            }],
            runs: vec![TargetRange {
                start: TargetAddr(0x9000),
                len: 4096,
            }],
        });
        round_trip(Request::Initialize {
            segments: vec![SegmentProtection {
                range: TargetRange {
                    start: TargetAddr(0x1000),
                    len: 4096,
                },
                protection: Protection::ReadExecute,
            }],
            actions: vec![TargetCall {
                function: TargetAddr(5),
                args: [6, 7],
            }],
        });
        round_trip(Request::Lookup {
            names: vec![b"printf", b"puts"],
        });
        round_trip(Request::Run(RunProgram {
            entry: TargetAddr(0x1234),
            init: vec![TargetAddr(1)],
            fini: vec![],
            args: vec![b"prog", b"-x"],
            crash_report: true,
        }));
        round_trip(Request::JitDump {
            directory: b"/tmp/jit",
            functions: vec![JitDumpFunction {
                address: TargetAddr(0x7f00_0000_1000),
                size: 0x42,
                name: b"main",
                lines: vec![(TargetAddr(0x7f00_0000_1000), 3, b"main.c")],
            }],
        });
        round_trip(Request::PerfMap {
            lines: vec![PerfMapLine {
                address: TargetAddr(0x7f00_0000_1000),
                size: 0x42,
                name: b"main",
            }],
        });
        round_trip(Request::Shutdown);
        round_trip(Request::LoadModule {
            name: b"tls module",
            image: b"\x7fELF...",
            table_offset: 0x40,
            table_count: 3,
        });
        round_trip(Request::UnloadModule {
            handle: 0x7f12_3456_7000,
        });
        round_trip(Request::RegisterDebugObjects {
            objects: vec![
                DebugObjectHeader {
                    name: b"main.o",
                    size: 4096,
                },
                DebugObjectHeader {
                    name: b"libx.a(y.o)",
                    size: 0,
                },
            ],
        });
        round_trip(Request::UnregisterDebugObjects {
            handles: vec![1, u64::MAX],
        });
        round_trip(Request::RunInitializers {
            functions: vec![TargetAddr(0x7f00_0000_1000), TargetAddr(0x7f00_0000_1010)],
        });
        round_trip(Request::RunFinalizers { functions: vec![] });
    }

    fn response_round_trip(response: Response<'_>) {
        let mut e = Encoder::default();
        response.encode(&mut e);
        assert_eq!(Response::decode(&e.bytes).unwrap(), response);
    }

    #[test]
    fn responses_survive_encoding() {
        response_round_trip(Response::Done);
        response_round_trip(Response::Failed(b"cannot load x: no"));
        response_round_trip(Response::Module {
            handle: 0x5555_0000_1000,
            words: vec![1, u64::MAX, 0xffff_ffff_ffff_f000],
        });
        response_round_trip(Response::Module {
            handle: 1,
            words: vec![],
        });
        response_round_trip(Response::Addresses(vec![Some(TargetAddr(0x1000)), None]));
        response_round_trip(Response::Exited(3));
        response_round_trip(Response::Crashed(rjitlink_target::CrashReport {
            signal: 11,
            code: 1,
            address: TargetAddr(0),
            frames: vec![
                rjitlink_target::CrashFrame {
                    pc: TargetAddr(0x1000),
                    library: None,
                },
                rjitlink_target::CrashFrame {
                    pc: TargetAddr(0x2000),
                    library: Some(rjitlink_target::LibraryFrame {
                        path: "/lib/libc.so.6".into(),
                        symbol: Some(("abort".into(), 0x10)),
                    }),
                },
            ],
        }));
        response_round_trip(Response::Hello {
            version: 3,
            page_size: 4096,
            pid: 42,
            capabilities: 1,
            proof: &[1; 32],
        });
        response_round_trip(Response::Challenge { nonce: &[2; 32] });
        response_round_trip(Response::Refused {
            reason: b"busy",
            proof: &[3; 32],
        });
        response_round_trip(Response::ReservedShared {
            range: TargetRange {
                start: TargetAddr(0x7000_0000),
                len: 1 << 20,
            },
            fd: 5,
        });
        response_round_trip(Response::Output {
            stream: STDOUT,
            data: b"out",
        });
        response_round_trip(Response::InputConsumed { bytes: 1 << 16 });
        response_round_trip(Response::DebugObjects {
            handles: vec![3, 4, 5],
        });
    }

    #[test]
    fn crash_reports_have_at_most_64_frames() {
        let report = |frames: usize| {
            Response::Crashed(rjitlink_target::CrashReport {
                signal: 11,
                code: 1,
                address: TargetAddr(0),
                frames: vec![rjitlink_target::CrashFrame::default(); frames],
            })
            .to_bytes()
        };
        assert!(Response::decode(&report(64)).is_ok());
        let refused = Response::decode(&report(65)).unwrap_err();
        assert!(refused.0.contains("65 frames"), "{refused}");
    }

    #[test]
    fn output_streams_are_checked() {
        let mut e = Encoder::default();
        e.u8(12).u8(3).bytes(b"x");
        assert!(Response::decode(&e.bytes).is_err());
        let mut e = Encoder::default();
        e.u8(18).u8(0);
        assert!(Request::decode(&e.bytes).is_err());
    }

    #[test]
    fn forged_module_counts_are_rejected() {
        // A word count far beyond the bytes that follow must fail before allocating.
        let mut e = Encoder::default();
        e.u8(9).u64(1).u32(u32::MAX).u64(7);
        assert!(Response::decode(&e.bytes).is_err());
        // Every prefix of a valid module request and response fails cleanly.
        let mut request = Encoder::default();
        Request::LoadModule {
            name: b"m",
            image: b"image",
            table_offset: 8,
            table_count: 1,
        }
        .encode(&mut request);
        for end in 0..request.bytes.len() {
            assert!(Request::decode(&request.bytes[..end]).is_err());
        }
        let mut response = Encoder::default();
        Response::Module {
            handle: 2,
            words: vec![5, 6],
        }
        .encode(&mut response);
        for end in 0..response.bytes.len() {
            assert!(Response::decode(&response.bytes[..end]).is_err());
        }
    }

    #[test]
    fn forged_function_counts_are_rejected() {
        // A count of functions to call far beyond the bytes that follow fails before
        // allocating; so does every prefix of a valid request.
        for kind in [23u8, 24] {
            let mut e = Encoder::default();
            e.u8(kind).u32(u32::MAX).u64(0x1000);
            assert!(Request::decode(&e.bytes).is_err(), "request {kind}");
        }
        let mut request = Encoder::default();
        Request::RunFinalizers {
            functions: vec![TargetAddr(0x1000)],
        }
        .encode(&mut request);
        for end in 0..request.bytes.len() {
            assert!(Request::decode(&request.bytes[..end]).is_err());
        }
    }

    #[test]
    fn forged_run_counts_are_rejected() {
        // A count of runs far beyond the bytes that follow fails before allocating; so does
        // every prefix of a valid request. Both requests that name runs (25: WriteRuns, 26:
        // PrepareWrites).
        for kind in [25u8, 26] {
            let mut e = Encoder::default();
            e.u8(kind).u32(u32::MAX).u64(0x1000).u64(16);
            assert!(Request::decode(&e.bytes).is_err(), "request {kind}");
            let mut e = Encoder::default();
            e.u8(kind).u32(0).u32(u32::MAX).u64(0x1000).u64(16);
            assert!(Request::decode(&e.bytes).is_err(), "request {kind}");
        }
        let writable = vec![TargetRange {
            start: TargetAddr(0x1000),
            len: 4096,
        }];
        let runs = vec![TargetRange {
            start: TargetAddr(0x1000),
            len: 16,
        }];
        for request in [
            Request::WriteRuns {
                writable: writable.clone(),
                runs: runs.clone(),
            },
            Request::PrepareWrites { writable, runs },
        ] {
            let mut encoded = Encoder::default();
            request.encode(&mut encoded);
            for end in 0..encoded.bytes.len() {
                assert!(Request::decode(&encoded.bytes[..end]).is_err());
            }
        }
    }

    #[test]
    fn forged_debug_object_counts_are_rejected() {
        // Counts far beyond the bytes that follow fail before anything is allocated.
        for kind in [19u8, 20] {
            let mut e = Encoder::default();
            e.u8(kind).u32(u32::MAX).u64(1);
            assert!(Request::decode(&e.bytes).is_err(), "request {kind}");
        }
        let mut e = Encoder::default();
        e.u8(14).u32(u32::MAX).u64(1);
        assert!(Response::decode(&e.bytes).is_err());
        let mut request = Encoder::default();
        Request::RegisterDebugObjects {
            objects: vec![DebugObjectHeader {
                name: b"a.o",
                size: 100,
            }],
        }
        .encode(&mut request);
        for end in 0..request.bytes.len() {
            assert!(Request::decode(&request.bytes[..end]).is_err());
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        for bytes in [
            &[][..],
            &[1, 0],
            &[99],
            &[7, 255, 255],
            &[0, 4, 0, 0, 0, b'R'],
        ] {
            assert!(Request::decode(bytes).is_err(), "{bytes:?}");
            assert!(Response::decode(bytes).is_err(), "{bytes:?}");
        }
        let mut e = Encoder::default();
        Request::Shutdown.encode(&mut e);
        e.u8(0);
        assert!(
            Request::decode(&e.bytes).is_err(),
            "trailing bytes are rejected"
        );
    }

    #[test]
    fn every_byte_string_prefix_is_rejected_cleanly() {
        let mut e = Encoder::default();
        Request::Lookup {
            names: vec![b"printf", b"puts"],
        }
        .encode(&mut e);
        for end in 0..e.bytes.len() {
            assert!(Request::decode(&e.bytes[..end]).is_err());
        }
    }

    #[test]
    fn random_frames_never_panic() {
        // Deterministic xorshift: 20,000 byte strings of random length and content, and
        // single-byte corruptions of every valid request above.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first %= 25; // mostly valid kinds, so decoding gets past the first byte
            }
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
        let mut e = Encoder::default();
        Request::Run(RunProgram {
            entry: TargetAddr(1),
            init: vec![TargetAddr(2)],
            fini: vec![TargetAddr(3)],
            args: vec![b"a"],
            crash_report: false,
        })
        .encode(&mut e);
        for i in 0..e.bytes.len() {
            for bit in 0..8 {
                let mut bytes = e.bytes.clone();
                bytes[i] ^= 1 << bit;
                let _ = Request::decode(&bytes);
            }
        }
    }
}
