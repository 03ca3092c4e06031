//! The C API of rjitlink: `librjitlink.so` and `include/rjitlink.h`, the `rjitlink` crate's
//! session operations behind opaque handles, for C and C++ programs (and Python's ctypes).
//!
//! Conventions, the same for every function (the header says them to C callers):
//! - Functions that can fail return an `int` status, `RJITLINK_OK` (0) or `RJITLINK_ERROR`
//!   (-1), or a handle that is NULL on failure. After a failure, [`rjitlink_last_error`] gives
//!   the message (one line, naming file, section, offset and symbol where the error has them)
//!   and [`rjitlink_last_error_kind`] what kind of error it was; both are per thread, and stay
//!   until the next failure on that thread.
//! - Handles are freed by their own `_free` function; NULL is accepted and ignored there.
//! - Strings are NUL-terminated; paths and names are bytes, not necessarily UTF-8.
//! - No panic crosses into C: each function catches one and reports it as an error of kind
//!   `RJITLINK_ERROR_INTERNAL`.

#![deny(missing_docs, missing_debug_implementations)]
// Every function here takes raw pointers from C: their safety contract is the header's,
// stated once above rather than on each function.
#![allow(clippy::missing_safety_doc)]

use rjitlink_facade::{
    Error, LinkError, PluginSwitches, RemoteMemory, Session, TargetAddr, Unit, UnitId,
};
use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Success.
pub const RJITLINK_OK: c_int = 0;
/// Failure: see `rjitlink_last_error`.
pub const RJITLINK_ERROR: c_int = -1;

/// Kinds of error, from `rjitlink_last_error_kind`.
pub mod kind {
    use std::ffi::c_int;
    /// No error has happened on this thread.
    pub const NONE: c_int = 0;
    /// The link failed (an input, a symbol, a relocation).
    pub const LINK: c_int = 1;
    /// Undefined symbols (a link error of its own kind: the most common one).
    pub const UNDEFINED: c_int = 2;
    /// The target failed (executor, library loading, the program killed by a signal).
    pub const TARGET: c_int = 3;
    /// Target memory could not be had.
    pub const MEMORY: c_int = 4;
    /// A symbol looked up is not defined.
    pub const NOT_FOUND: c_int = 5;
    /// A bad argument: NULL, a NUL byte, a unit not live, options that do not go together.
    pub const ARGUMENT: c_int = 6;
    /// The operation needs the in-process executor.
    pub const IN_PROCESS_ONLY: c_int = 7;
    /// A bug in rjitlink (a panic, caught).
    pub const INTERNAL: c_int = 8;
}

thread_local! {
    /// The last failure on this thread: its kind and its message.
    static LAST_ERROR: RefCell<(c_int, Option<CString>)> = const { RefCell::new((kind::NONE, None)) };
}

/// A failure as the C API reports it.
struct Failure {
    kind: c_int,
    message: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let kind = match &error {
            Error::Link(LinkError::Undefined(_)) => kind::UNDEFINED,
            Error::Link(LinkError::Memory(_)) | Error::Memory(_) => kind::MEMORY,
            Error::Link(_) => kind::LINK,
            Error::Target(_) => kind::TARGET,
            Error::SymbolNotFound { .. } => kind::NOT_FOUND,
            Error::InProcessOnly { .. } => kind::IN_PROCESS_ONLY,
            _ => kind::ARGUMENT,
        };
        Failure {
            kind,
            message: error.message(),
        }
    }
}

fn argument(message: impl Into<String>) -> Failure {
    Failure {
        kind: kind::ARGUMENT,
        message: message.into(),
    }
}

fn record(failure: Failure) {
    // A message with a NUL byte (from a name) is cut there rather than lost.
    let bytes: Vec<u8> = failure.message.into_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let message = CString::new(&bytes[..end]).unwrap_or_default();
    // Recording nothing beats a panic when the thread's locals are already gone.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = (failure.kind, Some(message)));
}

/// The message of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("internal error in rjitlink (please report): {text}")
}

