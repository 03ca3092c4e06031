//! The executor in the linker's own process: dlopen/dlsym for symbols, a direct call to run.

use crate::{Executor, Interposition, Program, SymbolInfo, SymbolKind};
use anyhow::{bail, Result};
use rjitlink_memory::{InProcessMapper, MemoryMapper, TargetAddr};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;

/// Runs linked code in the current process.
pub struct InProcess {
    mapper: Arc<InProcessMapper>,
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
            mapper: Arc::new(InProcessMapper::new()),
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
    fn memory(&self) -> Arc<dyn MemoryMapper> {
        self.mapper.clone()
    }

    fn load_library(&mut self, path: &Path) -> Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; dlopen runs the library's constructors, which is intended.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            bail!("cannot load {}: {}", path.display(), dlerror_message());
        }
        if self.libraries.contains(&handle) {
            // Loaded by an earlier link of the session: keep one reference and one entry, so
            // lookups do not slow down as a session links more units.
            // SAFETY: the library stays loaded through the reference we already hold.
            unsafe { libc::dlclose(handle) };
        } else {
            self.libraries.push(handle);
        }
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

    fn symbol_info(&mut self, addresses: &[TargetAddr]) -> Result<Vec<Option<SymbolInfo>>> {
        Ok(addresses
            .iter()
            .map(|&address| symbol_info(address))
            .collect())
    }

    fn interpose(&mut self, copies: &[Interposition]) -> Result<()> {
        crate::interpose::interpose(copies)
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

extern "C" {
    fn dladdr1(
        address: *const c_void,
        info: *mut libc::Dl_info,
        extra: *mut *mut c_void,
        flags: c_int,
    ) -> c_int;
}
const RTLD_DL_SYMENT: c_int = 1;

/// The loader's symbol table entry for the symbol at `address`, if it is exactly there.
fn symbol_info(address: TargetAddr) -> Option<SymbolInfo> {
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
