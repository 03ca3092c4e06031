//! The library API: incremental linking into one session (one slab), freeing units, and the
//! slab options of the command line.

#[path = "harness/direct_writes.rs"]
mod direct_writes;

use rjitlink_executor::InProcess;
use rjitlink_link::{
    EntryProblem, InputArg, LinkError, LinkOptions, PhaseTimes, RelocationProblem, SearchPath,
    Session, SessionOptions,
};
use rjitlink_memory::{MemoryMapper, SlabConfig, TargetAddr};
use rjitlink_remote::{MemoryMode, Remote};
use rjitlink_target::{
    DebugObject, DebugObjectHandle, Executor, Interposition, LoadedModule, ModuleHandle, Program,
    SymbolInfo, TargetError, WordTable,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Write `source` as `name.EXTENSION` in the test's scratch directory and build `name.o` from
/// it with `command` (which is given the source, then `-o` and the object).
fn build(name: &str, extension: &str, source: &str, mut command: Command) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.{extension}"));
    let object = dir.join(format!("{name}.o"));
    std::fs::write(&file, source).unwrap();
    let status = command.arg(&file).arg("-o").arg(&object).status().unwrap();
    assert!(status.success());
    object
}

fn compile(name: &str, source: &str) -> PathBuf {
    let mut cc = Command::new("cc");
    cc.args(["-c", "-O1"]);
    build(name, "c", source, cc)
}

fn assemble(name: &str, source: &str) -> PathBuf {
    build(name, "s", source, Command::new("as"))
}

fn options(object: &Path) -> LinkOptions {
    LinkOptions {
        inputs: vec![InputArg::Path(object.to_owned())],
        search: SearchPath::with_system_dirs(Vec::new()),
        entry: None,
        default_libraries: true,
        export_dynamic: false,
        symbolize: false,
        perf_map: false,
        jitdump: false,
        jitdump_directory: None,
        debugger_support: true,
    }
}

fn session(slab_size: u64) -> Session {
    Session::new(
        Box::new(InProcess::new()),
        SessionOptions {
            slab: SlabConfig {
                size: slab_size,
                address: None,
            },
            keep_symbols: true,
        },
    )
}

/// A session on a spawned executor with `mode`, its slab `slab_size` bytes.
fn remote_session(mode: MemoryMode, slab_size: u64) -> Session {
    let remote = Remote::spawn_program(Path::new(env!("CARGO_BIN_EXE_rjitlink")), mode).unwrap();
    Session::new(
        Box::new(remote),
        SessionOptions {
            slab: SlabConfig {
                size: slab_size,
                address: None,
            },
            keep_symbols: true,
        },
    )
}

/// The tests that measure this process's memory must not see another test's links: every
/// test holds this while it runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * rjitlink_memory::page_size() as u64
}

#[test]
fn a_later_unit_calls_into_an_earlier_one() {
    let _serial = one_at_a_time();
    let a = compile(
        "unit_a",
        "int offset = 100;\nint add_numbers(int x, int y) { return x + y + offset; }\n",
    );
    let b = compile(
        "unit_b",
        "int add_numbers(int, int);\nextern int offset;\n\
         int b_entry(void) { offset = 1000; return add_numbers(2, 3); }\n",
    );
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    let unit_a = session.link(&options(&a), &times).unwrap();
    let unit_b = session.link(&options(&b), &times).unwrap();
    let entry = session
        .lookup("b_entry")
        .expect("b_entry is defined by unit b");
    assert!(unit_b.contains(entry));
    let add = session.lookup("add_numbers").unwrap();
    assert!(unit_a.contains(add));
    // SAFETY: b_entry is `int b_entry(void)`, finalized and executable.
    let b_entry: extern "C" fn() -> i32 = unsafe { std::mem::transmute(entry.get()) };
    // b wrote a's `offset` and called a's function: 2 + 3 + 1000.
    assert_eq!(b_entry(), 1005);
    // Freed units' symbols are gone; later links cannot resolve against them.
    session.free(unit_b.id).unwrap();
    assert_eq!(session.lookup("b_entry"), None);
    assert!(
        session.free(unit_b.id).is_err(),
        "freeing twice is an error"
    );
    session.free(unit_a.id).unwrap();
    let error = session.link(&options(&b), &times).unwrap_err();
    assert!(
        format!("{error:#}").contains("undefined symbol `add_numbers`"),
        "{error:#}"
    );
}

#[test]
fn linking_and_freeing_a_thousand_units_returns_the_memory() {
    let _serial = one_at_a_time();
    // Each unit holds 1 MiB of initialized data: 1,000 of them would need 1,000 MiB, more
    // than the 512 MiB slab, so the loop also proves freed ranges are reused.
    let object = compile(
        "megabyte",
        "char blob[1 << 20] = {1};\nint touch(void) { return blob[0] + blob[(1 << 20) - 1]; }\n",
    );
    let mut session = session(512 << 20);
    let times = PhaseTimes::default();
    let mut rss_after_warmup = 0;
    for iteration in 0..1000 {
        let unit = session.link(&options(&object), &times).unwrap();
        let touch = session.lookup("touch").unwrap();
        // SAFETY: `int touch(void)`, finalized.
        let touch: extern "C" fn() -> i32 = unsafe { std::mem::transmute(touch.get()) };
        assert_eq!(touch(), 1);
        session.free(unit.id).unwrap();
        if iteration == 20 {
            rss_after_warmup = resident_bytes();
        }
    }
    let growth = resident_bytes().saturating_sub(rss_after_warmup);
    assert!(
        growth < 32 << 20,
        "resident memory grew by {} MiB over 980 link/free cycles",
        growth >> 20
    );
    assert_eq!(session.memory_stats().bytes_in_use, 0);
    assert_eq!(session.memory_stats().allocations_served, 1000);
    assert_eq!(session.live_units(), 0, "freed units leave no bookkeeping");

    // Freeing gives the pages back to the system, not only to the slab: 100 live units hold
    // 100 MiB more; once freed, resident memory falls back.
    let before = resident_bytes();
    let units: Vec<_> = (0..100)
        .map(|_| session.link(&options(&object), &times).unwrap())
        .collect();
    let with_units = resident_bytes();
    assert!(
        with_units > before + (90 << 20),
        "100 live units should hold 100 MiB"
    );
    for unit in units {
        session.free(unit.id).unwrap();
    }
    let after = resident_bytes();
    assert!(
        after + (90 << 20) < with_units,
        "freeing 100 MiB of units returned only {} MiB",
        (with_units - after) >> 20
    );
}

