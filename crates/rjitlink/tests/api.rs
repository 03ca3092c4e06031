//! The facade in process: units from paths and bytes, lookups, host and absolute symbols, the
//! parts of a unit run separately, typed errors, plugins and options. Every C input is
//! compiled by the system's cc; expected values are computed from the C source by hand.

mod common;

use common::Scratch;
use rjitlink::{Error, LinkError, MapError, PluginSwitches, Session, TargetAddr, Unit};
use std::sync::atomic::{AtomicI32, Ordering};

#[test]
fn links_an_object_by_path_and_calls_it() {
    let scratch = Scratch::new("path");
    let object = scratch.compile("add", "int add(int a, int b) { return a + b; }\n", &[]);
    let mut session = Session::new().unwrap();
    assert!(session.is_in_process());
    let unit = session.link(&Unit::new().path(&object)).unwrap();
    // SAFETY: `int add(int, int)`, its unit live.
    let add: extern "C" fn(i32, i32) -> i32 = unsafe { session.lookup_fn("add") }.unwrap();
    assert_eq!(add(2, 40), 42);
    assert_eq!(add(-7, 3), -4);
    let address = session.lookup("add").unwrap();
    assert_eq!(address.get(), add as usize as u64);
    assert!(unit.contains(address));
    assert!(session
        .link_times()
        .phases()
        .iter()
        .any(|(name, _)| *name == "resolve"));
    assert!(format!("{session:?}").contains("live_units: 1"));
}

#[test]
fn links_objects_and_archives_from_bytes() {
    let scratch = Scratch::new("bytes");
    let mul = scratch.compile("mul", "long mul(long a, long b) { return a * b; }\n", &[]);
    let unused = scratch.compile("unused", "int unused_member(void) { return 1; }\n", &[]);
    let archive = scratch.archive("libmul", &[&mul, &unused]);
    let square = scratch.compile(
        "square",
        "long mul(long, long);\nlong square(long x) { return mul(x, x); }\n",
        &[],
    );
    let mut session = Session::new().unwrap();
    let unit = Unit::new()
        .bytes("square.o", std::fs::read(&square).unwrap())
        .bytes("libmul.a", std::fs::read(&archive).unwrap());
    assert_eq!(unit.input_count(), 2);
    session.link(&unit).unwrap();
    // SAFETY: `long square(long)`.
    let square: extern "C" fn(i64) -> i64 = unsafe { session.lookup_fn("square") }.unwrap();
    assert_eq!(square(12), 144);
    // Only the member that was needed was linked, as ld does.
    assert!(session.lookup("mul").is_some());
    assert!(session.lookup("unused_member").is_none());
}

#[test]
fn later_units_shadow_earlier_ones_until_freed() {
    let scratch = Scratch::new("shadow");
    let one = scratch.compile("one", "int value(void) { return 1; }\n", &[]);
    let two = scratch.compile("two", "int value(void) { return 2; }\n", &[]);
    let user = scratch.compile(
        "user",
        "int value(void);\nint value_plus_ten(void) { return value() + 10; }\n",
        &[],
    );
    let mut session = Session::builder().threads(1).build().unwrap();
    let first = session.link(&Unit::new().path(&one)).unwrap();
    let second = session.link(&Unit::new().path(&two)).unwrap();
    let call = |session: &Session, name: &str| {
        // SAFETY: `int f(void)`, its unit live during the call.
        let f: extern "C" fn() -> i32 = unsafe { session.lookup_fn(name) }.unwrap();
        f()
    };
    assert_eq!(call(&session, "value"), 2);
    // A later unit resolves against the latest definition.
    let third = session.link(&Unit::new().path(&user)).unwrap();
    assert_eq!(call(&session, "value_plus_ten"), 12);
    session.free(third.id).unwrap();
    session.free(second.id).unwrap();
    assert_eq!(call(&session, "value"), 1);
    assert_eq!(session.live_units(), 1);
    session.free(first.id).unwrap();
    assert!(session.lookup("value").is_none());
    assert!(matches!(
        unsafe { session.lookup_fn::<extern "C" fn() -> i32>("value") },
        Err(Error::SymbolNotFound { name }) if name == "value"
    ));
    assert!(matches!(session.free(first.id), Err(Error::UnitNotLive(id)) if id == first.id));
    assert_eq!(session.live_units(), 0);
}

extern "C" fn host_triple(x: i32) -> i32 {
    x * 3
}