/// Run `body`, turning its failure (or panic) into `RJITLINK_ERROR` and the thread's last
/// error.
fn status(body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RJITLINK_OK,
        Ok(Err(failure)) => {
            record(failure);
            RJITLINK_ERROR
        }
        Err(payload) => {
            record(Failure {
                kind: kind::INTERNAL,
                message: panic_message(payload),
            });
            RJITLINK_ERROR
        }
    }
}

/// Run `body`, which makes a handle: the handle, or NULL with the thread's last error set.
fn handle<T>(body: impl FnOnce() -> Result<Box<T>, Failure>) -> *mut T {
    let mut made = None;
    let result = status(|| {
        made = Some(body()?);
        Ok(())
    });
    match made {
        Some(made) if result == RJITLINK_OK => Box::into_raw(made),
        _ => std::ptr::null_mut(),
    }
}

/// `pointer` as a reference, or an argument error naming `what`.
unsafe fn object<'a, T>(pointer: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller passes NULL or a live handle of this type (the header's contract).
    unsafe { pointer.as_mut() }.ok_or_else(|| argument(format!("{what} is NULL")))
}

/// The bytes of a C string, or an argument error naming `what`.
unsafe fn c_bytes<'a>(text: *const c_char, what: &str) -> Result<&'a [u8], Failure> {
    if text.is_null() {
        return Err(argument(format!("{what} is NULL")));
    }
    // SAFETY: a NUL-terminated string (the header's contract).
    Ok(unsafe { CStr::from_ptr(text) }.to_bytes())
}

/// A C string as UTF-8 text (names of symbols, addresses), or an argument error.
unsafe fn c_text<'a>(text: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: as `c_bytes`.
    let bytes = unsafe { c_bytes(text, what) }?;
    std::str::from_utf8(bytes).map_err(|_| argument(format!("{what} is not UTF-8")))
}

/// A C string as a path.
unsafe fn c_path(text: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    // SAFETY: as `c_bytes`.
    Ok(PathBuf::from(OsStr::from_bytes(unsafe {
        c_bytes(text, what)
    }?)))
}

/// The message of the last failure on this thread, or NULL if none happened. Valid until the
/// next failure on this thread; owned by the library (do not free it).
#[no_mangle]
pub extern "C" fn rjitlink_last_error() -> *const c_char {
    // try_with: called while the thread's locals are being destroyed, there is no error to
    // give (and `with` would panic across the FFI boundary).
    LAST_ERROR
        .try_with(|last| {
            last.borrow()
                .1
                .as_ref()
                .map_or(std::ptr::null(), |message| message.as_ptr())
        })
        .unwrap_or(std::ptr::null())
}

/// The kind (`RJITLINK_ERROR_*`) of the last failure on this thread; `RJITLINK_ERROR_NONE`
/// if none happened.
#[no_mangle]
pub extern "C" fn rjitlink_last_error_kind() -> c_int {
    LAST_ERROR
        .try_with(|last| last.borrow().0)
        .unwrap_or(kind::NONE)
}

/// Options of a session, set before `rjitlink_session_new`.
#[derive(Debug, Default)]
pub struct RjitlinkOptions {
    target: Option<Target>,
    memory: Option<RemoteMemory>,
    slab_size: Option<u64>,
    threads: Option<usize>,
    plugins: Option<PluginSwitches>,
    jitdump_directory: Option<PathBuf>,
    host_symbols: bool,
}

/// Where a session's code runs, as the options say.
enum Target {
    Spawn(PathBuf),
    Tcp { address: String, token: Vec<u8> },
}

impl std::fmt::Debug for Target {
    /// The token stays out of it (and so out of logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Spawn(program) => f.debug_tuple("Spawn").field(program).finish(),
            Target::Tcp { address, .. } => f
                .debug_struct("Tcp")
                .field("address", address)
                .field("token", &"<hidden>")
                .finish(),
        }
    }
}

/// New options, all defaults: in process, a 1 GiB slab, the default plugins. NULL on failure.
#[no_mangle]
pub extern "C" fn rjitlink_options_new() -> *mut RjitlinkOptions {
    handle(|| Ok(Box::default()))
}

/// Free options (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_free(options: *mut RjitlinkOptions) {
    if !options.is_null() {
        // SAFETY: a handle from rjitlink_options_new, freed once (the header's contract).
        drop(unsafe { Box::from_raw(options) });
    }
}

