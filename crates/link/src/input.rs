//! Finding and mapping the link's inputs: paths, `-l` searches, GNU ld scripts (Debian's
//! libc.so and libm.so are text files naming the real libraries), and the libraries `cc` links
//! by default. Everything is mmapped once here; later phases borrow from `LinkInputs`.

use crate::error::{escape_path, LinkError};
use crate::timing::PhaseTimes;
use memmap2::Mmap;
use object::read::archive::ArchiveFile;
use rjitlink_arch::{Arch, HostArch};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One input as given on the command line, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputArg {
    /// An object, archive, shared library or linker script named by path.
    Path(PathBuf),
    /// `-l NAME`: `libNAME.so` or `libNAME.a` found in the search path; `-l :FILE` names FILE.
    Library(String),
    /// An object, archive or linker script held in memory (a host that compiled it need not
    /// write a file). `name` stands for its path in messages (and, for a thin archive or a
    /// linker script, is what relative names are taken relative to). Shared libraries must be
    /// given by path: the target's loader opens them.
    Bytes {
        /// What messages call the input.
        name: PathBuf,
        /// Its contents.
        data: InputBytes,
    },
}

/// The contents of an input given in memory: shared, so that linking it again (or cloning the
/// options) copies nothing. Its `Debug` shows the length, not the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct InputBytes(pub Arc<[u8]>);

impl std::fmt::Debug for InputBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InputBytes({} bytes)", self.0.len())
    }
}

impl<T: Into<Arc<[u8]>>> From<T> for InputBytes {
    fn from(bytes: T) -> InputBytes {
        InputBytes(bytes.into())
    }
}

/// Where `-l` looks, in order: the `-L` directories, then the system's.
#[derive(Clone, Debug)]
pub struct SearchPath {
    /// The directories searched, in order.
    pub dirs: Vec<PathBuf>,
    /// gcc's private library directory (holds libgcc.a), when gcc is installed.
    pub gcc_dir: Option<PathBuf>,
}

impl Default for SearchPath {
    /// The system's directories only: [`SearchPath::with_system_dirs`] with no `-L`.
    fn default() -> SearchPath {
        SearchPath::with_system_dirs(Vec::new())
    }
}

impl SearchPath {
    /// The `-L` directories followed by gcc's directory and the system directories, as cc
    /// passes them to ld.
    pub fn with_system_dirs(user_dirs: Vec<PathBuf>) -> SearchPath {
        let gcc_dir = find_gcc_dir();
        let mut dirs = user_dirs;
        dirs.extend(gcc_dir.clone());
        dirs.extend(HostArch::LIBRARY_DIRS.iter().map(PathBuf::from));
        SearchPath { dirs, gcc_dir }
    }

    fn find_library(&self, name: &str) -> Option<PathBuf> {
        let candidates: Vec<String> = match name.strip_prefix(':') {
            Some(exact) => vec![exact.to_owned()],
            None => vec![format!("lib{name}.so"), format!("lib{name}.a")],
        };
        self.dirs.iter().find_map(|dir| {
            candidates
                .iter()
                .map(|file| dir.join(file))
                .find(|path| path.is_file())
        })
    }
}

/// The newest gcc version directory (`/usr/lib/gcc/TRIPLE/N`) that holds libgcc.a.
fn find_gcc_dir() -> Option<PathBuf> {
    let base = Path::new(HostArch::GCC_LIBRARY_ROOT);
    std::fs::read_dir(base)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let dir = entry.path();
            dir.join("libgcc.a").is_file().then_some((version, dir))
        })
        .max()
        .map(|(_, dir)| dir)
}

/// The inputs `cc` links without being asked: libc (through its linker script, which adds
/// libc_nonshared.a) and libgcc.a's helpers (`__udivti3`, `__divsc3`, ...).
pub fn default_inputs(search: &SearchPath) -> Vec<InputArg> {
    let mut inputs = vec![InputArg::Library("c".to_owned())];
    if let Some(gcc_dir) = &search.gcc_dir {
        inputs.push(InputArg::Path(gcc_dir.join("libgcc.a")));
    }
    inputs
}

