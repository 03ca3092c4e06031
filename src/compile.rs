//! Sources given as inputs (`rjitlink main.c`, `#!` scripts): compiled by the system compiler
//! (`$CC`/`$CXX`, else `cc`/`c++`), several at once, each into an anonymous memory file that the
//! link then maps like any object. Nothing is written to the file system (the compiler runs
//! with `-pipe`, so not even its own temporaries), and the compilers die with rjitlink: nothing
//! outlives the run, whether it ends by an error or a signal.

use anyhow::{anyhow, bail, Result};
use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The language of a source, as its extension (or, for a `#!` script without one, C) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// `.c`, and `#!` scripts without a source extension.
    C,
    /// `.cc`, `.cpp`, `.cxx`, `.C`, ...: compiled by `$CXX` (else `c++`), linked with
    /// libstdc++ and libm.
    Cxx,
    /// `.s`: assembly, not preprocessed.
    Asm,
    /// `.S`: assembly run through the preprocessor.
    AsmWithCpp,
}

impl Language {
    /// The language of `path` by its extension, as gcc decides it.
    pub fn of_extension(path: &Path) -> Option<Language> {
        match path.extension()?.to_str()? {
            "c" => Some(Language::C),
            "cc" | "cpp" | "cxx" | "C" | "c++" | "cp" | "CPP" => Some(Language::Cxx),
            "s" => Some(Language::Asm),
            "S" | "sx" => Some(Language::AsmWithCpp),
            _ => None,
        }
    }

    /// The language of an input of the command line, if it is a source: by its extension, or C
    /// for a `#!` script without one (as `tcc -run` takes it).
    pub fn of_input(path: &Path) -> Option<Language> {
        Language::of_extension(path).or_else(|| is_script(path).then_some(Language::C))
    }

    /// gcc's `-x` name for it.
    fn gcc_name(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
            Language::Asm => "assembler",
            Language::AsmWithCpp => "assembler-with-cpp",
        }
    }

    /// The compiler command: `$CXX` or `c++` for C++, `$CC` or `cc` otherwise (either may hold
    /// several words, `ccache gcc`).
    fn compiler(self) -> Vec<OsString> {
        let (variable, default) = match self {
            Language::Cxx => ("CXX", "c++"),
            _ => ("CC", "cc"),
        };
        let words: Vec<OsString> = std::env::var(variable)
            .unwrap_or_default()
            .split_whitespace()
            .map(OsString::from)
            .collect();
        if words.is_empty() {
            vec![default.into()]
        } else {
            words
        }
    }
}

/// Whether `path` is a regular file whose first line starts with `#!`: a script to run.
pub fn is_script(path: &Path) -> bool {
    let mut start = [0u8; 2];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && File::open(path)
            .and_then(|mut f| f.read_exact(&mut start))
            .is_ok()
        && start == *b"#!"
}

/// One compiled source: its object in a memory file, named by a path the link can open.
pub struct CompiledObject {
    /// The source as given.
    pub source: PathBuf,
    /// The memory file the compiler wrote the object into.
    file: File,
}

impl CompiledObject {
    /// The source and the object's bytes; the memory file is closed.
    pub fn into_source_and_bytes(self) -> Result<(PathBuf, Vec<u8>)> {
        let mut file = self.file;
        let mut bytes = Vec::new();
        file.seek(std::io::SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| {
                anyhow!(
                    "cannot read the object compiled from {}: {e}",
                    self.source.display()
                )
            })?;
        Ok((self.source, bytes))
    }
}

/// An anonymous memory file, closed on exec (a compiler gets it explicitly).
fn memory_file(name: &str) -> Result<File> {
    let name = CString::new(format!("rjitlink:{name}")).unwrap_or_default();
    // SAFETY: a valid C string; the descriptor returned is ours alone.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        bail!(
            "cannot create a memory file for a compiled object: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A compiler at work on one source.
struct Job<'a> {
    source: &'a Path,
    object: File,
    /// Where the compiler's messages go when several compile at once (shown whole, in the
    /// order of the sources, once it is done); `None`: straight to rjitlink's stderr.
    messages: Option<File>,
    child: Child,
    /// Feeds a script, its `#!` line hidden, to the compiler's stdin.
    feeder: Option<std::thread::JoinHandle<()>>,
}

/// The text a script is compiled from: its first line (`#!...`) replaced by a `#line`
/// directive, so that the compiler never sees it and names the script and its real line
/// numbers in its messages and debug information.
fn script_text(source: &Path, text: &[u8]) -> Vec<u8> {
    let rest = match text.iter().position(|&b| b == b'\n') {
        Some(end) => &text[end + 1..],
        None => &[][..],
    };
    let name = source
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let mut out = format!("#line 2 \"{name}\"\n").into_bytes();
    out.extend_from_slice(rest);
    out
}