/// Run code in a spawned `rjitlink executor`: the rjitlink binary at `program`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_spawn_executor(
    options: *mut RjitlinkOptions,
    program: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (options, program) =
            unsafe { (object(options, "options")?, c_path(program, "program")?) };
        options.target = Some(Target::Spawn(program));
        Ok(())
    })
}

/// Run code in an `rjitlink executor --listen` at `address` (`HOST:PORT`), proving
/// knowledge of `token`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_tcp(
    options: *mut RjitlinkOptions,
    address: *const c_char,
    token: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (options, address, token) = unsafe {
            (
                object(options, "options")?,
                c_text(address, "address")?,
                c_bytes(token, "token")?,
            )
        };
        options.target = Some(Target::Tcp {
            address: address.to_owned(),
            token: token.to_vec(),
        });
        Ok(())
    })
}

/// How bytes reach a remote executor: 0 shared where possible (default), 1 shared, 2 copied.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_remote_memory(
    options: *mut RjitlinkOptions,
    mode: c_int,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let options = unsafe { object(options, "options")? };
        options.memory = Some(match mode {
            0 => RemoteMemory::Auto,
            1 => RemoteMemory::Shared,
            2 => RemoteMemory::Copy,
            _ => {
                return Err(argument(format!(
                    "remote memory mode {mode} is not 0, 1 or 2"
                )))
            }
        });
        Ok(())
    })
}

/// Reserve `bytes` of address space for the session's units.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_slab_size(
    options: *mut RjitlinkOptions,
    bytes: u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        unsafe { object(options, "options")? }.slab_size = Some(bytes);
        Ok(())
    })
}

/// Link on `threads` worker threads of the session's own.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_threads(
    options: *mut RjitlinkOptions,
    threads: u32,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        unsafe { object(options, "options")? }.threads = Some(threads as usize);
        Ok(())
    })
}

/// Exception frames registered with the unwinder (`RJITLINK_PLUGIN_EH_FRAMES`).
pub const RJITLINK_PLUGIN_EH_FRAMES: u32 = 1;
/// A freed unit's exit handlers run (`RJITLINK_PLUGIN_STATIC_DESTRUCTORS`).
pub const RJITLINK_PLUGIN_STATIC_DESTRUCTORS: u32 = 2;
/// Stacks made executable when an input asks (`RJITLINK_PLUGIN_EXECUTABLE_STACK`).
pub const RJITLINK_PLUGIN_EXECUTABLE_STACK: u32 = 4;
/// Debug information published to gdb's JIT interface (`RJITLINK_PLUGIN_DEBUGGER`).
pub const RJITLINK_PLUGIN_DEBUGGER: u32 = 8;
/// Names kept for crash reports, which `rjitlink_run_program` prints
/// (`RJITLINK_PLUGIN_CRASH_REPORTS`).
pub const RJITLINK_PLUGIN_CRASH_REPORTS: u32 = 16;
/// Functions appended to `/tmp/perf-PID.map` (`RJITLINK_PLUGIN_PERF_MAP`).
pub const RJITLINK_PLUGIN_PERF_MAP: u32 = 32;
/// Functions, code and lines appended to perf's jitdump (`RJITLINK_PLUGIN_JITDUMP`).
pub const RJITLINK_PLUGIN_JITDUMP: u32 = 64;
/// The plugins on by default: `PluginSwitches::default()` (`RJITLINK_PLUGINS_DEFAULT`).
pub const RJITLINK_PLUGINS_DEFAULT: u32 = 15;

/// A plugin's switch among the session's.
type Switch = fn(&mut PluginSwitches) -> &mut bool;

/// Every `RJITLINK_PLUGIN_*` bit with its switch.
const PLUGIN_BITS: [(u32, Switch); 7] = [
    (RJITLINK_PLUGIN_EH_FRAMES, |s| &mut s.eh_frames),
    (RJITLINK_PLUGIN_STATIC_DESTRUCTORS, |s| {
        &mut s.static_destructors
    }),
    (RJITLINK_PLUGIN_EXECUTABLE_STACK, |s| {
        &mut s.executable_stack
    }),
    (RJITLINK_PLUGIN_DEBUGGER, |s| &mut s.debugger),
    (RJITLINK_PLUGIN_CRASH_REPORTS, |s| &mut s.crash_reports),
    (RJITLINK_PLUGIN_PERF_MAP, |s| &mut s.perf_map),
    (RJITLINK_PLUGIN_JITDUMP, |s| &mut s.jitdump),
];

