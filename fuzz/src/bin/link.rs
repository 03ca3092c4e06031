//! Fuzz target: files (split at `FILE_SEPARATOR`) linked into memory by a session with the
//! stub executor, which runs nothing. Any panic is a crash.

use rjitlink_fuzz::{split_files, StubExecutor};
use rjitlink_link::{InputArg, LinkOptions, PhaseTimes, SearchPath, Session, SessionOptions};
use rjitlink_memory::SlabConfig;
use std::path::PathBuf;

fn main() {
    // One thread: the same input takes the same path every time.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let dir = std::env::temp_dir().join(format!("rjitlink-fuzz-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A shared library among the inputs makes the link look its undefined names up.
    let library = dir.join("libstub.so");
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[16] = 3; // ET_DYN
    std::fs::write(&library, header).unwrap();
    // To triage an input: RJITLINK_FUZZ_VERBOSE=1 target/release/link < input
    let verbose = std::env::var_os("RJITLINK_FUZZ_VERBOSE").is_some();
    afl::fuzz!(|data: &[u8]| {
        let mut inputs = Vec::new();
        for (i, file) in split_files(data).into_iter().enumerate() {
            // lib0.a, lib1.a, ...: a script can name them as files or as -l0, -l1, ...
            let path: PathBuf = dir.join(format!("lib{i}.a"));
            std::fs::write(&path, file).unwrap();
            inputs.push(InputArg::Path(path));
        }
        for stale in inputs.len()..8 {
            let _ = std::fs::remove_file(dir.join(format!("lib{stale}.a")));
        }
        inputs.push(InputArg::Path(library.clone()));
        let options = LinkOptions {
            inputs,
            search: SearchPath {
                dirs: vec![dir.clone()],
                gcc_dir: None,
            },
            entry: None,
            default_libraries: false,
            export_dynamic: false,
            symbolize: false,
            perf_map: false,
            jitdump: false,
            jitdump_directory: None,
            debugger_support: true,
        };
        let mut session = Session::new(
            Box::new(StubExecutor::default()),
            SessionOptions {
                slab: SlabConfig {
                    size: 1 << 30,
                    address: None,
                },
                keep_symbols: true,
            },
        );
        let linked = session.link(&options, &PhaseTimes::default());
        if verbose {
            match &linked {
                Ok(unit) => eprintln!("linked: {} bytes", unit.linked_bytes),
                Err(error) => eprintln!("error: {error}"),
            }
        }
        if let Ok(unit) = linked {
            let _ = session.free(unit.id);
        }
    });
}