static HOST_VALUE: AtomicI32 = AtomicI32::new(100);

#[test]
fn linked_code_calls_host_functions_and_reads_host_data() {
    let scratch = Scratch::new("host");
    let source = "int host_triple(int);\nextern int host_value;\n\
         int compute(int x) { return host_triple(x) + host_value; }\n";
    // -fPIC: the variable is read through the GOT, which reaches it wherever it is.
    let object = scratch.compile("uses_host", source, &["-fPIC"]);
    let mut session = Session::new().unwrap();
    session
        .define_host_function("host_triple", host_triple as extern "C" fn(i32) -> i32)
        .unwrap();
    session
        .define_host_data("host_value", HOST_VALUE.as_ptr())
        .unwrap();
    assert_eq!(
        session.lookup("host_value"),
        Some(TargetAddr(HOST_VALUE.as_ptr() as u64))
    );
    session.link(&Unit::new().path(&object)).unwrap();
    // SAFETY: `int compute(int)`.
    let compute: extern "C" fn(i32) -> i32 = unsafe { session.lookup_fn("compute") }.unwrap();
    assert_eq!(compute(5), 15 + HOST_VALUE.load(Ordering::SeqCst));
    // The code reads the host's variable itself, not a copy.
    HOST_VALUE.fetch_add(1000, Ordering::SeqCst);
    assert_eq!(compute(5), 15 + HOST_VALUE.load(Ordering::SeqCst));

    // Undefined again, a new unit that needs it no longer links.
    assert!(session.undefine("host_triple"));
    assert!(!session.undefine("host_triple"));
    match session.link(&Unit::new().path(&object)) {
        Err(Error::Link(LinkError::Undefined(symbols))) => {
            assert_eq!(symbols.len(), 1);
            assert_eq!(symbols[0].symbol, "host_triple");
            assert!(symbols[0]
                .referenced_by
                .as_deref()
                .unwrap()
                .ends_with("uses_host.o"));
        }
        other => panic!("expected an undefined symbol, got {other:?}"),
    }
}

#[test]
fn host_data_out_of_reach_of_pc_relative_code_is_an_error() {
    let scratch = Scratch::new("host-data-far");
    // cc's default (-fPIE) reads an extern variable PC-relative: only ±2 GiB away. The slab is
    // placed far from this test's own data, which lies in the executable.
    let object = scratch.compile(
        "pie",
        "extern int host_value;\nint read_it(void) { return host_value; }\n",
        &["-fPIE"],
    );
    let mut session = Session::new().unwrap();
    session
        .define_host_data("host_value", HOST_VALUE.as_ptr())
        .unwrap();
    let slab_start = {
        let probe = scratch.compile("probe", "int probe;\n", &[]);
        let unit = session.link(&Unit::new().path(&probe)).unwrap();
        unit.ranges[0].start.get()
    };
    let distance = slab_start.abs_diff(HOST_VALUE.as_ptr() as u64);
    let result = session.link(&Unit::new().path(&object));
    if distance < (1 << 31) - (1 << 30) {
        // Within reach (a layout this test cannot choose): it must then read the real thing.
        result.unwrap();
        // SAFETY: `int read_it(void)`.
        let read_it: extern "C" fn() -> i32 = unsafe { session.lookup_fn("read_it") }.unwrap();
        assert_eq!(read_it(), HOST_VALUE.load(Ordering::SeqCst));
        return;
    }
    match result {
        Err(Error::Link(LinkError::Relocation {
            file,
            section,
            problem,
            ..
        })) => {
            assert!(file.ends_with("pie.o"), "{file}");
            assert_eq!(section, ".text");
            let problem = problem.to_string();
            assert!(
                problem.contains("R_X86_64_PC32 against `host_value`"),
                "{problem}"
            );
            assert!(problem.contains("compile with -fPIC"), "{problem}");
        }
        other => panic!("expected a relocation overflow, got {other:?}"),
    }
}

