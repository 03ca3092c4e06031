//! [`Unit`]: what one link puts together — objects, archives and libraries, from paths or from
//! memory — and how.

use crate::PluginSwitches;
use rjitlink_link::{InputArg, InputBytes, LinkOptions, SearchPath};
use std::path::{Path, PathBuf};

/// The inputs and options of one link, built up before [`Session::link`](crate::Session::link).
///
/// Inputs are read in the order given, as `ld` reads its command line (archives are searched
/// until nothing more is needed, so their order does not matter). By default the unit links
/// `cc`'s default libraries (libc and libgcc) and has no entry symbol.
///
/// ```
/// # use rjitlink::Unit;
/// let unit = Unit::new()
///     .path("main.o")
///     .bytes("generated.o", vec![0u8; 0])
///     .library("m")
///     .search_dir("/opt/lib")
///     .entry("main");
/// assert_eq!(unit.input_count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Unit {
    inputs: Vec<InputArg>,
    search_dirs: Vec<PathBuf>,
    entry: Option<String>,
    default_libraries: bool,
    export_dynamic: bool,
}

impl Default for Unit {
    fn default() -> Unit {
        Unit::new()
    }
}

impl Unit {
    /// A unit with no inputs yet, cc's default libraries and no entry symbol.
    pub fn new() -> Unit {
        Unit {
            inputs: Vec::new(),
            search_dirs: Vec::new(),
            entry: None,
            default_libraries: true,
            export_dynamic: false,
        }
    }

    /// Add an input by path: a relocatable object (`.o`), a static archive (`.a`, thin too),
    /// a shared library (`.so`, loaded into the target) or a GNU ld script.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Unit {
        self.add_path(path);
        self
    }

    /// [`path`](Self::path), in place.
    pub fn add_path(&mut self, path: impl Into<PathBuf>) -> &mut Unit {
        self.inputs.push(InputArg::Path(path.into()));
        self
    }

    /// Add an object, archive or linker script held in memory (nothing is written to disk).
    /// `name` stands for its path in error messages. Shared libraries must be given by path.
    pub fn bytes(mut self, name: impl Into<PathBuf>, data: impl Into<InputBytes>) -> Unit {
        self.add_bytes(name, data);
        self
    }

    /// [`bytes`](Self::bytes), in place.
    pub fn add_bytes(
        &mut self,
        name: impl Into<PathBuf>,
        data: impl Into<InputBytes>,
    ) -> &mut Unit {
        self.inputs.push(InputArg::Bytes {
            name: name.into(),
            data: data.into(),
        });
        self
    }

    /// Add `-l NAME`: `libNAME.so` (loaded into the target) or `libNAME.a`, searched in the
    /// [`search_dir`](Self::search_dir)s, then gcc's and the system's; `:FILE` names a file.
    pub fn library(mut self, name: impl Into<String>) -> Unit {
        self.add_library(name);
        self
    }

    /// [`library`](Self::library), in place.
    pub fn add_library(&mut self, name: impl Into<String>) -> &mut Unit {
        self.inputs.push(InputArg::Library(name.into()));
        self
    }

    /// Add `-L DIR`: search `dir` for libraries, before the system's directories (in the
    /// order added, whenever added).
    pub fn search_dir(mut self, dir: impl Into<PathBuf>) -> Unit {
        self.add_search_dir(dir);
        self
    }

    /// [`search_dir`](Self::search_dir), in place.
    pub fn add_search_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Unit {
        self.search_dirs.push(dir.into());
        self
    }

    /// The symbol the unit's program starts at (`main` for a C program), which must then be
    /// defined by the unit; needed by [`Session::run_main`](crate::Session::run_main) and
    /// [`Session::run_program`](crate::Session::run_program).
    pub fn entry(mut self, symbol: impl Into<String>) -> Unit {
        self.set_entry(Some(symbol.into()));
        self
    }

    /// [`entry`](Self::entry), in place; `None` for none.
    pub fn set_entry(&mut self, symbol: Option<String>) -> &mut Unit {
        self.entry = symbol;
        self
    }

    /// Whether to link libc and libgcc as `cc` does (the default), or nothing unasked
    /// (`-nostdlib`): names the unit leaves undefined then come from earlier units, absolute
    /// definitions, libraries named explicitly, and the host's symbols if the session sees
    /// them.
    pub fn default_libraries(mut self, link: bool) -> Unit {
        self.set_default_libraries(link);
        self
    }

    /// [`default_libraries`](Self::default_libraries), in place.
    pub fn set_default_libraries(&mut self, link: bool) -> &mut Unit {
        self.default_libraries = link;
        self
    }

    /// Make the unit's global definitions visible to libraries loaded later (`cc -rdynamic`).
    /// Such a unit's memory stays live when freed: the loader keeps serving its symbols.
    pub fn export_dynamic(mut self, export: bool) -> Unit {
        self.set_export_dynamic(export);
        self
    }

    /// [`export_dynamic`](Self::export_dynamic), in place.
    pub fn set_export_dynamic(&mut self, export: bool) -> &mut Unit {
        self.export_dynamic = export;
        self
    }

    /// How many inputs (paths, byte inputs and libraries) were added.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// The options of the link layer for this unit, with the session's plugins.
    pub(crate) fn link_options(
        &self,
        plugins: PluginSwitches,
        jitdump_directory: Option<&Path>,
    ) -> LinkOptions {
        LinkOptions {
            inputs: self.inputs.clone(),
            search: SearchPath::with_system_dirs(self.search_dirs.clone()),
            entry: self.entry.clone(),
            default_libraries: self.default_libraries,
            export_dynamic: self.export_dynamic,
            symbolize: plugins.crash_reports,
            perf_map: plugins.perf_map,
            jitdump: plugins.jitdump,
            jitdump_directory: jitdump_directory.map(Path::to_path_buf),
            debugger_support: plugins.debugger,
        }
    }
}
