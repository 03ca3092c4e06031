//! CPython as the stress test: Debian's libpython3.11-dev ships python.o, libpython3.11.a
//! (non-PIC) and libpython3.11-pic.a; JIT-linked by rjitlink they must be a real Python, in
//! every executor mode. libpython3.11-testsuite provides CPython's regression tests.
//!
//! The interpreter runs through a small wrapper script that calls rjitlink with `--argv0` set
//! to the script, so `sys.executable` is the script and the subprocesses the tests start are
//! JIT-linked too.

#[path = "harness/scratch.rs"]
mod scratch;

use libtest_mimic::{Arguments, Failed, Trial};
use scratch::scratch_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ARCHIVES: [&str; 2] = ["libpython3.11.a", "libpython3.11-pic.a"];

/// Executor modes, as rjitlink flags.
const MODES: [(&str, &[&str]); 3] = [
    ("in-process", &[]),
    ("remote-shared", &["--executor=remote", "--memory=shared"]),
    ("remote-copy", &["--executor=remote", "--memory=copy"]),
];

/// The regression tests that pass with a natively linked interpreter.
const REGRESSION_TESTS: [&str; 15] = [
    "test_json",
    "test_re",
    "test_math",
    "test_unicode",
    "test_ctypes",
    "test_decimal",
    "test_hashlib",
    "test_struct",
    "test_itertools",
    "test_dict",
    "test_list",
    "test_bytes",
    "test_float",
    "test_long",
    "test_string",
];

/// A shorter list for the modes that do not run the full one (CI time is limited): the
/// modules that need C extensions and subprocesses.
const SHORT_REGRESSION_TESTS: [&str; 3] = ["test_json", "test_ctypes", "test_decimal"];

fn config_dir() -> Result<PathBuf, Failed> {
    let output = Command::new("/usr/bin/python3.11-config")
        .arg("--configdir")
        .output()
        .map_err(|_| "python3.11-config is missing: install libpython3.11-dev (.ci/run does)")?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Write `python3` in a fresh directory: a script running JIT-linked CPython.
fn python_script(mode: &str, flags: &[&str], archive: &str) -> Result<PathBuf, Failed> {
    // One directory per script: trials run in parallel, and executing a script while another
    // trial rewrites it fails with ETXTBSY.
    let dir = scratch_dir(&format!("cpython-{mode}-{archive}"));
    let config = config_dir()?;
    let script = dir.join("python3");
    let text = format!(
        "#!/bin/sh\nexec '{}' run --export-dynamic {} --argv0 \"$0\" '{}' '{}' -lm -lz -lexpat -- \"$@\"\n",
        env!("CARGO_BIN_EXE_rjitlink"),
        flags.join(" "),
        config.join("python.o").display(),
        config.join(archive).display(),
    );
    std::fs::write(&script, text).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(script)
}

fn run(program: &Path, args: &[&str]) -> Result<Output, Failed> {
    Command::new(program)
        .args(args)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()).into())
}

/// Uses C extension modules from lib-dynload, which resolve Py* symbols against the program.
const EXTENSIONS_PROGRAM: &str = r#"
import json, json.decoder, ctypes, decimal, sqlite3, hashlib, sys
print(json.decoder.c_scanstring is not None, json.dumps({"k": [1, 2.5, None]}, sort_keys=True))
print(json.loads('{"a": [true, "\u00e9"]}'))
print(ctypes.CDLL(None).strlen(b"JIT-linked"))
decimal.getcontext().prec = 40
print(decimal.Decimal(1) / decimal.Decimal(7))
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.executemany("insert into t values (?)", [(i,) for i in range(10)])
print(db.execute("select sum(x), count(*) from t").fetchone())
print(hashlib.sha256(b"rjitlink").hexdigest(), hashlib.md5(b"x").hexdigest())
sys.exit(7)
"#;

fn extensions_trial(script: &Path) -> Result<(), Failed> {
    let native = run(
        Path::new("/usr/bin/python3.11"),
        &["-c", EXTENSIONS_PROGRAM],
    )?;
    let jit = run(script, &["-c", EXTENSIONS_PROGRAM])?;
    if jit.stdout != native.stdout || jit.status.code() != native.status.code() {
        return Err(format!(
            "differs from python3.11\n--- native ({}):\n{}\n--- rjitlink ({}):\n{}\n{}",
            native.status,
            String::from_utf8_lossy(&native.stdout),
            jit.status,
            String::from_utf8_lossy(&jit.stdout),
            String::from_utf8_lossy(&jit.stderr)
        )
        .into());
    }
    Ok(())
}

fn regression_trial(script: &Path, tests: &[&str]) -> Result<(), Failed> {
    let mut args = vec!["-m", "test"];
    args.extend_from_slice(tests);
    let output = run(script, &args)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("All {} tests OK.", tests.len());
    if !output.status.success() || !stdout.contains(&expected) {
        return Err(format!(
            "CPython's regression tests failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for (mode, flags) in MODES {
        for archive in ARCHIVES {
            let name = format!("cpython::{mode}::{archive}");
            trials.push(Trial::test(format!("{name}::print"), move || {
                let script = python_script(mode, flags, archive)?;
                let output = run(&script, &["-c", "print(6*7)"])?;
                if output.stdout != b"42\n" || !output.status.success() {
                    return Err(format!("{output:?}").into());
                }
                Ok(())
            }));
            trials.push(Trial::test(
                format!("{name}::extension_modules"),
                move || extensions_trial(&python_script(mode, flags, archive)?),
            ));
            // The full list in two modes (one per archive), the short one in the rest.
            let full = matches!(
                (mode, archive),
                ("in-process", "libpython3.11.a") | ("remote-shared", "libpython3.11-pic.a")
            );
            let tests: &'static [&'static str] = if full {
                &REGRESSION_TESTS
            } else {
                &SHORT_REGRESSION_TESTS
            };
            trials.push(Trial::test(
                format!("{name}::regression_tests"),
                move || regression_trial(&python_script(mode, flags, archive)?, tests),
            ));
        }
    }
    trials.push(Trial::test("cpython::non_pic_stderr_and_environ", || {
        // Copy relocations for stdout, stderr and environ, which the non-PIC build reads
        // directly.
        let script = python_script("stderr", &[], "libpython3.11.a")?;
        let program = "import os, sys\nprint(6*7)\nprint('to stderr', file=sys.stderr)\nos.environ['X_RJIT'] = '1'\nprint('PATH' in os.environ, os.getenv('X_RJIT'))";
        let output = run(&script, &["-c", program])?;
        if output.stdout != b"42\nTrue 1\n" || output.stderr != b"to stderr\n" {
            return Err(format!("{output:?}").into());
        }
        Ok(())
    }));
    libtest_mimic::run(&args, trials).exit();
}