#[test]
fn a_hundred_thousand_small_units_live_at_once() {
    let _serial = one_at_a_time();
    // A function and a word of data: a few bytes of code and data, as a REPL's units are.
    let object = assemble(
        "tiny_unit",
        "    .text\n    .globl tiny\ntiny:\n    movl tiny_data(%rip), %eax\n    ret\n\
         .data\n    .globl tiny_data\ntiny_data:\n    .long 7\n\
         .section .note.GNU-stack,\"\",@progbits\n",
    );
    let options = bare_options(&object);
    // The default slab: whole pages for each unit (three mappings and three pages) would
    // exhaust both the kernel's mappings and the slab.
    let mut session = session(rjitlink_memory::DEFAULT_SLAB_SIZE);
    // One worker: a tiny link's parallel phases would spend most of their time waking the
    // pool's threads (system time), which is not what this test measures.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let link = |session: &mut Session, count: usize| {
        one_thread.install(|| {
            for _ in 0..count {
                session.link(&options, &PhaseTimes::default()).unwrap();
            }
        })
    };
    link(&mut session, 1000);
    let (mappings_before, resident_before) = (mapping_count(), resident_bytes());
    link(&mut session, 99_000);
    let (mappings, resident) = (mapping_count(), resident_bytes());
    eprintln!(
        "99,000 more units: mappings {mappings_before} -> {mappings}, resident {} -> {} KiB",
        resident_before >> 10,
        resident >> 10
    );
    assert_eq!(session.live_units(), 100_000);
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        mappings < limit,
        "{mappings} mappings, the limit is {limit}"
    );
    assert!(
        mappings - mappings_before < 200,
        "99,000 units took {} mappings",
        mappings - mappings_before
    );
    let per_unit = resident.saturating_sub(resident_before) / 99_000;
    assert!(per_unit < 2048, "{per_unit} bytes of memory per unit");
    // The latest unit's definitions are the visible ones, and work.
    let tiny = session.lookup("tiny").unwrap();
    // SAFETY: `int tiny(void)`, finalized.
    let tiny: extern "C" fn() -> i32 = unsafe { std::mem::transmute(tiny.get()) };
    assert_eq!(tiny(), 7);
}

/// The bytes held by the memory files of the executor `pid` (the pages of its shared
/// reservations).
fn executor_memory_file_bytes(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let target = std::fs::read_link(&path).ok()?;
            target
                .to_string_lossy()
                .starts_with("/memfd:rjitlink-slab")
                .then(|| std::fs::metadata(&path).ok())?
        })
        .map(|file| file.blocks() * 512)
        .sum()
}

#[test]
fn shared_memory_units_are_reused_and_their_pages_freed() {
    let _serial = one_at_a_time();
    let object = compile(
        "megabyte_shared",
        "char blob[1 << 20] = {1};\nint touch(void) { return blob[0]; }\n",
    );
    let mut remote = Remote::spawn_program(
        Path::new(env!("CARGO_BIN_EXE_rjitlink")),
        MemoryMode::Shared,
    )
    .unwrap();
    assert!(remote.shared_memory);
    let executor = remote.pid().unwrap();
    let mut session = Session::new(
        Box::new(remote),
        SessionOptions {
            slab: SlabConfig {
                size: 64 << 20,
                address: None,
            },
            keep_symbols: true,
        },
    );
    let times = PhaseTimes::default();
    // 200 units of 1 MiB through a 64 MiB slab: only reuse makes room.
    for _ in 0..200 {
        let unit = session.link(&options(&object), &times).unwrap();
        session.free(unit.id).unwrap();
    }
    // Live units' pages are pages of the executor's memory file, written through this
    // process's view (given up after each link of a large unit, and mapped again for the
    // next); freeing them punches them out of the file.
    let before = executor_memory_file_bytes(executor);
    let units: Vec<_> = (0..40)
        .map(|_| session.link(&options(&object), &times).unwrap())
        .collect();
    let with_units = executor_memory_file_bytes(executor);
    assert!(
        with_units > before + (35 << 20),
        "40 live units should hold 40 MiB"
    );
    for unit in units {
        session.free(unit.id).unwrap();
    }
    let after = executor_memory_file_bytes(executor);
    assert!(
        after + (35 << 20) < with_units,
        "freeing 40 MiB of shared units returned only {} MiB",
        (with_units - after) >> 20
    );
    let stats = session.transport_stats().unwrap();
    assert!(
        stats.bytes_sent < 8 << 20,
        "240 MiB linked, {} bytes sent: code must not cross the socket",
        stats.bytes_sent
    );
}

#[test]
fn copying_a_large_zero_fill_section_sends_only_what_is_not_zero() {
    let _serial = one_at_a_time();
    // A unit that fills a megabyte with non-zero bytes, freed first: the large unit's
    // zero-fill section reuses its range, and must read zero all the same.
    let dirty = assemble(
        "dirty_megabyte",
        "    .data\n    .globl dirty\ndirty:\n    .fill 1 << 20, 1, 0x5a\n\
         .section .note.GNU-stack,\"\",@progbits\n",
    );
    let large = compile(
        "large_zero_fill",
        "char zero_fill[256 << 20];\nint initialized = 5;\n\
         int main(void) {\n\
           for (long i = 0; i < (4 << 20); i++) if (zero_fill[i]) return 1;\n\
           for (long i = 0; i < (long)sizeof zero_fill; i += 4096) if (zero_fill[i]) return 2;\n\
           return initialized;\n\
         }\n",
    );
    let mut session = remote_session(MemoryMode::Copy, 512 << 20);
    let times = PhaseTimes::default();
    let sent = |session: &Session| session.transport_stats().unwrap().bytes_sent;
    let before = sent(&session);
    let unit = session.link(&options(&dirty), &times).unwrap();
    // The executor is this process's child: the megabyte is written into its memory from
    // here (process_vm_writev), not sent, unless the system refuses that.
    let sent_now = sent(&session) - before;
    if direct_writes::may_write_into_children() {
        assert!(
            sent_now < 64 << 10,
            "the dirty megabyte is written directly, not sent"
        );
    } else {
        assert!(sent_now >= 1 << 20, "the dirty megabyte is sent");
    }
    let dirty_start = unit.ranges[0].start;
    session.free(unit.id).unwrap();

    let before = sent(&session);
    let mut with_main = options(&large);
    with_main.entry = Some("main".to_owned());
    let linked = session.link(&with_main, &times).unwrap();
    let sent_for_large = sent(&session) - before;
    assert!(
        sent_for_large < 256 << 10,
        "a unit of 256 MiB of zero-fill sent {sent_for_large} bytes"
    );
    assert!(
        linked.ranges.iter().any(|range| range.start == dirty_start),
        "the large unit reuses the freed range"
    );
    let status = session
        .executor()
        .run(&linked.program(vec![b"large_zero_fill".to_vec()]).unwrap())
        .unwrap();
    assert_eq!(status, 5, "zero-fill reads zero, data is in place");
}

/// `leaq FAR(%rip)` against an absolute symbol 16 GiB away: the link allocates memory and then
/// fails in apply (the psABI's PC32 field holds ±2 GiB). The `leaq` is 7 bytes, its rel32 at
/// offset 3.
const PC32_OVERFLOW: &str = "    .text\n    .globl overflowing\n    .type overflowing, @function\n\
    overflowing:\n    leaq FAR(%rip), %rax\n    ret\n    .size overflowing, .-overflowing\n    .globl FAR\n    .set FAR, 0x400000000\n\
    .section .note.GNU-stack,\"\",@progbits\n";

/// An entry symbol in a section that is not loaded: the link fails after apply, in finalize.
const ENTRY_NOT_LOADED: &str = "    .section .kept_out,\"\"\n    .globl not_loaded\nnot_loaded:\n\
    .byte 0\n    .section .note.GNU-stack,\"\",@progbits\n";

