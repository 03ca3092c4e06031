//! What a target process does for the linker, in its own address space: load libraries, look
//! symbols up, describe them, and run a program. `InProcess` calls these directly; the executor
//! server calls them on behalf of a remote linker — one code path for both.

use rjitlink_memory::TargetAddr;
use rjitlink_target::{
    LoadedModule, ModuleHandle, Program, SymbolInfo, SymbolKind, TargetError, WordTable,
};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// Libraries loaded into this process for linked code, in load order.
#[derive(Default)]
pub struct Libraries {
    handles: Vec<*mut c_void>,
    /// Modules from `load_module`, by the handle given out, with their memory files; only
    /// these may be unloaded.
    modules: Vec<(*mut c_void, std::fs::File)>,
    /// The memory files of images loaded for good (`load_image`).
    images: Vec<std::fs::File>,
    /// The process's own global scope (`dlopen(NULL)`: the program and the libraries it
    /// started with), searched after `handles` when the host's symbols are asked for.
    host: Option<*mut c_void>,
}

// SAFETY: dlopen handles are process-global and may be used from any thread.
unsafe impl Send for Libraries {}

fn dlerror_message() -> String {
    // SAFETY: dlerror returns NULL or a valid C string owned by the loader.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown dynamic loader error".to_owned()
    } else {
        // SAFETY: checked non-null above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Libraries {
    /// dlopen with RTLD_NOW | RTLD_GLOBAL. Err names the library and the loader's reason.
    pub fn load(&mut self, path: &Path) -> Result<(), TargetError> {
        self.load_all(&[path])
    }

    /// `load` for each of `paths` in order, up to the first that fails. What the libraries'
    /// constructors do to signals is the program's, as natively: it is noted once around all
    /// the loads (a note is 128 `rt_sigaction` calls, and nothing else on this thread
    /// changes signals between two loads).
    pub fn load_all(&mut self, paths: &[&Path]) -> Result<(), TargetError> {
        let signals = crate::start_state::LibraryLoad::start();
        let loaded = paths.iter().try_for_each(|path| self.load_unobserved(path));
        signals.finish();
        loaded
    }

    /// `load` without noting what the library's constructors change.
    fn load_unobserved(&mut self, path: &Path) -> Result<(), TargetError> {
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; dlopen runs the library's constructors, which is intended.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            let reason = dlerror_message();
            // A library with initial-exec TLS needs static TLS too: the same error as a
            // module's, so that the user gets its hint (and `rjitlink run` its retry).
            if is_static_tls_failure(&reason) {
                return Err(TargetError::StaticTls {
                    name: path.display().to_string(),
                    reason,
                });
            }
            return Err(TargetError::LoadLibrary {
                path: path.to_owned(),
                reason,
            });
        }
        if self.handles.contains(&handle) {
            // Loaded by an earlier link of the session: keep one reference and one entry, so
            // lookups do not slow down as a session links more units.
            // SAFETY: the library stays loaded through the reference we already hold.
            unsafe { libc::dlclose(handle) };
        } else {
            self.handles.push(handle);
        }
        Ok(())
    }

    /// dlopen a shared object from bytes: written to an anonymous memory file and loaded
    /// through /proc/self/fd, so nothing reaches the disk. RTLD_GLOBAL, not kept for lookups.
    pub fn load_image(&mut self, name: &str, image: &[u8]) -> Result<(), TargetError> {
        let (_, file) = open_image(name, image, libc::RTLD_NOW | libc::RTLD_GLOBAL)?;
        self.images.push(file);
        Ok(())
    }

    /// dlopen a generated module from bytes, privately, and read back `table` from its
    /// loaded image. The module's bytes go through a memory file as in `load_image`.
    pub fn load_module(
        &mut self,
        name: &str,
        image: &[u8],
        table: WordTable,
    ) -> Result<LoadedModule, TargetError> {
        table
            .count
            .checked_mul(8)
            .and_then(|len| table.offset.checked_add(len))
            .filter(|&end| end <= image.len() as u64)
            .ok_or_else(|| {
                TargetError::Refused(format!(
                    "cannot load {name}: its word table ({} words at {:#x}) lies outside its {} bytes",
                    table.count,
                    table.offset,
                    image.len()
                ))
            })?;
        let (handle, file) = open_image(name, image, libc::RTLD_NOW | libc::RTLD_LOCAL)?;
        let mut map: *const LinkMap = std::ptr::null();
        // SAFETY: a live handle; RTLD_DI_LINKMAP stores a pointer to the loader's link_map.
        let found = unsafe {
            libc::dlinfo(
                handle,
                libc::RTLD_DI_LINKMAP,
                &mut map as *mut *const LinkMap as *mut c_void,
            )
        };
        if found != 0 || map.is_null() {
            // SAFETY: the handle is live and ours.
            unsafe { libc::dlclose(handle) };
            return Err(TargetError::LoadLibraryImage {
                name: name.to_owned(),
                reason: dlerror_message(),
            });
        }
        // SAFETY: the link_map stays valid while the module is loaded; l_addr is its base, and
        // the table was checked to lie inside the image, which the module maps from its base.
        let words = unsafe {
            let base = (*map).l_addr;
            let start = (base + table.offset as usize) as *const u64;
            (0..table.count as usize)
                .map(|i| start.add(i).read_unaligned())
                .collect()
        };
        self.modules.push((handle, file));
        Ok(LoadedModule {
            handle: ModuleHandle(handle as u64),
            words,
        })
    }

    /// dlclose a module from `load_module`.
    pub fn unload_module(&mut self, module: ModuleHandle) -> Result<(), TargetError> {
        let index = self
            .modules
            .iter()
            .position(|&(handle, _)| handle as u64 == module.0)
            .ok_or_else(|| {
                TargetError::Refused(format!("no module with handle {:#x} is loaded", module.0))
            })?;
        // The memory file closes once the module is unloaded.
        let (handle, _file) = self.modules.swap_remove(index);
        // SAFETY: a handle from dlopen that was not closed yet.
        if unsafe { libc::dlclose(handle) } != 0 {
            return Err(TargetError::Refused(format!(
                "cannot unload module {:#x}: {}",
                module.0,
                dlerror_message()
            )));
        }
        Ok(())
    }

    /// Make the symbols of this process's own global scope (the host program's exported
    /// symbols, then the libraries it was started with) visible to `lookup`, after the
    /// libraries loaded for linked code. Err with the loader's message if it refuses.
    pub fn add_host(&mut self) -> Result<(), TargetError> {
        if self.host.is_some() {
            return Ok(());
        }
        // SAFETY: dlopen(NULL) returns the main program's handle; it loads nothing.
        let handle = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_NOW) };
        if handle.is_null() {
            return Err(TargetError::LoadLibrary {
                path: "(this process)".into(),
                reason: dlerror_message(),
            });
        }
        self.host = Some(handle);
        Ok(())
    }

    /// Each name's address in the first library (in load order) that defines it.
    pub fn lookup<'a>(&self, names: impl IntoIterator<Item = &'a [u8]>) -> Vec<Option<TargetAddr>> {
        let mut buffer = Vec::new();
        names
            .into_iter()
            .map(|name| {
                buffer.clear();
                buffer.extend_from_slice(name);
                buffer.push(0);
                self.handles.iter().chain(&self.host).find_map(|&handle| {
                    // SAFETY: a live handle and a NUL-terminated name.
                    let address = unsafe { libc::dlsym(handle, buffer.as_ptr() as *const c_char) };
                    (!address.is_null()).then_some(TargetAddr(address as u64))
                })
            })
            .collect()
    }
}