#[test]
fn host_symbols_are_visible_only_when_asked() {
    let scratch = Scratch::new("host-symbols");
    // No default libraries: strlen can come only from the host process (which has libc).
    let object = scratch.compile(
        "count",
        "unsigned long strlen(const char *);\n\
         unsigned long count(const char *s) { return strlen(s); }\n",
        &["-fno-builtin"],
    );
    let unit = Unit::new().path(&object).default_libraries(false);
    let mut hidden = Session::new().unwrap();
    let error = hidden.link(&unit).unwrap_err();
    assert!(
        matches!(&error, Error::Link(LinkError::Undefined(s)) if s[0].symbol == "strlen"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("undefined symbol `strlen`"),
        "{error}"
    );

    let mut visible = Session::builder().host_symbols(true).build().unwrap();
    visible.link(&unit).unwrap();
    // SAFETY: `unsigned long count(const char *)`.
    let count: extern "C" fn(*const std::ffi::c_char) -> u64 =
        unsafe { visible.lookup_fn("count") }.unwrap();
    assert_eq!(count(c"hello, world".as_ptr()), 12);
}

const PARTS: &str = "#include <string.h>\n\
    int state;\n\
    __attribute__((constructor)) static void set_up(void) { state = 1; }\n\
    __attribute__((destructor)) static void tear_down(void) { state = 2; }\n\
    int main(int argc, char **argv) { return argc * 100 + state * 10 + (int)strlen(argv[1]); }\n";

#[test]
fn initializers_main_and_finalizers_run_separately() {
    let scratch = Scratch::new("parts");
    let object = scratch.compile("parts", PARTS, &[]);
    let mut session = Session::new().unwrap();
    let unit = session
        .link(&Unit::new().path(&object).entry("main"))
        .unwrap();
    assert_eq!(unit.init.len(), 1);
    assert_eq!(unit.fini.len(), 1);
    let state = session.lookup_data::<i32>("state").unwrap();
    // SAFETY: `int state`, live; no linked code runs concurrently.
    let read = || unsafe { state.read_volatile() };
    assert_eq!(read(), 0);
    session.run_initializers(unit.id).unwrap();
    assert_eq!(read(), 1);
    assert!(matches!(
        session.run_initializers(unit.id),
        Err(Error::AlreadyRan {
            what: "initializers",
            ..
        })
    ));
    assert_eq!(
        session.run_main(unit.id, &["prog", "four"]).unwrap(),
        200 + 10 + 4
    );
    // main can be called again: it is a function.
    assert_eq!(
        session.run_main(unit.id, &["prog", "x", "y"]).unwrap(),
        300 + 10 + 1
    );
    session.run_finalizers(unit.id).unwrap();
    assert_eq!(read(), 2);
    let error = session.run_finalizers(unit.id).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("the finalizers of {:?} ran already", unit.id)
    );
    session.free(unit.id).unwrap();
    assert!(matches!(
        session.run_main(unit.id, &["p"]),
        Err(Error::UnitNotLive(_))
    ));
}

#[test]
fn main_runs_the_initializers_first_and_needs_an_entry() {
    let scratch = Scratch::new("main");
    let object = scratch.compile("parts", PARTS, &[]);
    let mut session = Session::new().unwrap();
    let unit = session
        .link(&Unit::new().path(&object).entry("main"))
        .unwrap();
    assert_eq!(
        session.run_main(unit.id, &["p", "ab"]).unwrap(),
        200 + 10 + 2
    );
    assert!(matches!(
        session.run_initializers(unit.id),
        Err(Error::AlreadyRan { .. })
    ));
    // Without an entry (a library-like unit) there is no main to run; the argument with a
    // NUL byte is refused before anything runs.
    let library = session.link(&Unit::new().bytes("parts.o", std::fs::read(&object).unwrap()));
    // `state` and `main` are defined twice now: the later unit's shadow the earlier's.
    let library = library.unwrap();
    assert!(
        matches!(session.run_main(library.id, &["p"]), Err(Error::NoEntry(id)) if id == library.id)
    );
    assert!(matches!(
        session.run_main(unit.id, &["a\0b"]),
        Err(Error::Nul(_))
    ));
}