#[test]
fn failed_links_give_their_memory_back() {
    let _serial = one_at_a_time();
    let bad = assemble("pc32_overflow", PC32_OVERFLOW);
    let mut unloaded_entry = options(&assemble("entry_not_loaded", ENTRY_NOT_LOADED));
    unloaded_entry.entry = Some("not_loaded".to_owned());
    let good = compile("after_failure", "int after_failure(void) { return 42; }\n");
    let in_process = session(16 << 20);
    let copying = Session::new(
        Box::new(
            Remote::spawn_program(Path::new(env!("CARGO_BIN_EXE_rjitlink")), MemoryMode::Copy)
                .unwrap(),
        ),
        SessionOptions {
            slab: SlabConfig {
                size: 16 << 20,
                address: None,
            },
            keep_symbols: true,
        },
    );
    for mut session in [in_process, copying] {
        let times = PhaseTimes::default();
        // More failures than the slab could hold if each kept its range.
        for _ in 0..32 {
            let error = session.link(&options(&bad), &times).unwrap_err();
            assert!(
                matches!(error, LinkError::Relocation { .. }),
                "apply should fail: {error}"
            );
            assert_eq!(session.memory_stats().bytes_in_use, 0);
            let error = session.link(&unloaded_entry, &times).unwrap_err();
            assert!(
                matches!(
                    error,
                    LinkError::Entry {
                        problem: EntryProblem::NotLoaded,
                        ..
                    }
                ),
                "finalize should fail: {error}"
            );
            assert_eq!(session.memory_stats().bytes_in_use, 0);
        }
        assert_eq!(session.memory_stats().allocations_served, 64);
        let unit = session.link(&options(&good), &times).unwrap();
        let held: usize = unit.ranges.iter().map(|range| range.len).sum();
        assert_eq!(session.memory_stats().bytes_in_use, held as u64);
        session.free(unit.id).unwrap();
        assert_eq!(session.memory_stats().bytes_in_use, 0);
    }
}

/// This process's memory mappings.
fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Link `options` `times` times in `session`, each link failing with an error `expected`
/// accepts; the slab's memory in use must stay at zero, and the process's mappings flat.
fn fail_repeatedly(
    session: &mut Session,
    options: &LinkOptions,
    times: usize,
    expected: impl Fn(&LinkError) -> bool,
) {
    let mut mappings_after_warmup = 0;
    for iteration in 0..times {
        let error = session.link(options, &PhaseTimes::default()).unwrap_err();
        assert!(expected(&error), "iteration {iteration}: {error:#}");
        assert_eq!(
            session.memory_stats().bytes_in_use,
            0,
            "iteration {iteration} kept memory"
        );
        if iteration == 10 {
            mappings_after_warmup = mapping_count();
        }
    }
    let mappings = mapping_count();
    assert!(
        mappings <= mappings_after_warmup + 10,
        "mappings grew from {mappings_after_warmup} to {mappings} over {times} failed links"
    );
    assert_eq!(session.live_units(), 0);
}

/// `options` without cc's default libraries, for objects that need none.
fn bare_options(object: &Path) -> LinkOptions {
    LinkOptions {
        default_libraries: false,
        ..options(object)
    }
}

#[test]
fn links_failing_after_allocation_a_thousand_times_keep_nothing() {
    let _serial = one_at_a_time();
    let mut session = Session::new(
        Box::new(Altered::new(Change::RefuseExports)),
        SessionOptions {
            slab: SlabConfig {
                size: 64 << 20,
                address: None,
            },
            keep_symbols: true,
        },
    );

    // Apply: a relocation overflows.
    let overflow = bare_options(&assemble("pc32_overflow_repeated", PC32_OVERFLOW));
    fail_repeatedly(&mut session, &overflow, 1000, |error| {
        matches!(error, LinkError::Relocation { .. })
    });

    // The TLS phase: a megabyte of initial-exec TLS has no room in static TLS, so the
    // unit's TLS module fails to load.
    let huge_tls = compile(
        "huge_static_tls",
        "__attribute__((tls_model(\"initial-exec\"))) __thread char huge[1 << 20];\n\
         char *huge_address(void) { return huge; }\n",
    );
    fail_repeatedly(&mut session, &bare_options(&huge_tls), 1000, |error| {
        matches!(
            error,
            LinkError::Target {
                source: TargetError::StaticTls { .. },
                ..
            }
        )
    });

    // Finalize, after the TLS module loaded: the entry lies in a section that is not loaded.
    // Each module left loaded would take static TLS for good, so a few failures in, the
    // link would fail differently.
    let small_tls = compile(
        "small_static_tls",
        "__attribute__((tls_model(\"initial-exec\"))) __thread char block[256];\n\
         char *block_address(void) { return block; }\n",
    );
    let mut tls_unit_without_entry = bare_options(&small_tls);
    tls_unit_without_entry.inputs.push(InputArg::Path(assemble(
        "entry_not_loaded_tls",
        ENTRY_NOT_LOADED,
    )));
    tls_unit_without_entry.entry = Some("not_loaded".to_owned());
    fail_repeatedly(&mut session, &tls_unit_without_entry, 1000, |error| {
        matches!(
            error,
            LinkError::Entry {
                problem: EntryProblem::NotLoaded,
                ..
            }
        )
    });

    // A finalize plugin: the exports fail to load after the copy relocations redirected
    // libc's `environ` and `stdout` into the unit; they are handed back.
    let mut exporting = options(&compile_non_pic("reads_libc_data_exports", READS_LIBC_DATA));
    exporting.export_dynamic = true;
    fail_repeatedly(&mut session, &exporting, 1000, |error| {
        matches!(error, LinkError::Target { .. })
    });
    drop(session);
    libc_uses_its_data("RJITLINK_NEVER_SET", "");
}

