//! What perf needs to name JIT code, written by the process that runs it: the perf map
//! (`/tmp/perf-PID.map`, one line `START SIZE name` in hex per function, which `perf report`
//! reads for anonymous memory) and the jitdump (`jit-PID.dump`, code and line rows for
//! `perf inject --jit`).

use rjitlink_memory::TargetAddr;
use rjitlink_target::{JitFunction, TargetError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Whether this process has started its map yet: a file left by an earlier process with the
/// same pid is stale, so the first write truncates it and later ones append.
static STARTED: Mutex<bool> = Mutex::new(false);

/// The perf map of this process.
fn perf_map_path() -> String {
    format!("/tmp/perf-{}.map", std::process::id())
}

/// Append one line per function to this process's perf map. A name is written up to its first
/// line break (perf reads one function per line).
pub(crate) fn append_perf_map<'a>(
    functions: impl Iterator<Item = (TargetAddr, u64, &'a [u8])>,
) -> Result<(), TargetError> {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    let path = perf_map_path();
    let mut text = Vec::new();
    for (address, size, name) in functions {
        let name = name
            .split(|&b| b == b'\n' || b == b'\r')
            .next()
            .unwrap_or(b"");
        let _ = write!(text, "{:x} {size:x} ", address.get());
        text.extend_from_slice(name);
        text.push(b'\n');
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(*started)
        .truncate(!*started)
        .open(&path);
    let written = file.and_then(|mut file| file.write_all(&text));
    written.map_err(|source| TargetError::System {
        context: format!("cannot write the perf map {path}"),
        source,
    })?;
    *started = true;
    Ok(())
}

/// In a child forked to run the program (TCP): the perf map the parent wrote becomes the
/// child's, as perf looks it up by the pid of the process whose samples it names.
pub(crate) fn perf_map_to_child(parent: u32) {
    let started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        let _ = std::fs::rename(format!("/tmp/perf-{parent}.map"), perf_map_path());
    }
}

/// This process's jitdump, once started.
static JITDUMP: Mutex<Option<JitDump>> = Mutex::new(None);

/// An open jitdump: its file, and the index the next code-load record gets.
struct JitDump {
    file: std::fs::File,
    path: PathBuf,
    next_index: u64,
}

/// jitdump's magic ("JiTD" read as a little-endian word), version and record kinds
/// (tools/perf/Documentation/jitdump-specification.txt).
const JITDUMP_MAGIC: u32 = 0x4A69_5444;
const JITDUMP_VERSION: u32 = 1;
const JIT_CODE_LOAD: u32 = 0;
const JIT_CODE_DEBUG_INFO: u32 = 2;
/// e_machine of x86-64.
const EM_X86_64: u32 = 62;

/// The monotonic clock in nanoseconds: what `perf record -k mono` stamps its samples with, so
/// that `perf inject` can order the records among them.
fn timestamp() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// Where the jitdump goes by default: `$JITDUMPDIR/.debug/jit/rjitlink-PID`, or under `$HOME`.
fn default_jitdump_directory() -> PathBuf {
    let base = std::env::var_os("JITDUMPDIR")
        .or_else(|| std::env::var_os("HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".debug/jit")
        .join(format!("rjitlink-{}", std::process::id()))
}

/// Create the jitdump in `directory` (made if missing): header written, the file mapped
/// executable so that `perf record` sees it.
fn start_jitdump(directory: &Path, path: &Path) -> std::io::Result<JitDump> {
    std::fs::create_dir_all(directory)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(true)
        .open(path)?;
    let mut header = Vec::with_capacity(40);
    for word in [
        JITDUMP_MAGIC,
        JITDUMP_VERSION,
        40,
        EM_X86_64,
        0,
        std::process::id(),
    ] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    header.extend_from_slice(&timestamp().to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes());
    file.write_all(&header)?;
    map_executable(&file)?;
    Ok(JitDump {
        file,
        path: path.to_owned(),
        next_index: 0,
    })
}

/// Map the jitdump's first page executable: perf learns of the file from this mapping (its
/// PERF_RECORD_MMAP names the file). It stays mapped until the process ends.
fn map_executable(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: a new private mapping of our own file; nothing else is replaced.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            rjitlink_memory::page_size(),
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            std::os::fd::AsRawFd::as_raw_fd(file),
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In a child forked to run the program (TCP): the jitdump the parent wrote becomes the
/// child's — renamed for its pid, its header's and code loads' pid and thread set to the
/// child's, and mapped again from the child, whose samples `perf inject` matches it to.
pub(crate) fn jitdump_to_child() -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut dump = JITDUMP.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dump) = dump.as_mut() else {
        return Ok(());
    };
    let pid = std::process::id();
    let path = dump.path.with_file_name(format!("jit-{pid}.dump"));
    std::fs::rename(&dump.path, &path)?;
    dump.path = path;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::open(&dump.path)?, &mut bytes)?;
    dump.file.write_all_at(&pid.to_le_bytes(), 20)?;
    // The records: a code load holds the pid and thread after its 16-byte prefix.
    let mut at = 40usize;
    while let Some(prefix) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        let kind = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes"));
        let size = u32::from_le_bytes(prefix[4..].try_into().expect("4 bytes")) as usize;
        if size < 16 {
            break;
        }
        if kind == JIT_CODE_LOAD {
            let mut ids = [0u8; 8];
            ids[..4].copy_from_slice(&pid.to_le_bytes());
            ids[4..].copy_from_slice(&pid.to_le_bytes());
            dump.file.write_all_at(&ids, at as u64 + 16)?;
        }
        let Some(next) = at.checked_add(size) else {
            break;
        };
        at = next;
    }
    map_executable(&dump.file)
}

