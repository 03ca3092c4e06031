//! LLVM as a C++ stress test: testdata/large/llvm_pipeline.cc, linked against LLVM 19's static
//! libraries (llvm-19-dev: 42 archives, static constructors, thread-local variables,
//! exceptions), must print what the natively linked program prints, in every executor mode.
//!
//! The program is compiled and linked natively once, in a scratch directory removed at the
//! end; each mode's trial then only runs rjitlink.

#[path = "harness/mod.rs"]
#[allow(dead_code)] // the corpus suites use the rest
mod harness;

use harness::case::run_jit;
use harness::mode::Mode;
use harness::process::{checked, run_with_timeout};
use harness::rjitlink;
use harness::scratch::scratch_dir;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const LLVM_CONFIG: &str = "llvm-config-19";

/// The compiled program, its libraries and the native run, shared by the trials.
struct Build {
    object: PathBuf,
    /// `-L` for LLVM's libraries, then the libraries, in link order.
    libs: Vec<String>,
    native: Output,
}

/// The scratch directory, once a trial has made it.
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// `llvm-config-19 ARGS`, split into words.
fn llvm_config(args: &[&str]) -> Result<Vec<String>, Failed> {
    let output = Command::new(LLVM_CONFIG).args(args).output().map_err(|e| {
        format!("cannot run {LLVM_CONFIG} ({e}): install llvm-19-dev (.ci/run does)")
    })?;
    if !output.status.success() {
        return Err(format!(
            "{LLVM_CONFIG} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

fn build() -> Result<Build, Failed> {
    let dir = SCRATCH.get_or_init(|| scratch_dir("llvm_static"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/large/llvm_pipeline.cc");
    let object = dir.join("llvm_pipeline.o");
    // LLVM is built without exceptions and its --cxxflags say -fno-exceptions; the program
    // throws one, so -fexceptions comes after them.
    checked(
        Command::new("c++")
            .args(llvm_config(&["--cxxflags"])?)
            .args(["-fexceptions", "-O1", "-c"])
            .arg(&source)
            .arg("-o")
            .arg(&object),
    )?;
    // --system-libs names libz3.so by its full path among the -l flags: both links take it.
    let mut libs = llvm_config(&["--ldflags"])?;
    libs.extend(llvm_config(&[
        "--link-static",
        "--libs",
        "passes",
        "asmparser",
    ])?);
    libs.extend(llvm_config(&["--link-static", "--system-libs"])?);
    let native_exe = dir.join("native");
    checked(
        Command::new("c++")
            .arg(&object)
            .arg("-o")
            .arg(&native_exe)
            .args(&libs),
    )?;
    let native = run_with_timeout(&mut Command::new(&native_exe))?;
    if !native.status.success() {
        return Err(format!("the native program failed: {}", describe(&native)).into());
    }
    Ok(Build {
        object,
        libs,
        native,
    })
}

/// Compiled and linked natively by the first trial; the others wait for it.
fn shared_build() -> Result<&'static Build, Failed> {
    static BUILD: OnceLock<Result<Build, String>> = OnceLock::new();
    BUILD
        .get_or_init(|| build().map_err(|e| e.message().unwrap_or("build failed").to_owned()))
        .as_ref()
        .map_err(|e| e.as_str().into())
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn trial(mode: Mode) -> Result<(), Failed> {
    let build = shared_build()?;
    let jit = run_jit(mode, None, |flags| {
        let mut command = Command::new(rjitlink());
        // -lstdc++: c++ adds it to the native link; rjitlink, like cc, needs it said.
        command
            .arg("run")
            .arg(&build.object)
            .args(&build.libs)
            .arg("-lstdc++")
            .args(flags);
        command
    })?;
    if jit.stdout != build.native.stdout || jit.status.code() != build.native.status.code() {
        return Err(format!(
            "rjitlink differs from the native link\n=== native: {}\n=== rjitlink: {}",
            describe(&build.native),
            describe(&jit)
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let trials = Mode::ALL
        .into_iter()
        .map(|mode| Trial::test(format!("llvm_static::{}", mode.name()), move || trial(mode)))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    conclusion.exit();
}