#[test]
fn link_errors_are_values_with_their_place() {
    let _serial = one_at_a_time();
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();

    let bad = assemble("pc32_overflow_place", PC32_OVERFLOW);
    match session.link(&options(&bad), &times).unwrap_err() {
        LinkError::Relocation {
            file,
            section,
            offset,
            function,
            problem,
        } => {
            assert!(file.ends_with("pc32_overflow_place.o"), "{file}");
            assert_eq!((section.as_str(), offset), (".text", 3));
            assert_eq!(function.as_deref(), Some("overflowing"));
            match *problem {
                RelocationProblem::Overflow {
                    relocation,
                    symbol,
                    value,
                    bits,
                    ..
                } => {
                    assert_eq!(
                        (relocation, symbol.as_str(), bits),
                        ("R_X86_64_PC32", "FAR", 32)
                    );
                    assert!(i32::try_from(value).is_err(), "{value:#x} fits after all");
                }
                other => panic!("expected an overflow, got {other}"),
            }
        }
        other => panic!("expected a relocation error, got {other}"),
    }

    let caller = compile(
        "calls_missing",
        "int missing_function(void);\nint caller(void) { return missing_function(); }\n",
    );
    match session.link(&options(&caller), &times).unwrap_err() {
        LinkError::Undefined(symbols) => {
            assert_eq!(symbols.len(), 1);
            assert_eq!(symbols[0].symbol, "missing_function");
            let referrer = symbols[0].referenced_by.as_deref().unwrap();
            assert!(referrer.ends_with("calls_missing.o"), "{referrer}");
            assert_eq!(symbols[0].function.as_deref(), Some("caller"));
        }
        other => panic!("expected an undefined symbol, got {other}"),
    }

    let first = compile("defines_twice_a", "int twice = 1;\n");
    let second = compile("defines_twice_b", "int twice = 2;\n");
    let mut both = options(&first);
    both.inputs.push(InputArg::Path(second));
    match session.link(&both, &times).unwrap_err() {
        LinkError::DuplicateSymbol {
            symbol,
            first,
            second,
        } => {
            assert_eq!(symbol, "twice");
            assert!(first.ends_with("defines_twice_a.o") && second.ends_with("defines_twice_b.o"));
        }
        other => panic!("expected a duplicate symbol, got {other}"),
    }

    // An entry nothing defines is undefined, asked for by the entry point itself.
    let mut with_entry = options(&first);
    with_entry.entry = Some("no_such_entry".to_owned());
    match session.link(&with_entry, &times).unwrap_err() {
        LinkError::Undefined(symbols) => {
            assert_eq!(symbols[0].symbol, "no_such_entry");
            assert_eq!(symbols[0].referenced_by, None);
        }
        other => panic!("expected an undefined entry, got {other}"),
    }
    // An entry only libc defines cannot start the unit.
    with_entry.entry = Some("puts".to_owned());
    assert!(matches!(
        session.link(&with_entry, &times).unwrap_err(),
        LinkError::Entry {
            problem: EntryProblem::NotInUnit,
            ..
        }
    ));
}

/// An in-process executor with one behaviour changed for a test.
struct Altered {
    inner: InProcess,
    change: Change,
}

enum Change {
    /// The exported-symbols image never loads: finalize fails after the copy relocations
    /// have redirected libc's references into the unit.
    RefuseExports,
    /// Debug objects are refused.
    RefuseDebugObjects,
    /// The symbols the units give it are kept here.
    RecordSymbols(Arc<std::sync::Mutex<Vec<Arc<rjitlink_target::UnitSymbols>>>>),
}

impl Altered {
    fn new(change: Change) -> Altered {
        Altered {
            inner: InProcess::new(),
            change,
        }
    }
}

impl Executor for Altered {
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.inner.memory()
    }
    fn load_library(&mut self, path: &Path) -> Result<(), TargetError> {
        self.inner.load_library(path)
    }
    fn load_library_image(&mut self, name: &str, image: &[u8]) -> Result<(), TargetError> {
        match self.change {
            Change::RefuseExports => Err(TargetError::LoadLibraryImage {
                name: name.to_owned(),
                reason: "refused by the test".to_owned(),
            }),
            _ => self.inner.load_library_image(name, image),
        }
    }
    fn load_module(
        &mut self,
        name: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError> {
        self.inner.load_module(name, image, table)
    }
    fn unload_module(&mut self, module: ModuleHandle) -> Result<(), TargetError> {
        self.inner.unload_module(module)
    }
    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>, TargetError> {
        self.inner.lookup(names)
    }
    fn symbol_info(
        &mut self,
        addresses: &[TargetAddr],
    ) -> Result<Vec<Option<SymbolInfo>>, TargetError> {
        self.inner.symbol_info(addresses)
    }
    fn interpose(&mut self, copies: &[Interposition]) -> Result<(), TargetError> {
        self.inner.interpose(copies)
    }
    fn add_symbols(&mut self, symbols: Arc<rjitlink_target::UnitSymbols>) {
        match &self.change {
            Change::RecordSymbols(live) => live.lock().unwrap().push(symbols),
            _ => self.inner.add_symbols(symbols),
        }
    }
    fn remove_symbols(&mut self, symbols: &Arc<rjitlink_target::UnitSymbols>) {
        match &self.change {
            Change::RecordSymbols(live) => live
                .lock()
                .unwrap()
                .retain(|kept| !Arc::ptr_eq(kept, symbols)),
            _ => self.inner.remove_symbols(symbols),
        }
    }
    fn register_debug_objects(
        &mut self,
        objects: Vec<DebugObject>,
    ) -> Result<Vec<DebugObjectHandle>, TargetError> {
        match self.change {
            Change::RefuseDebugObjects => {
                Err(TargetError::Refused("refused by the test".to_owned()))
            }
            _ => self.inner.register_debug_objects(objects),
        }
    }
    fn unregister_debug_objects(
        &mut self,
        handles: &[DebugObjectHandle],
    ) -> Result<(), TargetError> {
        self.inner.unregister_debug_objects(handles)
    }
    fn run(&mut self, program: &Program) -> Result<i32, TargetError> {
        self.inner.run(program)
    }
    fn is_this_process(&self) -> bool {
        true
    }
}

/// Non-PIC code that reads libc's `stdout` and `environ` directly: the image holds copies, and
/// libc's own references (and those of every loaded object) are redirected to them.
const READS_LIBC_DATA: &str = "#include <stdio.h>\nextern char **environ;\n\
    FILE *copied_stdout(void) { return stdout; }\n\
    char **copied_environ(void) { return environ; }\n";

fn compile_non_pic(name: &str, source: &str) -> PathBuf {
    let mut cc = Command::new("cc");
    cc.args(["-c", "-O1", "-fno-pic", "-fno-pie"]);
    build(name, "c", source, cc)
}

/// Use libc's `stdout` and `environ` as libc itself reaches them (through its GOT): if they
/// point into freed memory, this crashes.
fn libc_uses_its_data(variable: &str, value: &str) {
    // An empty value stands for an unset variable.
    match value {
        "" => assert!(std::env::var_os(variable).is_none()),
        value => assert_eq!(std::env::var(variable).as_deref(), Ok(value)),
    }
    extern "C" {
        fn printf(format: *const std::ffi::c_char, ...) -> std::ffi::c_int;
    }
    // SAFETY: printf with a format and a string; it prints nothing but reads `stdout`.
    let printed = unsafe { printf(c"%s".as_ptr(), c"".as_ptr()) };
    assert_eq!(printed, 0);
}

/// The unit's function `name` as `extern "C" fn() -> u64`.
fn unit_function(session: &Session, name: &str) -> extern "C" fn() -> u64 {
    let address = session.lookup(name).unwrap().get();
    // SAFETY: the test's units define these functions with no arguments, returning a pointer.
    unsafe { std::mem::transmute(address) }
}