#[test]
fn errors_are_typed_and_name_the_input() {
    let mut session = Session::new().unwrap();
    match session.link(&Unit::new().path("/nonexistent/missing.o")) {
        Err(Error::Link(LinkError::Io {
            path, operation, ..
        })) => {
            assert_eq!(path, std::path::Path::new("/nonexistent/missing.o"));
            assert_eq!(operation, "open");
        }
        other => panic!("{other:?}"),
    }
    let error = session
        .link(&Unit::new().bytes("junk.o", b"not an object".to_vec()))
        .unwrap_err();
    match &error {
        Error::Link(LinkError::Input { file, problem }) => {
            assert_eq!(file, "junk.o");
            assert_eq!(problem, "not an ELF file, archive or linker script");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.message(),
        "junk.o: not an ELF file, archive or linker script"
    );
    assert!(std::error::Error::source(&error).is_none());

    // A shared library needs its path: the loader opens it.
    let libm = std::fs::read("/lib/x86_64-linux-gnu/libm.so.6").unwrap();
    let error = session
        .link(&Unit::new().bytes("libm.so.6", libm))
        .unwrap_err();
    assert_eq!(
        error.message(),
        "libm.so.6: a shared library given as bytes cannot be loaded: give its path"
    );

    let error = session
        .link(&Unit::new().library("surely_no_such_library"))
        .unwrap_err();
    assert!(
        matches!(&error, Error::Link(LinkError::LibraryNotFound { name, .. }) if name == "surely_no_such_library"),
        "{error:?}"
    );
    assert_eq!(session.live_units(), 0);
}

#[test]
fn a_unit_larger_than_the_slab_is_refused() {
    let scratch = Scratch::new("slab");
    let object = scratch.compile("big", "char big[8 << 20] = {1};\n", &[]);
    let mut session = Session::builder().slab_size(1 << 20).build().unwrap();
    match session.link(&Unit::new().path(&object)) {
        Err(Error::Link(LinkError::Memory(MapError::SlabExhausted { capacity, .. }))) => {
            assert_eq!(capacity, 1 << 20)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn optional_plugins_can_be_switched_off() {
    let scratch = Scratch::new("plugins");
    // No .note.GNU-stack: ld (and rjitlink's plugin) take that as asking for an executable
    // stack, and warn.
    let object = scratch.assemble("nostack", ".text\n.globl f\nf:\n  ret\n");
    let mut off = Session::builder()
        .plugins(PluginSwitches::none())
        .build()
        .unwrap();
    let unit = off.link(&Unit::new().path(&object)).unwrap();
    assert_eq!(unit.warnings, Vec::<String>::new());
    let mut on = Session::new().unwrap();
    let unit = on.link(&Unit::new().path(&object)).unwrap();
    assert!(
        unit.warnings.iter().any(|w| w.contains("executable stack")),
        "{:?}",
        unit.warnings
    );
}

#[test]
fn options_that_do_not_go_together_are_refused() {
    let invalid = |builder: rjitlink::SessionBuilder| match builder.build() {
        Err(Error::InvalidOptions(problem)) => problem,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        invalid(Session::builder().threads(0)),
        "threads must be at least 1"
    );
    let mapper = std::sync::Arc::new(rjitlink::lower::memory::InProcessMapper::new());
    assert!(invalid(
        Session::builder()
            .spawn_executor("/nonexistent")
            .mapper(mapper)
    )
    .starts_with("a mapper is for the in-process executor"));
    assert_eq!(
        invalid(Session::builder().remote_memory(rjitlink::RemoteMemory::Copy)),
        "remote_memory applies to remote executors"
    );
    // Checked before an executor is started.
    assert!(matches!(
        Session::builder()
            .spawn_executor("/nonexistent")
            .host_symbols(true)
            .build(),
        Err(Error::InProcessOnly {
            operation: "host_symbols"
        })
    ));
    // A custom executor brings its own mapper and symbols.
    let custom = || Box::new(rjitlink::lower::executor::InProcess::new());
    assert!(invalid(
        Session::builder()
            .executor(custom())
            .remote_memory(rjitlink::RemoteMemory::Shared)
    )
    .starts_with("remote_memory applies to remote executors"));
    assert!(
        invalid(Session::builder().executor(custom()).host_symbols(true))
            .starts_with("host_symbols applies to the builder's in-process executor")
    );
    assert!(invalid(
        Session::builder()
            .executor(Box::new(Elsewhere))
            .remote_memory(rjitlink::RemoteMemory::Copy)
    )
    .starts_with("remote_memory applies to the executors the builder starts"));
    assert!(matches!(
        Session::builder()
            .executor(Box::new(Elsewhere))
            .host_symbols(true)
            .build(),
        Err(Error::InProcessOnly {
            operation: "host_symbols"
        })
    ));
    let mut with_host = rjitlink::lower::executor::InProcess::new();
    with_host.expose_host_symbols().unwrap();
    let session = Session::builder()
        .executor(Box::new(with_host))
        .build()
        .unwrap();
    assert!(session.is_in_process());
    // A program that cannot be started is the target's error.
    let error = Session::builder()
        .spawn_executor("/nonexistent/rjitlink")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Target(_)), "{error:?}");
    assert_eq!(
        error.message(),
        "cannot start the executor: No such file or directory (os error 2)"
    );
    // One that is there but cannot run starts on a thread of its own while the session is
    // made: the first request says why it did not start.
    let scratch = Scratch::new("not-a-program");
    let object = scratch.compile("one", "int one(void) { return 1; }\n", &[]);
    let mut session = Session::builder().spawn_executor(&object).build().unwrap();
    let error = session.link(&Unit::new().path(&object)).unwrap_err();
    assert!(matches!(error, Error::Link(_)), "{error:?}");
    assert!(
        error
            .message()
            .ends_with("cannot start the executor: Permission denied (os error 13)"),
        "{}",
        error.message()
    );
    let debug = format!(
        "{:?}",
        Session::builder().tcp("127.0.0.1:1", "secret-token-0123456789")
    );
    assert!(
        debug.contains("127.0.0.1:1") && !debug.contains("secret"),
        "{debug}"
    );
    assert!(matches!(
        Session::builder().tcp("127.0.0.1:1", "short").build(),
        Err(Error::Token(_))
    ));
}

#[test]
fn libraries_by_name_from_search_dirs_and_the_system() {
    let scratch = Scratch::new("libraries");
    let mul = scratch.compile("mul", "long mul(long a, long b) { return a * b; }\n", &[]);
    scratch.archive("libmul", &[&mul]);
    let user = scratch.compile(
        "user",
        "double cbrt(double);\nlong mul(long, long);\n\
         long cube_root_times(long x, long y) { return mul((long)(cbrt((double)x) + 0.5), y); }\n",
        &["-fno-builtin"],
    );
    let mut session = Session::new().unwrap();
    // -lmul found in the -L directory (as libmul.a), -lm in the system's (a script naming
    // libm.so.6, loaded into the process).
    let unit = Unit::new()
        .path(&user)
        .search_dir(&scratch.0)
        .library("mul")
        .library("m");
    session.link(&unit).unwrap();
    // SAFETY: `long cube_root_times(long, long)`.
    let f: extern "C" fn(i64, i64) -> i64 =
        unsafe { session.lookup_fn("cube_root_times") }.unwrap();
    assert_eq!(f(27, 5), 15);
    assert_eq!(f(1000, 3), 30);
    // Without the directory, -lmul is not found.
    let error = session
        .link(&Unit::new().path(&user).library("mul"))
        .unwrap_err();
    assert_eq!(error.message(), "cannot find -lmul");
}

/// An executor said to be another process, for the builder's checks; nothing is asked of it.
struct Elsewhere;

impl rjitlink::Executor for Elsewhere {
    fn memory(&self) -> std::sync::Arc<dyn rjitlink::MemoryMapper> {
        unreachable!("the builder refuses the options first")
    }
    fn load_library(&mut self, _: &std::path::Path) -> Result<(), rjitlink::TargetError> {
        unreachable!()
    }
    fn load_library_image(&mut self, _: &str, _: &[u8]) -> Result<(), rjitlink::TargetError> {
        unreachable!()
    }
    fn load_module(
        &mut self,
        _: &str,
        _: &[u8],
        _: rjitlink::lower::target::WordTable,
    ) -> Result<rjitlink::lower::target::LoadedModule, rjitlink::TargetError> {
        unreachable!()
    }
    fn unload_module(
        &mut self,
        _: rjitlink::lower::target::ModuleHandle,
    ) -> Result<(), rjitlink::TargetError> {
        unreachable!()
    }
    fn lookup(&mut self, _: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, rjitlink::TargetError> {
        unreachable!()
    }
    fn symbol_info(
        &mut self,
        _: &[TargetAddr],
    ) -> Result<Vec<Option<rjitlink::lower::target::SymbolInfo>>, rjitlink::TargetError> {
        unreachable!()
    }
    fn interpose(
        &mut self,
        _: &[rjitlink::lower::target::Interposition],
    ) -> Result<(), rjitlink::TargetError> {
        unreachable!()
    }
    fn register_debug_objects(
        &mut self,
        _: Vec<rjitlink::lower::target::DebugObject>,
    ) -> Result<Vec<rjitlink::lower::target::DebugObjectHandle>, rjitlink::TargetError> {
        unreachable!()
    }
    fn unregister_debug_objects(
        &mut self,
        _: &[rjitlink::lower::target::DebugObjectHandle],
    ) -> Result<(), rjitlink::TargetError> {
        unreachable!()
    }
    fn run(&mut self, _: &rjitlink::lower::target::Program) -> Result<i32, rjitlink::TargetError> {
        unreachable!()
    }
}

/// gdb's `struct jit_code_entry` and `struct jit_descriptor` (gdb's manual, "JIT Interface"),
/// read here as gdb reads them.
#[repr(C)]
struct JitCodeEntry {
    next_entry: *const JitCodeEntry,
    prev_entry: *const JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

#[repr(C)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *const JitCodeEntry,
    first_entry: *const JitCodeEntry,
}

extern "C" {
    static __jit_debug_descriptor: JitDescriptor;
}

/// The images published to gdb whose bytes hold `marker`.
fn published_with(marker: &[u8]) -> usize {
    let mut count = 0;
    // SAFETY: the descriptor and its entries are rjitlink's, live while registered; no other
    // test of this binary links inputs with debug information, so the list does not change
    // under the walk.
    unsafe {
        let mut entry = std::ptr::addr_of!(__jit_debug_descriptor)
            .read_volatile()
            .first_entry;
        while !entry.is_null() {
            let image =
                std::slice::from_raw_parts((*entry).symfile_addr, (*entry).symfile_size as usize);
            if image.starts_with(b"\x7fELF") && image.windows(marker.len()).any(|w| w == marker) {
                count += 1;
            }
            entry = (*entry).next_entry;
        }
    }
    count
}

#[test]
fn debugger_support_publishes_debug_information_unless_switched_off() {
    let scratch = Scratch::new("debugger");
    let object = scratch.compile(
        "debugged",
        "int debugged_function_for_the_facade(int x) { return x + 1; }\n",
        &["-g"],
    );
    let marker = b"debugged_function_for_the_facade";
    let mut session = Session::new().unwrap();
    assert!(session.plugins().debugger, "on by default");
    let unit = session.link(&Unit::new().path(&object)).unwrap();
    assert_eq!(published_with(marker), 1);
    session.free(unit.id).unwrap();
    assert_eq!(published_with(marker), 0);
    let mut off = PluginSwitches::default();
    off.debugger = false;
    session.set_plugins(off);
    let unit = session.link(&Unit::new().path(&object)).unwrap();
    assert_eq!(published_with(marker), 0);
    session.free(unit.id).unwrap();
}

#[test]
fn perf_map_and_jitdump_name_the_functions_where_they_are() {
    let scratch = Scratch::new("perf");
    let object = scratch.compile(
        "profiled",
        "int profiled_function_for_the_facade(int x) { return x * 3; }\n",
        &["-g"],
    );
    let name = "profiled_function_for_the_facade";
    let mut plugins = PluginSwitches::default();
    plugins.perf_map = true;
    plugins.jitdump = true;
    let mut session = Session::builder()
        .plugins(plugins)
        .jitdump_directory(&scratch.0)
        .build()
        .unwrap();
    let unit = session.link(&Unit::new().path(&object)).unwrap();
    let address = session.lookup(name).unwrap();
    // SAFETY: `int f(int)`, live.
    let function: extern "C" fn(i32) -> i32 = unsafe { session.lookup_fn(name).unwrap() };
    assert_eq!(function(14), 42);
    let map_path = format!("/tmp/perf-{}.map", std::process::id());
    let map = std::fs::read_to_string(&map_path).unwrap();
    std::fs::remove_file(&map_path).unwrap();
    let line = map
        .lines()
        .find(|line| line.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} is not in the perf map:\n{map}"));
    let mut fields = line.split(' ');
    let start = u64::from_str_radix(fields.next().unwrap(), 16).unwrap();
    let size = u64::from_str_radix(fields.next().unwrap(), 16).unwrap();
    assert_eq!(start, address.get());
    assert!(size > 0 && size < 64, "{line}");
    // The jitdump: perf's header ("JiTD" as a little-endian word), and a code-load record
    // carrying the function's name and its code as it lies in memory.
    let dump = std::fs::read(scratch.0.join(format!("jit-{}.dump", std::process::id()))).unwrap();
    assert_eq!(&dump[..4], &0x4A69_5444u32.to_le_bytes());
    assert!(dump.windows(name.len()).any(|w| w == name.as_bytes()));
    // SAFETY: `size` bytes of the live function's code.
    let code = unsafe { std::slice::from_raw_parts(address.get() as *const u8, size as usize) };
    assert!(dump.windows(code.len()).any(|w| w == code));
    session.free(unit.id).unwrap();
}