/// What a mapped file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Object,
    Archive,
}

/// The bytes of an input: a file mapped read-only, or bytes the caller gave.
enum FileBytes {
    Mapped(Mmap),
    Given(Arc<[u8]>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Given(bytes) => bytes,
        }
    }
}

/// A mapped object or archive.
pub struct MappedFile {
    pub path: PathBuf,
    pub kind: FileKind,
    map: FileBytes,
    /// For a thin archive: each member's own file, by member name.
    pub thin_members: Vec<(Vec<u8>, MappedBytes)>,
}

impl MappedFile {
    pub fn data(&self) -> &[u8] {
        &self.map
    }
}

/// The bytes of a whole file, mapped read-only.
pub struct MappedBytes(Mmap);

impl MappedBytes {
    pub fn data(&self) -> &[u8] {
        &self.0
    }
}

/// A shared library to load into the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedLibrary {
    pub path: PathBuf,
    /// Named inside `AS_NEEDED(...)`: loaded only if symbols remain unresolved without it.
    pub as_needed: bool,
}

/// Every input of a link, mapped. Owns the maps that all later phases borrow from.
#[derive(Default)]
pub struct LinkInputs {
    pub files: Vec<MappedFile>,
    pub shared_libraries: Vec<SharedLibrary>,
}

impl LinkInputs {
    /// Map every input, following `-l` searches and linker scripts, in command-line order.
    pub fn open(
        args: &[InputArg],
        search: &SearchPath,
        times: &PhaseTimes,
    ) -> Result<LinkInputs, LinkError> {
        let _span = times.span("inputs");
        let mut inputs = LinkInputs::default();
        let mut scripts = ScriptExpansion::default();
        for arg in args {
            match arg {
                InputArg::Path(path) => inputs.add_path(path, search, false, &mut scripts)?,
                InputArg::Bytes { name, data } => inputs.add_bytes(
                    name,
                    FileBytes::Given(data.0.clone()),
                    search,
                    false,
                    &mut scripts,
                )?,
                InputArg::Library(name) => {
                    let path =
                        search
                            .find_library(name)
                            .ok_or_else(|| LinkError::LibraryNotFound {
                                name: name.clone(),
                                script: None,
                            })?;
                    inputs.add_path(&path, search, false, &mut scripts)?;
                }
            }
        }
        Ok(inputs)
    }

    fn add_path(
        &mut self,
        path: &Path,
        search: &SearchPath,
        as_needed: bool,
        scripts: &mut ScriptExpansion,
    ) -> Result<(), LinkError> {
        let map = FileBytes::Mapped(map_file(path)?);
        self.add_bytes(path, map, search, as_needed, scripts)
    }