#[test]
fn freeing_a_unit_with_copies_hands_the_data_back_to_libc() {
    let _serial = one_at_a_time();
    let object = compile_non_pic("reads_libc_data", READS_LIBC_DATA);
    let mut session = session(64 << 20);
    let times = PhaseTimes::default();
    for round in 0..3 {
        let unit = session.link(&options(&object), &times).unwrap();
        // libc's writes now go to the unit's copy, which its own code reads.
        let variable = format!("RJITLINK_COPY_TEST_{round}");
        std::env::set_var(&variable, "set while copied");
        let environ = unit_function(&session, "copied_environ")() as *const *const std::ffi::c_char;
        // SAFETY: the unit's copy of `environ`, a NULL-terminated array of C strings.
        let seen = unsafe {
            (0..)
                .map(|i| *environ.add(i))
                .take_while(|entry| !entry.is_null())
                .any(|entry| {
                    std::ffi::CStr::from_ptr(entry)
                        .to_bytes()
                        .starts_with(variable.as_bytes())
                })
        };
        assert!(
            seen,
            "the unit reads libc's current environ through its copy"
        );
        assert_ne!(unit_function(&session, "copied_stdout")(), 0);
        session.free(unit.id).unwrap();
        // Nothing of the unit is kept: libc refers to its own data again, with its value.
        assert_eq!(session.memory_stats().bytes_in_use, 0);
        libc_uses_its_data(&variable, "set while copied");
        std::env::remove_var(&variable);
    }
}

#[test]
fn a_copy_of_read_only_library_data_is_not_written_back() {
    let _serial = one_at_a_time();
    // libc's `in6addr_any` is constant, in read-only memory: the unit's copy must not be
    // written back over it when the unit is freed.
    let object = compile_non_pic(
        "reads_in6addr_any",
        "#include <netinet/in.h>\nint in6addr_any_first(void) { return in6addr_any.s6_addr[0] + 1; }\n",
    );
    let mut session = session(64 << 20);
    let unit = session
        .link(&options(&object), &PhaseTimes::default())
        .unwrap();
    let address = session.lookup("in6addr_any_first").unwrap();
    // SAFETY: `int in6addr_any_first(void)`, finalized.
    let first: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address.get()) };
    assert_eq!(first(), 1);
    session.free(unit.id).unwrap();
    assert_eq!(session.memory_stats().bytes_in_use, 0);
}

#[test]
fn copies_of_one_object_in_several_units_are_handed_back_in_any_order() {
    let _serial = one_at_a_time();
    let object = compile_non_pic("reads_libc_data_chained", READS_LIBC_DATA);
    let mut session = session(64 << 20);
    let times = PhaseTimes::default();
    // First freed first (each handed back to the one before it), then last freed first.
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
        let units: Vec<_> = (0..3)
            .map(|i| {
                let unit = session.link(&options(&object), &times).unwrap();
                std::env::set_var(format!("RJITLINK_CHAIN_{i}"), "linked");
                unit
            })
            .collect();
        for (freed, &index) in order.iter().enumerate() {
            session.free(units[index].id).unwrap();
            // libc and the latest live unit agree on where environ is.
            std::env::set_var(format!("RJITLINK_CHAIN_FREED_{freed}"), "yes");
            for i in 0..3 {
                libc_uses_its_data(&format!("RJITLINK_CHAIN_{i}"), "linked");
            }
            for earlier in 0..=freed {
                libc_uses_its_data(&format!("RJITLINK_CHAIN_FREED_{earlier}"), "yes");
            }
        }
        assert_eq!(session.memory_stats().bytes_in_use, 0);
        for i in 0..3 {
            std::env::remove_var(format!("RJITLINK_CHAIN_{i}"));
            std::env::remove_var(format!("RJITLINK_CHAIN_FREED_{i}"));
        }
    }
}

#[test]
fn a_remote_executor_gets_copied_data_back_from_a_freed_unit() {
    let _serial = one_at_a_time();
    let copier = compile_non_pic("reads_libc_data_remote", READS_LIBC_DATA);
    // Run in the executor after the unit is freed: libc's printf and getenv must still find
    // `stdout` and `environ`.
    let program = compile(
        "uses_libc_data",
        "#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) { printf(\"%s\", \"\"); fflush(stdout); return getenv(\"PATH\") ? 37 : 38; }\n",
    );
    for mode in [MemoryMode::Copy, MemoryMode::Shared] {
        let mut session = remote_session(mode, 64 << 20);
        let times = PhaseTimes::default();
        let unit = session.link(&options(&copier), &times).unwrap();
        session.free(unit.id).unwrap();
        assert_eq!(session.memory_stats().bytes_in_use, 0, "{mode:?}");
        let mut with_main = options(&program);
        with_main.entry = Some("main".to_owned());
        let linked = session.link(&with_main, &times).unwrap();
        let status = session
            .executor()
            .run(&linked.program(vec![b"uses_libc_data".to_vec()]).unwrap())
            .unwrap();
        assert_eq!(status, 37, "{mode:?}");
    }
}

#[test]
fn freeing_a_unit_uncovers_the_definitions_it_shadowed() {
    let _serial = one_at_a_time();
    let objects: Vec<PathBuf> = (1..=3)
        .map(|i| {
            compile(
                &format!("defines_f_{i}"),
                &format!("int shadowed(void) {{ return {i}; }}\n"),
            )
        })
        .collect();
    let call = |session: &Session| {
        session.lookup("shadowed").map(|address| {
            // SAFETY: `int shadowed(void)`, finalized.
            let function: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address.get()) };
            function()
        })
    };
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    let units: Vec<_> = objects
        .iter()
        .map(|object| session.link(&options(object), &times).unwrap())
        .collect();
    assert_eq!(call(&session), Some(3), "the latest definition is visible");
    // Freeing one in the middle changes nothing visible; freeing the latest uncovers the one
    // before it, not a freed one.
    session.free(units[1].id).unwrap();
    assert_eq!(call(&session), Some(3));
    session.free(units[2].id).unwrap();
    assert_eq!(call(&session), Some(1));
    // A later link resolves against the uncovered definition too.
    let caller = compile(
        "calls_shadowed",
        "int shadowed(void);\nint call_shadowed(void) { return shadowed() * 10; }\n",
    );
    let calling = session.link(&options(&caller), &times).unwrap();
    let address = session.lookup("call_shadowed").unwrap();
    // SAFETY: `int call_shadowed(void)`, finalized.
    let call_shadowed: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address.get()) };
    assert_eq!(call_shadowed(), 10);
    session.free(calling.id).unwrap();
    session.free(units[0].id).unwrap();
    assert_eq!(call(&session), None);
    assert_eq!(session.live_units(), 0);
}

#[test]
fn freeing_a_unit_runs_its_exit_handlers() {
    let _serial = one_at_a_time();
    let counter = compile("exit_counter", "int handlers_run;\n");
    let registers = compile(
        "registers_handler",
        "#include <stdlib.h>\nextern int handlers_run;\n\
         static void bye(void) { handlers_run += 1; }\n\
         int register_bye(void) { return atexit(bye); }\n",
    );
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    let counter_unit = session.link(&options(&counter), &times).unwrap();
    let unit = session.link(&options(&registers), &times).unwrap();
    let handlers_run = session.lookup("handlers_run").unwrap().get() as *const i32;
    let register = session.lookup("register_bye").unwrap();
    // SAFETY: `int register_bye(void)`, finalized.
    let register: extern "C" fn() -> i32 = unsafe { std::mem::transmute(register.get()) };
    assert_eq!(register(), 0);
    // SAFETY: `int handlers_run`, live in the counter unit.
    assert_eq!(unsafe { handlers_run.read_volatile() }, 0);
    // Freed, the unit's atexit handler runs now (as at dlclose), not at process exit, when
    // its code would be gone.
    session.free(unit.id).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { handlers_run.read_volatile() }, 1);
    session.free(counter_unit.id).unwrap();
}

