//! What the C API's tests share: where `librjitlink.so` is, and a scratch directory.

use std::path::PathBuf;

/// The directory holding `librjitlink.so`, built now if it is not up to date: cargo builds a
/// library that is only a cdylib for no test target, so the tests ask for it themselves (cargo
/// holds no lock on the target directory while tests run). Built with the test's own profile,
/// in its own target directory.
pub fn library_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test>
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let target_dir = profile_dir.parent().unwrap();
            let mut cargo = std::process::Command::new(env!("CARGO"));
            cargo
                .args(["build", "--quiet", "-p", "rjitlink-capi", "--target-dir"])
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().unwrap() == "release" {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("cargo runs");
            assert!(status.success(), "cargo build -p rjitlink-capi failed");
            assert!(profile_dir.join("librjitlink.so").is_file());
            profile_dir.to_path_buf()
        })
        .clone()
}

/// The `rjitlink` binary (the command line, which serves as a spawned executor), built now if
/// it is not up to date, as `library_dir` builds the library.
#[allow(dead_code)] // header.rs has no use for it
pub fn rjitlink_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "-p",
            "rjitlink-cli",
            "--bin",
            "rjitlink",
            "--target-dir",
        ])
        .arg(profile_dir.parent().unwrap())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().unwrap() == "release" {
        cargo.arg("--release");
    }
    assert!(cargo.status().expect("cargo runs").success());
    profile_dir.join("rjitlink")
}

/// A fresh directory for one test, removed by the test when it passes.
#[allow(dead_code)] // header.rs has no use for it
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