    /// Add an input whose bytes are at hand: mapped from `path`, or given under that name.
    fn add_bytes(
        &mut self,
        path: &Path,
        map: FileBytes,
        search: &SearchPath,
        as_needed: bool,
        scripts: &mut ScriptExpansion,
    ) -> Result<(), LinkError> {
        let data: &[u8] = &map;
        if data.starts_with(b"\x7fELF") {
            // e_type is at the same offset in ELF32 and ELF64 headers.
            let e_type = data.get(16..18).map(|b| u16::from_le_bytes([b[0], b[1]]));
            match e_type {
                Some(object::elf::ET_REL) => self.push_file(path, FileKind::Object, map),
                Some(object::elf::ET_DYN) if matches!(map, FileBytes::Given(_)) => {
                    return Err(LinkError::input(
                        escape_path(path),
                        "a shared library given as bytes cannot be loaded: give its path",
                    ))
                }
                Some(object::elf::ET_DYN) => self.shared_libraries.push(SharedLibrary {
                    path: loadable_path(path),
                    as_needed,
                }),
                Some(other) => {
                    return Err(LinkError::input(
                        escape_path(path),
                        format!("not a relocatable object or shared library (ELF e_type {other})"),
                    ))
                }
                None => return Err(LinkError::input(escape_path(path), "truncated ELF header")),
            }
        } else if data.starts_with(b"!<arch>\n") || data.starts_with(b"!<thin>\n") {
            let thin_members = if data.starts_with(b"!<thin>\n") {
                map_thin_members(path, data)?
            } else {
                Vec::new()
            };
            self.files.push(MappedFile {
                path: path.to_owned(),
                kind: FileKind::Archive,
                map,
                thin_members,
            });
        } else if let Some(script) = linker_script_text(data) {
            scripts.enter(path)?;
            let entries = parse_linker_script(script).map_err(|problem| {
                LinkError::input(
                    escape_path(path),
                    format!("cannot parse linker script: {problem}"),
                )
            })?;
            for entry in entries {
                scripts.count_input(path)?;
                let entry_path =
                    match &entry.name {
                        ScriptName::Library(name) => {
                            search
                                .find_library(name)
                                .ok_or_else(|| LinkError::LibraryNotFound {
                                    name: name.clone(),
                                    script: Some(path.to_owned()),
                                })?
                        }
                        ScriptName::Path(file) => resolve_script_path(file, path, search)
                            .ok_or_else(|| LinkError::ScriptInputNotFound {
                                script: path.to_owned(),
                                file: file.clone(),
                            })?,
                    };
                self.add_path(&entry_path, search, as_needed || entry.as_needed, scripts)?;
            }
            scripts.leave();
        } else if data.is_empty() {
            return Err(LinkError::input(escape_path(path), "file is empty"));
        } else if let Some(problem) = not_linkable(path, data) {
            return Err(LinkError::input(escape_path(path), problem));
        } else {
            return Err(LinkError::input(
                escape_path(path),
                "not an ELF file, archive or linker script",
            ));
        }
        Ok(())
    }

    fn push_file(&mut self, path: &Path, kind: FileKind, map: FileBytes) {
        self.files.push(MappedFile {
            path: path.to_owned(),
            kind,
            map,
            thin_members: Vec::new(),
        });
    }
}

/// How deeply linker scripts may name one another (Debian's libc.so names libraries only).
const MAX_SCRIPT_DEPTH: usize = 8;
/// How many inputs the linker scripts of one link may name in all, counting each time a
/// script is named again. Scripts that name one another several times each grow
/// exponentially with their depth (ten copies at eight levels is 10^8 inputs from a few hundred
/// bytes); this stops them in well under a second.
const MAX_SCRIPT_INPUTS: usize = 10_000;

/// The linker scripts being expanded, outermost first, and how many inputs scripts have named.
#[derive(Default)]
struct ScriptExpansion {
    /// Each as `canonicalize` names it (so that another path to the same file is seen as the
    /// same script), or as given where that fails.
    open: Vec<PathBuf>,
    inputs: usize,
}

impl ScriptExpansion {
    /// Start expanding `script`. Err if it is being expanded already (it names itself,
    /// through others or directly) or if scripts nest too deeply.
    fn enter(&mut self, script: &Path) -> Result<(), LinkError> {
        let canonical = std::fs::canonicalize(script).unwrap_or_else(|_| script.to_owned());
        if let Some(first) = self.open.iter().position(|open| *open == canonical) {
            let chain: Vec<String> = self.open[first..]
                .iter()
                .chain([&canonical])
                .map(|path| escape_path(path))
                .collect();
            return Err(LinkError::input(
                escape_path(script),
                format!("linker script includes itself ({})", chain.join(" -> ")),
            ));
        }
        if self.open.len() >= MAX_SCRIPT_DEPTH {
            return Err(LinkError::input(
                escape_path(script),
                format!(
                    "linker scripts nest more than {MAX_SCRIPT_DEPTH} deep (included from {})",
                    escape_path(self.open.last().map_or(script, PathBuf::as_path))
                ),
            ));
        }
        self.open.push(canonical);
        Ok(())
    }

