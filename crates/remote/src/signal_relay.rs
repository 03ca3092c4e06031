//! Signals sent to the linker while a spawned executor runs the program: they are the
//! program's.
//!
//! The user started one process, rjitlink; the program runs in its child, the executor. A
//! signal sent to rjitlink (`kill PID`, a supervisor stopping it) is meant for the program, which
//! may handle it: while the program runs, the linker relays such signals to the executor
//! rather than dying of them (which would kill the executor too, by its parent-death signal,
//! before the program could handle them). Signals from the terminal (Ctrl-C, Ctrl-\, a hangup)
//! reach every process of its foreground group, the executor's program as well: those the
//! linker only ignores, leaving the program to decide how the run ends.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals relayed: those a user or a supervisor sends to end or poke a program.
const RELAYED: [c_int; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The executor that signals are relayed to, while a [`Relay`] lives (0 otherwise).
static EXECUTOR: AtomicI32 = AtomicI32::new(0);

extern "C" fn relay(signal: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    let executor = EXECUTOR.load(Ordering::Relaxed);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let info = unsafe { &*info };
    // The terminal's signals went to the executor too; and one the program sent to its parent
    // is not for the program.
    // SAFETY: si_pid is meaningful for signals sent by a process (not by the kernel).
    if executor <= 0 || info.si_code == libc::SI_KERNEL || unsafe { info.si_pid() } == executor {
        return;
    }
    // SAFETY: kill is async-signal-safe; the executor is our unreaped child, so its pid is
    // still its own.
    unsafe { libc::kill(executor, signal) };
}

/// While it lives, signals sent to this process are relayed to the executor `pid`; dropping it
/// puts the previous actions back. Drop it before the executor is reaped, while its pid cannot
/// be another process's.
pub(crate) struct Relay {
    previous: Vec<(c_int, libc::sigaction)>,
}

impl Relay {
    pub(crate) fn start(pid: u32) -> Relay {
        EXECUTOR.store(pid as i32, Ordering::Relaxed);
        let previous = RELAYED
            .iter()
            .filter_map(|&signal| {
                // SAFETY: installing a handler that only reads an atomic and calls kill; the
                // old action is stored to be put back.
                unsafe {
                    let mut action = std::mem::zeroed::<libc::sigaction>();
                    action.sa_sigaction = relay as *const () as usize;
                    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                    libc::sigemptyset(&mut action.sa_mask);
                    let mut old = std::mem::zeroed::<libc::sigaction>();
                    (libc::sigaction(signal, &action, &mut old) == 0).then_some((signal, old))
                }
            })
            .collect();
        Relay { previous }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: putting back the action `start` replaced.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
        EXECUTOR.store(0, Ordering::Relaxed);
    }
}

/// Wait until the child `pid` has ended, leaving it unreaped (its pid stays its own). Err if
/// it is not a child of this process.
pub(crate) fn wait_unreaped(pid: u32) -> std::io::Result<()> {
    loop {
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: waitid fills `info`; WNOWAIT leaves the child to be reaped later.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
