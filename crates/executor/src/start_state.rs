//! The program starts as it would natively: the signal state and standard descriptors the user
//! started rjitlink with are put back before it runs ([`restore_for_program`]), no thread of
//! the linker's can take a signal meant for it ([`keep_linker_threads_out`]), and descriptors
//! an executor keeps are out of the way of the program's ([`out_of_the_programs_way`]).
//!
//! Everything is put back but what the program's libraries changed: they are loaded before it
//! runs, and their constructors may install handlers (natively they run before `main` too), so
//! what changes while one loads is noted ([`LibraryLoad`]) and kept.

use rjitlink_target::start_state::{self, blocked_signals, signal_set, SIGNALS};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Signals whose action a library changed as it loaded: bit `n - 1` for signal `n`.
static LIBRARY_ACTIONS: AtomicU64 = AtomicU64::new(0);
/// Whether a library changed the signal mask, or the alternate signal stack, as it loaded.
static LIBRARY_MASK: AtomicBool = AtomicBool::new(false);
static LIBRARY_ALTSTACK: AtomicBool = AtomicBool::new(false);

fn alternate_stack() -> Option<usize> {
    let mut stack = std::mem::MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: with no new stack, sigaltstack only stores the current one.
    let stack = unsafe {
        libc::sigaltstack(std::ptr::null(), stack.as_mut_ptr());
        stack.assume_init()
    };
    (stack.ss_flags & libc::SS_DISABLE == 0).then_some(stack.ss_sp as usize)
}

fn handlers() -> [usize; 64] {
    let mut handlers = [libc::SIG_DFL; 64];
    for signal in SIGNALS {
        if let Some(action) = start_state::action(signal) {
            handlers[signal as usize - 1] = action.sa_sigaction;
        }
    }
    handlers
}

/// The signal state as a library of the program starts loading, in the thread loading it (the
/// one that runs the program), to see what its constructors change.
pub(crate) struct LibraryLoad {
    handlers: [usize; 64],
    blocked: u64,
    altstack: Option<usize>,
}

impl LibraryLoad {
    pub(crate) fn start() -> LibraryLoad {
        LibraryLoad {
            handlers: handlers(),
            blocked: blocked_signals(),
            altstack: alternate_stack(),
        }
    }

    /// After the library loaded (or failed to): note what changed, to be kept for the program.
    pub(crate) fn finish(self) {
        let changed = self
            .handlers
            .iter()
            .zip(handlers())
            .enumerate()
            .filter(|(_, (before, after))| **before != *after)
            .fold(0, |changed, (index, _)| changed | 1 << index);
        LIBRARY_ACTIONS.fetch_or(changed, Ordering::Relaxed);
        if blocked_signals() != self.blocked {
            LIBRARY_MASK.store(true, Ordering::Relaxed);
        }
        if alternate_stack() != self.altstack {
            LIBRARY_ALTSTACK.store(true, Ordering::Relaxed);
        }
    }
}

/// Put back the state the user started rjitlink with, in the thread that runs the program:
/// every signal at its default action or ignored as it was, the signal mask, no alternate
/// signal stack (the Rust runtime's, for its stack overflow handler), closed standard
/// descriptors. What the program's libraries changed as they loaded is theirs, and kept.
pub(crate) fn restore_for_program() {
    let startup = start_state::startup();
    let library_actions = LIBRARY_ACTIONS.load(Ordering::Relaxed);
    for signal in SIGNALS {
        if signal == libc::SIGKILL
            || signal == libc::SIGSTOP
            || library_actions & (1 << (signal - 1)) != 0
        {
            continue;
        }
        let Some(current) = start_state::action(signal) else {
            continue;
        };
        let wanted = if startup.is_ignored(signal) {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        if current.sa_sigaction != wanted {
            // SAFETY: a zeroed sigaction with a plain disposition: no flags, no mask.
            unsafe {
                let mut action = std::mem::zeroed::<libc::sigaction>();
                action.sa_sigaction = wanted;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
    if !LIBRARY_ALTSTACK.load(Ordering::Relaxed) && alternate_stack().is_some() {
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: no handler runs on the stack now (this is not a handler), so it may go.
        unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
    }
    if !LIBRARY_MASK.load(Ordering::Relaxed) {
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

/// Grow this process's descriptor table past `HIGH_DESCRIPTOR` (1000) now, while it has one thread.
///
/// Moving a descriptor that high later (the in-process TLS module's memory file, a packed
/// image's) makes the kernel grow the table then, and growing the table of a process with
/// several threads waits for an RCU grace period: measured 9 to 17 ms in the middle of a link.
/// The table never shrinks, so one dup-and-close at start spares every later move.
pub fn grow_descriptor_table() {
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor for standard input if it is open (or
    // fails, which changes nothing); the new descriptor is ours alone and closed at once.
    unsafe {
        let high = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, HIGH_DESCRIPTOR);
        if high >= 0 {
            libc::close(high);
        }
    }
}

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
