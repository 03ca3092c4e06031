//! What the facade's tests share: C and assembly compiled with the system's tools into a
//! scratch directory that the test removes.

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "api-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// `source` compiled by `cc -c -O1` (plus `flags`) into `name.o`.
    pub fn compile(&self, name: &str, source: &str, flags: &[&str]) -> PathBuf {
        self.build(name, "c", source, "cc", &["-c", "-O1"], flags)
    }

    /// C++ `source` compiled by `c++ -c -O1` into `name.o`.
    pub fn compile_cpp(&self, name: &str, source: &str) -> PathBuf {
        self.build(name, "cc", source, "c++", &["-c", "-O1"], &[])
    }

    /// `source` assembled by `as` into `name.o`.
    pub fn assemble(&self, name: &str, source: &str) -> PathBuf {
        self.build(name, "s", source, "as", &[], &[])
    }

    fn build(
        &self,
        name: &str,
        extension: &str,
        source: &str,
        tool: &str,
        args: &[&str],
        flags: &[&str],
    ) -> PathBuf {
        let file = self.0.join(format!("{name}.{extension}"));
        let object = self.0.join(format!("{name}.o"));
        std::fs::write(&file, source).unwrap();
        let output = Command::new(tool)
            .args(args)
            .args(flags)
            .arg(&file)
            .arg("-o")
            .arg(&object)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        object
    }

    /// `objects` put into the archive `name.a` with `ar`.
    pub fn archive(&self, name: &str, objects: &[&Path]) -> PathBuf {
        let archive = self.0.join(format!("{name}.a"));
        let status = Command::new("ar")
            .arg("rcs")
            .arg(&archive)
            .args(objects)
            .status()
            .unwrap();
        assert!(status.success());
        archive
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