/// The switches an OR of `RJITLINK_PLUGIN_*` bits turns on, or an argument error naming
/// bits that are none of them.
fn plugin_switches(plugins: u32) -> Result<PluginSwitches, Failure> {
    let known = PLUGIN_BITS.iter().fold(0, |bits, (bit, _)| bits | bit);
    if plugins & !known != 0 {
        return Err(argument(format!(
            "unknown plugin bits {:#x}",
            plugins & !known
        )));
    }
    let mut switches = PluginSwitches::none();
    for (bit, switch) in PLUGIN_BITS {
        *switch(&mut switches) = plugins & bit != 0;
    }
    Ok(switches)
}

/// The optional plugins on: an OR of `RJITLINK_PLUGIN_*` (`RJITLINK_PLUGINS_DEFAULT` unless
/// set).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_plugins(
    options: *mut RjitlinkOptions,
    plugins: u32,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let options = unsafe { object(options, "options")? };
        options.plugins = Some(plugin_switches(plugins)?);
        Ok(())
    })
}

/// Where the jitdump goes (with `RJITLINK_PLUGIN_JITDUMP`): `jit-PID.dump` in `dir`, rather
/// than perf's default place.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_jitdump_directory(
    options: *mut RjitlinkOptions,
    dir: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (options, dir) = unsafe { (object(options, "options")?, c_path(dir, "directory")?) };
        options.jitdump_directory = Some(dir);
        Ok(())
    })
}

/// Let linked code find the host program's exported symbols by name (in process only).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_options_host_symbols(
    options: *mut RjitlinkOptions,
    visible: c_int,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        unsafe { object(options, "options")? }.host_symbols = visible != 0;
        Ok(())
    })
}

/// A session. Opaque to C.
///
/// A session takes one call at a time: a call made while another is using it — from another
/// thread, or from code the session is running (an initializer, `main`) calling back into
/// rjitlink — is refused with an argument error rather than given a second `&mut` to it.
pub struct RjitlinkSession {
    /// Set while a call uses `session`.
    busy: AtomicBool,
    session: UnsafeCell<Session>,
}

impl std::fmt::Debug for RjitlinkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RjitlinkSession")
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RjitlinkSession {
    fn new(session: Session) -> RjitlinkSession {
        RjitlinkSession {
            busy: AtomicBool::new(false),
            session: UnsafeCell::new(session),
        }
    }
}

/// A session in use by one call; it is free again when this is dropped.
struct InUse<'a> {
    session: &'a mut Session,
    busy: &'a AtomicBool,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

impl std::ops::Deref for InUse<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session
    }
}

impl std::ops::DerefMut for InUse<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session
    }
}

/// The session behind `pointer`, for one call; an argument error if it is NULL or in use.
unsafe fn enter<'a>(pointer: *mut RjitlinkSession) -> Result<InUse<'a>, Failure> {
    // SAFETY: NULL or a live session handle (the header's contract); only shared references
    // to the handle are made, and the session inside is reached only through the flag.
    let handle = unsafe { pointer.as_ref() }.ok_or_else(|| argument("session is NULL"))?;
    if handle.busy.swap(true, Ordering::Acquire) {
        return Err(argument(
            "the session is in use: it takes one call at a time (not from another thread \
             meanwhile, nor from the code it runs)",
        ));
    }
    Ok(InUse {
        // SAFETY: the flag was clear and is now ours: no other reference to the session
        // exists until `InUse` is dropped.
        session: unsafe { &mut *handle.session.get() },
        busy: &handle.busy,
    })
}

