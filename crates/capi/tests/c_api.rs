//! The C API from C: `tests/c/embed.c`, compiled with cc against `include/rjitlink.h` and
//! linked with `librjitlink.so`, links three units (one from memory with a perf map, one by
//! path without, one that cannot link) and checks every answer itself; and runs a unit as a
//! program in process and in a spawned executor (its initializers run there first, once).

mod common;

use common::{library_dir, scratch_dir};
use std::path::Path;
use std::process::Command;

fn cc(args: &[&std::ffi::OsStr]) {
    let output = Command::new("cc").args(args).output().expect("cc runs");
    assert!(
        output.status.success(),
        "cc {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn c_program_embeds_rjitlink() {
    let dir = scratch_dir("c-api");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let object = |name: &str| {
        let out = dir.join(format!("{name}.o"));
        cc(&[
            "-c".as_ref(),
            "-O1".as_ref(),
            // unit.c reads the host's data, which may lie far from the slab: through the GOT.
            "-fPIC".as_ref(),
            sources.join(format!("{name}.c")).as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        out
    };
    let (unit, later, broken) = (object("unit"), object("later"), object("broken"));
    let lib = library_dir();
    let embed = dir.join("embed");
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    cc(&[
        "-std=c11".as_ref(),
        "-Wall".as_ref(),
        "-Wextra".as_ref(),
        "-Werror".as_ref(),
        // host_offset is found through the host's symbols: it must be exported.
        "-rdynamic".as_ref(),
        "-I".as_ref(),
        include.as_os_str(),
        sources.join("embed.c").as_os_str(),
        "-o".as_ref(),
        embed.as_os_str(),
        "-L".as_ref(),
        lib.as_os_str(),
        "-lrjitlink".as_ref(),
        rpath.as_ref(),
    ]);
    let child = Command::new(&embed)
        .args([&unit, &later, &broken])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("embed runs");
    let perf_map = format!("/tmp/perf-{}.map", child.id());
    let output = child.wait_with_output().unwrap();
    // embed.c removes the perf map it checks; if a failure ended it first, it goes here.
    let left_behind = std::fs::remove_file(&perf_map).is_ok();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "embed failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "all checks passed\n");
    assert!(!left_behind, "{perf_map} was left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `embed.c` built against the library in `dir`, and `program.c` compiled: their paths.
fn embed_and_program(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let program = dir.join("program.o");
    cc(&[
        "-c".as_ref(),
        sources.join("program.c").as_os_str(),
        "-o".as_ref(),
        program.as_os_str(),
    ]);
    let lib = library_dir();
    let embed = dir.join("embed");
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    cc(&[
        "-Wall".as_ref(),
        "-Werror".as_ref(),
        "-I".as_ref(),
        include.as_os_str(),
        sources.join("embed.c").as_os_str(),
        "-o".as_ref(),
        embed.as_os_str(),
        "-L".as_ref(),
        lib.as_os_str(),
        "-lrjitlink".as_ref(),
        rpath.as_ref(),
    ]);
    (embed, program)
}

#[test]
fn c_program_runs_a_unit_as_its_own_program() {
    // In process, the unit's exit is the host's: 40 (its constructor) + argc 3.
    let dir = scratch_dir("c-api-run");
    let (embed, program) = embed_and_program(&dir);
    let output = Command::new(&embed)
        .arg("--run")
        .arg(&program)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(43),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn c_program_runs_a_unit_in_a_spawned_executor() {
    let dir = scratch_dir("c-api-spawn");
    let (embed, program) = embed_and_program(&dir);
    let output = Command::new(&embed)
        .arg("--spawn")
        .arg(common::rjitlink_binary())
        .arg(&program)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "spawned program exited with 42\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cpp_compiler_accepts_the_header() {
    // The header is usable from C++ (extern "C", no C-only constructs).
    let dir = scratch_dir("c-api-cpp");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let source = dir.join("use.cc");
    std::fs::write(
        &source,
        "#include \"rjitlink.h\"\nint main() { return rjitlink_last_error() == nullptr ? 0 : 1; }\n",
    )
    .unwrap();
    let output = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Werror", "-fsyntax-only", "-I"])
        .arg(&include)
        .arg(&source)
        .output()
        .expect("c++ runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
