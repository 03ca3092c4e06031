//! The testdata corpus: every program of testdata/c, testdata/cpp and testdata/asm, linked
//! natively and with rjitlink and compared, in every build and executor mode; every input of
//! testdata/errors, which rjitlink must reject with the error its `expect-error` directive
//! names. The directives are listed in main.rs.

use crate::harness::case::{Build, Case};
use crate::harness::directives::Directives;
use crate::harness::mode::Mode;
use libtest_mimic::Trial;
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

/// The trials of testdata/c, testdata/cpp, testdata/asm and testdata/errors.
pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    let c_and_cpp = testdata("c")
        .into_iter()
        .map(|source| ("c", source))
        .chain(testdata("cpp").into_iter().map(|source| ("cpp", source)));
    for (language, source) in c_and_cpp {
        for build in [Build::O0, Build::O2Pic, Build::O2NoPic] {
            for mode in Mode::ALL {
                let source = source.clone();
                let name = format!(
                    "{language}::{}::{}::{}",
                    stem(&source),
                    build.name(),
                    mode.name()
                );
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
    // Each program once more, run from its sources (`rjitlink main.c lib/other.c -- ARGS`):
    // rjitlink compiles them as the native build did.
    let all_sources = testdata("c")
        .into_iter()
        .map(|source| ("c", source))
        .chain(testdata("cpp").into_iter().map(|source| ("cpp", source)))
        .chain(testdata("asm").into_iter().map(|source| ("asm", source)));
    for (language, source) in all_sources {
        let name = format!("sources::{language}::{}", stem(&source));
        trials.push(Trial::test(name, move || {
            Case::new(&source, Build::for_source(&source))?.compare_sources_with_native()
        }));
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
    trials
}
