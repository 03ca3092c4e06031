//! perf's map of JIT code, `/tmp/perf-PID.map`, written by the process that runs the code: one
//! line `START SIZE name` (hex) per function, which `perf report` reads to name samples in
//! memory no file backs.

use rjitlink_memory::TargetAddr;
use rjitlink_target::TargetError;
use std::io::Write;
use std::sync::Mutex;

/// Whether this process has started its map yet: a file left by an earlier process with the
/// same pid is stale, so the first write truncates it and later ones append.
static STARTED: Mutex<bool> = Mutex::new(false);

/// The perf map of this process.
pub fn perf_map_path() -> String {
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
        context: format!("cannot write {path}"),
        source,
    })?;
    *started = true;
    Ok(())
}