#[test]
fn exceptions_work_again_in_a_unit_linked_where_a_freed_one_was() {
    let _serial = one_at_a_time();
    // -fPIC, as C++ code for a session usually is.
    let mut cxx = Command::new("c++");
    cxx.args(["-c", "-O1", "-fPIC"]);
    let object = build(
        "throws_and_catches",
        "cc",
        "#include <stdexcept>\n\
         extern \"C\" int throw_and_catch(int x) {\n\
           try { if (x > 0) throw std::runtime_error(\"x\"); return 0; }\n\
           catch (const std::exception &) { return x + 1; }\n\
         }\n",
        cxx,
    );
    let mut with_libstdcxx = options(&object);
    with_libstdcxx
        .inputs
        .push(InputArg::Library("stdc++".to_owned()));
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    let mut ranges = Vec::new();
    for round in 0..3 {
        let unit = session.link(&with_libstdcxx, &times).unwrap();
        ranges.push(unit.ranges.clone());
        let function = session.lookup("throw_and_catch").unwrap();
        // SAFETY: `int throw_and_catch(int)`, finalized.
        let function: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(function.get()) };
        // Each round's unwind table is registered, and the freed one's is gone: a stale table
        // for the same addresses would describe the old code.
        assert_eq!(function(round + 1), round + 2);
        session.free(unit.id).unwrap();
    }
    assert!(
        ranges.windows(2).all(|pair| pair[0] == pair[1]),
        "each round reuses the freed range: {ranges:?}"
    );
}

#[test]
fn threads_started_before_the_link_get_their_own_thread_locals() {
    let _serial = one_at_a_time();
    // Local exec (cc's default for position-independent executables), initial exec through a
    // library-style extern, and general dynamic: every model must see the block in a thread
    // that existed before the unit did.
    let object = compile(
        "thread_locals",
        "__thread int counter = 41;\n\
         __attribute__((tls_model(\"global-dynamic\"))) __thread int dynamic_count = 7;\n\
         __thread char big[256] = {1};\n\
         int bump(void) { counter++; dynamic_count++; big[255]++; \
         return counter * 1000 + dynamic_count * 10 + big[255]; }\n",
    );
    let (to_thread, requests) = std::sync::mpsc::channel::<u64>();
    let (to_main, answers) = std::sync::mpsc::channel::<i32>();
    let early_thread = std::thread::spawn(move || {
        for address in requests {
            // SAFETY: `bump` is `int bump(void)`, live until the unit is freed, which waits
            // for this answer.
            let bump: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address) };
            to_main.send(bump()).unwrap();
        }
    });
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    // Forty blocks are more than the static TLS surplus holds at once: freeing a unit must give
    // its block back.
    for _ in 0..40 {
        let unit = session.link(&options(&object), &times).unwrap();
        let address = session.lookup("bump").unwrap().get();
        // SAFETY: as above, in this thread.
        let bump: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address) };
        assert_eq!(bump(), 42_081);
        assert_eq!(bump(), 43_092);
        // The earlier thread's copy starts from the initial image, whatever this one did.
        to_thread.send(address).unwrap();
        assert_eq!(answers.recv().unwrap(), 42_081);
        // A thread started now gets a fresh copy too.
        let fresh = std::thread::spawn(move || {
            // SAFETY: as above.
            let bump: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address) };
            bump()
        });
        assert_eq!(fresh.join().unwrap(), 42_081);
        assert_eq!(bump(), 44_103);
        // Freed, its module is unloaded; the next link gets a new one, initialized again.
        session.free(unit.id).unwrap();
    }
    drop(to_thread);
    early_thread.join().unwrap();
}

#[test]
fn live_units_each_have_their_own_thread_locals() {
    let _serial = one_at_a_time();
    let objects: Vec<PathBuf> = (1..=3)
        .map(|i| {
            compile(
                &format!("own_thread_locals_{i}"),
                &format!(
                    "__thread int counter = {i}00;\nint bump_{i}(void) {{ return ++counter; }}\n"
                ),
            )
        })
        .collect();
    let mut session = session(1 << 30);
    let times = PhaseTimes::default();
    let units: Vec<_> = objects
        .iter()
        .map(|object| session.link(&options(object), &times).unwrap())
        .collect();
    let bump = |i: usize| {
        let address = session.lookup(&format!("bump_{i}")).unwrap();
        // SAFETY: `int bump_N(void)`, finalized.
        let bump: extern "C" fn() -> i32 = unsafe { std::mem::transmute(address.get()) };
        bump()
    };
    // Each unit's TLS module is its own, however many are loaded at once.
    assert_eq!([bump(1), bump(2), bump(3)], [101, 201, 301]);
    assert_eq!([bump(3), bump(1), bump(2)], [302, 102, 202]);
    for unit in units {
        session.free(unit.id).unwrap();
    }
}

#[test]
fn a_remote_executor_loads_and_unloads_modules() {
    // 8000 bytes of initial-exec TLS: more than glibc's default surplus leaves, which the
    // executor rjitlink spawns is started with room for.
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-O1"]);
    let library = build(
        "module_with_static_tls",
        "c",
        "__attribute__((tls_model(\"initial-exec\"))) __thread char block[8000];\n\
         char *block_address(void) { return block; }\n",
        cc,
    );
    let image = std::fs::read(&library).unwrap();
    let mut remote =
        Remote::spawn_program(Path::new(env!("CARGO_BIN_EXE_rjitlink")), MemoryMode::Copy).unwrap();
    // The table is read from the loaded image; its first word is the ELF header's.
    let table = WordTable {
        offset: 0,
        count: 1,
    };
    let module = remote.load_module("module", &image, table).unwrap();
    assert_eq!(
        module.words,
        [u64::from_le_bytes(image[..8].try_into().unwrap())]
    );
    remote.unload_module(module.handle).unwrap();
    // Unloaded, or never given out: refused with the executor's message.
    for handle in [module.handle, ModuleHandle(0x1000)] {
        let error = remote.unload_module(handle).unwrap_err();
        assert!(
            matches!(&error, TargetError::Refused(message) if message.contains("no module with handle")),
            "{error}"
        );
    }
    let outside = WordTable {
        offset: image.len() as u64 - 4,
        count: 1,
    };
    let error = remote.load_module("module", &image, outside).unwrap_err();
    assert!(error.to_string().contains("lies outside"), "{error}");
}

