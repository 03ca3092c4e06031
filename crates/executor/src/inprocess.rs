//! The executor in the linker's own process: dlopen/dlsym for symbols, a direct call to run.

use crate::{Executor, Program};
use anyhow::{bail, Result};
use rjitlink_memory::{InProcessMapper, MemoryMapper, TargetAddr};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// Runs linked code in the current process.
pub struct InProcess {
    mapper: InProcessMapper,
    /// dlopen handles, in load order: lookups search them in this order.
    libraries: Vec<*mut c_void>,
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcess {
    pub fn new() -> Self {
        InProcess {
            mapper: InProcessMapper::new(),
            libraries: Vec::new(),
        }
    }
}

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

type InitFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);
type MainFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
type FiniFn = unsafe extern "C" fn();

/// The program's fini functions, run by an atexit handler registered before its init functions
/// so that, as in a normal process, handlers the program registers itself run first.
static FINI_FUNCTIONS: OnceLock<Vec<u64>> = OnceLock::new();

extern "C" fn run_fini_functions() {
    for &address in FINI_FUNCTIONS.get().map(Vec::as_slice).unwrap_or_default() {
        // SAFETY: the linker resolved these addresses to functions in finalized code.
        unsafe { std::mem::transmute::<u64, FiniFn>(address)() };
    }
}

impl Executor for InProcess {
    fn memory(&self) -> &dyn MemoryMapper {
        &self.mapper
    }

    fn load_library(&mut self, path: &Path) -> Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; dlopen runs the library's constructors, which is intended.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            bail!("cannot load {}: {}", path.display(), dlerror_message());
        }
        self.libraries.push(handle);
        Ok(())
    }

    fn lookup(&mut self, names: &[&[u8]]) -> Result<Vec<Option<TargetAddr>>> {
        let mut name_buffer = Vec::new();
        Ok(names
            .iter()
            .map(|name| {
                name_buffer.clear();
                name_buffer.extend_from_slice(name);
                name_buffer.push(0);
                self.libraries.iter().find_map(|&handle| {
                    // SAFETY: a live handle and a NUL-terminated name.
                    let address =
                        unsafe { libc::dlsym(handle, name_buffer.as_ptr() as *const c_char) };
                    (!address.is_null()).then_some(TargetAddr(address as u64))
                })
            })
            .collect())
    }

    fn run(&mut self, program: &Program) -> Result<i32> {
        let args = program
            .args
            .iter()
            .map(|arg| CString::new(arg.as_slice()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const c_char> = args.iter().map(|arg| arg.as_ptr()).collect();
        argv.push(std::ptr::null());
        let argc = c_int::try_from(args.len())?;
        extern "C" {
            static environ: *const *const c_char;
        }
        if FINI_FUNCTIONS
            .set(program.fini.iter().map(|a| a.get()).collect())
            .is_err()
        {
            bail!("a program has already run in this process");
        }
        // SAFETY: everything below calls into code the linker produced for this purpose. The
        // argv strings live until exit because this function never returns.
        unsafe {
            let envp = environ;
            libc::atexit(run_fini_functions);
            for init in &program.init {
                std::mem::transmute::<u64, InitFn>(init.get())(argc, argv.as_ptr(), envp);
            }
            let main = std::mem::transmute::<u64, MainFn>(program.entry.get());
            let status = main(argc, argv.as_ptr(), envp);
            libc::exit(status)
        }
    }
}