/// A new session with `options` (NULL: every default). NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_session_new(
    options: *const RjitlinkOptions,
) -> *mut RjitlinkSession {
    handle(|| {
        let mut builder = Session::builder();
        // SAFETY: NULL or a live options handle (the header's contract).
        if let Some(options) = unsafe { options.as_ref() } {
            match &options.target {
                None => {}
                Some(Target::Spawn(program)) => builder = builder.spawn_executor(program),
                Some(Target::Tcp { address, token }) => builder = builder.tcp(address, token),
            }
            if let Some(memory) = options.memory {
                builder = builder.remote_memory(memory);
            }
            if let Some(size) = options.slab_size {
                builder = builder.slab_size(size);
            }
            if let Some(threads) = options.threads {
                builder = builder.threads(threads);
            }
            if let Some(plugins) = options.plugins {
                builder = builder.plugins(plugins);
            }
            if let Some(dir) = &options.jitdump_directory {
                builder = builder.jitdump_directory(dir);
            }
            builder = builder.host_symbols(options.host_symbols);
        }
        Ok(Box::new(RjitlinkSession::new(builder.build()?)))
    })
}

/// Free a session and every unit still live in it (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_session_free(session: *mut RjitlinkSession) {
    if !session.is_null() {
        // A unit's exit handlers run as it is freed: a panic there must not reach C either.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // A session in use (this is called from code it runs) is not freed under the
            // call using it: it is left alone, with the error recorded.
            // SAFETY: a handle from rjitlink_session_new, freed once (the header's contract).
            match unsafe { enter(session) } {
                Ok(in_use) => {
                    drop(in_use);
                    // SAFETY: as above; no call is using it.
                    drop(unsafe { Box::from_raw(session) })
                }
                Err(failure) => record(failure),
            }
        }));
    }
}

/// The optional plugins of the session's later links: an OR of `RJITLINK_PLUGIN_*`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_session_set_plugins(
    session: *mut RjitlinkSession,
    plugins: u32,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let mut session = unsafe { enter(session)? };
        session.set_plugins(plugin_switches(plugins)?);
        Ok(())
    })
}

/// The inputs of one link. Opaque to C.
#[derive(Debug, Default)]
pub struct RjitlinkUnit(Unit);

/// A new unit with no inputs, cc's default libraries, no entry. NULL on failure.
#[no_mangle]
pub extern "C" fn rjitlink_unit_new() -> *mut RjitlinkUnit {
    handle(|| Ok(Box::default()))
}

/// Free a unit's inputs (NULL is ignored). A linked unit lives on in its session.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_free(unit: *mut RjitlinkUnit) {
    if !unit.is_null() {
        // SAFETY: a handle from rjitlink_unit_new, freed once (the header's contract).
        drop(unsafe { Box::from_raw(unit) });
    }
}

/// Add an object, archive, shared library or linker script by path.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_add_path(
    unit: *mut RjitlinkUnit,
    path: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (unit, path) = unsafe { (object(unit, "unit")?, c_path(path, "path")?) };
        unit.0.add_path(path);
        Ok(())
    })
}

/// Add an object, archive or linker script from `size` bytes at `data` (copied), called
/// `name` in messages.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_add_bytes(
    unit: *mut RjitlinkUnit,
    name: *const c_char,
    data: *const c_void,
    size: usize,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (unit, name) = unsafe { (object(unit, "unit")?, c_path(name, "name")?) };
        if data.is_null() && size != 0 {
            return Err(argument("data is NULL"));
        }
        let bytes: &[u8] = if size == 0 {
            &[]
        } else {
            // SAFETY: `size` readable bytes at `data` (the header's contract).
            unsafe { std::slice::from_raw_parts(data.cast(), size) }
        };
        unit.0.add_bytes(name, bytes.to_vec());
        Ok(())
    })
}

/// Add `-l NAME`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_add_library(
    unit: *mut RjitlinkUnit,
    name: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (unit, name) = unsafe { (object(unit, "unit")?, c_text(name, "library name")?) };
        unit.0.add_library(name);
        Ok(())
    })
}

/// Add `-L DIR`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_add_search_dir(
    unit: *mut RjitlinkUnit,
    dir: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (unit, dir) = unsafe { (object(unit, "unit")?, c_path(dir, "directory")?) };
        unit.0.add_search_dir(dir);
        Ok(())
    })
}