    fn leave(&mut self) {
        self.open.pop();
    }

    /// Count one input that `script` names. Err past `MAX_SCRIPT_INPUTS`.
    fn count_input(&mut self, script: &Path) -> Result<(), LinkError> {
        self.inputs += 1;
        if self.inputs > MAX_SCRIPT_INPUTS {
            return Err(LinkError::input(
                escape_path(script),
                format!(
                    "linker scripts name more than {MAX_SCRIPT_INPUTS} inputs (scripts that name one another repeatedly?)"
                ),
            ));
        }
        Ok(())
    }
}

/// The path the loader is to open a shared library by. `dlopen` searches the library path
/// for a name without a slash, never the current directory: `libb.so` given as a file means
/// `./libb.so`, as cc links it.
fn loadable_path(path: &Path) -> PathBuf {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        path.to_owned()
    } else {
        Path::new(".").join(path)
    }
}

/// What a file that is no ELF file, archive or linker script is, where it is something a user
/// may well have given by mistake: a source, or LLVM bitcode.
fn not_linkable(path: &Path, data: &[u8]) -> Option<String> {
    // LLVM bitcode, bare or in its wrapper: clang's -flto objects.
    if data.starts_with(b"BC\xc0\xde") || data.starts_with(&[0xde, 0xc0, 0x17, 0x0b]) {
        return Some(
            "LLVM bitcode (clang -flto or -emit-llvm), not machine code: rjitlink does no link-time optimization; compile without -flto"
                .to_owned(),
        );
    }
    let language = match path.extension()?.to_str()? {
        "c" => "a C source",
        "cc" | "cpp" | "cxx" | "C" | "c++" => "a C++ source",
        "s" | "S" => "an assembly source",
        "h" | "hh" | "hpp" => "a header",
        _ => return None,
    };
    Some(format!(
        "{language}, not an object: the linker takes compiled objects (cc -c); `rjitlink run` compiles sources named on its command line, but not named by a linker script or the library API"
    ))
}

/// Open and map a whole input file, read-only.
fn map_file(path: &Path) -> Result<Mmap, LinkError> {
    let io_error = |operation| {
        move |source| LinkError::Io {
            path: path.to_owned(),
            operation,
            source,
        }
    };
    let file = File::open(path).map_err(io_error("open"))?;
    // A directory opens, and then fails to map with ENODEV ("No such device").
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(LinkError::input(
            escape_path(path),
            "is a directory; rjitlink links files: objects, archives, shared libraries, linker scripts and sources",
        ));
    }
    // SAFETY: inputs are not expected to change while we link; like every mmap-based linker,
    // we accept that a concurrent writer could change what we read.
    unsafe { Mmap::map(&file) }.map_err(io_error("map"))
}

/// A thin archive stores only member names: map each member's file, relative to the archive.
fn map_thin_members(path: &Path, data: &[u8]) -> Result<Vec<(Vec<u8>, MappedBytes)>, LinkError> {
    let invalid =
        |e: object::Error| LinkError::input(escape_path(path), format!("invalid archive: {e}"));
    let archive = ArchiveFile::parse(data).map_err(invalid)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut members = Vec::new();
    for member in archive.members() {
        let member = member.map_err(invalid)?;
        let name = member.name();
        let member_path = dir.join(std::str::from_utf8(name).unwrap_or_default());
        let map = map_file(&member_path).map_err(|e| {
            LinkError::input(
                escape_path(path),
                format!(
                    "cannot open thin archive member {}: {e}",
                    escape_path(&member_path)
                ),
            )
        })?;
        members.push((name.to_vec(), MappedBytes(map)));
    }
    Ok(members)
}