#[test]
fn a_remote_copy_may_cross_a_page_of_a_packed_unit() {
    let _serial = one_at_a_time();
    // A library's 64-byte object, copied into units whose data puts the copy at every 16-byte
    // place around a page boundary: a packed unit's memory goes live page by page, and the
    // executor must accept a copy that spans two of them.
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-O1"]);
    let library = build(
        "big_object_library",
        "c",
        "struct big { long v[8]; };\nstruct big big_object = {{1, 2, 3, 4, 5, 6, 7, 8}};\n",
        cc,
    );
    let library_so = library.with_extension("so");
    std::fs::rename(&library, &library_so).unwrap();
    for mode in [MemoryMode::Copy, MemoryMode::Shared] {
        let mut session = remote_session(mode, 64 << 20);
        let times = PhaseTimes::default();
        for pad in (3968..4112).step_by(16) {
            let object = compile_non_pic(
                &format!("copies_big_object_{pad}"),
                &format!(
                    "struct big {{ long v[8]; }};\nextern struct big big_object;\n\
                     char pad[{pad}] = {{1}};\nlong read_big(void) {{ return big_object.v[7] + pad[0]; }}\n"
                ),
            );
            let mut options = options(&object);
            options.inputs.push(InputArg::Path(library_so.clone()));
            let unit = session
                .link(&options, &times)
                .unwrap_or_else(|e| panic!("{mode:?}, pad {pad}: {e:#}"));
            session.free(unit.id).unwrap();
        }
    }
}