/// The entry symbol (`main`); NULL for none.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_set_entry(
    unit: *mut RjitlinkUnit,
    symbol: *const c_char,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let unit = unsafe { object(unit, "unit")? };
        let symbol = if symbol.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(unsafe { c_text(symbol, "entry")? }.to_owned())
        };
        unit.0.set_entry(symbol);
        Ok(())
    })
}

/// Whether to link libc and libgcc as cc does (nonzero, the default) or not (0).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_unit_set_default_libraries(
    unit: *mut RjitlinkUnit,
    link: c_int,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        unsafe { object(unit, "unit")? }
            .0
            .set_default_libraries(link != 0);
        Ok(())
    })
}

/// Link `unit` into the session; its id goes to `*id` (which may be NULL).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_link(
    session: *mut RjitlinkSession,
    unit: *const RjitlinkUnit,
    id: *mut u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let mut session = unsafe { enter(session)? };
        // SAFETY: as above.
        let unit = unsafe { unit.as_ref() }.ok_or_else(|| argument("unit is NULL"))?;
        let linked = session.link(&unit.0).map_err(Failure::from)?;
        if !id.is_null() {
            // SAFETY: a writable u64 (the header's contract).
            unsafe { *id = linked.id.get() };
        }
        Ok(())
    })
}

/// Give `name` the address `address` in later links and lookups.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_define_absolute(
    session: *mut RjitlinkSession,
    name: *const c_char,
    address: u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (mut session, name) = unsafe { (enter(session)?, c_text(name, "name")?) };
        session.define_absolute(name, TargetAddr(address));
        Ok(())
    })
}

/// Give `name` the address of data at `address` (see the header: reached from anywhere by
/// code compiled with -fPIC, from ±2 GiB otherwise).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_define_absolute_data(
    session: *mut RjitlinkSession,
    name: *const c_char,
    address: u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (mut session, name) = unsafe { (enter(session)?, c_text(name, "name")?) };
        session.define_absolute_data(name, TargetAddr(address));
        Ok(())
    })
}

/// The address of `name` (a live unit's definition, or an absolute one) to `*address`.
/// Fails with `RJITLINK_ERROR_NOT_FOUND` if nothing defines it.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_lookup(
    session: *mut RjitlinkSession,
    name: *const c_char,
    address: *mut u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (session, name) = unsafe { (enter(session)?, c_text(name, "name")?) };
        let found = session.lookup(name).ok_or_else(|| {
            Failure::from(Error::SymbolNotFound {
                name: name.to_owned(),
            })
        })?;
        // SAFETY: as above; NULL is refused.
        *unsafe { object(address, "address")? } = found.get();
        Ok(())
    })
}

/// Run the unit's initializers where its code runs (once).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_run_initializers(
    session: *mut RjitlinkSession,
    unit: u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let mut session = unsafe { enter(session)? };
        Ok(session.run_initializers(UnitId::from_raw(unit))?)
    })
}

/// The `argc` strings at `argv` (NULL if `argc` is 0).
unsafe fn arguments<'a>(argc: c_int, argv: *const *const c_char) -> Result<Vec<&'a [u8]>, Failure> {
    let count = usize::try_from(argc).map_err(|_| argument("argc is negative"))?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if argv.is_null() {
        return Err(argument("argv is NULL"));
    }
    (0..count)
        // SAFETY: `argc` readable pointers at `argv`, each a C string (the header's contract).
        .map(|i| unsafe { c_bytes(*argv.add(i), "an argument") })
        .collect()
}

/// Call the unit's entry as `main(argc, argv, envp)` in this process (initializers first if
/// they have not run); its return value to `*status`.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_run_main(
    session: *mut RjitlinkSession,
    unit: u64,
    argc: c_int,
    argv: *const *const c_char,
    status_out: *mut c_int,
) -> c_int {
    // SAFETY: the header's contract, passed on.
    unsafe {
        run_with_arguments(
            session,
            unit,
            argc,
            argv,
            status_out,
            |session, unit, args| session.run_main(unit, args),
        )
    }
}