/// The head of glibc's `struct link_map` (<link.h>, public ABI): the load base comes first.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
}

/// Whether the loader's `reason` for refusing an object is the lack of static TLS for it
/// (glibc: "cannot allocate memory in static TLS block").
fn is_static_tls_failure(reason: &str) -> bool {
    reason.contains("static TLS")
}

/// dlopen a shared object from bytes: written to an anonymous memory file and loaded through
/// /proc/self/fd, so nothing reaches the disk.
/// dlopen `image` through a memory file; returns the handle and the file. The loader knows an
/// object by the path it was opened under, and returns a loaded object for a path that matches
/// it: the file must stay open while its object is loaded, so that no other image is opened
/// under its /proc/self/fd path meanwhile (a second TLS module would be the first again).
fn open_image(
    name: &str,
    image: &[u8],
    flags: c_int,
) -> Result<(*mut c_void, std::fs::File), TargetError> {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    let c_name = CString::new(name)?;
    // SAFETY: memfd_create returns a new descriptor, owned by the File below.
    let fd = unsafe { libc::memfd_create(c_name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(TargetError::System {
            context: "memfd_create failed".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: a fresh descriptor we own. Kept open while the object is loaded, it is moved
    // out of the program's way.
    let fd = crate::start_state::out_of_the_programs_way(unsafe {
        std::os::fd::OwnedFd::from_raw_fd(fd)
    });
    let mut file = std::fs::File::from(fd);
    file.write_all(image)?;
    let path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    // SAFETY: a valid C string; generated objects have no constructors.
    let handle = unsafe { libc::dlopen(path.as_ptr(), flags) };
    if handle.is_null() {
        let reason = dlerror_message();
        if is_static_tls_failure(&reason) {
            return Err(TargetError::StaticTls {
                name: name.to_owned(),
                reason,
            });
        }
        return Err(TargetError::LoadLibraryImage {
            name: name.to_owned(),
            reason,
        });
    }
    Ok((handle, file))
}

extern "C" {
    fn dladdr1(
        address: *const c_void,
        info: *mut libc::Dl_info,
        extra: *mut *mut c_void,
        flags: c_int,
    ) -> c_int;
}
const RTLD_DL_SYMENT: c_int = 1;

/// The loader's symbol table entry for the symbol at `address`, if one starts exactly there.
pub fn symbol_info(address: TargetAddr) -> Option<SymbolInfo> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let mut symbol: *mut c_void = std::ptr::null_mut();
    // SAFETY: dladdr1 fills `info` and `symbol` for any address, or returns 0.
    let found = unsafe {
        dladdr1(
            address.get() as *const c_void,
            info.as_mut_ptr(),
            &mut symbol,
            RTLD_DL_SYMENT,
        )
    };
    if found == 0 || symbol.is_null() {
        return None;
    }
    // SAFETY: with RTLD_DL_SYMENT, `symbol` points at the library's Elf64_Sym.
    let symbol = unsafe { &*(symbol as *const libc::Elf64_Sym) };
    // SAFETY: dladdr1 succeeded, so `info` is initialized.
    let info = unsafe { info.assume_init() };
    if info.dli_saddr as u64 != address.get() {
        return None;
    }
    let kind = match symbol.st_info & 0xf {
        1 => SymbolKind::Data,          // STT_OBJECT
        2 | 10 => SymbolKind::Function, // STT_FUNC, STT_GNU_IFUNC
        _ => SymbolKind::Other,
    };
    Some(SymbolInfo {
        kind,
        size: symbol.st_size,
    })
}

type InitFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);
type MainFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
type FiniFn = unsafe extern "C" fn();

/// Call a unit's init functions as the C runtime calls them, with argc 0, an empty argv and
/// this process's environment, in order, outside of a program's run.
///
/// # Safety
/// Each address must be an init function of finalized code (the linker's, or checked by the
/// executor service to be code it holds or a library's function).
pub unsafe fn call_initializers(functions: &[TargetAddr]) {
    extern "C" {
        static environ: *const *const c_char;
    }
    let argv: [*const c_char; 1] = [std::ptr::null()];
    for init in functions {
        // SAFETY: the caller's promise; argv lives across the calls, environ is libc's.
        unsafe { std::mem::transmute::<u64, InitFn>(init.get())(0, argv.as_ptr(), environ) };
    }
}

/// Call a unit's fini functions, in order, outside of a program's run.
///
/// # Safety
/// As for `call_initializers`, with fini functions.
pub unsafe fn call_finalizers(functions: &[TargetAddr]) {
    for fini in functions {
        // SAFETY: the caller's promise.
        unsafe { std::mem::transmute::<u64, FiniFn>(fini.get())() };
    }
}

/// The program's fini functions, run by an atexit handler registered before its init functions
/// so that, as in a normal process, handlers the program registers itself run first.
static FINI_FUNCTIONS: OnceLock<Vec<u64>> = OnceLock::new();

extern "C" fn run_fini_functions() {
    for &address in FINI_FUNCTIONS.get().map(Vec::as_slice).unwrap_or_default() {
        // SAFETY: the linker resolved these addresses to functions in finalized code.
        unsafe { std::mem::transmute::<u64, FiniFn>(address)() };
    }
}

/// Called with the exit status as the process exits, after the program's own exit handlers
/// and fini functions and after stdio is flushed; only in the process that ran the program,
/// never in a child it forked (whose exit is not the program's).
pub type ExitObserver = extern "C" fn(c_int, *mut c_void);

extern "C" {
    fn on_exit(function: ExitObserver, argument: *mut c_void) -> c_int;
}

/// The exit observer of `run_program`, and the process it observes.
static EXIT_OBSERVER: OnceLock<(ExitObserver, u32)> = OnceLock::new();

extern "C" fn observe_exit(status: c_int, argument: *mut c_void) {
    // A child the program forked inherits the exit handlers: its exit must not be reported
    // as the program's.
    if let Some(&(observer, pid)) = EXIT_OBSERVER.get() {
        if std::process::id() == pid {
            observer(status, argument);
        }
    }
}

/// Run a linked program in this process as a process runs its main: the signal state and
/// standard descriptors the user started rjitlink with, init functions, the entry with (argc,
/// argv, envp), then `exit` with its status (which runs fini functions and atexit handlers).
/// Never returns. `observer`, if given, sees the exit status last of all; `reporter` gets the
/// report of a crash, if the program asks for one (`Program::crash_report`).
pub fn run_program(
    program: &Program,
    observer: Option<ExitObserver>,
    reporter: crate::crash::Reporter,
) -> Result<std::convert::Infallible, TargetError> {
    let args = program
        .args
        .iter()
        .map(|arg| CString::new(arg.as_slice()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut argv: Vec<*const c_char> = args.iter().map(|arg| arg.as_ptr()).collect();
    argv.push(std::ptr::null());
    let argc = c_int::try_from(args.len()).map_err(TargetError::TooManyArguments)?;
    extern "C" {
        static environ: *const *const c_char;
    }
    if FINI_FUNCTIONS
        .set(program.fini.iter().map(|a| a.get()).collect())
        .is_err()
    {
        return Err(TargetError::AlreadyRan);
    }
    // From here on the program runs: no more errors to return.
    crate::start_state::restore_for_program();
    if program.crash_report {
        crate::crash::install(reporter);
    }
    // SAFETY: everything below calls into code the linker produced for this purpose. The
    // argv strings live until exit because this function never returns.
    unsafe {
        if let Some(observer) = observer {
            if EXIT_OBSERVER.set((observer, std::process::id())).is_ok() {
                // Registered first, so it runs after every other exit handler.
                on_exit(observe_exit, std::ptr::null_mut());
            }
        }
        libc::atexit(run_fini_functions);
        let envp = environ;
        for init in &program.init {
            std::mem::transmute::<u64, InitFn>(init.get())(argc, argv.as_ptr(), envp);
        }
        let main = std::mem::transmute::<u64, MainFn>(program.entry.get());
        let status = main(argc, argv.as_ptr(), envp);
        libc::exit(status)
    }
}