/// The source line of function `name`'s first byte in `object`, by `nm` and `addr2line`.
fn addr2line_of(object: &Path, name: &str) -> u32 {
    let nm = Command::new("nm").arg(object).output().unwrap();
    let offset = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() == 3 && fields[2] == name).then(|| fields[0].to_owned())
        })
        .unwrap();
    let output = Command::new("addr2line")
        .arg("-e")
        .arg(object)
        .arg(format!("0x{offset}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn symbols_for_crash_reports_live_as_long_as_their_unit() {
    let _serial = one_at_a_time();
    // Two functions at lines the test knows, built with line tables.
    let mut cc = Command::new("cc");
    cc.args(["-c", "-O1", "-g"]);
    let object = build(
        "named",
        "c",
        "int named_first(int x) {\n  return x * 3;\n}\nint named_second(int x) {\n  return named_first(x) + 1;\n}\n",
        cc,
    );
    let live = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut session = Session::new(
        Box::new(Altered::new(Change::RecordSymbols(live.clone()))),
        SessionOptions {
            slab: SlabConfig {
                size: 64 << 20,
                address: None,
            },
            keep_symbols: true,
        },
    );
    let times = PhaseTimes::default();
    // Not asked for: nothing kept.
    let unasked = session.link(&options(&object), &times).unwrap();
    assert!(live.lock().unwrap().is_empty());
    session.free(unasked.id).unwrap();
    let asked = LinkOptions {
        symbolize: true,
        ..options(&object)
    };
    let unit = session.link(&asked, &times).unwrap();
    {
        let kept = live.lock().unwrap();
        assert_eq!(kept.len(), 1);
        let symbols = &kept[0];
        for name in ["named_first", "named_second"] {
            let address = session.lookup(name).unwrap();
            let location = symbols.locate(address, address).unwrap();
            assert_eq!(location.function, Some((name, 0)));
            assert!(location.object.unwrap().ends_with("named.o"));
            let (file, line) = location.file_line.unwrap();
            assert!(file.ends_with("named.c"), "{file}");
            // What binutils says of the function's first byte in the object itself.
            assert_eq!(line, addr2line_of(&object, name), "{name}");
        }
        assert_eq!(symbols.locate(TargetAddr(8), TargetAddr(8)), None);
    }
    session.free(unit.id).unwrap();
    assert!(live.lock().unwrap().is_empty(), "freed, its symbols go too");
}

/// gdb's `struct jit_code_entry`, as the debugger reads it from this process.
#[repr(C)]
struct JitCodeEntry {
    next_entry: *const JitCodeEntry,
    prev_entry: *const JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// gdb's `struct jit_descriptor`.
#[repr(C)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *const JitCodeEntry,
    first_entry: *const JitCodeEntry,
}

extern "C" {
    /// The executor crate's, linked into this test through `InProcess`: what gdb reads.
    static __jit_debug_descriptor: JitDescriptor;
}

/// The images in the JIT interface's list, as a debugger attaching now would read them.
fn jit_images() -> Vec<Vec<u8>> {
    let mut images = Vec::new();
    // SAFETY: the list is changed only while a unit is linked or freed, which the tests that
    // call this do themselves, one at a time; every entry's image is live while listed.
    unsafe {
        let descriptor = &*std::ptr::addr_of!(__jit_debug_descriptor);
        assert_eq!(descriptor.version, 1);
        let mut entry = descriptor.first_entry;
        while !entry.is_null() {
            let image =
                std::slice::from_raw_parts((*entry).symfile_addr, (*entry).symfile_size as usize);
            images.push(image.to_vec());
            entry = (*entry).next_entry;
        }
    }
    images
}

const DEBUG_SOURCE: &str = "int debug_counter;\n\
    int debug_answer(int x) {\n    debug_counter += x;\n    return 40 + x;\n}\n";

#[test]
fn debug_objects_are_published_while_their_unit_lives() {
    use object::read::elf::{FileHeader as _, SectionHeader as _, Sym as _};
    let _serial = one_at_a_time();
    let mut cc = Command::new("cc");
    cc.args(["-c", "-g", "-O0", "-fcommon"]);
    let object = build("debug_answer", "c", DEBUG_SOURCE, cc);
    let plain = compile("no_debug_answer", DEBUG_SOURCE);
    let mut session = session(64 << 20);
    let times = PhaseTimes::default();
    let before = jit_images();

    // Without DWARF, or with the support off, nothing is published.
    let unit = session.link(&bare_options(&plain), &times).unwrap();
    assert_eq!(jit_images(), before);
    session.free(unit.id).unwrap();
    let mut off = bare_options(&object);
    off.debugger_support = false;
    let unit = session.link(&off, &times).unwrap();
    assert_eq!(jit_images(), before);
    session.free(unit.id).unwrap();

    let unit = session.link(&bare_options(&object), &times).unwrap();
    let after = jit_images();
    assert_eq!(after.len(), before.len() + 1);
    // The newest entry comes first: the object itself, its sections where they were loaded.
    let image = &after[0];
    let original = std::fs::read(&object).unwrap();
    assert_eq!(image.len(), original.len());
    let header = object::elf::FileHeader64::<object::LittleEndian>::parse(&image[..]).unwrap();
    let endian = object::LittleEndian;
    let sections = header.sections(endian, &image[..]).unwrap();
    let symbols = sections
        .symbols(endian, &image[..], object::elf::SHT_SYMTAB)
        .unwrap();
    let value_of = |name: &[u8]| {
        let symbol = symbols
            .iter()
            .find(|symbol| symbols.symbol_name(endian, symbol) == Ok(name))
            .unwrap();
        let base = match symbol.st_shndx(endian) {
            object::elf::SHN_ABS => 0,
            index => sections
                .section(object::SectionIndex(index.into()))
                .unwrap()
                .sh_addr(endian),
        };
        base + symbol.st_value(endian)
    };
    assert_eq!(
        Some(TargetAddr(value_of(b"debug_answer"))),
        session.lookup("debug_answer")
    );
    // A common symbol is given its address.
    assert_eq!(
        Some(TargetAddr(value_of(b"debug_counter"))),
        session.lookup("debug_counter")
    );
    // Only the section headers and the common symbol changed.
    let differing = image.iter().zip(&original).filter(|(a, b)| a != b).count();
    assert!(differing > 0 && differing < 64, "{differing} bytes differ");

    // Freed: withdrawn.
    session.free(unit.id).unwrap();
    assert_eq!(jit_images(), before);
}

#[test]
fn a_remote_executor_registers_debug_objects_by_handle() {
    let mut cc = Command::new("cc");
    cc.args(["-c", "-g"]);
    let object = build("remote_debug_answer", "c", DEBUG_SOURCE, cc);
    let image = std::fs::read(&object).unwrap();
    let debug_object = |name: &str, image: Vec<u8>| DebugObject {
        name: name.to_owned(),
        image,
    };
    let mut remote =
        Remote::spawn_program(Path::new(env!("CARGO_BIN_EXE_rjitlink")), MemoryMode::Copy).unwrap();
    let handles = remote
        .register_debug_objects(vec![
            debug_object("a.o", image.clone()),
            debug_object("b.o", image.clone()),
        ])
        .unwrap();
    assert_eq!(handles.len(), 2);
    assert_ne!(handles[0], handles[1]);
    // Something that is not an ELF file is refused, and the connection goes on.
    let error = remote
        .register_debug_objects(vec![
            debug_object("good.o", image.clone()),
            debug_object(
                "bad.o",
                b"not an object at all, but long enough to be one: 64 bytes".repeat(2),
            ),
        ])
        .unwrap_err();
    assert!(
        matches!(&error, TargetError::Refused(message) if message == "cannot register the debug object bad.o: not an ELF file"),
        "{error}"
    );
    remote.unregister_debug_objects(&handles[..1]).unwrap();
    // Unregistered already, repeated, never given: refused, and nothing is unregistered.
    for bad in [
        vec![handles[0]],
        vec![handles[1], handles[1]],
        vec![handles[1], DebugObjectHandle(0x1234)],
    ] {
        let error = remote.unregister_debug_objects(&bad).unwrap_err();
        assert!(
            matches!(&error, TargetError::Refused(message) if message.starts_with("no debug object with handle")),
            "{error}"
        );
    }
    remote.unregister_debug_objects(&handles[1..]).unwrap();
    // Nothing to do: no round trip.
    let trips = remote.stats().round_trips;
    remote.unregister_debug_objects(&[]).unwrap();
    assert_eq!(remote.register_debug_objects(Vec::new()).unwrap(), []);
    assert_eq!(remote.stats().round_trips, trips);
}

#[test]
fn a_remote_unit_runs_from_a_code_page_an_earlier_unit_made_live() {
    // With shared memory the executor maps code privately once live (a debugger's breakpoints
    // need that), so a later small unit's code on the same page is written by the executor.
    for mode in [MemoryMode::Shared, MemoryMode::Copy] {
        let mut session = remote_session(mode, 64 << 20);
        let times = PhaseTimes::default();
        let first = compile("packed_first", "int packed_seven(void) { return 7; }\n");
        let first = session.link(&bare_options(&first), &times).unwrap();
        let main = compile(
            "packed_main",
            "int packed_seven(void);\nint main(void) { return packed_seven() + 1; }\n",
        );
        let mut options = bare_options(&main);
        options.entry = Some("main".to_owned());
        let unit = session.link(&options, &times).unwrap();
        // Both are small: their code shares a page.
        let page = |address: TargetAddr| address.get() / rjitlink_memory::page_size() as u64;
        assert_eq!(
            page(first.ranges[0].start),
            page(unit.entry.unwrap()),
            "{mode:?}: {first:?} {unit:?}"
        );
        let program = unit.program(vec![b"packed".to_vec()]).unwrap();
        assert_eq!(session.executor().run(&program).unwrap(), 8, "{mode:?}");
    }
}

#[test]
fn a_link_whose_debug_objects_are_refused_fails_and_keeps_nothing() {
    let _serial = one_at_a_time();
    let mut cc = Command::new("cc");
    cc.args(["-c", "-g", "-O0"]);
    let object = build("refused_debug_answer", "c", DEBUG_SOURCE, cc);
    let mut session = Session::new(
        Box::new(Altered::new(Change::RefuseDebugObjects)),
        SessionOptions {
            slab: SlabConfig {
                size: 64 << 20,
                address: None,
            },
            keep_symbols: true,
        },
    );
    let times = PhaseTimes::default();
    let error = session.link(&bare_options(&object), &times).unwrap_err();
    assert_eq!(
        rjitlink_target::full_message(&error),
        "cannot register the unit's debug information for debuggers: refused by the test"
    );
    assert_eq!(session.live_units(), 0);
    assert_eq!(session.memory_stats().bytes_in_use, 0);
    assert_eq!(session.lookup("debug_answer"), None);
    // Without debugger support the same object links.
    let mut off = bare_options(&object);
    off.debugger_support = false;
    session.link(&off, &times).unwrap();
}

#[test]
fn a_slab_asked_for_ahead_of_an_executor_that_did_not_start_waits_for_the_reason() {
    // The executor starts on a thread of its own, and the session asks for its slab at once.
    // When the program cannot run, the thread closes the executor's end of the connection:
    // asking for the slab after that (a linker thread descheduled for a moment, here a sleep)
    // must not be an error of its own, a broken pipe, but leave the reason to the first
    // request that needs an answer.
    let program = compile("not_a_program", "int not_a_program(void) { return 0; }\n");
    let mut remote = Remote::spawn_program(&program, MemoryMode::Shared).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    remote.reserve_slab_ahead(1 << 20, None).unwrap();
    let error = remote
        .memory()
        .reserve(1 << 20, rjitlink_memory::Placement::Anywhere);
    assert!(error.is_err());
    let error = rjitlink_target::full_message(&remote.lookup(&[b"main"]).unwrap_err());
    assert!(
        error.ends_with("cannot start the executor: Permission denied (os error 13)"),
        "{error}"
    );
}

#[test]
fn a_process_started_as_the_executor_starts_does_not_hold_its_connection() {
    // The executor starts on a thread of its own while the caller goes on, perhaps to start a
    // process of its own. That process must not inherit the executor's end of the connection:
    // holding it, it would keep the connection open after the executor died, and the linker
    // would wait for an answer for as long as that process lives.
    let mut remote = Remote::spawn_program(
        Path::new(env!("CARGO_BIN_EXE_rjitlink")),
        MemoryMode::Shared,
    )
    .unwrap();
    let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
    let executor = remote.pid().unwrap();
    // SAFETY: a signal to the executor this test spawned.
    unsafe { libc::kill(executor as i32, libc::SIGKILL) };
    let started = std::time::Instant::now();
    let (answer_tx, answer) = std::sync::mpsc::channel();
    let asking = std::thread::spawn(move || {
        let error = remote.lookup(&[b"main"]).map(|_| ()).unwrap_err();
        let _ = answer_tx.send(rjitlink_target::full_message(&error));
    });
    let message = answer.recv_timeout(std::time::Duration::from_secs(10));
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    asking.join().unwrap();
    let message = message.expect("the executor's death was not noticed while another process ran");
    assert!(message.contains("SIGKILL"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
