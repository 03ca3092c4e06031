//! The test corpus: every program in testdata/ is built with the system cc/as, linked natively
//! and with rjitlink, and both runs are compared. Each testdata file says what it expects in
//! directive comments (`//# key: value` in C, `## key: value` in assembly):
//!
//! - `with: FILE...`      more sources to compile and link as objects (paths relative to it)
//! - `archive: FILE...`   sources to compile into a static archive linked after the objects
//! - `libs: -lNAME...`    libraries, for both links
//! - `cflags: FLAGS`      extra compiler flags
//! - `asflags: FLAGS`     extra assembler flags
//! - `args: ARGS`         the program's arguments
//! - `native-ldflags: FLAGS`  extra flags for the native link only (e.g. -no-pie)
//! - `expect-error: TEXT` (testdata/errors) rjitlink must fail with this in its one-line error
//!
//! C programs run in three builds: `-O0` (the compiler's default PIE code), `-O2 -fPIC`, and
//! `-O2 -fno-pic -fno-pie` (absolute addresses: linked natively with -no-pie, placed below
//! 2 GiB by rjitlink, with copy relocations for the library data it reads directly).
//! Assembly programs check their own relocated values and must exit 0 both ways.
//! Every program runs in every executor mode: in process, remote (socket pair) and TCP.

mod harness;

use harness::{Build, Case, Directives, Mode};
use libtest_mimic::{Arguments, Trial};
use std::path::{Path, PathBuf};

fn testdata(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();

    for source in testdata("c") {
        for build in [Build::O0, Build::O2Pic, Build::O2NoPic] {
            for mode in Mode::ALL {
                let source = source.clone();
                let name = format!("c::{}::{}::{}", stem(&source), build.name(), mode.name());
                trials.push(Trial::test(name, move || {
                    Case::new(&source, build)?.compare_with_native(mode)
                }));
            }
        }
    }
    for source in testdata("asm") {
        for mode in Mode::ALL {
            let source = source.clone();
            let name = format!("asm::{}::{}", stem(&source), mode.name());
            trials.push(Trial::test(name, move || {
                Case::new(&source, Build::Asm)?.compare_with_native(mode)
            }));
        }
    }
    for source in testdata("errors") {
        let name = format!("errors::{}", stem(&source));
        trials.push(Trial::test(name, move || {
            let case = Case::new(&source, Build::for_source(&source))?;
            let expected = Directives::parse(&source)?
                .get("expect-error")
                .ok_or("no expect-error directive")?
                .to_owned();
            case.expect_link_error(&expected)
        }));
    }
    trials.extend(harness::generated_error_trials());
    trials.extend(harness::cli_trials());
    trials.extend(harness::executor_trials());
    trials.extend(harness::damaged_input_trials());

    libtest_mimic::run(&args, trials).exit();
}