/// Start compiling `source` into a fresh memory file.
fn start<'a>(
    source: &'a Path,
    language: Language,
    flags: &[OsString],
    capture_messages: bool,
) -> Result<Job<'a>> {
    let name = source
        .file_stem()
        .map(|stem| format!("{}.o", stem.to_string_lossy()))
        .unwrap_or_else(|| "object.o".to_owned());
    let object = memory_file(&name)?;
    let fd = object.as_raw_fd();
    let compiler = language.compiler();
    let mut command = Command::new(&compiler[0]);
    command
        .args(&compiler[1..])
        .args(["-c", "-pipe"])
        .args(flags);
    // A script (not plain assembly, where `#!` is a comment already) is read from stdin with
    // its first line hidden; its own directory stays first for `#include "..."`.
    let script = language != Language::Asm && is_script(source);
    let script_text = if script {
        let text =
            std::fs::read(source).map_err(|e| anyhow!("cannot read {}: {e}", source.display()))?;
        command
            .arg("-iquote")
            .arg(match source.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            })
            .args(["-x", language.gcc_name(), "-"])
            .stdin(Stdio::piped());
        Some(script_text(source, &text))
    } else {
        command.arg("-x").arg(language.gcc_name()).arg(source);
        command.stdin(Stdio::null());
        None
    };
    command.arg("-o").arg(format!("/dev/fd/{fd}"));
    let messages = if capture_messages {
        let file = memory_file("messages")?;
        command.stderr(file.try_clone()?);
        Some(file)
    } else {
        None
    };
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // The compiler (and the assembler it runs) writes the object through this
            // descriptor; it dies with rjitlink (SIGTERM lets gcc remove what it made).
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        anyhow!(
            "cannot run {} to compile {}: {e} (set {} to the compiler to use)",
            compiler[0].to_string_lossy(),
            source.display(),
            if language == Language::Cxx {
                "CXX"
            } else {
                "CC"
            }
        )
    })?;
    let feeder = match (script_text, child.stdin.take()) {
        (Some(text), Some(mut stdin)) => Some(std::thread::spawn(move || {
            // A compiler that stops reading has failed and says so: nothing to add here.
            let _ = stdin.write_all(&text);
        })),
        _ => None,
    };
    Ok(Job {
        source,
        object,
        messages,
        child,
        feeder,
    })
}

/// Compile every source in `sources` with `flags`, at most as many at once as there are CPUs.
/// The compilers' messages reach stderr as they printed them (in the order of the sources
/// when several run at once). Err after every compiler has finished if any failed (its
/// messages shown), or at once if one cannot be started (the others are ended).
pub fn compile_all(
    sources: &[(PathBuf, Language)],
    flags: &[OsString],
) -> Result<Vec<CompiledObject>> {
    let parallel = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sources.len())
        .max(1);
    let capture_messages = sources.len() > 1;
    let mut pending = sources.iter();
    let mut running: VecDeque<Job> = VecDeque::new();
    let mut compiled = Vec::with_capacity(sources.len());
    let mut failed: Vec<String> = Vec::new();
    loop {
        while running.len() < parallel {
            let Some((source, language)) = pending.next() else {
                break;
            };
            match start(source, *language, flags, capture_messages) {
                Ok(job) => running.push_back(job),
                Err(e) => {
                    for mut job in running {
                        let _ = job.child.kill();
                        let _ = job.child.wait();
                    }
                    return Err(e);
                }
            }
        }
        let Some(mut job) = running.pop_front() else {
            break;
        };
        let status = job.child.wait()?;
        if let Some(feeder) = job.feeder.take() {
            let _ = feeder.join();
        }
        if let Some(mut messages) = job.messages.take() {
            let mut text = Vec::new();
            messages.rewind()?;
            messages.read_to_end(&mut text)?;
            let _ = std::io::stderr().write_all(&text);
        }
        if status.success() {
            compiled.push(CompiledObject {
                source: job.source.to_owned(),
                file: job.object,
            });
        } else {
            failed.push(job.source.display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!(CompileFailed(failed));
    }
    Ok(compiled)
}

/// Sources the compiler rejected (it has said why), as given on the command line.
#[derive(Debug)]
pub struct CompileFailed(pub Vec<String>);

impl std::fmt::Display for CompileFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot compile {}", self.0.join(", "))
    }
}

impl std::error::Error for CompileFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension() {
        for (name, language) in [
            ("a.c", Some(Language::C)),
            ("a.cc", Some(Language::Cxx)),
            ("a.cpp", Some(Language::Cxx)),
            ("a.cxx", Some(Language::Cxx)),
            ("a.C", Some(Language::Cxx)),
            ("a.s", Some(Language::Asm)),
            ("a.S", Some(Language::AsmWithCpp)),
            ("a.o", None),
            ("liba.so", None),
        ] {
            assert_eq!(Language::of_extension(Path::new(name)), language, "{name}");
        }
    }

    #[test]
    fn script_line_is_hidden_with_line_numbers_kept() {
        let text = script_text(
            Path::new("dir/my \"s\".c"),
            b"#!/usr/bin/env -S rjitlink\nint x;\n",
        );
        assert_eq!(text, b"#line 2 \"dir/my \\\"s\\\".c\"\nint x;\n");
        assert_eq!(script_text(Path::new("a.c"), b"#!x"), b"#line 2 \"a.c\"\n");
    }
}