/// Run the unit as a program (initializers, entry, exit); its exit status to `*status`. In
/// process, the program's exit ends this process: the call returns only on failure.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_run_program(
    session: *mut RjitlinkSession,
    unit: u64,
    argc: c_int,
    argv: *const *const c_char,
    status_out: *mut c_int,
) -> c_int {
    // SAFETY: the header's contract, passed on.
    unsafe {
        run_with_arguments(
            session,
            unit,
            argc,
            argv,
            status_out,
            |session, unit, args| session.run_program(unit, args),
        )
    }
}

/// `run` (`run_main` or `run_program`) on the unit with the arguments, its status to
/// `*status_out`.
unsafe fn run_with_arguments(
    session: *mut RjitlinkSession,
    unit: u64,
    argc: c_int,
    argv: *const *const c_char,
    status_out: *mut c_int,
    run: impl FnOnce(&mut Session, UnitId, &[&[u8]]) -> Result<i32, rjitlink_facade::Error>,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let (mut session, args) = unsafe { (enter(session)?, arguments(argc, argv)?) };
        let status_out = unsafe { object(status_out, "status")? };
        *status_out = run(&mut session, UnitId::from_raw(unit), &args)?;
        Ok(())
    })
}

/// Run the unit's finalizers where its code runs (once).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_run_finalizers(
    session: *mut RjitlinkSession,
    unit: u64,
) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let mut session = unsafe { enter(session)? };
        Ok(session.run_finalizers(UnitId::from_raw(unit))?)
    })
}

/// Free a unit: its exit handlers run, its memory goes back, its definitions are forgotten.
#[no_mangle]
pub unsafe extern "C" fn rjitlink_free_unit(session: *mut RjitlinkSession, unit: u64) -> c_int {
    status(|| {
        // SAFETY: the header's contract.
        let mut session = unsafe { enter(session)? };
        Ok(session.free(UnitId::from_raw(unit))?)
    })
}

/// How many units of the session are live (0 for a NULL session or one in use).
#[no_mangle]
pub unsafe extern "C" fn rjitlink_live_units(session: *const RjitlinkSession) -> usize {
    // SAFETY: NULL or a live session (the header's contract); `enter` makes no `&mut` to the
    // handle itself.
    match unsafe { enter(session.cast_mut()) } {
        Ok(session) => session.live_units(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        // The hook would print the panic; the message must reach the caller instead.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = status(|| panic!("boom"));
        let made: *mut u8 = handle(|| -> Result<Box<u8>, Failure> { panic!("no handle") });
        std::panic::set_hook(hook);
        assert_eq!(result, RJITLINK_ERROR);
        assert!(made.is_null());
        assert_eq!(rjitlink_last_error_kind(), kind::INTERNAL);
        // SAFETY: set by the failure above, on this thread.
        let message = unsafe { CStr::from_ptr(rjitlink_last_error()) };
        assert_eq!(
            message.to_str().unwrap(),
            "internal error in rjitlink (please report): no handle"
        );
    }

    #[test]
    fn options_do_not_show_the_token() {
        let options = rjitlink_options_new();
        // SAFETY: a live options handle and C strings.
        unsafe {
            assert_eq!(
                rjitlink_options_tcp(
                    options,
                    c"127.0.0.1:7000".as_ptr(),
                    c"secret-0123456789".as_ptr()
                ),
                RJITLINK_OK
            );
            let debug = format!("{:?}", *options);
            assert!(
                debug.contains("127.0.0.1:7000") && !debug.contains("secret"),
                "{debug}"
            );
            rjitlink_options_free(options);
        }
    }

    #[test]
    fn default_plugin_bits_are_the_default_switches() {
        assert_eq!(
            plugin_switches(RJITLINK_PLUGINS_DEFAULT).ok(),
            Some(PluginSwitches::default())
        );
        assert_eq!(plugin_switches(0).ok(), Some(PluginSwitches::none()));
        let perf = plugin_switches(RJITLINK_PLUGIN_PERF_MAP).ok().unwrap();
        assert!(perf.perf_map && !perf.jitdump && !perf.debugger);
    }

    #[test]
    fn a_message_with_a_nul_byte_is_cut_there() {
        record(argument("before\0after"));
        // SAFETY: set just above, on this thread.
        let message = unsafe { CStr::from_ptr(rjitlink_last_error()) };
        assert_eq!(message.to_bytes(), b"before");
    }
}