/// GNU ld scripts are short ASCII text files.
pub(crate) fn linker_script_text(data: &[u8]) -> Option<&str> {
    if data.len() > 64 * 1024 {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let words = ["GROUP", "INPUT", "OUTPUT_FORMAT", "AS_NEEDED"];
    words.iter().any(|w| text.contains(w)).then_some(text)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScriptName {
    Path(String),
    Library(String),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScriptEntry {
    name: ScriptName,
    as_needed: bool,
}

/// The files a GNU ld script adds through `GROUP(...)`, `INPUT(...)` and `AS_NEEDED(...)`.
/// Other commands (`OUTPUT_FORMAT`, `SEARCH_DIR`, ...) do not add inputs and are skipped.
pub(crate) fn parse_linker_script(text: &str) -> Result<Vec<ScriptEntry>, &'static str> {
    let mut without_comments = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        without_comments.push_str(&rest[..start]);
        let end = rest[start..].find("*/").ok_or("unterminated comment")?;
        without_comments.push(' ');
        rest = &rest[start + end + 2..];
    }
    without_comments.push_str(rest);

    let spaced = without_comments
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace(',', " ");
    let mut tokens = spaced.split_whitespace().peekable();
    let mut entries = Vec::new();
    // Stack of open parentheses: for each, whether it lists input files and whether AS_NEEDED.
    let mut stack: Vec<(bool, bool)> = Vec::new();
    while let Some(token) = tokens.next() {
        match token {
            "(" => return Err("unexpected '('"),
            ")" => {
                stack.pop().ok_or("unbalanced ')'")?;
            }
            _ if tokens.peek() == Some(&"(") => {
                tokens.next();
                let (_, outer_needed) = stack.last().copied().unwrap_or((false, false));
                let lists_files = matches!(token, "GROUP" | "INPUT" | "AS_NEEDED");
                stack.push((lists_files, outer_needed || token == "AS_NEEDED"));
            }
            // Arguments of commands we skip, and top-level words, add no input.
            _ => {
                if let Some(&(true, as_needed)) = stack.last() {
                    let name = match token.strip_prefix("-l") {
                        Some(library) => ScriptName::Library(library.to_owned()),
                        None => ScriptName::Path(token.to_owned()),
                    };
                    entries.push(ScriptEntry { name, as_needed });
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err("unbalanced '('");
    }
    Ok(entries)
}

/// A script names files by absolute path, or relative to the current directory, or as a file to
/// look for in the search path (ld's rules, without sysroot).
fn resolve_script_path(file: &str, script: &Path, search: &SearchPath) -> Option<PathBuf> {
    let direct = PathBuf::from(file);
    if direct.is_file() {
        return Some(direct);
    }
    if direct.is_relative() {
        if let Some(beside) = script.parent().map(|dir| dir.join(file)) {
            if beside.is_file() {
                return Some(beside);
            }
        }
        return search.find_library(&format!(":{file}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_libc_script() {
        let text = "/* GNU ld script\n   Use the shared library, but some functions are only in\n   the static library, so try that secondarily.  */\nOUTPUT_FORMAT(elf64-x86-64)\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/libc_nonshared.a  AS_NEEDED ( /lib64/ld-linux-x86-64.so.2 ) )\n";
        let entries = parse_linker_script(text).unwrap();
        let path = |p: &str, as_needed| ScriptEntry {
            name: ScriptName::Path(p.to_owned()),
            as_needed,
        };
        assert_eq!(
            entries,
            vec![
                path("/lib/x86_64-linux-gnu/libc.so.6", false),
                path("/usr/lib/x86_64-linux-gnu/libc_nonshared.a", false),
                path("/lib64/ld-linux-x86-64.so.2", true),
            ]
        );
    }

    #[test]
    fn parses_libraries_and_rejects_unbalanced() {
        let entries = parse_linker_script("INPUT(-lfoo, bar.o)").unwrap();
        assert_eq!(entries[0].name, ScriptName::Library("foo".to_owned()));
        assert_eq!(entries[1].name, ScriptName::Path("bar.o".to_owned()));
        assert!(parse_linker_script("GROUP ( a.o").is_err());
        assert!(parse_linker_script("GROUP ) a.o").is_err());
        assert!(parse_linker_script("/* open").is_err());
    }
}
