//! CPython as a stress test: Debian's libpython3.11-dev ships python.o and the static
//! libpython3.11-pic.a; linked by rjitlink they must be a working interpreter.
//! (The non-PIC archive needs the below-2-GiB slab and copy relocations: see the memory issue.)

use std::path::PathBuf;
use std::process::Command;

fn config_dir() -> PathBuf {
    let output = Command::new("/usr/bin/python3.11-config")
        .arg("--configdir")
        .output()
        .expect("python3.11-config is missing: install libpython3.11-dev (.ci/run does)");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn run_python(archive: &str, args: &[&str]) -> std::process::Output {
    let dir = config_dir();
    Command::new(env!("CARGO_BIN_EXE_rjitlink"))
        .arg("run")
        .arg(dir.join("python.o"))
        .arg(dir.join(archive))
        .args(["-lm", "-lz", "-lexpat", "--"])
        .args(args)
        .output()
        .expect("cannot run rjitlink")
}

#[test]
fn pic_archive_runs_python_code() {
    let output = run_python("libpython3.11-pic.a", &["-c", "print(6*7)"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "42\n",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn pic_archive_runs_the_standard_library() {
    // Pure-Python modules only: extension modules need --export-dynamic (a later issue).
    let program = "import textwrap, functools, collections, re\n\
                   c = collections.Counter('mississippi')\n\
                   print(sorted(c.items()), functools.reduce(lambda a, b: a * b, range(1, 20)), re.sub(r'(s+)', '<\\\\1>', 'mississippi'))\n\
                   raise SystemExit(3)";
    let output = run_python("libpython3.11-pic.a", &["-c", program]);
    let expected = Command::new("/usr/bin/python3.11")
        .args(["-c", program])
        .output()
        .expect("python3.11 is missing");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&expected.stdout),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn non_pic_archive_runs_python_code() {
    // 32-bit absolute addresses (placed below 2 GiB) and copy relocations for stdout, stderr,
    // stdin and environ, which the interpreter reads directly.
    let program = "import os, sys\nprint(6*7)\nprint('to stderr', file=sys.stderr)\nprint('PATH' in os.environ)";
    let output = run_python("libpython3.11.a", &["-c", program]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "42\nTrue\n",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "to stderr\n");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn both_archives_run_in_a_remote_executor_with_shared_and_copied_memory() {
    for archive in ["libpython3.11.a", "libpython3.11-pic.a"] {
        for memory in ["--memory=shared", "--memory=copy"] {
            let dir = config_dir();
            let output = Command::new(env!("CARGO_BIN_EXE_rjitlink"))
                .args(["run", "--executor=remote", memory])
                .arg(dir.join("python.o"))
                .arg(dir.join(archive))
                .args(["-lm", "-lz", "-lexpat", "--", "-c", "print(6*7)"])
                .output()
                .expect("cannot run rjitlink");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                "42\n",
                "{archive} {memory}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(output.status.code(), Some(0));
        }
    }
}