/// The record prefix: kind, total size, timestamp.
fn record_prefix(record: &mut Vec<u8>, kind: u32) {
    record.extend_from_slice(&kind.to_le_bytes());
    record.extend_from_slice(&0u32.to_le_bytes()); // the total size, set by `finish_record`
    record.extend_from_slice(&timestamp().to_le_bytes());
}

fn finish_record(record: &mut [u8]) {
    let size = record.len() as u32;
    record[4..8].copy_from_slice(&size.to_le_bytes());
}

/// Append `functions` to this process's jitdump (see `Executor::write_jitdump`); `code`
/// gives each function's bytes as they are in memory.
pub(crate) fn append_jitdump<'a>(
    directory: Option<&Path>,
    functions: &[JitFunction<'_>],
    code: impl Fn(TargetAddr, u64) -> &'a [u8],
) -> Result<(), TargetError> {
    let mut dump = JITDUMP.lock().unwrap_or_else(|e| e.into_inner());
    let directory = directory
        .map(Path::to_owned)
        .unwrap_or_else(default_jitdump_directory);
    let path = directory.join(format!("jit-{}.dump", std::process::id()));
    let fail = |source| TargetError::System {
        context: format!("cannot write the jitdump {}", path.display()),
        source,
    };
    if dump.is_none() {
        *dump = Some(start_jitdump(&directory, &path).map_err(fail)?);
    }
    let dump = dump.as_mut().expect("started above");
    // SAFETY: gettid has no preconditions.
    let thread = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let mut records = Vec::new();
    for function in functions {
        let name = function.name.split(|&b| b == 0).next().unwrap_or_default();
        if !function.lines.is_empty() {
            let start = records.len();
            record_prefix(&mut records, JIT_CODE_DEBUG_INFO);
            records.extend_from_slice(&function.address.get().to_le_bytes());
            records.extend_from_slice(&(function.lines.len() as u64).to_le_bytes());
            for &(address, line, file) in &function.lines {
                records.extend_from_slice(&address.get().to_le_bytes());
                records.extend_from_slice(&line.to_le_bytes());
                records.extend_from_slice(&0u32.to_le_bytes()); // discriminator
                records.extend(file.iter().copied().take_while(|&b| b != 0));
                records.push(0);
            }
            // Padded to 8 bytes, as perf's own agents write it.
            records.resize(records.len().next_multiple_of(8), 0);
            finish_record(&mut records[start..]);
        }
        let start = records.len();
        record_prefix(&mut records, JIT_CODE_LOAD);
        records.extend_from_slice(&std::process::id().to_le_bytes());
        records.extend_from_slice(&thread.to_le_bytes());
        for word in [
            function.address.get(),
            function.address.get(),
            function.size,
            dump.next_index,
        ] {
            records.extend_from_slice(&word.to_le_bytes());
        }
        records.extend_from_slice(name);
        records.push(0);
        records.extend_from_slice(code(function.address, function.size));
        finish_record(&mut records[start..]);
        dump.next_index += 1;
    }
    dump.file.write_all(&records).map_err(fail)
}
