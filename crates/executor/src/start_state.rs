//! The program starts as it would natively: the signal state and standard descriptors the user
//! started rjitlink with are put back before it runs ([`restore_for_program`]), no thread of
//! the linker's can take a signal meant for it ([`keep_linker_threads_out`]), and descriptors
//! an executor keeps are out of the way of the program's ([`out_of_the_programs_way`]).
//!
//! Only what rjitlink changed is put back. Libraries the program links are loaded before it
//! runs, and their constructors may install handlers (natively they run before `main` too):
//! those are theirs to keep. So the actions are noted as the first libraries are about to load
//! ([`note_before_libraries`]), and a signal is reset only if its action is still the one
//! noted.

use rjitlink_target::start_state::{self, blocked_signals, signal_set, SIGNALS};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// This process's signal actions and the calling thread's mask and alternate signal stack
/// before any library of the program was loaded: rjitlink's own, and the Rust runtime's.
struct BeforeLibraries {
    /// The handler of each signal (`SIG_DFL`, `SIG_IGN` or a function), by signal number - 1.
    handlers: [usize; 64],
    blocked: u64,
    /// The alternate signal stack (the Rust runtime's for the main thread), if one is set.
    altstack: Option<usize>,
}

static BEFORE_LIBRARIES: OnceLock<BeforeLibraries> = OnceLock::new();

fn alternate_stack() -> Option<usize> {
    let mut stack = std::mem::MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: with no new stack, sigaltstack only stores the current one.
    let stack = unsafe {
        libc::sigaltstack(std::ptr::null(), stack.as_mut_ptr());
        stack.assume_init()
    };
    (stack.ss_flags & libc::SS_DISABLE == 0).then_some(stack.ss_sp as usize)
}

fn handler(signal: c_int) -> Option<usize> {
    start_state::action(signal).map(|action| action.sa_sigaction)
}

/// Note the signal actions before the program's libraries load; only the first call counts.
/// Called as a target starts loading libraries, in the thread that will run the program.
pub(crate) fn note_before_libraries() {
    BEFORE_LIBRARIES.get_or_init(|| {
        let mut handlers = [libc::SIG_DFL; 64];
        for signal in SIGNALS {
            handlers[signal as usize - 1] = handler(signal).unwrap_or(libc::SIG_DFL);
        }
        BeforeLibraries {
            handlers,
            blocked: blocked_signals(),
            altstack: alternate_stack(),
        }
    });
}

/// Put back the state the user started rjitlink with, where rjitlink changed it, in the thread
/// that runs the program: the actions of signals that were at their default or ignored, the
/// signal mask, no alternate signal stack (the Rust runtime's, for its stack overflow handler),
/// and closed standard descriptors.
pub(crate) fn restore_for_program() {
    note_before_libraries();
    let before = BEFORE_LIBRARIES.get().expect("noted just above");
    let startup = start_state::startup();
    for signal in SIGNALS {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        let Some(current) = handler(signal) else {
            continue;
        };
        let wanted = if startup.is_ignored(signal) {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        if current == before.handlers[signal as usize - 1] && current != wanted {
            // SAFETY: a zeroed sigaction with a plain disposition: no flags, no mask.
            unsafe {
                let mut action = std::mem::zeroed::<libc::sigaction>();
                action.sa_sigaction = wanted;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
    if before.altstack.is_some() && alternate_stack() == before.altstack {
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: no handler runs on the stack now (this is not a handler), so it may go.
        unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
    }
    if blocked_signals() == before.blocked {
        set_blocked(startup.blocked);
    }
    for fd in (0..3).filter(|&fd| startup.is_closed(fd) && is_dev_null(fd)) {
        // SAFETY: the /dev/null the Rust runtime opened in its place; nothing else uses it.
        unsafe { libc::close(fd) };
    }
}

/// Whether `fd` is open on /dev/null (the character device 1:3), as the Rust runtime leaves a
/// standard descriptor it found closed. Anything else was put there since, and is kept.
fn is_dev_null(fd: c_int) -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat fills `stat` or fails.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: filled by the successful call.
    let stat = unsafe { stat.assume_init() };
    stat.st_mode & libc::S_IFMT == libc::S_IFCHR && stat.st_rdev == libc::makedev(1, 3)
}

/// Set the calling thread's signal mask. (glibc leaves out the signals it keeps for itself.)
fn set_blocked(blocked: u64) {
    let set = signal_set(blocked);
    // SAFETY: an initialized set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Start the linker's worker threads (rayon's global pool) with every signal blocked, so that
/// they never take a signal meant for the program run in this process: the kernel gives a
/// signal sent to the process to any thread that does not block it, and a program expects its
/// handlers to run in its own threads, `sigwait` to see what it blocked, and `pause` in its
/// only thread to return. A new thread inherits its creator's mask, so the pool is made with
/// the mask full, which is then put back.
///
/// If the global pool exists already, its threads are left as they are.
pub(crate) fn keep_linker_threads_out() {
    let previous = blocked_signals();
    set_blocked(u64::MAX);
    // Err only if the pool was made earlier (see above).
    let _ = rayon::ThreadPoolBuilder::new().build_global();
    set_blocked(previous);
}

/// The lowest descriptor an executor's own descriptors are moved to: well above those a program
/// opens, within the usual limit of 1024.
const HIGH_DESCRIPTOR: c_int = 1000;

/// `fd` moved to a high descriptor (close-on-exec), so that the program's first `open` gets 3
/// as natively, not the number after the executor's connection and memory files: from
/// [`HIGH_DESCRIPTOR`], or with a lower descriptor limit from 16 below it. Kept where it is if
/// that is no higher.
pub(crate) fn out_of_the_programs_way(fd: OwnedFd) -> OwnedFd {
    let mut limit = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: getrlimit fills `limit` or fails.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } == 0 {
        // SAFETY: filled by the successful call.
        unsafe { limit.assume_init() }.rlim_cur
    } else {
        0
    };
    let floor = HIGH_DESCRIPTOR.min(c_int::try_from(soft.saturating_sub(16)).unwrap_or(c_int::MAX));
    if fd.as_raw_fd() >= floor {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor for the same file, or fails.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) } {
        -1 => fd,
        // SAFETY: a new descriptor, ours alone; `fd` is closed as it drops.
        high => unsafe { OwnedFd::from_raw_fd(high) },
    }
}
